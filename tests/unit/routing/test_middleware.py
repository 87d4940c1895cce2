"""RouterMiddleware and TrackingMiddleware on the in-process fake provider, wired as the
gateway wires them: `RouterMiddleware → TrackingMiddleware → ProviderCall`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.errors import AuthenticationError, ProviderServerError
from gatewise.pipeline.core import Call, Handler, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.pool import ProviderPool
from gatewise.routing.middleware import RouteResolveMiddleware, RouterMiddleware
from gatewise.routing.router import Router
from gatewise.routing.tracking import TrackingMiddleware
from gatewise.types.responses import ChatCompletion
from tests.waiting import eventually

from .conftest import Clock, chat, resolved


class Chain:
    def __init__(self, models: dict[str, list[dict[str, Any]]], *, seed: int = 1,
                 clock: Clock | None = None, **router: Any) -> None:
        self.router = Router(resolved(models, **router), seed=seed, clock=clock or Clock())
        self.pool = ProviderPool()
        self.upstream: list[str] = []
        self.handler = build_chain(
            [RouterMiddleware(self.router), TrackingMiddleware(self.router.tracker)],
            self._count(ProviderCall(self.pool)))

    def _count(self, inner: Handler) -> Handler:
        async def counted(call: Call) -> Any:
            assert call.deployment is not None
            self.upstream.append(call.deployment.id)
            return await inner(call)
        return counted

    async def run(self, call: Call) -> Any:
        return await self.handler(call)


async def test_the_chosen_deployment_is_on_the_call_and_in_the_header() -> None:
    c = Chain({"m": [{"model": "fake/echo", "id": "e"}]})
    call = chat("hello")
    out = await c.run(call)
    assert isinstance(out, ChatCompletion)
    assert call.deployment is not None and call.deployment.id == "e"
    assert call.response_headers["x-gatewise-deployment"] == "e"
    assert ("route", {"deployment": "e", "target": "fake/echo"}) in call.events


async def test_a_failing_deployment_fails_over_within_the_alias_then_cools_down() -> None:
    c = Chain({"m": [{"model": "fake/fail-500", "id": "bad"}, {"model": "fake/echo", "id": "ok"}]},
              seed=3, cooldown_s=30)
    for _ in range(10):
        out = await c.run(chat("x"))
        assert isinstance(out, ChatCompletion)
    assert c.upstream.count("bad") == 1  # tried once, then benched for its cool-down
    assert c.upstream.count("ok") == 10


async def test_failover_is_recorded_as_an_event() -> None:
    c = Chain({"m": [{"model": "fake/fail-500", "id": "bad"}, {"model": "fake/echo", "id": "ok"}]})
    # "ok" becomes available only once "bad" was tried, so the order is fixed
    c.router.available = lambda d: d.id == "bad" or "bad" in c.upstream
    call = chat("x")
    await c.run(call)
    assert c.upstream == ["bad", "ok"]
    events = [d for name, d in call.events if name == "failover"]
    assert events == [{"deployment": "bad", "to": "ok", "error": "ProviderServerError",
                       "attempt": 1}]


async def test_non_retryable_errors_reach_the_upstream_once_and_do_not_fail_over() -> None:
    c = Chain({"m": [{"model": "fake/fail-401", "id": "a"}, {"model": "fake/fail-401", "id": "b"}]})
    with pytest.raises(AuthenticationError):
        await c.run(chat("x"))
    assert len(c.upstream) == 1


async def test_an_exhausted_alias_re_raises_the_last_upstream_error() -> None:
    c = Chain({"m": [{"model": "fake/fail-500", "id": "a"}, {"model": "fake/fail-529", "id": "b"}]})
    with pytest.raises(ProviderServerError):
        await c.run(chat("x"))
    assert sorted(c.upstream) == ["a", "b"]


async def test_tracking_records_latency_tokens_and_errors_per_deployment() -> None:
    c = Chain({"m": [{"model": "fake/echo", "id": "e"}], "f": [{"model": "fake/fail-500", "id": "f"}]})
    await c.run(chat("one two three"))
    with pytest.raises(ProviderServerError):
        await c.run(chat("x", model="f"))
    snap = c.router.tracker.snapshot()
    assert snap["e"]["successes"] == 1 and snap["e"]["in_flight"] == 0
    assert snap["e"]["latency_ewma_s"] is not None
    assert snap["e"]["tokens_per_minute"] == 3 + 6  # the fake counts words in and out
    assert snap["f"]["errors"] == 1 and snap["f"]["in_flight"] == 0


async def test_tracking_holds_a_stream_in_flight_until_it_ends() -> None:
    c = Chain({"m": [{"model": "fake/echo", "id": "e"}]})
    call = chat("a b c", stream=True)
    stream = await c.run(call)
    assert isinstance(stream, ChunkStream)
    t = c.router.tracker
    assert t.in_flight("e") == 1 and t.stats("e").ttft is not None
    _ = [chunk async for chunk in stream]
    assert t.in_flight("e") == 0 and t.stats("e").successes == 1
    assert t.tokens_per_minute("e") > 0
    assert t.stats("e").latency is None  # a stream's length says nothing about speed


async def test_an_abandoned_stream_releases_its_slot_without_a_verdict() -> None:
    c = Chain({"m": [{"model": "fake/echo", "id": "e"}]})
    stream = await c.run(chat("a b c", stream=True))
    await stream.aclose()
    s = c.router.tracker.stats("e")
    assert (s.in_flight, s.successes, s.errors) == (0, 0, 0)


async def test_a_cancelled_attempt_is_released_without_counting_as_an_error() -> None:
    c = Chain({"m": [{"model": "fake/slow-5000", "id": "slow"}]})
    task = asyncio.ensure_future(c.run(chat("x")))
    await eventually(lambda: c.router.tracker.in_flight("slow") == 1, what="the attempt starting")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    s = c.router.tracker.stats("slow")
    assert (s.in_flight, s.errors) == (0, 0) and not c.router.tracker.cooling_down("slow")


async def test_least_in_flight_spreads_concurrent_calls() -> None:
    c = Chain({"m": [{"model": "fake/slow-50", "id": f"d{i}"} for i in range(4)]},
              strategy="least_in_flight")
    await asyncio.gather(*(c.run(chat("x")) for _ in range(8)))
    assert sorted(c.upstream.count(f"d{i}") for i in range(4)) == [2, 2, 2, 2]


async def test_rules_resolve_once_and_a_fallback_alias_is_not_re_routed() -> None:
    c = Chain({"m": [{"model": "fake/echo", "id": "m"}], "gold": [{"model": "fake/echo", "id": "g"}],
               "spare": [{"model": "fake/echo", "id": "s"}]},
              rules=[{"alias": "gold", "metadata": {"tier": "gold"}}])
    call = chat("x", metadata={"tier": "gold"})
    await c.run(call)
    assert call.alias == "gold" and c.upstream == ["g"]
    call.alias = "spare"  # what a fallback middleware does after "gold" failed
    await c.run(call)
    assert c.upstream == ["g", "s"]


async def test_route_resolve_middleware_runs_resolution_ahead_of_the_router() -> None:
    router = Router(resolved({"s": [{"model": "fake/echo", "id": "s"}],
                              "l": [{"model": "fake/echo", "id": "l"}]},
                             complexity={"small": "s", "large": "l"}))
    seen: list[str] = []

    async def spy(call: Call, next: Handler) -> Any:
        seen.append(call.alias)  # e.g. a fallback middleware, which must see the real alias
        return await next(call)

    handler = build_chain([RouteResolveMiddleware(router), spy,
                           RouterMiddleware(router, resolve=False)], ProviderCall(ProviderPool()))
    call = chat("thanks!", model="auto")
    await handler(call)
    assert seen == ["s"] and call.response_headers["x-gatewise-complexity"].startswith("small;")


async def test_the_gateway_routes_auto_by_complexity() -> None:
    gw = Gateway(resolved({"s": [{"model": "fake/echo", "id": "s"}],
                           "l": [{"model": "fake/echo", "id": "l"}]},
                          complexity={"small": "s", "large": "l"}), seed=0)
    async with gw:
        small = await gw.chat("hi", model="auto")
        large = await gw.chat("Refactor this function step by step and write pytest tests for "
                              "the edge cases:\n```python\ndef f(x):\n    return x\n```",
                              model="auto")
        assert (small.info.deployment, large.info.deployment) == ("s", "l")
        assert "auto" in gw.models()


async def test_a_deadline_already_passed_stops_failover() -> None:
    c = Chain({"m": [{"model": "fake/fail-500", "id": "a"}, {"model": "fake/echo", "id": "b"}]},
              seed=0)
    c.router.tracker.cool_down("b", 60)  # force "a" first
    call = chat("x")
    call.deadline = 0.0
    with pytest.raises(ProviderServerError):
        await c.run(call)
    assert c.upstream == ["a"]
