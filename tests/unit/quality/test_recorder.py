"""The batched quality recorder (`gatewise.quality.recorder`): rows are written in the
background, later scores find their row pending or stored, a failing store keeps the rows
(up to a bound) for the next flush, and a score merged during a write is not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gatewise.quality.recorder import QualityRecorder
from gatewise.storage.quality import QualityFilter, QualityRecord
from gatewise.storage.quality_memory import MemoryQualityStore


def _row(rid: str, **scores: float) -> QualityRecord:
    return QualityRecord(request_id=rid, ts=1.0, alias="chat", scores=dict(scores))


class Flaky(MemoryQualityStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.gate: asyncio.Event | None = None

    async def add(self, records: Sequence[QualityRecord]) -> None:
        if self.down:
            raise ConnectionError("store down")
        snapshot = [QualityRecord(**{f: getattr(r, f) for f in r.__struct_fields__})
                    for r in records]
        if self.gate is not None:
            await self.gate.wait()
        await super().add(snapshot)


async def test_scores_merge_into_a_pending_row_and_then_into_the_stored_one() -> None:
    store = MemoryQualityStore()
    rec = QualityRecorder(store, flush_s=60)
    rec.record(_row("r1", validity=1.0))
    assert await rec.add_scores("r1", {"relevance": 0.5}) is True
    assert (await rec.get("r1")).scores == {"validity": 1.0, "relevance": 0.5}  # type: ignore[union-attr]
    assert await rec.flush() == 1 and rec.pending == 0
    assert await rec.add_scores("r1", {"feedback": 1.0}) is True
    assert await rec.add_scores("nope", {"feedback": 1.0}) is False
    assert (await store.get("r1")).scores == {"validity": 1.0, "relevance": 0.5,  # type: ignore[union-attr]
                                              "feedback": 1.0}
    await rec.aclose()


async def test_a_full_batch_is_written_without_waiting_for_the_interval() -> None:
    store = MemoryQualityStore()
    rec = QualityRecorder(store, batch=5, flush_s=60)
    for i in range(5):
        rec.record(_row(f"r{i}"))
    for _ in range(20):
        await asyncio.sleep(0)
        if rec.pending == 0:
            break
    assert len(await store.query(QualityFilter())) == 5
    await rec.aclose()


async def test_a_failing_store_keeps_rows_up_to_the_bound_for_the_next_flush() -> None:
    store = Flaky()
    rec = QualityRecorder(store, flush_s=60, max_pending=3)
    for i in range(5):
        rec.record(_row(f"r{i}"))
    assert rec.pending == 3 and rec.dropped == 2  # the oldest went
    assert await rec.flush() == 0 and rec.pending == 3
    store.down = False
    assert await rec.flush() == 3
    assert [r.request_id for r in await store.query(QualityFilter())] == ["r2", "r3", "r4"]
    await rec.aclose()


async def test_a_score_merged_while_its_row_is_being_written_is_written_too() -> None:
    store = Flaky()
    store.down = False
    store.gate = asyncio.Event()
    rec = QualityRecorder(store, flush_s=60)
    rec.record(_row("r1", validity=1.0))
    flushing = asyncio.create_task(rec.flush())
    await asyncio.sleep(0)
    assert await rec.add_scores("r1", {"relevance": 0.25})  # while the write waits
    store.gate.set()
    await flushing
    assert rec.pending == 1  # the newer row stays for the next flush
    await rec.aclose()
    assert (await store.get("r1")).scores == {"validity": 1.0, "relevance": 0.25}  # type: ignore[union-attr]
