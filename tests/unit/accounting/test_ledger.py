"""UsageLedger: records reach the store in batches off the hot path; nothing is ever dropped."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from gatewise.accounting.journal import Journal
from gatewise.accounting.ledger import UsageLedger
from gatewise.storage.base import UsageRecord
from gatewise.storage.memory import MemoryLedger
from gatewise.storage.usage import encode_records


def jnl(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jnl"))


def rec(i: int) -> UsageRecord:
    return UsageRecord(request_id=f"req_secret_prompt_{i}", ts=float(i), tenant="t", alias="a",
                       deployment="d", outcome="success")


class FlakyStore(MemoryLedger):
    """Fails the first `failures` appends, then behaves; remembers batch sizes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.batches: list[int] = []
        self.encoded: list[bytes | None] = []

    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("down")
        self.batches.append(len(records))
        self.encoded.append(encoded)
        return await super().append(records)


async def test_flush_commits_in_batches_and_deletes_committed_journal_segments(
        tmp_path: Path) -> None:
    store = FlakyStore(0)
    ledger = UsageLedger(store, Journal(tmp_path), batch=4, flush_s=60)
    for i in range(10):
        ledger.record(rec(i))
    assert len(jnl(tmp_path)) == 1 and ledger.pending == 10
    assert await ledger.flush() == 10
    assert store.batches == [4, 4, 2] and ledger.pending == 0
    assert jnl(tmp_path) == []
    await ledger.aclose()


async def test_background_flusher_commits_within_flush_interval() -> None:
    store = MemoryLedger()
    ledger = UsageLedger(store, None, batch=1000, flush_s=0.02)
    ledger.start()
    ledger.record(rec(1))
    for _ in range(100):
        if await store.query():
            break
        await asyncio.sleep(0.01)
    assert len(await store.query()) == 1
    await ledger.aclose()


async def test_a_full_batch_wakes_the_flusher_before_the_interval() -> None:
    store = MemoryLedger()
    ledger = UsageLedger(store, None, batch=3, flush_s=3600)
    ledger.start()
    await asyncio.sleep(0)
    for i in range(3):
        ledger.record(rec(i))
    for _ in range(100):
        if len(await store.query()) == 3:
            break
        await asyncio.sleep(0.01)
    assert len(await store.query()) == 3
    await ledger.aclose()


async def test_store_failure_keeps_records_and_logs_no_contents(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(1)
    ledger = UsageLedger(store, Journal(tmp_path), batch=10, flush_s=60)
    ledger.record(rec(1))
    with caplog.at_level(logging.WARNING, logger="gatewise.accounting"):
        assert await ledger.flush() == 0
    assert ledger.pending == 1
    assert "req_secret_prompt" not in caplog.text and "ConnectionError" in caplog.text
    assert len(jnl(tmp_path)) == 1  # the sealed segment waits for the retry
    ledger.record(rec(2))
    assert await ledger.flush() == 2
    assert jnl(tmp_path) == []
    assert [r.request_id for r in await store.query()] == ["req_secret_prompt_1",
                                                             "req_secret_prompt_2"]
    await ledger.aclose()


async def test_a_batch_reaches_the_store_as_the_journal_lines_it_wrote_joined(
        tmp_path: Path) -> None:
    """The store is handed the batch already encoded (the journal's own bytes), so a commit
    does not encode every record again on the event loop; a failed attempt keeps each record
    with its line, so the retry's batch is the same JSON."""
    store = FlakyStore(1)
    ledger = UsageLedger(store, Journal(tmp_path), batch=2, flush_s=60)
    for i in range(3):
        ledger.record(rec(i))
    assert await ledger.flush() == 0  # the first attempt fails: everything stays pending
    assert await ledger.flush() == 3
    assert store.batches == [2, 1]
    assert [json.loads(e or b"null") for e in store.encoded] == [
        json.loads(encode_records([rec(0), rec(1)])), json.loads(encode_records([rec(2)]))]
    await ledger.aclose()


async def test_without_a_journal_line_the_store_encodes_the_batch_itself(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = FlakyStore(0)
    ledger = UsageLedger(store, Journal(blocker / "journal"), flush_s=60)
    ledger.record(rec(1))  # the journal write fails: no line for this record
    assert await ledger.flush() == 1
    assert store.encoded == [None]
    await ledger.aclose()


async def test_shutdown_with_store_down_leaves_the_journal_for_the_next_start(
        tmp_path: Path) -> None:
    ledger = UsageLedger(FlakyStore(100), Journal(tmp_path / "j"), flush_s=60)
    for i in range(3):
        ledger.record(rec(i))
    await ledger.aclose()
    assert ledger.pending == 3
    store = MemoryLedger()
    assert await Journal(tmp_path / "j").replay(store) == 3


async def test_journal_write_failure_does_not_lose_the_record(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = MemoryLedger()
    ledger = UsageLedger(store, Journal(blocker / "journal"), flush_s=60)
    ledger.record(rec(1))
    assert await ledger.flush() == 1
    await ledger.aclose()


async def test_shutdown_never_hangs_when_a_full_batch_wakes_the_flusher_at_the_same_time() -> None:
    # Regression: the flusher slept in `wait_for(event.wait())`, and on Python 3.11 a cancel
    # racing the event being set was lost, so `aclose` waited forever.
    for i in range(200):
        store = MemoryLedger()
        ledger = UsageLedger(store, None, batch=1, flush_s=10.0)
        ledger.start()
        await asyncio.sleep(0)
        for j in range(i % 3 + 1):
            ledger.record(rec(i * 10 + j))
        await asyncio.wait_for(ledger.aclose(), 2.0)
        assert len(await store.query()) == i % 3 + 1


class SlowStore(MemoryLedger):
    """An append that takes a while, as a database round trip does; says when one started."""

    def __init__(self) -> None:
        super().__init__()
        self.appending = asyncio.Event()

    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        self.appending.set()
        await asyncio.sleep(0.2)
        return await super().append(records)


async def test_a_shutdown_that_lands_mid_flush_loses_nothing(tmp_path: Path) -> None:
    # The batch being written is out of the pending list: cancelling the flusher inside the
    # store's append dropped it, and the journal, empty of pending records, was deleted.
    store = SlowStore()
    ledger = UsageLedger(store, Journal(tmp_path), batch=2, flush_s=3600)
    ledger.start()
    await asyncio.sleep(0)
    ledger.record(rec(1))
    ledger.record(rec(2))  # a full batch: the flusher starts appending
    await asyncio.wait_for(store.appending.wait(), 2)
    ledger.record(rec(3))
    await asyncio.wait_for(ledger.aclose(), 5)
    assert sorted(r.request_id for r in await store.query()) == [
        "req_secret_prompt_1", "req_secret_prompt_2", "req_secret_prompt_3"]
