"""`/v1/responses`: OpenAI's Responses API, served by any configured provider.

- `POST /v1/responses`: the request becomes a canonical chat call
  (`server/responses/inbound.py`) and runs through the same pipeline as
  `/v1/chat/completions` (keys, budgets, rate limits, guardrails, cache, ledger); the answer
  goes back as a Response object, or as the Responses event stream (`outbound.py`). With
  `previous_response_id` the stored thread of that response goes in front of the input; with
  `store` (the default) the new response is kept (`responses/store.py`, the conversation
  store: shared by replicas on Redis or PostgreSQL), masked under the call's PII policy
  (`responses/store.py`) and restored when read back. An unknown (or another team's)
  `previous_response_id` is a 404 before anything is sent upstream or recorded;
- `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`,
  `GET /v1/responses/{id}/input_items` (`limit` 1-100, `order` asc|desc, `after`).

Stored responses belong to the caller's team and need `llm:generate`, as conversations do.
Streaming follows chat's rules: headers only after the first chunk (a failure before it is a
proper HTTP error), a later failure ends the stream with `error` and `response.failed`, a
client that leaves cancels the upstream call, a shutdown past its grace period ends the stream
with a `server_shutting_down` error. A stored streamed response is saved before its
`response.completed` goes out, so a client that continues at once finds it on any replica.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gatewise.errors import (
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ServerShuttingDownError,
)
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.server.context import RequestContext
from gatewise.server.errors import error_body
from gatewise.server.http import respond
from gatewise.server.responses.inbound import (
    RESPONSE_ID_PATTERN,
    ParsedRequest,
    decode_responses_request,
    to_chat_request,
)
from gatewise.server.responses.outbound import (
    StreamTranslator,
    envelope,
    input_items,
    new_id,
    response_from_completion,
    thread_message,
)
from gatewise.server.responses.store import ResponseStore, StoredResponse, thread_key
from gatewise.server.routes.admin.common import query_params
from gatewise.server.routes.chat import call_headers, shutdown_cut
from gatewise.types.responses import ChatCompletion

log = logging.getLogger("gatewise.server")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder()
PERMISSION = "llm:generate"
PREFIXES = ("/v1/responses/", "/responses/")
_ID = re.compile(RESPONSE_ID_PATTERN)
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
Route = Callable[[RequestContext], Awaitable[None]]


def _store(ctx: RequestContext) -> ResponseStore:
    memory = ctx.gateway.conversations
    return ResponseStore(memory.store, memory.ttl_s)


def _check(ctx: RequestContext) -> None:
    if not ctx.identity.can(PERMISSION):
        raise ForbiddenError(f"permission {PERMISSION!r} is required")


async def handle_create(ctx: RequestContext) -> None:
    body = await ctx.read_body()
    _check(ctx)  # first: a caller without the permission learns nothing from validation
    max_depth = ctx.gateway.config.config.server.max_json_depth
    parsed = decode_responses_request(body, max_depth=max_depth)
    store = _store(ctx)
    thread: list[dict[str, Any]] = []
    response_id = new_id("resp")
    thread_id = response_id
    previous = parsed.body.previous_response_id
    if previous is not None:
        prior = await store.load(ctx.identity.tenant, previous, param="previous_response_id")
        thread, thread_id = prior.thread, prior.thread_id
    req = to_chat_request(parsed, thread, max_depth=max_depth)
    call = Call("chat", req, ctx.identity, request_id=ctx.request_id,
                request_headers=ctx.scope["headers"])
    if parsed.body.store or previous is not None:
        call.thread = thread_key(thread_id)  # the thread's PII vault (`responses/store.py`)
    result = await ctx.gateway.run(call)
    base = envelope(parsed, response_id, int(time.time()))
    if isinstance(result, ChatCompletion):
        response = response_from_completion(base, result)
        await _save(ctx, call, store, parsed, thread, thread_id, response)
        await respond(ctx.send, 200, _encode(response), call_headers(call, overhead=True))
        return
    assert isinstance(result, ChunkStream)
    out = StreamTranslator(base)
    await _stream(ctx, call, result, out, lambda final: _save(ctx, call, store, parsed,
                                                               thread, thread_id, final))


async def _save(ctx: RequestContext, call: Call, store: ResponseStore, parsed: ParsedRequest,
                thread: list[dict[str, Any]], thread_id: str, response: dict[str, Any]) -> None:
    """Keeps the response (unless `store: false`), masked under the call's PII policy (the
    stored thread is masked already). A store that fails is logged, not raised: the caller
    has the answer (and paid for it); continuing from it will say 404."""
    if not parsed.body.store:
        return
    answer = thread_message(response["output"])
    new = [*parsed.messages, *([answer] if answer else [])]
    try:
        stored, new, items = await ctx.gateway.guardrails.mask_docs(
            call, [response, new, input_items(parsed.body.input)])
        await store.save(ctx.identity.tenant, stored, [*thread, *new], items,
                         thread_id=thread_id, vault=call.conversation or thread_key(thread_id))
    except Exception as exc:
        log.warning("storing response %s failed: %s", response["id"], type(exc).__name__)
        call.event("response_store_failed", error=type(exc).__name__)


async def _stream(ctx: RequestContext, call: Call, stream: ChunkStream, out: StreamTranslator,
                  save: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    send = ctx.send
    started = False
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_SSE_HEADERS, *call_headers(call, overhead=False)]})
        started = True
        await _pump(ctx, stream, call, out, save)
    except asyncio.CancelledError:
        await stream.aclose()  # stop generating, close the upstream, record what was sent
        if not started or not shutdown_cut(ctx):
            raise
        exc = ServerShuttingDownError("The server is shutting down; this stream was cut short")
        await send({"type": "http.response.body", "body": _failure(exc, call, out),
                    "more_body": False})


async def _pump(ctx: RequestContext, stream: ChunkStream, call: Call, out: StreamTranslator,
                save: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    send = ctx.send
    try:
        async for chunk in stream:
            frames = out.feed(chunk)
            if frames:
                await send({"type": "http.response.body", "body": frames, "more_body": True})
    except Exception as exc:
        await send({"type": "http.response.body", "body": _failure(exc, call, out),
                    "more_body": False})
        return
    last = out.end()
    assert out.final is not None
    await save(out.final)
    await send({"type": "http.response.body", "body": last, "more_body": False})


def _failure(exc: BaseException, call: Call, out: StreamTranslator) -> bytes:
    _, _, payload = error_body(exc, call.request_id)
    error: dict[str, Any] = _decode.decode(payload)["error"]
    return out.fail(error)


# -- stored responses ---------------------------------------------------------------------


async def _send(ctx: RequestContext, data: Any) -> None:
    await respond(ctx.send, 200, _encode(data), [(b"x-request-id", ctx.request_id.encode())])


async def _restore(ctx: RequestContext, stored: StoredResponse, doc: Any) -> Any:
    """`doc` of a stored response with the placeholders its thread's vault still holds
    restored: the caller's team reads its own text back, as from `/v1/conversations`."""
    return await ctx.gateway.guardrails.restore(ctx.identity.tenant, stored.vault, doc)


