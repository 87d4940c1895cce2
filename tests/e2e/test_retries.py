"""Retries over real HTTP: every fault the fake OpenAI host can inject, streamed and not.

The chain is the per-alias part of the real pipeline, `Router → Retry → Breaker →
ProviderCall`, on gatewise's own transport against `tests/fakes/openai_fake.py` at 127.0.0.1.
Each test uses model names unique to it (the fault is chosen by a word in the name), so the
fake's request log says exactly how many times each request reached the upstream.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    GatewayError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.pipeline.core import Call, Handler, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.stream import ChunkStream
from gatewise.resilience.breaker import MemoryBreakers
from gatewise.resilience.breaker_middleware import BreakerMiddleware
from gatewise.resilience.retry_middleware import RetryMiddleware
from gatewise.routing.middleware import RouterMiddleware
from gatewise.types.validation import chat_request_from_dict
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer

MAX_RETRIES = 2


class Rig:
    """A gateway pool plus the resilience chain, for deployments named by fault."""

    def __init__(self, fake: FakeServer, models: dict[str, dict[str, Any]], *,
                 retry: dict[str, Any] | None = None, breaker: dict[str, Any] | None = None,
                 timeout_s: float = 20.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.fake = fake
        tag = os.urandom(4).hex()
        self.names = {alias: f"gpt-{alias}-{tag}" for alias in models}
        config = {
            "models": {alias: [{"model": f"openai/{self.names[alias]}",
                                "api_base": f"{fake.url}/v1", "api_key": "sk-test", **extra}]
                       for alias, extra in models.items()},
            "router": {"timeout_s": timeout_s,
                       "retry": {"max_retries": MAX_RETRIES, "base_delay_s": 0.002,
                                 "max_delay_s": 0.05, **(retry or {})},
                       "breaker": {"failure_threshold": 10_000, **(breaker or {})}},
        }
        cfg, warnings = parse_config(config)
        self.gw = Gateway(resolve_config(cfg, None, {}, warnings))
        rc = self.gw.config.config.router
        self.breakers = MemoryBreakers(rc.breaker)
        self.retry = RetryMiddleware(rc, rng=random.Random(1), available=self.breakers.available,
                                     sleep=sleep)
        self.chain: Handler = build_chain(
            [RouterMiddleware(self.gw.router), self.retry, BreakerMiddleware(self.breakers)],
            ProviderCall(self.gw.pool))

    def sent(self, alias: str) -> int:
        """Requests the upstream received for this alias's model."""
        name = self.names[alias]
        return sum(1 for r in list(self.fake.requests) if r.body and name.encode() in r.body)

    async def call(self, alias: str, *, stream: bool = False) -> tuple[Call, Any]:
        req = chat_request_from_dict({"model": alias, "stream": stream,
                                      "messages": [{"role": "user", "content": "hello there"}]})
        call = Call("chat", req)
        return call, await self.chain(call)


@pytest.fixture
async def rig_factory(openai_fake: FakeServer) -> AsyncIterator[Any]:
    rigs: list[Rig] = []

    def make(models: dict[str, dict[str, Any]], **kw: Any) -> Rig:
        rig = Rig(openai_fake, models, **kw)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.gw.aclose()


async def _drain(result: Any) -> str:
    if isinstance(result, ChunkStream):
        return "".join([c.choices[0].delta.content or "" async for c in result if c.choices])
    return str(result.choices[0].message.content)


RETRIED = [
    ("fail-429-noretry", RateLimitedError),
    ("fail-500", ProviderServerError),
    ("fail-503", ProviderOverloadedError),
    ("fail-529", ProviderOverloadedError),
    ("malformed", ProviderResponseError),
]
NOT_RETRIED = [
    ("fail-400", BadRequestError),
    ("fail-context", ContextLengthExceededError),
    ("fail-401", AuthenticationError),
    ("fail-403", PermissionDeniedError),
    ("fail-404", ModelNotFoundError),
]


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_transient_faults_are_retried_then_surface(rig_factory: Any, stream: bool) -> None:
    rig = rig_factory({fault: {} for fault, _ in RETRIED})
    for fault, cls in RETRIED:
        with pytest.raises(cls) as info:
            await rig.call(fault, stream=stream)
        assert rig.sent(fault) == 1 + MAX_RETRIES, fault
        assert type(info.value) is cls, fault


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_connection_reset_is_retried(rig_factory: Any, stream: bool) -> None:
    """Its own rig: every attempt opens a fresh connection, so the transport's transparent
    retry of a *reused* connection that died idle does not add requests here."""
    rig = rig_factory({"reset": {}})
    with pytest.raises(ProviderConnectionError):
        await rig.call("reset", stream=stream)
    assert rig.sent("reset") == 1 + MAX_RETRIES


