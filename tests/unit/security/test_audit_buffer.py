"""Batched audit appends (`AuditLog.record_later`): a security event's audit row costs the hot
path one list append; the rows reach the store in one transaction per batch, are visible to
every reader at once, survive a failing store in order, and are written at shutdown. Nothing
is lost without a word."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from gatewise.security.audit import AuditLog
from gatewise.security.events import GatewayEventSink
from gatewise.storage.base import AuditEntry, AuditRecord
from gatewise.storage.memory_governance import MemoryGovernance
from gatewise.storage.sqlite_governance import SQLiteGovernance
from tests.unit.security.conftest import Clock


class Flaky(MemoryGovernance):
    """A real store that refuses batched appends while `down` and counts the ones it took."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.batches: list[int] = []

    async def append_audit_many(self, entries: Sequence[AuditEntry],
                                chain: object) -> list[AuditRecord]:
        if self.down:
            raise ConnectionError("store unreachable")
        self.batches.append(len(entries))
        return await super().append_audit_many(entries, chain)  # type: ignore[arg-type]


async def test_a_later_record_is_written_by_the_first_read_after_it() -> None:
    store = MemoryGovernance()
    log = AuditLog(store, clock=Clock())
    log.record_later("key_1", "security.pii", "mask", entities={"EMAIL_ADDRESS": 2})
    assert await store.audit() == []  # not yet written: nothing awaited on the hot path
    [rec] = await log.entries()
    assert (rec.seq, rec.actor, rec.action, rec.target, rec.detail) == (
        1, "key_1", "security.pii", "mask", {"entities": {"EMAIL_ADDRESS": 2}})
    assert (await log.verify()).ok


async def test_the_flusher_writes_a_burst_in_one_transaction_within_its_interval() -> None:
    store = Flaky()
    log = AuditLog(store, clock=Clock(), flush_s=0.02)
    log.start()
    try:
        for i in range(50):
            log.record_later("key_1", "security.pii", "mask", n=i)
        for _ in range(100):
            if store.batches:
                break
            await asyncio.sleep(0.01)
        assert store.batches == [50]
        assert [r.detail["n"] for r in await store.audit(limit=100)] == list(range(50))
    finally:
        await log.aclose()


async def test_a_full_batch_is_written_without_waiting_for_the_interval() -> None:
    store = Flaky()
    log = AuditLog(store, clock=Clock(), flush_s=60.0)
    log.later.batch = 8
    log.start()
    try:
        for i in range(8):
            log.record_later("system", "security.pii", "mask", n=i)
        for _ in range(100):
            if store.batches:
                break
            await asyncio.sleep(0.01)
        assert store.batches == [8]
    finally:
        await log.aclose()


