"""`/admin/keys`: create, list, read, change, revoke and rotate virtual keys. A key's secret
is in exactly two answers (create and rotate) and nowhere else."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from gatewise.pipeline.core import Identity
from gatewise.security.inputs import KeyCreate, KeyRotate, KeysQuery, KeyUpdate
from gatewise.security.rbac import require, require_grant
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import (
    DONE,
    STR,
    AdminRoute,
    Args,
    View,
    actor_of,
    own_team,
    record_view,
    send_json,
)
from gatewise.storage.base import KeyRecord

_KEY_HIDDEN = ("secret_hash",)


def _key_view(k: KeyRecord) -> dict[str, Any]:
    return record_view(k, _KEY_HIDDEN)


async def load_key(ctx: RequestContext, key_id: str) -> KeyRecord:
    """The key, when it exists and the caller's team scope reaches it."""
    rec = await ctx.gateway.admin.get_key(key_id)
    own_team(ctx.identity, rec.team)
    return rec


def _may_manage(ident: Identity, rec: KeyRecord) -> None:
    """Only keys whose powers the caller holds itself: a team admin rotating its team's admin
    key would otherwise be handed an admin secret."""
    require_grant(ident, role=rec.role, team=rec.team, permissions=rec.permissions)


async def create_key(ctx: RequestContext, a: Args) -> None:
    """Create a virtual key; the secret is in this response only."""
    ident = ctx.identity
    body: KeyCreate = a.body
    team = own_team(ident, body.team)
    require_grant(ident, role=body.role, team=team, permissions=body.permissions)
    secret, rec = await ctx.gateway.admin.create_key(
        name=body.name, role=body.role, team=team, user=body.user, models=body.models,
        permissions=body.permissions, expires_in_s=body.expires_in_s, rpm=body.rpm,
        tpm=body.tpm, actor=actor_of(ident))
    await send_json(ctx, {"key": secret, **_key_view(rec)}, 201)


async def list_keys(ctx: RequestContext, a: Args) -> None:
    """List keys (a team's only, for team admins)."""
    q: KeysQuery = a.query
    team = own_team(ctx.identity, q.team)
    require(ctx.identity, "keys:read", team=team)
    keys = await ctx.gateway.admin.list_keys(team=team)
    await send_json(ctx, {"object": "list", "data": [_key_view(k) for k in keys]})


async def get_key(ctx: RequestContext, a: Args) -> None:
    """One key (never its secret)."""
    rec = await load_key(ctx, a.path["key_id"])
    require(ctx.identity, "keys:read", team=rec.team)
    await send_json(ctx, _key_view(rec))


async def update_key(ctx: RequestContext, a: Args) -> None:
    """Change a key's name, role, models, permissions, expiry or limits."""
    rec = await load_key(ctx, a.path["key_id"])
    _may_manage(ctx.identity, rec)
    body: KeyUpdate = a.body
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if "role" in changes or "permissions" in changes:
        require_grant(ctx.identity, role=changes.get("role", rec.role), team=rec.team,
                      permissions=changes.get("permissions", rec.permissions))
    if "expires_in_s" in changes:
        changes["expires"] = time.time() + changes.pop("expires_in_s")
    new = await ctx.gateway.admin.update_key(rec.id, actor=actor_of(ctx.identity), **changes)
    await send_json(ctx, _key_view(new))


async def revoke_key(ctx: RequestContext, a: Args) -> None:
    """Revoke a key at once, on every replica."""
    rec = await load_key(ctx, a.path["key_id"])
    _may_manage(ctx.identity, rec)
    await ctx.gateway.admin.revoke_key(rec.id, actor=actor_of(ctx.identity))
    await send_json(ctx, {"id": rec.id, "revoked": True})


async def rotate_key(ctx: RequestContext, a: Args) -> None:
    """A new key with the same scope; the old one stays valid for `overlap_s`."""
    rec = await load_key(ctx, a.path["key_id"])
    _may_manage(ctx.identity, rec)
    body: KeyRotate = a.body
    secret, new = await ctx.gateway.admin.rotate_key(
        rec.id, actor=actor_of(ctx.identity), overlap_s=body.overlap_s)
    await send_json(ctx, {"key": secret, **_key_view(new), "replaces": rec.id}, 201)


_KEY = View(KeyRecord, drop=_KEY_HIDDEN)
_NEW_KEY = View(KeyRecord, drop=_KEY_HIDDEN,
                extra={"key": {"type": "string", "description": "the secret, shown once"}})

ROUTES = [
    AdminRoute("POST", "/admin/keys", "keys:manage", create_key, _NEW_KEY, 201, KeyCreate,
               refusals=(404,)),  # the key's team does not exist
    AdminRoute("GET", "/admin/keys", "keys:read", list_keys, View(KeyRecord, _KEY_HIDDEN,
                                                                    listed=True),
               query=KeysQuery),
    AdminRoute("GET", "/admin/keys/{key_id}", "keys:read", get_key, _KEY),
    AdminRoute("PATCH", "/admin/keys/{key_id}", "keys:manage", update_key, _KEY,
               body=KeyUpdate, refusals=(409,)),
    AdminRoute("POST", "/admin/keys/{key_id}/revoke", "keys:manage", revoke_key,
               View(extra={**DONE, "revoked": {"const": True}})),
    AdminRoute("POST", "/admin/keys/{key_id}/rotate", "keys:manage", rotate_key,
               View(KeyRecord, _KEY_HIDDEN, extra={**_NEW_KEY.extra, "replaces": STR}),
               201, KeyRotate, refusals=(409,)),  # revoked, expired or already rotated
]
