"""A fake Anthropic Messages API host (`POST /v1/messages`, `GET /v1/models`).

Bodies follow Anthropic's recorded responses field for field (`msg_01…`/`toolu_01…` ids, the
full usage object with cache counts and `service_tier`, compact JSON); streams are SSE with a
named `event:` line per frame, a `ping` after the first block opens, and `message_stop` as the
end marker. The host checks what the real one checks and answers with its own error bodies:
`x-api-key` and `anthropic-version` headers, a required `max_tokens`, temperature within 0..1,
only user/assistant roles, and every `tool_use` answered by a `tool_result` in the next turn.

Faults come from `tests.fakes.faults` by model name, plus two of this host's own:
`stream-error` sends an `overloaded_error` event mid-stream, and `think` opens the answer with a
thinking block (which gatewise must keep out of the content).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
from typing import Any

from aiohttp import web

from tests.fakes.common import count_tokens, reply_for, sample_arguments, words
from tests.fakes.faults import fault_response
from tests.fakes.server import FakeServer

MODELS = [
    {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
     "created_at": "2025-05-22T00:00:00Z"},
    {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Claude Haiku 3.5",
     "created_at": "2024-10-22T00:00:00Z"},
]
_ALPHABET = string.ascii_letters + string.digits
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
          500: "api_error", 529: "overloaded_error"}
# Anthropic's own wording for the statuses the shared faults produce.
_MESSAGES = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    429: "Number of request tokens has exceeded your per-minute rate limit "
         "(https://docs.claude.com/en/api/rate-limits); see the response headers for current "
         "usage. Please reduce the prompt length or the maximum tokens requested, or try again "
         "later.",
    500: "Internal server error",
    529: "Overloaded",
}


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def _body(status: int, message: str) -> dict[str, object]:
    return {"type": "error",
            "error": {"type": _TYPES.get(status, "api_error"), "message": message},
            "request_id": _id("req_011C")}


def error_body(status: int, message: str) -> dict[str, object]:
    """The shared faults' errors, reworded as Anthropic words them."""
    if "context length" in message.lower():
        return _body(status, "prompt is too long: 9000 tokens > 8192 maximum")
    return _body(status, _MESSAGES.get(status, message))


