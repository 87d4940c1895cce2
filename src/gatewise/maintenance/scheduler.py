"""`MaintenanceScheduler`: runs each registered `Job` on its interval, one replica at a time.

Intervals: `maintenance.intervals[name]`, else the job's `default_interval_s`. A job's first
run comes `min(interval, first_run_after_s)` after start, so a short-lived process (a CLI chat)
never pays for maintenance, and a server restarted often still gets its daily jobs done.

One replica at a time: before a run the scheduler takes the lease `maintenance:<job>` in the
lease store (`storage/leases.py`: Redis or PostgreSQL with many replicas). It holds the lease
for `interval + lease_s` and renews it on every run, so between replicas a job runs once per
interval: the holder keeps it while it is alive, the others find it taken and count the run
"skipped". If the holder dies, its lease runs out and another replica takes the job over
within `lease_s` after that; they look again every `min(interval, lease_s)`. A clean shutdown
releases the leases at once. A lease held only `lease_s` and released after each run would
let every replica run the job once per interval, each at its own phase.

Jobs that must run on every replica (they work on this process's own state, e.g. the cache's
statistics in memory) say so with `exclusive = False`; they never take a lease.

Each run leaves one log line with its summary (`gatewise.maintenance`, INFO; a failure at
WARNING with the error's type) and counts `gatewise_maintenance_runs_total{job_name,outcome}`
(ok, error, skipped). Clock and sleep are injected, so tests run schedules without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gatewise.maintenance.jobs import Job
from gatewise.storage.leases import LeaseStore
from gatewise.storage.tasks import cancel_was_lost, stop_task

if TYPE_CHECKING:
    from gatewise.observability.metrics import GatewayMetrics

log = logging.getLogger("gatewise.maintenance")

Outcome = Literal["ok", "error", "skipped"]


def new_holder() -> str:
    """This replica's name in the lease store: host, process and a random part (two gateways
    in one process are two holders)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(slots=True)
class JobState:
    """What the scheduler knows of one job (`status()`; the health report reads it too)."""

    job: Job
    interval_s: float
    exclusive: bool
    runs: int = 0
    skipped: int = 0
    errors: int = 0
    last_outcome: Outcome | None = None
    last_run: float | None = None  # unix time of the last attempt
    last_summary: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class MaintenanceScheduler:
    def __init__(self, leases: LeaseStore, *, intervals: Mapping[str, float] | None = None,
                 lease_s: float = 120.0, metrics: GatewayMetrics | None = None,
                 holder: str | None = None, first_run_after_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.leases = leases
        self.intervals = dict(intervals or {})
        self.lease_s = lease_s
        self.holder = holder or new_holder()
        self.first_run_after_s = first_run_after_s
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.jobs: dict[str, JobState] = {}
        self._held: set[str] = set()
        self._running = False

    # -- jobs -------------------------------------------------------------------------------
    def register(self, job: Job) -> None:
        """Adds a job (components and other helpers call this, e.g. key rotation). Registered
        while running, it is scheduled at once."""
        if job.name in self.jobs:
            raise ValueError(f"a maintenance job named {job.name!r} is already registered")
        interval = float(self.intervals.get(job.name, job.default_interval_s))
        if interval <= 0:
            raise ValueError(f"maintenance job {job.name!r} needs a positive interval")
        state = JobState(job, interval, bool(getattr(job, "exclusive", True)))
        self.jobs[job.name] = state
        if self._running:
            self._spawn(state)

    def interval(self, name: str) -> float:
        return self.jobs[name].interval_s

    @property
    def running(self) -> bool:
        return self._running

    def status(self) -> list[dict[str, Any]]:
        """One row per job: interval, counts, the last outcome and its summary."""
        return [{"job": name, "interval_s": s.interval_s, "exclusive": s.exclusive,
                 "runs": s.runs, "skipped": s.skipped, "errors": s.errors,
                 "last_outcome": s.last_outcome, "last_run": s.last_run,
                 "summary": s.last_summary} for name, s in self.jobs.items()]

    # -- running ----------------------------------------------------------------------------
    async def run_once(self, name: str) -> Outcome:
        """One attempt at `name` now: under its lease (exclusive jobs), logged and counted."""
        state = self.jobs[name]
        key = f"maintenance:{name}"
        if state.exclusive:
            try:
                got = await self.leases.acquire(key, self.holder,
                                                state.interval_s + self.lease_s)
            except Exception as exc:  # the shared store is down: nobody can coordinate
                self._held.discard(key)
                return self._finish(state, "error", {"error": f"lease: {type(exc).__name__}"},
                                    0.0)
            if not got:
                self._held.discard(key)
                return self._finish(state, "skipped", {}, 0.0)
            self._held.add(key)
        started = self._clock()
        try:
            summary = await state.job.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._finish(state, "error", {"error": type(exc).__name__},
                                self._clock() - started)
        return self._finish(state, "ok", dict(summary or {}), self._clock() - started)

    def _finish(self, state: JobState, outcome: Outcome, summary: dict[str, Any],
                took: float) -> Outcome:
        name = state.job.name
        state.last_outcome, state.last_run = outcome, self._wall()
        if self._metrics is not None:
            self._metrics.maintenance_runs.inc((name, outcome))
        if outcome == "skipped":
            state.skipped += 1
            log.debug("maintenance %s skipped: another replica holds its lease", name)
            return outcome
        state.last_summary = summary
        text = " ".join(f"{k}={v}" for k, v in summary.items())
        extra = {"job_name": name, "outcome": outcome, "duration_s": round(took, 4),
                 "summary": summary}
        if outcome == "ok":
            state.runs += 1
            log.info("maintenance %s ok in %.3fs%s", name, took, f": {text}" if text else "",
                     extra=extra)
        else:
            state.errors += 1
            log.warning("maintenance %s failed in %.3fs: %s", name, took, text, extra=extra)
        return outcome

    async def _loop(self, state: JobState) -> None:
        name = state.job.name
        delay = min(state.interval_s, self.first_run_after_s)
        retry = min(state.interval_s, self.lease_s)
        while True:
            await self._sleep(delay)
            started = self._clock()
            outcome = await self.run_once(name)
            if cancel_was_lost():  # a store client swallowed aclose()'s cancel mid-run
                raise asyncio.CancelledError
            # Skipped: look again soon, the holder may be gone.
            delay = retry if outcome == "skipped" else max(
                0.0, state.interval_s - (self._clock() - started))

    def _spawn(self, state: JobState) -> None:
        if state.task is None or state.task.done():
            state.task = asyncio.get_running_loop().create_task(
                self._loop(state), name=f"gatewise-maintenance-{state.job.name}")

    def start(self) -> None:
        """Schedules every registered job (needs a running loop); a second call does nothing."""
        if self._running:
            return
        self._running = True
        for state in self.jobs.values():
            self._spawn(state)

    async def aclose(self) -> None:
        """Stops every job (a run in progress is cancelled) and releases the leases this
        replica holds, so another replica takes the jobs over without waiting them out."""
        self._running = False
        tasks = [s.task for s in self.jobs.values() if s.task is not None]
        for state in self.jobs.values():
            state.task = None
        for task in tasks:  # cancelled again if a store client swallows the cancel
            await stop_task(task, f"maintenance job {task.get_name()}")
        held, self._held = self._held, set()
        for key in held:
            with contextlib.suppress(Exception):
                await self.leases.release(key, self.holder)
