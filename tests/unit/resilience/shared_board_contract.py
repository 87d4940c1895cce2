"""What every breaker board shared through a store must do, whatever the store (SQLite between
the workers of a host, PostgreSQL between replicas): several boards on one store stand for
several processes, each with its own view, and they share a fake clock as processes share
the wall clock.

A backend's test module subclasses `SharedBoardContract` as `Test...` and provides two
fixtures: `make` (a new board on the test's shared store) and `clock` (the fake clock the
boards read). `sync()` is each board's catch-up: what its background task does over a refresh
interval (flush the success counts, read what the others changed).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gatewise.config.schema import BreakerConfig
from gatewise.errors import CircuitOpenError
from gatewise.resilience.breaker import CLOSED, HALF_OPEN, OPEN
from gatewise.storage.breaker_rules import Reply
from tests.unit.resilience.support import FakeClock

DEP = "chat:fake/echo"
# (a generous time per store operation: the contract checks sharing; a fallback test passes
# its own short `op_timeout_s`)
CFG = BreakerConfig(failure_threshold=3, failure_ratio=0.5, min_calls=10, window_s=10.0,
                    min_open_s=2.0, open_s=30.0, store_timeout_s=10.0)


async def open_breaker(board: Any) -> None:
    for _ in range(CFG.failure_threshold):
        await board.record_failure(DEP, "ProviderServerError")


class SharedBoardContract:
    async def test_failures_of_every_board_fill_one_window(self, make: Any) -> None:
        a, b = make(), make()
        await a.record_failure(DEP, "ProviderServerError")
        await b.record_failure(DEP, "ProviderServerError")
        t = await a.record_failure(DEP, "ProviderServerError")  # the third: the threshold
        assert t is not None and t.new == OPEN and t.failures == 3
        assert await b.record_failure(DEP, "ProviderServerError") is None  # already open

    async def test_only_one_board_gets_the_probe(self, make: Any, clock: FakeClock) -> None:
        boards = [make() for _ in range(4)]
        await open_breaker(boards[0])
        for b in boards:
            await b.sync()
        clock.advance(CFG.min_open_s)
        assert all(b.available(DEP) for b in boards)  # the probe slot is free for everyone...
        results = await asyncio.gather(*(b.admit(DEP, 10.0) for b in boards),
                                       return_exceptions=True)
        tokens = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if isinstance(r, CircuitOpenError)]
        assert len(tokens) == 1 and len(refused) == 3, results  # ...but only one takes it
        for b in boards:
            await b.sync()
        assert not any(b.available(DEP) for b in boards)  # the probe holds its lease
        prober = boards[results.index(tokens[0])]
        t = await prober.record_probe_success(DEP, tokens[0])
        assert t is not None and t.new == CLOSED
        other = boards[(results.index(tokens[0]) + 1) % 4]
        await other.sync()
        assert other.is_closed(DEP) and other.available(DEP)

    async def test_an_expired_lease_lets_another_board_probe(self, make: Any,
                                                             clock: FakeClock) -> None:
        a, b = make(), make()
        await open_breaker(a)
        await b.sync()
        clock.advance(CFG.min_open_s)
        token_a = await a.admit(DEP, 1.0)
        assert token_a is not None
        with pytest.raises(CircuitOpenError):
            await b.admit(DEP, 1.0)
        clock.advance(1.01)  # a vanished with its probe: the lease runs out
        await b.sync()
        assert b.available(DEP) and b.state(DEP) == HALF_OPEN
        token_b = await b.admit(DEP, 1.0)
        assert token_b is not None and token_b != token_a
        # a's late verdict no longer decides anything: b's probe does.
        assert await a.record_probe_success(DEP, token_a) is None
        assert await a.record_failure(DEP, "ProviderServerError", token_a) is None
        t = await b.record_failure(DEP, "ProviderServerError", token_b)
        assert t is not None and t.old == HALF_OPEN and t.new == OPEN
        assert t.open_s == pytest.approx(2 * CFG.min_open_s)  # the backoff is shared too

    async def test_a_late_update_never_undoes_a_newer_state(self, make: Any,
                                                            clock: FakeClock) -> None:
        a, b = make(), make()
        await open_breaker(a)
        opened = a._view[DEP]
        await b.sync()
        clock.advance(CFG.min_open_s)
        token = await b.admit(DEP, 30.0)  # b probes: a newer version than a's opening
        assert token is not None
        await a.sync()
        probing = a._view[DEP]
        assert probing[0] > opened[0] and probing[1] == HALF_OPEN
        # The reply of a's earlier write, or its announcement, arriving now changes nothing.
        a._apply(DEP, Reply(OPEN, opened[2], opened[3], opened[0]))
        a._on_event(f'{{"d": "{DEP}", "s": "open", "o": {opened[2]}, "p": 0, "v": {opened[0]}}}')
        assert a._view[DEP] == probing and not a.available(DEP)

    async def test_successes_counted_by_one_board_keep_a_busy_deployment_closed(
            self, make: Any) -> None:
        a, b = make(), make()
        for _ in range(20):
            a.note_success(DEP)
        await a.sync()
        for _ in range(CFG.failure_threshold + 2):  # 5 failures among 25 calls: under 50 %
            assert await b.record_failure(DEP, "ProviderServerError") is None
        assert b.is_closed(DEP)