async def test_a_refused_connection_is_retried(rig_factory: Any) -> None:
    port = free_port()
    rig = rig_factory({"refused": {"api_base": f"http://127.0.0.1:{port}/v1"}})
    call = Call("chat", chat_request_from_dict({
        "model": "refused", "messages": [{"role": "user", "content": "hi"}]}))
    with pytest.raises(ProviderConnectionError):
        await rig.chain(call)
    assert call.attempts == 1 + MAX_RETRIES and len(call.failures) == 1 + MAX_RETRIES


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_non_retryable_errors_reach_the_upstream_exactly_once(rig_factory: Any,
                                                                    stream: bool) -> None:
    rig = rig_factory({fault: {} for fault, _ in NOT_RETRIED})
    for fault, cls in NOT_RETRIED:
        with pytest.raises(cls):
            await rig.call(fault, stream=stream)
        assert rig.sent(fault) == 1, fault


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_429_with_a_long_retry_after_goes_back_at_once(rig_factory: Any,
                                                            stream: bool) -> None:
    """The fake says `retry-after: 7`; waiting 7 s is not a retry worth making (max_delay_s
    is 50 ms here): one request, the caller (or the fallback) gets the typed error now."""
    rig = rig_factory({"fail-429": {}})
    t0 = time.perf_counter()
    with pytest.raises(RateLimitedError) as info:
        await rig.call("fail-429", stream=stream)
    assert time.perf_counter() - t0 < 1.0
    assert info.value.retry_after == 7.0 and rig.sent("fail-429") == 1


async def test_429_retry_after_within_max_delay_is_waited_for(rig_factory: Any) -> None:
    sleeps: list[float] = []

    async def record(seconds: float) -> None:  # the 7 s wait, recorded instead of slept
        sleeps.append(seconds)

    rig = rig_factory({"fail-429": {}}, retry={"max_delay_s": 8.0, "max_retries": 1},
                      sleep=record)
    with pytest.raises(RateLimitedError):
        await rig.call("fail-429")
    assert sleeps == [7.0] and rig.sent("fail-429") == 2


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_timeout_is_retried(rig_factory: Any, stream: bool) -> None:
    rig = rig_factory({"slow": {"timeout": 0.25, "stream_timeout": 0.25}})
    t0 = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await rig.call("slow", stream=stream)
    assert rig.sent("slow") == 1 + MAX_RETRIES
    assert time.perf_counter() - t0 < 1.4  # three 0.25 s attempts, never the fake's 1.5 s


async def test_a_slow_first_byte_within_the_timeouts_is_waited_for_not_retried(
        rig_factory: Any) -> None:
    rig = rig_factory({"slow": {"timeout": 5.0, "stream_timeout": 5.0}})
    (_, plain), (_, streamed) = await asyncio.gather(rig.call("slow"),
                                                     rig.call("slow", stream=True))
    assert await _drain(plain) == await _drain(streamed) == "Hello! You said: hello there"
    assert rig.sent("slow") == 2


async def test_the_call_deadline_bounds_a_slow_first_byte(rig_factory: Any) -> None:
    """The deployment would wait 5 s for the first byte; the call's deadline (0.4 s) wins and
    leaves no time for a retry."""
    rig = rig_factory({"slow": {"timeout": 5.0, "stream_timeout": 5.0}}, timeout_s=0.4)
    t0 = time.perf_counter()
    with pytest.raises(ProviderTimeoutError, match="deadline"):
        await rig.call("slow", stream=True)
    assert time.perf_counter() - t0 < 1.0 and rig.sent("slow") == 1


async def test_a_stream_cut_after_the_first_chunk_is_not_retried(rig_factory: Any) -> None:
    rig = rig_factory({"cut": {}})
    call, result = await rig.call("cut", stream=True)
    assert isinstance(result, ChunkStream)
    got: list[str] = []
    with pytest.raises(GatewayError):
        async for c in result:
            if c.choices and c.choices[0].delta.content:
                got.append(c.choices[0].delta.content)
    assert got == ["Hello! ", "You "]  # what arrived before the cut reached the caller
    assert rig.sent("cut") == 1 and call.attempts == 1


async def test_a_truncated_body_is_retried(rig_factory: Any) -> None:
    rig = rig_factory({"cut": {}})
    with pytest.raises(ProviderResponseError):
        await rig.call("cut")
    assert rig.sent("cut") == 1 + MAX_RETRIES


async def test_retries_stay_within_the_budget_over_a_burst(rig_factory: Any) -> None:
    """300 requests to a deployment answering 500, 32 at a time: without a budget that is 900
    upstream requests; with a 20 % budget (and a floor of 1/s over 10 s) at most 370."""
    n, ratio, floor = 300, 0.2, 10
    rig = rig_factory({"fail-500": {}},
                      retry={"budget_ratio": ratio, "budget_window_s": 10.0,
                             "budget_min_per_s": 1.0})
    gate = asyncio.Semaphore(32)

    async def one() -> str:
        async with gate:
            try:
                await rig.call("fail-500")
            except GatewayError as exc:
                return type(exc).__name__
            return "ok"

    outcomes = await asyncio.gather(*(one() for _ in range(n)))
    assert outcomes == ["ProviderServerError"] * n
    sent = rig.sent("fail-500")
    retries = sent - n
    assert retries <= ratio * n + floor
    assert retries >= 0.9 * ratio * n  # the budget is used, not just refused
    assert rig.retry.incidents.counter.get(
        ("retry_budget_exhausted", "fail-500", rig.gw.config.aliases["fail-500"][0].id,
         "ProviderServerError")) > 0
