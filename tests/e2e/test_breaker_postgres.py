"""Two gateway servers on one PostgreSQL schema and no Redis share their circuit breakers.

The breaker store is left at "auto": on the PostgreSQL database without a router Redis it
must pick PostgreSQL. The upstream is a fake OpenAI host whose `gpt-flaky` model always
fails and which counts every request it receives; the threshold is reached by failures
through *both* replicas (one shared window), and from then on the upstream hears nothing
more from either: the one that opened it refuses, and so does the other, told by NOTIFY.
`open_s` is far longer than the test, so no probe reaches the upstream either.

PostgreSQL on 127.0.0.1:5432: skips without it, fails in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.resilience.breaker_postgres import PostgresBreakers
from tests.e2e.test_breaker_redis import Flaky
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import require_pg

MASTER = "sk-master-breaker-pg"
THRESHOLD = 3


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, FakeServer]]:
    f = Flaky()
    with FakeServer(f.make_app) as srv:
        yield f, srv


@pytest.fixture
def replicas(flaky: tuple[Flaky, FakeServer],
             tmp_path: Path) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    pg_url = require_pg()
    schema = f"gw_breaker_e2e_{os.getpid()}_{time.time_ns()}"
    _, srv = flaky
    cfg: dict[str, Any] = {
        "models": {"primary": [{"model": "openai/gpt-flaky", "api_base": f"{srv.url}/v1",
                                "api_key": "sk-test", "id": "flaky"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0},
                   "breaker": {"failure_threshold": THRESHOLD, "min_calls": 10,
                               "window_s": 30.0, "open_s": 60.0, "min_open_s": 60.0,
                               # a busy CI machine once took PostgreSQL past the 0.5 s
                               # default, and the replica went on alone (what that test
                               # checks is sharing, not the fallback)
                               "store_timeout_s": 10.0}},
        "storage": {"state_dir": str(tmp_path), "database": "postgres",
                    "postgres_url": pg_url, "postgres_schema": schema},
    }
    try:
        with GatewayServer(cfg) as a, GatewayServer(cfg) as b:
            yield a, b
    finally:
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _chat(srv: GatewayServer) -> int:
    return httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {MASTER}"},
                      json={"model": "primary",
                            "messages": [{"role": "user", "content": "hi"}]}).status_code


def _state(srv: GatewayServer) -> str:
    return srv.app.gateway.breakers.state("flaky")


def test_failures_through_both_replicas_stop_both_from_calling_the_upstream(
        flaky: tuple[Flaky, FakeServer], replicas: tuple[GatewayServer, GatewayServer]) -> None:
    f, _ = flaky
    a, b = replicas
    assert isinstance(a.app.gateway.breakers, PostgresBreakers)  # "auto" chose PostgreSQL
    # Both replicas' listeners up before the first failure (start-up never waits for them).
    for srv in (a, b):
        started = time.monotonic()
        while srv.app.gateway.breakers._sub is None or srv.app.gateway.breakers.degraded:
            assert time.monotonic() - started < 10, "breakers never started"
            time.sleep(0.01)

    # Two failures through A and one through B: one window across replicas reaches 3.
    assert _chat(a) >= 500 and _chat(a) >= 500
    assert f.count("gpt-flaky") == THRESHOLD - 1
    assert _state(a) == "closed" and _state(b) == "closed"
    assert _chat(b) >= 500
    assert f.count("gpt-flaky") == THRESHOLD
    assert _state(b) == "open"  # the replica that saw the third failure opened it...
    started = time.monotonic()
    while _state(a) != "open":  # ...and the other hears it (a NOTIFY, not the 1 s refresh)
        assert time.monotonic() - started < 1.0, "replica A never saw B's opening"
        time.sleep(0.005)

    # From now on the upstream hears nothing from either replica.
    for srv in (a, b, a, b, a, b):
        assert _chat(srv) >= 500
    assert f.count("gpt-flaky") == THRESHOLD


def test_a_replica_that_shuts_down_sends_its_last_success_counts_and_warns_of_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The breakers close before the stores they share: closed after them, the board heard its
    # LISTEN session end ("breaker postgres unavailable" on every clean shutdown), and the
    # success counts still pending found the pool closed and were lost.
    import psycopg

    pg_url = require_pg()
    schema = f"gw_breaker_close_{os.getpid()}_{time.time_ns()}"
    cfg: dict[str, Any] = {
        "models": {"echo": [{"model": "fake/echo", "id": "echo"}]},
        "server": {"master_key": MASTER},
        # (the board flushes success counts every second: the last ones are still pending
        # when the server closes right after its answers)
        "router": {"breaker": {"store": "postgres"}},
        "storage": {"state_dir": str(tmp_path), "database": "postgres",
                    "postgres_url": pg_url, "postgres_schema": schema},
    }
    try:
        caplog.set_level("WARNING", logger="gatewise")
        with GatewayServer(cfg) as srv:
            assert isinstance(srv.app.gateway.breakers, PostgresBreakers)
            for _ in range(5):
                assert httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                                  headers={"authorization": f"Bearer {MASTER}"},
                                  json={"model": "echo", "messages": [
                                      {"role": "user", "content": "hi"}]}).status_code == 200
        assert not [r for r in caplog.records if "breaker" in r.name]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute(f'SELECT COALESCE(SUM(c), 0) FROM "{schema}".breaker_window '
                               "WHERE dep = 'echo'").fetchone()
        assert row is not None and row[0] == 5
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
