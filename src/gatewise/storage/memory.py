"""In-process stores: the default for a single gateway process and for tests.

Single event loop, so plain dict operations between awaits are atomic; no locks needed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

from gatewise.storage.base import Reservation, UsageRecord


class MemoryKV:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._data[key] = (value, time.monotonic() + ttl if ttl is not None else None)

    async def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    async def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self._data if k.startswith(prefix)]
        for k in keys:
            del self._data[k]
        return len(keys)

    async def aclose(self) -> None:
        self._data.clear()


class MemoryCounters:
    def __init__(self) -> None:
        self._totals: dict[str, tuple[float, float | None]] = {}
        self._ids = itertools.count(1)

    def _current(self, key: str) -> float:
        item = self._totals.get(key)
        if item is None:
            return 0.0
        total, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._totals[key]
            return 0.0
        return total

    def _add(self, key: str, delta: float, ttl: float | None = None) -> float:
        total = self._current(key) + delta
        old = self._totals.get(key)
        expires = old[1] if old is not None else (time.monotonic() + ttl if ttl else None)
        self._totals[key] = (total, expires)
        return total

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        if self._current(key) + amount > limit:
            return None
        self._add(key, amount, ttl)
        return Reservation(key, amount, str(next(self._ids)))

    async def settle(self, reservation: Reservation, actual: float) -> float:
        return self._add(reservation.key, actual - reservation.amount)

    async def release(self, reservation: Reservation) -> float:
        return self._add(reservation.key, -reservation.amount)

    async def value(self, key: str) -> float:
        return self._current(key)

    async def aclose(self) -> None:
        self._totals.clear()


class MemoryLedger:
    def __init__(self) -> None:
        self._records: dict[str, UsageRecord] = {}

    async def append(self, records: Sequence[UsageRecord]) -> int:
        new = 0
        for r in records:
            if r.request_id not in self._records:
                self._records[r.request_id] = r
                new += 1
        return new

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000) -> list[UsageRecord]:
        out = [r for r in self._records.values()
               if (tenant is None or r.tenant == tenant)
               and (since is None or r.ts >= since) and (until is None or r.ts < until)]
        out.sort(key=lambda r: r.ts)
        return out[:limit]

    async def aclose(self) -> None:
        return None


class MemoryConversations:
    def __init__(self) -> None:
        self._turns: dict[str, list[dict[str, Any]]] = {}

    async def append(self, conversation: str, messages: Sequence[dict[str, Any]]) -> None:
        self._turns.setdefault(conversation, []).extend(dict(m) for m in messages)

    async def history(self, conversation: str, limit: int | None = None) -> list[dict[str, Any]]:
        turns = self._turns.get(conversation, [])
        return list(turns[-limit:] if limit else turns)

    async def clear(self, conversation: str) -> None:
        self._turns.pop(conversation, None)

    async def aclose(self) -> None:
        self._turns.clear()
