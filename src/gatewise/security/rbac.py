"""Roles and permissions: what a virtual key may do, and over which team.

```
role         permissions                                          scope
admin        admin:* (everything)                                 every team
team_admin   llm:generate llm:embed keys:manage keys:read         its own team only
             budgets:manage usage:read cache:manage
             rag:read rag:write
member       llm:generate llm:embed rag:read rag:write            its own team
viewer       usage:read                                           its own team (or all, if teamless)
```

`rag:read` lists and searches knowledge-base collections (and answers from them); `rag:write`
creates, shares, ingests into and deletes them. A member holds both because an application's
key that answers from its team's documents must also keep them current, and the reach is
bounded by ownership (`gatewise.rag.service`): a key writes only its own team's collections,
reads those and the ones other teams shared with it, and sees nothing else.

A key may carry extra permissions on top of its role's (`KeyRecord.permissions`); they are
validated against the known set so a typo cannot silently grant nothing (or everything).
Team scoping is enforced by `require(..., team=...)`: any identity bound to a team that is not
a global admin acts only on that team; asking for another team, or for every team (`None`),
is Forbidden. Denials name the permission, never the key.
"""

from __future__ import annotations

from collections.abc import Iterable

from gatewise.errors import ForbiddenError
from gatewise.pipeline.core import Identity

PERMISSIONS: frozenset[str] = frozenset({
    "llm:generate", "llm:embed", "llm:train",
    "keys:manage", "keys:read", "teams:manage", "budgets:manage",
    "usage:read", "audit:read", "credentials:manage", "cache:manage", "admin:*",
    "prompts:manage", "prompts:read", "rag:read", "rag:write",
})
_FAMILIES = frozenset(p.split(":", 1)[0] for p in PERMISSIONS)

ROLES: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "team_admin": frozenset({"llm:generate", "llm:embed", "keys:manage", "keys:read",
                             "budgets:manage", "usage:read", "cache:manage",
                             "rag:read", "rag:write"}),
    "member": frozenset({"llm:generate", "llm:embed", "rag:read", "rag:write"}),
    "viewer": frozenset({"usage:read"}),
}

# Permissions whose object belongs to a team (calling a model is scoped by the key itself).
_TEAM_SCOPED_FAMILIES = frozenset({"keys", "budgets", "usage", "teams", "audit", "credentials",
                                   "cache", "rag"})


def validate_permissions(perms: Iterable[str]) -> list[str]:
    """Returns the permissions as a list, or raises ValueError naming the unknown one."""
    out = []
    for p in perms:
        family, _, rest = p.partition(":")
        if p not in PERMISSIONS and not (rest == "*" and family in _FAMILIES):
            raise ValueError(f"unknown permission {p!r} (known: {', '.join(sorted(PERMISSIONS))})")
        out.append(p)
    return out


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    return role


def permissions_for(role: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The role's permissions plus the key's extra ones (both validated)."""
    return ROLES[validate_role(role)] | frozenset(validate_permissions(extra))


def is_superuser(identity: Identity) -> bool:
    perms = identity.permissions
    return perms is None or "admin:*" in perms


def require(identity: Identity, permission: str, *, team: str | None = None) -> None:
    """Raises `ForbiddenError` unless `identity` holds `permission` for `team` (None = every
    team, or a resource that belongs to no team)."""
    if not identity.can(permission):
        raise ForbiddenError(f"permission {permission!r} is required")
    if is_superuser(identity) or identity.team is None:
        return
    if permission.split(":", 1)[0] in _TEAM_SCOPED_FAMILIES and team != identity.team:
        where = "every team" if team is None else f"team {team!r}"
        raise ForbiddenError(f"permission {permission!r} on {where} is outside this key's team")


def require_grant(identity: Identity, *, role: str, team: str | None,
                  permissions: Iterable[str] = ()) -> None:
    """An actor may create (or reshape) a key only within its own reach: it must manage keys
    of that team, and the new key's permissions must be a subset of the actor's own, so a
    team_admin can never mint an admin key or widen a key beyond itself."""
    require(identity, "keys:manage", team=team)
    if is_superuser(identity):
        return
    wanted = permissions_for(role, permissions)
    missing = sorted(p for p in wanted if not identity.can(p))
    if missing:
        raise ForbiddenError(f"cannot grant permissions this key does not hold: {', '.join(missing)}")
