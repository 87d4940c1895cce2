"""Provider health over HTTP: a fake OpenAI upstream that goes down and comes back.

The probe is the upstream's model list (never a chat completion); while the upstream is down
the probe backs off (virtual clock, real HTTP); a running server shows the outage in
`/readyz` within one probe interval and the recovery after it; a Redis on a closed port
makes the replica not ready; no error in the document carries a key or a URL. A
LiteLLM-routed deployment of a provider gatewise speaks is probed the same way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.observability.health import build_health
from tests.fakes import openai_fake
from tests.fakes.gateway import GatewayServer
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer
from tests.virtual_time import VirtualTime
from tests.waiting import wait_until

KEY = "sk-health-probe-key-0000000000000000"


class Upstream:
    """The OpenAI fake behind a switch: while `down`, every request gets a 503."""

    def __init__(self) -> None:
        self.down = False
        self.seen: list[tuple[str, str]] = []  # every request, answered or refused
        self.server = FakeServer(self._make)

    def _make(self, srv: FakeServer) -> web.Application:
        app = openai_fake.make_app(srv)

        @web.middleware
        async def outage(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen.append((request.method, request.path))
            if self.down:
                return web.json_response(openai_fake.error_body(503, "engine overloaded"),
                                         status=503)
            resp: web.StreamResponse = await handler(request)
            return resp

        app.middlewares.append(outage)
        return app


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    with up.server:
        yield up


def _config(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {"models": {"gpt": [{"model": "openai/gpt-4o-mini",
                                "api_base": upstream.server.url + "/v1", "api_key": KEY}]},
            "storage": {"database": "memory"}, **extra}


def _no_chat_calls(upstream: Upstream) -> None:
    assert upstream.seen and set(upstream.seen) == {("GET", "/v1/models")}, upstream.seen


async def test_probes_list_models_and_back_off_while_the_upstream_is_down(
        upstream: Upstream) -> None:
    cfg, w = parse_config(_config(upstream, health={"probe_interval_s": 10,
                                                    "max_backoff_s": 80}))
    gw = Gateway(resolve_config(cfg, None, {}, w))
    vt = VirtualTime()
    monitor = build_health(gw.config, pool=gw.pool, stores=gw.stores, clock=vt.clock,
                           sleep=vt.sleep)
    probed: list[float] = []

    async def step_to(t: float) -> None:
        while vt.now < t:
            vt.now += 5
            before = len(upstream.seen)
            await monitor.check_due()
            if len(upstream.seen) > before:
                probed.append(vt.now)

    try:
        await step_to(10)
        assert probed == [10] and monitor.snapshot()["gpt:openai/gpt-4o-mini"].status == "up"
        assert upstream.server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
        upstream.down = True
        await step_to(250)
        # Down from 20 on: checked at 20, then after 10, 20, 40, 80, 80 (the cap).
        assert probed == [10, 20, 30, 50, 90, 170, 250]
        comp = monitor.snapshot()["gpt:openai/gpt-4o-mini"]
        assert (comp.status, comp.error) == ("down", "ProviderOverloadedError 503")
        assert monitor.readiness()[0] == 503
        upstream.down = False
        await step_to(340)
        assert probed[-2:] == [330, 340]
        assert monitor.snapshot()["gpt:openai/gpt-4o-mini"].status == "up"
        assert monitor.readiness()[0] == 200
        _no_chat_calls(upstream)
    finally:
        await gw.aclose()


async def test_a_litellm_routed_deployment_is_probed_with_its_providers_model_list(
        upstream: Upstream) -> None:
    """`litellm/openai/...`: gatewise speaks OpenAI itself, so the probe is the upstream's
    model list on the deployment's address and key, and LiteLLM is never imported for it."""
    import sys

    cfg, w = parse_config({
        "models": {"ll": [{"model": "litellm/openai/gpt-4o-mini",
                           "api_base": upstream.server.url + "/v1", "api_key": KEY}]},
        "storage": {"database": "memory"}})
    gw = Gateway(resolve_config(cfg, None, {}, w))
    try:
        await gw.health.check_all()
        comp = gw.health.snapshot()["ll:litellm/openai/gpt-4o-mini"]
        assert (comp.status, comp.detail["probe"], comp.detail["via"]) == (
            "up", "model_list", "litellm")
        assert upstream.server.requests[-1].headers["Authorization"] == f"Bearer {KEY}"
        upstream.down = True
        await gw.health.check_all()
        comp = gw.health.snapshot()["ll:litellm/openai/gpt-4o-mini"]
        assert (comp.status, comp.error) == ("down", "ProviderOverloadedError 503")
        assert gw.health.readiness()[0] == 503  # the alias's only deployment is down
        _no_chat_calls(upstream)
        assert "litellm" not in sys.modules
    finally:
        await gw.aclose()


