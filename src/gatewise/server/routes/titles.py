"""`POST /v1/titles`: an epic title from a description (`gatewise.titles`), as JSON or as SSE.

The body is checked first (`titles.spec`): a bad field is a 400 naming it, before anything is
reserved or recorded. The title is then a chat call through the whole chain, with the
caller's identity and headers (`x-gatewise-cache: no-cache` is Regenerate), so keys, rate
limits, budgets, guardrails, the cache and the ledger treat it as they treat chat.

Streaming follows the chat route (`routes/chat.py`): headers go out only once the first chunk
arrived, so a refusal before it is a proper HTTP error; a failure after it ends the stream with
an error event in OpenAI's shape. Frames: `{"object": "title.delta", "delta": …}` per piece,
then the whole `title` object, then `data: [DONE]`. `x-gatewise-cache` says `hit`,
`semantic_hit` or `miss` (the contract's words; a bypassed or uncached call is a miss).
"""

from __future__ import annotations

import asyncio

import msgspec

from gatewise.pipeline.core import Call
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body
from gatewise.server.http import respond
from gatewise.server.routes.chat import call_headers
from gatewise.titles.service import CACHE_HEADER, Title, TitleStream, cache_result
from gatewise.titles.spec import decode_title_request

_encode = msgspec.json.Encoder().encode
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_DONE = b"data: [DONE]\n\n"
_CACHE = CACHE_HEADER.encode()


def _headers(call: Call, cache: str, *, overhead: bool) -> list[tuple[bytes, bytes]]:
    out = [(k, v) for k, v in call_headers(call, overhead=overhead) if k != _CACHE]
    out.append((_CACHE, cache.encode()))
    return out


async def handle_titles(ctx: RequestContext) -> None:
    body = await ctx.read_body()
    gateway = ctx.gateway
    req = decode_title_request(body, max_depth=gateway.config.config.server.max_json_depth)
    titles = gateway.titles
    call = titles.prepare(req, ctx.identity, request_id=ctx.request_id,
                          request_headers=ctx.scope["headers"])
    if not req.stream:
        title = await titles.complete(call, req)
        await respond(ctx.send, 200, _encode(title.to_dict()),
                      _headers(call, title.cache, overhead=True))
        return
    stream = titles.stream(call, req)
    try:
        await stream.start()  # a refusal before the first chunk is still an HTTP error
    except asyncio.CancelledError:
        await stream.aclose()
        raise
    await _stream(ctx, call, stream)


def _frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


async def _stream(ctx: RequestContext, call: Call, stream: TitleStream) -> None:
    send = ctx.send
    word = cache_result(call)  # known once the call returned its stream
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_SSE_HEADERS, *_headers(call, word, overhead=False)]})
        try:
            async for delta in stream:
                await send({"type": "http.response.body", "more_body": True, "body": _frame(
                    _encode({"object": "title.delta", "delta": delta}))})
            title: Title | None = stream.result
            assert title is not None
        except Exception as exc:  # after the headers: an error event ends the stream
            _, _, payload = error_body(exc, call.request_id)
            await send({"type": "http.response.body", "body": _frame(payload),
                        "more_body": False})
            return
        await send({"type": "http.response.body", "more_body": True,
                    "body": _frame(_encode(title.to_dict()))})
        await send({"type": "http.response.body", "body": _DONE, "more_body": False})
    except asyncio.CancelledError:
        await stream.aclose()  # the client left or the server drains: stop the upstream
        raise
