"""`HedgeMiddleware`: cut tail latency by racing a slow attempt against a second deployment.

When the attempt has not answered `after_s` after it started (`router.hedge_after_s`, best set
near the deployment's p95), the same request starts on another deployment of the alias; the
first to answer wins and the other is cancelled, which closes its upstream request. For
streams "answered" means the first chunk arrived (the provider call prefetches it), so a
stream whose first byte is late is hedged too, and nothing reaches the client until a winner
is known.

Position: right inside the router (Router → Hedge → Retry → Breaker → Tracking → provider),
because the twin must go to a *different* deployment than the one the router picked, which only
a middleware that sees `call.deployment` can choose (`Router.choose(..., exclude=...)`, with
the router's own capability, breaker and cool-down filters). Each contender runs its own
retries and breaker accounting; when there is no other usable deployment, no hedge is sent.

Failures: an attempt that fails before the delay raises at once (fallback, not hedging, deals
with errors). Once both run, a failure of one waits for the other; when both fail, the first
one's error is raised so fallbacks see the class they expect. Failures of both land on
`call.failures` (the twin shares the list and the event list).

Hedges are extra load, so they are budgeted: every call earns `budget_ratio` of a hedge (up to
`burst` saved), each hedge spends one; with the budget empty the attempt just waits. Counting
calls instead of reading a clock keeps this exact and free.

When the twin wins, its deployment, usage, attempts and timings move to the original call (and
a stream is re-bound to it), so everything outside sees one call served by the winner; headers
say `x-gatewise-hedge: won|lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gatewise.errors import ConfigError, GatewayError
from gatewise.observability.metrics import Counter
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import ChunkStream

if TYPE_CHECKING:
    from gatewise.providers.deployment import Deployment
    from gatewise.routing.router import Router

HEDGE_HEADER = "x-gatewise-hedge"
log = logging.getLogger("gatewise.hedge")


class _Race:
    """One hedged call's shared state between the attempt, the timer and the twin."""

    __slots__ = ("call", "next", "settled", "task", "twin", "twin_task", "won")

    def __init__(self, call: Call, next: Handler, task: asyncio.Task[Any]) -> None:
        self.call = call
        self.next = next
        self.task = task  # the task running the first attempt (the caller's own)
        self.twin: Call | None = None
        self.twin_task: asyncio.Future[Any] | None = None
        self.won = False  # the twin answered first
        self.settled = False  # a winner is known (or the first attempt failed): no more moves


class _Sweep:
    """Every attempt in flight on one event loop, oldest first, behind ONE timer.

    Every attempt has the same delay, so insertion order is deadline order: the timer always
    targets the oldest attempt, and an attempt that answers in time costs a dict insert and
    delete instead of arming and cancelling a timer of its own (cancelled timers pile up in
    the loop's heap; this keeps the fast path near a microsecond).
    """

    __slots__ = ("fire", "inflight", "loop", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[_Race], None]) -> None:
        self.loop = loop
        self.fire = fire
        self.inflight: dict[_Race, float] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, race: _Race, due: float) -> None:
        self.inflight[race] = due
        if self.timer is None:
            self.timer = self.loop.call_at(due, self.tick)

    def tick(self) -> None:
        self.timer = None
        inflight = self.inflight
        now = self.loop.time()
        while inflight:
            race = next(iter(inflight))
            due = inflight[race]
            if due > now:
                self.timer = self.loop.call_at(due, self.tick)
                return
            del inflight[race]
            try:
                self.fire(race)
            except Exception:  # a loop callback must not die half-way through the sweep
                log.exception("starting a hedge failed; the attempt continues alone")


