"""Budgets: reserve the worst case, settle to the real cost; no overspend under concurrency,
no refusal while the budget still covers a request, alerts once per threshold."""

from __future__ import annotations

import asyncio
import calendar
from pathlib import Path
from typing import Any

import pytest

from gatewise.accounting.alerts import SpendAlert, SpendAlerts
from gatewise.accounting.budgets import (
    BudgetMiddleware,
    BudgetSource,
    BudgetStoreUnavailable,
    budget_key,
    period_bounds,
)
from gatewise.accounting.ledger import UsageLedger
from gatewise.accounting.middleware import AccountingMiddleware
from gatewise.config.schema import BudgetConfig
from gatewise.errors import BudgetExceededError, ProviderServerError
from gatewise.pipeline.core import Identity, build_chain
from gatewise.storage.base import BudgetRecord, CounterStore, Reservation
from gatewise.storage.memory import MemoryCounters, MemoryLedger
from gatewise.storage.sqlite import SQLiteCounters
from gatewise.transport.base import HttpRequest, HttpResponse

from .support import Price, Terminal, WordPrices, WordTokenizers, chat_call, deployment, drain

DEP = deployment("chat:fake/echo")
PRICES = WordPrices({DEP.id: Price(input=0.001, output=0.002)})
WHO = Identity(tenant="acme", key_id="key_1", team="team_a", user="u1")
NOW = float(calendar.timegm((2025, 3, 14, 12, 0, 0)))
MONTH_START = float(calendar.timegm((2025, 3, 1, 0, 0, 0)))
# "hello world" = 2 prompt tokens, max_tokens 10: worst case 2*0.001 + 10*0.002 = 0.022;
# the terminal answers 2 + 5 tokens: actual 0.012.
WORST, ACTUAL = 0.022, 0.012


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[SpendAlert] = []

    def crossed(self, alert: SpendAlert) -> None:
        self.alerts.append(alert)


def middleware(counters: CounterStore, budgets: list[BudgetConfig], *,
               alerts: Any = None, fail_closed: bool = True,
               loader: Any = None) -> BudgetMiddleware:
    return BudgetMiddleware(counters, BudgetSource(budgets, loader), PRICES, WordTokenizers(),
                            {"chat": [DEP]}, default_max_tokens=100, fail_closed=fail_closed,
                            alerts=alerts, clock=lambda: NOW)


def usd_key(subject: str = "key_1", scope: str = "key") -> str:
    return budget_key(scope, subject, "month", MONTH_START, "usd")


@pytest.fixture(params=["memory", "sqlite"])
async def counters(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    store: Any = MemoryCounters() if request.param == "memory" else SQLiteCounters(tmp_path / "c.db")
    yield store
    await store.aclose()


async def test_64_concurrent_calls_never_overspend_and_are_refused_only_when_not_covered(
        counters: CounterStore) -> None:
    cap = 0.3
    mw = middleware(counters, [BudgetConfig(scope="key", limit_usd=cap)])
    chain = build_chain([mw], Terminal(DEP, delay=0.01))

    async def one() -> bool:
        try:
            await chain(chat_call(identity=WHO, max_tokens=10))
        except BudgetExceededError:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(64)))
    served = sum(results)
    # All 64 overlap: exactly the worst cases that fit were admitted, none beyond.
    assert served == int(cap / WORST)
    await mw.drain()
    spent = await counters.value(usd_key())
    assert spent == pytest.approx(served * ACTUAL)
    # One at a time now: served until the next worst case no longer fits, never before.
    while True:
        before = await counters.value(usd_key())
        if not await one():
            assert before + WORST > cap
            break
        await mw.drain()
        served += 1
    spent = await counters.value(usd_key())
    assert spent <= cap and spent == pytest.approx(served * ACTUAL)


async def test_no_refusal_while_the_cap_covers_every_worst_case(counters: CounterStore) -> None:
    mw = middleware(counters, [BudgetConfig(scope="team", limit_usd=64 * WORST + 1e-9)])
    chain = build_chain([mw], Terminal(DEP, delay=0.005))
    await asyncio.gather(*(chain(chat_call(identity=WHO, max_tokens=10)) for _ in range(64)))
    await mw.drain()
    assert await counters.value(usd_key("team_a", "team")) == pytest.approx(64 * ACTUAL)


async def test_refusal_is_402_naming_scope_period_and_limit() -> None:
    mw = middleware(MemoryCounters(), [BudgetConfig(scope="key", limit_usd=0.01)])
    with pytest.raises(BudgetExceededError) as info:
        await build_chain([mw], Terminal(DEP))(chat_call(identity=WHO, max_tokens=10))
    err = info.value
    assert err.status == 402 and "key" in err.message and "month" in err.message
    assert "$0.01" in err.message


async def test_a_refusal_releases_the_budgets_already_reserved() -> None:
    counters = MemoryCounters()
    mw = middleware(counters, [BudgetConfig(scope="team", limit_usd=10.0),
                               BudgetConfig(scope="key", limit_tokens=5)])
    with pytest.raises(BudgetExceededError):
        await build_chain([mw], Terminal(DEP))(chat_call(identity=WHO, max_tokens=10))
    assert await counters.value(usd_key("team_a", "team")) == 0.0


