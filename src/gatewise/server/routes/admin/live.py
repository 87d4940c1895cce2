"""`/admin/requests/recent` and `/admin/security/events`: the web console's live views, read
by polling (`?after=<seq>` answers at once with what came since; the console asks a few
times a second and renders each batch in one animation frame).

Polling rather than a held-open stream: every admin route answers at once (the OpenAPI-driven
fuzzing and the auth matrix call each one), a reader that falls behind gets the newest
records and a `dropped` flag rather than an unbounded backlog, and a browser needs no second
connection kind. Both read bounded rings (`observability.recent`): with Redis configured each
is one ring on Redis that every replica writes (`observability.recent_shared`), so any
replica shows all the traffic and every replica's guard events; without it, this process's
own. The usage ledger and the audit log stay the shared, durable records.

The request log holds the request line's fields (ids, names, numbers; never prompt text or a
key) and is kept only while somebody reads it. Below admin a caller sees its own team's
requests only; security events (guard decisions, denied keys) need `audit:read`, as the
audit log they are also written to does.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from gatewise.security.inputs import Query
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import STR, AdminRoute, Args, View, own_team, send_json
from gatewise.types.limits import TeamId

Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="the last `seq` seen")]
Batch = Annotated[int, msgspec.Meta(ge=1, le=2000)]
EventKind = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$")]


class RecentRequestsQuery(Query):
    after: Seq = 0
    limit: Batch = 500
    team: TeamId | None = None


class SecurityEventsQuery(Query):
    after: Seq = 0
    limit: Batch = 500
    kind: EventKind | None = None


def _page(data: list[dict[str, Any]], next_seq: int, dropped: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "next": next_seq, "dropped": dropped}


async def recent_requests(ctx: RequestContext, a: Args) -> None:
    """The requests finished after `after` (request-line fields): this replica's, or with
    Redis every replica's."""
    q: RecentRequestsQuery = a.query
    team = own_team(ctx.identity, q.team)
    require(ctx.identity, "usage:read", team=team)
    keep = None if team is None else (lambda r: r.get("team") == team)
    data, next_seq, dropped = await ctx.gateway.telemetry.recent.read(q.after, limit=q.limit,
                                                                      keep=keep)
    await send_json(ctx, _page(data, next_seq, dropped))


async def security_events(ctx: RequestContext, a: Args) -> None:
    """Security events (guard decisions, denied keys, blocked budgets) after `after`: this
    replica's, or with Redis every replica's."""
    q: SecurityEventsQuery = a.query
    require(ctx.identity, "audit:read")
    kind = q.kind
    keep = None if kind is None else (lambda r: r.get("kind") == kind)
    data, next_seq, dropped = await ctx.gateway.security.events.recent.read(
        q.after, limit=q.limit, keep=keep)
    await send_json(ctx, _page(data, next_seq, dropped))


_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_REQUEST = {"type": "object", "properties": {
    "seq": _INT, "ts": _NUM, "request_id": STR, "endpoint": STR, "alias": STR, "model": STR,
    "deployment": STR, "status": {"type": "integer"}, "latency_ms": _NUM, "ttft_ms": _NUM,
    "key_id": STR, "team": STR, "prompt_tokens": _INT, "completion_tokens": _INT,
    "cost_usd": _NUM, "cache": STR, "error_type": STR,
    "guards": {"type": "array", "items": STR}}}
_EVENT = {"type": "object", "properties": {
    "seq": _INT, "ts": _NUM, "kind": STR, "action": STR,
    "request_id": {"type": ["string", "null"]}, "tenant": {"type": ["string", "null"]},
    "key_id": {"type": ["string", "null"]}, "detail": {"type": "object"}}}


def _list_of(item: dict[str, Any]) -> View:
    return View(extra={"object": STR, "data": {"type": "array", "items": item}, "next": _INT,
                       "dropped": {"type": "boolean"}})


ROUTES = [
    AdminRoute("GET", "/admin/requests/recent", "usage:read", recent_requests,
               _list_of(_REQUEST), query=RecentRequestsQuery),
    AdminRoute("GET", "/admin/security/events", "audit:read", security_events,
               _list_of(_EVENT), query=SecurityEventsQuery),
]
