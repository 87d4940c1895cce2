"""Retention: delete usage records, audit records and idle conversations older than their
keep periods.

Deletes in bounded batches (`batch` rows per statement, at most `max_batches` statements per
kind per run) so a first run over years of data never holds a long lock or stalls a replica;
what is left is taken by the next run (`truncated` = 1 says so). Audit deletion removes only
the oldest records, so the chain stays verifiable from the oldest kept one, and the purge is
itself audited (`retention.purge` with the counts) whenever it deleted anything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from gatewise.security.audit import AuditLog
from gatewise.storage.base import ConversationStore, GovernanceStore, LedgerStore

_DAY = 86400.0


async def _drain(delete: Callable[[float, int], Awaitable[int]], cutoff: float, batch: int,
                 max_batches: int) -> tuple[int, bool]:
    total = 0
    for _ in range(max_batches):
        n = await delete(cutoff, batch)
        total += n
        if n < batch:
            return total, False
    return total, True


async def purge(ledger: LedgerStore, store: GovernanceStore, *, usage_days: float = 365,
                audit_days: float = 365, batch: int = 1000, max_batches: int = 100,
                clock: Callable[[], float] = time.time, actor: str = "system",
                conversations: ConversationStore | None = None,
                conversation_days: float = 90) -> dict[str, int]:
    if batch < 1 or max_batches < 1:
        raise ValueError("batch and max_batches must be at least 1")
    now = clock()
    usage, more_usage = await _drain(ledger.delete_before, now - usage_days * _DAY, batch,
                                     max_batches)
    audit, more_audit = await _drain(store.delete_audit_before, now - audit_days * _DAY, batch,
                                     max_batches)
    result = {"usage": usage, "audit": audit, "truncated": int(more_usage or more_audit)}
    if conversations is not None:  # idle conversations (memory), with their summaries
        convs, more_convs = await _drain(conversations.delete_before,
                                         now - conversation_days * _DAY, batch, max_batches)
        result["conversations"] = convs
        result["truncated"] = int(result["truncated"] or more_convs)
    if any(v for k, v in result.items() if k != "truncated"):
        await AuditLog(store, clock=clock).record(actor, "retention.purge", None,
                                                  usage_days=usage_days, audit_days=audit_days,
                                                  **result)
    return result
