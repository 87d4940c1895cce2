"""The operations metrics are fed from where the facts are known: spend and tokens per team
(telemetry), budgets' remaining amounts and breaker states (scrape-time collectors over memory),
rate-limit refusals (accounting), guard decisions (security events) and the build."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.accounting.budgets import BudgetMiddleware
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import GatewayError, RateLimitExceeded
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.core import Identity
from gatewise.server.app import create_app

RED = Identity(team="red", key_id="key_r")
BLUE = Identity(team="blue", key_id="key_b")


def _gateway(**extra: Any) -> Gateway:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo", "prices": {"input": 1.0, "output": 2.0}}],
                   "broken": [{"model": "fake/fail-500"}],
                   "tight": [{"model": "fake/echo", "rpm": 1}]},
        "storage": {"database": "memory"},
        "router": {"retry": {"max_retries": 0},
                   "breaker": {"failure_threshold": 2, "min_calls": 2, "min_open_s": 60}},
        **extra})
    return Gateway(resolve_config(cfg, None, {}, w))


async def test_spend_and_tokens_are_counted_per_team() -> None:
    async with _gateway() as gw:
        a = await gw.chat("one two three", model="m", identity=RED)
        b = await gw.chat("one", model="m", identity=BLUE)
        c = await gw.chat("anonymous caller", model="m")
        m = gw.metrics
    assert a.usage is not None and b.usage is not None and c.usage is not None
    assert m.team_cost.get(("red",)) == pytest.approx(a.info.cost_usd)
    assert m.team_cost.get(("blue",)) == pytest.approx(b.info.cost_usd)
    assert m.team_cost.get(("none",)) == pytest.approx(c.info.cost_usd)
    assert m.team_tokens.get(("red", "input")) == a.usage.prompt_tokens
    assert m.team_tokens.get(("red", "output")) == a.usage.completion_tokens
    assert m.team_tokens.get(("blue", "output")) == b.usage.completion_tokens


async def test_budget_remaining_and_used_ratio_come_from_the_last_settle() -> None:
    budgets = [{"scope": "team", "subject": "*", "period": "month", "limit_usd": 0.01},
               {"scope": "key", "subject": "key_r", "period": "day", "limit_tokens": 1000}]
    async with _gateway(accounting={"budgets": budgets}) as gw:
        text = gw.metrics.render()
        assert "gatewise_budget_remaining_usd{" not in text  # nothing settled here yet
        r = await gw.chat("one two three", model="m", identity=RED, max_tokens=20)
        await gw.accounting.aclose()  # settles still running
        guard = next(mw for mw in gw.accounting.per_identity
                     if isinstance(mw, BudgetMiddleware))
        m = gw.metrics
        m.render()
        assert r.info.cost_usd and r.usage is not None
        spent = r.info.cost_usd
        assert m.budget_remaining.get(("team", "red", "month")) == pytest.approx(0.01 - spent)
        assert m.budget_used_ratio.get(("team", "red", "month")) == pytest.approx(spent / 0.01)
        # a token-only budget has a ratio and no USD remaining
        assert m.budget_used_ratio.get(("key", "key_r", "day")) == pytest.approx(
            r.usage.total_tokens / 1000)
        assert ("key", "key_r", "day") not in m.budget_remaining.values
        # the next period has spent nothing yet, without any store read at scrape time
        guard.clock = lambda: time.time() + 40 * 86400
        guard.counters = None  # type: ignore[assignment]
        m.render()
        assert m.budget_remaining.get(("team", "red", "month")) == 0.01
        assert m.budget_used_ratio.get(("key", "key_r", "day")) == 0.0


async def test_breaker_state_is_exported_for_every_deployment() -> None:
    async with _gateway() as gw:
        text = gw.metrics.render()
        assert 'gatewise_breaker_state{deployment="broken:fake/fail-500"} 0' in text
        for _ in range(2):
            with pytest.raises(GatewayError):
                await gw.chat("x", model="broken")
        text = gw.metrics.render()
    assert 'gatewise_breaker_state{deployment="broken:fake/fail-500"} 2' in text
    assert 'gatewise_breaker_state{deployment="m:fake/echo"} 0' in text


async def test_rate_limit_refusals_are_counted_by_scope() -> None:
    key = Identity(team="red", key_id="key_1", rpm=1)
    team = Identity(team="blue", key_id="key_2", team_rpm=1)
    async with _gateway() as gw:
        for who in (key, team):
            await gw.chat("x", model="m", identity=who)
            with pytest.raises(RateLimitExceeded):
                await gw.chat("x", model="m", identity=who)
        await gw.chat("x", model="tight")
        with pytest.raises(GatewayError):  # the only deployment is full: the router gives up
            await gw.chat("x", model="tight")
        m = gw.metrics
    assert m.rate_limited.get(("key",)) == 1
    assert m.rate_limited.get(("team",)) == 1
    assert m.rate_limited.get(("deployment",)) == 1


async def test_guard_decisions_are_counted_by_guard_and_action_and_denials_are_not() -> None:
    tools = [{"type": "function", "function": {"name": "unregistered", "parameters": {
        "type": "object"}}}]
    guard = {"tools": {"unknown_request_tools": "drop"}}
    async with _gateway(guardrails={"default": guard}) as gw:
        await gw.chat("x", model="m", identity=RED, tools=tools)  # the tool is dropped: flag
        gw.security_events.emit("auth", "deny", detail={"reason": "unknown key"})
        m = gw.metrics
    assert m.guard_decisions.get(("tool_call", "flag")) == 1
    assert m.security_events.get(("tool_call", "flag")) == 1
    assert m.security_events.get(("auth", "deny")) == 1
    assert set(m.guard_decisions.values) == {("tool_call", "flag")}


async def test_the_server_exports_its_version() -> None:
    from gatewise import __version__

    app = create_app(gateway=_gateway())
    try:
        assert f'gatewise_build_info{{version="{__version__}"}} 1' in app.gateway.metrics.render()
    finally:
        await app.gateway.aclose()


def test_a_failing_collector_does_not_take_the_scrape_down(
        caplog: pytest.LogCaptureFixture) -> None:
    m = GatewayMetrics()

    def broken() -> None:
        raise RuntimeError("boom")

    m.add_collector(broken)
    m.add_collector(lambda: m.breaker_state.set(("d",), 2))
    text = m.render()
    assert 'gatewise_breaker_state{deployment="d"} 2' in text
    [rec] = [r for r in caplog.records if r.name == "gatewise.metrics"]
    assert rec.error_type == "RuntimeError"  # type: ignore[attr-defined]