async def test_shutdown_writes_what_is_pending(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    store = SQLiteGovernance(tmp_path / "gov.db")
    try:
        log = AuditLog(store, clock=Clock(), flush_s=60.0)
        log.start()
        log.record_later("key_1", "security.prompt_injection", "block", score=0.9)
        log.record_later("key_2", "security.pii", "mask")
        await log.aclose()
        assert [(r.seq, r.actor) for r in await store.audit()] == [(1, "key_1"), (2, "key_2")]
        assert log.later.pending == 0
    finally:
        await store.aclose()


async def test_a_failed_write_keeps_the_records_in_order_and_the_next_one_writes_them(
        caplog: pytest.LogCaptureFixture) -> None:
    store = Flaky()
    log = AuditLog(store, clock=Clock())
    log.record_later("a", "security.pii", "mask")
    store.down = True
    with caplog.at_level(logging.WARNING, "gatewise.security"):
        assert await log.flush() == 0
    assert "ConnectionError" in caplog.text and "1 record(s) kept for retry" in caplog.text
    assert log.later.pending == 1
    log.record_later("b", "security.pii", "mask")
    store.down = False
    assert await log.flush() == 2
    assert [(r.seq, r.actor) for r in await store.audit()] == [(1, "a"), (2, "b")]
    assert (await log.verify()).ok


async def test_the_flusher_backs_off_while_the_store_fails_and_recovers() -> None:
    store = Flaky()
    log = AuditLog(store, clock=Clock(), flush_s=0.01)
    store.down = True
    log.start()
    try:
        log.record_later("a", "security.pii", "mask")
        for _ in range(100):
            if log.later._flusher.failures:
                break
            await asyncio.sleep(0.01)
        assert log.later._flusher.failures >= 1 and log.later.pending == 1
        store.down = False
        for _ in range(200):
            if not log.later.pending:
                break
            await asyncio.sleep(0.01)
        assert [r.actor for r in await store.audit()] == ["a"]
        assert log.later._flusher.failures == 0
    finally:
        await log.aclose()


async def test_shutdown_with_the_store_down_reports_what_it_could_not_write(
        caplog: pytest.LogCaptureFixture) -> None:
    store = Flaky()
    log = AuditLog(store, clock=Clock())
    log.record_later("a", "security.pii", "mask")
    log.record_later("b", "security.pii", "mask")
    store.down = True
    with caplog.at_level(logging.ERROR, "gatewise.security"):
        await log.aclose()
    assert "2 record(s) not written at shutdown" in caplog.text


async def test_a_full_buffer_refuses_new_records_and_the_log_records_the_gap(
        caplog: pytest.LogCaptureFixture) -> None:
    store = Flaky()
    log = AuditLog(store, clock=Clock())
    log.later.max_pending = 2
    store.down = True
    with caplog.at_level(logging.ERROR, "gatewise.security"):
        for actor in "abcde":
            log.record_later(actor, "security.pii", "mask")
    assert log.later.pending == 2
    assert caplog.text.count("audit buffer full") == 1  # said once, not per record
    store.down = False
    await log.flush()
    recs = await store.audit()
    assert [r.actor for r in recs] == ["a", "b", "system"]
    assert (recs[-1].action, recs[-1].detail) == ("audit.overflow", {"dropped": 3})


async def test_a_direct_record_writes_the_pending_ones_first() -> None:
    store = MemoryGovernance()
    clock = Clock()
    log = AuditLog(store, clock=clock)
    log.record_later("key_1", "security.pii", "mask")
    clock.now += 1
    rec = await log.record("master", "key.revoke", "key_1")
    assert rec.seq == 2
    assert [r.action for r in await store.audit()] == ["security.pii", "key.revoke"]


def test_a_secret_in_the_detail_is_refused_before_it_is_buffered() -> None:
    log = AuditLog(MemoryGovernance(), clock=Clock())
    with pytest.raises(ValueError, match="names a secret"):
        log.record_later("key_1", "security.pii", "mask", api_key="sk-x")
    assert log.later.pending == 0


async def test_a_security_event_reaches_the_audit_log_and_its_line() -> None:
    store = MemoryGovernance()
    log = AuditLog(store, clock=Clock())
    sink = GatewayEventSink(None, log)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    logger = logging.getLogger("gatewise.security")
    logger.addHandler(keep)
    try:
        sink.emit("pii", "mask", request_id="req_1", tenant="t1", key_id="key_1",
                  detail={"entities": {"EMAIL_ADDRESS": 1}})
        sink.emit("auth", "deny", key_id="key_2", detail={"reason": "unknown key"})
    finally:
        logger.removeHandler(keep)
    assert [(r.getMessage(), r.kind, r.action) for r in seen] == [  # type: ignore[attr-defined]
        ("security event", "pii", "mask"), ("security event", "auth", "deny")]
    assert seen[0].detail == {"entities": {"EMAIL_ADDRESS": 1}}  # type: ignore[attr-defined]
    await sink.drain()
    [rec] = await store.audit()  # denied authentications are not audited
    assert (rec.actor, rec.action, rec.target, rec.detail) == (
        "key_1", "security.pii", "mask",
        {"entities": {"EMAIL_ADDRESS": 1}, "request_id": "req_1", "tenant": "t1"})


@pytest.mark.parametrize("value", [
    "text", 3, 2.5, True, None, [1, "a", None], (1, 2), {"a": {"b": [1.5, {"c": "d"}]}},
    float("nan"), float("inf"), object(), {1, 2}, b"bytes", [object()], {"a": float("-inf")},
])
def test_a_detail_is_accepted_exactly_when_json_would_encode_it(value: object) -> None:
    import json

    from gatewise.security.audit import check_detail

    try:
        json.dumps({"v": value}, allow_nan=False)
        encodable = True
    except (TypeError, ValueError):
        encodable = False
    if encodable:
        check_detail({"v": value})
    else:
        with pytest.raises(ValueError, match="JSON-able"):
            check_detail({"v": value})


def test_security_event_lines_wait_for_the_batch_while_other_warnings_go_at_once() -> None:
    import io

    from gatewise.observability.logs import BatchingStreamHandler, TextFormatter

    out = io.StringIO()
    handler = BatchingStreamHandler(out, flush_interval_s=3600)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("gatewise.security")
    logger.addHandler(handler)
    try:
        GatewayEventSink(None, None).emit("pii", "mask", request_id="req_1", key_id="key_1",
                                          detail={"entities": {"EMAIL_ADDRESS": 1}})
        assert out.getvalue() == ""  # batched: no write per guarded request
        logger.warning("something else")
        lines = out.getvalue().splitlines()
        assert len(lines) == 2  # a plain warning is written at once, with what came before
        assert "security event kind=pii action=mask request_id=req_1" in lines[0]
        assert 'detail={"entities":{"EMAIL_ADDRESS":1}}' in lines[0]
    finally:
        logger.removeHandler(handler)
        handler.close()
