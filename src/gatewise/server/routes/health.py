"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import msgspec

from gatewise.server.context import RequestContext
from gatewise.server.http import respond

_encode = msgspec.json.Encoder().encode


async def handle_healthz(ctx: RequestContext) -> None:
    """Liveness: the process answers. No I/O and no checks, so a slow provider or store never
    gets a healthy process restarted (that is what readiness is for)."""
    await respond(ctx.send, 200, b'{"status":"ok"}', [])


async def handle_readyz(ctx: RequestContext, warmed: bool, *, draining: bool = False,
                        detail: bool = True) -> None:
    """Readiness from the health monitor's last results (it probes in the background; this
    reads memory only): 503 while warming up, draining for shutdown, with a shared store
    down or no alias that can be served; 200 `ready`, or `degraded` when something is down
    but every alias can still be served. `deployments` keeps its earlier meaning: each
    deployment, `ok` or why it cannot serve. `detail` False: the status alone (an
    unauthenticated caller of a keyed gateway learns no deployment or store names)."""
    gateway = ctx.gateway
    status, doc = gateway.health.readiness(warmed=warmed, draining=draining)
    if not detail:
        await respond(ctx.send, status, _encode({"status": doc["status"]}), [])
        return
    components = doc["components"]
    doc["deployments"] = {
        d.id: d.problem or (f"down: {components[d.id]['error']}"
                            if components.get(d.id, {}).get("status") == "down" else "ok")
        for d in gateway.deployments()}
    await respond(ctx.send, status, _encode(doc), [])


async def handle_metrics(ctx: RequestContext, text: str | None = None) -> None:
    """`text`: the exposition when the app renders it itself (the merged scrape of a
    multi-process server, `observability/worker_metrics.py`)."""
    body = text if text is not None else ctx.gateway.metrics.render()
    await respond(ctx.send, 200, body.encode(), [],
                  content_type=b"text/plain; version=0.0.4; charset=utf-8")
