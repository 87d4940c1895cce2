"""`AuditBuffer`: audit records written behind the hot path, in batches.

A security event (a masked prompt, a blocked injection) is audited on every request it
happens on; one store transaction each was a sixth of a guarded request's CPU. The event is
appended here instead (no awaits) and the background `Flusher` writes everything pending in
one transaction (`GovernanceStore.append_audit_many`) every `flush_s`, or at once when a
batch is full.

The contract is the usage ledger's: nothing is dropped silently. A failed write keeps the
records, in order, for the next attempt (the flusher backs off while the store keeps
failing); shutdown stops the flusher and writes what is left, and says how many records it
could not. The buffer is bounded (`max_pending`): past it, while the store is down, new
records are refused, counted and logged, and the first successful write afterwards appends
an `audit.overflow` record naming how many were lost, so the log itself shows the gap.
Readers (`AuditLog.entries`, `verify`, and the admin API through them) flush first, so a
record is visible the moment its event happened, whatever the interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gatewise.pipeline.flusher import Flusher
from gatewise.storage.base import AuditEntry, GovernanceStore

log = logging.getLogger("gatewise.security")

ChainFn = Callable[[str, int, float, str, str, str | None, dict[str, Any]], str]


class AuditBuffer:
    def __init__(self, store: GovernanceStore, chain: ChainFn, *, clock: Callable[[], float],
                 flush_s: float = 0.5, batch: int = 256, max_pending: int = 10_000) -> None:
        self._store = store
        self._chain = chain
        self._clock = clock
        self.batch = batch
        self.max_pending = max_pending
        self._pending: list[AuditEntry] = []
        self._dropped = 0  # refused while full, not yet recorded as `audit.overflow`
        # Held by a flush and by a direct append, so records reach the chain in the order
        # they were made.
        self.lock = asyncio.Lock()
        self._flusher = Flusher(self.flush, interval_s=flush_s, name="gatewise-audit-flush",
                                what="audit flush")

    @property
    def pending(self) -> int:
        """Records not yet written to the store."""
        return len(self._pending)

    def add(self, actor: str, action: str, target: str | None, detail: dict[str, Any]) -> None:
        """Hot path: one append, no awaits (`detail` is the caller's, already checked)."""
        pending = self._pending
        if len(pending) >= self.max_pending:
            self._dropped += 1
            if self._dropped == 1:
                log.error("audit buffer full (%d records; the store is not taking writes): "
                          "new audit records are refused until it does", len(pending))
            return
        pending.append(AuditEntry(self._clock(), actor, action, target, detail))
        if len(pending) >= self.batch:
            self._flusher.wake()

    def start(self) -> None:
        """Starts the background flusher (needs a running event loop)."""
        self._flusher.start()

    async def flush(self) -> int:
        """Writes every pending record; returns how many. A store failure is logged and
        counted (the flusher backs off) and the records stay pending, in order."""
        async with self.lock:
            return await self.flush_locked()

    async def flush_locked(self) -> int:
        """`flush` for a caller already holding `lock`."""
        if self._dropped:  # the gap goes into the chain after what was kept (one past the bound)
            lost, self._dropped = self._dropped, 0
            log.error("audit buffer: %d audit record(s) were refused while it was full", lost)
            self._pending.append(AuditEntry(self._clock(), "system", "audit.overflow", None,
                                            {"dropped": lost}))
        if not self._pending:
            return 0
        todo, self._pending = self._pending, []
        done = 0
        for i in range(0, len(todo), self.batch):
            try:
                await self._store.append_audit_many(todo[i:i + self.batch], self._chain)
            except Exception as exc:
                self._pending[:0] = todo[i:]
                self._flusher.failures += 1
                log.warning("audit: store append failed (%s); %d record(s) kept for retry",
                            type(exc).__name__, len(self._pending))
                return done
            done += len(todo[i:i + self.batch])
        self._flusher.failures = 0
        return done

    async def aclose(self) -> None:
        """Shutdown: stops the flusher and writes what is left; what the store refuses is
        reported (counted), never dropped without a word."""
        await self._flusher.stop()
        await self.flush()
        if self._pending or self._dropped:
            log.error("audit: %d record(s) not written at shutdown (store failing)",
                      len(self._pending) + self._dropped)
