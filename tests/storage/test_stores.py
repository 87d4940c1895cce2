"""One suite run against every backend of each storage protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise.storage.base import UsageRecord
from gatewise.storage.memory import MemoryConversations, MemoryCounters, MemoryKV, MemoryLedger
from gatewise.storage.sqlite import SQLiteConversations, SQLiteCounters, SQLiteKV, SQLiteLedger

BACKENDS = ["memory", "sqlite"]


@pytest.fixture(params=BACKENDS)
async def kv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store = MemoryKV() if request.param == "memory" else SQLiteKV(tmp_path / "kv.db")
    yield store
    await store.aclose()


@pytest.fixture(params=BACKENDS)
async def counters(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store = MemoryCounters() if request.param == "memory" else SQLiteCounters(tmp_path / "c.db")
    yield store
    await store.aclose()


@pytest.fixture(params=BACKENDS)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store = MemoryLedger() if request.param == "memory" else SQLiteLedger(tmp_path / "l.db")
    yield store
    await store.aclose()


@pytest.fixture(params=BACKENDS)
async def conversations(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store = MemoryConversations() if request.param == "memory" \
        else SQLiteConversations(tmp_path / "t.db")
    yield store
    await store.aclose()


async def test_kv_round_trip_and_delete(kv: Any) -> None:
    await kv.set("tenant:a", b"1")
    assert await kv.get("tenant:a") == b"1"
    assert await kv.delete("tenant:a") is True
    assert await kv.get("tenant:a") is None
    assert await kv.delete("tenant:a") is False


async def test_kv_entries_expire(kv: Any) -> None:
    await kv.set("k", b"v", ttl=0.05)
    assert await kv.get("k") == b"v"
    await asyncio.sleep(0.08)
    assert await kv.get("k") is None


async def test_kv_delete_by_prefix_leaves_other_tenants(kv: Any) -> None:
    for k in ("t1:cache:a", "t1:cache:b", "t1%:cache:c", "t2:cache:a"):
        await kv.set(k, b"x")
    assert await kv.delete_prefix("t1:cache:") == 2
    assert await kv.get("t2:cache:a") == b"x" and await kv.get("t1%:cache:c") == b"x"


async def test_reserve_is_all_or_nothing_at_the_limit(counters: Any) -> None:
    r1 = await counters.reserve("budget", 6, limit=10)
    assert r1 is not None
    assert await counters.reserve("budget", 5, limit=10) is None
    assert await counters.value("budget") == 6
    assert await counters.settle(r1, 2) == 2
    r2 = await counters.reserve("budget", 8, limit=10)
    assert r2 is not None and await counters.release(r2) == 2


async def test_concurrent_reservations_never_exceed_the_limit(counters: Any) -> None:
    got = await asyncio.gather(*(counters.reserve("k", 1, limit=25) for _ in range(100)))
    assert sum(r is not None for r in got) == 25
    assert await counters.value("k") == 25


def _rec(i: int, tenant: str = "t1") -> UsageRecord:
    return UsageRecord(request_id=f"req_{i}", ts=1000.0 + i, tenant=tenant, alias="a",
                       deployment="a:openai/x", outcome="success", prompt_tokens=i,
                       completion_tokens=2 * i, cost_usd=0.001 * i, extra={"n": i})


async def test_ledger_skips_duplicates_and_filters(ledger: Any) -> None:
    assert await ledger.append([_rec(1), _rec(2), _rec(3, "t2")]) == 3
    assert await ledger.append([_rec(2), _rec(4)]) == 1  # a replayed journal double-counts nothing
    rows = await ledger.query(tenant="t1")
    assert [r.request_id for r in rows] == ["req_1", "req_2", "req_4"]
    assert rows[0].extra == {"n": 1} and rows[1].completion_tokens == 4
    assert [r.request_id for r in await ledger.query(since=1002.0, until=1004.0)] == ["req_2", "req_3"]


async def test_conversations_keep_order_and_limit(conversations: Any) -> None:
    await conversations.append("t1:c1", [{"role": "user", "content": "a"},
                                         {"role": "assistant", "content": "b"}])
    await conversations.append("t1:c1", [{"role": "user", "content": "c"}])
    await conversations.append("t2:c1", [{"role": "user", "content": "other tenant"}])
    assert [m["content"] for m in await conversations.history("t1:c1")] == ["a", "b", "c"]
    assert [m["content"] for m in await conversations.history("t1:c1", limit=2)] == ["b", "c"]
    await conversations.clear("t1:c1")
    assert await conversations.history("t1:c1") == []
    assert len(await conversations.history("t2:c1")) == 1
