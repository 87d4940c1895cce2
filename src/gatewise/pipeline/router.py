"""Resolves the requested model to a deployment; everything after it runs per attempt."""

from __future__ import annotations

from typing import Any

from gatewise.pipeline.core import Call, Handler
from gatewise.routing.router import Router


class RouterMiddleware:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, call: Call, next: Handler) -> Any:
        dep = self.router.choose(self.router.candidates(call.alias))
        call.deployment = dep
        call.response_headers["x-gatewise-deployment"] = dep.id
        call.event("route", deployment=dep.id, target=dep.target.ref)
        return await next(call)
