"""Health checks and readiness, in process: which components a gateway reports, how readiness
follows them (ready, degraded, not ready, draining), quotas, the local model, providers that
have no free call, the metrics, and errors that never carry their text.

Over HTTP, against a fake upstream that goes down and comes back (backoff, no chat calls,
the outage in `/readyz`): `tests/server/test_health_probes.py`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.accounting.budgets import budget_key, period_bounds
from gatewise.config.loader import parse_config, resolve_config
from gatewise.config.schema_ops import HealthConfig
from gatewise.errors import BudgetExceededError, ProviderServerError
from gatewise.observability.health import HealthMonitor, Probe, Result, build_health, describe_error
from gatewise.pipeline.core import Identity
from gatewise.providers.base import Target
from gatewise.providers.llamacpp.engine import Job, ModelWorker
from gatewise.providers.llamacpp.provider import LlamaCppProvider
from gatewise.providers.pool import ProviderPool
from gatewise.security.crypto import generate_key
from gatewise.storage.factory import open_stores
from tests.virtual_time import VirtualTime


def _config(models: dict[str, Any], **extra: Any) -> Any:
    cfg, w = parse_config({"models": models, "storage": {"database": "memory"}, **extra})
    return resolve_config(cfg, None, {}, w)


@pytest.fixture
async def gateways() -> AsyncIterator[list[Gateway]]:
    made: list[Gateway] = []
    yield made
    for g in made:
        await g.aclose()


def gateway(made: list[Gateway], models: dict[str, Any], **extra: Any) -> Gateway:
    g = Gateway(_config(models, **extra))
    made.append(g)
    return g


async def test_every_deployment_store_and_the_api_is_a_component(gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "fake/echo"}, {"model": "fake/fail-401"}]},
                 storage={"database": "sqlite"})
    await gw.start()
    await gw.health.check_all()
    comps = {n: c.to_dict() for n, c in gw.health.snapshot().items()}
    assert comps["gpt:fake/echo"]["kind"] == "provider"
    assert comps["gpt:fake/echo"]["status"] == "up"
    assert comps["gpt:fake/echo"]["alias"] == "gpt" and comps["gpt:fake/echo"]["probe"] == \
        "model_list"
    assert comps["gpt:fake/echo"]["latency_ms"] >= 0 and comps["gpt:fake/echo"]["checked_at"]
    assert comps["gpt:fake/fail-401"]["status"] == "down"
    assert comps["gpt:fake/fail-401"]["error"] == "AuthenticationError"
    assert comps["sqlite"]["kind"] == "store" and comps["sqlite"]["status"] == "up"
    assert comps["api"]["kind"] == "api" and comps["api"]["status"] == "up"
    # The metrics come from the same results.
    up = gw.metrics.component_up
    assert up.get(("gpt:fake/echo", "provider")) == 1
    assert up.get(("gpt:fake/fail-401", "provider")) == 0
    assert up.get(("sqlite", "store")) == 1
    assert gw.metrics.health_check_duration.count(("provider",)) == 2
    text = gw.metrics.render()
    assert 'gatewise_component_up{component="gpt:fake/fail-401",kind="provider"} 0' in text


async def test_readiness_follows_the_aliases_that_can_still_be_served(
        gateways: list[Gateway]) -> None:
    models = {"both": [{"model": "fake/echo"}, {"model": "fake/fail-401-a"}],
              "bad": [{"model": "fake/fail-401-b"}]}
    gw = gateway(gateways, models)
    assert gw.health.readiness()[0] == 200  # nothing checked yet: nothing known to be down
    await gw.health.check_all()
    status, doc = gw.health.readiness()
    assert (status, doc["status"]) == (200, "degraded")
    assert doc["unserved_aliases"] == ["bad"]
    assert gw.health.readiness(warmed=False) == (503, gw.health.readiness(warmed=False)[1])
    assert gw.health.readiness(warmed=False)[1]["status"] == "not_ready"
    assert gw.health.readiness(draining=True)[1]["status"] == "draining"
    assert gw.health.readiness(draining=True)[0] == 503
    # Strict: every alias must have a deployment up.
    strict = gateway(gateways, models, health={"require_all_aliases": True})
    await strict.health.check_all()
    status, doc = strict.health.readiness()
    assert (status, doc["status"]) == (503, "not_ready")
    assert doc["reasons"] == ["aliases with no deployment up: bad"]
    # Nothing can be served at all: not ready whatever the rule.
    dead = gateway(gateways, {"bad": [{"model": "fake/fail-401"}]})
    await dead.health.check_all()
    status, doc = dead.health.readiness()
    assert (status, doc["status"], doc["reasons"]) == (503, "not_ready",
                                                      ["no alias can be served"])


async def test_all_up_is_ready(gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "fake/echo"}]})
    await gw.start()
    await gw.health.check_all()
    status, doc = gw.health.readiness()
    assert (status, doc["status"]) == (200, "ready") and "reasons" not in doc


async def test_a_shared_store_down_makes_the_replica_not_ready(
        gateways: list[Gateway], caplog: pytest.LogCaptureFixture) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "fake/echo"}]})

    async def refused() -> None:
        raise ConnectionRefusedError("redis://:hunter2@10.0.0.5:6379 refused")

    gw.health = build_health(gw.config, pool=gw.pool,
                             stores=_with_probes(gw, {"redis": refused}))
    with caplog.at_level(logging.WARNING, logger="gatewise.health"):
        await gw.health.check_all()
    status, doc = gw.health.readiness()
    assert (status, doc["status"]) == (503, "not_ready")
    assert doc["components"]["redis"]["error"] == "ConnectionRefusedError"
    assert doc["reasons"] == ["store down: redis"]
    assert "store redis is down (ConnectionRefusedError)" in caplog.text
    assert "hunter2" not in caplog.text and "hunter2" not in str(doc)


def _with_probes(gw: Gateway, probes: dict[str, Any]) -> Any:
    return dataclasses.replace(gw.stores, probes=probes)


async def test_errors_show_their_type_and_status_never_their_text() -> None:
    exc = ProviderServerError("upstream http://admin:pw@10.1.2.3/ said sk-live-abc",
                              provider="openai", model="m", upstream_status=503)
    assert describe_error(exc) == "ProviderServerError 503"
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(ValueError("sk-live-abc")) == "ValueError"


async def test_an_exhausted_hard_budget_is_a_degraded_quota_with_its_scope(
        gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "fake/echo"}]}, accounting={"budgets": [
        {"scope": "team", "subject": "red", "period": "day", "limit_usd": 1.0},
        {"scope": "team", "subject": "blue", "period": "day", "limit_usd": 1.0},
        {"scope": "team", "subject": "green", "period": "day", "limit_usd": 1.0,
         "hard": False},
        {"scope": "team", "period": "day", "limit_usd": 1.0}]})
    await gw.health.check_all()
    assert gw.health.snapshot()["quota:team:red:day"].status == "up"
    counters = gw.stores.counters
    start, _ = period_bounds("day", time.time())
    held = await counters.reserve(budget_key("team", "red", "day", start, "usd"), 1.0,
                                  math.inf, 86400)
    assert held is not None
    await counters.settle(held, 1.0)
    await gw.health.check_all()
    quotas = {n: c for n, c in gw.health.snapshot().items() if c.kind == "quota"}
    # Hard budgets; a soft one only alerts. The `*` one: below (no key names a team here).
    assert set(quotas) == {"quota:team:red:day", "quota:team:blue:day", "quota:team:*:day"}
    assert quotas["quota:team:*:day"].to_dict()["subjects"] == 0
    red = quotas["quota:team:red:day"].to_dict()
    assert (red["status"], red["error"], red["scope"], red["subject"]) == (
        "degraded", "exhausted: usd", "team", "red")
    status, doc = gw.health.readiness()
    assert (status, doc["status"]) == (200, "degraded")  # a team's cap is not an outage
    assert gw.metrics.component_up.get(("quota:team:red:day", "quota")) == 0
    assert gw.metrics.component_up.get(("quota:team:blue:day", "quota")) == 1


async def test_a_budget_for_every_team_is_checked_per_team_as_it_is_enforced(
        gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "fake/echo"}]}, accounting={"budgets": [
        {"scope": "team", "period": "day", "limit_tokens": 100_000}]})
    ids = {}
    for team in ("red", "blue", "gone"):
        await gw.admin.create_team(team, name=team, models=(), rpm=None, tpm=None, actor="t")
        _, rec = await gw.admin.create_key(name=f"k-{team}", role="member", team=team,
                                           user=None, models=(), permissions=(),
                                           expires_in_s=None, rpm=None, tpm=None, actor="t")
        ids[team] = rec.id
    await gw.admin.revoke_key(ids["gone"], actor="t")  # a revoked key's team is not looked at
    await gw.health.check_all()
    every = gw.health.snapshot()["quota:team:*:day"].to_dict()
    assert (every["status"], every["subjects"], every["exhausted"]) == ("up", 2, [])
    start, _ = period_bounds("day", time.time())
    held = await gw.stores.counters.reserve(budget_key("team", "red", "day", start, "tokens"),
                                            100_000, math.inf, 86400)
    assert held is not None
    await gw.stores.counters.settle(held, 100_000)
    await gw.health.check_all()
    every = gw.health.snapshot()["quota:team:*:day"].to_dict()
    assert (every["status"], every["error"], every["exhausted"]) == (
        "degraded", "exhausted: 1 of 2", ["red"])
    assert gw.metrics.component_up.get(("quota:team:*:day", "quota")) == 0
    # What enforcement does with the same counters: red is refused, blue is served.
    with pytest.raises(BudgetExceededError):
        await gw.chat("hi", model="gpt", identity=Identity(key_id=ids["red"], team="red"))
    assert (await gw.chat("hi", model="gpt",
                          identity=Identity(key_id=ids["blue"], team="blue"))).content


class LocalModel:
    """What the pool's llama.cpp client answers about its model (no generation)."""

    def __init__(self) -> None:
        self.state = "not_loaded"
        self.generated = 0

    def model_state(self, target: Any) -> str:
        return self.state

    async def chat(self, *a: Any) -> Any:  # pragma: no cover - must never be called
        self.generated += 1
        raise AssertionError("a health check generated text")

    async def aclose(self) -> None:
        return None


