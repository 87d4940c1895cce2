"""`GET /v1/models` and `GET /v1/models/{id}`: the aliases this gateway serves.

A key sees only the models its (and its team's) allow-list admits, the same check a call
meets (`security.access`), so the list never advertises what would answer 403.

`?expand=deployments` adds, per alias, the provider models behind it (`provider/model` refs,
the deployment ids that `x-gatewise-deployment` names, and whether each can serve): what an
operator or a client choosing a model needs, never a key or a base URL (which may carry
credentials or name internal hosts). An orchestration lists its members' deployments.

Configured assistants are listed as `assistant/<name>` (the model name that picks one), with
the alias that serves them under `"served_by"`, when the key may use that alias: a client's
model picker then offers the bank's agent, not only raw models.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import msgspec

from gatewise.errors import InvalidRequestError, ModelNotFoundRequestError
from gatewise.gateway import Gateway
from gatewise.memory.assistants import PREFIX
from gatewise.server.context import RequestContext
from gatewise.server.http import respond

_encode = msgspec.json.Encoder().encode
EXPANSIONS = ("deployments",)


def _expand(ctx: RequestContext) -> bool:
    """Whether the query asks for the deployments; a 400 naming `expand` for anything else."""
    raw: bytes = ctx.scope.get("query_string", b"")
    if not raw:
        return False
    values = parse_qs(raw.decode("latin-1"), keep_blank_values=True).get("expand", [])
    for value in values:
        if value not in EXPANSIONS:
            raise InvalidRequestError(f"expand must be one of {', '.join(EXPANSIONS)}",
                                      param="expand")
    return bool(values)


def _deployments(gateway: Gateway, name: str) -> list[dict[str, object]]:
    orchestration = gateway.config.config.orchestrations.get(name)
    members = orchestration.models if orchestration is not None else [name]
    out: list[dict[str, object]] = []
    for member in members:
        try:
            deps = gateway.deployments_of(member)
        except ModelNotFoundRequestError:
            continue
        out.extend({"id": d.id, "model": d.target.ref, "provider": d.target.provider,
                    "ready": d.problem is None} for d in deps)
    return out


def _model(ctx: RequestContext, name: str, created: int, expand: bool) -> dict[str, object]:
    out: dict[str, object] = {"id": name, "object": "model", "created": created,
                              "owned_by": "gatewise"}
    if expand:
        out["deployments"] = _deployments(ctx.gateway, name)
    return out


def _visible(ctx: RequestContext) -> list[str]:
    access = ctx.gateway.security.access
    return [m for m in ctx.gateway.models() if access.may_use(ctx.identity, m)]


def _assistants(ctx: RequestContext) -> dict[str, str]:
    """`assistant/<name>` → the alias serving it, for the assistants this key may call."""
    config = ctx.gateway.config
    access = ctx.gateway.security.access
    out: dict[str, str] = {}
    for name, a in config.config.assistants.items():
        model = a.model or config.default_model
        if model and access.may_use(ctx.identity, model):
            out[f"{PREFIX}{name}"] = model
    return out


def _assistant(name: str, created: int, served_by: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": created, "owned_by": "gatewise",
            "served_by": served_by}


async def handle_models(ctx: RequestContext, created: int) -> None:
    expand = _expand(ctx)
    data = [_model(ctx, m, created, expand) for m in _visible(ctx)]
    data += [_assistant(n, created, m) for n, m in _assistants(ctx).items()]
    await respond(ctx.send, 200, _encode({"object": "list", "data": data}),
                  [(b"x-request-id", ctx.request_id.encode())])


async def handle_model(ctx: RequestContext, name: str, created: int) -> None:
    expand = _expand(ctx)
    served_by = _assistants(ctx).get(name) if name.startswith(PREFIX) else None
    if served_by is not None:
        await respond(ctx.send, 200, _encode(_assistant(name, created, served_by)),
                      [(b"x-request-id", ctx.request_id.encode())])
        return
    if name not in _visible(ctx):
        raise ModelNotFoundRequestError(f"The model '{name}' does not exist", param="model")
    await respond(ctx.send, 200, _encode(_model(ctx, name, created, expand)),
                  [(b"x-request-id", ctx.request_id.encode())])
