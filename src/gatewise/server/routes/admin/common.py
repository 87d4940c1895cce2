"""What every admin route shares: the route table's row (`AdminRoute`, `View`), a request's
checked inputs (`Args`), the JSON answer, the caller's team scope and the audit actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec

from gatewise.errors import ForbiddenError, InvalidRequestError
from gatewise.pipeline.core import Identity
from gatewise.security.inputs import Input, Query
from gatewise.server.context import RequestContext
from gatewise.server.http import respond

_encode = msgspec.json.Encoder().encode
# What the server calls: (context, path parameters).
AdminHandler = Callable[[RequestContext, dict[str, str]], Awaitable[None]]


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


STR = {"type": "string"}
DONE = {"id": STR}


def query_params(ctx: RequestContext) -> dict[str, str]:
    """The last value of each parameter; blank values are kept (and checked like any other)."""
    qs = ctx.scope.get("query_string", b"").decode("latin-1")
    try:
        pairs = parse_qs(qs, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        raise InvalidRequestError("too many query parameters (at most 100)") from None
    return {k: v[-1] for k, v in pairs.items()}


async def send_json(ctx: RequestContext, data: Any, status: int = 200) -> None:
    await respond(ctx.send, status, _encode(data), [(b"x-request-id", ctx.request_id.encode())])


def own_team(ident: Identity, team: str | None) -> str | None:
    """Admins see everything; everyone else is pinned to their own team."""
    if ident.permissions is None or ident.can("admin:*"):
        return team
    if team is not None and team != ident.team:
        raise ForbiddenError("this key may only act on its own team")
    if ident.team is None:
        raise ForbiddenError("this key belongs to no team")
    return ident.team


def record_view(record: Any, hidden: tuple[str, ...]) -> dict[str, Any]:
    """A stored record as the API shows it: every field but those that must never leave the
    store (a key's hash, a credential's ciphertext)."""
    d = asdict(record)
    for name in hidden:
        d.pop(name, None)
    return d


def actor_of(ident: Identity) -> str:
    """Who the audit log names for a change made through the API."""
    return ident.key_id or "master"
