"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API, served
by any configured provider.

The request becomes a canonical chat call (`server/anthropic/inbound.py`) and runs through the
same pipeline as `/v1/chat/completions` (keys, budgets, rate limits, guardrails, cache,
ledger); only the edges speak Anthropic. Errors leave in Anthropic's shape (the app selects it
for these paths, see `server/errors.py`), so the `anthropic` SDK raises its own typed errors.
As for chat, a stream's headers go only after the first chunk arrived, so a failure before it
is a proper HTTP error; a later failure ends the stream with an `error` event, and a client
that leaves cancels the upstream call (`lifecycle.RequestGuard`).
"""

from __future__ import annotations

import asyncio

import msgspec

from gatewise.errors import ServerShuttingDownError
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.server.anthropic.inbound import (
    decode_count_tokens_request,
    decode_messages_request,
)
from gatewise.server.anthropic.outbound import StreamTranslator, message_body
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body
from gatewise.server.http import respond
from gatewise.server.routes.chat import call_headers, shutdown_cut
from gatewise.types.responses import ChatCompletion

_encode = msgspec.json.Encoder().encode
PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def handle_messages(ctx: RequestContext) -> None:
    body = await ctx.read_body()
    req = decode_messages_request(body, max_depth=ctx.gateway.config.config.server.max_json_depth)
    call = Call("chat", req, ctx.identity, request_id=ctx.request_id,
                request_headers=ctx.scope["headers"])
    result = await ctx.gateway.run(call)
    if isinstance(result, ChatCompletion):
        await respond(ctx.send, 200, message_body(result),
                      [*call_headers(call, overhead=True), _request_id(call)])
        return
    assert isinstance(result, ChunkStream)
    await _stream(ctx, call, result, StreamTranslator(model=req.model))


async def handle_count_tokens(ctx: RequestContext) -> None:
    """`{"input_tokens": n}`: the prompt counted offline for the model's first deployment
    (the same estimate as `/v1/tokens/count`); nothing is sent upstream or recorded."""
    body = await ctx.read_body()
    req = decode_count_tokens_request(
        body, max_depth=ctx.gateway.config.config.server.max_json_depth)
    out = await ctx.gateway.estimate(req, identity=ctx.identity, cost=False)
    await respond(ctx.send, 200, _encode({"input_tokens": out.prompt_tokens}),
                  [(b"x-request-id", ctx.request_id.encode())])


async def _stream(ctx: RequestContext, call: Call, stream: ChunkStream,
                  out: StreamTranslator) -> None:
    send = ctx.send
    started = False
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_SSE_HEADERS, *call_headers(call, overhead=False),
                                _request_id(call)]})
        started = True
        await _pump(ctx, stream, call, out)
    except asyncio.CancelledError:
        await stream.aclose()  # stop generating, close the upstream, record what was sent
        if not started or not shutdown_cut(ctx):
            raise
        exc = ServerShuttingDownError("The server is shutting down; this stream was cut short")
        await send({"type": "http.response.body", "body": _error_event(exc, call),
                    "more_body": False})


async def _pump(ctx: RequestContext, stream: ChunkStream, call: Call,
                out: StreamTranslator) -> None:
    send = ctx.send
    try:
        async for chunk in stream:
            frames = out.feed(chunk)
            if frames:
                await send({"type": "http.response.body", "body": frames, "more_body": True})
    except Exception as exc:
        await send({"type": "http.response.body", "body": _error_event(exc, call),
                    "more_body": False})
        return
    await send({"type": "http.response.body", "body": out.end(), "more_body": False})


def _request_id(call: Call) -> tuple[bytes, bytes]:
    """Anthropic's own header name for it: the SDK exposes it as `message._request_id`."""
    return (b"request-id", call.request_id.encode())


def _error_event(exc: BaseException, call: Call) -> bytes:
    _, _, payload = error_body(exc, call.request_id, anthropic=True)
    return b"event: error\ndata: " + payload + b"\n\n"
