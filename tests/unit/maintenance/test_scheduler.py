"""The maintenance scheduler: each job on its interval, one replica at a time under a lease,
one log line and one counted outcome per run; and the jobs a gateway registers for itself.

Time is virtual (`tests.virtual_time`): hours of schedule run in milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.maintenance.scheduler import MaintenanceScheduler
from gatewise.observability.metrics import GatewayMetrics
from gatewise.security.crypto import generate_key
from gatewise.storage.base import UsageRecord
from gatewise.storage.leases import MemoryLeases
from tests.virtual_time import VirtualTime


class CountingJob:
    def __init__(self, vt: VirtualTime, name: str = "count", interval: float = 100.0, *,
                 fail: bool = False, exclusive: bool = True) -> None:
        self.name = name
        self.default_interval_s = interval
        self.exclusive = exclusive
        self.at: list[float] = []
        self._vt = vt
        self._fail = fail

    async def run(self) -> dict[str, Any]:
        self.at.append(self._vt.now)
        if self._fail:
            raise RuntimeError("upstream said sk-live-secret-123 at http://u:p@host")
        return {"purged": 3, "names": "a,b"}


class BrokenLeases(MemoryLeases):
    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        raise ConnectionError("redis://:password@cache:6379 refused")


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def scheduler(vt: VirtualTime, leases: Any = None, **kw: Any) -> MaintenanceScheduler:
    kw.setdefault("first_run_after_s", 10.0)
    return MaintenanceScheduler(leases if leases is not None else MemoryLeases(clock=vt.clock),
                                clock=vt.clock, wall=vt.clock, sleep=vt.sleep, **kw)


async def test_a_job_runs_on_its_interval_first_soon_after_start(vt: VirtualTime) -> None:
    s = scheduler(vt, metrics=(metrics := GatewayMetrics()))
    job = CountingJob(vt)
    s.register(job)
    s.start()
    await vt.run_until(350)
    await s.aclose()
    assert job.at == [10, 110, 210, 310]
    assert metrics.maintenance_runs.get(("count", "ok")) == 4


async def test_the_config_interval_wins_over_the_jobs_default(vt: VirtualTime) -> None:
    s = scheduler(vt, intervals={"count": 5.0})
    job = CountingJob(vt)
    s.register(job)
    assert s.interval("count") == 5.0
    s.start()
    await vt.run_until(21)
    await s.aclose()
    assert job.at == [5, 10, 15, 20]  # nothing runs more often than its interval


async def test_two_replicas_sharing_leases_run_a_job_once_per_interval_between_them(
        vt: VirtualTime) -> None:
    leases = MemoryLeases(clock=vt.clock)
    metrics_a, metrics_b = GatewayMetrics(), GatewayMetrics()
    a = scheduler(vt, leases, holder="a", lease_s=30, metrics=metrics_a)
    b = scheduler(vt, leases, holder="b", lease_s=30, metrics=metrics_b, first_run_after_s=13)
    job_a, job_b = CountingJob(vt), CountingJob(vt)
    a.register(job_a)
    b.register(job_b)
    a.start()
    b.start()
    await vt.run_until(1000)
    assert len(job_a.at) + len(job_b.at) == 10 and job_b.at == []
    assert metrics_b.maintenance_runs.get(("count", "skipped")) > 0
    # The holder leaves cleanly: its lease goes with it, the other replica takes over at
    # its next look (within min(interval, lease_s)).
    await a.aclose()
    await vt.run_until(1200)
    assert job_b.at and job_b.at[0] <= 1000 + 30
    gaps = [y - x for x, y in itertools.pairwise(job_b.at)]
    assert all(g == 100 for g in gaps)
    await b.aclose()


async def test_a_crashed_holders_job_is_taken_over_once_its_lease_runs_out(
        vt: VirtualTime) -> None:
    leases = MemoryLeases(clock=vt.clock)
    a = scheduler(vt, leases, holder="a", lease_s=30)
    b = scheduler(vt, leases, holder="b", lease_s=30, first_run_after_s=13)
    job_a, job_b = CountingJob(vt), CountingJob(vt)
    a.register(job_a)
    b.register(job_b)
    a.start()
    b.start()
    await vt.run_until(250)
    assert job_a.at == [10, 110, 210] and job_b.at == []
    task = a.jobs["count"].task
    assert task is not None
    task.cancel()  # a crash: nothing is released
    await vt.run_until(600)
    # A's lease (taken at 210 for interval + lease_s = 130 s) ran out at 340.
    assert job_b.at and 340 <= job_b.at[0] <= 340 + 30
    await b.aclose()


async def test_each_run_logs_one_line_with_its_summary(
        vt: VirtualTime, caplog: pytest.LogCaptureFixture) -> None:
    s = scheduler(vt)
    s.register(CountingJob(vt))
    with caplog.at_level(logging.INFO, logger="gatewise.maintenance"):
        assert await s.run_once("count") == "ok"
    lines = [r for r in caplog.records if r.name == "gatewise.maintenance"]
    assert len(lines) == 1
    assert "count ok" in lines[0].getMessage() and "purged=3 names=a,b" in lines[0].getMessage()
    assert lines[0].__dict__["summary"] == {"purged": 3, "names": "a,b"}
    assert s.status()[0]["summary"] == {"purged": 3, "names": "a,b"}


async def test_a_failing_run_is_logged_by_type_counted_and_retried_on_schedule(
        vt: VirtualTime, caplog: pytest.LogCaptureFixture) -> None:
    metrics = GatewayMetrics()
    s = scheduler(vt, metrics=metrics)
    job = CountingJob(vt, fail=True)
    s.register(job)
    s.start()
    with caplog.at_level(logging.INFO, logger="gatewise.maintenance"):
        await vt.run_until(215)
    await s.aclose()
    assert job.at == [10, 110, 210]
    assert metrics.maintenance_runs.get(("count", "error")) == 3
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in text
    assert "sk-live" not in text and "u:p@" not in text


async def test_without_the_shared_store_nothing_exclusive_runs(
        vt: VirtualTime, caplog: pytest.LogCaptureFixture) -> None:
    metrics = GatewayMetrics()
    s = scheduler(vt, BrokenLeases(), metrics=metrics)
    shared, local = CountingJob(vt, "shared"), CountingJob(vt, "local", exclusive=False)
    s.register(shared)
    s.register(local)
    with caplog.at_level(logging.WARNING, logger="gatewise.maintenance"):
        assert await s.run_once("shared") == "error"
    assert await s.run_once("local") == "ok"  # per-replica work needs no lease
    assert shared.at == [] and local.at == [0]
    assert metrics.maintenance_runs.get(("shared", "error")) == 1
    assert "password" not in caplog.text and "lease: ConnectionError" in caplog.text


async def test_jobs_registered_while_running_are_scheduled_and_names_are_unique(
        vt: VirtualTime) -> None:
    s = scheduler(vt)
    s.start()
    late = CountingJob(vt, "late", 50)
    s.register(late)
    with pytest.raises(ValueError, match="already registered"):
        s.register(CountingJob(vt, "late"))
    await vt.run_until(60)
    await s.aclose()
    assert late.at == [10, 60]


async def test_closing_releases_the_leases_this_replica_holds(vt: VirtualTime) -> None:
    leases = MemoryLeases(clock=vt.clock)
    s = scheduler(vt, leases, holder="me")
    s.register(CountingJob(vt))
    await s.run_once("count")
    assert await leases.holder("maintenance:count") == "me"
    await s.aclose()
    assert await leases.holder("maintenance:count") is None


class SwallowingJob:
    """A run whose store client swallows a cancel that lands inside its read (redis-py can),
    and returns as if nothing had happened."""

    name = "swallow"
    default_interval_s = 0.01
    exclusive = False

    def __init__(self) -> None:
        self.runs = 0
        self.started = asyncio.Event()

    async def run(self) -> dict[str, Any]:
        self.runs += 1
        self.started.set()
        if self.runs > 1:  # later runs cancel normally, so a failing test still ends
            await asyncio.sleep(10)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return {}


async def test_closing_stops_a_job_whose_store_client_swallowed_the_cancel() -> None:
    # Before: the loop went round again after the swallowed cancel and aclose() waited for
    # ever (a test server's shutdown hung for its whole 15 s join).
    s = MaintenanceScheduler(MemoryLeases(), first_run_after_s=0.0)
    job = SwallowingJob()
    s.register(job)
    s.start()
    await asyncio.wait_for(job.started.wait(), 5)
    closing = asyncio.create_task(s.aclose())
    done, _ = await asyncio.wait({closing}, timeout=3)
    assert done, "aclose() still waits on a job whose cancel was swallowed"
    assert job.runs == 1


# -- the gateway's own jobs -------------------------------------------------------------------
def _gateway(**extra: Any) -> Gateway:
    cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                           "storage": {"database": "memory"},
                           "cache": {"enabled": True}, **extra})
    return Gateway(resolve_config(cfg, None, {}, w))


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    g = _gateway(security={"encryption_key": generate_key()},
                 maintenance={"intervals": {"retention_purge": 3600}})
    yield g
    await g.aclose()


async def test_a_gateway_schedules_its_builtin_jobs_and_its_timers_step_aside(gw: Gateway) -> None:
    assert set(gw.maintenance.jobs) >= {"cache_cleanup", "retention_purge", "health_report",
                                        "rotation_check"}
    assert gw.maintenance.interval("retention_purge") == 3600
    assert gw.maintenance.interval("rotation_check") == 86400
    assert gw.security.daily_jobs is False  # security's daily timer leaves it to the jobs
    await gw.start()
    assert gw.maintenance.running
    assert all(s.task is not None for s in gw.maintenance.jobs.values())
    gw.maintenance.register(CountingJob(VirtualTime(), "key_rotation"))  # what D2's job does
    assert gw.maintenance.jobs["key_rotation"].task is not None


async def test_the_retention_job_purges_what_is_past_its_keep_period(
        gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    old = time.time() - 400 * 86400
    await gw.stores.ledger.append([
        UsageRecord("old", old, "t", "m", "m:fake/echo", "success"),
        UsageRecord("new", time.time(), "t", "m", "m:fake/echo", "success")])
    with caplog.at_level(logging.INFO, logger="gatewise.maintenance"):
        assert await gw.maintenance.run_once("retention_purge") == "ok"
    assert [r.request_id for r in await gw.stores.ledger.query()] == ["new"]
    assert "retention_purge ok" in caplog.text and "usage=1" in caplog.text


async def test_the_health_report_is_one_line_of_component_statuses(
        gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    await gw.health.check_all()
    with caplog.at_level(logging.INFO, logger="gatewise.maintenance"):
        assert await gw.maintenance.run_once("health_report") == "ok"
    lines = [r.getMessage() for r in caplog.records if r.name == "gatewise.maintenance"]
    assert len(lines) == 1 and "health_report ok" in lines[0] and "up=" in lines[0]


async def test_the_rotation_check_reports_credentials_due(gw: Gateway) -> None:
    vault = gw.security.vault
    await vault.put("old-key", "openai", "sk-test-000", actor="test", rotate_every_days=1)
    rec = await gw.stores.governance.get_credential("old-key")
    assert rec is not None
    rec.rotated -= 2 * 86400
    await gw.stores.governance.put_credential(rec)
    await gw.maintenance.run_once("rotation_check")
    assert gw.maintenance.jobs["rotation_check"].last_summary == {"due": 1, "names": "old-key"}
