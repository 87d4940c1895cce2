"""Config → the gateway's operations: its health monitor and its maintenance scheduler with
the built-in jobs, started and stopped together with the gateway (`Operations`).

`gateway.py` calls `build_operations` once; other parts add jobs with
`gateway.maintenance.register(job)` (key rotation does).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gatewise.cache.store import LRUStore
from gatewise.config.loader import ResolvedConfig
from gatewise.maintenance.builtin import (
    CacheCleanupJob,
    CacheStatsJob,
    HealthReportJob,
    RetentionPurgeJob,
    RotationCheckJob,
)
from gatewise.maintenance.scheduler import MaintenanceScheduler
from gatewise.observability.health import HealthMonitor
from gatewise.storage.factory import Stores
from gatewise.storage.leases import MemoryLeases

if TYPE_CHECKING:
    from gatewise.cache.middleware import CacheMiddleware
    from gatewise.observability.metrics import GatewayMetrics
    from gatewise.security.build import Security


class Operations:
    """The health monitor and the maintenance scheduler of one gateway. `start` runs what
    the config turns on (`health.enabled`, `maintenance.enabled`); `aclose` stops both and
    releases this replica's leases."""

    def __init__(self, health: HealthMonitor, scheduler: MaintenanceScheduler, *,
                 health_on: bool, maintenance_on: bool) -> None:
        self.health = health
        self.scheduler = scheduler
        self.health_on = health_on
        self.maintenance_on = maintenance_on

    def start(self) -> None:
        if self.health_on:
            self.health.start()
        if self.maintenance_on:
            self.scheduler.start()

    async def aclose(self) -> None:
        await self.scheduler.aclose()
        await self.health.aclose()


def build_operations(config: ResolvedConfig, stores: Stores, health: HealthMonitor, *,
                     security: Security, cache: CacheMiddleware | None = None,
                     metrics: GatewayMetrics | None = None,
                     first_run_after_s: float = 60.0) -> Operations:
    """The scheduler with the built-in jobs: `cache_cleanup` (and `cache_stats` with a shared
    cache store), `retention_purge`, `health_report`, and `rotation_check` when the credential
    vault is configured. When maintenance is on, the cache's and security's own timers step
    aside (the jobs do their work now)."""
    mc = config.config.maintenance
    scheduler = MaintenanceScheduler(stores.leases or MemoryLeases(), intervals=mc.intervals,
                                     lease_s=mc.lease_s, metrics=metrics,
                                     first_run_after_s=first_run_after_s, clock=time.monotonic)
    if cache is not None:
        shared = not isinstance(cache.cache.store, LRUStore)
        scheduler.register(CacheCleanupJob(cache.maintenance, shared=shared))
        if shared:
            scheduler.register(CacheStatsJob(cache.maintenance))
        cache.maintenance.scheduled = mc.enabled
    scheduler.register(RetentionPurgeJob(security.purge))
    scheduler.register(HealthReportJob(health))
    if security.vault_configured:
        scheduler.register(RotationCheckJob(lambda: security.vault.check_rotation()))
    security.daily_jobs = not mc.enabled
    return Operations(health, scheduler, health_on=config.config.health.enabled,
                      maintenance_on=mc.enabled)
