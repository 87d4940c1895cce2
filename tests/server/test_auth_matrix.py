"""The auth matrix, generated from the app's own route table: every non-public endpoint,
called with every kind of bad credential, never answers 2xx.

Credentials tried: none, malformed, a wrong secret for a real key id, a revoked key, a key
revoked on another replica (two servers sharing one database, revocations broadcast through
Redis), an expired key, another team's key (on team-scoped admin routes) and a viewer's key on
admin routes that need more than `usage:read`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.services import REDIS_URL, require_redis
from tests.waiting import wait_until

MASTER = "sk-master-matrix"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    require_redis()
    state = tmp_path_factory.mktemp("matrix")
    prefix = f"gw-matrix-{os.getpid()}-{time.time_ns()}:"
    cfg = {
        "models": {"m": [{"model": "fake/echo"}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"state_dir": str(Path(state)), "redis_url": REDIS_URL,
                    "redis_prefix": prefix},
    }
    with GatewayServer(cfg) as a, GatewayServer(cfg) as b:
        yield a, b


def _post(url: str, path: str, body: Any, key: str = MASTER) -> Any:
    r = httpx.post(f"{url}{path}", json=body, headers={"authorization": f"Bearer {key}"},
                   timeout=30)
    assert r.status_code < 300, r.text
    return r.json()


@pytest.fixture(scope="module")
def creds(servers: tuple[GatewayServer, GatewayServer]) -> dict[str, str]:
    a, b = servers
    url = a.url
    _post(url, "/admin/teams", {"id": "red"})
    _post(url, "/admin/teams", {"id": "blue"})
    valid = _post(url, "/admin/keys", {"name": "valid", "team": "red", "role": "member"})
    revoked = _post(url, "/admin/keys", {"name": "revoked", "team": "red"})
    _post(url, f"/admin/keys/{revoked['id']}/revoke", {})
    # Revoked on replica B after replica A has authenticated (and cached) it.
    elsewhere = _post(url, "/admin/keys", {"name": "elsewhere", "team": "red"})
    assert _chat(url, elsewhere["key"]).status_code == 200
    _post(b.url, f"/admin/keys/{elsewhere['id']}/revoke", {})
    expired = _post(url, "/admin/keys", {"name": "expired", "team": "red", "expires_in_s": 0.2})
    blue_admin = _post(url, "/admin/keys", {"name": "blue-admin", "team": "blue",
                                             "role": "team_admin"})
    viewer = _post(url, "/admin/keys", {"name": "viewer", "team": "red", "role": "viewer"})
    # B's revocation reaches A by broadcast, and the short-lived key expires: wait for both.
    wait_until(lambda: _chat(url, elsewhere["key"]).status_code == 401,
               what="the revocation on replica B reaching replica A")
    wait_until(lambda: _chat(url, expired["key"]).status_code == 401, what="the key expiring")
    kid = valid["id"]
    return {
        "none": "",
        "malformed": "sk-gw-not-a-real-key",
        "wrong_secret": f"sk-gw-{kid}-{'x' * 43}",
        "revoked": revoked["key"],
        "revoked_elsewhere": elsewhere["key"],
        "expired": expired["key"],
        "other_team": blue_admin["key"],
        "viewer": viewer["key"],
        "valid_member": valid["key"],
        "valid_key_id": kid,
    }


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"} if key else {},
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def _routes(app: Any) -> list[tuple[str, str, str | None]]:
    """(method, concrete path, permission) for every authenticated route of the app."""
    from gatewise.server.routes.admin import ADMIN_ROUTES

    public = {"/healthz", "/readyz", "/openapi.json"}
    out: list[tuple[str, str, str | None]] = [
        (m, p, None) for (m, p) in app._routes if p not in public]
    out.append(("GET", "/v1/models/m", None))
    out += [("GET", "/v1/conversations/c", None), ("DELETE", "/v1/conversations/c", None)]
    kb = "/v1/rag/collections"  # knowledge bases: rag:read / rag:write, scoped by ownership
    out += [(m, kb + p, None) for m, p in (
        ("GET", ""), ("POST", ""), ("GET", "/kb"), ("PATCH", "/kb"), ("DELETE", "/kb"),
        ("GET", "/kb/documents"), ("POST", "/kb/documents"), ("GET", "/kb/documents/d"),
        ("DELETE", "/kb/documents/d"), ("POST", "/kb/search"))]
    for method, template, perm, _ in ADMIN_ROUTES:
        path = (template.replace("{key_id}", "KEYID").replace("{team_id}", "red")
                .replace("{budget_id}", "bud_000000000000").replace("{name}", "cred")
                .replace("{cache_key}", "cache:v1:" + "0" * 16 + ":" + "0" * 16 + ":" + "0" * 64)
                .replace("{tag}", "faq"))
        out.append((method, path, perm))
    return out


BAD = ["none", "malformed", "wrong_secret", "revoked", "revoked_elsewhere", "expired"]


def _call(url: str, method: str, path: str, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body: Any = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "input": "x"} \
        if method == "POST" and not path.startswith("/admin/") else {}
    return httpx.request(method, f"{url}{path}", json=body if method != "GET" else None,
                         headers=headers, timeout=30)


def test_bad_credentials_never_get_a_2xx_on_any_route(
        servers: tuple[GatewayServer, GatewayServer], creds: dict[str, str]) -> None:
    a, _ = servers
    routes = _routes(a.app)
    assert len(routes) > 20
    for method, path, _ in routes:
        path = path.replace("KEYID", creds["valid_key_id"])
        for case in BAD:
            r = _call(a.url, method, path, creds[case])
            assert r.status_code == 401, (case, method, path, r.status_code, r.text)
            assert r.json()["error"]["type"] == "authentication_error"
            assert creds[case] == "" or creds[case] not in r.text


def _denied(case: str, method: str, path: str, perm: str) -> bool:
    """Whether `case` must be refused on this admin route."""
    if case == "valid_member":
        return True                       # members generate; they administer nothing
    if case == "viewer":
        return perm != "usage:read"       # viewers read their own team's usage, nothing else
    # A blue team admin: nothing of the red team, nothing beyond team administration.
    touches_red = "/red" in path or "KEYID" in path
    return touches_red or perm in ("teams:manage", "audit:read", "credentials:manage",
                                   "admin:*") or (method == "DELETE" and "budgets" in path)


def test_members_viewers_and_other_teams_cannot_use_admin_routes(
        servers: tuple[GatewayServer, GatewayServer], creds: dict[str, str]) -> None:
    a, _ = servers
    checked = 0
    for method, template, perm in _routes(a.app):
        if perm is None:
            continue
        path = template.replace("KEYID", creds["valid_key_id"])
        for case in ("valid_member", "viewer", "other_team"):
            if not _denied(case, method, template, perm):
                continue
            checked += 1
            r = _call(a.url, method, path, creds[case])
            assert not 200 <= r.status_code < 300, (case, method, path, r.text)
            assert r.status_code == 403, (case, method, path, r.status_code, r.text)
            assert r.json()["error"]["type"] == "permission_error"
    assert checked > 40


def test_team_scoped_reads_show_only_the_callers_team(
        servers: tuple[GatewayServer, GatewayServer], creds: dict[str, str]) -> None:
    a, _ = servers
    keys = httpx.get(f"{a.url}/admin/keys", timeout=30,
                     headers={"authorization": f"Bearer {creds['other_team']}"}).json()["data"]
    assert keys and {k["team"] for k in keys} == {"blue"}
    assert all("secret_hash" not in k for k in keys)
    r = httpx.get(f"{a.url}/admin/keys?team=red", timeout=30,
                  headers={"authorization": f"Bearer {creds['other_team']}"})
    assert r.status_code == 403


def test_a_valid_member_key_can_chat_and_is_in_the_ledger(
        servers: tuple[GatewayServer, GatewayServer], creds: dict[str, str]) -> None:
    a, _ = servers
    r = _chat(a.url, creds["valid_member"])
    assert r.status_code == 200, r.text
    assert float(r.headers["x-gatewise-cost-usd"]) == 0.0
    usage = httpx.get(f"{a.url}/admin/usage?group_by=team,key", timeout=30,
                      headers={"authorization": f"Bearer {MASTER}"}).json()["data"]
    assert any(row["group"]["key"] == creds["valid_key_id"] for row in usage)


def test_a_team_admin_cannot_take_over_a_stronger_key_of_its_own_team(
        servers: tuple[GatewayServer, GatewayServer]) -> None:
    a, _ = servers
    strong = _post(a.url, "/admin/keys", {"name": "red-admin", "team": "red", "role": "admin"})
    lead = _post(a.url, "/admin/keys", {"name": "red-lead", "team": "red",
                                          "role": "team_admin"})
    member = _post(a.url, "/admin/keys", {"name": "red-member", "team": "red"})
    as_lead = {"authorization": f"Bearer {lead['key']}"}
    for path in (f"/admin/keys/{strong['id']}/rotate", f"/admin/keys/{strong['id']}/revoke"):
        r = httpx.post(f"{a.url}{path}", headers=as_lead, json={}, timeout=30)
        assert r.status_code == 403, (path, r.text)
        assert "sk-gw-" not in r.text
    r = httpx.patch(f"{a.url}/admin/keys/{member['id']}", headers=as_lead,
                    json={"role": "admin"}, timeout=30)
    assert r.status_code == 403
    # Within its reach it works: rotating a member key of its team.
    r = httpx.post(f"{a.url}/admin/keys/{member['id']}/rotate", headers=as_lead, json={},
                   timeout=30)
    assert r.status_code == 201 and r.json()["key"].startswith("sk-gw-")
