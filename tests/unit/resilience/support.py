"""Shared pieces for resilience tests: deployments, calls, a scripted upstream, a fake clock."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta
from gatewise.types.validation import chat_request_from_dict


def deployment(dep_id: str = "chat:fake/echo", alias: str = "chat") -> Deployment:
    return Deployment(alias, dep_id, Target(provider="fake", wire="fake", model="echo"))


def chat_call(alias: str = "chat", *, stream: bool = False, dep: Deployment | None = None) -> Call:
    req = chat_request_from_dict({"model": alias, "stream": stream,
                                  "messages": [{"role": "user", "content": "hi"}]})
    call = Call("chat", req)
    call.deployment = dep or deployment(alias=alias)
    return call


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FixedRandom(random.Random):
    """An rng whose `random()` is always `value`: 0.0 takes the jitter out of open periods."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class Sleeps:
    """An `asyncio.sleep` stand-in that records every wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk(id="c1", created=int(time.time()), model="m",
                               choices=[ChunkChoice(index=0, delta=Delta(content=text))])


class Upstream:
    """A terminal handler playing a script of outcomes, one per attempt: an exception to
    raise, "ok" for a completion-like marker, or ("stream", error_at) for a `ChunkStream`
    that fails before its first chunk (error_at=0) or after n chunks."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self, call: Call) -> Any:
        self.calls += 1
        call.attempts += 1
        o = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(o, BaseException):
            raise o
        if isinstance(o, tuple) and o[0] == "stream":
            s = ChunkStream(call, _chunks(o[1], o[2] if len(o) > 2 else None), False)
            await s.prefetch()
            return s
        return o


async def _chunks(error_at: int | None, exc: BaseException | None) -> AsyncIterator[ChatCompletionChunk]:
    for i in range(3):
        if error_at is not None and i == error_at:
            raise exc or RuntimeError("cut")
        yield chunk(f"w{i} ")
