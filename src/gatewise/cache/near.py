"""`NearCache`: the entries this replica read or wrote in the last `ttl_s` seconds, kept in
process in front of a shared store (Redis, PostgreSQL).

Why: an exact hit on a shared store is a network round trip, and on a loaded machine that round
trip's tail (milliseconds) is the hit's tail. A repeated request within a couple of seconds is
the common case of a hot entry, so the replica keeps the entry's bytes for a short while and a
hit then never leaves the process.

What keeps it correct:

- **bounded staleness**: an entry is kept at most `ttl_s` and never past the entry's own
  expiry; with pub/sub down (or no shared backend to broadcast on) that bound is the only one;
- **invalidation is broadcast**: every invalidation (by key, tag, alias, prefix, everything;
  from the admin API, the CLI or another replica) drops the keys here and publishes them on
  `channel` (Redis pub/sub, or PostgreSQL LISTEN/NOTIFY without Redis); every replica drops
  them on receipt. Messages: `k <key> <key> ...`, `p <prefix>`, `c` (drop everything). Each
  fits in `_MAX_MESSAGE_BYTES`, the smallest any backend carries (NOTIFY's), so a long key list
  goes out as several messages that each stand alone; a lone key or prefix too long for one
  goes out as `c`, since dropping more than needed is always safe;
- **a read that raced an invalidation is not kept**: a store read started before an
  invalidation arrived may return the old bytes; `generation` counts invalidations, and a read
  is kept only if none arrived while it was in flight;
- **messages lost are assumed**: after pub/sub reconnects, everything here is dropped.

Keys are the response cache's full keys, tenant scope included, so scoping is the store's.
The clock is wall time (`time.time`): an entry's expiry is written by another replica.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gatewise.storage.base import StoreUnavailableError

if TYPE_CHECKING:
    from gatewise.storage.base import PubSub, Subscription

log = logging.getLogger("gatewise.cache")

# One PUBLISH carries at most this many keys (a tag's invalidation may name thousands), and at
# most this many bytes (PostgreSQL NOTIFY's limit, the smallest of the backends').
_KEYS_PER_MESSAGE = 256
_MAX_MESSAGE_BYTES = 7999


class NearCache:
    def __init__(self, ttl_s: float, *, max_entries: int = 1024,
                 max_bytes: int = 32 * 1024 * 1024, clock: Callable[[], float] = time.time,
                 pubsub: PubSub | None = None, channel: str = "gatewise:cache") -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self.pubsub = pubsub
        self.channel = channel
        self._sub: Subscription | None = None
        # Counts invalidations seen (local or broadcast): see `keep`.
        self.generation = 0
        self._warned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= self._clock():
            self._pop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def keep(self, key: str, value: bytes, expires_at: float | None = None, *,
             ttl: float | None = None, generation: int | None = None) -> None:
        """Keeps `value` until `ttl_s` from now or the entry's own expiry (`expires_at`, or
        `ttl` from now), whichever is first. `generation`: the `generation` read before the
        store read that returned `value`; if an invalidation arrived since, the value may be
        stale: not kept."""
        if generation is not None and generation != self.generation:
            return
        now = self._clock()
        expires = now + self.ttl_s
        if expires_at is not None and expires_at > 0:
            expires = min(expires, expires_at)
        if ttl is not None:
            expires = min(expires, now + ttl)
        if expires <= now or len(value) > self.max_bytes:
            return
        self._pop(key)
        self._entries[key] = (value, expires)
        self._bytes += len(value)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (old, _) = self._entries.popitem(last=False)
            self._bytes -= len(old)

    def _pop(self, key: str) -> None:
        item = self._entries.pop(key, None)
        if item is not None:
            self._bytes -= len(item[0])

    # -- invalidation -------------------------------------------------------------------------

    def drop_keys(self, keys: Iterable[str]) -> None:
        self.generation += 1
        for key in keys:
            self._pop(key)

    def drop_prefix(self, prefix: str) -> None:
        self.generation += 1
        for key in [k for k in self._entries if k.startswith(prefix)]:
            self._pop(key)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._bytes = 0

    async def invalidate_keys(self, keys: Iterable[str]) -> None:
        """Drops `keys` here and on every replica (the store's entries are already gone)."""
        keys = list(keys)
        if not keys:
            return
        self.drop_keys(keys)
        batch: list[str] = []
        size = 1  # "k"
        for key in keys:
            grows = 1 + len(key.encode())
            if batch and (len(batch) >= _KEYS_PER_MESSAGE or size + grows > _MAX_MESSAGE_BYTES):
                await self._publish("k " + " ".join(batch))
                batch, size = [], 1
            batch.append(key)
            size += grows
        await self._publish("k " + " ".join(batch))

    async def invalidate_prefix(self, prefix: str) -> None:
        self.drop_prefix(prefix)
        await self._publish("p " + prefix)

    async def _publish(self, message: str) -> None:
        if self.pubsub is None:
            return
        if len(message.encode()) > _MAX_MESSAGE_BYTES:
            message = "c"
        try:
            await self.pubsub.publish(self.channel, message)
        except StoreUnavailableError as exc:
            self._trouble(exc)

    def _on_message(self, message: str) -> None:
        kind, _, rest = message.partition(" ")
        if kind == "k":
            self.drop_keys(rest.split())
        elif kind == "p":
            self.drop_prefix(rest)
        else:  # "c", or unknown (a newer replica's): safe is to forget everything
            self.clear()

    async def _on_connect(self, resumed: bool) -> None:
        if resumed:  # invalidations published while away are lost
            self.clear()

    def _trouble(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("cache invalidation broadcast unavailable; other replicas' near "
                        "caches drop entries within cache.near_ttl_s",
                        extra={"error_type": type(exc).__name__})

    def start(self) -> None:
        """Listens for other replicas' invalidations (needs a running loop; once)."""
        if self.pubsub is None or self._sub is not None:
            return
        self._sub = self.pubsub.subscribe(self.channel, self._on_message,
                                          on_connect=self._on_connect, on_error=self._trouble)

    async def wait_ready(self) -> None:
        """Returns once subscribed (or after the first failed try)."""
        if self._sub is not None:
            await self._sub.wait_ready()

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.aclose()
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            await pubsub.aclose()
        self.clear()
