"""Picks the alias and the deployment; everything after it runs once per attempt.

Runs once per alias: a fallback middleware outside it may run it again with another alias.
Alias resolution (rules, steps, complexity) applies only while the call still serves what the
caller asked for (`call.alias == request.model`), so a fallback's alias is never re-routed by
the rule that sent the call away in the first place.

Within an alias, a retryable failure of one deployment (after the retry middleware inside
gave up, or an open breaker) moves to another untried deployment of the same alias, so an
alias with several deployments rides out one of them failing without involving fallbacks.
Non-retryable errors (400s, auth) and an exhausted alias re-raise the last error as it was.

Wiring, outermost first (`Gateway` builds it):

    Telemetry → … → [Orchestration] → RouteResolveMiddleware(router)      once per call
      → Fallback → RouterMiddleware(router, resolve=False) → [Hedge]       once per alias
        → Retry → Breaker → TrackingMiddleware(router.tracker) → ProviderCall  per attempt

with `router.available` set to the breaker's verdict. Without a fallback middleware,
`RouterMiddleware(router)` alone (resolving itself) is the whole routing stage.
"""

from __future__ import annotations

import time
from typing import Any

from gatewise.errors import GatewayError
from gatewise.pipeline.core import Call, Handler
from gatewise.providers.deployment import Deployment
from gatewise.routing.router import Router


class RouterMiddleware:
    def __init__(self, router: Router, *, resolve: bool = True, failover: bool = True) -> None:
        self.router = router
        self.resolve = resolve
        self.failover = failover

    async def __call__(self, call: Call, next: Handler) -> Any:
        router = self.router
        needs = router.needs(call)
        if self.resolve and call.alias == call.request.model:
            router.resolve(call, needs)
        deps = router.candidates(call.alias)
        dep = router.choose(deps, needs)
        if not self.failover or len(deps) == 1:
            _use(call, dep)
            return await next(call)
        tried: set[str] = set()
        while True:
            _use(call, dep)
            try:
                return await next(call)
            except GatewayError as exc:
                deadline = call.deadline
                if not exc.retryable or (deadline is not None and time.perf_counter() >= deadline):
                    raise
                tried.add(dep.id)
                try:
                    nxt = router.choose(deps, needs, exclude=tried)
                except GatewayError:
                    raise exc from None
                call.event("failover", deployment=dep.id, to=nxt.id, error=type(exc).__name__,
                           attempt=call.attempts)
                dep = nxt


def _use(call: Call, dep: Deployment) -> None:
    call.deployment = dep
    call.response_headers["x-gatewise-deployment"] = dep.id
    call.event("route", deployment=dep.id, target=dep.target.ref)


class RouteResolveMiddleware:
    """Alias resolution alone (rules, steps, complexity), for chains that run it once per call
    ahead of the fallback middleware; pair it with `RouterMiddleware(router, resolve=False)`."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.alias == call.request.model:
            self.router.resolve(call, self.router.needs(call))
        return await next(call)
