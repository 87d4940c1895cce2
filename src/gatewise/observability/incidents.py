"""Incidents: the moments operators care about, each one log line, one metric and one event.

An incident is a failover, a breaker transition (open, half-open probe, closed), a retry budget
running out, or an escalation. Each is reported three ways, so whoever looks finds it:

- a structured log line on `gatewise.incident` (ids, names, numbers; never prompt text);
- the counter `gatewise_incidents_total{kind,alias,deployment,error_type}` (`alias` is there
  because failovers are per alias; `FallbackMiddleware` shares the same counter);
- `call.event(kind, ...)` on the call that caused it, for timelines and audits.

Recovery is tracked: when a breaker closes, the time since it first opened is logged and
observed in `gatewise_breaker_recovery_seconds{deployment}`. What a breaker transition means
(which kind, which numbers) is the breaker's to say: `resilience.breaker_middleware` turns
each `Transition` into a `record`, so this module knows calls and metrics, not breaker states.

Frequent kinds (a retry budget exhausted for every request of an outage) would flood logs, so
their log lines are throttled per (kind, deployment): at most one per `log_interval_s`, the
next one saying how many were suppressed. Metrics and call events are never throttled.
Breaker transitions are rare by construction and always logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from gatewise.observability.metrics import Counter, Histogram
from gatewise.pipeline.core import Call

FAILOVER = "failover"
BREAKER_OPEN = "breaker_open"
BREAKER_HALF_OPEN = "breaker_half_open"
BREAKER_CLOSED = "breaker_closed"
RETRY_BUDGET_EXHAUSTED = "retry_budget_exhausted"
ESCALATION = "escalation"

_ALWAYS_LOGGED = frozenset({BREAKER_OPEN, BREAKER_HALF_OPEN, BREAKER_CLOSED, ESCALATION})

RECOVERY_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def incidents_counter() -> Counter:
    return Counter("gatewise_incidents_total",
                   "Failovers, breaker transitions, retry budget exhaustion and escalations.",
                   ("kind", "alias", "deployment", "error_type"))


def recovery_histogram() -> Histogram:
    return Histogram("gatewise_breaker_recovery_seconds",
                     "Time from a breaker opening to closing again.", ("deployment",),
                     buckets=RECOVERY_BUCKETS)


class IncidentRecorder:
    """Reports incidents. One per gateway; pass the gateway's metrics to have them exported."""

    def __init__(self, counter: Counter | None = None, recovery: Histogram | None = None, *,
                 logger: logging.Logger | None = None, log_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counter = counter if counter is not None else incidents_counter()
        self.recovery = recovery if recovery is not None else recovery_histogram()
        self.log = logger or logging.getLogger("gatewise.incident")
        self._interval = log_interval_s
        self._clock = clock
        # (kind, deployment) -> [next time a line may be logged, lines suppressed since]
        self._throttle: dict[tuple[str, str], list[float]] = {}

    def record(self, kind: str, *, call: Call | None = None, alias: str | None = None,
               deployment: str | None = None, error_type: str | None = None,
               **data: Any) -> None:
        if alias is None and call is not None:
            alias = call.alias
        dep = deployment or "none"
        etype = error_type or "none"
        self.counter.inc((kind, alias or "none", dep, etype))
        if call is not None:
            call.event(kind, alias=alias, deployment=deployment, error_type=error_type,
                       attempts=call.attempts, **data)
        suppressed = 0
        if kind not in _ALWAYS_LOGGED:
            key = (kind, dep)
            slot = self._throttle.get(key)
            now = self._clock()
            if slot is not None and now < slot[0]:
                slot[1] += 1
                return
            if slot is None:
                self._throttle[key] = [now + self._interval, 0.0]
            else:
                suppressed = int(slot[1])
                slot[0], slot[1] = now + self._interval, 0.0
        if not self.log.isEnabledFor(logging.WARNING):
            return
        extra: dict[str, Any] = {"incident": kind, "alias": alias, "deployment": deployment,
                                 "error_type": error_type, **data}
        if call is not None:
            extra["request_id"] = call.request_id
            extra["provider_attempts"] = call.attempts
        if suppressed:
            extra["suppressed"] = suppressed
        self.log.warning(kind, extra=extra)
