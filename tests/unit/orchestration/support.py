"""A scripted in-process provider for orchestration tests: each model answers what the test
says, after the delay the test says, and records every call and every cancellation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.errors import ProviderServerError
from gatewise.pipeline.core import Middleware
from gatewise.providers.base import Capabilities, Target
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.messages import FunctionCall, ToolCall, UserMessage, text_of
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta


@dataclass
class Reply:
    """What a scripted model answers: text, or tool calls as (name, arguments-dict)."""

    content: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    fail: bool = False


Script = Reply | str | Callable[[ChatRequest], Reply | str]


def tool_reply(name: str, args: Any) -> Reply:
    return Reply(calls=[(name, args)])


class ScriptedProvider:
    def __init__(self, script: dict[str, Script]) -> None:
        self.script = script
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self.requests: list[ChatRequest] = []

    def _reply(self, req: ChatRequest, target: Target) -> Reply:
        spec = self.script[target.model]
        got = spec(req) if callable(spec) else spec
        return Reply(content=got) if isinstance(got, str) else got

    async def _behave(self, req: ChatRequest, target: Target) -> Reply:
        self.calls.append(target.model)
        self.requests.append(req)
        r = self._reply(req, target)
        try:
            if r.delay_s:
                await asyncio.sleep(r.delay_s)
        except asyncio.CancelledError:
            self.cancelled.append(target.model)
            raise
        if r.fail:
            raise ProviderServerError("500 scripted failure", provider="fake", model=target.model)
        return r

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        r = await self._behave(req, target)
        calls = [ToolCall(id=f"call_{i}", type="function",
                          function=FunctionCall(name=n, arguments=a if isinstance(a, str)
                                                else json.dumps(a)))
                 for i, (n, a) in enumerate(r.calls)] or None
        return ChatCompletion(
            id="chatcmpl-test", created=int(time.time()), model=target.model,
            choices=[Choice(index=0, message=ResponseMessage(content=r.content, tool_calls=calls),
                            finish_reason="tool_calls" if calls else "stop")],
            usage=Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12))

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        r = await self._behave(req, target)
        for piece in (r.content or "").split(" "):
            yield ChatCompletionChunk(id="c", created=0, model=target.model, choices=[
                ChunkChoice(index=0, delta=Delta(content=piece))])
        yield ChatCompletionChunk(id="c", created=0, model=target.model, choices=[
            ChunkChoice(index=0, delta=Delta(), finish_reason="stop")])
        yield ChatCompletionChunk(id="c", created=0, model=target.model, choices=[],
                                  usage=Usage(prompt_tokens=10, completion_tokens=2,
                                              total_tokens=12))

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        raise NotImplementedError

    async def validate_key(self, target: Target) -> None:
        return None

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities()

    async def aclose(self) -> None:
        return None


def last_user_text(req: ChatRequest) -> str:
    last = next(m for m in reversed(req.messages) if isinstance(m, UserMessage))
    return text_of(last.content)


def resolved(models: dict[str, Any], **extra: Any) -> ResolvedConfig:
    """Each alias → one `fake/<alias>` deployment unless given as a list of deployments."""
    spec = {alias: v if isinstance(v, list) else [{"model": f"fake/{v}"}]
            for alias, v in models.items()}
    cfg, warnings = parse_config({"models": spec, **extra})
    return resolve_config(cfg, None, {}, warnings)


def scripted_gateway(script: dict[str, Script], middlewares: Sequence[Middleware] = (),
                     **extra: Any) -> tuple[Gateway, ScriptedProvider]:
    """A gateway whose alias `x` is served by scripted model `x`."""
    gw = Gateway(resolved({m: m for m in script}, **extra), middlewares=middlewares, seed=7)
    provider = ScriptedProvider(script)
    gw.pool.register("fake", provider)
    return gw, provider
