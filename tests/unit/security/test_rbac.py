"""Roles map to permission sets; team-scoped permissions stay inside the key's team."""

from __future__ import annotations

import pytest

from gatewise.errors import ForbiddenError
from gatewise.pipeline.core import Identity
from gatewise.security.rbac import PERMISSIONS, permissions_for, require, require_grant


def ident(role: str, team: str | None = None, extra: tuple[str, ...] = ()) -> Identity:
    return Identity(tenant=team or "default", team=team, key_id="k1", role=role,
                    permissions=permissions_for(role, extra))


def test_each_role_has_its_documented_permissions() -> None:
    assert permissions_for("admin") == PERMISSIONS
    assert permissions_for("team_admin") == {"llm:generate", "llm:embed", "keys:manage",
                                             "keys:read", "budgets:manage", "usage:read",
                                             "cache:manage", "rag:read", "rag:write"}
    assert permissions_for("member") == {"llm:generate", "llm:embed", "rag:read", "rag:write"}
    assert permissions_for("viewer") == {"usage:read"}


def test_extra_permissions_add_to_the_role_and_are_validated() -> None:
    assert permissions_for("viewer", ["llm:generate", "keys:*"]) == \
        {"usage:read", "llm:generate", "keys:*"}
    with pytest.raises(ValueError, match="unknown permission"):
        permissions_for("member", ["llm:generat"])
    with pytest.raises(ValueError, match="unknown permission"):
        permissions_for("member", ["nope:*"])
    with pytest.raises(ValueError, match="unknown role"):
        permissions_for("owner", [])


def test_a_viewer_reads_usage_only() -> None:
    v = ident("viewer")
    require(v, "usage:read")
    for perm in ("llm:generate", "keys:read", "budgets:manage", "audit:read"):
        with pytest.raises(ForbiddenError, match=perm):
            require(v, perm)


def test_a_member_generates_but_manages_nothing() -> None:
    m = ident("member", "ml")
    require(m, "llm:generate")
    require(m, "llm:embed")
    with pytest.raises(ForbiddenError):
        require(m, "llm:train")
    with pytest.raises(ForbiddenError):
        require(m, "keys:manage", team="ml")


def test_a_team_admin_manages_its_own_team_only() -> None:
    ta = ident("team_admin", "ml")
    require(ta, "keys:manage", team="ml")
    require(ta, "budgets:manage", team="ml")
    require(ta, "usage:read", team="ml")
    with pytest.raises(ForbiddenError, match="'ops'"):
        require(ta, "keys:manage", team="ops")
    with pytest.raises(ForbiddenError, match="every team"):
        require(ta, "usage:read", team=None)
    with pytest.raises(ForbiddenError):
        require(ta, "teams:manage", team="ml")
    with pytest.raises(ForbiddenError):
        require(ta, "credentials:manage")


def test_admins_and_the_master_key_act_on_every_team() -> None:
    for who in (ident("admin", "ml"), Identity(permissions=None)):
        require(who, "keys:manage", team="ops")
        require(who, "audit:read")
        require(who, "credentials:manage")


def test_forbidden_messages_never_name_the_key() -> None:
    with pytest.raises(ForbiddenError) as err:
        require(ident("viewer"), "keys:manage")
    assert "k1" not in str(err.value)


def test_a_team_admin_cannot_mint_keys_beyond_its_own_reach() -> None:
    ta = ident("team_admin", "ml")
    require_grant(ta, role="member", team="ml")
    require_grant(ta, role="team_admin", team="ml")
    with pytest.raises(ForbiddenError):
        require_grant(ta, role="admin", team="ml")
    with pytest.raises(ForbiddenError, match="llm:train"):
        require_grant(ta, role="member", team="ml", permissions=["llm:train"])
    with pytest.raises(ForbiddenError):
        require_grant(ta, role="member", team="ops")
    require_grant(ident("admin"), role="admin", team=None)
