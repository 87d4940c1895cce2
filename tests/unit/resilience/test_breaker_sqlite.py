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
from gatewise.errors import CircuitOpenError
from gatewise.resilience import breaker_store, build_breakers
from gatewise.resilience.breaker import CLOSED, HALF_OPEN, OPEN, MemoryBreakers
from gatewise.resilience.breaker_sqlite import SQLiteBreakers
from gatewise.storage.sqlite_breaker import Reply
from tests.unit.resilience.support import FakeClock, FixedRandom

DEP = "chat:fake/echo"
CFG = BreakerConfig(failure_threshold=3, failure_ratio=0.5, min_calls=10, window_s=10.0,
                    min_open_s=2.0, open_s=30.0)

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


async def _open(b: SQLiteBreakers) -> None:
    for _ in range(CFG.failure_threshold):
        await b.record_failure(DEP, "ProviderServerError")


async def test_a_breaker_opened_by_one_worker_is_seen_by_the_other(make: Make) -> None:
    a, b = make(), make()
    await b.watch()
    assert b.available(DEP)
    await _open(a)
    assert a.state(DEP) == OPEN and not a.available(DEP)
    assert b.available(DEP)  # nothing read yet: the view changes only through the feed
    await b.watch()
    assert b.state(DEP) == OPEN and not b.available(DEP) and not b.is_closed(DEP)
    assert b.retry_in(DEP) == pytest.approx(CFG.min_open_s)


async def test_the_background_feed_shows_an_opening_within_the_refresh_interval(
        make: Make) -> None:
    a, b = make(), make(watch_s=0.05, refresh_s=1.0)
    await asyncio.wait_for(b.wait_ready(), 5)
    await _open(a)
    started = time.perf_counter()
    while b.available(DEP):
        assert time.perf_counter() - started < b.refresh_s, "not seen within refresh_s"
        await asyncio.sleep(0.005)
    assert b.state(DEP) == OPEN


async def test_failures_of_both_workers_fill_one_window(make: Make) -> None:
    a, b = make(), make()
    await a.record_failure(DEP, "ProviderServerError")
    await b.record_failure(DEP, "ProviderServerError")
    t = await a.record_failure(DEP, "ProviderServerError")  # the third: the threshold
    assert t is not None and t.new == OPEN and t.failures == 3
    assert await b.record_failure(DEP, "ProviderServerError") is None  # already open


async def test_only_one_worker_gets_the_probe(make: Make, clock: FakeClock) -> None:
    workers = [make() for _ in range(4)]
    await _open(workers[0])
    for w in workers:
        await w.watch()
    clock.advance(CFG.min_open_s)
    assert all(w.available(DEP) for w in workers)  # the probe slot is free for everyone...
    results = await asyncio.gather(*(w.admit(DEP, 10.0) for w in workers),
                                   return_exceptions=True)
    tokens = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(tokens) == 1 and len(refused) == 3, results  # ...but only one takes it
    for w in workers:
        await w.watch()
    assert not any(w.available(DEP) for w in workers)  # the probe holds its lease
    prober = workers[results.index(tokens[0])]
    t = await prober.record_probe_success(DEP, tokens[0])
    assert t is not None and t.new == CLOSED
    other = workers[(results.index(tokens[0]) + 1) % 4]
    await other.watch()
    assert other.is_closed(DEP) and other.available(DEP)


async def test_an_expired_lease_lets_another_worker_probe(make: Make, clock: FakeClock) -> None:
    a, b = make(), make()
    await _open(a)
    await b.watch()
    clock.advance(CFG.min_open_s)
    token_a = await a.admit(DEP, 1.0)
    assert token_a is not None
    with pytest.raises(CircuitOpenError):
        await b.admit(DEP, 1.0)
    clock.advance(1.01)  # worker a vanished with its probe: the lease runs out
    await b.watch()
    assert b.available(DEP) and b.state(DEP) == HALF_OPEN
    token_b = await b.admit(DEP, 1.0)
    assert token_b is not None and token_b != token_a
    # a's late verdict no longer decides anything: b's probe does.
    assert await a.record_probe_success(DEP, token_a) is None
    assert await a.record_failure(DEP, "ProviderServerError", token_a) is None
    t = await b.record_failure(DEP, "ProviderServerError", token_b)
    assert t is not None and t.old == HALF_OPEN and t.new == OPEN
    assert t.open_s == pytest.approx(2 * CFG.min_open_s)  # the backoff is shared too


async def test_a_late_update_never_undoes_a_newer_state(make: Make, clock: FakeClock) -> None:
    a, b = make(), make()
    await _open(a)
    opened = a._view[DEP]
    await b.watch()
    clock.advance(CFG.min_open_s)
    token = await b.admit(DEP, 30.0)  # b probes: a newer version than a's opening
    assert token is not None
    await a.watch()
    probing = a._view[DEP]
    assert probing[0] > opened[0] and probing[1] == HALF_OPEN
    # The reply of a's earlier write arriving now (an older version) changes nothing.
    a._apply(DEP, Reply(OPEN, opened[2], opened[3], opened[0]))
    assert a._view[DEP] == probing and not a.available(DEP)


async def test_successes_counted_by_one_worker_keep_a_busy_deployment_closed(
        make: Make) -> None:
    a, b = make(), make()
    for _ in range(20):
        a.note_success(DEP)
    await a.flush()  # what the background task does every refresh_s
    for _ in range(CFG.failure_threshold + 2):  # 5 failures among 25 calls: under 50 %
        assert await b.record_failure(DEP, "ProviderServerError") is None
    assert b.is_closed(DEP)


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
