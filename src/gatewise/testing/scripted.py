"""`ScriptedProvider`: a provider that plays back what a test wrote down, turn by turn.

`FakeProvider` behaves by model name and suits a config file; a test about a tool loop, a
repair round, a cascade or a hedge needs exact answers in an exact order instead: "first call
this tool with these (maybe malformed) arguments, then answer this text, then fail". Register
it under a provider name and every deployment of that provider is served by the script:

    provider = ScriptedProvider([tool_call("balance", {"account": "A1"}), "You have 120 EUR."])
    gateway.pool.register("fake", provider)

A script is a list of turns played in order (the last one repeats once the list runs out), a
function of the request returning a turn, or a single turn; a mapping from model name to
script gives each model its own. A turn is answer text, a `Reply` (text, tool calls, a delay,
an error), a list of `(tool name, arguments)` pairs (arguments as a dict, or as a raw string
so malformed JSON can be scripted), or an exception (instance or class) to raise. Every
request, the model of every call and every call cancelled while it waited are recorded for
assertions.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatewise.errors import ProviderError
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


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted turn: `content` and/or `tool_calls` ((name, arguments) pairs), answered
    after `delay_s` seconds; with `error` set, that error is raised (after the delay) instead.
    An error class is instantiated per call; a `ProviderError` class then names the called
    provider and model, as a real adapter's error would."""

    content: str | None = None
    tool_calls: Sequence[tuple[str, Any]] = ()
    delay_s: float = 0.0
    error: BaseException | type[BaseException] | None = None


Turn = Reply | str | BaseException | type[BaseException] | list[tuple[str, Any]]
Script = (Sequence[Turn] | Callable[[ChatRequest], Turn] | Reply | str | BaseException
          | type[BaseException])


def tool_call(name: str, arguments: Any) -> Reply:
    """A turn that calls one tool; `arguments` as a dict, or a raw (possibly broken) string."""
    return Reply(tool_calls=[(name, arguments)])


def _as_reply(turn: Turn) -> Reply:
    if isinstance(turn, Reply):
        return turn
    if isinstance(turn, str):
        return Reply(content=turn)
    if isinstance(turn, BaseException | type):
        return Reply(error=turn)
    return Reply(tool_calls=turn)


def _instance(error: BaseException | type[BaseException], target: Target) -> BaseException:
    if isinstance(error, BaseException):
        return copy.copy(error)  # a fresh instance: the script may raise it again
    if issubclass(error, ProviderError):
        return error("scripted failure", provider=target.provider, model=target.model)
    return error("scripted failure")


class ScriptedProvider:
    """Plays back `script` (or, for a mapping, the script of the called model) on every call.
    `usage` is what each answer reports, so tests can predict sums and costs exactly."""

    def __init__(self, script: Script | Mapping[str, Script], *,
                 usage: Usage | None = None) -> None:
        self.script = script
        self.usage = usage or Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12)
        self.requests: list[ChatRequest] = []
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self._turns: dict[str, int] = {}

    def _next(self, req: ChatRequest, model: str) -> Reply:
        self.calls.append(model)
        self.requests.append(req)
        script: Any = self.script
        if isinstance(script, Mapping):
            script = script[model]
        n = self._turns[model] = self._turns.get(model, 0) + 1
        if callable(script) and not isinstance(script, type):  # an error class is no script
            return _as_reply(script(req))
        if isinstance(script, list | tuple) and script:
            return _as_reply(script[min(n, len(script)) - 1])
        return _as_reply(script)

    async def _behave(self, req: ChatRequest, target: Target) -> tuple[Reply, list[ToolCall]]:
        reply = self._next(req, target.model)
        if reply.delay_s:
            try:
                await asyncio.sleep(reply.delay_s)
            except asyncio.CancelledError:
                self.cancelled.append(target.model)
                raise
        if reply.error is not None:
            raise _instance(reply.error, target)
        turn = len(self.requests)
        calls = [ToolCall(id=f"call_{turn}_{i}", type="function",
                          function=FunctionCall(name=name, arguments=args if isinstance(args, str)
                                                else json.dumps(args)))
                 for i, (name, args) in enumerate(reply.tool_calls)]
        return reply, calls

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        reply, calls = await self._behave(req, target)
        message = ResponseMessage(content=reply.content, tool_calls=calls or None)
        return ChatCompletion(id=f"chatcmpl-scripted-{len(self.requests)}",
                              created=int(time.time()), model=target.model,
                              choices=[Choice(index=0, message=message,
                                              finish_reason="tool_calls" if calls else "stop")],
                              usage=self.usage)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        """Streams as upstreams do: a role chunk, the text word by word, each tool call's
        arguments split across two deltas, the finish chunk, then the usage chunk."""
        reply, calls = await self._behave(req, target)
        cid, created = f"chatcmpl-scripted-{len(self.requests)}", int(time.time())

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id=cid, created=created, model=target.model,
                                       choices=[ChunkChoice(index=0, delta=delta,
                                                            finish_reason=finish)])

        yield chunk(Delta(role="assistant", content=""))
        words = reply.content.split(" ") if reply.content else []
        for i, word in enumerate(words):
            yield chunk(Delta(content=word if i == len(words) - 1 else word + " "))
        for i, c in enumerate(calls):
            args = c.function.arguments
            half = len(args) // 2
            yield chunk(Delta(tool_calls=[DeltaToolCall(
                index=i, id=c.id, type="function",
                function=DeltaFunctionCall(name=c.function.name, arguments=args[:half]))]))
            yield chunk(Delta(tool_calls=[DeltaToolCall(
                index=i, function=DeltaFunctionCall(arguments=args[half:]))]))
        yield chunk(Delta(), "tool_calls" if calls else "stop")
        yield ChatCompletionChunk(id=cid, created=created, model=target.model, choices=[],
                                  usage=self.usage)

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        raise NotImplementedError("a scripted provider only chats")

    async def validate_key(self, target: Target) -> None:
        return None

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities()

    async def aclose(self) -> None:
        return None
