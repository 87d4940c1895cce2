"""`/admin/usage`: the ledger summed by group (JSON or CSV), and its records one by one.
Below admin, a caller reads its own team's usage only."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict

from gatewise.security.inputs import RecordsQuery, UsageQuery
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.http import respond
from gatewise.server.routes.admin.common import STR, AdminRoute, Args, View, own_team, send_json
from gatewise.storage.base import UsageRecord, UsageRow
from gatewise.storage.usage import parse_group_by, parse_time, usage_table


async def usage(ctx: RequestContext, a: Args) -> None:
    """Usage summed by team, key, model, deployment, user, day or outcome (JSON or CSV)."""
    q: UsageQuery = a.query
    ident = ctx.identity
    team = own_team(ident, q.team)
    require(ident, "usage:read", team=team)
    group_by = parse_group_by(q.group_by)
    since, until = parse_time(q.since, "since"), parse_time(q.until, "until")
    rows = await ctx.gateway.admin.usage(group_by, since=since, until=until, team=team,
                                         key_id=q.key)
    if q.format == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows(usage_table(rows, group_by, cost_digits=8))
        await respond(ctx.send, 200, buf.getvalue().encode(),
                      [(b"x-request-id", ctx.request_id.encode()),
                       (b"content-disposition", b'attachment; filename="usage.csv"')],
                      content_type=b"text/csv; charset=utf-8")
        return
    await send_json(ctx, {"object": "list", "group_by": group_by,
                          "data": [asdict(r) for r in rows]})


async def usage_records(ctx: RequestContext, a: Args) -> None:
    """The ledger's records, oldest first (at most `limit`)."""
    q: RecordsQuery = a.query
    ident = ctx.identity
    team = own_team(ident, q.team)
    require(ident, "usage:read", team=team)
    since, until = parse_time(q.since, "since"), parse_time(q.until, "until")
    recs = await ctx.gateway.admin.usage_records(since=since, until=until, limit=q.limit,
                                                 team=team, key_id=q.key)
    await send_json(ctx, {"object": "list", "data": [asdict(r) for r in recs]})


ROUTES = [
    AdminRoute("GET", "/admin/usage", "usage:read", usage,
               View(UsageRow, listed=True, csv=True, list_extra={"group_by": {
                   "type": "array", "items": STR}}), query=UsageQuery),
    AdminRoute("GET", "/admin/usage/records", "usage:read", usage_records,
               View(UsageRecord, listed=True), query=RecordsQuery),
]
