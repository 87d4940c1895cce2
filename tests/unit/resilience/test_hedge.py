"""Hedging: a slow attempt races a second deployment after the delay; the first answer wins and
the other is cancelled."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from gatewise.config.loader import ResolvedConfig
from gatewise.errors import ConfigError, ProviderServerError
from gatewise.observability.metrics import GatewayMetrics
from gatewise.observability.telemetry import TelemetryMiddleware
from gatewise.pipeline.core import Call, Handler, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.deployment import Deployment
from gatewise.providers.pool import ProviderPool
from gatewise.resilience.hedge import HedgeMiddleware
from gatewise.routing.router import Router
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict
from tests.unit.orchestration.support import Reply, ScriptedProvider, failing, resolved
from tests.waiting import eventually

SLOW = Reply(content="slow answer", delay_s=5.0)
FAST = Reply(content="fast answer")


class Pin:
    """Stands in for the router's choice: the first attempt always goes to `deployment`."""

    def __init__(self, cfg: ResolvedConfig, deployment: str) -> None:
        self.dep = next(d for d in cfg.aliases["m"] if d.id.endswith(deployment))

    async def __call__(self, call: Call, next: Handler) -> Any:
        call.deployment = self.dep
        return await next(call)


def _setup(script: dict[str, Any], first: str, after_s: float = 0.05,
           **kw: Any) -> tuple[Any, ScriptedProvider, HedgeMiddleware, GatewayMetrics]:
    cfg = resolved({"m": [{"model": f"fake/{name}"} for name in script]})
    router = Router(cfg, seed=3)
    pool = ProviderPool()
    provider = ScriptedProvider(script)
    pool.register("fake", provider)
    hedge = HedgeMiddleware(router, after_s, **kw)
    metrics = GatewayMetrics()
    chain = build_chain([TelemetryMiddleware(metrics), Pin(cfg, first), hedge],
                        ProviderCall(pool))
    return chain, provider, hedge, metrics


def _call(stream: bool = False) -> Call:
    return Call("chat", chat_request_from_dict({"model": "m", "stream": stream,
                                                "messages": [{"role": "user", "content": "hi"}]}))


async def test_a_slow_attempt_is_overtaken_by_the_hedge_and_cancelled() -> None:
    chain, provider, hedge, metrics = _setup({"tail": SLOW, "quick": FAST}, first="tail")
    call = _call()
    t0 = time.perf_counter()
    async with asyncio.timeout(SLOW.delay_s - 1.0):  # answered while the slow one still waits
        out = await chain(call)
    assert time.perf_counter() - t0 >= 0.05  # the twin started only after the delay
    assert isinstance(out, ChatCompletion) and out.choices[0].message.content == "fast answer"
    await eventually(lambda: provider.cancelled == ["tail"], what="the slow attempt's cancel")
    assert provider.calls == ["tail", "quick"] and provider.cancelled == ["tail"]
    assert call.deployment is not None and call.deployment.id == "m:fake/quick"
    assert call.response_headers["x-gatewise-hedge"] == "won"
    assert call.response_headers["x-gatewise-deployment"] == "m:fake/quick"
    assert call.usage is not None and call.usage.total_tokens == 12
    assert ("hedge", {"deployment": "m:fake/quick", "after_s": 0.05, "slow": "m:fake/tail"}) \
        in call.events
    assert hedge.counter.get(("won",)) == 1
    assert metrics.requests.get(("chat", "m", "m:fake/quick", "200")) == 1


async def test_an_attempt_answering_before_the_delay_is_never_hedged() -> None:
    chain, provider, hedge, _ = _setup({"quick": FAST, "other": FAST}, first="quick",
                                       after_s=0.5)
    for _ in range(3):
        call = _call()
        out = await chain(call)
        assert isinstance(out, ChatCompletion)
        assert "x-gatewise-hedge" not in call.response_headers
    assert provider.calls == ["quick"] * 3
    assert hedge.counter.get(("started",)) == 0


async def test_the_first_attempt_still_wins_when_it_answers_before_the_twin() -> None:
    chain, provider, _, _ = _setup({"bit-slow": Reply(content="first", delay_s=0.1),
                                    "slower": Reply(content="second", delay_s=5.0)},
                                   first="bit-slow")
    call = _call()
    out = await chain(call)
    assert isinstance(out, ChatCompletion) and out.choices[0].message.content == "first"
    await eventually(lambda: provider.cancelled == ["slower"], what="the twin's cancel")
    assert provider.cancelled == ["slower"]
    assert call.response_headers["x-gatewise-hedge"] == "lost"
    assert call.deployment is not None and call.deployment.id == "m:fake/bit-slow"


async def test_a_stream_late_to_its_first_chunk_is_hedged_and_rebound_to_the_call() -> None:
    chain, provider, _, metrics = _setup({"tail": SLOW, "quick": FAST}, first="tail")
    call = _call(stream=True)
    out = await chain(call)
    assert isinstance(out, ChunkStream) and out.call is call
    text = "".join([c.choices[0].delta.content or "" async for c in out if c.choices])
    assert text == "fast answer"
    assert provider.cancelled == ["tail"]
    assert call.deployment is not None and call.deployment.id == "m:fake/quick"
    assert metrics.requests.get(("chat", "m", "m:fake/quick", "200")) == 1


