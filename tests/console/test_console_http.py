"""The web console over HTTP: its static files (content types, caching, gzip, the CSP, paths
that try to leave the folder) and its session (cookie flags, the CSRF token every cookie
request needs, a key winning over a cookie, sign-out, and a revoked key ending the session),
plus the two admin read routes its live pages poll. One gateway, served over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import UnauthorizedError
from gatewise.gateway import Gateway
from gatewise.server.console.assets import STATIC
from gatewise.server.console.sessions import ConsoleSessions
from tests.fakes.gateway import GatewayServer
from tests.fakes.services import drop_redis_prefix, require_redis
from tests.waiting import wait_until

MASTER = "sk-master-console-http"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
CONFIG: dict[str, Any] = {"models": {"echo": [{"model": "fake/echo"}]},
                          "server": {"master_key": MASTER, "warmup": False}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    state = str(tmp_path_factory.mktemp("console-http"))
    with GatewayServer({**CONFIG, "storage": {"state_dir": state}}) as srv:
        yield srv


def _admin(gw: GatewayServer, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, gw.url + path, json=body, timeout=30,
                      headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code < 300, r.text
    return r.json()


@pytest.fixture(scope="module")
def keys(gw: GatewayServer) -> dict[str, dict[str, Any]]:
    _admin(gw, "POST", "/admin/teams", {"id": "red"})
    _admin(gw, "POST", "/admin/teams", {"id": "blue"})
    return {name: _admin(gw, "POST", "/admin/keys", {"name": name, "team": team, "role": role})
            for name, team, role in (("viewer", "red", "viewer"), ("member", "red", "member"),
                                     ("lead", "blue", "team_admin"))}


SignIn = Callable[[str], tuple[httpx.Client, str, httpx.Response]]


@pytest.fixture
def sign_in(gw: GatewayServer) -> Iterator[SignIn]:
    """Signs a key in with a client of its own (a browser): (client, CSRF token, answer)."""
    clients: list[httpx.Client] = []

    def go(key: str) -> tuple[httpx.Client, str, httpx.Response]:
        client = httpx.Client(base_url=gw.url, timeout=30)
        clients.append(client)
        r = client.post("/console/session", json={"key": key})
        assert r.status_code == 201, r.text
        return client, r.json()["csrf_token"], r

    yield go
    for c in clients:
        c.close()


def _raw_get(gw: GatewayServer, raw_path: str) -> int:
    """A GET with the path sent byte for byte (httpx would normalise `..`)."""
    host = urlsplit(gw.url)
    conn = http.client.HTTPConnection(host.hostname or "", host.port, timeout=30)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        resp.close()
        return resp.status
    finally:
        conn.close()


# -- static files ---------------------------------------------------------------------------

def test_the_page_is_served_with_a_strict_content_security_policy(gw: GatewayServer) -> None:
    for path in ("/console", "/console/"):
        r = httpx.get(gw.url + path, timeout=30)
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert '<script type="module" src="/console/app.js">' in r.text


def test_no_console_file_has_inline_script_or_style() -> None:
    """The CSP forbids them; a page that relied on one would silently break."""
    for path in STATIC.rglob("*.html"):
        html = path.read_text()
        assert "<style" not in html and " style=" not in html, path
        assert "<script>" not in html and "<script type=\"module\">" not in html, path
        assert "onclick=" not in html and "onload=" not in html, path
    for path in STATIC.glob("**/*.js"):
        if "vendor" in path.parts:
            continue
        text = path.read_text()
        assert "innerHTML" not in text and "eval(" not in text, path


@pytest.mark.parametrize(("path", "ctype"), [
    ("/console/app.js", "text/javascript; charset=utf-8"),
    ("/console/pages/keys.js", "text/javascript; charset=utf-8"),
    ("/console/console.css", "text/css; charset=utf-8"),
    ("/console/vendor/uplot-1.6.31.min.js", "text/javascript; charset=utf-8"),
    ("/console/vendor/LICENSE.uplot.txt", "text/plain; charset=utf-8"),
])
def test_files_have_their_content_type(gw: GatewayServer, path: str, ctype: str) -> None:
    r = httpx.get(gw.url + path, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == ctype
    assert r.headers["x-content-type-options"] == "nosniff"


def test_gzip_etag_and_caching(gw: GatewayServer) -> None:
    plain = httpx.get(gw.url + "/console/app.js", headers={"accept-encoding": "identity"},
                      timeout=30)
    assert "content-encoding" not in plain.headers
    with httpx.stream("GET", gw.url + "/console/app.js", headers={"accept-encoding": "gzip"},
                      timeout=30) as raw:
        zipped = b"".join(raw.iter_raw())  # the bytes as sent, not decoded
        assert raw.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped) == plain.content
    assert len(zipped) < len(plain.content)
    assert plain.headers["cache-control"] == "no-cache"
    etag = plain.headers["etag"]
    again = httpx.get(gw.url + "/console/app.js", headers={"if-none-match": etag}, timeout=30)
    assert again.status_code == 304 and again.content == b""
    vendor = httpx.get(gw.url + "/console/vendor/uplot-1.6.31.min.js", timeout=30)
    assert "immutable" in vendor.headers["cache-control"]
    head = httpx.head(gw.url + "/console/app.js", timeout=30)
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize("raw_path", [
    "/console/../pyproject.toml",
    "/console/../../server/routes/console.py",
    "/console/pages/../../console/app.js",
    "/console/%2e%2e/sessions.py",
    "/console/pages%2fkeys.js",
    "/console/pages%2Fkeys.js",
    "/console/..%5csessions.py",
    "/console/app.js%00.png",
    "/console/./app.js",
])
def test_paths_that_try_to_leave_the_folder_are_refused(gw: GatewayServer,
                                                         raw_path: str) -> None:
    assert _raw_get(gw, raw_path) == 400


def test_only_files_of_the_static_folder_exist(gw: GatewayServer) -> None:
    for path in ("/console/sessions.py", "/console/assets.py", "/console/nope.js",
                 "/console/static/app.js", "/consolex", "/console/pages/"):
        assert _raw_get(gw, path) == 404, path
    r = httpx.post(gw.url + "/console/app.js", timeout=30)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"]["code"] == "method_not_allowed"


# -- the session ------------------------------------------------------------------------------

def test_sign_in_sets_a_strict_http_only_cookie_and_returns_the_csrf_token(
        gw: GatewayServer, sign_in: SignIn) -> None:
    client, csrf, r = sign_in(MASTER)
    cookie = r.headers["set-cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0].startswith("gw_console=") and len(parts[0]) > 40
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(parts)
    assert "Max-Age=3600" in parts
    assert "Secure" not in parts  # plain http here; https requests get it
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["role"] == "admin" and body["permissions"] == ["admin:*"]
    assert csrf and csrf not in cookie and MASTER not in r.text
    me = client.get("/console/session").json()
    assert me["signed_in"] and me["csrf_token"] == csrf and me["key_id"] == "master"


def test_behind_a_tls_proxy_on_the_same_host_the_cookie_is_secure(gw: GatewayServer) -> None:
    """The proxy says the client spoke https (`X-Forwarded-Proto`, trusted from 127.0.0.1 as
    uvicorn trusts it); a request without the header stays plain http."""
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        proxied = client.post("/console/session", json={"key": MASTER},
                              headers={"x-forwarded-proto": "https"})
        plain = client.post("/console/session", json={"key": MASTER})
    assert proxied.status_code == plain.status_code == 201
    assert "Secure" in [p.strip() for p in proxied.headers["set-cookie"].split(";")]
    assert "Secure" not in [p.strip() for p in plain.headers["set-cookie"].split(";")]


def test_bad_sign_ins_get_no_cookie(gw: GatewayServer,
                                    keys: dict[str, dict[str, Any]]) -> None:
    url = gw.url + "/console/session"
    bad = [
        httpx.post(url, json={"key": "sk-gw-nope"}, timeout=30),
        httpx.post(url, json={"key": f"sk-gw-{keys['member']['id']}-{'x' * 43}"}, timeout=30),
        httpx.post(url, json={"key": ""}, timeout=30),
    ]
    for r in bad:
        assert r.status_code == 401 and "set-cookie" not in r.headers, r.text
        assert r.json()["error"]["type"] == "authentication_error"
    # A form post (no JSON) and another origin are refused before any key is checked.
    form = httpx.post(url, data={"key": MASTER}, timeout=30)
    assert form.status_code == 400 and "set-cookie" not in form.headers
    foreign = httpx.post(url, json={"key": MASTER}, headers={"origin": "https://evil.example"},
                         timeout=30)
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    junk = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"},
                      timeout=30)
    assert junk.status_code == 400


def test_the_cookie_works_only_with_the_sessions_csrf_token(gw: GatewayServer, sign_in: SignIn) -> None:
    client, csrf, _ = sign_in(MASTER)
    without = client.get("/admin/keys")
    assert without.status_code == 401 and "x-csrf-token" in without.json()["error"]["message"]
    wrong = client.get("/admin/keys", headers={"x-csrf-token": "x" * 43})
    assert wrong.status_code == 401
    _, other_csrf, _ = sign_in(MASTER)
    assert client.get("/admin/keys", headers={"x-csrf-token": other_csrf}).status_code == 401
    assert client.get("/admin/keys", headers={"x-csrf-token": csrf}).status_code == 200
    post = client.post("/admin/teams", json={"id": "green"})
    assert post.status_code == 401
    assert client.post("/admin/teams", json={"id": "green"},
                       headers={"x-csrf-token": csrf}).status_code == 201
    chat = client.post("/v1/chat/completions", headers={"x-csrf-token": csrf},
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200 and "hi" in chat.json()["choices"][0]["message"]["content"]


def test_a_key_in_the_request_wins_over_the_cookie(
        gw: GatewayServer, sign_in: SignIn, keys: dict[str, dict[str, Any]]) -> None:
    client, csrf, _ = sign_in(MASTER)  # an admin session ...
    viewer = {"authorization": f"Bearer {keys['viewer']['key']}", "x-csrf-token": csrf}
    assert client.get("/admin/keys", headers=viewer).status_code == 403  # ... acts as the key
    assert client.get("/admin/usage", headers=viewer).status_code == 200
    bad = client.get("/admin/keys", headers={"authorization": "Bearer sk-gw-wrong",
                                             "x-csrf-token": csrf})
    assert bad.status_code == 401  # never falls back to the session
    basic = client.get("/admin/keys", headers={"authorization": "Basic eDp5",
                                               "x-csrf-token": csrf})
    assert basic.status_code == 401


def test_a_viewer_session_reads_usage_but_manages_no_keys(
        gw: GatewayServer, sign_in: SignIn, keys: dict[str, dict[str, Any]]) -> None:
    client, csrf, r = sign_in(keys["viewer"]["key"])
    assert r.json()["permissions"] == ["usage:read"] and r.json()["team"] == "red"
    h = {"x-csrf-token": csrf}
    assert client.get("/admin/keys", headers=h).status_code == 403
    assert client.post("/admin/keys", json={"name": "x", "team": "red"},
                       headers=h).status_code == 403
    assert client.get("/admin/usage", headers=h).status_code == 200
    assert client.get("/admin/usage?team=blue", headers=h).status_code == 403


def test_sign_out_needs_the_token_and_ends_the_session(gw: GatewayServer, sign_in: SignIn) -> None:
    client, csrf, _ = sign_in(MASTER)
    assert client.delete("/console/session").status_code == 401
    out = client.delete("/console/session", headers={"x-csrf-token": csrf})
    assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
    # The browser would drop the cookie; a stolen copy of it is dead too.
    client.cookies.set("gw_console", out.request.headers["cookie"].split("=", 1)[1])
    assert client.get("/admin/keys", headers={"x-csrf-token": csrf}).status_code == 401
    assert client.get("/console/session").json() == {"object": "console.session",
                                                      "signed_in": False}


def test_revoking_the_key_ends_its_session(gw: GatewayServer, sign_in: SignIn,
                                           keys: dict[str, dict[str, Any]]) -> None:
    # `keys` made team red
    doomed = _admin(gw, "POST", "/admin/keys", {"name": "doomed", "team": "red",
                                                "role": "viewer"})
    client, csrf, _ = sign_in(doomed["key"])
    h = {"x-csrf-token": csrf}
    assert client.get("/admin/usage", headers=h).status_code == 200
    _admin(gw, "POST", f"/admin/keys/{doomed['id']}/revoke", {})
    r = client.get("/admin/usage", headers=h)
    assert r.status_code == 401 and r.json()["error"]["message"] == "API key has been revoked"
    assert client.get("/console/session").json()["signed_in"] is False


def test_the_health_page_reads_readiness_detail_with_its_session(
        gw: GatewayServer, sign_in: SignIn, keys: dict[str, dict[str, Any]]) -> None:
    client, csrf, _ = sign_in(keys["viewer"]["key"])
    detail = client.get("/readyz", headers={"x-csrf-token": csrf}).json()
    assert "components" in detail and "deployments" in detail
    assert set(client.get("/readyz").json()) == {"status"}  # no token: the status alone


async def test_sessions_expire(tmp_path: Any) -> None:
    cfg, warnings = parse_config({**CONFIG, "storage": {"state_dir": str(tmp_path)}})
    gateway = Gateway(resolve_config(cfg, None, {}, warnings))
    now = [1_000_000.0]
    sessions = ConsoleSessions(gateway.stores.kv, gateway.security.keys, max_age_s=60,
                               clock=lambda: now[0])
    try:
        session, ident = await sessions.create(MASTER)
        assert ident.key_id == "master"
        assert (await sessions.authenticate(session.id, session.csrf.encode())).key_id == "master"
        now[0] += 61
        with pytest.raises(UnauthorizedError):
            await sessions.authenticate(session.id, session.csrf.encode())
    finally:
        await gateway.aclose()


# -- the live pages' admin routes ----------------------------------------------------------

def _chat(gw: GatewayServer, key: str, text: str) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                   headers={"authorization": f"Bearer {key}"},
                   json={"model": "echo", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text


def test_the_live_request_log_reports_requests_within_the_callers_team(
        gw: GatewayServer, keys: dict[str, dict[str, Any]]) -> None:
    first = _admin(gw, "GET", "/admin/requests/recent")  # starts the feed
    after = first["next"]
    _chat(gw, keys["member"]["key"], "from red")
    lead = keys["lead"]
    blue_member = _admin(gw, "POST", "/admin/keys", {"name": "bm", "team": "blue"})
    _chat(gw, blue_member["key"], "from blue")
    page = _admin(gw, "GET", f"/admin/requests/recent?after={after}")
    rows = [r for r in page["data"] if r["endpoint"] == "chat"]
    assert {r["team"] for r in rows} == {"red", "blue"}
    assert all(r["seq"] > after and r["status"] == 200 and r["alias"] == "echo" for r in rows)
    assert not any("from red" in str(r) or "from blue" in str(r) for r in rows)  # no text
    nothing = _admin(gw, "GET", f"/admin/requests/recent?after={page['next']}")
    assert nothing["data"] == []
    scoped = httpx.get(f"{gw.url}/admin/requests/recent?after={after}", timeout=30,
                       headers={"authorization": f"Bearer {lead['key']}"}).json()
    assert {r["team"] for r in scoped["data"]} == {"blue"}
    other = httpx.get(f"{gw.url}/admin/requests/recent?team=red", timeout=30,
                      headers={"authorization": f"Bearer {lead['key']}"})
    assert other.status_code == 403
    bad = _raw_get(gw, "/admin/requests/recent?after=-1")
    assert bad == 401  # no key: refused before the query is read


def test_security_events_are_listed_for_audit_readers_only(
        gw: GatewayServer, keys: dict[str, dict[str, Any]]) -> None:
    start = _admin(gw, "GET", "/admin/security/events?limit=1")["next"]
    denied = httpx.get(gw.url + "/admin/keys", timeout=30,
                       headers={"authorization": "Bearer sk-gw-000000000000-" + "y" * 43})
    assert denied.status_code == 401
    events = _admin(gw, "GET", f"/admin/security/events?after={start}&kind=auth")["data"]
    assert events and events[-1]["action"] == "deny" and events[-1]["kind"] == "auth"
    assert "y" * 43 not in str(events)
    for who in ("viewer", "lead"):
        r = httpx.get(gw.url + "/admin/security/events", timeout=30,
                      headers={"authorization": f"Bearer {keys[who]['key']}"})
        assert r.status_code == 403
    r = httpx.get(gw.url + "/admin/security/events?kind=NOPE", timeout=30,
                  headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "kind"


def test_unwatched_request_log_costs_nothing_and_stays_bounded() -> None:
    from gatewise.observability.recent import RecentFeed

    now = [0.0]
    feed = RecentFeed(3, idle_s=10, clock=lambda: now[0])
    assert not feed.active
    feed.after(0, limit=10)
    assert feed.active
    for i in range(5):
        feed.add({"i": i})
    data, nxt, dropped = feed.after(0, limit=10)
    assert [r["i"] for r in data] == [2, 3, 4] and nxt == 5 and dropped
    data, nxt, dropped = feed.after(3, limit=10)
    assert [r["seq"] for r in data] == [4, 5] and not dropped
    assert feed.after(4, limit=10, keep=lambda r: r["i"] == 9)[0] == []
    now[0] = 11
    assert not feed.active


# -- many replicas --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer,
                                                                          GatewayServer]]:
    """Two gateways sharing one state (SQLite) and one Redis, as replicas behind a balancer."""
    url = require_redis()
    prefix = f"gw-console-{os.getpid()}-{time.time_ns()}:"
    cfg = {**CONFIG, "storage": {"state_dir": str(tmp_path_factory.mktemp("replicas")),
                                 "redis_url": url, "redis_prefix": prefix}}
    try:
        with GatewayServer(cfg) as a, GatewayServer(cfg) as b:
            yield a, b
    finally:
        asyncio.run(drop_redis_prefix(url, prefix))


def test_a_session_made_on_one_replica_works_on_another(
        replicas: tuple[GatewayServer, GatewayServer]) -> None:
    a, b = replicas
    master = {"authorization": f"Bearer {MASTER}"}
    httpx.post(a.url + "/admin/teams", json={"id": "ops"}, headers=master,
               timeout=30).raise_for_status()
    key = httpx.post(a.url + "/admin/keys", json={"name": "roaming", "role": "viewer",
                                                  "team": "ops"},
                     headers=master, timeout=30).json()
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        r = on_a.post("/console/session", json={"key": key["key"]})
        assert r.status_code == 201
        csrf = r.json()["csrf_token"]
        cookie = on_a.cookies["gw_console"]
    with httpx.Client(base_url=b.url, timeout=30, cookies={"gw_console": cookie}) as on_b:
        h = {"x-csrf-token": csrf}
        assert on_b.get("/admin/usage", headers=h).status_code == 200
        assert on_b.get("/admin/keys", headers=h).status_code == 403  # still a viewer
        # Revoked through replica A: replica B ends the session too (the key broadcast).
        httpx.post(f"{a.url}/admin/keys/{key['id']}/revoke", json={}, timeout=30,
                   headers={"authorization": f"Bearer {MASTER}"}).raise_for_status()
        wait_until(lambda: on_b.get("/admin/usage", headers=h).status_code == 401,
                   what="the revocation ending the session on the other replica")


# -- in process: what a socket test cannot set up -----------------------------------------

async def _asgi(app: Any, method: str, path: str, body: bytes = b"",
                headers: list[tuple[bytes, bytes]] | None = None,
                scheme: str = "http") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "scheme": scheme, "query_string": b"", "headers": [
                 (b"host", b"gw.example"), *(headers or [])]}
    await app(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def _app(config: dict[str, Any], tmp_path: Any) -> Any:
    from gatewise.server.app import create_app

    cfg, warnings = parse_config({**config, "storage": {"state_dir": str(tmp_path)}})
    return create_app(resolve_config(cfg, None, {}, warnings), warmup=False)


async def test_over_https_the_cookie_is_secure(tmp_path: Any) -> None:
    app = _app(CONFIG, tmp_path)
    try:
        status, headers, _ = await _asgi(
            app, "POST", "/console/session", b'{"key": "%s"}' % MASTER.encode(),
            [(b"content-type", b"application/json"), (b"origin", b"https://gw.example")],
            scheme="https")
        assert status == 201
        assert b"; Secure" in headers[b"set-cookie"] and b"HttpOnly" in headers[b"set-cookie"]
    finally:
        await app.gateway.aclose()


async def test_without_a_master_key_the_console_cannot_sign_in(tmp_path: Any) -> None:
    app = _app({"models": CONFIG["models"]}, tmp_path)
    try:
        assert (await _asgi(app, "GET", "/console"))[0] == 200  # the page says why
        status, _, body = await _asgi(app, "POST", "/console/session", b'{"key": "x"}',
                                      [(b"content-type", b"application/json")])
        assert status == 403 and b"master_key" in body
    finally:
        await app.gateway.aclose()
