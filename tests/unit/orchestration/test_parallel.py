"""Parallel fan-out: every model answers the same request at once; one result per model."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.errors import InvalidRequestError, ProviderServerError, ProviderTimeoutError
from gatewise.orchestration import parallel
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.providers.base import Target
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage

from .support import Reply, resolved, scripted_gateway


def _fake_gateway() -> Gateway:
    return Gateway(resolved({"echo": "echo", "broken": "fail-500", "slow": "slow-5000"}), seed=1)


async def test_results_come_back_in_model_order_with_usage_timings_and_deployment() -> None:
    async with _fake_gateway() as gw:
        out = await parallel(gw, "hello there", models=["echo", "broken"])
    echo, broken = out.results
    assert echo.model == "echo" and echo.ok
    assert echo.content == "Hello! You said: hello there"
    assert echo.deployment == "echo:fake/echo"
    assert echo.usage is not None and echo.usage.completion_tokens == 5
    assert echo.latency_s > 0 and echo.attempts == 1
    assert echo.cost_usd == 0.0  # an in-process model costs nothing
    assert broken.model == "broken" and not broken.ok
    assert isinstance(broken.error, ProviderServerError)
    assert out.ok == [echo] and out.failed == [broken]
    assert out.by_model("echo") is echo


async def test_branches_run_concurrently_not_one_after_another() -> None:
    script = {m: Reply(content=m, delay_s=0.2) for m in ("a", "b", "c", "d")}
    gw, provider = scripted_gateway(script)
    t0 = time.perf_counter()
    async with gw:
        out = await parallel(gw, "q", models=["a", "b", "c", "d"])
    assert time.perf_counter() - t0 < 0.6  # four 0.2 s calls side by side, not 0.8 s in a row
    assert [r.content for r in out.results] == ["a", "b", "c", "d"]
    assert sorted(provider.calls) == ["a", "b", "c", "d"]


async def test_a_deadline_cancels_stragglers_and_keeps_the_finished_answers() -> None:
    async with _fake_gateway() as gw:
        t0 = time.perf_counter()
        out = await parallel(gw, "x", models=["echo", "slow"], deadline_s=0.1)
        elapsed = time.perf_counter() - t0
    assert elapsed < 1.0  # the 5 s model was cut off, not awaited
    echo, slow = out.results
    assert echo.ok
    assert isinstance(slow.error, ProviderTimeoutError)
    assert "deadline" in str(slow.error)


async def test_a_cancelled_straggler_closes_its_upstream_call() -> None:
    gw, provider = scripted_gateway({"fast": "ok", "stuck": Reply(content="late", delay_s=5)})
    async with gw:
        out = await parallel(gw, "x", models=["fast", "stuck"], deadline_s=0.1)
    assert [r.ok for r in out.results] == [True, False]
    assert provider.cancelled == ["stuck"]


async def test_costs_come_from_deployment_prices_and_sum_over_branches() -> None:
    gw = Gateway(resolved({
        "cheap": [{"model": "openai/gpt-x", "api_base": "http://127.0.0.1:9", "api_key": "k",
                   "prices": {"input": 1.0, "output": 2.0}}],
        "free": "echo"}), seed=1)
    gw.pool.register("openai", _FixedUsage())
    async with gw:
        out = await parallel(gw, "a b c", models=["cheap", "free"])
    cheap, free = out.results
    assert cheap.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert free.cost_usd == 0.0
    assert out.cost_usd == pytest.approx(cheap.cost_usd)
    assert out.usage.prompt_tokens == 1000 + 3


async def test_identity_and_request_parameters_reach_every_branch() -> None:
    seen: list[str] = []

    async def spy(call: Call, next: Handler) -> Any:
        seen.append(call.identity.tenant)
        return await next(call)

    gw, provider = scripted_gateway({"a": "1", "b": "2"}, middlewares=[spy])
    async with gw:
        await parallel(gw, "q", models=["a", "b"], identity=Identity(tenant="acme"),
                       temperature=0.2, max_tokens=5)
    assert seen == ["acme", "acme"]
    assert all(r.temperature == 0.2 and r.max_tokens == 5 and not r.stream
               for r in provider.requests)


async def test_no_models_is_the_callers_mistake() -> None:
    async with _fake_gateway() as gw:
        with pytest.raises(InvalidRequestError, match="at least one model"):
            await parallel(gw, "x", models=[])


class _FixedUsage:
    """An `openai/` client double that answers with a known token count."""

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        return ChatCompletion(choices=[Choice(message=ResponseMessage(content="ok"),
                                              finish_reason="stop")],
                              usage=Usage(prompt_tokens=1000, completion_tokens=500,
                                          total_tokens=1500))

    async def aclose(self) -> None:
        return None
