"""AccountingMiddleware: every outcome writes exactly one usage record, with its cost."""

from __future__ import annotations

import asyncio

import pytest

from gatewise.accounting.ledger import UsageLedger
from gatewise.accounting.middleware import AccountingMiddleware
from gatewise.errors import BudgetExceededError, ProviderServerError
from gatewise.observability.metrics import Counter
from gatewise.pipeline.core import Identity, build_chain
from gatewise.pipeline.stream import ChunkStream
from gatewise.storage.base import UsageRecord
from gatewise.storage.memory import MemoryLedger

from .support import Price, Terminal, WordPrices, WordTokenizers, chat_call, deployment, drain

DEP = deployment("chat:fake/echo")
PRICES = WordPrices({DEP.id: Price(input=0.001, output=0.002)})
WHO = Identity(tenant="acme", user="u1", key_id="key_1", team="team_a")


async def records(ledger: UsageLedger) -> list[UsageRecord]:
    await ledger.flush()
    assert isinstance(ledger.store, MemoryLedger)
    return await ledger.store.query()


def setup(terminal: Terminal, metrics: Counter | None = None) -> tuple[UsageLedger, object]:
    ledger = UsageLedger(MemoryLedger(), None)
    mw = AccountingMiddleware(ledger, PRICES, WordTokenizers(), metrics=metrics)
    return ledger, build_chain([mw], terminal)


async def test_success_records_identity_tokens_cost_and_sets_the_cost_header() -> None:
    spend = Counter("gatewise_spend_usd_total", "USD", ("model", "deployment"))
    ledger, chain = setup(Terminal(DEP, prompt=10, completion_tokens=20), spend)
    call = chat_call(identity=WHO)
    await chain(call)  # type: ignore[operator]
    (r,) = await records(ledger)
    assert (r.outcome, r.tenant, r.key_id, r.team, r.user) == ("success", "acme", "key_1",
                                                                "team_a", "u1")
    assert (r.alias, r.deployment, r.prompt_tokens, r.completion_tokens) == ("chat", DEP.id, 10, 20)
    assert r.cost_usd == pytest.approx(0.05) and call.cost_usd == pytest.approx(0.05)
    assert call.response_headers["x-gatewise-cost-usd"] == "0.05000000"
    assert r.request_id == call.request_id and r.latency_ms > 0 and r.extra == {}
    assert spend.get(("chat", DEP.id)) == pytest.approx(0.05)


@pytest.mark.parametrize(("error", "outcome"), [
    (ProviderServerError("boom"), "error"),
    (BudgetExceededError("over"), "blocked"),
    (asyncio.CancelledError(), "cancelled"),
])
async def test_a_failure_writes_one_record_with_its_outcome(error: BaseException,
                                                            outcome: str) -> None:
    ledger, chain = setup(Terminal(DEP, error=error))
    with pytest.raises(type(error)):
        await chain(chat_call())  # type: ignore[operator]
    (r,) = await records(ledger)
    assert r.outcome == outcome and r.cost_usd == 0.0


async def test_a_cache_hit_is_recorded_as_cached_and_costs_nothing() -> None:
    async def from_cache(call: object) -> object:
        result = await Terminal(DEP)(call)  # type: ignore[arg-type]
        call.event("cache_hit")  # type: ignore[attr-defined]
        return result

    ledger = UsageLedger(MemoryLedger(), None)
    chain = build_chain([AccountingMiddleware(ledger, PRICES, WordTokenizers())], from_cache)
    call = chat_call()
    await chain(call)
    (r,) = await records(ledger)
    assert r.outcome == "cached" and r.cost_usd == 0.0 and r.prompt_tokens == 2
    assert call.response_headers["x-gatewise-cost-usd"] == "0.00000000"


async def test_stream_cost_goes_into_the_usage_chunk_and_one_record_at_the_end() -> None:
    ledger, chain = setup(Terminal(DEP, prompt=4, completion_tokens=3))
    call = chat_call(stream=True, include_usage=True)
    stream = await chain(call)  # type: ignore[operator]
    assert isinstance(stream, ChunkStream)
    assert await records(ledger) == []  # nothing until the stream ends
    chunks = await drain(stream)
    usage = chunks[-1].usage
    assert usage is not None and usage.cost_usd == pytest.approx(0.004 + 0.006)
    (r,) = await records(ledger)
    assert r.outcome == "success" and r.cost_usd == pytest.approx(0.010)
    assert r.completion_tokens == 3 and r.extra == {} and r.ttft_ms is not None


async def test_stream_without_usage_is_counted_and_marked() -> None:
    ledger, chain = setup(Terminal(DEP, stream_words=["a b ", "c"], stream_usage=False))
    stream = await chain(chat_call(stream=True, text="one two three"))  # type: ignore[operator]
    await drain(stream)
    (r,) = await records(ledger)
    assert (r.prompt_tokens, r.completion_tokens) == (3, 3)
    assert r.extra == {"usage": "counted"}
    assert r.cost_usd == pytest.approx(3 * 0.001 + 3 * 0.002)


async def test_an_abandoned_stream_is_cancelled_and_counts_what_was_generated() -> None:
    ledger, chain = setup(Terminal(DEP, stream_words=["a ", "b ", "c ", "d "]))
    stream = await chain(chat_call(stream=True))  # type: ignore[operator]
    await stream.__anext__()
    await stream.aclose()
    (r,) = await records(ledger)
    assert r.outcome == "cancelled" and r.completion_tokens == 1
    assert r.extra == {"usage": "counted"}


async def test_a_stream_failing_midway_is_one_error_record() -> None:
    ledger, chain = setup(Terminal(DEP, stream_error_at=2))
    stream = await chain(chat_call(stream=True))  # type: ignore[operator]
    with pytest.raises(RuntimeError):
        await drain(stream)
    (r,) = await records(ledger)
    assert r.outcome == "error" and r.completion_tokens == 2


async def test_unknown_price_records_zero_cost_and_sends_no_header() -> None:
    ledger, chain = setup(Terminal(deployment("other:fake/x")))
    call = chat_call()
    await chain(call)  # type: ignore[operator]
    (r,) = await records(ledger)
    assert r.cost_usd == 0.0 and "x-gatewise-cost-usd" not in call.response_headers
