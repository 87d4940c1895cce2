"""`POST /v1/embeddings`."""

from __future__ import annotations

import msgspec

from gatewise.pipeline.core import Call
from gatewise.server.context import RequestContext
from gatewise.server.http import respond
from gatewise.server.routes.chat import call_headers
from gatewise.types.validation import decode_embedding_request

_encode = msgspec.json.Encoder().encode


async def handle_embeddings(ctx: RequestContext) -> None:
    body = await ctx.read_body()  # under a guard: the client leaving cancels the call
    req = decode_embedding_request(body,
                                   max_depth=ctx.gateway.config.config.server.max_json_depth)
    call = Call("embed", req, ctx.identity, request_id=ctx.request_id,
                request_headers=ctx.scope["headers"])
    result = await ctx.gateway.run(call)
    await respond(ctx.send, 200, _encode(result), call_headers(call, overhead=True))
