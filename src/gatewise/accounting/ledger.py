"""`UsageLedger`: usage records on the hot path cost a journal write and a list append; a
background task commits them to the `LedgerStore` in batches.

Nothing is ever dropped: a store failure keeps the records in memory (and in the journal) and
the flusher retries with backoff. Logs name counts and error types, never record contents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from gatewise.accounting.journal import Journal
from gatewise.pipeline.flusher import Flusher
from gatewise.storage.base import LedgerStore, UsageRecord

log = logging.getLogger("gatewise.accounting")


class UsageLedger:
    def __init__(self, store: LedgerStore, journal: Journal | None, *, batch: int = 256,
                 flush_s: float = 0.5) -> None:
        self.store = store
        self.journal = journal
        self.batch = batch
        self.flush_s = flush_s
        self._pending: list[UsageRecord] = []
        # Each pending record's JSON as the journal wrote it (None where there was no journal
        # write): a full batch of them joined is what the store sends, so a commit does not
        # encode 256 records again on the event loop.
        self._lines: list[bytes | None] = []
        self._lock = asyncio.Lock()
        self._flusher = Flusher(self.flush, interval_s=flush_s, name="gatewise-ledger-flush",
                                what="usage ledger flush")
        self._journal_broken = False

    @property
    def pending(self) -> int:
        """Records not yet committed to the store."""
        return len(self._pending)

    def record(self, r: UsageRecord) -> None:
        """Hot path: journal write + append, no awaits."""
        journal = self.journal
        line = None
        if journal is not None:
            try:
                line = journal.write(r)
            except OSError as exc:
                # The record still reaches the store from memory; only crash safety is lost.
                if not self._journal_broken:
                    self._journal_broken = True
                    log.error("usage journal write failed (%s); continuing without it",
                              type(exc).__name__)
            else:
                self._journal_broken = False
        pending = self._pending
        pending.append(r)
        self._lines.append(line)
        if len(pending) >= self.batch:
            self._flusher.wake()

    def start(self) -> None:
        """Starts the background flusher (needs a running event loop)."""
        self._flusher.start()

    async def flush(self) -> int:
        """Commits every pending record; returns how many the store took as new. Never raises
        for a store failure: the records stay pending for the next attempt."""
        async with self._lock:
            if not self._pending:
                return 0
            mark = self.journal.seal() if self.journal is not None else 0
            todo, self._pending = self._pending, []
            lines, self._lines = self._lines, []
            new = 0
            for i in range(0, len(todo), self.batch):
                try:
                    new += await self.store.append(todo[i:i + self.batch],
                                                   _joined(lines[i:i + self.batch]))
                except Exception as exc:
                    self._pending[:0] = todo[i:]
                    self._lines[:0] = lines[i:]
                    self._flusher.failures += 1
                    log.warning("usage ledger: store append failed (%s); %d record(s) kept "
                                "for retry", type(exc).__name__, len(self._pending))
                    return new
            self._flusher.failures = 0
            if self.journal is not None:
                self.journal.commit(mark)
            return new

    async def aclose(self) -> None:
        """Shutdown: stops the flusher and commits everything; what the store refuses stays in
        the journal for the next start's replay."""
        await self._flusher.stop()
        await self.flush()
        if self._pending:
            log.error("usage ledger: %d record(s) not committed at shutdown%s", len(self._pending),
                      "; kept in the journal" if self.journal is not None else "")
        if self.journal is not None:
            self.journal.close(delete=not self._pending)


def _joined(lines: list[bytes | None]) -> bytes | None:
    """The batch as one JSON array, from the journal's lines; None if any record has none."""
    if None in lines:
        return None
    return b"[" + b",".join(cast("list[bytes]", lines)) + b"]"
