"""`SharedRecentFeed`: a console feed kept in a shared store (`RecentLog`; on Redis,
`gatewise.storage.recent_redis`), so every replica's console shows every replica's records:
the live request log (`build_request_log`) and the guard events (`build_security_feed`).
`RecentFeed`, the in-process ring, stays the default without Redis. The two feeds differ only
in their payload and in whether they are kept while nobody watches (`idle_s`).

The same contract as `RecentFeed` (`observability.recent`): records numbered in order,
`read(after=seq)` answers what came since, at most `limit` of the newest, a reader too far
behind is told `dropped`, and producers fill the log only while somebody watches. What
differs is where things happen:

- **Writing** is never on a request's path: `add` encodes the record and appends it to a
  local buffer (bounded by the log's capacity: more would be trimmed anyway); a background
  task sends the buffer every `flush_s` as one batch (one round trip, numbered by the store).
- **Watching** is shared: a read sets the store's watched flag for `idle_s` (at most once a
  second per replica), and each replica's task reads the flag every `poll_s`; `active`,
  what a producer checks per request, stays a local clock read. A replica starts filling
  the log within `poll_s` of a read on any replica.
- **A read** takes the newest page (and the oldest entry's number, for `dropped`) in one
  round trip and pages on only while every entry is newer than `after`: a reader that keeps
  up needs one page. Entries pushed between pages shift the list, so an entry already seen
  is skipped by its number.
- **Always kept** (`idle_s=None`, the guard events: rare, and a record of what happened
  rather than a live view): `active` is always true, and there is no watched flag to set or
  read.

The store unreachable: a batch is dropped (the log is a live view; the usage ledger is the
record) with a warning at most once a minute; a read fails as any store read does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from gatewise.observability.recent import Feed, Keep, Page, RecentFeed, Record
from gatewise.storage.tasks import stop_task

log = logging.getLogger("gatewise.observability")

_PAGE = 200
_WARN_EVERY_S = 60.0
_MARK_EVERY_S = 1.0
_encode = msgspec.json.Encoder(enc_hook=str).encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class RecentLog(Protocol):
    """A capped, numbered list in a shared store (`storage.recent_redis.RedisRecentLog`)."""

    capacity: int

    async def push(self, records: Sequence[bytes]) -> int: ...

    async def head(self, count: int) -> tuple[list[tuple[int, bytes]], int | None]: ...

    async def page(self, start: int, count: int) -> list[tuple[int, bytes]]: ...

    async def watch(self, ttl_s: float) -> None: ...

    async def watched_s(self) -> float: ...


class SharedRecentFeed:
    def __init__(self, store: RecentLog, *, idle_s: float | None = 60.0, flush_s: float = 0.1,
                 poll_s: float = 1.0, name: str = "live log",
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`name`: what the feed is, in its warnings and its task's name."""
        self._store = store
        self._name = name
        self._idle_s = idle_s
        self._flush_s = flush_s
        self._poll_s = poll_s
        self._clock = clock
        self._buffer: deque[bytes] = deque(maxlen=store.capacity)
        self._watched_until = float("inf") if idle_s is None else float("-inf")
        self._marked_at = float("-inf")
        self._warned_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    # -- producing (on the request path: no I/O) ----------------------------------------------
    @property
    def active(self) -> bool:
        return self._clock() < self._watched_until

    def add(self, record: Record) -> None:
        self._buffer.append(_encode(record))

    # -- the background task ------------------------------------------------------------------
    def start(self) -> None:
        """Starts sending batches and reading the watched flag (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"gatewise-{self._name.replace(' ', '-')}")

    async def aclose(self) -> None:
        """Stops the task and sends what is buffered (the store is closed by its owner)."""
        task, self._task = self._task, None
        if task is not None:  # cancelled again if a store client swallows the cancel
            await stop_task(task, task.get_name())
        await self.flush()

    async def _run(self) -> None:
        next_poll = self._clock()
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()
            now = self._clock()
            if self._idle_s is not None and now >= next_poll:
                next_poll = now + self._poll_s
                await self._poll()

    async def flush(self) -> None:
        """Sends the buffered records as one batch (dropped if the store fails)."""
        if not self._buffer:
            return
        batch = list(self._buffer)
        self._buffer.clear()
        try:
            await self._store.push(batch)
        except Exception as exc:
            self._warn("dropped %d %s records: %s", len(batch), self._name, exc)

    async def _poll(self) -> None:
        try:
            left = await self._store.watched_s()
        except Exception as exc:
            self._warn("could not read the %s's watched flag: %s", self._name, exc)
            return
        if left > 0:
            self._watched_until = max(self._watched_until, self._clock() + left)

    def _warn(self, message: str, *args: Any) -> None:
        now = self._clock()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(message, *args)

    # -- reading ------------------------------------------------------------------------------
    async def read(self, seq: int, *, limit: int, keep: Keep | None = None) -> Page:
        """As `RecentFeed.read`, over every replica's records. Reading marks the log watched
        on every replica (and on this one at once), unless it is always kept."""
        now = self._clock()
        if self._idle_s is not None:
            self._watched_until = max(self._watched_until, now + self._idle_s)
            if now - self._marked_at >= _MARK_EVERY_S:
                self._marked_at = now
                await self._store.watch(self._idle_s)
        entries, oldest = await self._store.head(_PAGE)
        if not entries:
            return [], 0, False
        newest = entries[0][0]
        if seq > newest:  # a reader from before the log was reset: start again from now
            seq = 0
        out: list[Record] = []
        below = newest + 1  # entries at or above this were seen (pages shift as pushes land)
        start = 0
        while entries:
            for n, body in entries:
                if n >= below:
                    continue
                if n <= seq or len(out) >= limit:
                    entries = []
                    break
                below = n
                record = _decode(body)
                if keep is None or keep(record):
                    out.append({**record, "seq": n})
            else:
                if len(entries) < _PAGE:
                    break
                start += _PAGE
                entries = await self._store.page(start, _PAGE)
        out.reverse()
        return out, newest, oldest is not None and seq < oldest - 1


def build_request_log(store: RecentLog | None) -> Feed:
    """The console's live request log: on the shared store when there is one (Redis), else
    this process's ring."""
    return RecentFeed(2000, idle_s=60.0) if store is None else SharedRecentFeed(store)


def build_security_feed(store: RecentLog | None) -> Feed:
    """The console's guard events: kept whether or not anybody watches (a block is worth
    seeing after the fact), on the shared store when there is one, else this process's ring."""
    if store is None:
        return RecentFeed(1000)
    return SharedRecentFeed(store, idle_s=None, name="security events")
