"""The cache's maintenance: every `interval_s`, purge expired entries and tag sets from the
store (SQLite and PostgreSQL keep them until then; Redis expires on its own) and add this
process's statistics to the store.

A gateway runs it on its maintenance scheduler (`gatewise.maintenance`: the `cache_cleanup`
job purges, under a lease when the store is shared; `cache_stats` flushes on every replica).
With `maintenance.enabled: false` the loop here runs both instead, as it always did. Either
way it stops (after one last flush) with the gateway's `aclose`. `sleep` and `clock` are
injected, so tests run it without waiting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gatewise.cache.key import PREFIX
from gatewise.cache.stats import CacheStats
from gatewise.observability.metrics import GatewayMetrics
from gatewise.storage.base import KVStore
from gatewise.storage.tasks import stop_task

log = logging.getLogger("gatewise.cache")


class CacheMaintenance:
    def __init__(self, store: KVStore, stats: CacheStats, *, interval_s: float = 60.0,
                 metrics: GatewayMetrics | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._stats = stats
        self.interval_s = interval_s
        self._metrics = metrics
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.purged = 0
        self.last_run: float | None = None
        self._evicted = 0
        # `cache.max_entries` for a shared store (SQLite, PostgreSQL, Redis), which does not
        # evict on its own: each purge then trims the entries to it (`build_cache` sets it;
        # None for the in-process store, whose own caps evict as it goes).
        self.max_entries: int | None = None
        self.trimmed = 0
        # The gateway's maintenance scheduler runs the purge and the flush as jobs: then
        # `start` leaves the loop here off.
        self.scheduled = False

    async def run_once(self) -> int:
        """One pass; returns how many expired entries went. Never raises: a failing store is
        logged and tried again next time."""
        purged = 0
        try:
            purged = await self.purge()
        except Exception:
            log.warning("cache purge failed", exc_info=True)
        await self.flush()
        return purged

    async def purge(self) -> int:
        """Removes expired entries from the store (shared work: with a shared store, one
        replica's purge is everyone's); raises what the store raises."""
        purged = await self._store.purge_expired()
        self.runs += 1
        self.purged += purged
        self.last_run = self._clock()
        if self._metrics is not None and purged:
            self._metrics.cache_evictions.inc(("expired",), purged)
        await self.trim()
        return purged

    async def trim(self) -> int:
        """Holds a shared store to `max_entries` response entries (those that would expire
        soonest go: with one TTL, the oldest); returns how many went."""
        trim = getattr(self._store, "trim", None)
        if self.max_entries is None or trim is None:
            return 0
        trimmed = int(await trim(PREFIX, self.max_entries))
        self.trimmed += trimmed
        if self._metrics is not None and trimmed:
            self._metrics.cache_evictions.inc(("size",), trimmed)
        if trimmed:
            log.info("cache trimmed %d entries to max_entries=%d", trimmed, self.max_entries)
        return trimmed

    async def flush(self) -> None:
        """This process's share: its statistics to the store, and what its in-process store's
        size caps pushed out to the metrics (a shared store evicts by its own policy, e.g.
        Redis `maxmemory-policy`)."""
        await self._stats.flush()
        if self._metrics is not None:
            evicted = getattr(self._store, "evictions", None)
            if isinstance(evicted, int) and evicted > self._evicted:
                self._metrics.cache_evictions.inc(("size",), evicted - self._evicted)
                self._evicted = evicted

    def start(self) -> None:
        """Starts the periodic task (needs a running loop); a second call does nothing, and
        neither does a call when the maintenance scheduler runs the jobs (`scheduled`)."""
        if self.scheduled:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="gatewise-cache-maintenance")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        while True:
            await self._sleep(self.interval_s)
            await self.run_once()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:  # cancelled again if a store client swallows the cancel
            await stop_task(task, 'cache maintenance')
        await self._stats.flush()