async def test_a_failed_call_releases_its_reservation(counters: CounterStore) -> None:
    mw = middleware(counters, [BudgetConfig(scope="key", limit_usd=1.0, limit_tokens=1000)])
    with pytest.raises(ProviderServerError):
        await build_chain([mw], Terminal(DEP, error=ProviderServerError("x")))(
            chat_call(identity=WHO, max_tokens=10))
    assert await counters.value(usd_key()) == 0.0
    assert await counters.value(budget_key("key", "key_1", "month", MONTH_START, "tokens")) == 0.0


async def test_token_budgets_settle_to_real_tokens() -> None:
    counters = MemoryCounters()
    mw = middleware(counters, [BudgetConfig(scope="user", period="day", limit_tokens=1000)])
    await build_chain([mw], Terminal(DEP, prompt=2, completion_tokens=5))(
        chat_call(identity=WHO, max_tokens=10))
    await mw.drain()
    day_start, _ = period_bounds("day", NOW)
    assert await counters.value(budget_key("user", "u1", "day", day_start, "tokens")) == 7


async def test_a_new_day_starts_a_new_budget_period_for_the_same_middleware() -> None:
    """Period bounds are worked out once per period, not per request: the first request after
    midnight still lands in the new day's counter, and the old day keeps what it spent."""
    now = [float(calendar.timegm((2025, 3, 14, 23, 59, 59)))]
    counters = MemoryCounters()
    mw = BudgetMiddleware(counters, BudgetSource([BudgetConfig(scope="user", period="day",
                                                               limit_tokens=1000)]),
                          PRICES, WordTokenizers(), {"chat": [DEP]}, clock=lambda: now[0])
    chain = build_chain([mw], Terminal(DEP, prompt=2, completion_tokens=5))
    await chain(chat_call(identity=WHO, max_tokens=10))
    now[0] += 2.0  # 00:00:01 on the 15th
    await chain(chat_call(identity=WHO, max_tokens=10))
    await chain(chat_call(identity=WHO, max_tokens=10))
    await mw.drain()
    day14 = float(calendar.timegm((2025, 3, 14, 0, 0, 0)))
    assert await counters.value(budget_key("user", "u1", "day", day14, "tokens")) == 7
    assert await counters.value(budget_key("user", "u1", "day", day14 + 86400, "tokens")) == 14


async def test_a_stream_settles_when_it_finishes() -> None:
    counters = MemoryCounters()
    mw = middleware(counters, [BudgetConfig(scope="key", limit_usd=1.0)])
    stream = await build_chain([mw], Terminal(DEP, prompt=2, completion_tokens=5))(
        chat_call(identity=WHO, stream=True, max_tokens=10))
    assert await counters.value(usd_key()) == pytest.approx(WORST)  # held while streaming
    await drain(stream)
    await mw.drain()
    assert await counters.value(usd_key()) == pytest.approx(ACTUAL)


async def test_an_abandoned_stream_settles_to_what_was_generated() -> None:
    counters = MemoryCounters()
    mw = middleware(counters, [BudgetConfig(scope="key", limit_usd=1.0)])
    ledger = UsageLedger(MemoryLedger(), None)
    chain = build_chain([AccountingMiddleware(ledger, PRICES, WordTokenizers()), mw],
                        Terminal(DEP, stream_words=["a ", "b ", "c "]))
    stream = await chain(chat_call(identity=WHO, stream=True, max_tokens=10))
    await stream.__anext__()
    await stream.aclose()
    await mw.drain()
    # 2 prompt words + 1 generated word, counted: 0.002 + 0.002
    assert await counters.value(usd_key()) == pytest.approx(0.004)
    await ledger.flush()
    (r,) = await ledger.store.query()  # type: ignore[attr-defined]
    assert r.cost_usd == pytest.approx(0.004)


async def test_a_stream_failing_before_its_first_chunk_releases() -> None:
    counters = MemoryCounters()
    mw = middleware(counters, [BudgetConfig(scope="key", limit_usd=1.0)])
    with pytest.raises(RuntimeError):
        await build_chain([mw], Terminal(DEP, stream_error_at=0))(
            chat_call(identity=WHO, stream=True, max_tokens=10))
    assert await counters.value(usd_key()) == 0.0


async def test_soft_budgets_never_refuse_but_alert() -> None:
    counters, rec = MemoryCounters(), Recorder()
    mw = middleware(counters, [BudgetConfig(scope="key", limit_usd=0.01, hard=False)], alerts=rec)
    chain = build_chain([mw], Terminal(DEP))
    for _ in range(3):
        await chain(chat_call(identity=WHO, max_tokens=10))
        await mw.drain()
    assert await counters.value(usd_key()) == pytest.approx(3 * ACTUAL)
    assert [a.threshold for a in rec.alerts] == [0.5, 0.8, 1.0]
    assert all(not a.hard and a.subject == "key_1" for a in rec.alerts)


