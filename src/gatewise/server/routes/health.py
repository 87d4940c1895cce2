"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import msgspec

from gatewise.server.context import RequestContext
from gatewise.server.http import respond

_encode = msgspec.json.Encoder().encode


async def handle_healthz(ctx: RequestContext) -> None:
    await respond(ctx.send, 200, b'{"status":"ok"}', [])


async def handle_readyz(ctx: RequestContext, warmed: bool, *, draining: bool = False) -> None:
    """Ready when start-up (model warm-up) is done and some deployment can serve; not while
    the server drains for shutdown, so a load balancer stops sending."""
    deps = ctx.gateway.deployments()
    usable = {d.id: (d.problem or "ok") for d in deps}
    ok = warmed and not draining and any(v == "ok" for v in usable.values())
    status = "ready" if ok else "draining" if draining else "not_ready"
    body = _encode({"status": status, "deployments": usable})
    await respond(ctx.send, 200 if ok else 503, body, [])


async def handle_metrics(ctx: RequestContext) -> None:
    await respond(ctx.send, 200, ctx.gateway.metrics.render().encode(), [],
                  content_type=b"text/plain; version=0.0.4; charset=utf-8")
