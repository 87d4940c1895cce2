"""`RecentFeed`: a bounded ring of recent records for the web console's live views (the
request log, guard events), read by polling `after(seq)`.

Each record gets an increasing sequence number, so a reader asks for what came after the last
one it saw and never misses or repeats one while it keeps up; one that falls more than
`capacity` behind is told so (`dropped`) instead of being sent an unbounded backlog. The ring
lives in this process: on many replicas each reports its own traffic (the ledger and the audit
log remain the shared, durable records), unless the feed is `SharedRecentFeed`
(`observability.recent_shared`: the request log's and the guard events' with Redis
configured); both are a `Feed`.

A feed built with `idle_s` is fed only while somebody watches: a read keeps it active for
`idle_s` seconds, and the producer checks `active` (one clock read) before building a record,
so an unwatched gateway pays nothing for the request log's live view.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

Record = dict[str, Any]
Keep = Callable[[Record], bool]
# (records oldest first, the number to ask after next time, whether some were lost)
Page = tuple[list[Record], int, bool]


class Feed(Protocol):
    """What producers and the console's routes need of a live feed."""

    @property
    def active(self) -> bool: ...

    def add(self, record: Record) -> None: ...

    async def read(self, seq: int, *, limit: int, keep: Keep | None = None) -> Page: ...

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


class RecentFeed:
    def __init__(self, capacity: int, *, idle_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ring: deque[tuple[int, Record]] = deque(maxlen=capacity)
        self._seq = 0
        self._idle_s = idle_s
        self._clock = clock
        self._watched_until = float("inf") if idle_s is None else float("-inf")

    @property
    def active(self) -> bool:
        """Whether a producer should add records now (always, without `idle_s`)."""
        return self._clock() < self._watched_until

    @property
    def last_seq(self) -> int:
        return self._seq

    def add(self, record: Record) -> None:
        self._seq += 1
        self._ring.append((self._seq, record))

    async def read(self, seq: int, *, limit: int, keep: Keep | None = None) -> Page:
        """`after`, as every `Feed` reads."""
        return self.after(seq, limit=limit, keep=keep)

    def start(self) -> None:
        """Nothing runs in the background of an in-process ring."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def after(self, seq: int, *, limit: int, keep: Keep | None = None) -> Page:
        """(records after `seq` that `keep` accepts, oldest first and at most `limit` of the
        newest; the sequence number to ask after next time; whether records were lost to the
        ring's bound since `seq`). Reading marks the feed watched."""
        if self._idle_s is not None:
            self._watched_until = self._clock() + self._idle_s
        ring = self._ring
        newest = self._seq
        if seq > newest:  # a reader from before a restart: start again from now
            seq = 0
        dropped = bool(ring) and seq < ring[0][0] - 1
        out: list[Record] = []
        for n, record in reversed(ring):
            if n <= seq or len(out) >= limit:
                break
            if keep is None or keep(record):
                out.append({**record, "seq": n})
        out.reverse()
        return out, newest, dropped
