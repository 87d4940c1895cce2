"""`create_app(config)`: the OpenAI-compatible ASGI application.

Routing is a dict lookup on (method, path); each endpoint family lives in `routes/`. Every
failure, anywhere, leaves through `server.errors` as OpenAI error JSON with the right status.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from gatewise import __version__
from gatewise.config.loader import ResolvedConfig, load_config
from gatewise.errors import ForbiddenError, UnauthorizedError
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Identity
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body, plain_error
from gatewise.server.http import Receive, Scope, Send, header, respond
from gatewise.server.lifecycle import InFlight
from gatewise.server.openapi import build_openapi
from gatewise.server.routes.admin import match_admin
from gatewise.server.routes.chat import handle_chat
from gatewise.server.routes.completions import handle_completions
from gatewise.server.routes.console import PREFIX as _CONSOLE
from gatewise.server.routes.console import ConsoleRoutes
from gatewise.server.routes.conversations import handle_delete, handle_get, handle_list
from gatewise.server.routes.embeddings import handle_embeddings
from gatewise.server.routes.estimates import handle_cost_estimate, handle_token_count
from gatewise.server.routes.feedback import handle_feedback
from gatewise.server.routes.health import handle_healthz, handle_metrics, handle_readyz
from gatewise.server.routes.messages import PATHS as _ANTHROPIC
from gatewise.server.routes.messages import handle_count_tokens, handle_messages
from gatewise.server.routes.models import handle_model, handle_models
from gatewise.server.routes.rag import PREFIXES as _RAG
from gatewise.server.routes.rag import match_rag
from gatewise.server.routes.responses import PREFIXES as _RESPONSES
from gatewise.server.routes.responses import handle_create, match_responses
from gatewise.server.routes.titles import handle_titles

if TYPE_CHECKING:
    from gatewise.observability.worker_metrics import WorkerMetrics

log = logging.getLogger("gatewise.server")
Route = Callable[[RequestContext], Awaitable[None]]
_PUBLIC = frozenset({"/healthz", "/readyz", "/openapi.json"})
_CONVERSATIONS = ("/v1/conversations/", "/conversations/")


def _conversation_route(method: str, conversation: str) -> Route | None:
    """`GET`/`DELETE /v1/conversations/{id}`; None for another method or an empty id."""
    if not conversation or method not in ("GET", "DELETE"):
        return None
    handler = handle_get if method == "GET" else handle_delete

    async def route(ctx: RequestContext) -> None:
        await handler(ctx, conversation)

    return route


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


class GatewayApp:
    """The ASGI callable. Holds the gateway; closes it on lifespan shutdown."""

    def __init__(self, gateway: Gateway, *, warmup: bool | None = None) -> None:
        self.gateway = gateway
        gateway.metrics.build_info.set((__version__,), 1.0)  # what /metrics says is running
        settings = gateway.config.config.server
        self.max_body = settings.max_body_bytes
        self.warmup = settings.warmup if warmup is None else warmup
        self.warmed = not self.warmup
        self._master = gateway.config.master_key.encode() if gateway.config.master_key else None
        self._created = int(time.time())
        self._openapi = msgspec.json.encode(build_openapi())
        # Gateway calls run under a guard: cut when the client leaves, drained at shutdown.
        self.inflight = InFlight(settings.shutdown_grace_s)
        chat: Route = partial(self.inflight.run, route=handle_chat)
        embeddings: Route = partial(self.inflight.run, route=handle_embeddings)
        completions: Route = partial(self.inflight.run, route=handle_completions)
        self._routes: dict[tuple[str, str], Route] = {}
        for prefix in ("/v1", ""):
            self._routes[("POST", f"{prefix}/chat/completions")] = chat
            self._routes[("POST", f"{prefix}/embeddings")] = embeddings
            self._routes[("POST", f"{prefix}/completions")] = completions
            self._routes[("GET", f"{prefix}/models")] = self._models
            self._routes[("POST", f"{prefix}/tokens/count")] = handle_token_count
            self._routes[("POST", f"{prefix}/cost/estimate")] = handle_cost_estimate
            self._routes[("GET", f"{prefix}/conversations")] = handle_list
            self._routes[("POST", f"{prefix}/feedback")] = handle_feedback
            self._routes[("POST", f"{prefix}/responses")] = partial(self.inflight.run,
                                                                    route=handle_create)
        # Anthropic's SDK takes the server's root as its base URL: these live under /v1 only.
        self._routes[("POST", "/v1/messages")] = partial(self.inflight.run,
                                                         route=handle_messages)
        self._routes[("POST", "/v1/messages/count_tokens")] = handle_count_tokens
        # Epic titles (`routes/titles.py`): a chat call under the same guard as chat.
        self._routes[("POST", "/v1/titles")] = partial(self.inflight.run, route=handle_titles)
        self._routes[("GET", "/healthz")] = handle_healthz
        self._routes[("GET", "/readyz")] = self._readyz
        self._routes[("GET", "/metrics")] = self._metrics
        # `serve --workers N`: set by the worker before serving, so a scrape shows every
        # worker's numbers (`observability/worker_metrics.py`).
        self.worker_metrics: WorkerMetrics | None = None
        self._routes[("GET", "/openapi.json")] = self._openapi_route
        self._paths = {p for _, p in self._routes}
        # The web console (`routes/console.py`): public static files and its own sign-in;
        # its session cookie authenticates API calls in `_authenticate`.
        self.console = ConsoleRoutes(gateway, enabled=self._master is not None)

    async def _metrics(self, ctx: RequestContext) -> None:
        shared = self.worker_metrics
        await handle_metrics(ctx, await shared.render() if shared is not None else None)

    async def _models(self, ctx: RequestContext) -> None:
        await handle_models(ctx, self._created)

    async def _readyz(self, ctx: RequestContext) -> None:
        await handle_readyz(ctx, self.warmed, draining=self.inflight.draining,
                            detail=await self._may_read_health(ctx.scope))

    async def _may_read_health(self, scope: Scope) -> bool:
        """`/readyz` stays open for probes, but with a master key set its per-component
        document (deployment ids, stores, errors) goes only to a key allowed `usage:read`;
        a missing or wrong key gets the status alone, never a 401 (a probe sends none)."""
        if self._master is None:
            return True
        raw = header(scope, b"authorization") or b""
        token = raw[7:].strip() if raw[:7].lower() == b"bearer " else b""
        if not token:
            if raw:
                return False
            try:  # the web console's health page: its session cookie + CSRF token
                console = await self.console.identity(scope)
            except Exception:
                return False
            return console is not None and console.can("usage:read")
        if hmac.compare_digest(token, self._master):
            return True
        if not token.startswith(b"sk-gw-"):
            return False
        try:
            identity = await self.gateway.security.keys.authenticate(token.decode("latin-1"))
        except Exception:
            return False
        return identity.can("usage:read")

    def drain(self) -> None:
        """Shutdown began (the server calls this on SIGTERM): /readyz says 503, new calls are
        refused, calls in flight are cut after `server.shutdown_grace_s` (see `lifecycle`)."""
        self.inflight.drain()

    async def _openapi_route(self, ctx: RequestContext) -> None:
        await respond(ctx.send, 200, self._openapi, [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        request_id = RequestContext.request_id_from(scope, "")
        route = self._routes.get((method, path))
        admin_params: dict[str, str] | None = None
        if route is None and path.startswith("/admin/"):
            found = match_admin(method, path)
            if isinstance(found, tuple):
                handler, admin_params, permission = found
                params = admin_params

                async def admin(ctx: RequestContext) -> None:
                    # The permission first (team scope is the handler's, once it knows the
                    # team), so an unauthorised caller learns nothing from body validation.
                    if not ctx.identity.can(permission):
                        raise ForbiddenError(f"permission {permission!r} is required")
                    await handler(ctx, params)

                route = admin
        if route is None and path.startswith(("/v1/models/", "/models/")):
            name = path.split("/models/", 1)[1]
            if method == "GET" and name:
                created = self._created

                async def one(ctx: RequestContext) -> None:
                    await handle_model(ctx, name, created)

                route = one
        if route is None and path.startswith(_CONVERSATIONS):
            route = _conversation_route(method, path.split("/conversations/", 1)[1])
        if route is None and path.startswith(_RAG):
            rag = match_rag(method, scope)
            route = None if rag is None or isinstance(rag, list) else rag
        if route is None and path.startswith(_RESPONSES):  # /v1/responses/{id}[/input_items]
            stored = match_responses(method, path)
            route = None if stored is None or isinstance(stored, list) else stored
        console = route is None and path.startswith(_CONSOLE)
        if console:  # public: the sign-in page and its files; the session checks itself
            served = self.console.match(method, scope)
            route = None if served is None or isinstance(served, list) else served
        if route is None:
            allowed = self._allowed_methods(path)
            status = 405 if allowed else 404
            msg = f"Method {method} not allowed on {path}" if allowed else f"Unknown path {path}"
            headers = [(b"x-request-id", request_id.encode())]
            if allowed:
                headers.append((b"allow", ", ".join(allowed).encode()))
            await respond(send, status, plain_error(status, msg, "not_found" if status == 404
                                                    else "method_not_allowed"), headers)
            return
        ctx = RequestContext(scope, receive, send, self.gateway, request_id, self.max_body)
        try:
            if admin_params is not None and self._master is None:
                raise ForbiddenError("the admin API is disabled: set 'server.master_key'")
            if self._master is not None and path not in _PUBLIC and not console:
                ctx.identity = await self._authenticate(scope, request_id)
            await route(ctx)
        except ConnectionResetError:
            return
        except Exception as exc:
            status, headers, body = error_body(exc, request_id, anthropic=path in _ANTHROPIC)
            headers.append((b"x-request-id", request_id.encode()))
            try:
                await respond(send, status, body, headers)
            except Exception:
                log.debug("could not send error response for %s", request_id)

    def _allowed_methods(self, path: str) -> list[str]:
        """The methods `path` answers to: a 405 lists them in `Allow` (RFC 9110 15.5.6), so a
        client learns how to call it; none means the path does not exist (404)."""
        methods = {m for m, p in self._routes if p == path}
        if path.startswith("/admin/"):
            methods.update(m for m in _METHODS if isinstance(match_admin(m, path), tuple))
        if path.startswith(("/v1/models/", "/models/")) and path.split("/models/", 1)[1]:
            methods.add("GET")
        if path.startswith(_CONVERSATIONS) and path.split("/conversations/", 1)[1]:
            methods.update(("GET", "DELETE"))
        if path.startswith(_RAG):
            rag = match_rag("", {"path": path})
            methods.update(rag if isinstance(rag, list) else ())
        if path.startswith(_RESPONSES):
            stored = match_responses("", path)
            methods.update(stored if isinstance(stored, list) else ())
        if path.startswith(_CONSOLE):
            served = self.console.match("", {"path": path})
            methods.update(served if isinstance(served, list) else ())
        return sorted(methods)

    async def _authenticate(self, scope: Scope, request_id: str) -> Identity:
        """The master key, or a virtual key (`sk-gw-…`) checked by the key manager."""
        raw = header(scope, b"authorization") or b""
        token = raw[7:].strip() if raw[:7].lower() == b"bearer " else b""
        if not token:
            token = (header(scope, b"api-key") or header(scope, b"x-api-key") or b"").strip()
        assert self._master is not None
        keys = self.gateway.security.keys
        if token and hmac.compare_digest(token, self._master):
            return keys.master_identity()
        if token.startswith(b"sk-gw-"):
            # The key manager reports its own denials as security events.
            return await keys.authenticate(token.decode("latin-1"))
        if not token and not raw:  # a key always wins over the web console's session
            console = await self.console.identity(scope)  # cookie + CSRF token, or a 401
            if console is not None:
                return console
        self._deny(request_id, "missing key" if not token else "unknown key")
        raise UnauthorizedError("Invalid or missing API key for this gateway")

    def _deny(self, request_id: str, reason: str) -> None:
        """A denied authentication is a security event (log and metric); never the key."""
        self.gateway.security_events.emit("auth", "deny", request_id=request_id,
                                          detail={"reason": reason})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                    if self.warmup:
                        await self.gateway.warmup()
                    self.warmed = True
                    if self.worker_metrics is not None:
                        self.worker_metrics.start()
                except Exception as exc:
                    log.error("start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.inflight.close()
                if self.worker_metrics is not None:
                    await self.worker_metrics.stop()
                await self.gateway.aclose()  # flushes the usage ledger
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: ResolvedConfig | str | os.PathLike[str] | None = None, *,
               gateway: Gateway | None = None, **kw: Any) -> GatewayApp:
    if gateway is None:
        resolved = config if isinstance(config, ResolvedConfig) else load_config(config)
        gateway = Gateway(resolved)
    return GatewayApp(gateway, **kw)
