"""Breakers shared through a real Redis (127.0.0.1:6379) by two gateway processes.

Each replica is a separate process (multiprocessing, spawn) running the per-alias part of the
pipeline (`Router → Retry → Breaker → ProviderCall`) with `RedisBreakers` on one key prefix.
The upstream is a fake OpenAI host in this process whose `gpt-flaky` model fails (or is slow)
when the test says so; it counts every request it receives, so "B skipped the deployment"
means the upstream never heard from B. The router is the gateway's own, with the breakers'
`available()` as its hook, exactly as the gateway wires it.

Without Redis these tests skip, except in CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
from aiohttp import web

from gatewise.config.schema import BreakerConfig
from gatewise.errors import CircuitOpenError, GatewayError
from gatewise.pipeline.core import Call
from tests.fakes import openai_fake
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer

OPEN_S = 1.5


# The tests below check sharing, not the fallback to local breakers: a busy CI machine once took
# Redis past the 0.5 s default for one operation, and a replica went on alone (CI log: "breaker
# redis unavailable"). The fallback has its own test, with its own short timeout.
SHARED_TIMEOUT_S = 10.0

@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


class Flaky:
    """The fake OpenAI host, plus a switch: while `down`, `gpt-flaky` answers 500; `delay`
    slows its answers (to hold a probe open). `seen` lists the model of every request."""

    def __init__(self) -> None:
        self.down = True
        self.delay = 0.0
        self.seen: list[str] = []

    def make_app(self, srv: FakeServer) -> web.Application:
        app = openai_fake.make_app(srv)

        @web.middleware
        async def switch(request: web.Request, handler: Any) -> web.StreamResponse:
            model = (await request.json()).get("model", "")
            self.seen.append(model)
            if "flaky" in model:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.down:
                    return web.json_response(openai_fake.error_body(500, "down"), status=500)
            return await handler(request)

        app.middlewares.append(switch)
        return app

    def count(self, model: str) -> int:
        return sum(1 for m in list(self.seen) if m == model)


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, FakeServer]]:
    f = Flaky()
    with FakeServer(f.make_app) as srv:
        yield f, srv


def _config(fake_url: str, redis_url: str) -> dict[str, Any]:
    def dep(model: str, dep_id: str) -> dict[str, Any]:
        return {"model": f"openai/{model}", "api_base": f"{fake_url}/v1", "api_key": "sk-test",
                "id": dep_id}

    return {
        # `flaky` is one deployment (one breaker) reachable through two aliases.
        "models": {"primary": [dep("gpt-flaky", "flaky")],
                   "chat": [dep("gpt-flaky", "flaky"), dep("gpt-4o-mini", "healthy")]},
        "router": {"redis_url": redis_url,
                   "retry": {"max_retries": 2, "base_delay_s": 0.001, "max_delay_s": 0.01},
                   "breaker": {"store": "redis", "failure_threshold": 3, "min_calls": 10,
                               "window_s": 30.0, "open_s": OPEN_S,
                               "store_timeout_s": SHARED_TIMEOUT_S}},
    }


# -- the replica process ------------------------------------------------------------------------

def replica_main(conn: Connection, config: dict[str, Any], prefix: str) -> None:
    asyncio.run(_replica(conn, config, prefix))


async def _replica(conn: Connection, config: dict[str, Any], prefix: str) -> None:
    from gatewise import Gateway
    from gatewise.config.loader import parse_config, resolve_config
    from gatewise.pipeline.core import build_chain
    from gatewise.pipeline.provider_call import ProviderCall
    from gatewise.resilience.breaker_middleware import BreakerMiddleware
    from gatewise.resilience.breaker_redis import RedisBreakers
    from gatewise.resilience.retry_middleware import RetryMiddleware
    from gatewise.routing.middleware import RouterMiddleware
    from gatewise.routing.router import Router
    from gatewise.types.validation import chat_request_from_dict

    cfg, warnings = parse_config(config)
    gw = Gateway(resolve_config(cfg, None, {}, warnings))
    rc = gw.config.config.router
    breakers = RedisBreakers(rc.breaker, rc.redis_url, prefix=prefix, refresh_s=0.25)
    async with asyncio.timeout(10):
        await breakers.wait_ready()
    router = Router(gw.config, seed=0, available=lambda d: breakers.available(d.id))
    chain = build_chain([RouterMiddleware(router),
                         RetryMiddleware(rc, available=breakers.available),
                         BreakerMiddleware(breakers)], ProviderCall(gw.pool))

    async def one(alias: str) -> str:
        req = chat_request_from_dict({"model": alias,
                                      "messages": [{"role": "user", "content": "hi"}]})
        call = Call("chat", req)
        try:
            await chain(call)
        except GatewayError as exc:
            return type(exc).__name__
        assert call.deployment is not None
        return call.deployment.id

    loop = asyncio.get_running_loop()
    conn.send("ready")
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        op = cmd[0]
        if op == "chat":  # ("chat", alias, n): n requests at once
            conn.send(await asyncio.gather(*(one(cmd[1]) for _ in range(cmd[2]))))
        elif op == "state":
            conn.send(breakers.state(cmd[1]))
        elif op == "wait_state":  # ("wait_state", dep, state): seconds it took, or None
            t0 = time.perf_counter()
            while breakers.state(cmd[1]) != cmd[2] and time.perf_counter() - t0 < 5.0:
                await asyncio.sleep(0.001)
            ok = breakers.state(cmd[1]) == cmd[2]
            conn.send(time.perf_counter() - t0 if ok else None)
        elif op == "stop":
            await breakers.aclose()
            await gw.aclose()
            conn.send("stopped")
            return


class Replica:
    def __init__(self, config: dict[str, Any], prefix: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=replica_main, args=(child, config, prefix), daemon=True)
        self.proc.start()

    def ready(self) -> None:
        assert self.ask_raw(30.0) == "ready"

    def ask_raw(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError("the replica did not answer")
        return self.conn.recv()

    def ask(self, *cmd: Any, timeout: float = 15.0) -> Any:
        self.conn.send(cmd)
        return self.ask_raw(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("stop", timeout=5.0)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@pytest.fixture
def replicas(flaky: tuple[Flaky, FakeServer], redis_url: str,
             prefix: str) -> Iterator[tuple[Replica, Replica]]:
    _, srv = flaky
    config = _config(srv.url, redis_url)
    a, b = Replica(config, prefix), Replica(config, prefix)
    try:
        a.ready()
        b.ready()
        yield a, b
    finally:
        a.close()
        b.close()


def test_two_processes_share_one_breaker(flaky: tuple[Flaky, FakeServer],
                                         replicas: tuple[Replica, Replica]) -> None:
    f, _ = flaky
    a, b = replicas

    # A's one request fails 3 times (1 + 2 retries): the breaker opens for everyone.
    assert a.ask("chat", "primary", 1) == ["ProviderServerError"]
    assert f.count("gpt-flaky") == 3
    assert a.ask("state", "flaky") == "open"
    took = b.ask("wait_state", "flaky", "open")
    assert took is not None and took < 1.0  # published, not waiting for a refresh

    # B never calls the broken deployment: its router skips it, and where it is the only one,
    # refuses at once (the fallback middleware, outside, would serve another alias).
    assert b.ask("chat", "chat", 20) == ["healthy"] * 20
    assert b.ask("chat", "primary", 3) == ["CircuitOpenError"] * 3
    assert f.count("gpt-flaky") == 3

    # Recovery: after open_s, of 20 simultaneous requests from both replicas exactly one
    # reaches the upstream (the probe, held open 0.3 s); the rest are refused at once.
    f.down, f.delay = False, 0.3
    time.sleep(OPEN_S + 0.1)
    assert b.ask("state", "flaky") == "half_open"
    b.conn.send(("chat", "primary", 10))
    a.conn.send(("chat", "primary", 10))
    results = b.ask_raw(10.0) + a.ask_raw(10.0)
    assert sorted(results).count("flaky") == 1
    assert results.count("CircuitOpenError") == 19
    assert f.count("gpt-flaky") == 4

    # The probe's success closed it for both replicas: traffic returns to the deployment.
    f.delay = 0.0
    assert a.ask("wait_state", "flaky", "closed") is not None
    assert b.ask("wait_state", "flaky", "closed") is not None
    served = b.ask("chat", "chat", 20)
    assert set(served) == {"flaky", "healthy"}
    assert f.count("gpt-flaky") == 4 + served.count("flaky")


# -- the Lua scripts directly (one process, many clients) -------------------------------------

async def test_exactly_one_probe_across_many_replicas(redis_url: str, prefix: str) -> None:
    from gatewise.resilience.breaker_redis import RedisBreakers

    cfg = BreakerConfig(store="redis", failure_threshold=2, window_s=30.0, open_s=0.2,
                        store_timeout_s=SHARED_TIMEOUT_S)
    boards = [RedisBreakers(cfg, redis_url, prefix=prefix, refresh_s=0.2) for _ in range(5)]
    try:
        for board in boards:
            await board.wait_ready()
        await boards[0].record_failure("d", "ProviderServerError")
        t = await boards[1].record_failure("d", "ProviderServerError")
        assert t is not None and (t.old, t.new, t.failures, t.calls) == ("closed", "open", 2, 2)
        await asyncio.sleep(0.25)
        outcomes = await asyncio.gather(*(board.admit("d", 10.0) for board in boards
                                          for _ in range(10)), return_exceptions=True)
        tokens = [o for o in outcomes if isinstance(o, str)]
        assert len(tokens) == 1
        assert sum(isinstance(o, CircuitOpenError) for o in outcomes) == 49
        owner = boards[outcomes.index(tokens[0]) // 10]
        closed = await owner.record_probe_success("d", tokens[0])
        assert closed is not None and closed.new == "closed"
        assert closed.recovery_s is not None and 0.2 <= closed.recovery_s < 5.0
    finally:
        for board in boards:
            await board.aclose()


async def test_successes_flushed_by_one_replica_keep_a_busy_deployment_closed(
        redis_url: str, prefix: str) -> None:
    from gatewise.resilience.breaker_redis import RedisBreakers

    cfg = BreakerConfig(store="redis", failure_threshold=3, failure_ratio=0.5, min_calls=10,
                        window_s=30.0, open_s=30.0, store_timeout_s=SHARED_TIMEOUT_S)
    busy, failing = (RedisBreakers(cfg, redis_url, prefix=prefix) for _ in range(2))
    try:
        for _ in range(100):
            busy.note_success("d")
        await busy.sync()  # the periodic flush
        for _ in range(5):  # 5 of 105 calls failed: under the ratio
            assert await failing.record_failure("d", "ProviderServerError") is None
        assert failing.state("d") == "closed"
    finally:
        await busy.aclose()
        await failing.aclose()


async def test_an_unreachable_redis_fails_open_to_local_breakers() -> None:
    from gatewise.resilience.breaker_redis import RedisBreakers

    port = free_port()
    cfg = BreakerConfig(store="redis", failure_threshold=2, open_s=30.0)
    board = RedisBreakers(cfg, f"redis://127.0.0.1:{port}/0", op_timeout_s=0.2)
    try:
        assert board.available("d") and await board.admit("d", 5.0) is None
        await board.record_failure("d", "ProviderServerError")
        t = await board.record_failure("d", "ProviderServerError")
        assert board.degraded and t is not None and t.new == "open"
        assert not board.available("d")  # this process still protects itself
        with pytest.raises(CircuitOpenError):
            await board.admit("d", 5.0)
    finally:
        await board.aclose()


async def _published(seen: Callable[[], bool]) -> None:
    """Waits (at most 2 s) for another replica's write to reach this one's view (after which
    `sync()` reads the deployment's latest state)."""
    async with asyncio.timeout(2.0):
        while not seen():
            await asyncio.sleep(0.005)


async def test_failed_probes_back_off_for_every_replica_and_a_success_resets_it(
        redis_url: str, prefix: str) -> None:
    """The same periods as `MemoryBreakers` (1, 2, 4, ... up to open_s), counted in Redis:
    whichever replica probes, the next period doubles for all of them."""
    from gatewise.resilience.breaker_redis import RedisBreakers
    from tests.unit.resilience.support import FakeClock, FixedRandom

    clock = FakeClock(1_000_000.0)
    cfg = BreakerConfig(store="redis", failure_threshold=2, min_open_s=1.0, open_s=5.0,
                        store_timeout_s=SHARED_TIMEOUT_S)
    boards = [RedisBreakers(cfg, redis_url, prefix=prefix, clock=clock, rng=FixedRandom(0.0))
              for _ in range(2)]
    try:
        for board in boards:
            await board.wait_ready()
        await boards[0].record_failure("d", "ProviderServerError")
        t = await boards[1].record_failure("d", "ProviderServerError")
        assert t is not None and t.new == "open" and t.open_s == pytest.approx(1.0)
        periods = []
        for i in range(5):
            board = boards[i % 2]
            await _published(lambda b=board: b.state("d") != "closed")  # type: ignore[misc]
            await board.sync()  # past any earlier message still on its way
            with pytest.raises(CircuitOpenError) as refused:
                await board.admit("d", 10.0)
            assert refused.value.retry_after == pytest.approx(board.retry_in("d"))
            clock.advance(board.retry_in("d"))
            token = await board.admit("d", 10.0)
            assert token is not None
            t = await board.record_failure("d", "ProviderServerError", token)
            assert t is not None and (t.old, t.new) == ("half_open", "open")
            periods.append(round(t.open_s or 0.0, 3))
        assert periods == [2.0, 4.0, 5.0, 5.0, 5.0]
        await boards[0].sync()
        assert boards[0].retry_in("d") == pytest.approx(5.0)
        clock.advance(5.0)
        token = await boards[0].admit("d", 10.0)
        assert token is not None and await boards[0].record_probe_success("d", token)
        await boards[1].record_failure("d", "ProviderServerError")
        t = await boards[1].record_failure("d", "ProviderServerError")
        assert t is not None and t.new == "open" and t.open_s == pytest.approx(1.0)  # reset
    finally:
        for board in boards:
            await board.aclose()


async def test_the_jitter_drawn_by_the_replica_shortens_the_shared_period(
        redis_url: str, prefix: str) -> None:
    from gatewise.resilience.breaker_redis import RedisBreakers
    from tests.unit.resilience.support import FakeClock, FixedRandom

    clock = FakeClock(1_000_000.0)
    cfg = BreakerConfig(store="redis", failure_threshold=1, min_open_s=1.0, open_s=30.0,
                        store_timeout_s=SHARED_TIMEOUT_S)
    board = RedisBreakers(cfg, redis_url, prefix=prefix, clock=clock, rng=FixedRandom(0.5))
    try:
        t = await board.record_failure("d", "ProviderServerError")
        assert t is not None and t.open_s == pytest.approx(0.95)
        assert board.retry_in("d") == pytest.approx(0.95)
        clock.advance(0.95)
        token = await board.admit("d", 10.0)
        assert token is not None
        # While the probe runs the wait is about one short period, not the 10 s lease.
        assert board.retry_in("d") == pytest.approx(1.0)
        t = await board.record_failure("d", "ProviderServerError", token)
        assert t is not None and t.open_s == pytest.approx(1.9)
    finally:
        await board.aclose()


async def test_aclose_ends_the_sync_task_however_early_it_is_called(
        redis_url: str, prefix: str) -> None:
    """A cancel landing while the sync task subscribes or reads could be swallowed inside
    redis-py, and `aclose()` (the gateway's shutdown) then waited forever. Closing at
    staggered moments of the start-up must always finish promptly."""
    from gatewise.resilience.breaker_redis import RedisBreakers

    t0 = time.perf_counter()
    for i in range(40):
        board = RedisBreakers(BreakerConfig(store="redis"), redis_url, prefix=f"{prefix}{i}:")
        board.note_success("d")  # something to flush: `sync()` runs during the start-up
        board.start()
        until = time.perf_counter() + 0.0005 * i
        while time.perf_counter() < until:
            await asyncio.sleep(0)
        closing = asyncio.ensure_future(board.aclose())
        done, _ = await asyncio.wait({closing}, timeout=3.0)
        assert done, f"aclose() hung when called {0.5 * i:.1f} ms after start()"
    assert time.perf_counter() - t0 < 20.0
