"""Retention: old usage and audit records go, in bounded batches, and the purge is audited."""

from __future__ import annotations

import pytest

from gatewise.security.audit import AuditLog
from gatewise.security.retention import purge
from gatewise.storage.base import UsageRecord
from gatewise.storage.memory import MemoryLedger
from gatewise.storage.memory_governance import MemoryGovernance
from tests.unit.security.conftest import Clock

DAY = 86400.0


async def setup(clock: Clock, old: int, new: int) -> tuple[MemoryLedger, MemoryGovernance]:
    ledger, gov = MemoryLedger(), MemoryGovernance()
    audit = AuditLog(gov, clock=clock)
    start = clock.now
    clock.now = start - 400 * DAY
    for i in range(old):
        await ledger.append([UsageRecord(f"old{i}", clock.now, "t", "m", "d", "ok")])
        await audit.record("master", "key.create", f"k{i}")
    clock.now = start - 10 * DAY
    for i in range(new):
        await ledger.append([UsageRecord(f"new{i}", clock.now, "t", "m", "d", "ok")])
        await audit.record("master", "key.update", f"k{i}")
    clock.now = start
    return ledger, gov


async def test_records_older_than_their_keep_period_are_deleted_and_the_purge_is_audited(
        clock: Clock) -> None:
    ledger, gov = await setup(clock, old=25, new=5)
    counts = await purge(ledger, gov, usage_days=365, audit_days=365, batch=10, clock=clock)
    assert counts == {"usage": 25, "audit": 25, "truncated": 0}
    assert {r.request_id for r in await ledger.query()} == {f"new{i}" for i in range(5)}
    audit = await gov.audit()
    assert [r.seq for r in audit] == list(range(26, 32))
    assert audit[-1].action == "retention.purge" and audit[-1].actor == "system"
    assert audit[-1].detail["usage"] == 25 and audit[-1].detail["audit"] == 25
    result = await AuditLog(gov).verify()
    assert result.ok and result.checked == 6


async def test_each_kind_keeps_its_own_period(clock: Clock) -> None:
    ledger, gov = await setup(clock, old=3, new=3)
    counts = await purge(ledger, gov, usage_days=5, audit_days=3650, clock=clock)
    assert counts == {"usage": 6, "audit": 0, "truncated": 0}
    assert len(await gov.audit()) == 7  # 6 kept + the purge record


async def test_a_run_is_bounded_and_the_rest_is_left_for_the_next(clock: Clock) -> None:
    ledger, gov = await setup(clock, old=25, new=0)
    first = await purge(ledger, gov, batch=5, max_batches=2, clock=clock)
    assert first == {"usage": 10, "audit": 10, "truncated": 1}
    second = await purge(ledger, gov, batch=5, max_batches=10, clock=clock)
    assert second == {"usage": 15, "audit": 15, "truncated": 0}
    assert await ledger.query() == []
    assert (await AuditLog(gov).verify()).ok


async def test_nothing_to_delete_writes_no_audit_record(clock: Clock) -> None:
    ledger, gov = await setup(clock, old=0, new=2)
    assert await purge(ledger, gov, clock=clock) == {"usage": 0, "audit": 0, "truncated": 0}
    assert len(await gov.audit()) == 2


async def test_bad_batch_sizes_are_refused(clock: Clock) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await purge(MemoryLedger(), MemoryGovernance(), batch=0, clock=clock)
