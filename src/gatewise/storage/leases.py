"""Leases: a named lock with an expiry, so one replica at a time does a piece of shared work.

The maintenance scheduler takes `maintenance:<job>` before a run; a replica that does not get
it skips the run. A lease is held by a `holder` (a replica's id) until its TTL runs out or the
holder releases it; the holder may renew it (acquire again) at any time, anyone else only
after it expired. A holder that dies therefore blocks the work for at most one TTL.

Backends: `MemoryLeases` (one process), `SQLiteLeases` (processes sharing a state directory),
`RedisLeases` and `PostgresLeases` (replicas on many machines), chosen by `storage/factory.py`
the way the other stores are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class LeaseStore(Protocol):
    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """True when `holder` now holds `name` for `ttl_s` seconds from now: it was free,
        expired, or already held by `holder` (then renewed). False when someone else holds it."""
        ...

    async def release(self, name: str, holder: str) -> bool:
        """Frees `name` if `holder` holds it (compare-and-delete); True when it did."""
        ...

    async def holder(self, name: str) -> str | None:
        """Who holds `name` now (None when free or expired)."""
        ...

    async def aclose(self) -> None: ...


class MemoryLeases:
    """Leases in this process: every gateway in it shares nothing with another process, so
    each replica always gets its own lease (which is right: its work is its own too)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        now = self._clock()
        cur = self._held.get(name)
        if cur is not None and cur[0] != holder and cur[1] > now:
            return False
        self._held[name] = (holder, now + ttl_s)
        return True

    async def release(self, name: str, holder: str) -> bool:
        cur = self._held.get(name)
        if cur is None or cur[0] != holder:
            return False
        del self._held[name]
        return cur[1] > self._clock()

    async def holder(self, name: str) -> str | None:
        cur = self._held.get(name)
        return cur[0] if cur is not None and cur[1] > self._clock() else None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._held.clear()