async def test_when_one_contender_fails_the_other_still_answers() -> None:
    chain, _, _, _ = _setup({"tail": failing(delay_s=0.1),
                             "quick": Reply(content="rescued", delay_s=0.2)}, first="tail")
    out = await chain(_call())
    assert isinstance(out, ChatCompletion) and out.choices[0].message.content == "rescued"


async def test_when_both_fail_the_first_attempts_error_is_raised() -> None:
    chain, provider, _, _ = _setup({"tail": failing(delay_s=0.1),
                                    "quick": failing()}, first="tail")
    call = _call()
    with pytest.raises(ProviderServerError) as info:
        await chain(call)
    assert info.value.model == "tail"
    assert provider.calls == ["tail", "quick"]


async def test_a_fast_failure_is_raised_at_once_without_a_hedge() -> None:
    chain, provider, _, _ = _setup({"bad": failing(), "good": FAST}, first="bad")
    with pytest.raises(ProviderServerError):
        await chain(_call())
    assert provider.calls == ["bad"]  # failing over is the fallback's job, not hedging's


async def test_with_no_other_deployment_the_attempt_just_continues() -> None:
    chain, provider, hedge, _ = _setup({"only": Reply(content="late", delay_s=0.15)},
                                       first="only")
    out = await chain(_call())
    assert isinstance(out, ChatCompletion) and out.choices[0].message.content == "late"
    assert provider.calls == ["only"]
    assert hedge.counter.get(("skipped",)) == 1


async def test_hedges_are_budgeted_so_a_slow_outage_is_not_doubled() -> None:
    slow = Reply(content="slow", delay_s=0.06)
    chain, provider, hedge, _ = _setup({"tail": slow, "also": slow}, first="tail",
                                       after_s=0.02, budget_ratio=0.25, burst=2)
    await asyncio.gather(*(chain(_call()) for _ in range(8)))
    # a burst of slow calls hedges at most `burst` of them (the saved budget is capped)...
    assert hedge.counter.get(("started",)) == 2
    assert hedge.counter.get(("skipped",)) == 6
    # ...and afterwards one hedge per 1 / budget_ratio calls
    await asyncio.gather(*(chain(_call()) for _ in range(4)))
    assert hedge.counter.get(("started",)) == 3
    assert provider.calls.count("also") == 3


async def test_outside_the_router_it_refuses_to_run() -> None:
    cfg = resolved({"m": [{"model": "fake/a"}]})
    hedge = HedgeMiddleware(Router(cfg), 0.1)

    async def terminal(call: Call) -> Any:
        return None

    with pytest.raises(ConfigError, match="inside the router"):
        await hedge(_call(), terminal)


def test_the_twin_never_targets_the_slow_deployment() -> None:
    cfg = resolved({"m": [{"model": f"fake/d{i}"} for i in range(4)]})
    router = Router(cfg, seed=11)
    hedge = HedgeMiddleware(router, 0.1, burst=1000)
    deps: list[Deployment] = cfg.aliases["m"]
    for dep in deps * 25:
        call = _call()
        twin = hedge._twin(call, dep)
        assert twin is not None and twin.deployment is not None
        assert twin.deployment.id != dep.id and twin.request_id == call.request_id


async def test_cancelling_the_caller_cancels_both_contenders() -> None:
    chain, provider, _, _ = _setup({"tail": SLOW, "also": SLOW}, first="tail")
    task = asyncio.ensure_future(chain(_call()))
    await eventually(lambda: len(provider.calls) == 2, what="the twin starting")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: len(provider.cancelled) == 2, what="both contenders' cancels")
    assert sorted(provider.cancelled) == ["also", "tail"]


async def test_under_load_every_call_gets_exactly_one_answer_from_its_deployment() -> None:
    rng = random.Random(5)
    delays = {"a": [rng.choice([0.001, 0.001, 0.001, 0.15]) for _ in range(60)],
              "b": [rng.choice([0.001, 0.001, 0.001, 0.15]) for _ in range(60)]}

    def model(name: str) -> Any:
        def reply(req: Any) -> Reply:
            return Reply(content=name, delay_s=delays[name].pop())
        return reply

    chain, provider, hedge, _ = _setup({"a": model("a"), "b": model("b")}, first="a",
                                       after_s=0.03, burst=100)
    calls = [_call() for _ in range(40)]
    outs = await asyncio.gather(*(chain(c) for c in calls))
    for call, out in zip(calls, outs, strict=True):
        assert call.deployment is not None
        assert out.choices[0].message.content == call.deployment.target.model
    won, lost = hedge.counter.get(("won",)), hedge.counter.get(("lost",))
    assert won + lost == hedge.counter.get(("started",)) > 0
    assert len(provider.calls) == 40 + won + lost
    assert len(provider.cancelled) == won + lost  # every race's loser was cancelled
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
