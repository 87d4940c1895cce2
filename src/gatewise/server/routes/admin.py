"""The admin API: keys, teams, budgets, usage, audit and provider credentials.

Every route names the permission it needs in `ADMIN_ROUTES` (the auth-matrix tests are
generated from that table, so a route cannot be added without a permission). Team admins and
viewers are confined to their own team: a `team` in the request that is not theirs is a 403.
Secrets appear in exactly two responses (a key's create and rotate) and nowhere else.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Literal
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
from gatewise.security.rbac import require, require_grant
from gatewise.server.context import RequestContext
from gatewise.server.http import read_body, respond
from gatewise.storage.base import KeyRecord, TeamRecord
from gatewise.storage.usage import parse_group_by, parse_time, usage_table

_encode = msgspec.json.Encoder().encode
AdminHandler = Callable[[RequestContext, dict[str, str]], Awaitable[None]]


# -- request bodies: unknown fields are errors, like the config ----------------------------

class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class KeyCreate(_Body):
    name: str
    role: str = "member"
    team: str | None = None
    user: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    permissions: list[str] = msgspec.field(default_factory=list)
    expires_in_s: float | None = None
    rpm: int | None = None
    tpm: int | None = None


class KeyUpdate(_Body):
    name: str | None = None
    role: str | None = None
    models: list[str] | None = None
    permissions: list[str] | None = None
    expires_in_s: float | None = None
    rpm: int | None = None
    tpm: int | None = None


class KeyRotate(_Body):
    overlap_s: float = 86400.0


class TeamCreate(_Body):
    id: str
    name: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    rpm: int | None = None
    tpm: int | None = None


class TeamUpdate(_Body):
    name: str | None = None
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None


class BudgetCreate(_Body):
    scope: Literal["key", "team", "user"]
    subject: str
    period: Literal["day", "month", "total"] = "month"
    limit_usd: float | None = None
    limit_tokens: int | None = None
    hard: bool = True


class CredentialPut(_Body):
    name: str
    provider: str
    secret: str
    rotate_every_days: int | None = None


class CredentialRotate(_Body):
    secret: str


async def _body(ctx: RequestContext, kind: type[Any]) -> Any:
    raw = await read_body(ctx.scope, ctx.receive, ctx.max_body)
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rsplit("`$.", 1)[1].rstrip("`") if "`$." in text else None
        raise InvalidRequestError(text.split(" - at ")[0], param=param) from None
    except msgspec.DecodeError:
        raise InvalidRequestError("the body is not valid JSON") from None


def _query(ctx: RequestContext) -> dict[str, str]:
    qs = ctx.scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(qs).items()}


async def _json(ctx: RequestContext, data: Any, status: int = 200) -> None:
    await respond(ctx.send, status, _encode(data), [(b"x-request-id", ctx.request_id.encode())])


def _key_view(k: KeyRecord) -> dict[str, Any]:
    d = asdict(k)
    d.pop("secret_hash", None)
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

async def create_key(ctx: RequestContext, p: dict[str, str]) -> None:
    ident = ctx.identity
    body: KeyCreate = await _body(ctx, KeyCreate)
    team = _own_team(ident, body.team)
    require_grant(ident, role=body.role, team=team, permissions=body.permissions)
    gov = ctx.gateway.governance
    expires = time.time() + body.expires_in_s if body.expires_in_s else None
    secret, rec = await gov.keys.create(
        name=body.name, role=body.role, team=team, user=body.user, models=body.models,
        permissions=body.permissions, expires=expires, rpm=body.rpm, tpm=body.tpm,
        actor=_actor(ident))
    await _json(ctx, {"key": secret, **_key_view(rec)}, 201)


async def _load_key(ctx: RequestContext, key_id: str) -> KeyRecord:
    rec = await ctx.gateway.governance.stores.governance.get_key(key_id)
    if rec is None:
        raise KeyNotFoundError(f"no key '{key_id}'", param="key_id")
    _own_team(ctx.identity, rec.team)
    return rec


async def list_keys(ctx: RequestContext, p: dict[str, str]) -> None:
    team = _own_team(ctx.identity, _query(ctx).get("team"))
    require(ctx.identity, "keys:read", team=team)
    keys = await ctx.gateway.governance.keys.list(team=team)
    await _json(ctx, {"object": "list", "data": [_key_view(k) for k in keys]})


async def get_key(ctx: RequestContext, p: dict[str, str]) -> None:
    rec = await _load_key(ctx, p["key_id"])
    require(ctx.identity, "keys:read", team=rec.team)
    await _json(ctx, _key_view(rec))


async def update_key(ctx: RequestContext, p: dict[str, str]) -> None:
    rec = await _load_key(ctx, p["key_id"])
    _may_manage(ctx.identity, rec)
    body: KeyUpdate = await _body(ctx, KeyUpdate)
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


async def revoke_key(ctx: RequestContext, p: dict[str, str]) -> None:
    rec = await _load_key(ctx, p["key_id"])
    _may_manage(ctx.identity, rec)
    await ctx.gateway.governance.keys.revoke(rec.id, actor=_actor(ctx.identity))
    await _json(ctx, {"id": rec.id, "revoked": True})


async def rotate_key(ctx: RequestContext, p: dict[str, str]) -> None:
    rec = await _load_key(ctx, p["key_id"])
    _may_manage(ctx.identity, rec)
    body: KeyRotate = await _body(ctx, KeyRotate)
    secret, new = await ctx.gateway.governance.keys.rotate(
        rec.id, actor=_actor(ctx.identity), overlap_s=body.overlap_s)
    await _json(ctx, {"key": secret, **_key_view(new), "replaces": rec.id}, 201)


# -- teams --------------------------------------------------------------------------------

async def create_team(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "teams:manage")
    body: TeamCreate = await _body(ctx, TeamCreate)
    team = await ctx.gateway.governance.teams.create(
        team_id=body.id, name=body.name or body.id, models=body.models, rpm=body.rpm,
        tpm=body.tpm, actor=_actor(ctx.identity))
    await _json(ctx, asdict(team), 201)


async def list_teams(ctx: RequestContext, p: dict[str, str]) -> None:
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


async def get_team(ctx: RequestContext, p: dict[str, str]) -> None:
    _own_team(ctx.identity, p["team_id"])
    require(ctx.identity, "usage:read", team=p["team_id"])
    await _json(ctx, asdict(await _load_team(ctx, p["team_id"])))


async def update_team(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "teams:manage")
    await _load_team(ctx, p["team_id"])
    body: TeamUpdate = await _body(ctx, TeamUpdate)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    team = await ctx.gateway.governance.teams.update(p["team_id"], actor=_actor(ctx.identity),
                                                     **changes)
    await _json(ctx, asdict(team))


async def delete_team(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "teams:manage")
    await _load_team(ctx, p["team_id"])
    await ctx.gateway.governance.teams.delete(p["team_id"], actor=_actor(ctx.identity))
    await _json(ctx, {"id": p["team_id"], "deleted": True})


# -- budgets ------------------------------------------------------------------------------

async def create_budget(ctx: RequestContext, p: dict[str, str]) -> None:
    body: BudgetCreate = await _body(ctx, BudgetCreate)
    ident = ctx.identity
    if body.limit_usd is None and body.limit_tokens is None:
        raise InvalidRequestError("give limit_usd or limit_tokens", param="limit_usd")
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


async def list_budgets(ctx: RequestContext, p: dict[str, str]) -> None:
    q = _query(ctx)
    ident = ctx.identity
    gov = ctx.gateway.governance
    budgets = await gov.stores.governance.list_budgets(q.get("scope"), q.get("subject"))
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


async def delete_budget(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "budgets:manage")
    if not ctx.identity.can("admin:*"):
        raise ForbiddenError("only admins may delete budgets")
    if not await ctx.gateway.governance.delete_budget(p["budget_id"],
                                                      actor=_actor(ctx.identity)):
        raise NotFoundError(f"no budget '{p['budget_id']}'")
    await _json(ctx, {"id": p["budget_id"], "deleted": True})


# -- usage --------------------------------------------------------------------------------

async def usage(ctx: RequestContext, p: dict[str, str]) -> None:
    q = _query(ctx)
    ident = ctx.identity
    team = _own_team(ident, q.get("team"))
    require(ident, "usage:read", team=team)
    group_by = parse_group_by(q.get("group_by") or "team,model,day")
    gov = ctx.gateway.governance
    await gov.ledger.flush()
    rows = await gov.stores.ledger.aggregate(
        group_by, since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"), team=team, key_id=q.get("key"))
    if q.get("format") == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows(usage_table(rows, group_by, cost_digits=8))
        await respond(ctx.send, 200, buf.getvalue().encode(),
                      [(b"x-request-id", ctx.request_id.encode()),
                       (b"content-disposition", b'attachment; filename="usage.csv"')],
                      content_type=b"text/csv; charset=utf-8")
        return
    await _json(ctx, {"object": "list", "group_by": group_by,
                      "data": [asdict(r) for r in rows]})


async def usage_records(ctx: RequestContext, p: dict[str, str]) -> None:
    q = _query(ctx)
    ident = ctx.identity
    team = _own_team(ident, q.get("team"))
    require(ident, "usage:read", team=team)
    try:
        limit = min(10_000, int(q.get("limit", "1000")))
    except ValueError:
        raise InvalidRequestError("'limit' must be an integer", param="limit") from None
    gov = ctx.gateway.governance
    await gov.ledger.flush()
    recs = await gov.stores.ledger.query(since=parse_time(q.get("since"), "since"),
                                         until=parse_time(q.get("until"), "until"), limit=limit,
                                         team=team, key_id=q.get("key"))
    await _json(ctx, {"object": "list", "data": [asdict(r) for r in recs]})


# -- audit --------------------------------------------------------------------------------

async def audit_list(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "audit:read")
    q = _query(ctx)
    try:
        since, limit = int(q.get("since_seq", "0")), min(10_000, int(q.get("limit", "1000")))
    except ValueError:
        raise InvalidRequestError("since_seq and limit must be integers") from None
    rows = await ctx.gateway.governance.stores.governance.audit(since_seq=since, limit=limit)
    await _json(ctx, {"object": "list", "data": [asdict(r) for r in rows]})


async def audit_verify(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "audit:read")
    result = await ctx.gateway.governance.audit.verify()
    await _json(ctx, asdict(result))


# -- provider credentials -----------------------------------------------------------------

def _cred_view(c: Any) -> dict[str, Any]:
    d = asdict(c)
    d.pop("ciphertext", None)
    return d


async def put_credential(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "credentials:manage")
    body: CredentialPut = await _body(ctx, CredentialPut)
    vault = ctx.gateway.governance.vault
    rec = await vault.put(body.name, body.provider, body.secret, actor=_actor(ctx.identity),
                          rotate_every_days=body.rotate_every_days)
    await _json(ctx, _cred_view(rec), 201)


async def list_credentials(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "credentials:manage")
    gov = ctx.gateway.governance
    if gov.config.encryption_key:
        await gov.vault.flush_usage()  # key-usage monitoring shows this replica's latest uses
    creds = await gov.stores.governance.list_credentials()
    now = time.time()
    await _json(ctx, {"object": "list", "data": [
        {**_cred_view(c), "rotation_due": now >= c.rotated + c.rotate_every_days * 86400}
        for c in creds]})


async def rotate_credential(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "credentials:manage")
    body: CredentialRotate = await _body(ctx, CredentialRotate)
    rec = await ctx.gateway.governance.vault.rotate(p["name"], body.secret,
                                                    actor=_actor(ctx.identity))
    await _json(ctx, _cred_view(rec))


async def run_retention(ctx: RequestContext, p: dict[str, str]) -> None:
    require(ctx.identity, "admin:*")
    from gatewise.security.retention import purge

    gov = ctx.gateway.governance
    cfg = ctx.gateway.config.config
    counts = await purge(gov.stores.ledger, gov.stores.governance,
                         usage_days=cfg.accounting.retention_days,
                         audit_days=cfg.security.audit_retention_days,
                         actor=_actor(ctx.identity))
    await _json(ctx, counts)


# (method, path template, the permission it needs, handler). `{name}` is one path segment.
ADMIN_ROUTES: list[tuple[str, str, str, AdminHandler]] = [
    ("POST", "/admin/keys", "keys:manage", create_key),
    ("GET", "/admin/keys", "keys:read", list_keys),
    ("GET", "/admin/keys/{key_id}", "keys:read", get_key),
    ("PATCH", "/admin/keys/{key_id}", "keys:manage", update_key),
    ("POST", "/admin/keys/{key_id}/revoke", "keys:manage", revoke_key),
    ("POST", "/admin/keys/{key_id}/rotate", "keys:manage", rotate_key),
    ("POST", "/admin/teams", "teams:manage", create_team),
    ("GET", "/admin/teams", "usage:read", list_teams),
    ("GET", "/admin/teams/{team_id}", "usage:read", get_team),
    ("PATCH", "/admin/teams/{team_id}", "teams:manage", update_team),
    ("DELETE", "/admin/teams/{team_id}", "teams:manage", delete_team),
    ("POST", "/admin/budgets", "budgets:manage", create_budget),
    ("GET", "/admin/budgets", "usage:read", list_budgets),
    ("DELETE", "/admin/budgets/{budget_id}", "budgets:manage", delete_budget),
    ("GET", "/admin/usage", "usage:read", usage),
    ("GET", "/admin/usage/records", "usage:read", usage_records),
    ("GET", "/admin/audit", "audit:read", audit_list),
    ("GET", "/admin/audit/verify", "audit:read", audit_verify),
    ("POST", "/admin/credentials", "credentials:manage", put_credential),
    ("GET", "/admin/credentials", "credentials:manage", list_credentials),
    ("POST", "/admin/credentials/{name}/rotate", "credentials:manage", rotate_credential),
    ("POST", "/admin/retention/run", "admin:*", run_retention),
]


def match_admin(method: str, path: str) -> tuple[AdminHandler, dict[str, str], str] | bool | None:
    """The handler, path parameters and permission; False when the path exists under another
    method. The server checks the permission before the handler reads the body, so an
    unauthorised caller learns nothing from validation errors."""
    parts = path.rstrip("/").split("/")
    other_method = False
    for m, template, perm, handler in ADMIN_ROUTES:
        tparts = template.split("/")
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
            if m == method:
                return handler, params, perm
            other_method = True
    return False if other_method else None
