"""`QualityStore` on every backend (memory, SQLite, PostgreSQL): a row per scored response,
scores merged as they arrive (judge, feedback), the latest feedback wins, filters and order
agree, retention removes rows with their feedback, and two writers merging scores into one
row at once both land."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise.storage.quality import FeedbackRecord, QualityFilter, QualityRecord
from gatewise.storage.quality_memory import MemoryQualityStore
from gatewise.storage.quality_sqlite import SQLiteQualityStore
from tests.storage.conftest import backend_details


def _make(name: str, d: dict[str, Any]) -> Any:
    if name == "memory":
        return MemoryQualityStore()
    if name == "sqlite":
        return SQLiteQualityStore(d["path"] / "quality.db")
    from gatewise.storage.quality_postgres import PostgresQualityStore

    return PostgresQualityStore(d["url"], schema=d["schema"])


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture
async def store(backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    s = _make(*backend)
    yield s
    await s.aclose()


def _rec(rid: str, ts: float, **kw: Any) -> QualityRecord:
    return QualityRecord(request_id=rid, ts=ts, alias=kw.pop("alias", "chat"), **kw)


async def test_a_row_comes_back_with_every_field_it_was_stored_with(store: Any) -> None:
    full = QualityRecord(request_id="r1", ts=1000.5, alias="chat", deployment="chat#0",
                         model="openai/gpt-4o-mini", tenant="acme", team="t1", key_id="k1",
                         user="u1", experiment="exp", variant="b", latency_s=0.25, ttft_s=0.05,
                         cost_usd=0.0012, error_type=None,
                         scores={"validity": 1.0, "toxicity": 0.75})
    await store.add([full])
    assert await store.get("r1") == full
    assert await store.get("nope") is None


async def test_adding_a_known_request_merges_scores_and_keeps_the_first_description(
        store: Any) -> None:
    await store.add([_rec("r1", 10.0, deployment="d1", scores={"validity": 1.0})])
    await store.add([_rec("r1", 99.0, deployment="other", scores={"relevance": 0.5,
                                                                   "validity": 0.0})])
    got = await store.get("r1")
    assert got.deployment == "d1" and got.ts == 10.0
    assert got.scores == {"validity": 0.0, "relevance": 0.5}


async def test_one_batch_naming_a_request_twice_merges_both(store: Any) -> None:
    await store.add([_rec("r1", 1.0, scores={"a": 0.1}), _rec("r1", 1.0, scores={"b": 0.2}),
                     _rec("r2", 2.0)])
    assert (await store.get("r1")).scores == {"a": 0.1, "b": 0.2}
    assert (await store.get("r2")).scores == {}
    await store.add([])  # an empty batch is a no-op


async def test_add_scores_merges_into_an_existing_row_only(store: Any) -> None:
    await store.add([_rec("r1", 1.0, scores={"validity": 1.0})])
    assert await store.add_scores("r1", {"relevance": 0.8, "completeness": 0.6}) is True
    assert await store.add_scores("missing", {"relevance": 0.8}) is False
    assert (await store.get("r1")).scores == {"validity": 1.0, "relevance": 0.8,
                                              "completeness": 0.6}
    assert await store.get("missing") is None


async def test_feedback_is_kept_in_order_and_the_latest_is_the_rows_feedback_score(
        store: Any) -> None:
    await store.add([_rec("r1", 1.0, tenant="acme", scores={"validity": 1.0})])
    up = FeedbackRecord(request_id="r1", ts=2.0, score=1.0, comment="great", tenant="acme",
                        key_id="k1", user="u1")
    down = FeedbackRecord(request_id="r1", ts=3.0, score=0.0, tenant="acme", key_id="k1")
    await store.add_feedback(up)
    assert (await store.get("r1")).scores["feedback"] == 1.0
    await store.add_feedback(down)
    assert await store.feedback("r1") == [up, down]
    assert (await store.get("r1")).scores == {"validity": 1.0, "feedback": 0.0}
    assert await store.feedback("r2") == []


async def test_query_filters_on_every_field_and_returns_oldest_first(store: Any) -> None:
    await store.add([
        _rec("c", 30.0, alias="chat", deployment="d2", tenant="t1"),
        _rec("a", 10.0, alias="chat", deployment="d1", tenant="t1", experiment="e",
             variant="x"),
        _rec("b", 20.0, alias="code", deployment="d1", tenant="t2", experiment="e",
             variant="y"),
    ])

    async def ids(**kw: Any) -> list[str]:
        return [r.request_id for r in await store.query(QualityFilter(**kw))]

    assert await ids() == ["a", "b", "c"]
    assert await ids(alias="chat") == ["a", "c"]
    assert await ids(deployment="d1") == ["a", "b"]
    assert await ids(experiment="e", variant="y") == ["b"]
    assert await ids(tenant="t1") == ["a", "c"]
    assert await ids(since=20.0) == ["b", "c"]
    assert await ids(until=20.0) == ["a"]
    assert await ids(since=10.0, until=30.0, alias="chat") == ["a"]
    assert [r.request_id for r in await store.query(QualityFilter(), limit=2)] == ["a", "b"]


async def test_retention_removes_the_oldest_rows_with_their_feedback(store: Any) -> None:
    await store.add([_rec(f"r{i}", float(i)) for i in range(5)])
    for i in range(5):
        await store.add_feedback(FeedbackRecord(request_id=f"r{i}", ts=float(i), score=1.0))
    # Feedback on a request that was never scored ages out on its own timestamp.
    await store.add_feedback(FeedbackRecord(request_id="orphan-old", ts=1.0, score=1.0))
    await store.add_feedback(FeedbackRecord(request_id="orphan-new", ts=9.0, score=1.0))
    assert await store.delete_before(3.0, limit=2) == 2
    assert [r.request_id for r in await store.query(QualityFilter())] == ["r2", "r3", "r4"]
    assert await store.feedback("r0") == [] and await store.feedback("r1") == []
    assert len(await store.feedback("r2")) == 1
    assert await store.delete_before(3.0, limit=100) == 1
    assert await store.delete_before(3.0, limit=100) == 0
    assert await store.feedback("r2") == [] and len(await store.feedback("r3")) == 1
    assert await store.feedback("orphan-old") == []
    assert len(await store.feedback("orphan-new")) == 1


async def test_concurrent_score_merges_into_one_row_all_land(store: Any) -> None:
    await store.add([_rec("r1", 1.0)])
    await asyncio.gather(*(store.add_scores("r1", {f"m{i}": i / 10}) for i in range(8)),
                         store.add_feedback(FeedbackRecord(request_id="r1", ts=2.0, score=0.5)))
    scores = (await store.get("r1")).scores
    assert scores == {**{f"m{i}": i / 10 for i in range(8)}, "feedback": 0.5}


async def test_records_passed_in_or_returned_are_copies(store: Any) -> None:
    rec = _rec("r1", 1.0, scores={"validity": 1.0})
    await store.add([rec])
    rec.scores["validity"] = 0.0
    got = await store.get("r1")
    got.scores["toxicity"] = 0.0
    assert (await store.get("r1")).scores == {"validity": 1.0}
