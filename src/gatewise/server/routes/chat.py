"""`POST /v1/chat/completions`: JSON, or SSE exactly as OpenAI streams it.

A stream's headers are sent only after the first chunk arrived, so a failure before the first
byte is still a proper HTTP error. After that, a failure ends the stream with an error event in
OpenAI's shape (the SDK raises it), never a silent cut. The route runs under a `RequestGuard`
(`server/lifecycle.py`): a client that disconnects cancels the upstream call, before the first
chunk as well as after, and a shutdown whose grace period ran out ends a stream with a
`server_shutting_down` error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

from gatewise.errors import ServerShuttingDownError
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body
from gatewise.server.http import Send, header, respond
from gatewise.server.lifecycle import Cut
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import decode_chat_request

_encode = msgspec.json.Encoder().encode
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_DONE = b"data: [DONE]\n\n"


def call_headers(call: Call, *, overhead: bool) -> list[tuple[bytes, bytes]]:
    h = [(b"x-request-id", call.request_id.encode())]
    for k, v in call.response_headers.items():
        h.append((k.encode(), v.encode()))
    if overhead:
        spent = time.perf_counter() - call.started - call.upstream_s
        h.append((b"x-gatewise-overhead-ms", f"{max(0.0, spent) * 1000:.3f}".encode()))
    return h


async def handle_chat(ctx: RequestContext) -> None:
    body = await ctx.read_body()
    conversation = header(ctx.scope, b"x-gatewise-conversation")
    req = decode_chat_request(body, max_depth=ctx.gateway.config.config.server.max_json_depth,
                              continues=bool(conversation))
    call = Call("chat", req, ctx.identity, request_id=ctx.request_id,
                request_headers=ctx.scope["headers"])
    if header(ctx.scope, b"x-gatewise-fit-context") in (b"true", b"1"):
        call.fit_context = True
    if conversation:
        call.conversation = conversation.decode("latin-1")[:128]
    assistant = header(ctx.scope, b"x-gatewise-assistant")
    if assistant:
        call.assistant = assistant.decode("latin-1")[:128]
    result = await ctx.gateway.run(call)
    if isinstance(result, ChatCompletion):
        await respond(ctx.send, 200, _encode(result), call_headers(call, overhead=True))
        return
    assert isinstance(result, ChunkStream)
    await stream_sse(ctx, call, result)


# A chunk as the bytes of one SSE `data:` payload; None: the route sends nothing for it.
ChunkEncoder = Callable[[ChatCompletionChunk], bytes | None]


async def stream_sse(ctx: RequestContext, call: Call, stream: ChunkStream,
                     encode: ChunkEncoder = _encode) -> None:
    """The stream in OpenAI's SSE framing, each chunk as `encode` makes it (another OpenAI
    shape, e.g. legacy `text_completion` objects, reuses everything but the encoding)."""
    send = ctx.send
    started = False
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_SSE_HEADERS, *call_headers(call, overhead=False)]})
        started = True
        await _pump(send, stream, call, encode)
    except asyncio.CancelledError:
        # Cut by the guard (the client left, or the shutdown grace period ended) or cancelled
        # by the server: stop generating, close the upstream, record the tokens delivered.
        await stream.aclose()
        guard = ctx.guard
        if (not started or guard is None or guard.cut is not Cut.SHUTDOWN
                or guard.absorb() is None):
            raise  # nobody to answer, or `InFlight.run` answers (a 503 if nothing was sent)
        exc = ServerShuttingDownError("The server is shutting down; this stream was cut short")
        _, _, payload = error_body(exc, call.request_id)
        await send({"type": "http.response.body", "body": b"data: " + payload + b"\n\n",
                    "more_body": False})


async def _pump(s: Send, stream: ChunkStream, call: Call, encode: ChunkEncoder) -> None:
    try:
        async for chunk in stream:
            data = encode(chunk)
            if data is not None:
                await s({"type": "http.response.body", "body": b"data: " + data + b"\n\n",
                         "more_body": True})
    except Exception as exc:
        _, _, payload = error_body(exc, call.request_id)
        await s({"type": "http.response.body", "body": b"data: " + payload + b"\n\n",
                 "more_body": False})
        return
    await s({"type": "http.response.body", "body": _DONE, "more_body": False})