class HedgeMiddleware:
    def __init__(self, router: Router, after_s: float, *, budget_ratio: float = 0.1,
                 burst: float = 10.0, counter: Counter | None = None) -> None:
        if after_s <= 0:
            raise ConfigError("hedge_after_s must be positive", path="router.hedge_after_s")
        self.router = router
        self.after_s = after_s
        self.budget_ratio = budget_ratio
        self.burst = burst
        self._tokens = burst
        # `gatewise_hedges_total{outcome}`: started / won / lost / skipped (no budget or twin).
        self.counter = counter or Counter("gatewise_hedges_total",
                                          "Hedged requests, by outcome.", ("outcome",))
        # One sweep per event loop (a gateway may serve its sync runner's loop and the
        # caller's); entries of closed loops are dropped when a new loop shows up.
        self._sweeps: dict[asyncio.AbstractEventLoop, _Sweep] = {}

    async def __call__(self, call: Call, next: Handler) -> Any:
        """The first attempt runs inline in the caller's task, registered with the loop's
        sweep: a call that answers in time costs no task and no timer of its own. If the twin
        answers first, its done callback cancels this task's attempt, and the cancellation is
        taken back here."""
        if call.deployment is None:
            raise ConfigError("HedgeMiddleware must run inside the router (no deployment chosen)")
        self._tokens = min(self.burst, self._tokens + self.budget_ratio)
        task = asyncio.current_task()
        if call.kind != "chat" or task is None:
            return await next(call)
        loop = task.get_loop()
        sweep = self._sweeps.get(loop) or self._new_sweep(loop)
        race = _Race(call, next, task)
        sweep.add(race, loop.time() + self.after_s)
        inflight = sweep.inflight
        try:
            result = await next(call)
        except asyncio.CancelledError:
            inflight.pop(race, None)
            if race.won and task.uncancel() == 0:  # our own cancel, and nobody else's
                return self._twin_result(race)
            race.settled = True
            if race.twin_task is not None:
                race.twin_task.cancel()
            raise
        except Exception as exc:
            inflight.pop(race, None)
            if race.won:  # an inner layer turned our cancellation into an error
                task.uncancel()
                return self._twin_result(race)
            twin_task = race.twin_task
            if twin_task is None or race.settled:
                raise
            race.settled = True  # the twin's callback must not cancel us any more
            try:
                await asyncio.wait((twin_task,))
            except asyncio.CancelledError:
                twin_task.cancel()
                raise
            if twin_task.cancelled() or twin_task.exception() is not None:
                raise exc from None
            return self._twin_result(race)
        inflight.pop(race, None)
        race.settled = True
        if race.twin_task is not None:
            await self._drop(race.twin_task)
            call.response_headers[HEDGE_HEADER] = "lost"
            self.counter.inc(("lost",))
        return result

    def _new_sweep(self, loop: asyncio.AbstractEventLoop) -> _Sweep:
        for old in [lp for lp in self._sweeps if lp.is_closed()]:
            del self._sweeps[old]
        sweep = self._sweeps[loop] = _Sweep(loop, self._fire)
        return sweep

    def _fire(self, race: _Race) -> None:
        """Timer callback: the attempt is late; start the twin if budget and routing allow."""
        if race.settled:
            return
        dep = race.call.deployment
        twin = self._twin(race.call, dep) if dep is not None else None
        if twin is None:
            return
        race.twin = twin
        race.twin_task = t = asyncio.ensure_future(race.next(twin), loop=race.task.get_loop())
        t.add_done_callback(lambda done: self._twin_done(race, done))

    @staticmethod
    def _twin_done(race: _Race, t: asyncio.Future[Any]) -> None:
        if race.settled or t.cancelled() or t.exception() is not None:
            return
        race.won = race.settled = True
        race.task.cancel()

    def _twin_result(self, race: _Race) -> Any:
        t, twin, call = race.twin_task, race.twin, race.call
        assert t is not None, "only called once the twin answered"
        assert twin is not None, "only called once the twin answered"
        result = t.result()
        self._adopt(call, twin, result)
        call.response_headers[HEDGE_HEADER] = "won"
        self.counter.inc(("won",))
        return result

    @staticmethod
    async def _drop(t: asyncio.Future[Any]) -> None:
        """Cancels a losing twin and waits for it, releasing a stream it may have opened."""
        t.cancel()
        await asyncio.wait((t,))
        if not t.cancelled() and t.exception() is None:
            loser = t.result()
            if isinstance(loser, ChunkStream):
                with contextlib.suppress(Exception):
                    await loser.aclose()

    def _twin(self, call: Call, dep: Deployment) -> Call | None:
        """A copy of the call pinned to another deployment, or None (no budget, no other
        usable deployment, or not enough time left before the deadline)."""
        if self._tokens < 1.0 or (call.deadline is not None
                                  and time.perf_counter() >= call.deadline):
            self.counter.inc(("skipped",))
            return None
        router = self.router
        try:
            second = router.choose(router.candidates(call.alias), router.needs(call),
                                   exclude=(dep.id,))
        except GatewayError:
            self.counter.inc(("skipped",))
            return None
        self._tokens -= 1.0
        twin = Call(call.kind, call.request, call.identity, call.request_id, call.request_headers)
        twin.alias = call.alias
        twin.deadline = call.deadline
        twin.failures = call.failures
        twin.events = call.events
        twin.deployment = second
        self.counter.inc(("started",))
        call.event("hedge", deployment=second.id, after_s=self.after_s, slow=dep.id)
        return twin

    @staticmethod
    def _adopt(call: Call, twin: Call, result: Any) -> None:
        """Moves what the winning twin measured onto the call everyone outside holds."""
        offset = twin.started - call.started
        call.deployment = twin.deployment
        call.usage = twin.usage
        call.attempts += twin.attempts
        call.upstream_s += offset + twin.upstream_s
        if twin.ttft is not None:
            call.ttft = offset + twin.ttft
        call.response_headers.update(twin.response_headers)
        if twin.deployment is not None:
            call.response_headers["x-gatewise-deployment"] = twin.deployment.id
        if isinstance(result, ChunkStream):
            result.call = call
