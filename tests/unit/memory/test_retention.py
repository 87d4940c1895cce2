"""Conversations follow the governance retention: the daily purge deletes those idle longer
than `memory.retention_days`, counts them, and audits the purge."""

from __future__ import annotations

from gatewise.security.retention import purge
from gatewise.storage.conversations_memory import MemoryConversations
from gatewise.storage.memory import MemoryLedger
from gatewise.storage.memory_governance import MemoryGovernance

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 100 * DAY

    def __call__(self) -> float:
        return self.now


async def test_idle_conversations_past_retention_are_purged_and_audited() -> None:
    clock = Clock()
    convs, gov = MemoryConversations(clock=clock), MemoryGovernance()
    await convs.append("t", "old", [{"role": "user", "content": "x"}])
    clock.now += 20 * DAY
    await convs.append("t", "recent", [{"role": "user", "content": "y"}])
    clock.now += 5 * DAY
    counts = await purge(MemoryLedger(), gov, clock=clock, conversations=convs,
                         conversation_days=10)
    assert counts == {"usage": 0, "audit": 0, "truncated": 0, "conversations": 1}
    assert [i.id for i in await convs.list("t")] == ["recent"]
    assert (await gov.audit())[-1].detail["conversations"] == 1


async def test_without_a_conversation_store_the_counts_are_unchanged() -> None:
    assert await purge(MemoryLedger(), MemoryGovernance()) == {"usage": 0, "audit": 0,
                                                                "truncated": 0}
