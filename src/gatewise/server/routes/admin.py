"""The admin API: keys, teams, budgets, usage, audit and provider credentials.

Every route is one `AdminRoute` in `ADMIN_API`: the permission it needs (the auth-matrix tests
are generated from that table, so a route cannot be added without a permission), the types
of its body and query string (`gatewise.security.inputs`, shared with the CLI), its success
status and the shape of its answer. The dispatcher checks the path parameters, the query
string and the body against those types before the handler runs, so a hostile value is a
400 naming the field and never reaches a store; the OpenAPI document is generated from the
same table (`gatewise.server.openapi`). Team admins and viewers are confined to their own
team: a `team` in the request that is not theirs is a 403. Secrets appear in exactly two
responses (a key's create and rotate) and nowhere else.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec

from gatewise.errors import (
    ForbiddenError,
    InvalidRequestError,
    KeyNotFoundError,
    NotFoundError,
    TeamNotFoundError,
)
from gatewise.pipeline.core import Identity
from gatewise.security.audit import VerifyResult
from gatewise.security.inputs import (
    AuditQuery,
    BudgetCreate,
    BudgetsQuery,
    CredentialPut,
    CredentialRotate,
    Input,
    KeyCreate,
    KeyRotate,
    KeysQuery,
    KeyUpdate,
    Query,
    RecordsQuery,
    TeamCreate,
    TeamUpdate,
    UsageQuery,
    check_path,
    decode_input,
    parse_query,
)
from gatewise.security.rbac import require, require_grant
from gatewise.server.context import RequestContext
from gatewise.server.http import read_body, respond
from gatewise.storage.base import (
    AuditRecord,
    BudgetRecord,
    CredentialRecord,
    KeyRecord,
    TeamRecord,
    UsageRecord,
    UsageRow,
)
from gatewise.storage.usage import parse_group_by, parse_time, usage_table

_encode = msgspec.json.Encoder().encode
# What the server calls: (context, path parameters).
AdminHandler = Callable[[RequestContext, dict[str, str]], Awaitable[None]]

# Body types, re-exported: they were defined here before `gatewise.security.inputs`.
__all__ = ["ADMIN_API", "ADMIN_ROUTES", "AdminRoute", "BudgetCreate", "CredentialPut",
           "CredentialRotate", "KeyCreate", "KeyRotate", "KeyUpdate", "TeamCreate",
           "TeamUpdate", "View", "match_admin"]


@dataclass(frozen=True, slots=True)
class Args:
    """A request's inputs, already checked: path parameters, the decoded body and query."""

    path: dict[str, str]
    body: Any = None
    query: Any = None


