"""`POST /v1/chat/completions`: JSON, or SSE exactly as OpenAI streams it.

A stream's headers are sent only after the first chunk arrived, so a failure before the first
byte is still a proper HTTP error. After that, a failure ends the stream with an error event in
OpenAI's shape (the SDK raises it), never a silent cut. A client that disconnects cancels the
upstream call.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body
from gatewise.server.http import Send, header, read_body, respond
from gatewise.types.responses import ChatCompletion
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
    body = await read_body(ctx.scope, ctx.receive, ctx.max_body)
    req = decode_chat_request(body)
    call = Call("chat", req, ctx.identity, request_id=ctx.request_id,
                request_headers=ctx.scope["headers"])
    if header(ctx.scope, b"x-gatewise-fit-context") in (b"true", b"1"):
        call.fit_context = True
    conversation = header(ctx.scope, b"x-gatewise-conversation")
    if conversation:
        call.conversation = conversation.decode("latin-1")[:128]
    result = await ctx.gateway.run(call)
    if isinstance(result, ChatCompletion):
        await respond(ctx.send, 200, _encode(result), call_headers(call, overhead=True))
        return
    assert isinstance(result, ChunkStream)
    await _stream(ctx, call, result)


async def _stream(ctx: RequestContext, call: Call, stream: ChunkStream) -> None:
    send = ctx.send
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_SSE_HEADERS, *call_headers(call, overhead=False)]})
    # The stream is pumped in this task; a watcher on `receive` cancels it if the client goes
    # away (uvicorn's `send` silently drops data for a gone client, so only `receive` tells).
    me = asyncio.current_task()
    assert me is not None
    gone = False

    def client_left(watch: asyncio.Future[None]) -> None:
        nonlocal gone
        if not watch.cancelled() and watch.exception() is None:
            gone = True
            me.cancel()

    watcher = asyncio.ensure_future(_wait_disconnect(ctx))
    watcher.add_done_callback(client_left)
    try:
        await _pump(send, stream, call)
    except asyncio.CancelledError:
        if not gone:
            raise
        me.uncancel()
    finally:
        watcher.remove_done_callback(client_left)
        watcher.cancel()
        if gone:
            # The client went away: stop generating and release the upstream connection.
            await stream.aclose()


async def _pump(s: Send, stream: ChunkStream, call: Call) -> None:
    try:
        async for chunk in stream:
            await s({"type": "http.response.body", "body": b"data: " + _encode(chunk) + b"\n\n",
                     "more_body": True})
    except Exception as exc:
        _, _, payload = error_body(exc, call.request_id)
        await s({"type": "http.response.body", "body": b"data: " + payload + b"\n\n",
                 "more_body": False})
        return
    await s({"type": "http.response.body", "body": _DONE, "more_body": False})


async def _wait_disconnect(ctx: RequestContext) -> None:
    while True:
        msg = await ctx.receive()
        if msg["type"] == "http.disconnect":
            return
