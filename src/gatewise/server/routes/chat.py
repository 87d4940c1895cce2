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
from gatewise.pipeline import steps
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body
from gatewise.server.http import Send, header, respond
from gatewise.server.lifecycle import Cut
from gatewise.server.steps import StepFrames, StepList, wants_steps
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
    if wants_steps(ctx.scope):
        await _with_steps(ctx, call)
        return
    result = await ctx.gateway.run(call)
    if isinstance(result, ChatCompletion):
        await respond(ctx.send, 200, _encode(result), call_headers(call, overhead=True))
        return
    assert isinstance(result, ChunkStream)
    await stream_sse(ctx, call, result)


async def _with_steps(ctx: RequestContext, call: Call) -> None:
    """The call with its steps reported (`x-gatewise-steps: 1`, `server/steps.py`). A stream's
    headers go out with its first step, so the steps before the first chunk are seen as they
    happen; a failure before any step was written is still a plain HTTP error."""
    if not call.stream:
        found = StepList()
        steps.listen(call, found)
        done = await ctx.gateway.run(call)
        assert isinstance(done, ChatCompletion)
        await respond(ctx.send, 200, found.attach(_encode(done)), call_headers(call, overhead=True))
        return
    frames = StepFrames()
    steps.listen(call, frames)
    send = ctx.send
    run = asyncio.ensure_future(ctx.gateway.run(call))
    started = False
    try:
        while True:
            frames.wake.clear()
            if run.done():
                break
            if frames.pending:
                if not started:
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [*_SSE_HEADERS, *call_headers(call, overhead=False)]})
                    started = True
                await send({"type": "http.response.body", "body": frames.take(),
                            "more_body": True})
            wake = asyncio.ensure_future(frames.wake.wait())
            try:
                await asyncio.wait((run, wake), return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
    except asyncio.CancelledError:
        run.cancel()  # the upstream request is closed as the cancellation unwinds
        await asyncio.wait((run,))
        if not run.cancelled() and isinstance(run.exception() or run.result(), ChunkStream):
            await run.result().aclose()  # it had just opened: close it all the same
        if started and shutdown_cut(ctx):
            await _send_shutdown_error(send, call)
            return
        raise
    try:
        result = run.result()
    except Exception as exc:
        if not started:
            raise
        _, _, payload = error_body(exc, call.request_id)
        await send({"type": "http.response.body",
                    "body": frames.take() + b"data: " + payload + b"\n\n", "more_body": False})
        return
    assert isinstance(result, ChunkStream)
    await stream_sse(ctx, call, result, frames=frames, started=started)


# A chunk as the bytes of one SSE `data:` payload; None: the route sends nothing for it.
ChunkEncoder = Callable[[ChatCompletionChunk], bytes | None]


async def stream_sse(ctx: RequestContext, call: Call, stream: ChunkStream,
                     encode: ChunkEncoder = _encode, *, frames: StepFrames | None = None,
                     started: bool = False) -> None:
    """The stream in OpenAI's SSE framing, each chunk as `encode` makes it (another OpenAI
    shape, e.g. legacy `text_completion` objects, reuses everything but the encoding).
    `frames`: the call's step frames, written in order between the chunks; `started`: the
    response's headers were sent already (with the first step)."""
    send = ctx.send
    try:
        if not started:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_SSE_HEADERS, *call_headers(call, overhead=False)]})
            started = True
        await _pump(send, stream, call, encode, frames)
    except asyncio.CancelledError:
        # Cut by the guard (the client left, or the shutdown grace period ended) or cancelled
        # by the server: stop generating, close the upstream, record the tokens delivered.
        await stream.aclose()
        if not started or not shutdown_cut(ctx):
            raise  # nobody to answer, or `InFlight.run` answers (a 503 if nothing was sent)
        await _send_shutdown_error(send, call)


def shutdown_cut(ctx: RequestContext) -> bool:
    """The guard cut this request for the shutdown (and the cancellation was only that)."""
    guard = ctx.guard
    return guard is not None and guard.cut is Cut.SHUTDOWN and guard.absorb() is not None


async def _send_shutdown_error(send: Send, call: Call) -> None:
    exc = ServerShuttingDownError("The server is shutting down; this stream was cut short")
    _, _, payload = error_body(exc, call.request_id)
    await send({"type": "http.response.body", "body": b"data: " + payload + b"\n\n",
                "more_body": False})


async def _pump(s: Send, stream: ChunkStream, call: Call, encode: ChunkEncoder,
                frames: StepFrames | None) -> None:
    try:
        async for chunk in stream:
            data = encode(chunk)
            if frames is not None and frames.pending:  # steps up to this chunk come first
                await s({"type": "http.response.body", "body": frames.take(),
                         "more_body": True})
            if data is not None:
                await s({"type": "http.response.body", "body": b"data: " + data + b"\n\n",
                         "more_body": True})
    except Exception as exc:
        _, _, payload = error_body(exc, call.request_id)
        head = frames.take() if frames is not None else b""  # the `error` step first
        await s({"type": "http.response.body", "body": head + b"data: " + payload + b"\n\n",
                 "more_body": False})
        return
    tail = _DONE if frames is None else frames.take() + _DONE  # the `done` step first
    await s({"type": "http.response.body", "body": tail, "more_body": False})
