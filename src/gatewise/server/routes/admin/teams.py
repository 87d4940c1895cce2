"""`/admin/teams`: create, list, read, change and delete teams. Below admin, a caller sees
its own team only."""

from __future__ import annotations

from dataclasses import asdict

import msgspec

from gatewise.security.inputs import TeamCreate, TeamUpdate
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import (
    DONE,
    AdminRoute,
    Args,
    View,
    actor_of,
    own_team,
    send_json,
)
from gatewise.storage.base import TeamRecord


async def create_team(ctx: RequestContext, a: Args) -> None:
    """Create a team."""
    require(ctx.identity, "teams:manage")
    body: TeamCreate = a.body
    team = await ctx.gateway.admin.create_team(
        body.id, name=body.name or body.id, models=body.models, rpm=body.rpm, tpm=body.tpm,
        actor=actor_of(ctx.identity))
    await send_json(ctx, asdict(team), 201)


async def list_teams(ctx: RequestContext, a: Args) -> None:
    """Every team (the caller's own only, below admin)."""
    ident = ctx.identity
    admin = ctx.gateway.admin
    if ident.can("teams:manage"):
        teams = await admin.list_teams()
    else:
        own = own_team(ident, None)
        require(ident, "usage:read", team=own)
        one = await admin.find_team(own or "")
        teams = [one] if one is not None else []
    await send_json(ctx, {"object": "list", "data": [asdict(t) for t in teams]})


async def get_team(ctx: RequestContext, a: Args) -> None:
    """One team."""
    team_id = a.path["team_id"]
    own_team(ctx.identity, team_id)
    require(ctx.identity, "usage:read", team=team_id)
    await send_json(ctx, asdict(await ctx.gateway.admin.get_team(team_id)))


async def update_team(ctx: RequestContext, a: Args) -> None:
    """Change a team's name, models or limits (its keys' cached identities are dropped)."""
    require(ctx.identity, "teams:manage")
    team_id = a.path["team_id"]
    admin = ctx.gateway.admin
    await admin.get_team(team_id)
    body: TeamUpdate = a.body
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    team = await admin.update_team(team_id, actor=actor_of(ctx.identity), **changes)
    await send_json(ctx, asdict(team))


async def delete_team(ctx: RequestContext, a: Args) -> None:
    """Delete a team that has no live keys (409 while it has)."""
    require(ctx.identity, "teams:manage")
    team_id = a.path["team_id"]
    admin = ctx.gateway.admin
    await admin.get_team(team_id)
    await admin.delete_team(team_id, actor=actor_of(ctx.identity))
    await send_json(ctx, {"id": team_id, "deleted": True})


ROUTES = [
    AdminRoute("POST", "/admin/teams", "teams:manage", create_team, View(TeamRecord), 201,
               TeamCreate, refusals=(409,)),  # the team exists
    AdminRoute("GET", "/admin/teams", "usage:read", list_teams, View(TeamRecord, listed=True)),
    AdminRoute("GET", "/admin/teams/{team_id}", "usage:read", get_team, View(TeamRecord)),
    AdminRoute("PATCH", "/admin/teams/{team_id}", "teams:manage", update_team,
               View(TeamRecord), body=TeamUpdate),
    AdminRoute("DELETE", "/admin/teams/{team_id}", "teams:manage", delete_team,
               View(extra={**DONE, "deleted": {"const": True}}), refusals=(409,)),
]
