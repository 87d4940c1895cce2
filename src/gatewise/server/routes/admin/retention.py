"""`/admin/retention/run`: purge usage and audit records past their keep periods now,
instead of at the next daily housekeeping run (admins only)."""

from __future__ import annotations

from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import AdminRoute, Args, View, actor_of, send_json


async def run_retention(ctx: RequestContext, a: Args) -> None:
    """Purge usage and audit records past their retention now."""
    require(ctx.identity, "admin:*")
    counts = await ctx.gateway.admin.run_retention(actor=actor_of(ctx.identity))
    await send_json(ctx, counts)


ROUTES = [
    AdminRoute("POST", "/admin/retention/run", "admin:*", run_retention,
               View(extra={n: {"type": "integer", "minimum": 0}
                           for n in ("usage", "audit", "truncated")})),
]