async def test_alerts_fire_once_per_threshold_across_replicas() -> None:
    counters, rec = MemoryCounters(), Recorder()
    budgets = [BudgetConfig(scope="key", limit_usd=0.1)]
    mws = [middleware(counters, budgets, alerts=rec) for _ in range(2)]
    replicas = [build_chain([mw], Terminal(DEP)) for mw in mws]
    for i in range(8):  # 8 * 0.012 = 0.096: crosses 50 % and 80 %
        await replicas[i % 2](chat_call(identity=WHO, max_tokens=1))
        await mws[i % 2].drain()
    assert [a.threshold for a in rec.alerts] == [0.5, 0.8]
    assert rec.alerts[0].spent == pytest.approx(5 * ACTUAL)


class DownCounters(MemoryCounters):
    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        raise ConnectionError("redis down")


async def test_an_unreachable_store_fails_closed_with_503() -> None:
    mw = middleware(DownCounters(), [BudgetConfig(scope="key", limit_usd=1.0)])
    terminal = Terminal(DEP)
    with pytest.raises(BudgetStoreUnavailable) as info:
        await build_chain([mw], terminal)(chat_call(identity=WHO))
    assert info.value.status == 503 and info.value.code == "budget_store_unavailable"
    assert terminal.calls == 0


async def test_an_unreachable_store_serves_unmetered_when_failing_open() -> None:
    mw = middleware(DownCounters(), [BudgetConfig(scope="key", limit_usd=1.0)], fail_closed=False)
    terminal = Terminal(DEP)
    await build_chain([mw], terminal)(chat_call(identity=WHO))
    assert terminal.calls == 1


async def test_budget_source_applies_star_per_subject_and_store_records_by_subject() -> None:
    loads = 0

    async def loader() -> list[BudgetRecord]:
        nonlocal loads
        loads += 1
        return [BudgetRecord("b1", "team", "team_a", "day", limit_usd=5.0),
                BudgetRecord("b2", "team", "team_b", "day", limit_usd=7.0)]

    now = [0.0]
    src = BudgetSource([BudgetConfig(scope="key", limit_usd=1.0),
                        BudgetConfig(scope="user", subject="someone_else", limit_usd=2.0)],
                       loader, ttl_s=5.0, clock=lambda: now[0])
    got = await src.for_identity(WHO)
    assert [(b.scope, b.subject, b.limit_usd) for b in got] == [("key", "key_1", 1.0),
                                                               ("team", "team_a", 5.0)]
    await src.for_identity(WHO)
    assert loads == 1
    now[0] = 6.0
    await src.for_identity(WHO)
    assert loads == 2
    assert await src.for_identity(Identity()) == []


async def test_budget_source_keeps_stale_records_when_the_store_fails() -> None:
    fail = False

    async def loader() -> list[BudgetRecord]:
        if fail:
            raise ConnectionError("db down")
        return [BudgetRecord("b1", "key", "key_1", "total", limit_tokens=10)]

    now = [0.0]
    src = BudgetSource([], loader, ttl_s=1.0, clock=lambda: now[0])
    assert len(await src.for_identity(WHO)) == 1
    fail, now[0] = True, 10.0
    assert len(await src.for_identity(WHO)) == 1


def test_periods_are_utc_day_month_and_total() -> None:
    assert period_bounds("day", NOW) == (float(calendar.timegm((2025, 3, 14, 0, 0, 0))),
                                         float(calendar.timegm((2025, 3, 15, 0, 0, 0))))
    dec = float(calendar.timegm((2025, 12, 31, 23, 0, 0)))
    assert period_bounds("month", dec) == (float(calendar.timegm((2025, 12, 1, 0, 0, 0))),
                                           float(calendar.timegm((2026, 1, 1, 0, 0, 0))))
    assert period_bounds("total", NOW) == (0.0, None)


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        return HttpResponse(200, {}, b"")

    async def open_stream(self, request: HttpRequest) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def test_spend_alerts_post_json_to_the_webhook_off_the_request_path() -> None:
    transport = RecordingTransport()
    alerts = SpendAlerts("https://hooks.example/abc", transport)
    alerts.crossed(SpendAlert("b1", "team", "team_a", "month", MONTH_START, "usd", 0.8, 8.0,
                              10.0, True))
    assert transport.sent == []  # not awaited inline
    await alerts.aclose()
    (req,) = transport.sent
    assert req.method == "POST" and req.url == "https://hooks.example/abc"
    assert b'"threshold":0.8' in (req.body or b"") and b'"subject":"team_a"' in (req.body or b"")



async def test_a_remote_store_is_settled_after_the_answer_not_before() -> None:
    counters = MemoryCounters()
    mw = BudgetMiddleware(counters, BudgetSource([BudgetConfig(scope="key", limit_usd=1.0)]),
                          PRICES, WordTokenizers(), {"chat": [DEP]}, default_max_tokens=100,
                          clock=lambda: NOW, settle_in_background=True)
    await build_chain([mw], Terminal(DEP))(chat_call(identity=WHO, max_tokens=10))
    # The answer is back; the worst case still stands until the settle lands.
    assert await counters.value(usd_key()) == pytest.approx(WORST)
    await mw.drain()
    assert await counters.value(usd_key()) == pytest.approx(ACTUAL)
