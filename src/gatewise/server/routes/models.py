"""`GET /v1/models` and `GET /v1/models/{id}`: the aliases this gateway serves."""

from __future__ import annotations

import msgspec

from gatewise.errors import ModelNotFoundRequestError
from gatewise.server.context import RequestContext
from gatewise.server.http import respond

_encode = msgspec.json.Encoder().encode


def _model(name: str, created: int) -> dict[str, object]:
    return {"id": name, "object": "model", "created": created, "owned_by": "gatewise"}


async def handle_models(ctx: RequestContext, created: int) -> None:
    data = [_model(m, created) for m in ctx.gateway.models()]
    await respond(ctx.send, 200, _encode({"object": "list", "data": data}),
                  [(b"x-request-id", ctx.request_id.encode())])


async def handle_model(ctx: RequestContext, name: str, created: int) -> None:
    if name not in ctx.gateway.models():
        raise ModelNotFoundRequestError(f"The model '{name}' does not exist", param="model")
    await respond(ctx.send, 200, _encode(_model(name, created)),
                  [(b"x-request-id", ctx.request_id.encode())])
