"""`BreakerMiddleware`: guards one attempt on the chosen deployment with its circuit breaker.

Runs once per attempt, inside `RetryMiddleware` (so each retry is judged and recorded) and
outside the tracking/provider call. When the deployment's breaker is open it raises
`CircuitOpenError` without calling the provider; the router, reading the same breakers'
`available()`, normally skips such a deployment before it gets here, so this is the backstop
for a breaker that opened while the call was being routed or retried.

Outcomes: a failure that says the deployment is unhealthy (`is_deployment_failure`) is
recorded and may open the breaker; a success is counted on the fast path (no await, no I/O).
When the breaker lets this call through as the half-open probe, its verdict closes or
reopens the breaker; a cancelled probe is released so another call can probe. Streams: the
verdict of a probe comes at the first chunk (the deployment answered); a normal stream's
outcome is recorded when it ends, so a deployment that keeps cutting streams mid-way opens
its breaker too. Every transition is an incident (`report_transition`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gatewise.observability.incidents import (
    BREAKER_CLOSED,
    BREAKER_HALF_OPEN,
    BREAKER_OPEN,
    IncidentRecorder,
)
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import Cancelled, ChunkStream
from gatewise.resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breakers,
    Transition,
    is_deployment_failure,
)

# How long a half-open probe holds the breaker (others are refused meanwhile): the call's
# remaining time, within these bounds. A probe that outlives its lease lets the next one in.
_DEFAULT_LEASE_S = 60.0
_MIN_LEASE_S = 1.0
_MAX_LEASE_S = 600.0

_TRANSITION_KIND = {OPEN: BREAKER_OPEN, HALF_OPEN: BREAKER_HALF_OPEN, CLOSED: BREAKER_CLOSED}


def report_transition(incidents: IncidentRecorder, t: Transition, call: Call | None = None,
                      **data: Any) -> None:
    """A breaker transition as an incident; closing also reports the recovery time."""
    kind = _TRANSITION_KIND[t.new]
    extra: dict[str, Any] = {"from_state": t.old, **data}
    if t.new == OPEN:
        extra["window_failures"] = t.failures
        extra["window_calls"] = t.calls
        if t.open_s is not None:
            extra["open_for_s"] = round(t.open_s, 3)
    if t.recovery_s is not None:
        extra["recovery_s"] = round(t.recovery_s, 3)
        incidents.recovery.observe(t.recovery_s, (t.deployment,))
    incidents.record(kind, call=call, deployment=t.deployment, error_type=t.error_type, **extra)


class BreakerMiddleware:
    def __init__(self, breakers: Breakers, *, incidents: IncidentRecorder | None = None) -> None:
        self.breakers = breakers
        self.incidents = incidents if incidents is not None else IncidentRecorder()
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, call: Call, next: Handler) -> Any:
        dep = call.deployment
        assert dep is not None, "the router runs before the breaker"
        dep_id = dep.id
        b = self.breakers
        if not self._started:
            self._started = True
            b.start()
        token: str | None = None
        if not b.is_closed(dep_id):
            deadline = call.deadline
            lease = _DEFAULT_LEASE_S if deadline is None else \
                min(_MAX_LEASE_S, max(_MIN_LEASE_S, deadline - time.perf_counter()))
            token = await b.admit(dep_id, lease)  # raises CircuitOpenError when it is open
            if token is not None:
                self.incidents.record(BREAKER_HALF_OPEN, call=call, deployment=dep_id,
                                      from_state="open", probe=True)
        try:
            result = await next(call)
        except asyncio.CancelledError:
            if token is not None:
                self._soon(b.release(dep_id, token))
            raise
        except BaseException as exc:
            if is_deployment_failure(exc):
                self._report(call, await b.record_failure(dep_id, type(exc).__name__, token))
            elif token is not None:
                await b.release(dep_id, token)
            raise
        if token is not None:
            self._report(call, await b.record_probe_success(dep_id, token))
        elif isinstance(result, ChunkStream):
            result.on_finish(self._stream_done)
        else:
            b.note_success(dep_id)
        return result

    def _stream_done(self, call: Call, error: BaseException | None) -> None:
        dep = call.deployment
        if dep is None:
            return
        if error is None or isinstance(error, Cancelled) or not is_deployment_failure(error):
            self.breakers.note_success(dep.id)
            return
        self._soon(self._record_later(call, dep.id, type(error).__name__))

    async def _record_later(self, call: Call, dep_id: str, error_type: str) -> None:
        self._report(call, await self.breakers.record_failure(dep_id, error_type))

    def _report(self, call: Call, t: Transition | None) -> None:
        if t is not None:
            report_transition(self.incidents, t, call)

    def _soon(self, coro: Any) -> None:
        """Runs breaker bookkeeping that must not wait for (or die with) the caller."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
