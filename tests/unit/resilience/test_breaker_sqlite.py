"""Breakers shared by the workers of one host through one SQLite file (`SQLiteBreakers`).

Two `SQLiteBreakers` on the same file stand for two workers: each has its own connection, its
own view and its own local fallback, exactly as two processes would (SQLite serialises their
transactions through the file's lock, not through anything in this process). They share a
fake clock, as workers on one host share the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gatewise.config.schema import BreakerConfig
from gatewise.resilience import breaker_store, build_breakers
from gatewise.resilience.breaker import OPEN, MemoryBreakers
from gatewise.resilience.breaker_sqlite import SQLiteBreakers
from tests.unit.resilience.shared_board_contract import CFG, DEP, SharedBoardContract, open_breaker
from tests.unit.resilience.support import FakeClock, FixedRandom

Make = Callable[..., SQLiteBreakers]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Make]:
    """Workers on `tmp_path/breakers.db` (or `path`), all on one fake clock."""
    made: list[SQLiteBreakers] = []

    def build(path: Path | None = None, **kw: float) -> SQLiteBreakers:
        b = SQLiteBreakers(CFG, path or tmp_path / "breakers.db", clock=clock,
                           rng=FixedRandom(0.0), **kw)
        made.append(b)
        return b

    yield build
    for b in made:
        await b.aclose()



async def test_a_breaker_opened_by_one_worker_is_seen_by_the_other(make: Make) -> None:
    a, b = make(), make()
    await b.watch()
    assert b.available(DEP)
    await open_breaker(a)
    assert a.state(DEP) == OPEN and not a.available(DEP)
    assert b.available(DEP)  # nothing read yet: the view changes only through the feed
    await b.watch()
    assert b.state(DEP) == OPEN and not b.available(DEP) and not b.is_closed(DEP)
    assert b.retry_in(DEP) == pytest.approx(CFG.min_open_s)


async def test_the_background_feed_shows_an_opening_within_the_refresh_interval(
        make: Make) -> None:
    a, b = make(), make(watch_s=0.05, refresh_s=1.0)
    await asyncio.wait_for(b.wait_ready(), 5)
    await open_breaker(a)
    started = time.perf_counter()
    while b.available(DEP):
        assert time.perf_counter() - started < b.refresh_s, "not seen within refresh_s"
        await asyncio.sleep(0.005)
    assert b.state(DEP) == OPEN


async def test_an_unwritable_file_fails_open_to_local_breakers_and_comes_back(
        make: Make, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir should be")
    a = make(blocker / "breakers.db")
    assert a.available(DEP) and await a.admit(DEP, 10.0) is None
    for _ in range(CFG.failure_threshold - 1):
        assert await a.record_failure(DEP, "ProviderServerError") is None
    t = await a.record_failure(DEP, "ProviderServerError")
    assert t is not None and t.new == OPEN  # this process's own breaker protects it
    assert a.degraded and not a.available(DEP)
    assert "breaker state file unavailable" in caplog.text
    clock.advance(CFG.min_open_s)
    token = await a.admit(DEP, 10.0)
    assert token is not None and token.startswith("p")  # the local probe
    assert await a.record_probe_success(DEP, token) is not None
    blocker.unlink()  # the directory can be made now
    await a.record_failure(DEP, "ProviderServerError")  # the shared window again
    assert not a.degraded and (blocker / "breakers.db").exists()


def test_auto_shares_breakers_through_redis_else_between_workers_on_sqlite(
        tmp_path: Path) -> None:
    auto = BreakerConfig()
    assert auto.store == "auto"
    assert breaker_store(auto, workers=1) == "memory"  # one process: nothing to share
    assert breaker_store(auto, workers=4) == "sqlite"
    assert breaker_store(auto, workers=4, database="postgres") == "postgres"  # its own store
    assert breaker_store(BreakerConfig(store="memory"), workers=4) == "memory"
    # The router's Redis shares them with every replica, not only this host's workers.
    assert breaker_store(auto, workers=4, redis=True) == "redis"
    assert breaker_store(auto, redis=True, database="postgres") == "redis"
    assert isinstance(build_breakers(auto, state_dir=str(tmp_path)), MemoryBreakers)
    shared = build_breakers(auto, state_dir=str(tmp_path), workers=2)
    assert isinstance(shared, SQLiteBreakers)
    with pytest.raises(Exception, match="state_dir"):
        build_breakers(BreakerConfig(store="sqlite"))


@pytest.mark.parametrize(("breaker", "per_worker"), [({}, False), ({"store": "sqlite"}, False),
                                                      ({"store": "memory"}, True)])
def test_serve_says_breakers_are_per_worker_only_when_they_are(
        tmp_path: Path, breaker: dict[str, str], per_worker: bool) -> None:
    from gatewise.config.loader import load_config
    from gatewise.server.workers import check_shared_state

    path = tmp_path / "gatewise.yaml"
    path.write_text(json.dumps({
        "models": {"chat": [{"model": "openai/gpt-4o-mini", "api_key": "sk-x"}]},
        "storage": {"state_dir": str(tmp_path / "state")}, "router": {"breaker": breaker}}))
    notes = check_shared_state(load_config(str(path)), 2)
    assert any("circuit breakers are per worker" in n for n in notes) is per_worker


class TestSQLiteBoard(SharedBoardContract):
    """The contract every shared board keeps (`shared_board_contract.py`), workers on one file."""


def test_a_shared_store_gets_the_configured_time_per_operation() -> None:
    """`store_timeout_s` bounds each breaker operation on a shared store (past it, the replica
    runs on its own breakers): the PostgreSQL store gets it as it is built, nothing connects."""
    from gatewise.resilience.breaker_postgres import PostgresBreakers

    built = build_breakers(BreakerConfig(store="postgres", store_timeout_s=2.5),
                           database="postgres", postgres="postgresql://127.0.0.1:1/none")
    assert isinstance(built, PostgresBreakers)
    assert built._store._op_timeout_s == 2.5
    assert BreakerConfig().store_timeout_s == 0.5
