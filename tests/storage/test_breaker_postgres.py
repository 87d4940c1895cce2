"""Breakers shared by replicas through PostgreSQL without Redis (`PostgresBreakers`).

Two `PostgresBreakers` on one schema stand for two replicas: each has its own pool, its own
LISTEN session, its own view and its own local fallback, exactly as two processes would
(PostgreSQL serialises their transactions on the deployment's row, not anything in this
process). They share a fake clock, as replicas share well-synchronised wall clocks. A real
PostgreSQL on 127.0.0.1:5432 (`tests/storage/conftest.py`: a schema per test): skips without
it, fails in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

from gatewise.config.schema import BreakerConfig
from gatewise.resilience import breaker_store
from gatewise.resilience.breaker import OPEN
from gatewise.resilience.breaker_postgres import PostgresBreakers
from tests.fakes.ports import free_port
from tests.unit.resilience.shared_board_contract import CFG, DEP, SharedBoardContract, open_breaker
from tests.unit.resilience.support import FakeClock, FixedRandom

Make = Callable[..., PostgresBreakers]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000.0)


@pytest.fixture
async def make(pg_url: str, pg_schema: str, clock: FakeClock) -> AsyncIterator[Make]:
    """Replicas on the test's schema (each with a pool of its own), all on one fake clock."""
    made: list[PostgresBreakers] = []

    def build(url: str | None = None, **kw: float) -> PostgresBreakers:
        b = PostgresBreakers(CFG, url or pg_url, schema=pg_schema, clock=clock,
                             rng=FixedRandom(0.0), **kw)
        made.append(b)
        return b

    yield build
    for b in made:
        await b.aclose()



async def test_an_opening_is_seen_by_the_other_replica_within_a_notification(
        make: Make) -> None:
    # A refresh of a minute: only the notification can explain b letting go in time.
    a, b = make(refresh_s=60.0), make(refresh_s=60.0)
    await asyncio.wait_for(asyncio.gather(a.wait_ready(), b.wait_ready()), 10)
    assert b.available(DEP)
    await open_breaker(a)
    assert a.state(DEP) == OPEN and not a.available(DEP)
    started = time.perf_counter()
    while b.available(DEP):
        assert time.perf_counter() - started < 1.0, "the NOTIFY did not reach the other"
        await asyncio.sleep(0.002)
    assert b.state(DEP) == OPEN and not b.is_closed(DEP)
    assert b.retry_in(DEP) == pytest.approx(CFG.min_open_s)


async def test_the_refresh_catches_an_opening_whose_notification_was_missed(
        make: Make) -> None:
    a, b = make(), make()  # b never listens: nothing but the refresh tells it
    await open_breaker(a)
    assert b.available(DEP)
    await b.sync()
    assert b.state(DEP) == OPEN and not b.available(DEP)


async def test_concurrent_first_failures_are_all_counted(make: Make) -> None:
    replicas = [make() for _ in range(3)]
    # Three replicas fail at once on a deployment without a row yet: one window, one opening.
    results = await asyncio.gather(*(r.record_failure(DEP, "ProviderServerError")
                                     for r in replicas))
    opened = [t for t in results if t is not None]
    assert len(opened) == 1 and opened[0].failures == 3


async def test_an_unreachable_server_fails_open_to_local_breakers(
        make: Make, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: every connection is refused.
    a = make("postgresql://127.0.0.1:1/test?connect_timeout=1", op_timeout_s=0.3, retry_s=60.0)
    started = time.perf_counter()
    assert a.available(DEP) and await a.admit(DEP, 10.0) is None
    for _ in range(CFG.failure_threshold - 1):
        assert await a.record_failure(DEP, "ProviderServerError") is None
    t = await a.record_failure(DEP, "ProviderServerError")
    assert t is not None and t.new == OPEN  # this process's own breaker protects it
    assert a.degraded and not a.available(DEP)
    assert "breaker postgres unavailable" in caplog.text
    # One wait of op_timeout_s at most, not one per call: the rest skip the dead server.
    assert time.perf_counter() - started < 2 * 0.3 + 0.2
    clock.advance(CFG.min_open_s)
    token = await a.admit(DEP, 10.0)
    assert token is not None and token.startswith("p")  # the local probe
    assert await a.record_probe_success(DEP, token) is not None


class Cable:
    """A TCP relay to the real PostgreSQL that the test can unplug (every connection cut,
    new ones refused) and plug back on the same port: an outage without touching the server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def plug(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def unplug(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _relay(self, r1: asyncio.StreamReader, w1: asyncio.StreamWriter) -> None:
        r2, w2 = await asyncio.open_connection(*self.target)
        self._writers |= {w1, w2}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        await asyncio.gather(pipe(r1, w2), pipe(r2, w1))


async def test_an_outage_falls_back_to_local_breakers_and_the_shared_state_returns(
        make: Make, pg_url: str) -> None:
    url = urlsplit(pg_url)
    cable = Cable(url.hostname or "127.0.0.1", url.port or 5432)
    await cable.plug()
    via = url._replace(netloc=f"{url.username + '@' if url.username else ''}127.0.0.1:"
                              f"{cable.port}").geturl()
    a, b = make(via, op_timeout_s=0.5, retry_s=0.2), make()
    await a.record_failure("other", "ProviderServerError")  # shared: a's pool is up
    assert not a.degraded
    await cable.unplug()
    await open_breaker(a)  # judged by a's own breakers
    assert a.degraded and not a.available(DEP) and b.available(DEP)
    await cable.plug()
    started = time.perf_counter()
    while a.degraded:  # a write after retry_s reaches the server again
        assert time.perf_counter() - started < 5.0, "never went back to the shared state"
        await asyncio.sleep(0.2)
        await a.record_failure("other", "ProviderServerError")
    # Back in the shared window: b's failures add to a's, and b opens it for both.
    while (t := await b.record_failure("other", "ProviderServerError")) is None:
        pass
    assert t.new == OPEN
    await a.sync()
    assert not a.available("other")
    await cable.unplug()


def test_auto_shares_breakers_through_postgres_without_redis() -> None:
    auto = BreakerConfig()
    assert breaker_store(auto, database="postgres") == "postgres"
    assert breaker_store(auto, workers=4, database="postgres") == "postgres"
    assert breaker_store(auto, database="postgres", redis=True) == "redis"  # Redis first
    assert breaker_store(BreakerConfig(enabled=False), database="postgres") == "memory"
    assert breaker_store(BreakerConfig(store="memory"), database="postgres") == "memory"


class TestPostgresBoard(SharedBoardContract):
    """The contract every shared board keeps (`shared_board_contract.py`), replicas on one schema."""
