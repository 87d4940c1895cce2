"""A fake OpenAI host that echoes everything it was sent, for the PII canary: the answer
repeats every message's text (so placeholders from the system prompt, history and tool results
come back), streams it three characters at a time (so placeholders arrive split across
chunks), and, when tools are offered, calls the first one with the last user text as its
argument (streamed four characters at a time)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from tests.fakes.common import last_user_text
from tests.fakes.server import FakeServer


def _texts(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for m in body.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text")
        for tc in m.get("tool_calls") or ():
            out.append(tc["function"]["arguments"])
    return out


def make_app(srv: FakeServer) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        tools = body.get("tools") or []
        last = body.get("messages", [{}])[-1]
        call = None
        content: str | None = " | ".join(_texts(body))
        if tools and last.get("role") != "tool":
            args = json.dumps({"echo": last_user_text(body["messages"])})
            call = {"id": "call_echo1", "type": "function",
                    "function": {"name": tools[0]["function"]["name"], "arguments": args}}
            content = None
        finish = "tool_calls" if call else "stop"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        base = {"id": "chatcmpl-echo", "created": int(time.time()), "model": model,
                "system_fingerprint": "fp_echo"}
        if not body.get("stream"):
            msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if call:
                msg["tool_calls"] = [call]
            return web.json_response(dict(base, object="chat.completion", usage=usage, choices=[
                {"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}]))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)

        async def send(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            chunk = dict(base, object="chat.completion.chunk", choices=[
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        await send({"role": "assistant", "content": ""})
        if call:
            await send({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                        "function": {"name": call["function"]["name"], "arguments": ""}}]})
            args = call["function"]["arguments"]
            for i in range(0, len(args), 4):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 4]}}]})
        else:
            assert content is not None
            for i in range(0, len(content), 3):
                await send({"content": content[i:i + 3]})
        await send({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk = dict(base, object="chat.completion.chunk", choices=[], usage=usage)
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app
