"""`FakeProvider`: an in-process provider driven by the model name, for fast offline tests.

Configure a deployment as `model: fake/<behaviour>`:

- `fake/echo` (or any other name): answers "Hello! You said: <last user text>"
- `fake/tools`: calls the first offered tool with arguments sampled from its schema, and
  after a tool result answers "Tool said: <result>"; `fake/tools-forever` never stops calling
- `fake/fail-401|404|429|500|529|context`: raises the matching `ProviderError`
- `fake/slow-<ms>`: waits that many milliseconds before answering

Usage counts whitespace-separated words, so tests can predict it exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gatewise.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    ModelNotFoundError,
    ProviderError,
    ProviderOverloadedError,
    ProviderServerError,
    RateLimitedError,
)
from gatewise.providers.base import Capabilities, Target
from gatewise.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from gatewise.types.ids import new_id
from gatewise.types.messages import FunctionCall, ToolCall, ToolMessage, UserMessage, text_of
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

_FAILURES: dict[str, tuple[type[ProviderError], str]] = {
    "fail-401": (AuthenticationError, "401 invalid key"),
    "fail-404": (ModelNotFoundError, "404 no such model"),
    "fail-429": (RateLimitedError, "429 rate limited"),
    "fail-500": (ProviderServerError, "500 server error"),
    "fail-529": (ProviderOverloadedError, "529 overloaded"),
    "fail-context": (ContextLengthExceededError, "400 context length exceeded"),
}


def _words(text: str) -> int:
    return len(text.split())


def _sample(schema: Any) -> Any:
    """A value for a tool-parameter schema; whatever the schema holds (the edge checks only
    its shape), the answer is some JSON value, never an exception."""
    if not isinstance(schema, dict):
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    t = schema.get("type", "object")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object":
        props = schema.get("properties")
        return {k: _sample(v) for k, v in props.items()} if isinstance(props, dict) else {}
    if t == "array":
        return [_sample(schema.get("items"))]
    return {"string": "sample", "integer": 42, "number": 3.5, "boolean": True}.get(str(t))


class FakeProvider:
    async def _behave(self, req: ChatRequest, target: Target) -> tuple[str | None, list[ToolCall] | None]:
        name = target.model
        for key, (cls, msg) in _FAILURES.items():
            if key in name:
                kw: dict[str, Any] = {"provider": "fake", "model": name}
                if cls is RateLimitedError:
                    raise RateLimitedError(msg, retry_after=1.0, **kw)
                raise cls(msg, **kw)
        if name.startswith("slow-"):
            await asyncio.sleep(int(name.split("-", 1)[1]) / 1000)
        last_msg = req.messages[-1] if req.messages else None
        if name == "tools" and isinstance(last_msg, ToolMessage):
            # A tool loop ends: the tool's result becomes the answer.
            return f"Tool said: {text_of(last_msg.content)}", None
        if name in ("tools", "tools-forever") and req.tools:
            fn = req.tools[0].function
            args = json.dumps(_sample(fn.parameters or {}))
            return None, [ToolCall(id=new_id("call"), type="function",
                                   function=FunctionCall(name=fn.name, arguments=args))]
        last = next((m for m in reversed(req.messages) if isinstance(m, UserMessage)), None)
        text = text_of(last.content) if last else ""
        return (f"Hello! You said: {text}" if text else "Hello!"), None

    def _usage(self, req: ChatRequest, content: str | None, calls: list[ToolCall] | None) -> Usage:
        prompt = sum(_words(text_of(getattr(m, "content", None))) for m in req.messages)
        completion = _words(content or "") + sum(_words(c.function.arguments) for c in calls or [])
        return Usage(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=prompt + completion)

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        content, calls = await self._behave(req, target)
        return ChatCompletion(
            id=new_id(), created=int(time.time()), model=target.model,
            choices=[Choice(index=0, message=ResponseMessage(content=content, tool_calls=calls),
                            finish_reason="tool_calls" if calls else "stop")],
            usage=self._usage(req, content, calls),
        )

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        content, calls = await self._behave(req, target)
        cid, created = new_id(), int(time.time())

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id=cid, created=created, model=target.model,
                                       choices=[ChunkChoice(index=0, delta=delta,
                                                            finish_reason=finish)])

        yield chunk(Delta(role="assistant", content=""))
        if calls:
            for i, c in enumerate(calls):
                yield chunk(Delta(tool_calls=[DeltaToolCall(
                    index=i, id=c.id, type="function",
                    function=DeltaFunctionCall(name=c.function.name,
                                               arguments=c.function.arguments))]))
        else:
            for word in (content or "").split(" "):
                yield chunk(Delta(content=word + " " if word != (content or "").split(" ")[-1]
                                  else word))
                await asyncio.sleep(0)
        yield chunk(Delta(), "tool_calls" if calls else "stop")
        yield ChatCompletionChunk(id=cid, created=created, model=target.model, choices=[],
                                  usage=self._usage(req, content, calls))

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        texts = req.texts
        dims = req.dimensions or 8
        data = [Embedding(index=i, embedding=[((hash(t) >> k) % 100) / 100 for k in range(dims)])
                for i, t in enumerate(texts)]
        tokens = sum(_words(t) for t in texts)
        return EmbeddingResponse(data=data, model=target.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

    async def validate_key(self, target: Target) -> None:
        if "fail-401" in target.model:
            raise AuthenticationError("401 invalid key", provider="fake", model=target.model)

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities(embeddings=True, vision=True)

    async def aclose(self) -> None:
        return None
