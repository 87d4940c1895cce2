"""Where cached answers live: any `KVStore` (Redis or PostgreSQL share entries between
replicas), or the in-process default, `LRUStore`, bounded by entry count and bytes, evicting
low-priority entries first, least recently used first within a priority. Each tag of an entry
is a set of entry keys in the same store (`key.tag_key`), so invalidation by tag is one read
and one delete per entry. `ResponseCache` adds the entry format (msgspec MessagePack), the
per-entry size cap, and treats a failing store as a miss: a broken cache never fails a
request."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence

import msgspec

from gatewise.cache.key import tag_key
from gatewise.cache.near import NearCache
from gatewise.storage.base import KVStore
from gatewise.storage.memory import MemoryKV
from gatewise.types.responses import ChatCompletion

log = logging.getLogger("gatewise.cache")


# Eviction order: low-priority entries go first, then normal, then high; least recently used
# first within a priority.
PRIORITIES: dict[str, int] = {"low": 0, "normal": 1, "high": 2}


class LRUStore:
    """A `KVStore` in process: TTL per entry, at most `max_entries` entries and `max_bytes`
    of values, evicting by priority, then least recently used. Tag sets and statistics live
    beside the entries (never evicted, never counted in the caps). `clock` is injectable."""

    def __init__(self, max_entries: int = 10_000, *, max_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # One LRU order per priority; `_level` says which one holds a key.
        self._levels: list[OrderedDict[str, tuple[bytes, float | None]]] = [
            OrderedDict() for _ in PRIORITIES]
        self._level: dict[str, int] = {}
        self._bytes = 0
        self._aux = MemoryKV(clock)
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._level)

    @property
    def size_bytes(self) -> int:
        """What the stored values weigh (the `max_bytes` cap's measure)."""
        return self._bytes

    def values(self) -> Iterator[bytes]:
        """Every stored value, expired ones included (tests read what was stored)."""
        return (v for level in self._levels for v, _ in level.values())

    def _drop(self, key: str) -> bool:
        level = self._level.pop(key, None)
        if level is None:
            return False
        value, _ = self._levels[level].pop(key)
        self._bytes -= len(value)
        return True

    async def get(self, key: str) -> bytes | None:
        level = self._level.get(key)
        if level is None:
            return None
        entries = self._levels[level]
        value, expires = entries[key]
        if expires is not None and expires <= self._clock():
            self._drop(key)
            return None
        entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None, *,
                  priority: int = PRIORITIES["normal"]) -> None:
        self._drop(key)
        self._levels[priority][key] = (value, None if ttl is None else self._clock() + ttl)
        self._level[key] = priority
        self._bytes += len(value)
        self._evict()

    def _evict(self) -> None:
        cap_bytes = self.max_bytes
        while len(self._level) > self.max_entries or (
                cap_bytes is not None and self._bytes > cap_bytes and len(self._level) > 1):
            level = next(lv for lv in self._levels if lv)
            key, _ = next(iter(level.items()))
            self._drop(key)
            self.evictions += 1

    async def delete(self, key: str) -> bool:
        found = self._drop(key)
        return await self._aux.delete(key) or found

    async def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self._level if k.startswith(prefix)]
        for k in keys:
            self._drop(k)
        return len(keys) + await self._aux.delete_prefix(prefix)

    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        await self._aux.add_members(key, members, ttl)

    async def members(self, key: str) -> list[str]:
        return await self._aux.members(key)

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        await self._aux.incr_fields(key, deltas)

    async def fields(self, key: str) -> dict[str, float]:
        return await self._aux.fields(key)

    async def purge_expired(self) -> int:
        now = self._clock()
        dead = [k for level in self._levels for k, (_, exp) in level.items()
                if exp is not None and exp <= now]
        for k in dead:
            self._drop(k)
        return len(dead) + await self._aux.purge_expired()

    async def aclose(self) -> None:
        for level in self._levels:
            level.clear()
        self._level.clear()
        self._bytes = 0
        await self._aux.aclose()


class Entry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A stored answer: the completion as the upstream sent it (masked, when a PII policy
    masked the request), what it cost then (the saving a hit records), and who served it."""

    completion: ChatCompletion
    cost_usd: float | None = None
    deployment: str = ""
    stored_at: float = 0.0
    expires_at: float = 0.0  # wall time; 0: unknown (a near cache keeps it `near_ttl_s`)


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entry).decode


class ResponseCache:
    """`near`: entries recently read or written, kept in process in front of a shared store
    (`near.NearCache`); None reads the store every time."""

    def __init__(self, store: KVStore, *, max_entry_bytes: int = 1024 * 1024,
                 near: NearCache | None = None) -> None:
        self.store = store
        self.max_entry_bytes = max_entry_bytes
        self.near = near

    @staticmethod
    def encode(entry: Entry) -> bytes:
        return _encode(entry)

    async def get(self, key: str) -> Entry | None:
        near = self.near
        generation = 0
        try:
            if near is not None:
                raw = near.get(key)
                if raw is not None:
                    return _decode(raw)
                generation = near.generation
            raw = await self.store.get(key)
            if raw is None:
                return None
            entry = _decode(raw)
            if near is not None:
                near.keep(key, raw, entry.expires_at, generation=generation)
            return entry
        except Exception:  # a broken store or an unreadable entry is a miss
            log.warning("cache read failed", exc_info=True)
            return None

    async def put(self, key: str, value: bytes, ttl: float, *, tags: Sequence[str] = (),
                  priority: str = "normal") -> bool:
        """Stores an encoded entry, and its key in each tag's set (kept as long as the
        entry); False when it is over the size cap or the store failed. `priority` orders
        eviction in process (a shared store evicts by its own policy: Redis `maxmemory`)."""
        if len(value) > self.max_entry_bytes:
            return False
        store = self.store
        generation = self.near.generation if self.near is not None else 0
        try:
            if isinstance(store, LRUStore):
                await store.set(key, value, ttl, priority=PRIORITIES[priority])
            else:
                await store.set(key, value, ttl)
            for tag in tags:
                await store.add_members(tag_key(key, tag), [key], ttl)
        except Exception:
            log.warning("cache write failed", exc_info=True)
            return False
        if self.near is not None:
            self.near.keep(key, value, ttl=ttl, generation=generation)
        return True

    async def aclose(self) -> None:
        if self.near is not None:
            await self.near.aclose()
        if isinstance(self.store, LRUStore):
            await self.store.aclose()
