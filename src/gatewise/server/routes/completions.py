"""`POST /v1/completions`: OpenAI's legacy text completions, served through the chat pipeline.

The body is validated and translated at the edge (`types.completions`), then runs as a chat
call, so keys, budgets, rate limits, guardrails, the cache and the ledger apply unchanged; the
answer, or each streamed chunk, is reshaped into a `text_completion` object. Streaming is
chat's own (`routes/chat.py`, `stream_sse`), with another encoding: headers only after the
first chunk, a failure after that ends the stream with an OpenAI error event, a client leaving
cancels the upstream call, and a shutdown past its grace period ends the stream with a
`server_shutting_down` event.
"""

from __future__ import annotations

import msgspec

from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.server.context import RequestContext
from gatewise.server.http import respond
from gatewise.server.routes.chat import call_headers, stream_sse
from gatewise.types.completions import (
    decode_completion_request,
    from_chat_chunk,
    from_chat_completion,
    to_chat_request,
)
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk

_encode = msgspec.json.Encoder().encode


async def handle_completions(ctx: RequestContext) -> None:
    body = await ctx.read_body()
    req = decode_completion_request(
        body, max_depth=ctx.gateway.config.config.server.max_json_depth)
    call = Call("chat", to_chat_request(req), ctx.identity, request_id=ctx.request_id,
                request_headers=ctx.scope["headers"])
    result = await ctx.gateway.run(call)
    if isinstance(result, ChatCompletion):
        await respond(ctx.send, 200, _encode(from_chat_completion(result)),
                      call_headers(call, overhead=True))
        return
    assert isinstance(result, ChunkStream)
    await stream_sse(ctx, call, result, _encode_chunk)



def _encode_chunk(chunk: ChatCompletionChunk) -> bytes | None:
    out = from_chat_chunk(chunk)
    return None if out is None else _encode(out)
