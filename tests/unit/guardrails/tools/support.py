"""A scripted in-process model for tool tests: each turn answers what the test's script says
(text or tool calls with raw argument strings, so malformed JSON can be scripted too), and
every request it saw is kept for assertions."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.pipeline.core import Middleware
from gatewise.providers.base import Capabilities, Target
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

# A turn: answer text, or [(tool name, arguments as dict or raw string)].
Turn = str | list[tuple[str, Any]]
Script = Sequence[Turn] | Callable[[ChatRequest], Turn]


def call(name: str, args: Any) -> list[tuple[str, Any]]:
    return [(name, args)]


class ScriptedModel:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[ChatRequest] = []

    def _turn(self, req: ChatRequest) -> tuple[str | None, list[ToolCall] | None]:
        self.requests.append(req)
        s = self.script
        turn = s(req) if callable(s) else s[min(len(self.requests), len(s)) - 1]
        if isinstance(turn, str):
            return turn, None
        return None, [ToolCall(id=f"call_{len(self.requests)}_{i}", type="function",
                               function=FunctionCall(name=n, arguments=a if isinstance(a, str)
                                                     else json.dumps(a)))
                      for i, (n, a) in enumerate(turn)]

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        content, calls = self._turn(req)
        return ChatCompletion(id="chatcmpl-t", created=int(time.time()), model=target.model,
                              choices=[Choice(message=ResponseMessage(content=content,
                                                                      tool_calls=calls),
                                              finish_reason="tool_calls" if calls else "stop")],
                              usage=Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13))

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        content, calls = self._turn(req)

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id="c", model=target.model,
                                       choices=[ChunkChoice(index=0, delta=delta,
                                                            finish_reason=finish)])

        yield chunk(Delta(role="assistant", content=""))
        words = content.split(" ") if content else []
        for i, word in enumerate(words):
            yield chunk(Delta(content=word if i == len(words) - 1 else word + " "))
        for i, c in enumerate(calls or []):
            args = c.function.arguments
            half = len(args) // 2  # arguments arrive split across deltas, as upstreams do
            yield chunk(Delta(tool_calls=[DeltaToolCall(index=i, id=c.id, type="function",
                                                        function=DeltaFunctionCall(
                                                            name=c.function.name,
                                                            arguments=args[:half]))]))
            yield chunk(Delta(tool_calls=[DeltaToolCall(index=i, function=DeltaFunctionCall(
                arguments=args[half:]))]))
        yield chunk(Delta(), "tool_calls" if calls else "stop")

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        raise NotImplementedError

    async def validate_key(self, target: Target) -> None:
        return None

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities()

    async def aclose(self) -> None:
        return None


def scripted_gateway(script: Script, middlewares: Sequence[Middleware] = ()
                     ) -> tuple[Gateway, ScriptedModel]:
    """A gateway whose default model `m` is the scripted model (registered as provider
    `scripted`, so the shipped fake provider is untouched)."""
    cfg, w = parse_config({"models": {"m": [{"model": "fake/m"}]}, "default_model": "m",
                           "router": {"retry": {"max_retries": 0}},
                           # accounting is not what these tests are about
                           "accounting": {"enabled": False}, "storage": {"database": "memory"}})
    gw = Gateway(resolve_config(cfg, None, {}, w), middlewares=middlewares)
    model = ScriptedModel(script)
    gw.pool.register("fake", model)
    return gw, model


def fake_tools_gateway(middlewares: Sequence[Middleware] = ()) -> Gateway:
    """The shipped FakeProvider's `fake/tools-forever`: always calls the first offered tool."""
    cfg, w = parse_config({"models": {"tools": [{"model": "fake/tools-forever"}]},
                           "default_model": "tools", "router": {"retry": {"max_retries": 0}},
                           # accounting is not what these tests are about
                           "accounting": {"enabled": False}, "storage": {"database": "memory"}})
    return Gateway(resolve_config(cfg, None, {}, w), middlewares=middlewares)


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        self.events.append((kind, action, detail or {}))
