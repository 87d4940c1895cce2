"""Shared pieces for accounting tests: word-counting tokenizers, a per-deployment price table,
calls, deployments and scripted terminals returning completions or streams with known usage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gatewise.pipeline.core import Call, Identity
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.types.messages import text_of
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta
from gatewise.types.validation import chat_request_from_dict


@dataclass(frozen=True)
class Price:
    input: float   # USD per token (not per million: easier arithmetic in tests)
    output: float


class WordPrices:
    """The PriceTable seam: a price per deployment id; unknown deployments have none."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices

    def for_deployment(self, dep: Deployment) -> Price | None:
        return self.prices.get(dep.id)

    def cost(self, usage: Usage, price: Price) -> float:
        return usage.prompt_tokens * price.input + usage.completion_tokens * price.output

    def worst_case(self, prompt_tokens: int, max_tokens: int, price: Price) -> float:
        return prompt_tokens * price.input + max_tokens * price.output


class WordTokenizers:
    """The Tokenizers seam: one token per whitespace-separated word."""

    def __init__(self) -> None:
        self.requests_counted = 0

    def count_text(self, text: str, target: Target) -> int:
        return len(text.split())

    def count_request(self, req: ChatRequest, target: Target) -> int:
        self.requests_counted += 1
        return sum(len(text_of(m.content).split()) for m in req.messages)


def deployment(dep_id: str = "chat:fake/echo", alias: str = "chat", *, rpm: int | None = None,
               tpm: int | None = None) -> Deployment:
    return Deployment(alias, dep_id, Target(provider="fake", wire="fake", model="echo"),
                      rpm=rpm, tpm=tpm)


def chat_call(alias: str = "chat", *, text: str = "hello world", stream: bool = False,
              identity: Identity | None = None, max_tokens: int | None = None,
              dep: Deployment | None = None, include_usage: bool = False) -> Call:
    body: dict[str, Any] = {"model": alias, "stream": stream,
                            "messages": [{"role": "user", "content": text}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    call = Call("chat", chat_request_from_dict(body), identity or Identity())
    call.deployment = dep
    return call


def completion(prompt: int, completion_tokens: int) -> ChatCompletion:
    return ChatCompletion(
        id="c1", model="echo",
        choices=[Choice(message=ResponseMessage(content="ok"), finish_reason="stop")],
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion_tokens,
                    total_tokens=prompt + completion_tokens))


class Terminal:
    """The innermost handler: routes to `dep`, optionally waits (to let calls overlap), then
    answers with known usage, a stream, or raises."""

    def __init__(self, dep: Deployment, *, prompt: int = 2, completion_tokens: int = 5,
                 delay: float = 0.0, error: BaseException | None = None,
                 stream_words: list[str] | None = None, stream_usage: bool = True,
                 stream_error_at: int | None = None) -> None:
        self.dep = dep
        self.prompt = prompt
        self.completion_tokens = completion_tokens
        self.delay = delay
        self.error = error
        self.stream_words = stream_words
        self.stream_usage = stream_usage
        self.stream_error_at = stream_error_at
        self.calls = 0

    async def __call__(self, call: Call) -> Any:
        self.calls += 1
        call.deployment = self.dep
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if call.stream:
            words = self.stream_words or ["one ", "two ", "three "]
            s = ChunkStream(call, self._chunks(words), call.chat_request.wants_usage_in_stream)
            await s.prefetch()
            return s
        result = completion(self.prompt, self.completion_tokens)
        call.usage = result.usage
        return result

    async def _chunks(self, words: list[str]) -> AsyncIterator[ChatCompletionChunk]:
        for i, w in enumerate(words):
            if self.stream_error_at is not None and i == self.stream_error_at:
                raise RuntimeError("upstream cut")
            yield ChatCompletionChunk(id="c1", model="echo",
                                      choices=[ChunkChoice(index=0, delta=Delta(content=w))])
        if self.stream_usage:
            yield ChatCompletionChunk(
                id="c1", model="echo", choices=[],
                usage=Usage(prompt_tokens=self.prompt, completion_tokens=self.completion_tokens,
                            total_tokens=self.prompt + self.completion_tokens))


async def drain(stream: ChunkStream) -> list[ChatCompletionChunk]:
    return [c async for c in stream]
