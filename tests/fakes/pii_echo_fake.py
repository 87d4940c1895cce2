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

from tests.fakes.chat_answer import answer
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


def _threes(text: str) -> list[str]:
    return [text[i:i + 3] for i in range(0, len(text), 3)]


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
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        base = {"id": "chatcmpl-echo", "created": int(time.time()), "model": model,
                "system_fingerprint": "fp_echo"}
        return await answer(request, body, base, content=content, calls=[call] if call else [],
                            usage=usage, split=_threes, arg_step=4)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app
