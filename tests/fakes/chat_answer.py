"""One OpenAI chat-completions answer, as JSON or as an SSE stream, for the fakes that decide
*what* to answer themselves (`pii_echo_fake`, `tests/examples/scripted_openai.py`).

The shapes are OpenAI's documented ones: a `chat.completion` body; or `chat.completion.chunk`
frames opening with the assistant role, then each tool call's id and name followed by its
arguments in pieces, then the text in pieces, an empty delta with the finish reason, a usage
chunk when `stream_options.include_usage` is set, and `data: [DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web


async def answer(request: web.Request, body: dict[str, Any], base: dict[str, Any], *,
                 content: str | None, calls: list[dict[str, Any]], usage: dict[str, Any],
                 split: Callable[[str], Iterable[str]], arg_step: int) -> web.StreamResponse:
    """The answer to `body` (streamed when it asked): `content` or `calls` (OpenAI tool-call
    objects); `base` holds `id`, `created`, `model`, `system_fingerprint`. A stream sends the
    text as `split(content)` gives it and each call's arguments `arg_step` characters at a
    time."""
    finish = "tool_calls" if calls else "stop"
    if not body.get("stream"):
        msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            msg["tool_calls"] = calls
        return web.json_response(dict(base, object="chat.completion", usage=usage, choices=[
            {"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}]))
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)

    async def send(delta: dict[str, Any], reason: str | None = None) -> None:
        chunk = dict(base, object="chat.completion.chunk", choices=[
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}])
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    await send({"role": "assistant", "content": ""})
    for i, c in enumerate(calls):
        await send({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                    "function": {"name": c["function"]["name"],
                                                 "arguments": ""}}]})
        args = c["function"]["arguments"]
        for j in range(0, len(args), arg_step):
            await send({"tool_calls": [{"index": i,
                                        "function": {"arguments": args[j:j + arg_step]}}]})
    for piece in split(content or ""):
        if piece:
            await send({"content": piece})
    await send({}, finish)
    if (body.get("stream_options") or {}).get("include_usage"):
        chunk = dict(base, object="chat.completion.chunk", choices=[], usage=usage)
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
