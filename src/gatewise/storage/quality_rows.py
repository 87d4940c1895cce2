"""What the SQL quality stores share: the columns of a quality row, its tuple form, the
`QualityFilter` as a WHERE clause, so SQLite and PostgreSQL store and filter identically
(and as `quality_memory.record_matches` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec

from gatewise.storage.quality import FeedbackRecord, QualityFilter, QualityRecord

# Every field of a QualityRecord but `scores`, which is stored as a JSON object after them.
QUALITY_COLUMNS = ("request_id", "ts", "alias", "deployment", "model", "tenant", "team",
                   "key_id", "user", "experiment", "variant", "latency_s", "ttft_s", "cost_usd",
                   "error_type")
FLOAT_COLUMNS = frozenset({"ts", "latency_s", "ttft_s", "cost_usd"})
FEEDBACK_COLUMNS = ("request_id", "ts", "score", "comment", "tenant", "key_id", "user")

_columns = attrgetter(*QUALITY_COLUMNS)
_feedback_columns = attrgetter(*FEEDBACK_COLUMNS)
_encode = msgspec.json.Encoder().encode
_decode_scores = msgspec.json.Decoder(dict[str, float]).decode


def encode_scores(scores: dict[str, float]) -> str:
    return _encode(scores).decode()


def decode_scores(value: Any) -> dict[str, float]:
    """A stored scores object: text (SQLite) or already decoded (PostgreSQL's jsonb)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    return _decode_scores(value)


def quality_rows(records: Sequence[QualityRecord]) -> list[tuple[Any, ...]]:
    """One tuple per record: `QUALITY_COLUMNS`' values, then the scores as JSON text."""
    return [(*_columns(r), encode_scores(r.scores)) for r in records]


def merge_batch(records: Sequence[QualityRecord]) -> list[QualityRecord]:
    """One record per request id, the first one's fields with every one's scores merged in
    order: PostgreSQL refuses an upsert that touches one row twice in a statement."""
    seen: dict[str, QualityRecord] = {}
    for r in records:
        first = seen.get(r.request_id)
        if first is None:
            seen[r.request_id] = r
        else:
            seen[r.request_id] = msgspec.structs.replace(first, scores={**first.scores,
                                                                         **r.scores})
    return list(seen.values())


def quality_record(row: Sequence[Any]) -> QualityRecord:
    data: dict[str, Any] = dict(zip(QUALITY_COLUMNS, row[:-1], strict=True))
    return QualityRecord(**data, scores=decode_scores(row[-1]))


def feedback_row(f: FeedbackRecord) -> tuple[Any, ...]:
    return tuple(_feedback_columns(f))


def feedback_record(row: Sequence[Any]) -> FeedbackRecord:
    return FeedbackRecord(**dict(zip(FEEDBACK_COLUMNS, row, strict=True)))


def quality_where(mark: str, where: QualityFilter) -> tuple[str, list[object]]:
    """` WHERE …` (or "") and its arguments; `mark` is the driver's placeholder (? or %s)."""
    conds: list[str] = []
    args: list[object] = []
    for cond, value in (('"alias" = ', where.alias), ('"deployment" = ', where.deployment),
                        ('"experiment" = ', where.experiment), ('"variant" = ', where.variant),
                        ('"tenant" = ', where.tenant), ('"ts" >= ', where.since),
                        ('"ts" < ', where.until)):
        if value is not None:
            conds.append(cond + mark)
            args.append(value)
    return (" WHERE " + " AND ".join(conds) if conds else ""), args
