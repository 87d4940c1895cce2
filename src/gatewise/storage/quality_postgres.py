"""`PostgresQualityStore`: quality rows and feedback shared by every replica.

Scores are a `jsonb` object per row merged in SQL (`scores || new`), so a judge score written
by one replica and a user's feedback taken by another both land. Batched inserts are one
`unnest` statement per `batch` rows (the usage ledger now sends one JSON array instead,
unpacked by `json_populate_recordset`). Semantics match the memory store
(`quality_memory.py`'s docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gatewise.storage.postgres import PgDatabase, _PgStore
from gatewise.storage.quality import FeedbackRecord, QualityFilter, QualityRecord, QualityStore
from gatewise.storage.quality_rows import (
    FEEDBACK_COLUMNS,
    FLOAT_COLUMNS,
    QUALITY_COLUMNS,
    encode_scores,
    feedback_record,
    feedback_row,
    merge_batch,
    quality_record,
    quality_rows,
    quality_where,
)

_COLS = ", ".join(f'"{c}"' for c in QUALITY_COLUMNS)
_FCOLS = ", ".join(f'"{c}"' for c in FEEDBACK_COLUMNS)


def _pg_type(column: str) -> str:
    return "float8" if column in FLOAT_COLUMNS or column == "score" else "text"


class PostgresQualityStore(_PgStore):
    _name = "quality"
    _ddl = ("CREATE TABLE IF NOT EXISTS {s}.quality ("
            + ", ".join(f'"{c}" {_pg_type(c)}' + (" PRIMARY KEY" if c == "request_id" else "")
                        for c in QUALITY_COLUMNS)
            + ", scores jsonb NOT NULL DEFAULT '{}');"
            "CREATE INDEX IF NOT EXISTS quality_ts ON {s}.quality (ts);"
            "CREATE TABLE IF NOT EXISTS {s}.quality_feedback (seq bigserial PRIMARY KEY, "
            + ", ".join(f'"{c}" {_pg_type(c)}' for c in FEEDBACK_COLUMNS) + ");"
            "CREATE INDEX IF NOT EXISTS quality_feedback_rid ON {s}.quality_feedback "
            "(request_id);")

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise", batch: int = 1000,
                 delete_batch: int = 5000) -> None:
        super().__init__(db, schema=schema)
        self._batch = batch
        self._delete_batch = delete_batch
        arrays = ", ".join(f"%s::{_pg_type(c)}[]" for c in QUALITY_COLUMNS)
        self._insert = (f"INSERT INTO {self._s}.quality AS q ({_COLS}, scores) "
                        f"SELECT * FROM unnest({arrays}, %s::jsonb[]) "
                        "ON CONFLICT (request_id) DO UPDATE SET scores = q.scores || "
                        "excluded.scores")

    async def add(self, records: Sequence[QualityRecord]) -> None:
        merged = merge_batch(records)
        if not merged:
            return
        async with self._conn() as conn:
            for i in range(0, len(merged), self._batch):
                rows = quality_rows(merged[i:i + self._batch])
                await conn.execute(self._insert,
                                   [list(column) for column in zip(*rows, strict=True)])

    async def add_scores(self, request_id: str, scores: Mapping[str, float]) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"UPDATE {self._s}.quality SET scores = scores || %s::jsonb "
                "WHERE request_id = %s", (encode_scores(dict(scores)), request_id))
            return cur.rowcount > 0

    async def get(self, request_id: str) -> QualityRecord | None:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT {_COLS}, scores FROM {self._s}.quality WHERE request_id = %s",
                (request_id,))).fetchone()
        return None if row is None else quality_record(row)

    async def add_feedback(self, feedback: FeedbackRecord) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {self._s}.quality_feedback ({_FCOLS}) VALUES "
                f"({', '.join(['%s'] * len(FEEDBACK_COLUMNS))})", feedback_row(feedback))
            await conn.execute(
                f"UPDATE {self._s}.quality SET scores = scores || %s::jsonb "
                "WHERE request_id = %s",
                (encode_scores({"feedback": feedback.score}), feedback.request_id))

    async def feedback(self, request_id: str) -> list[FeedbackRecord]:
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT {_FCOLS} FROM {self._s}.quality_feedback WHERE request_id = %s "
                "ORDER BY seq", (request_id,))).fetchall()
        return [feedback_record(r) for r in rows]

    async def query(self, where: QualityFilter, *, limit: int = 100_000) -> list[QualityRecord]:
        clause, args = quality_where("%s", where)
        args.append(limit)
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT {_COLS}, scores FROM {self._s}.quality{clause} ORDER BY ts LIMIT %s",
                args)).fetchall()
        return [quality_record(r) for r in rows]

    async def delete_before(self, ts: float, limit: int) -> int:
        """Deletes in batches of `delete_batch` (short transactions, short locks), each row
        with its feedback."""
        deleted = 0
        async with self._conn() as conn:
            while deleted < limit:
                n = min(self._delete_batch, limit - deleted)
                async with conn.transaction():
                    cur = await conn.execute(
                        f"DELETE FROM {self._s}.quality WHERE request_id = ANY(ARRAY("
                        f"SELECT request_id FROM {self._s}.quality WHERE ts < %s ORDER BY ts "
                        "LIMIT %s)) RETURNING request_id", (ts, n))
                    ids = [r[0] for r in await cur.fetchall()]
                    if ids:
                        await conn.execute(f"DELETE FROM {self._s}.quality_feedback "
                                           "WHERE request_id = ANY(%s)", (ids,))
                deleted += len(ids)
                if len(ids) < n:
                    break
            # Feedback on a request that was never scored (or already purged) ages out too.
            await conn.execute(
                f"DELETE FROM {self._s}.quality_feedback f WHERE f.ts < %s AND NOT EXISTS "
                f"(SELECT 1 FROM {self._s}.quality q WHERE q.request_id = f.request_id)", (ts,))
        return deleted


if TYPE_CHECKING:  # mypy checks the protocol here
    _conforms: QualityStore = PostgresQualityStore("postgresql://")
