"""`/admin/credentials`: provider credentials kept encrypted in the vault (409 without
`security.encryption_key`). Their secrets go in and never come back out."""

from __future__ import annotations

import time
from typing import Any

from gatewise.security.inputs import CredentialPut, CredentialRotate
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import AdminRoute, Args, View, actor_of, record_view, send_json
from gatewise.storage.base import CredentialRecord

_CRED_HIDDEN = ("ciphertext", "previous_ciphertext")


def _cred_view(c: CredentialRecord) -> dict[str, Any]:
    return record_view(c, _CRED_HIDDEN)


async def put_credential(ctx: RequestContext, a: Args) -> None:
    """Store (or replace) a provider credential, encrypted; 409 without
    `security.encryption_key`."""
    require(ctx.identity, "credentials:manage")
    body: CredentialPut = a.body
    rec = await ctx.gateway.admin.put_credential(
        body.name, body.provider, body.secret, actor=actor_of(ctx.identity),
        rotate_every_days=body.rotate_every_days)
    await send_json(ctx, _cred_view(rec), 201)


async def list_credentials(ctx: RequestContext, a: Args) -> None:
    """Stored credentials, never their secrets, with whether rotation is due."""
    require(ctx.identity, "credentials:manage")
    creds = await ctx.gateway.admin.list_credentials()
    now = time.time()
    await send_json(ctx, {"object": "list", "data": [
        {**_cred_view(c), "rotation_due": now >= c.rotated + c.rotate_every_days * 86400}
        for c in creds]})


async def rotate_credential(ctx: RequestContext, a: Args) -> None:
    """Replace a credential's secret, or, without one in the body, rotate it now from its
    configured source (`security.rotation`; the new key is checked live first); 409 without
    `security.encryption_key` or a source, 502 when the source or the live check fails."""
    require(ctx.identity, "credentials:manage")
    body: CredentialRotate = a.body
    rec = await ctx.gateway.admin.rotate_credential(a.path["name"], body.secret,
                                                    actor=actor_of(ctx.identity))
    await send_json(ctx, _cred_view(rec))


_CRED = View(CredentialRecord, drop=_CRED_HIDDEN)

ROUTES = [
    AdminRoute("POST", "/admin/credentials", "credentials:manage", put_credential, _CRED, 201,
               CredentialPut, refusals=(409,)),  # no security.encryption_key
    AdminRoute("GET", "/admin/credentials", "credentials:manage", list_credentials,
               View(CredentialRecord, _CRED_HIDDEN, listed=True,
                    extra={"rotation_due": {"type": "boolean"}})),
    AdminRoute("POST", "/admin/credentials/{name}/rotate", "credentials:manage",
               rotate_credential, _CRED, body=CredentialRotate, refusals=(409, 502)),
]
