"""In-process quality store: the default for a single process and for tests.

Single event loop, so dict operations between awaits are atomic. Rows are copied in and out,
so a caller mutating a record it passed (or got back) never changes what is stored — the
SQL backends behave the same way by construction.

Shared semantics of every backend (the storage suite checks them on all three):
- `add` with a request id already stored merges the new scores into the stored row and keeps
  the stored row's other fields (the first writer describes the request);
- the feedback score merged into a row's scores is the latest feedback's (a user changing a
  thumbs-up into a thumbs-down means the latter);
- `query` bounds are `since <= ts < until`, oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from gatewise.storage.quality import FeedbackRecord, QualityFilter, QualityRecord, QualityStore


def record_matches(r: QualityRecord, where: QualityFilter) -> bool:
    """Whether `r` passes `where` (None = no condition), as the SQL backends' WHERE does."""
    return ((where.alias is None or r.alias == where.alias)
            and (where.deployment is None or r.deployment == where.deployment)
            and (where.experiment is None or r.experiment == where.experiment)
            and (where.variant is None or r.variant == where.variant)
            and (where.tenant is None or r.tenant == where.tenant)
            and (where.since is None or r.ts >= where.since)
            and (where.until is None or r.ts < where.until))


def _copy(r: QualityRecord) -> QualityRecord:
    return msgspec.structs.replace(r, scores=dict(r.scores))


class MemoryQualityStore:
    def __init__(self) -> None:
        self._rows: dict[str, QualityRecord] = {}
        self._feedback: dict[str, list[FeedbackRecord]] = {}

    async def add(self, records: Sequence[QualityRecord]) -> None:
        for r in records:
            stored = self._rows.get(r.request_id)
            if stored is None:
                self._rows[r.request_id] = _copy(r)
            else:
                stored.scores.update(r.scores)

    async def add_scores(self, request_id: str, scores: Mapping[str, float]) -> bool:
        stored = self._rows.get(request_id)
        if stored is None:
            return False
        stored.scores.update(scores)
        return True

    async def get(self, request_id: str) -> QualityRecord | None:
        stored = self._rows.get(request_id)
        return None if stored is None else _copy(stored)

    async def add_feedback(self, feedback: FeedbackRecord) -> None:
        self._feedback.setdefault(feedback.request_id, []).append(
            msgspec.structs.replace(feedback))
        stored = self._rows.get(feedback.request_id)
        if stored is not None:
            stored.scores["feedback"] = feedback.score

    async def feedback(self, request_id: str) -> list[FeedbackRecord]:
        return [msgspec.structs.replace(f) for f in self._feedback.get(request_id, ())]

    async def query(self, where: QualityFilter, *, limit: int = 100_000) -> list[QualityRecord]:
        out = [_copy(r) for r in self._rows.values() if record_matches(r, where)]
        out.sort(key=lambda r: r.ts)
        return out[:limit]

    async def delete_before(self, ts: float, limit: int) -> int:
        old = sorted((r for r in self._rows.values() if r.ts < ts), key=lambda r: r.ts)[:limit]
        for r in old:
            del self._rows[r.request_id]
            self._feedback.pop(r.request_id, None)
        # Feedback on a request that was never scored (or already purged) ages out too.
        for rid in [rid for rid, fs in self._feedback.items()
                    if rid not in self._rows and all(f.ts < ts for f in fs)]:
            del self._feedback[rid]
        return len(old)

    async def aclose(self) -> None:
        return None


if TYPE_CHECKING:  # mypy checks the protocol here
    _conforms: QualityStore = MemoryQualityStore()
