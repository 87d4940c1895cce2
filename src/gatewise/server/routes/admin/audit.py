"""`/admin/audit`: the hash-chained audit log, and the check that no record of it was
changed or removed."""

from __future__ import annotations

from dataclasses import asdict

from gatewise.security.audit import VerifyResult
from gatewise.security.inputs import AuditQuery
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import AdminRoute, Args, View, send_json
from gatewise.storage.base import AuditRecord


async def audit_list(ctx: RequestContext, a: Args) -> None:
    """Audit records after `since_seq`, in order."""
    require(ctx.identity, "audit:read")
    q: AuditQuery = a.query
    rows = await ctx.gateway.admin.audit(since_seq=q.since_seq, limit=q.limit)
    await send_json(ctx, {"object": "list", "data": [asdict(r) for r in rows]})


async def audit_verify(ctx: RequestContext, a: Args) -> None:
    """Recompute the audit log's hash chain."""
    require(ctx.identity, "audit:read")
    result = await ctx.gateway.admin.verify_audit()
    await send_json(ctx, asdict(result))


ROUTES = [
    AdminRoute("GET", "/admin/audit", "audit:read", audit_list, View(AuditRecord, listed=True),
               query=AuditQuery),
    AdminRoute("GET", "/admin/audit/verify", "audit:read", audit_verify, View(VerifyResult)),
]
