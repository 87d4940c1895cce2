"""`QualityRecorder`: quality rows on the hot path cost a dict insert; a background task writes
them to the `QualityStore` in batches (like the usage ledger's flusher).

Scores that arrive later (a judge's, a user's feedback) find their row whether it is still
pending here or already stored: `add_scores` and `get` look here first. Unlike the ledger
there is no journal: a quality row is an observation, not money, so a crash loses at most one
flush interval of them, and a store that stays down keeps at most `max_pending` rows (the
oldest are dropped, counted and logged) instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import msgspec

from gatewise.pipeline.flusher import Flusher
from gatewise.storage.quality import QualityRecord, QualityStore

log = logging.getLogger("gatewise.quality")


class QualityRecorder:
    def __init__(self, store: QualityStore, *, batch: int = 256, flush_s: float = 1.0,
                 max_pending: int = 20_000) -> None:
        self.store = store
        self.batch = batch
        self.flush_s = flush_s
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: dict[str, QualityRecord] = {}
        self._lock = asyncio.Lock()
        self._flusher = Flusher(self.flush, interval_s=flush_s, name="gatewise-quality-flush",
                                what="quality row flush")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, r: QualityRecord) -> None:
        """Hot path: a dict insert, no awaits. Starts the flusher on first use."""
        pending = self._pending
        known = pending.get(r.request_id)
        if known is not None:
            pending[r.request_id] = _merged(known, r.scores)
            return
        pending[r.request_id] = r
        if len(pending) > self.max_pending:
            del pending[next(iter(pending))]
            self.dropped += 1
        if not self._flusher.running:
            self.start()
        if len(pending) >= self.batch:
            self._flusher.wake()

    async def add_scores(self, request_id: str, scores: Mapping[str, float]) -> bool:
        """Merges scores into the request's row, pending or stored; False when neither."""
        known = self._pending.get(request_id)
        if known is not None:
            self._pending[request_id] = _merged(known, scores)
            return True
        return await self.store.add_scores(request_id, scores)

    async def get(self, request_id: str) -> QualityRecord | None:
        known = self._pending.get(request_id)
        if known is not None:
            return msgspec.structs.replace(known, scores=dict(known.scores))
        return await self.store.get(request_id)

    def start(self) -> None:
        self._flusher.start()

    async def flush(self) -> int:
        """Writes every pending row; returns how many. A store failure keeps them pending."""
        async with self._lock:
            if not self._pending:
                return 0
            todo = list(self._pending.values())
            written = 0
            for i in range(0, len(todo), self.batch):
                chunk = todo[i:i + self.batch]
                try:
                    await self.store.add(chunk)
                except Exception as exc:
                    self._flusher.failures += 1
                    log.warning("quality store write failed (%s); %d row(s) kept for retry",
                                type(exc).__name__, len(self._pending))
                    return written
                for r in chunk:
                    # A row whose scores changed while the write was in flight is a new
                    # object: the next flush writes it again (the store merges the scores).
                    current = self._pending.get(r.request_id)
                    if current is r:
                        del self._pending[r.request_id]
                written += len(chunk)
            self._flusher.failures = 0
            if self.dropped:
                log.warning("quality recorder dropped %d row(s) while the store was behind",
                            self.dropped)
                self.dropped = 0
            return written

    async def aclose(self) -> None:
        await self._flusher.stop()
        await self.flush()
        if self._pending:
            log.error("quality recorder: %d row(s) not written at shutdown", len(self._pending))


def _merged(r: QualityRecord, scores: Mapping[str, float]) -> QualityRecord:
    """A new row (never the one a flush may be writing) with `scores` merged in."""
    return msgspec.structs.replace(r, scores={**r.scores, **scores})
