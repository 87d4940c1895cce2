"""Quality records: one row per scored response, user feedback on it, and the store protocol
behind them (memory, SQLite, PostgreSQL, like the usage ledger).

A row is written when the answer is known (its cheap scores: validity, groundedness,
toxicity) and updated when a sampled judge or a user adds a score later, so every score of a
request stays with the request. Experiments, degradation checks and `gatewise eval` read rows
through `query`; nothing above this protocol knows the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec


class QualityRecord(msgspec.Struct, kw_only=True):
    """A scored response. Never prompt or completion text: ids, names, numbers."""

    request_id: str
    ts: float  # unix seconds, when the response finished
    alias: str  # the alias the caller asked for (an experiment's alias, not its variant's)
    deployment: str | None = None
    model: str | None = None  # provider/model that answered
    tenant: str = "default"
    team: str | None = None
    key_id: str | None = None
    user: str | None = None
    experiment: str | None = None
    variant: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cost_usd: float | None = None
    error_type: str | None = None  # None: the call succeeded
    # metric -> 0..1: validity, groundedness, toxicity (1 = clean), relevance, completeness,
    # feedback (user feedback, mapped to 0..1).
    scores: dict[str, float] = msgspec.field(default_factory=dict)


class FeedbackRecord(msgspec.Struct, kw_only=True):
    """What a user said about a response (`POST /v1/feedback`, `gw.feedback`)."""

    request_id: str
    ts: float
    score: float  # 0..1 (a thumbs-up is 1, a thumbs-down 0)
    comment: str | None = None  # bounded in length; stored as given (masked by the caller's policy)
    tenant: str = "default"
    key_id: str | None = None
    user: str | None = None


class QualityFilter(msgspec.Struct, kw_only=True):
    alias: str | None = None
    deployment: str | None = None
    experiment: str | None = None
    variant: str | None = None
    tenant: str | None = None
    since: float | None = None
    until: float | None = None


class QualityStore(Protocol):
    async def add(self, records: Sequence[QualityRecord]) -> None:
        """Inserts rows; a row whose request id exists merges its scores into the stored one."""
        ...

    async def add_scores(self, request_id: str, scores: Mapping[str, float]) -> bool:
        """Merges scores into an existing row; False when there is no such request."""
        ...

    async def get(self, request_id: str) -> QualityRecord | None: ...

    async def add_feedback(self, feedback: FeedbackRecord) -> None:
        """Keeps the feedback and merges `feedback` into the request's scores."""
        ...

    async def feedback(self, request_id: str) -> list[FeedbackRecord]: ...

    async def query(self, where: QualityFilter, *, limit: int = 100_000) -> list[QualityRecord]:
        """Rows matching `where`, oldest first."""
        ...

    async def delete_before(self, ts: float, limit: int) -> int:
        """Retention: removes up to `limit` rows (and their feedback) older than `ts`."""
        ...

    async def aclose(self) -> None: ...
