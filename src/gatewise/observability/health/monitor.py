"""`HealthMonitor`: component checks in the background, their last results, and readiness.

A component is one thing the gateway depends on: a provider deployment, a store, the local
model, a quota, the API (this process's event loop). Each has a `Probe`: an async check run
every `interval_s`. A check that raises marks its component "down"; while it stays down the
probe backs off (interval, twice that, four times, … up to its cap), so a dead upstream is not hammered and
its recovery is still noticed. The results feed three things from one source: `/readyz`
(`readiness`), `gatewise_component_up{component,kind}` and
`gatewise_health_check_duration_seconds{kind}`, and the maintenance job's health report.

Errors are kept sanitized: the exception's type and, for provider errors, the HTTP status;
never its text, which may hold a URL with credentials or an upstream's echo of a key.

Nothing here knows what a provider or a store is: `probes.py` builds the checks from the
gateway's parts. Clock, wall clock and sleep are injected, so tests drive schedules by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatewise.storage.tasks import stop_task

if TYPE_CHECKING:
    from gatewise.config.schema_ops import HealthConfig
    from gatewise.observability.metrics import GatewayMetrics

log = logging.getLogger("gatewise.health")

# What a component can be: "unknown" until first checked (or when nothing can tell, e.g. a
# provider that has no free call); "degraded" serves but with a problem (an exhausted quota,
# a slow event loop).
UP, DOWN, DEGRADED, UNKNOWN = "up", "down", "degraded", "unknown"
KINDS = ("provider", "store", "local_model", "quota", "api")
# Overlapping probes are bounded: a config with hundreds of deployments probes in waves.
_CONCURRENCY = 16
_MIN_SLEEP_S = 0.05


@dataclass(frozen=True, slots=True)
class Result:
    """What a check found when it did not raise."""

    status: str = UP
    error: str | None = None
    detail: Mapping[str, Any] | None = None


Check = Callable[[], Awaitable["Result | dict[str, Result] | None"]]


def describe_error(exc: BaseException) -> str:
    """An error as the status document shows it: the type, and the HTTP status the upstream
    answered with, if any. Never the message (upstream text, addresses, keys)."""
    status = getattr(exc, "upstream_status", None)
    name = "TimeoutError" if isinstance(exc, TimeoutError) else type(exc).__name__
    return f"{name} {status}" if isinstance(status, int) and status else name


@dataclass(slots=True)
class ComponentStatus:
    kind: str
    status: str = UNKNOWN
    latency_ms: float | None = None
    checked_at: float | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "status": self.status,
                               "latency_ms": self.latency_ms, "checked_at": self.checked_at,
                               "error": self.error}
        out.update(self.detail)
        return out


@dataclass(slots=True)
class Probe:
    """One check on a schedule. A probe usually reports one component (`name`); a probe whose
    check returns a dict reports a family of them (quotas: one per budget), and a member it
    stops reporting is dropped."""

    name: str
    kind: str
    check: Check
    interval_s: float
    max_backoff_s: float
    timeout_s: float
    detail: dict[str, Any] = field(default_factory=dict)
    # Seconds from start (or from being added) to the first check; None = one interval.
    first_in: float | None = None
    failures: int = 0
    next_at: float = 0.0  # on the monitor's clock
    members: set[str] = field(default_factory=set)

    def delay(self) -> float:
        """Seconds to the next check: the interval, doubled per consecutive failure after
        the first, capped."""
        if self.failures <= 1:
            return self.interval_s
        grown: float = self.interval_s * 2.0 ** min(self.failures - 1, 30)
        return min(grown, max(self.max_backoff_s, self.interval_s))


class HealthMonitor:
    def __init__(self, config: HealthConfig, *, metrics: GatewayMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 lag_limit_s: float = 1.0) -> None:
        self.config = config
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.lag_limit_s = lag_limit_s
        self.probes: dict[str, Probe] = {}
        self.components: dict[str, ComponentStatus] = {}
        # alias -> the component names of its deployments; readiness asks whether each
        # alias still has one that is not down.
        self.aliases: dict[str, list[str]] = {}
        # Components whose failure makes this replica not ready (Redis, PostgreSQL).
        self.critical: set[str] = set()
        self.lag_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._gate = asyncio.Semaphore(_CONCURRENCY)
        self.add(Probe("api", "api", self._check_api, config.probe_interval_s,
                       config.probe_interval_s, config.probe_timeout_s), first_in=0.0)

    # -- components -------------------------------------------------------------------------
    def add(self, probe: Probe, *, first_in: float | None = None) -> None:
        """Schedules `probe`, first checked `first_in` seconds after start (default: one
        interval); its component is "unknown" until then."""
        probe.first_in = first_in
        probe.next_at = self._clock() + (probe.interval_s if first_in is None else first_in)
        self.probes[probe.name] = probe
        self.components.setdefault(probe.name, ComponentStatus(probe.kind,
                                                               detail=dict(probe.detail)))

    def set_static(self, name: str, kind: str, result: Result,
                   detail: Mapping[str, Any] | None = None) -> None:
        """A component nothing probes (a deployment that cannot serve as configured)."""
        self.components[name] = ComponentStatus(kind, result.status, error=result.error,
                                                detail={**(detail or {}),
                                                        **(result.detail or {})})
        self._gauge(name, kind, result.status)

    # -- checking ---------------------------------------------------------------------------
    async def check_due(self) -> list[str]:
        """Runs every probe whose time has come (concurrently); returns their names."""
        now = self._clock()
        due = [p for p in self.probes.values() if p.next_at <= now]
        if due:
            await asyncio.gather(*(self._run(p) for p in due))
        return [p.name for p in due]

    async def check_all(self, kinds: Iterable[str] | None = None) -> None:
        """Runs every probe (of `kinds`) now, whatever its schedule (tests, the CLI)."""
        wanted = set(kinds) if kinds is not None else None
        await asyncio.gather(*(self._run(p) for p in self.probes.values()
                               if wanted is None or p.kind in wanted))

    async def _run(self, probe: Probe) -> None:
        async with self._gate:
            started = self._clock()
            try:
                async with asyncio.timeout(probe.timeout_s):
                    found = await probe.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                found = Result(DOWN, describe_error(exc))
            took = self._clock() - started
        if self._metrics is not None:
            self._metrics.health_check_duration.observe(took, (probe.kind,))
        checked = self._wall()
        if isinstance(found, dict):
            for name in (probe.members | {probe.name}) - found.keys():
                self._drop(name)
            probe.members = set(found)
            for name, result in found.items():
                self._record(name, probe.kind, result, None, checked, probe.detail)
            down = any(r.status == DOWN for r in found.values())
        else:
            result = found if found is not None else Result()
            self._record(probe.name, probe.kind, result, round(took * 1000, 1), checked,
                         probe.detail)
            down = result.status == DOWN
        probe.failures = probe.failures + 1 if down else 0
        probe.next_at = self._clock() + probe.delay()

    def _record(self, name: str, kind: str, result: Result, latency_ms: float | None,
                checked: float, detail: Mapping[str, Any]) -> None:
        old = self.components.get(name)
        before = old.status if old is not None else UNKNOWN
        self.components[name] = ComponentStatus(kind, result.status, latency_ms, checked,
                                                result.error,
                                                {**detail, **(result.detail or {})})
        self._gauge(name, kind, result.status)
        if result.status != before:
            if result.status in (DOWN, DEGRADED):
                log.warning("health: %s %s is %s (%s)", kind, name, result.status,
                            result.error or "no detail",
                            extra={"component": name, "kind": kind, "status": result.status,
                                   "error": result.error})
            elif before in (DOWN, DEGRADED):
                log.info("health: %s %s is %s again", kind, name, result.status,
                         extra={"component": name, "kind": kind, "status": result.status})

    def _gauge(self, name: str, kind: str, status: str) -> None:
        if self._metrics is None:
            return
        if status == UNKNOWN:
            self._metrics.component_up.remove((name, kind))
        else:
            self._metrics.component_up.set((name, kind), 1.0 if status == UP else 0.0)

    def _drop(self, name: str) -> None:
        old = self.components.pop(name, None)
        if old is not None and self._metrics is not None:
            self._metrics.component_up.remove((name, old.kind))

    async def _check_api(self) -> Result:
        """The API itself: this process's event loop answers on time. Measured by the
        monitor's own sleeps: one that returns much later than asked means the loop was
        blocked (a request handler doing blocking work, a stuck thread holding the GIL)."""
        if self._task is None:
            return Result(UNKNOWN)
        lag = round(self.lag_s * 1000, 1)
        if self.lag_s > self.lag_limit_s:
            return Result(DEGRADED, "EventLoopLag", {"loop_lag_ms": lag})
        return Result(UP, None, {"loop_lag_ms": lag})

    # -- background -------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the background checks (needs a running loop); a second call does nothing."""
        if self._task is None or self._task.done():
            now = self._clock()
            for p in self.probes.values():
                p.next_at = now + (p.interval_s if p.first_in is None else p.first_in)
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="gatewise-health")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_due()
            except Exception:  # a bug in one check must not end health checking
                log.exception("health checks failed")
            now = self._clock()
            nxt = min((p.next_at for p in self.probes.values()), default=now + 1.0)
            delay = max(nxt - now, _MIN_SLEEP_S)
            planned = now + delay
            await self._sleep(delay)
            self.lag_s = max(0.0, self._clock() - planned)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:  # cancelled again if a store client swallows the cancel
            await stop_task(task, "health monitor")

    # -- readiness --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, ComponentStatus]:
        return dict(self.components)

    def summary(self) -> dict[str, Any]:
        """Counts per status, and the components not up: the health report's line."""
        counts: dict[str, int] = {}
        for c in self.components.values():
            counts[c.status] = counts.get(c.status, 0) + 1
        bad = sorted(n for n, c in self.components.items() if c.status in (DOWN, DEGRADED))
        return {**counts, "not_up": ",".join(bad[:20]) + (",..." if len(bad) > 20 else "")}

    def readiness(self, *, warmed: bool = True, draining: bool = False) -> tuple[int, dict[str, Any]]:
        """(HTTP status, document) for `/readyz`.

        Not ready (503): draining, still warming, a shared store down, or no alias can be
        served (every deployment of every alias down; with `require_all_aliases`, every
        deployment of any one alias). Degraded (200): something is down or degraded but
        every alias still has a deployment that is not down (or the rule above allows it)."""
        comps = self.components
        down = {n for n, c in comps.items() if c.status == DOWN}
        unserved = sorted(a for a, names in self.aliases.items()
                          if names and all(n in down for n in names))
        reasons: list[str] = []
        stores_down = sorted(n for n in self.critical if n in down)
        if stores_down:
            reasons.append("store down: " + ", ".join(stores_down))
        if len(unserved) == len(self.aliases):
            reasons.append("no alias can be served" if self.aliases else "no model configured")
        elif unserved and self.config.require_all_aliases:
            reasons.append("aliases with no deployment up: " + ", ".join(unserved))
        if draining:
            status = "draining"
        elif not warmed:
            status = "not_ready"
            reasons.insert(0, "warming up")
        elif reasons:
            status = "not_ready"
        elif any(c.status in (DOWN, DEGRADED) for c in comps.values()):
            status = "degraded"
        else:
            status = "ready"
        doc: dict[str, Any] = {"status": status,
                               "components": {n: c.to_dict() for n, c in sorted(comps.items())}}
        if unserved:
            doc["unserved_aliases"] = unserved
        if reasons:
            doc["reasons"] = reasons
        return (200 if status in ("ready", "degraded") else 503), doc
