"""Where cached answers live: any `KVStore` (Redis or PostgreSQL share entries between
replicas), or the in-process default, `LRUStore`, bounded by entry count with least recently
used eviction. `ResponseCache` adds the entry format (msgspec MessagePack), the per-entry size
cap, and treats a failing store as a miss: a broken cache never fails a request."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import msgspec

from gatewise.storage.base import KVStore
from gatewise.types.responses import ChatCompletion

log = logging.getLogger("gatewise.cache")


class LRUStore:
    """A `KVStore` in process: TTL per entry, at most `max_entries` (least recently used
    first out). `clock` is injectable for tests."""

    def __init__(self, max_entries: int = 10_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def values(self) -> Iterator[bytes]:
        """Every stored value, expired ones included (tests read what was stored)."""
        return (v for v, _ in self._data.values())

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = self._data
        data[key] = (value, None if ttl is None else self._clock() + ttl)
        data.move_to_end(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)
            self.evictions += 1

    async def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    async def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self._data if k.startswith(prefix)]
        for k in keys:
            del self._data[k]
        return len(keys)

    def purge_expired(self) -> int:
        now = self._clock()
        dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in dead:
            del self._data[k]
        return len(dead)

    async def aclose(self) -> None:
        self._data.clear()


class Entry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A stored answer: the completion as the upstream sent it (masked, when a PII policy
    masked the request), what it cost then (the saving a hit records), and who served it."""

    completion: ChatCompletion
    cost_usd: float | None = None
    deployment: str = ""
    stored_at: float = 0.0


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entry).decode


class ResponseCache:
    def __init__(self, store: KVStore, *, max_entry_bytes: int = 1024 * 1024) -> None:
        self.store = store
        self.max_entry_bytes = max_entry_bytes

    @staticmethod
    def encode(entry: Entry) -> bytes:
        return _encode(entry)

    async def get(self, key: str) -> Entry | None:
        try:
            raw = await self.store.get(key)
            return None if raw is None else _decode(raw)
        except Exception:  # a broken store or an unreadable entry is a miss
            log.warning("cache read failed", exc_info=True)
            return None

    async def put(self, key: str, value: bytes, ttl: float) -> bool:
        """Stores an encoded entry; False when it is over the size cap or the store failed."""
        if len(value) > self.max_entry_bytes:
            return False
        try:
            await self.store.set(key, value, ttl)
        except Exception:
            log.warning("cache write failed", exc_info=True)
            return False
        return True

    async def aclose(self) -> None:
        if isinstance(self.store, LRUStore):
            await self.store.aclose()