RouteHandler = Callable[[RequestContext, Args], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class View:
    """The JSON a route answers with on success, for the OpenAPI document: the fields of
    `record` (a storage dataclass, as `asdict` gives them) less `drop`, plus `extra` (name →
    JSON Schema, always present); `listed` wraps it as `{"object": "list", "data": [...]}`
    (plus `list_extra` beside `data`). `csv` adds the `text/csv` alternative."""

    record: type[Any] | None = None
    drop: tuple[str, ...] = ()
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    listed: bool = False
    list_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    csv: bool = False


def _query_params(ctx: RequestContext) -> dict[str, str]:
    """The last value of each parameter; blank values are kept (and checked like any other)."""
    qs = ctx.scope.get("query_string", b"").decode("latin-1")
    try:
        pairs = parse_qs(qs, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        raise InvalidRequestError("too many query parameters (at most 100)") from None
    return {k: v[-1] for k, v in pairs.items()}


async def _json(ctx: RequestContext, data: Any, status: int = 200) -> None:
    await respond(ctx.send, status, _encode(data), [(b"x-request-id", ctx.request_id.encode())])


_KEY_HIDDEN = ("secret_hash",)
_CRED_HIDDEN = ("ciphertext",)


def _key_view(k: KeyRecord) -> dict[str, Any]:
    d = asdict(k)
    for name in _KEY_HIDDEN:
        d.pop(name, None)
    return d


def _own_team(ident: Identity, team: str | None) -> str | None:
    """Admins see everything; everyone else is pinned to their own team."""
    if ident.permissions is None or ident.can("admin:*"):
        return team
    if team is not None and team != ident.team:
        raise ForbiddenError("this key may only act on its own team")
    if ident.team is None:
        raise ForbiddenError("this key belongs to no team")
    return ident.team


def _actor(ident: Identity) -> str:
    return ident.key_id or "master"


# -- keys ---------------------------------------------------------------------------------

async def create_key(ctx: RequestContext, a: Args) -> None:
    """Create a virtual key; the secret is in this response only."""
    ident = ctx.identity
    body: KeyCreate = a.body
    team = _own_team(ident, body.team)
    require_grant(ident, role=body.role, team=team, permissions=body.permissions)
    gov = ctx.gateway.governance
    secret, rec = await gov.keys.create(
        name=body.name, role=body.role, team=team, user=body.user, models=body.models,
        permissions=body.permissions, expires_in_s=body.expires_in_s, rpm=body.rpm,
        tpm=body.tpm, actor=_actor(ident))
    await _json(ctx, {"key": secret, **_key_view(rec)}, 201)


async def _load_key(ctx: RequestContext, key_id: str) -> KeyRecord:
    rec = await ctx.gateway.governance.stores.governance.get_key(key_id)
    if rec is None:
        raise KeyNotFoundError(f"no key '{key_id}'", param="key_id")
    _own_team(ctx.identity, rec.team)
    return rec


async def list_keys(ctx: RequestContext, a: Args) -> None:
    """List keys (a team's only, for team admins)."""
    q: KeysQuery = a.query
    team = _own_team(ctx.identity, q.team)
    require(ctx.identity, "keys:read", team=team)
    keys = await ctx.gateway.governance.keys.list(team=team)
    await _json(ctx, {"object": "list", "data": [_key_view(k) for k in keys]})


async def get_key(ctx: RequestContext, a: Args) -> None:
    """One key (never its secret)."""
    rec = await _load_key(ctx, a.path["key_id"])
    require(ctx.identity, "keys:read", team=rec.team)
    await _json(ctx, _key_view(rec))


async def update_key(ctx: RequestContext, a: Args) -> None:
    """Change a key's name, role, models, permissions, expiry or limits."""
    rec = await _load_key(ctx, a.path["key_id"])
    _may_manage(ctx.identity, rec)
    body: KeyUpdate = a.body
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if "role" in changes or "permissions" in changes:
        require_grant(ctx.identity, role=changes.get("role", rec.role), team=rec.team,
                      permissions=changes.get("permissions", rec.permissions))
    if "expires_in_s" in changes:
        changes["expires"] = time.time() + changes.pop("expires_in_s")
    new = await ctx.gateway.governance.keys.update(rec.id, actor=_actor(ctx.identity), **changes)
    await _json(ctx, _key_view(new))


def _may_manage(ident: Identity, rec: KeyRecord) -> None:
    """Only keys whose powers the caller holds itself: a team admin rotating its team's admin
    key would otherwise be handed an admin secret."""
    require_grant(ident, role=rec.role, team=rec.team, permissions=rec.permissions)


async def revoke_key(ctx: RequestContext, a: Args) -> None:
    """Revoke a key at once, on every replica."""
    rec = await _load_key(ctx, a.path["key_id"])
    _may_manage(ctx.identity, rec)
    await ctx.gateway.governance.keys.revoke(rec.id, actor=_actor(ctx.identity))
    await _json(ctx, {"id": rec.id, "revoked": True})


async def rotate_key(ctx: RequestContext, a: Args) -> None:
    """A new key with the same scope; the old one stays valid for `overlap_s`."""
    rec = await _load_key(ctx, a.path["key_id"])
    _may_manage(ctx.identity, rec)
    body: KeyRotate = a.body
    secret, new = await ctx.gateway.governance.keys.rotate(
        rec.id, actor=_actor(ctx.identity), overlap_s=body.overlap_s)
    await _json(ctx, {"key": secret, **_key_view(new), "replaces": rec.id}, 201)


# -- teams --------------------------------------------------------------------------------

async def create_team(ctx: RequestContext, a: Args) -> None:
    """Create a team."""
    require(ctx.identity, "teams:manage")
    body: TeamCreate = a.body
    team = await ctx.gateway.governance.teams.create(
        team_id=body.id, name=body.name or body.id, models=body.models, rpm=body.rpm,
        tpm=body.tpm, actor=_actor(ctx.identity))
    await _json(ctx, asdict(team), 201)


async def list_teams(ctx: RequestContext, a: Args) -> None:
    """Every team (the caller's own only, below admin)."""
    ident = ctx.identity
    if ident.can("teams:manage"):
        teams = await ctx.gateway.governance.teams.list()
    else:
        own = _own_team(ident, None)
        require(ident, "usage:read", team=own)
        one = await ctx.gateway.governance.stores.governance.get_team(own or "")
        teams = [one] if one is not None else []
    await _json(ctx, {"object": "list", "data": [asdict(t) for t in teams]})


async def _load_team(ctx: RequestContext, team_id: str) -> TeamRecord:
    team = await ctx.gateway.governance.stores.governance.get_team(team_id)
    if team is None:
        raise TeamNotFoundError(f"no team '{team_id}'", param="team_id")
    return team


async def get_team(ctx: RequestContext, a: Args) -> None:
    """One team."""
    team_id = a.path["team_id"]
    _own_team(ctx.identity, team_id)
    require(ctx.identity, "usage:read", team=team_id)
    await _json(ctx, asdict(await _load_team(ctx, team_id)))


async def update_team(ctx: RequestContext, a: Args) -> None:
    """Change a team's name, models or limits (its keys' cached identities are dropped)."""
    require(ctx.identity, "teams:manage")
    team_id = a.path["team_id"]
    await _load_team(ctx, team_id)
    body: TeamUpdate = a.body
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    team = await ctx.gateway.governance.teams.update(team_id, actor=_actor(ctx.identity),
                                                     **changes)
    await _json(ctx, asdict(team))


async def delete_team(ctx: RequestContext, a: Args) -> None:
    """Delete a team that has no live keys (409 while it has)."""
    require(ctx.identity, "teams:manage")
    team_id = a.path["team_id"]
    await _load_team(ctx, team_id)
    await ctx.gateway.governance.teams.delete(team_id, actor=_actor(ctx.identity))
    await _json(ctx, {"id": team_id, "deleted": True})


# -- budgets ------------------------------------------------------------------------------

async def create_budget(ctx: RequestContext, a: Args) -> None:
    """Create a spending cap for a key, a team or a user."""
    body: BudgetCreate = a.body
    ident = ctx.identity
    if body.scope != "team" and not ident.can("admin:*"):
        # A team admin may cap keys of its own team.
        if body.scope == "key":
            key = await _load_key(ctx, body.subject)
            require(ident, "budgets:manage", team=key.team)
        else:
            raise ForbiddenError("only admins may set user budgets")
    else:
        require(ident, "budgets:manage",
                team=_own_team(ident, body.subject if body.scope == "team" else None))
    rec = await ctx.gateway.governance.create_budget(
        scope=body.scope, subject=body.subject, period=body.period, limit_usd=body.limit_usd,
        limit_tokens=body.limit_tokens, hard=body.hard, actor=_actor(ident))
    await _json(ctx, asdict(rec), 201)


async def list_budgets(ctx: RequestContext, a: Args) -> None:
    """Budgets with this period's spend (the caller's team's only, below admin)."""
    q: BudgetsQuery = a.query
    ident = ctx.identity
    gov = ctx.gateway.governance
    budgets = await gov.stores.governance.list_budgets(q.scope, q.subject)
    if not ident.can("admin:*"):
        own = _own_team(ident, None)
        require(ident, "usage:read", team=own)
        budgets = [b for b in budgets if b.scope == "team" and b.subject == own]
    data = []
    for b in budgets:
        row = asdict(b)
        row["spent"] = await gov.budget_source.spent(gov.stores.counters, b)
        data.append(row)
    await _json(ctx, {"object": "list", "data": data})


async def delete_budget(ctx: RequestContext, a: Args) -> None:
    """Delete a budget (admins only)."""
    require(ctx.identity, "budgets:manage")
    if not ctx.identity.can("admin:*"):
        raise ForbiddenError("only admins may delete budgets")
    budget_id = a.path["budget_id"]
    if not await ctx.gateway.governance.delete_budget(budget_id, actor=_actor(ctx.identity)):
        raise NotFoundError(f"no budget '{budget_id}'", param="budget_id")
    await _json(ctx, {"id": budget_id, "deleted": True})


# -- usage --------------------------------------------------------------------------------

async def usage(ctx: RequestContext, a: Args) -> None:
    """Usage summed by team, key, model, deployment, user, day or outcome (JSON or CSV)."""
    q: UsageQuery = a.query
    ident = ctx.identity
    team = _own_team(ident, q.team)
    require(ident, "usage:read", team=team)
    group_by = parse_group_by(q.group_by)
    since, until = parse_time(q.since, "since"), parse_time(q.until, "until")
    gov = ctx.gateway.governance
    await gov.ledger.flush()
    rows = await gov.stores.ledger.aggregate(group_by, since=since, until=until, team=team,
                                             key_id=q.key)
    if q.format == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows(usage_table(rows, group_by, cost_digits=8))
        await respond(ctx.send, 200, buf.getvalue().encode(),
                      [(b"x-request-id", ctx.request_id.encode()),
                       (b"content-disposition", b'attachment; filename="usage.csv"')],
                      content_type=b"text/csv; charset=utf-8")
        return
    await _json(ctx, {"object": "list", "group_by": group_by,
                      "data": [asdict(r) for r in rows]})


async def usage_records(ctx: RequestContext, a: Args) -> None:
    """The ledger's records, oldest first (at most `limit`)."""
    q: RecordsQuery = a.query
    ident = ctx.identity
    team = _own_team(ident, q.team)
    require(ident, "usage:read", team=team)
    since, until = parse_time(q.since, "since"), parse_time(q.until, "until")
    gov = ctx.gateway.governance
    await gov.ledger.flush()
    recs = await gov.stores.ledger.query(since=since, until=until, limit=q.limit, team=team,
                                         key_id=q.key)
    await _json(ctx, {"object": "list", "data": [asdict(r) for r in recs]})


# -- audit --------------------------------------------------------------------------------

async def audit_list(ctx: RequestContext, a: Args) -> None:
    """Audit records after `since_seq`, in order."""
    require(ctx.identity, "audit:read")
    q: AuditQuery = a.query
    rows = await ctx.gateway.governance.stores.governance.audit(since_seq=q.since_seq,
                                                                limit=q.limit)
    await _json(ctx, {"object": "list", "data": [asdict(r) for r in rows]})


async def audit_verify(ctx: RequestContext, a: Args) -> None:
    """Recompute the audit log's hash chain."""
    require(ctx.identity, "audit:read")
    result = await ctx.gateway.governance.audit.verify()
    await _json(ctx, asdict(result))


# -- provider credentials -----------------------------------------------------------------

def _cred_view(c: Any) -> dict[str, Any]:
    d = asdict(c)
    for name in _CRED_HIDDEN:
        d.pop(name, None)
    return d


async def put_credential(ctx: RequestContext, a: Args) -> None:
    """Store (or replace) a provider credential, encrypted; 409 without
    `security.encryption_key`."""
    require(ctx.identity, "credentials:manage")
    body: CredentialPut = a.body
    vault = ctx.gateway.governance.vault
    rec = await vault.put(body.name, body.provider, body.secret, actor=_actor(ctx.identity),
                          rotate_every_days=body.rotate_every_days)
    await _json(ctx, _cred_view(rec), 201)


async def list_credentials(ctx: RequestContext, a: Args) -> None:
    """Stored credentials, never their secrets, with whether rotation is due."""
    require(ctx.identity, "credentials:manage")
    gov = ctx.gateway.governance
    if gov.config.encryption_key:
        await gov.vault.flush_usage()  # key-usage monitoring shows this replica's latest uses
    creds = await gov.stores.governance.list_credentials()
    now = time.time()
    await _json(ctx, {"object": "list", "data": [
        {**_cred_view(c), "rotation_due": now >= c.rotated + c.rotate_every_days * 86400}
        for c in creds]})


async def rotate_credential(ctx: RequestContext, a: Args) -> None:
    """Replace a credential's secret; 409 without `security.encryption_key`."""
    require(ctx.identity, "credentials:manage")
    body: CredentialRotate = a.body
    rec = await ctx.gateway.governance.vault.rotate(a.path["name"], body.secret,
                                                    actor=_actor(ctx.identity))
    await _json(ctx, _cred_view(rec))


async def run_retention(ctx: RequestContext, a: Args) -> None:
    """Purge usage and audit records past their retention now."""
    require(ctx.identity, "admin:*")
    from gatewise.security.retention import purge

    gov = ctx.gateway.governance
    cfg = ctx.gateway.config.config
    counts = await purge(gov.stores.ledger, gov.stores.governance,
                         usage_days=cfg.accounting.retention_days,
                         audit_days=cfg.security.audit_retention_days,
                         actor=_actor(ctx.identity))
    await _json(ctx, counts)


# -- the route table ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AdminRoute:
    """One admin route. `{name}` in the template is one path segment, checked against
    `gatewise.security.inputs.PATH_PARAMS`; `body` and `query` are the types the request is
    decoded into (None: the route reads none); `status` is its success status; `refusals`
    are the statuses it may answer beyond those every route may (401, 403; 400 for a route
    with inputs, 404 for one with path parameters, 413 for one with a body)."""

    method: str
    template: str
    permission: str
    handler: RouteHandler
    view: View
    status: int = 200
    body: type[Input] | None = None
    query: type[Query] | None = None
    refusals: tuple[int, ...] = ()


_STR = {"type": "string"}
_KEY = View(KeyRecord, drop=_KEY_HIDDEN)
_NEW_KEY = View(KeyRecord, drop=_KEY_HIDDEN,
                extra={"key": {"type": "string", "description": "the secret, shown once"}})
_CRED = View(CredentialRecord, drop=_CRED_HIDDEN)
_DONE = {"id": _STR}

ADMIN_API: list[AdminRoute] = [
    AdminRoute("POST", "/admin/keys", "keys:manage", create_key, _NEW_KEY, 201, KeyCreate,
               refusals=(404,)),  # the key's team does not exist
    AdminRoute("GET", "/admin/keys", "keys:read", list_keys, View(KeyRecord, _KEY_HIDDEN,
                                                                    listed=True),
               query=KeysQuery),
    AdminRoute("GET", "/admin/keys/{key_id}", "keys:read", get_key, _KEY),
    AdminRoute("PATCH", "/admin/keys/{key_id}", "keys:manage", update_key, _KEY,
               body=KeyUpdate, refusals=(409,)),
    AdminRoute("POST", "/admin/keys/{key_id}/revoke", "keys:manage", revoke_key,
               View(extra={**_DONE, "revoked": {"const": True}})),
    AdminRoute("POST", "/admin/keys/{key_id}/rotate", "keys:manage", rotate_key,
               View(KeyRecord, _KEY_HIDDEN, extra={**_NEW_KEY.extra, "replaces": _STR}),
               201, KeyRotate, refusals=(409,)),  # revoked, expired or already rotated
    AdminRoute("POST", "/admin/teams", "teams:manage", create_team, View(TeamRecord), 201,
               TeamCreate, refusals=(409,)),  # the team exists
    AdminRoute("GET", "/admin/teams", "usage:read", list_teams, View(TeamRecord, listed=True)),
    AdminRoute("GET", "/admin/teams/{team_id}", "usage:read", get_team, View(TeamRecord)),
    AdminRoute("PATCH", "/admin/teams/{team_id}", "teams:manage", update_team,
               View(TeamRecord), body=TeamUpdate),
    AdminRoute("DELETE", "/admin/teams/{team_id}", "teams:manage", delete_team,
               View(extra={**_DONE, "deleted": {"const": True}}), refusals=(409,)),
    AdminRoute("POST", "/admin/budgets", "budgets:manage", create_budget, View(BudgetRecord),
               201, BudgetCreate, refusals=(404,)),  # a team admin's key budget: no such key
    AdminRoute("GET", "/admin/budgets", "usage:read", list_budgets,
               View(BudgetRecord, listed=True, extra={"spent": {
                   "type": "object", "additionalProperties": {"type": "number"},
                   "description": "this period's spend per unit (usd, tokens)"}}),
               query=BudgetsQuery),
    AdminRoute("DELETE", "/admin/budgets/{budget_id}", "budgets:manage", delete_budget,
               View(extra={**_DONE, "deleted": {"const": True}})),
    AdminRoute("GET", "/admin/usage", "usage:read", usage,
               View(UsageRow, listed=True, csv=True, list_extra={"group_by": {
                   "type": "array", "items": _STR}}), query=UsageQuery),
    AdminRoute("GET", "/admin/usage/records", "usage:read", usage_records,
               View(UsageRecord, listed=True), query=RecordsQuery),
    AdminRoute("GET", "/admin/audit", "audit:read", audit_list, View(AuditRecord, listed=True),
               query=AuditQuery),
    AdminRoute("GET", "/admin/audit/verify", "audit:read", audit_verify, View(VerifyResult)),
    AdminRoute("POST", "/admin/credentials", "credentials:manage", put_credential, _CRED, 201,
               CredentialPut, refusals=(409,)),  # no security.encryption_key
    AdminRoute("GET", "/admin/credentials", "credentials:manage", list_credentials,
               View(CredentialRecord, _CRED_HIDDEN, listed=True,
                    extra={"rotation_due": {"type": "boolean"}})),
    AdminRoute("POST", "/admin/credentials/{name}/rotate", "credentials:manage",
               rotate_credential, _CRED, body=CredentialRotate, refusals=(409,)),
    AdminRoute("POST", "/admin/retention/run", "admin:*", run_retention,
               View(extra={n: {"type": "integer", "minimum": 0}
                           for n in ("usage", "audit", "truncated")})),
]

# (method, path template, the permission it needs, handler): the table's short form.
ADMIN_ROUTES: list[tuple[str, str, str, RouteHandler]] = [
    (r.method, r.template, r.permission, r.handler) for r in ADMIN_API]


def _dispatcher(route: AdminRoute) -> AdminHandler:
    """Checks the path parameters, then the query string, then the body, and only then runs
    the handler: a refused input touches no store and writes no audit record."""

    async def dispatch(ctx: RequestContext, params: dict[str, str]) -> None:
        check_path(params)
        query = parse_query(route.query, _query_params(ctx)) if route.query else None
        body = None
        if route.body is not None:
            body = decode_input(route.body, await read_body(ctx.scope, ctx.receive,
                                                            ctx.max_body))
        await route.handler(ctx, Args(params, body, query))

    return dispatch


def match_admin(method: str, path: str) -> tuple[AdminHandler, dict[str, str], str] | bool | None:
    """The handler, path parameters and permission; False when the path exists under another
    method. The server checks the permission before the handler reads the body, so an
    unauthorised caller learns nothing from validation errors."""
    parts = path.rstrip("/").split("/")
    other_method = False
    for route in ADMIN_API:
        tparts = route.template.split("/")
        if len(tparts) != len(parts):
            continue
        params: dict[str, str] = {}
        for t, v in zip(tparts, parts, strict=True):
            if t.startswith("{"):
                if not v:
                    break
                params[t[1:-1]] = v
            elif t != v:
                break
        else:
            if route.method == method:
                return _dispatcher(route), params, route.permission
            other_method = True
    return False if other_method else None
