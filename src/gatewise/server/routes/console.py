"""`/console`: the web console's static files and its sign-in session.

The console is plain HTML, ES modules and CSS under `server/console/static/` (no build step,
no Node at run time); it talks to the same admin and `/v1` API as any client, authenticated
by the session cookie plus its CSRF token (`server.console.sessions`). This module serves:

- `GET /console`, `/console/` (the page) and `/console/<file>` (from an in-memory table, so
  a path can only name a file that is in it; NUL, `..`, backslashes and encoded slashes are a
  400 before any lookup), gzip when accepted, ETag/304, immutable caching for versioned
  vendor files;
- `POST /console/session` (sign in with a key: JSON `{"key": ...}`), `GET /console/session`
  (who is signed in, and the CSRF token, for a page reload) and `DELETE /console/session`
  (sign out).

Every answer carries a strict Content-Security-Policy (no inline script or style anywhere in
the console), `nosniff`, `no-referrer` and a frame ban.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gatewise.errors import ForbiddenError, InvalidRequestError, UnauthorizedError
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Identity
from gatewise.server.console.assets import Asset, accepts_gzip, load_assets
from gatewise.server.console.sessions import (
    COOKIE,
    CSRF_HEADER,
    ConsoleSessions,
    Session,
    cookie_value,
)
from gatewise.server.context import RequestContext
from gatewise.server.http import Scope, header, read_body, respond

PREFIX = "/console"
SESSION = "/console/session"
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = (b"cache-control", b"no-store")
# Encoded slash, backslash, dot or NUL in the raw path: refused rather than decoded.
_ENCODED = re.compile(rb"%(?:2f|5c|00|2e)", re.IGNORECASE)
_MAX_SIGN_IN_BODY = 4096
ConsoleRoute = Callable[[RequestContext], Awaitable[None]]


class _SignIn(msgspec.Struct, forbid_unknown_fields=True):
    key: str


_decode_sign_in = msgspec.json.Decoder(_SignIn).decode


def identity_view(identity: Identity) -> dict[str, Any]:
    """What the page needs to show or hide: role, team and permissions (never a secret)."""
    perms = identity.permissions
    return {"key_id": identity.key_id, "role": identity.role, "team": identity.team,
            "permissions": ["admin:*"] if perms is None else sorted(perms)}


class ConsoleRoutes:
    """The console's routes for one app; `sessions` is what the app's authentication asks
    about a request that carries the console cookie and no key."""

    def __init__(self, gateway: Gateway, *, enabled: bool) -> None:
        self.enabled = enabled  # the admin API (and so the console) needs a master key
        self.assets = load_assets()
        self.sessions = ConsoleSessions(gateway.stores.kv, gateway.security.keys)

    # -- dispatch -------------------------------------------------------------------------
    def match(self, method: str, scope: Scope) -> ConsoleRoute | list[str] | None:
        """The route; the allowed methods when the path exists under others; None: 404.
        A malformed path gets a route that answers 400, before any lookup."""
        path: str = scope["path"]
        if path == SESSION:
            handler = {"GET": self._get_session, "POST": self._post_session,
                       "DELETE": self._delete_session}.get(method)
            return handler if handler is not None else ["DELETE", "GET", "POST"]
        try:
            rel = self.relative(scope)
        except InvalidRequestError as exc:
            refused = exc

            async def refuse(ctx: RequestContext) -> None:
                raise refused

            return refuse
        if rel is None or rel not in self.assets:
            return None
        if method not in ("GET", "HEAD"):
            return ["GET", "HEAD"]
        asset = self.assets[rel]

        async def serve(ctx: RequestContext) -> None:
            await self._serve(ctx, asset)

        return serve

    @staticmethod
    def relative(scope: Scope) -> str | None:
        """`/console` and `/console/` → `index.html`; `/console/a/b.js` → `a/b.js`."""
        path: str = scope["path"]
        raw = scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
        if ("\x00" in path or "\\" in path or _ENCODED.search(raw)
                or any(part in ("..", ".") for part in path.split("/"))):
            raise InvalidRequestError("malformed console path")
        if path in (PREFIX, PREFIX + "/"):
            return "index.html"
        if not path.startswith(PREFIX + "/"):
            return None
        return path[len(PREFIX) + 1:]

    # -- static files -----------------------------------------------------------------------
    async def _serve(self, ctx: RequestContext, asset: Asset) -> None:
        scope = ctx.scope
        headers = [*SECURITY_HEADERS, (b"etag", asset.etag),
                   (b"cache-control", asset.cache_control), (b"vary", b"accept-encoding")]
        match = header(scope, b"if-none-match")
        if match is not None and asset.etag in [m.strip() for m in match.split(b",")]:
            await ctx.send({"type": "http.response.start", "status": 304, "headers": headers})
            await ctx.send({"type": "http.response.body", "body": b""})
            return
        body = asset.body
        if asset.gzipped is not None and accepts_gzip(header(scope, b"accept-encoding")):
            body = asset.gzipped
            headers.append((b"content-encoding", b"gzip"))
        if scope["method"] == "HEAD":
            await ctx.send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", asset.content_type),
                (b"content-length", str(len(body)).encode()), *headers]})
            await ctx.send({"type": "http.response.body", "body": b""})
            return
        await respond(ctx.send, 200, body, headers, content_type=asset.content_type)

    # -- the session --------------------------------------------------------------------------
    def _check_enabled(self) -> None:
        if not self.enabled:
            raise ForbiddenError("the console needs the admin API: set 'server.master_key'")

    async def _post_session(self, ctx: RequestContext) -> None:
        """Sign in. JSON only (a cross-site form cannot send it without a preflight the
        gateway never grants) and, when the browser names an origin, only the gateway's
        own: nobody can sign a visitor in with the attacker's key."""
        self._check_enabled()
        scope = ctx.scope
        ctype = (header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            raise InvalidRequestError("sign in with a JSON body: {\"key\": \"...\"}",
                                      param="key")
        _same_origin(scope)
        body = await read_body(scope, ctx.receive, _MAX_SIGN_IN_BODY)
        try:
            key = _decode_sign_in(body).key.strip()
        except msgspec.DecodeError:
            raise InvalidRequestError("expected {\"key\": \"...\"}", param="key") from None
        if not key or len(key) > 512 or not key.isascii() or not key.isprintable():
            raise UnauthorizedError("Invalid or missing API key for this gateway")
        session, identity = await self.sessions.create(key)
        await self._session_answer(ctx, session, identity, 201, set_cookie=True)

    async def _get_session(self, ctx: RequestContext) -> None:
        """Who is signed in, with the CSRF token: how a reloaded page picks its session up
        again. Nobody (no cookie, or its session or key ended) is an answer, not an error:
        `signed_in` false, and the stale cookie is cleared."""
        self._check_enabled()
        session_id = self._cookie(ctx.scope)
        found = None
        if session_id is not None:
            try:
                found = await self.sessions.read(session_id)
            except UnauthorizedError:
                found = None
        if found is None:
            headers = [*SECURITY_HEADERS, _NO_STORE, (b"x-request-id", ctx.request_id.encode())]
            if session_id is not None:
                headers.append((b"set-cookie", self._cookie_header(ctx.scope, "", 0)))
            await respond(ctx.send, 200, b'{"object":"console.session","signed_in":false}',
                          headers)
            return
        await self._session_answer(ctx, *found, 200, set_cookie=False)

    async def _delete_session(self, ctx: RequestContext) -> None:
        """Sign out: needs the CSRF token like every other write."""
        self._check_enabled()
        session_id = self._cookie(ctx.scope)
        if session_id is not None:
            await self.sessions.authenticate(session_id, header(ctx.scope, CSRF_HEADER))
            await self.sessions.delete(session_id)
        await respond(ctx.send, 200, b'{"signed_out":true}', [
            *SECURITY_HEADERS, _NO_STORE, (b"x-request-id", ctx.request_id.encode()),
            (b"set-cookie", self._cookie_header(ctx.scope, "", 0))])

    async def _session_answer(self, ctx: RequestContext, session: Session,
                              identity: Identity, status: int, *, set_cookie: bool) -> None:
        body = msgspec.json.encode({"object": "console.session", "signed_in": True,
                                    "csrf_token": session.csrf, "expires": session.expires,
                                    **identity_view(identity)})
        headers = [*SECURITY_HEADERS, _NO_STORE, (b"x-request-id", ctx.request_id.encode())]
        if set_cookie:
            headers.append((b"set-cookie", self._cookie_header(
                ctx.scope, session.id, int(self.sessions.max_age_s))))
        await respond(ctx.send, status, body, headers)

    @staticmethod
    def _cookie(scope: Scope) -> str | None:
        raw = header(scope, b"cookie")
        return None if raw is None else cookie_value(raw)

    @staticmethod
    def _cookie_header(scope: Scope, value: str, max_age: int) -> bytes:
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        return (f"{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
                f"{secure}").encode()

    # -- what the app's authentication asks -----------------------------------------------------
    async def identity(self, scope: Scope) -> Identity | None:
        """The identity of a request that carries the console cookie (None: no cookie); a
        401 when the session ended or the CSRF token is missing or wrong. The app asks only
        when the request has no Authorization header or key: a key always wins."""
        session_id = self._cookie(scope)
        if session_id is None or not self.enabled:
            return None
        return await self.sessions.authenticate(session_id, header(scope, CSRF_HEADER))


def _same_origin(scope: Scope) -> None:
    origin = header(scope, b"origin")
    if origin is None:
        return
    host = header(scope, b"host") or b""
    allowed = {b"http://" + host, b"https://" + host}
    if origin not in allowed:
        raise ForbiddenError("sign-in from another origin is refused")

