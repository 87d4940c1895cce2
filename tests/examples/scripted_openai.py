"""A fake OpenAI chat-completions host that plays a script, for the examples' tests.

`tests/fakes/openai_fake.py` decides by itself (it calls the first offered tool with sampled
arguments); an assistant's test needs exact turns instead: "call `verify_identity` with these
arguments, then answer this text". Each request takes the next entry of `srv.script` (the
`ScriptedUpstream` kept on the app), which is answer text, a list of `(tool, arguments)`
pairs (arguments as a dict, or a raw string to script malformed JSON), or a callable of the
request body returning one of those. An empty script answers with the last user text.
Bodies and SSE streams follow OpenAI's documented shapes (`tests/fakes/chat_answer.py`), and every
request is recorded by `FakeServer` for assertions on what the gateway sent upstream.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes.chat_answer import answer
from tests.fakes.common import last_user_text, words
from tests.fakes.server import FakeServer

Turn = str | list[tuple[str, Any]]
Entry = Turn | Callable[[dict[str, Any]], Turn]


class ScriptedUpstream:
    """The script shared by the test (which appends) and the fake's thread (which pops)."""

    def __init__(self) -> None:
        self.turns: deque[Entry] = deque()
        self.bodies: list[dict[str, Any]] = []

    def play(self, *turns: Entry) -> None:
        self.turns.clear()
        self.turns.extend(turns)
        self.bodies.clear()

    def next(self, body: dict[str, Any]) -> Turn:
        self.bodies.append(body)
        if not self.turns:
            return f"You said: {last_user_text(body.get('messages', []))}"
        entry = self.turns.popleft()
        return entry(body) if callable(entry) else entry


def _calls(turn: list[tuple[str, Any]], n: int) -> list[dict[str, Any]]:
    return [{"id": f"call_s{n}_{i}", "type": "function",
             "function": {"name": name, "arguments": args if isinstance(args, str)
                          else json.dumps(args)}}
            for i, (name, args) in enumerate(turn)]


def make_app_for(script: ScriptedUpstream) -> Callable[[FakeServer], web.Application]:
    def make_app(srv: FakeServer) -> web.Application:
        async def chat(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            turn = script.next(body)
            content = turn if isinstance(turn, str) else None
            calls = _calls(turn, len(script.bodies)) if isinstance(turn, list) else []
            usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
            base = {"id": f"chatcmpl-script{len(script.bodies)}", "created": int(time.time()),
                    "model": body.get("model", ""), "system_fingerprint": "fp_script"}
            return await answer(request, body, base, content=content, calls=calls,
                                usage=usage, split=words, arg_step=7)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app

    return make_app