def _error(status: int, message: str) -> web.Response:
    return web.json_response(_body(status, message), status=status)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _check(body: dict[str, Any]) -> str | None:
    """What the real host refuses, in its words, or None."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    temp = body.get("temperature")
    if temp is not None and not 0 <= temp <= 1:
        return "temperature: Input should be less than or equal to 1"
    messages = body.get("messages") or []
    if not messages:
        return "messages: Field required"
    for i, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            return (f'messages.{i}.role: Unexpected role "{m.get("role")}". The Messages API '
                    'accepts a top-level `system` parameter, not "system" as an input message role.')
        called = {b["id"] for b in _blocks(m["content"]) if b.get("type") == "tool_use"}
        answered = set()
        if i + 1 < len(messages) and messages[i + 1].get("role") == "user":
            answered = {b.get("tool_use_id") for b in _blocks(messages[i + 1]["content"])
                        if b.get("type") == "tool_result"}
        if called and i + 1 < len(messages) and not called <= answered:
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(called - answered))}. Each `tool_use` "
                    "block must have a corresponding `tool_result` block in the next message.")
        results = {b.get("tool_use_id") for b in _blocks(m["content"])
                   if b.get("type") == "tool_result"}
        before = set()
        if i > 0 and messages[i - 1].get("role") == "assistant":
            before = {b["id"] for b in _blocks(messages[i - 1]["content"])
                      if b.get("type") == "tool_use"}
        if not results <= before:
            return (f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {', '.join(sorted(results - before))}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message.")
    return None


def _text(block: dict[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        c = block.get("content", "")
        return c if isinstance(c, str) else " ".join(b.get("text", "") for b in c)
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """The last user turn that says something; a turn of tool results alone is not a question."""
    for m in reversed(messages):
        if m.get("role") == "user":
            texts = [b["text"] for b in _blocks(m["content"]) if b.get("type") == "text"]
            if texts:
                return " ".join(texts)
    return ""


def _input_tokens(body: dict[str, Any]) -> int:
    system = body.get("system") or ""
    total = count_tokens(system if isinstance(system, str) else " ".join(b["text"] for b in system))
    for m in body["messages"]:
        total += sum(count_tokens(_text(b)) for b in _blocks(m["content"])) + 3
    return total


def _answer(body: dict[str, Any], model: str) -> tuple[list[dict[str, Any]], str, str | None]:
    """(content blocks, stop_reason, stop_sequence) the fake model 'decides' on."""
    messages = body["messages"]
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    last = _blocks(messages[-1]["content"]) if messages[-1]["role"] == "user" else []
    answering_tool = any(b.get("type") == "tool_result" for b in last)
    blocks: list[dict[str, Any]] = []
    if "think" in model:
        blocks.append({"type": "thinking", "thinking": "The user greets me; I greet back.",
                       "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"})
    if tools and choice["type"] != "none" and not answering_tool:
        tool = tools[0]
        if choice["type"] == "tool":
            tool = next(t for t in tools if t["name"] == choice["name"])
        schema = tool.get("input_schema") or {"type": "object"}
        if "properties" in schema:
            args = json.loads(sample_arguments(schema))
        else:  # a free-form object (JSON mode): the model fills it with its answer
            args = {"answer": reply_for(_last_user_text(messages))}
        blocks.append({"type": "tool_use", "id": _id("toolu_01"), "name": tool["name"],
                       "input": args})
        return blocks, "tool_use", None
    text = reply_for(_last_user_text(messages))
    for stop in body.get("stop_sequences") or ():
        if stop in text:
            blocks.append({"type": "text", "text": text[: text.index(stop)]})
            return blocks, "stop_sequence", stop
    limit = body["max_tokens"]
    if count_tokens(text) > limit:
        blocks.append({"type": "text", "text": " ".join(text.split()[:limit])})
        return blocks, "max_tokens", None
    blocks.append({"type": "text", "text": text})
    return blocks, "end_turn", None


def _output_tokens(blocks: list[dict[str, Any]]) -> int:
    total = 0
    for b in blocks:
        if b["type"] == "text":
            total += count_tokens(b["text"])
        elif b["type"] == "tool_use":
            total += count_tokens(json.dumps(b["input"]))
        elif b["type"] == "thinking":
            total += count_tokens(b["thinking"])
    return total


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens, "service_tier": "standard"}


def _authorized(request: web.Request) -> web.Response | None:
    key = request.headers.get("x-api-key")
    if not key:
        return _error(401, "x-api-key header is required")
    if key == "bad-key":
        return _error(401, "invalid x-api-key")
    return None


async def _stream(request: web.Request, model: str, msg: dict[str, Any],
                  blocks: list[dict[str, Any]]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                       "cache-control": "no-cache",
                                       "request-id": _id("req_011C")})
    await resp.prepare(request)

    async def send(event: str, data: dict[str, Any]) -> None:
        await resp.write(b"event: " + event.encode() + b"\ndata: " + _dumps(data) + b"\n\n")

    start = dict(msg, content=[], stop_reason=None, stop_sequence=None,
                 usage=dict(msg["usage"], output_tokens=1))
    await send("message_start", {"type": "message_start", "message": start})
    sent_text = 0
    for index, block in enumerate(blocks):
        kind = block["type"]
        opening = {"text": {"type": "text", "text": ""},
                   "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                   "tool_use": {"type": "tool_use", "id": block.get("id"),
                                "name": block.get("name"), "input": {}}}[kind]
        await send("content_block_start",
                   {"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            await send("ping", {"type": "ping"})
        if kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in words(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            args = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": args[i:i + 8]}
                for i in range(0, len(args), 8)]
        else:
            deltas = [{"type": "text_delta", "text": p} for p in words(block["text"]) if p]
        for delta in deltas:
            if kind == "text" and "cut" in model and sent_text == 2:
                await resp.write_eof()  # the connection ends: no message_stop
                return resp
            if kind == "text" and "stream-error" in model and sent_text == 1:
                await send("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                "message": "Overloaded"}})
                await resp.write_eof()
                return resp
            await send("content_block_delta",
                       {"type": "content_block_delta", "index": index, "delta": delta})
            sent_text += kind == "text"
            await asyncio.sleep(0)
        await send("content_block_stop", {"type": "content_block_stop", "index": index})
    await send("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
        "usage": {"input_tokens": msg["usage"]["input_tokens"], "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0,
                  "output_tokens": msg["usage"]["output_tokens"]}})
    await send("message_stop", {"type": "message_stop"})
    await resp.write_eof()
    return resp


def make_app(srv: FakeServer) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        denied = _authorized(request)
        if denied is not None:
            return denied
        if "anthropic-version" not in request.headers:
            return _error(400, "anthropic-version: header is required")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "There was an error parsing the body of your request.")
        model = str(body.get("model", ""))
        fault = await fault_response(request, model, error_body)
        if fault is not None:
            return fault
        problem = _check(body)
        if problem is not None:
            return _error(400, problem)
        blocks, stop_reason, stop_sequence = _answer(body, model)
        msg = {"id": _id("msg_01"), "type": "message", "role": "assistant", "model": model,
               "content": blocks, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
               "usage": _usage(_input_tokens(body), _output_tokens(blocks))}
        if body.get("stream"):
            return await _stream(request, model, msg, blocks)
        if "cut" in model:
            return web.Response(body=_dumps(msg)[:60], content_type="application/json")
        return web.Response(body=_dumps(msg), content_type="application/json",
                            headers={"request-id": _id("req_011C")})

    async def models(request: web.Request) -> web.Response:
        denied = _authorized(request)
        if denied is not None:
            return denied
        return web.json_response({"data": MODELS, "has_more": False,
                                  "first_id": MODELS[0]["id"], "last_id": MODELS[-1]["id"]})

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    return app