async def test_the_local_model_is_up_once_loaded_and_never_asked_to_generate(
        gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"local": [{"model": "llamacpp/tiny.gguf"}]})
    local = LocalModel()
    gw.pool.register("llamacpp", local)  # type: ignore[arg-type]
    name = "local:llamacpp/tiny.gguf"
    await gw.health.check_all()
    comp = gw.health.snapshot()[name]
    assert (comp.kind, comp.status) == ("local_model", "unknown")  # not loaded yet: no verdict
    assert gw.health.readiness()[0] == 200
    local.state = "loaded"
    await gw.health.check_all()
    assert gw.health.snapshot()[name].status == "up"
    assert gw.metrics.component_up.get((name, "local_model")) == 1
    local.state = "failed:OSError"
    await gw.health.check_all()
    comp = gw.health.snapshot()[name]
    assert (comp.status, comp.error) == ("down", "OSError")
    assert gw.health.readiness()[1]["status"] == "not_ready"
    assert local.generated == 0


async def test_the_llamacpp_provider_reports_its_model_without_loading_it() -> None:
    provider = LlamaCppProvider()
    target = Target(provider="llamacpp", model="tiny.gguf", wire="llamacpp")
    assert provider.model_state(target) == "not_loaded"
    assert provider._models == {} and provider._engines == {}  # nothing resolved or opened


