"""In-process stores: the default for a single gateway process and for tests.

Single event loop, so plain dict operations between awaits are atomic; no locks needed.
(The in-memory governance store lives in `memory_governance.py`.)
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from gatewise.storage.base import (
    Reservation,
    UsageGroup,
    UsageRecord,
    UsageRow,
    WindowResult,
    hit_in_turn,
)
from gatewise.storage.usage import check_groups, group_values, matches


class MemoryKV:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._sets: dict[str, tuple[set[str], float | None]] = {}
        self._fields: dict[str, dict[str, float]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._data[key] = (value, self._clock() + ttl if ttl is not None else None)

    async def delete(self, key: str) -> bool:
        found = self._data.pop(key, None) is not None
        found = self._sets.pop(key, None) is not None or found
        return self._fields.pop(key, None) is not None or found

    async def delete_prefix(self, prefix: str) -> int:
        n = 0
        for table in (self._data, self._sets, self._fields):
            keys = [k for k in table if k.startswith(prefix)]
            for k in keys:
                del table[k]
            n += len(keys)
        return n

    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        now = self._clock()
        item = self._sets.get(key)
        if item is None or (item[1] is not None and item[1] <= now):
            item = (set(), now + ttl if ttl is not None else None)
        elif item[1] is not None:
            item = (item[0], None if ttl is None else max(item[1], now + ttl))
        item[0].update(members)
        self._sets[key] = item

    async def members(self, key: str) -> list[str]:
        item = self._sets.get(key)
        if item is None:
            return []
        if item[1] is not None and item[1] <= self._clock():
            del self._sets[key]
            return []
        return list(item[0])

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        fields = self._fields.setdefault(key, {})
        for name, delta in deltas.items():
            fields[name] = fields.get(name, 0.0) + delta

    async def fields(self, key: str) -> dict[str, float]:
        return dict(self._fields.get(key, {}))

    async def trim(self, prefix: str, keep: int) -> int:
        under = [(float("inf") if exp is None else exp, k)
                 for k, (_, exp) in self._data.items() if k.startswith(prefix)]
        if len(under) <= keep:
            return 0
        under.sort()
        gone = under[:len(under) - keep]
        for _, k in gone:
            del self._data[k]
        return len(gone)

    async def purge_expired(self) -> int:
        now = self._clock()
        dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in dead:
            del self._data[k]
        gone = [k for k, (_, exp) in self._sets.items() if exp is not None and exp <= now]
        for k in gone:
            del self._sets[k]
        return len(dead) + len(gone)

    async def aclose(self) -> None:
        self._data.clear()
        self._sets.clear()
        self._fields.clear()


class _Counter:
    """A total, when it expires, and its open reservations (id → amount). Keeping the open
    ids makes settle/release idempotent (a retried settle changes nothing) and lets a period
    that expired take its reservations with it (a late settle cannot leak into the next)."""

    __slots__ = ("expires", "open", "total")

    def __init__(self, expires: float | None) -> None:
        self.total = 0.0
        self.expires = expires
        self.open: dict[str, float] = {}


class MemoryCounters:
    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}
        self._ids = itertools.count(1)

    def _get(self, key: str) -> _Counter | None:
        c = self._counters.get(key)
        if c is not None and c.expires is not None and c.expires <= time.monotonic():
            del self._counters[key]
            return None
        return c

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        c = self._get(key)
        if (c.total if c else 0.0) + amount > limit:
            return None
        if c is None:
            c = self._counters[key] = _Counter(time.monotonic() + ttl if ttl else None)
        rid = str(next(self._ids))
        c.total += amount
        c.open[rid] = amount
        return Reservation(key, amount, rid)

    def _close(self, reservation: Reservation, actual: float | None) -> float:
        c = self._get(reservation.key)
        if c is None:
            return 0.0
        reserved = c.open.pop(reservation.id, None)
        if reserved is not None:
            c.total += (actual or 0.0) - reserved
        return c.total

    async def settle(self, reservation: Reservation, actual: float) -> float:
        return self._close(reservation, actual)

    async def release(self, reservation: Reservation) -> float:
        return self._close(reservation, None)

    async def value(self, key: str) -> float:
        c = self._get(key)
        return c.total if c else 0.0

    async def aclose(self) -> None:
        self._counters.clear()


class MemoryLedger:
    def __init__(self) -> None:
        self._records: dict[str, UsageRecord] = {}

    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        new = 0
        for r in records:
            if r.request_id not in self._records:
                self._records[r.request_id] = r
                new += 1
        return new

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000,
                    team: str | None = None, key_id: str | None = None,
                    alias: str | None = None) -> list[UsageRecord]:
        out = [r for r in self._records.values()
               if matches(r, tenant=tenant, since=since, until=until, team=team, key_id=key_id,
                          alias=alias)]
        out.sort(key=lambda r: r.ts)
        return out[:limit]

    async def aggregate(self, group_by: Sequence[UsageGroup], *, since: float | None = None,
                        until: float | None = None, team: str | None = None,
                        key_id: str | None = None) -> list[UsageRow]:
        check_groups(group_by)
        rows: dict[tuple[str, ...], UsageRow] = {}
        for r in self._records.values():
            if not matches(r, since=since, until=until, team=team, key_id=key_id):
                continue
            values = group_values(r, group_by)
            row = rows.get(values)
            if row is None:
                row = rows[values] = UsageRow(dict(zip(group_by, values, strict=True)))
            row.requests += 1
            row.prompt_tokens += r.prompt_tokens
            row.completion_tokens += r.completion_tokens
            row.cached_tokens += r.cached_tokens
            row.cost_usd += r.cost_usd
        return [rows[k] for k in sorted(rows)]

    async def delete_before(self, ts: float, limit: int) -> int:
        old = sorted((r for r in self._records.values() if r.ts < ts), key=lambda r: r.ts)[:limit]
        for r in old:
            del self._records[r.request_id]
        return len(old)

    async def aclose(self) -> None:
        return None


class MemoryWindow:
    """Exact sliding windows: every hit is kept (time, amount) until it slides out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, tuple[deque[tuple[float, float]], list[float]]] = {}

    def _window(self, key: str, now: float, window_s: float) -> tuple[deque[tuple[float, float]],
                                                                    list[float]]:
        entry = self._hits.get(key)
        if entry is None:
            entry = self._hits[key] = (deque(), [0.0])
        hits, total = entry
        cutoff = now - window_s
        while hits and hits[0][0] <= cutoff:
            total[0] -= hits.popleft()[1]
        if not hits:
            total[0] = 0.0  # no float residue once the window is empty
        return hits, total

    async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
        now = self._clock()
        hits, total = self._window(key, now, window_s)
        if total[0] + amount <= limit:
            hits.append((now, amount))
            total[0] += amount
            return WindowResult(True, total[0], limit, reset_after(hits, total[0], 1.0, limit,
                                                                   window_s, now))
        return WindowResult(False, total[0], limit, reset_after(hits, total[0], amount, limit,
                                                                window_s, now))

    async def hit_many(self, hits: Sequence[tuple[str, float, float]],
                       window_s: float) -> list[WindowResult]:
        return await hit_in_turn(self, hits, window_s)

    async def add(self, key: str, amount: float, window_s: float) -> None:
        now = self._clock()
        hits, total = self._window(key, now, window_s)
        hits.append((now, amount))
        total[0] += amount

    async def aclose(self) -> None:
        self._hits.clear()


def reset_after(hits: Iterable[tuple[float, float]], used: float, amount: float, limit: float,
                window_s: float, now: float) -> float:
    """Seconds until `amount` (capped at `limit`) fits: the oldest hits slide out one by one.
    `hits` iterates (time, amount) oldest first. 0 when it fits already."""
    need = min(amount, limit)
    if used + need <= limit:
        return 0.0
    for ts, n in hits:
        used -= n
        if used + need <= limit:
            return max(0.0, ts + window_s - now)
    return window_s