async def handle_get(ctx: RequestContext, response_id: str) -> None:
    _check(ctx)
    stored = await _store(ctx).load(ctx.identity.tenant, response_id, thread=False)
    await _send(ctx, await _restore(ctx, stored, stored.response))


async def handle_delete(ctx: RequestContext, response_id: str) -> None:
    _check(ctx)
    await _store(ctx).delete(ctx.identity.tenant, response_id)
    await _send(ctx, {"id": response_id, "object": "response.deleted", "deleted": True})


async def handle_input_items(ctx: RequestContext, response_id: str) -> None:
    """OpenAI's cursor list: newest first unless `order=asc`, `after` an item id (an id
    the response does not hold gives an empty page, as a cursor past the end does)."""
    _check(ctx)
    params = query_params(ctx)
    raw = params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100:
        raise InvalidRequestError("limit must be an integer from 1 to 100", param="limit")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be 'asc' or 'desc'", param="order")
    stored = await _store(ctx).load(ctx.identity.tenant, response_id, thread=False)
    items = stored.input_items if order == "asc" else stored.input_items[::-1]
    after = params.get("after")
    if after is not None:  # the items after that one; none after an id it does not hold
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = await _restore(ctx, stored, items[:int(raw)])
    await _send(ctx, {"object": "list", "data": page,
                      "first_id": page[0]["id"] if page else None,
                      "last_id": page[-1]["id"] if page else None,
                      "has_more": len(items) > len(page)})


def _with_id(handler: Callable[[RequestContext, str], Awaitable[None]],
             response_id: str) -> Route:
    async def route(ctx: RequestContext) -> None:
        if not _ID.match(response_id):  # after authentication: a 401 comes first
            _check(ctx)
            raise NotFoundError("No response found with that id.", code="response_not_found")
        await handler(ctx, response_id)

    return route


def match_responses(method: str, path: str) -> Route | list[str] | None:
    """The route for `/v1/responses/{id}[/input_items]`; the methods the path takes when
    `method` is not one of them (a 405); None when the path is not one of ours (404). An id
    that cannot be a response id is a 404 like an unknown one, once the caller is
    authenticated (so an unauthenticated caller gets its 401 on every id)."""
    rest = path.split("/responses/", 1)[1]
    response_id, _, tail = rest.partition("/")
    if not response_id:
        return None
    if tail == "":
        table = {"GET": handle_get, "DELETE": handle_delete}
    elif tail == "input_items":
        table = {"GET": handle_input_items}
    else:
        return None
    handler = table.get(method)
    if handler is None:
        return sorted(table)
    return _with_id(handler, response_id)