class LiteLLMClient:
    """Stands in for the LiteLLM client (its extra is tested in a venv of its own): records
    the key checks the probe makes through the provider seam."""

    def __init__(self) -> None:
        self.checked: list[Target] = []
        self.fail: Exception | None = None

    async def validate_key(self, target: Target) -> None:
        self.checked.append(target)
        if self.fail is not None:
            raise self.fail


async def test_a_litellm_deployment_gatewise_cannot_reach_itself_is_probed_through_litellm(
        ) -> None:
    cfg = _config({"ll": [{"model": "litellm/bedrock/anthropic.claude-3-haiku",
                           "api_key": "sk-ll"}]})
    pool = ProviderPool()
    client = LiteLLMClient()
    pool.register("litellm", client)  # type: ignore[arg-type]
    monitor = build_health(cfg, pool=pool, stores=open_stores(cfg))
    await monitor.check_all()
    comp = monitor.snapshot()["ll:litellm/bedrock/anthropic.claude-3-haiku"]
    assert (comp.status, comp.detail["probe"], comp.detail["via"]) == (
        "up", "completion", "litellm")
    [target] = client.checked
    assert (target.wire, target.model, target.api_key) == (
        "litellm", "bedrock/anthropic.claude-3-haiku", "sk-ll")
    client.fail = ProviderServerError("down", provider="bedrock", model="m",
                                      upstream_status=503)
    await monitor.check_all()
    comp = monitor.snapshot()["ll:litellm/bedrock/anthropic.claude-3-haiku"]
    assert (comp.status, comp.error) == ("down", "ProviderServerError 503")