def test_a_running_server_shows_the_outage_within_one_probe_interval(
        upstream: Upstream) -> None:
    interval = 0.4
    cfg = _config(upstream, health={"probe_interval_s": interval, "max_backoff_s": 0.8})
    with GatewayServer(cfg) as srv:

        def ready() -> tuple[int, dict[str, Any]]:
            r = httpx.get(srv.url + "/readyz", timeout=5)
            return r.status_code, r.json()

        wait_until(lambda: ready()[1]["components"]["gpt:openai/gpt-4o-mini"]["status"] == "up",
                   5, what="the first probe")
        status, doc = ready()
        assert (status, doc["status"], doc["deployments"]) == (
            200, "ready", {"gpt:openai/gpt-4o-mini": "ok"})
        upstream.down = True
        went = time.monotonic()
        wait_until(lambda: ready()[0] == 503, 5, what="the outage in /readyz")
        seen_after = time.monotonic() - went
        status, doc = ready()
        comp = doc["components"]["gpt:openai/gpt-4o-mini"]
        assert (doc["status"], comp["status"], comp["error"]) == ("not_ready", "down",
                                                                 "ProviderOverloadedError 503")
        assert doc["deployments"] == {
            "gpt:openai/gpt-4o-mini": "down: ProviderOverloadedError 503"}
        assert KEY not in str(doc) and upstream.server.url not in str(doc)
        assert seen_after <= interval + 0.4, seen_after
        metrics = httpx.get(srv.url + "/metrics", timeout=5).text
        assert ('gatewise_component_up{component="gpt:openai/gpt-4o-mini",kind="provider"} 0'
                in metrics)
        upstream.down = False
        wait_until(lambda: ready()[0] == 200, 5, what="the recovery in /readyz")
        assert httpx.get(srv.url + "/healthz", timeout=5).json() == {"status": "ok"}
    _no_chat_calls(upstream)
    print(f"\noutage visible in /readyz after {seen_after * 1000:.0f} ms "
          f"(probe interval {interval * 1000:.0f} ms)")


async def test_a_redis_on_a_closed_port_makes_the_replica_not_ready(upstream: Upstream) -> None:
    port = free_port()
    cfg, w = parse_config({**_config(upstream),
                           "storage": {"database": "memory",
                                       "redis_url": f"redis://:pw-123@127.0.0.1:{port}/0"}})
    gw = Gateway(resolve_config(cfg, None, {}, w))
    try:
        await asyncio.wait_for(gw.health.check_all(kinds=["store"]), 10)
        status, doc = gw.health.readiness()
        redis = doc["components"]["redis"]
        assert (status, doc["status"], redis["kind"], redis["status"]) == (
            503, "not_ready", "store", "down")
        assert redis["error"] == "ConnectionError" and "pw-123" not in str(doc)
        assert doc["reasons"] == ["store down: redis"]
        assert gw.metrics.component_up.get(("redis", "store")) == 0
    finally:
        await gw.aclose()


async def test_an_unreachable_postgres_times_out_and_leaves_no_pool_behind(
        upstream: Upstream) -> None:
    cfg, w = parse_config({**_config(upstream), "health": {"probe_timeout_s": 0.5},
                           "storage": {"database": "postgres", "postgres_url":
                                       f"postgresql://u:pw-456@127.0.0.1:{free_port()}/x"}})
    gw = Gateway(resolve_config(cfg, None, {}, w))
    before = asyncio.all_tasks()
    try:
        started = time.monotonic()
        await gw.health.check_all(kinds=["store"])
        assert time.monotonic() - started < 2
        status, doc = gw.health.readiness()
        assert (status, doc["components"]["postgres"]["error"]) == (503, "TimeoutError")
        assert "pw-456" not in str(doc)
        await asyncio.sleep(0.1)
        # The half-opened pool was closed, not left reconnecting in the background.
        assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
    finally:
        await gw.aclose()


def test_with_a_master_key_readiness_details_need_a_key_but_the_status_never_does() -> None:
    """Probes send no key and must still read readiness; the per-component document names
    deployments and stores, so a keyed gateway shows it only to a key allowed `usage:read`
    (the master key here), and a missing or wrong key gets the status alone, never a 401."""
    master = "sk-gatewise-readyz-master-0000000000"
    config = {"models": {"chat": [{"model": "fake/echo"}]},
              "server": {"master_key": master, "warmup": False},
              "storage": {"database": "memory"}}
    with GatewayServer(config) as srv:
        bare = httpx.get(srv.url + "/readyz", timeout=5)
        wrong = httpx.get(srv.url + "/readyz", timeout=5,
                          headers={"authorization": "Bearer sk-gw-not-a-real-key-000000000"})
        full = httpx.get(srv.url + "/readyz", timeout=5,
                         headers={"authorization": f"Bearer {master}"})
    assert bare.status_code == wrong.status_code == full.status_code == 200
    assert bare.json() == wrong.json() == {"status": "ready"}
    doc = full.json()
    assert doc["status"] == "ready" and "chat:fake/echo" in doc["deployments"]
    assert doc["components"]["api"]["status"] == "up"
