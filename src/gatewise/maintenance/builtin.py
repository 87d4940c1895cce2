"""The gateway's own maintenance jobs, each a thin `Job` over work its component already knows
how to do: the cache's purge and statistics, the retention purge, the health report and the
credential rotation check.

Shared work (a shared store purged, a report written once) is `exclusive`: one replica at a
time, under the scheduler's lease. Work on this process's own state (an in-process cache,
statistics counted in memory) runs on every replica.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gatewise.cache.maintenance import CacheMaintenance
from gatewise.observability.health import HealthMonitor

log = logging.getLogger("gatewise.maintenance")

DAY = 86400.0


class CacheCleanupJob:
    """Expired response-cache entries out of the store. With the in-process store every
    replica has its own entries, so every replica purges its own (and flushes its statistics
    in the same pass, as the cache's own loop does)."""

    name = "cache_cleanup"

    def __init__(self, maintenance: CacheMaintenance, *, shared: bool) -> None:
        self._m = maintenance
        self.default_interval_s = maintenance.interval_s
        self.exclusive = shared

    async def run(self) -> dict[str, Any]:
        trimmed = self._m.trimmed
        purged = await self._m.purge()
        if not self.exclusive:
            await self._m.flush()
        return {"purged": purged, "trimmed": self._m.trimmed - trimmed}


class CacheStatsJob:
    """This replica's cache statistics (hits, tokens and USD saved) into the shared store,
    where every replica's reports add up. Only with a shared store: otherwise
    `cache_cleanup` does it."""

    name = "cache_stats"
    exclusive = False

    def __init__(self, maintenance: CacheMaintenance) -> None:
        self._m = maintenance
        self.default_interval_s = maintenance.interval_s

    async def run(self) -> dict[str, Any]:
        await self._m.flush()
        return {}


class RetentionPurgeJob:
    """Usage records, audit records and idle conversations past their retention
    (`accounting.retention_days`, `security.audit_retention_days`, `memory.retention_days`),
    in bounded batches (`security.retention`)."""

    name = "retention_purge"
    default_interval_s = DAY

    def __init__(self, purge: Callable[[], Awaitable[dict[str, int]]]) -> None:
        self._purge = purge

    async def run(self) -> dict[str, Any]:
        return dict(await self._purge())


class HealthReportJob:
    """One log line summarising the components' statuses (the monitor checks them on its own
    schedule; this reads its last results, it probes nothing)."""

    name = "health_report"
    default_interval_s = 300.0

    def __init__(self, monitor: HealthMonitor) -> None:
        self._monitor = monitor

    async def run(self) -> dict[str, Any]:
        return self._monitor.summary()


class RotationCheckJob:
    """Credentials past their rotation age: one `rotation_due` security event each (log,
    metric, audit). Automated rotation itself is the `key_rotation` job."""

    name = "rotation_check"
    default_interval_s = DAY

    def __init__(self, check: Callable[[], Awaitable[list[str]]]) -> None:
        self._check = check

    async def run(self) -> dict[str, Any]:
        due = await self._check()
        return {"due": len(due), **({"names": ",".join(sorted(due)[:20])} if due else {})}