async def test_a_deployment_that_cannot_serve_as_configured_is_down_from_the_start(
        gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "openai/gpt-4o"}], "ok": [{"model": "fake/echo"}]})
    comp = gw.health.snapshot()["gpt:openai/gpt-4o"]
    assert comp.status == "down" and comp.error  # e.g. no API key configured
    assert gw.metrics.component_up.get(("gpt:openai/gpt-4o", "provider")) == 0


async def test_probes_spend_nothing_and_use_no_vault_key_use(gateways: list[Gateway]) -> None:
    gw = gateway(gateways, {"gpt": [{"model": "fake/echo", "api_key": "vault:main"}]},
                 security={"encryption_key": generate_key()},
                 accounting={"budgets": [{"scope": "team", "subject": "red",
                                          "limit_usd": 1.0}]})
    await gw.security.vault.put("main", "fake", "sk-fake-000", actor="test")
    for _ in range(3):
        await gw.health.check_all()
    assert gw.health.snapshot()["gpt:fake/echo"].status == "up"
    await gw.accounting.ledger.flush()
    assert await gw.stores.ledger.query() == []
    assert [r["uses"] for r in await gw.security.vault.usage_report()] == [0]


async def test_backoff_doubles_while_down_up_to_its_cap() -> None:
    vt = VirtualTime()
    down = True
    checked: list[float] = []

    async def check() -> Result:
        checked.append(vt.now)
        if down:
            raise ConnectionError("refused")
        return Result()

    monitor = HealthMonitor(HealthConfig(), clock=vt.clock, wall=vt.clock, sleep=vt.sleep)
    monitor.add(Probe("p", "provider", check, 10.0, 60.0, 5.0))
    monitor.start()
    await vt.run_until(200)
    assert checked == [10, 20, 40, 80, 140, 200]  # 10, 20, 40, then capped at 60
    down = False
    await vt.run_until(290)
    assert checked[6:] == [260, 270, 280, 290]  # back to its interval once up
    await monitor.aclose()


async def test_a_model_worker_knows_whether_its_model_loaded_without_generating() -> None:
    loop = asyncio.get_running_loop()

    def failing() -> Any:
        raise OSError("/models/secret-path/tiny.gguf: no such file")

    for load, want in ((object, (True, None)), (failing, (False, "OSError"))):
        worker = ModelWorker("test", load, lambda m: None, lambda: RuntimeError("closed"))
        assert (worker.loaded, worker.load_error) == (False, None)
        job = Job("k", lambda model, job: "done", loop)
        worker.submit(job)
        await job.events.get()
        assert (worker.loaded, worker.load_error) == want
        thread = worker.close()
        if thread is not None:
            await asyncio.to_thread(thread.join, 5)
        assert worker.loaded is False  # unloaded with its thread
