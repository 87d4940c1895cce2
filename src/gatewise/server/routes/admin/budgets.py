"""`/admin/budgets`: spending caps per key, team or user. A team admin may cap its own team
and its team's keys; user budgets and deletions are for admins."""

from __future__ import annotations

from dataclasses import asdict

from gatewise.errors import ForbiddenError, NotFoundError
from gatewise.security.inputs import BudgetCreate, BudgetsQuery
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
from gatewise.server.routes.admin.keys import load_key
from gatewise.storage.base import BudgetRecord


async def create_budget(ctx: RequestContext, a: Args) -> None:
    """Create a spending cap for a key, a team or a user."""
    body: BudgetCreate = a.body
    ident = ctx.identity
    if body.scope != "team" and not ident.can("admin:*"):
        # A team admin may cap keys of its own team.
        if body.scope == "key":
            key = await load_key(ctx, body.subject)
            require(ident, "budgets:manage", team=key.team)
        else:
            raise ForbiddenError("only admins may set user budgets")
    else:
        require(ident, "budgets:manage",
                team=own_team(ident, body.subject if body.scope == "team" else None))
    rec = await ctx.gateway.admin.create_budget(
        scope=body.scope, subject=body.subject, period=body.period, limit_usd=body.limit_usd,
        limit_tokens=body.limit_tokens, hard=body.hard, actor=actor_of(ident))
    await send_json(ctx, asdict(rec), 201)


async def list_budgets(ctx: RequestContext, a: Args) -> None:
    """Budgets with this period's spend (the caller's team's only, below admin)."""
    q: BudgetsQuery = a.query
    ident = ctx.identity
    admin = ctx.gateway.admin
    budgets = await admin.list_budgets(q.scope, q.subject)
    if not ident.can("admin:*"):
        own = own_team(ident, None)
        require(ident, "usage:read", team=own)
        budgets = [b for b in budgets if b.scope == "team" and b.subject == own]
    data = []
    for b in budgets:
        row = asdict(b)
        row["spent"] = await admin.budget_spent(b)
        data.append(row)
    await send_json(ctx, {"object": "list", "data": data})


async def delete_budget(ctx: RequestContext, a: Args) -> None:
    """Delete a budget (admins only)."""
    require(ctx.identity, "budgets:manage")
    if not ctx.identity.can("admin:*"):
        raise ForbiddenError("only admins may delete budgets")
    budget_id = a.path["budget_id"]
    if not await ctx.gateway.admin.delete_budget(budget_id, actor=actor_of(ctx.identity)):
        raise NotFoundError(f"no budget '{budget_id}'", param="budget_id")
    await send_json(ctx, {"id": budget_id, "deleted": True})


ROUTES = [
    AdminRoute("POST", "/admin/budgets", "budgets:manage", create_budget, View(BudgetRecord),
               201, BudgetCreate, refusals=(404,)),  # a team admin's key budget: no such key
    AdminRoute("GET", "/admin/budgets", "usage:read", list_budgets,
               View(BudgetRecord, listed=True, extra={"spent": {
                   "type": "object", "additionalProperties": {"type": "number"},
                   "description": "this period's spend per unit (usd, tokens)"}}),
               query=BudgetsQuery),
    AdminRoute("DELETE", "/admin/budgets/{budget_id}", "budgets:manage", delete_budget,
               View(extra={**DONE, "deleted": {"const": True}})),
]
