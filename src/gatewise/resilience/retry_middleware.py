"""`RetryMiddleware`: retries one deployment, within the call's deadline and a retry budget.

Runs once per deployment the router chose (inside the router, outside the breaker), so every
attempt is judged by the breaker and each retry goes to the same deployment; choosing another
deployment or alias is the router's and the fallback's business, outside.

- The deadline: `call.deadline` (set here from `RouterConfig.timeout_s` when no outer
  middleware set it) bounds every attempt and every sleep: a wait that would end past the
  deadline is not started, since there would be no time left to use it. For a stream the
  deadline bounds the time to the first chunk; after that the stream runs under the
  transport's read timeouts. An attempt gets a timer of its own (`asyncio.timeout`, about
  5-15 µs with its heap entry) only when it needs one: an HTTP deployment whose transport
  timeouts already end the attempt by the deadline (within `DEADLINE_SLACK_S`) does not,
  which is the default (600 s for both); in-process providers always do.
- Which errors, how long, whether the budget allows: `resilience.retry.RetryPolicy`.
  `retry-after` longer than `max_delay_s` ends retrying at once (the fallback can serve the
  call meanwhile); a spent budget is an incident.
- `available`: the breakers' view. When the breaker opened during this call's attempts, there
  is no point waiting for a retry it would reject.
- Streams are retried only before their first chunk: `ProviderCall` returns a `ChunkStream`
  whose first chunk already arrived, so earlier failures raise here and later ones reach the
  consumer (the server turns them into an OpenAI error event).

Every failure is appended to `call.failures`; every retry is a `retry` call event.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gatewise.config.schema import RouterConfig
from gatewise.errors import ProviderTimeoutError
from gatewise.observability.incidents import RETRY_BUDGET_EXHAUSTED, IncidentRecorder
from gatewise.observability.metrics import Counter
from gatewise.pipeline.core import Call, Handler
from gatewise.providers.base import Target
from gatewise.providers.registry import WIRE_ADAPTERS
from gatewise.resilience.retry import BUDGET, UNAVAILABLE, RetryPolicy

# The transport's own timeouts may end an attempt this much after the deadline before the
# attempt gets a deadline timer of its own.
DEADLINE_SLACK_S = 1.0


def transport_bound(target: Target, stream: bool) -> float | None:
    """Longest an attempt can take before the transport itself gives up, or None when nothing
    bounds it (in-process providers, or timeouts switched off). A stream's first chunk needs
    the response headers (within `read`) and then one chunk (within `read` again)."""
    if target.wire not in WIRE_ADAPTERS:
        return None
    t = target.timeouts
    if stream:
        return None if t.read is None else 2.0 * t.read
    return t.total


def retries_counter() -> Counter:
    return Counter("gatewise_retries_total", "Retries sent to a deployment, by error type.",
                   ("deployment", "error_type"))


class RetryMiddleware:
    def __init__(
        self,
        config: RouterConfig,
        *,
        incidents: IncidentRecorder | None = None,
        retries: Counter | None = None,
        available: Callable[[str], bool] | None = None,
        rng: random.Random | None = None,
        budget_clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        """`rng`, `budget_clock` and `sleep` are injectable for deterministic tests; the
        deadline itself is always `time.perf_counter()`-based, like `Call.deadline`."""
        self.policy = RetryPolicy(config.retry, rng=rng, clock=budget_clock)
        self.timeout_s = config.timeout_s
        self.incidents = incidents if incidents is not None else IncidentRecorder()
        self.retries = retries if retries is not None else retries_counter()
        self._available = available
        self._sleep = sleep

    async def __call__(self, call: Call, next: Handler) -> Any:
        dep = call.deployment
        assert dep is not None, "the router runs before retries"
        deadline = call.deadline
        if deadline is None:
            deadline = call.deadline = call.started + self.timeout_s
        policy = self.policy
        budget = policy.budget(dep.id)
        budget.record_request()
        bound = transport_bound(dep.target, call.stream)
        retry = 0
        while True:
            remaining = deadline - time.perf_counter()
            try:
                if remaining <= 0:
                    raise _deadline_error(call, "before the attempt could start")
                if bound is not None and bound <= remaining + DEADLINE_SLACK_S:
                    return await next(call)
                cm = asyncio.timeout(remaining)
                try:
                    async with cm:
                        return await next(call)
                except TimeoutError:
                    if cm.expired():
                        raise _deadline_error(call, "during the attempt") from None
                    raise
            except Exception as exc:
                call.failures.append(exc)
                plan = policy.plan(exc, retry, deadline - time.perf_counter())
                if isinstance(plan, str):
                    raise
                available = self._available
                if available is not None and not available(dep.id):
                    call.event("retry_skipped", deployment=dep.id, reason=UNAVAILABLE,
                               error_type=type(exc).__name__)
                    raise
                if not budget.try_spend():
                    self.incidents.record(RETRY_BUDGET_EXHAUSTED, call=call, deployment=dep.id,
                                          error_type=type(exc).__name__, reason=BUDGET,
                                          budget_allowed=round(budget.allowed(), 2))
                    raise
                retry += 1
                etype = type(exc).__name__
                self.retries.inc((dep.id, etype))
                call.event("retry", deployment=dep.id, retry=retry, error_type=etype,
                           delay_s=round(plan, 4))
                await self._sleep(plan)


def _deadline_error(call: Call, when: str) -> ProviderTimeoutError:
    dep = call.deployment
    return ProviderTimeoutError(
        f"the call's deadline passed {when}",
        provider=dep.target.provider if dep is not None else "",
        model=dep.target.model if dep is not None else "")
