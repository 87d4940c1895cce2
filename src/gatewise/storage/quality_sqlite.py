"""`SQLiteQualityStore`: quality rows and feedback in their own SQLite file (`quality.db`),
so a batch of rows never waits behind the ledger's or the governance store's writes.

Scores are a JSON object per row, merged in SQL (`json_patch`), so a judge score and a user's
feedback arriving from two processes at once both land. Semantics match the memory store
(`quality_memory.py`'s docstring).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

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
from gatewise.storage.sqlite import _Db, transaction

_COLS = ", ".join(f'"{c}"' for c in QUALITY_COLUMNS)
_FCOLS = ", ".join(f'"{c}"' for c in FEEDBACK_COLUMNS)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS quality ("
    + ", ".join(f'"{c}" ' + ("TEXT PRIMARY KEY" if c == "request_id"
                             else "REAL" if c in FLOAT_COLUMNS else "TEXT")
                for c in QUALITY_COLUMNS)
    + ", scores TEXT NOT NULL DEFAULT '{}');"
    "CREATE INDEX IF NOT EXISTS quality_ts ON quality (ts);"
    "CREATE TABLE IF NOT EXISTS quality_feedback (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f'"{c}" ' + ("REAL" if c in ("ts", "score") else "TEXT")
                for c in FEEDBACK_COLUMNS)
    + ");"
    "CREATE INDEX IF NOT EXISTS quality_feedback_rid ON quality_feedback (request_id);"
)
# Multi-row INSERTs, under SQLite's oldest limit of 999 parameters (see SQLiteLedger.append).
_ROWS_PER_INSERT = 60


class SQLiteQualityStore:
    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, _SCHEMA)

    async def add(self, records: Sequence[QualityRecord]) -> None:
        rows = quality_rows(merge_batch(records))
        mark = "(" + ", ".join("?" * (len(QUALITY_COLUMNS) + 1)) + ")"
        statements = [(f"INSERT INTO quality ({_COLS}, scores) VALUES "
                       + ", ".join([mark] * len(chunk))
                       + " ON CONFLICT (request_id) DO UPDATE SET "
                         "scores = json_patch(quality.scores, excluded.scores)",
                       list(chain.from_iterable(chunk)))
                      for chunk in (rows[i:i + _ROWS_PER_INSERT]
                                    for i in range(0, len(rows), _ROWS_PER_INSERT))]

        def q(c: sqlite3.Connection) -> None:
            with transaction(c):
                for sql, params in statements:
                    c.execute(sql, params)

        if statements:
            await self._db.run(q)

    async def add_scores(self, request_id: str, scores: Mapping[str, float]) -> bool:
        patch = encode_scores(dict(scores))
        return bool(await self._db.run(lambda c: c.execute(
            "UPDATE quality SET scores = json_patch(scores, ?) WHERE request_id = ?",
            (patch, request_id)).rowcount))

    async def get(self, request_id: str) -> QualityRecord | None:
        row = await self._db.run(lambda c: c.execute(
            f"SELECT {_COLS}, scores FROM quality WHERE request_id = ?", (request_id,)).fetchone())
        return None if row is None else quality_record(row)

    async def add_feedback(self, feedback: FeedbackRecord) -> None:
        values = feedback_row(feedback)
        patch = encode_scores({"feedback": feedback.score})

        def q(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute(f"INSERT INTO quality_feedback ({_FCOLS}) VALUES "
                          f"({', '.join('?' * len(FEEDBACK_COLUMNS))})", values)
                c.execute("UPDATE quality SET scores = json_patch(scores, ?) WHERE request_id = ?",
                          (patch, feedback.request_id))

        await self._db.run(q)

    async def feedback(self, request_id: str) -> list[FeedbackRecord]:
        rows = await self._db.run(lambda c: c.execute(
            f"SELECT {_FCOLS} FROM quality_feedback WHERE request_id = ? ORDER BY seq",
            (request_id,)).fetchall())
        return [feedback_record(r) for r in rows]

    async def query(self, where: QualityFilter, *, limit: int = 100_000) -> list[QualityRecord]:
        clause, args = quality_where("?", where)
        sql = f"SELECT {_COLS}, scores FROM quality{clause} ORDER BY ts LIMIT ?"
        args.append(limit)
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [quality_record(r) for r in rows]

    async def delete_before(self, ts: float, limit: int) -> int:
        def q(c: sqlite3.Connection) -> int:
            with transaction(c):
                ids = [r[0] for r in c.execute(
                    "SELECT request_id FROM quality WHERE ts < ? ORDER BY ts LIMIT ?",
                    (ts, limit)).fetchall()]
                for i in range(0, len(ids), 500):
                    chunk = ids[i:i + 500]
                    marks = ", ".join("?" * len(chunk))
                    c.execute(f"DELETE FROM quality_feedback WHERE request_id IN ({marks})", chunk)
                    c.execute(f"DELETE FROM quality WHERE request_id IN ({marks})", chunk)
                # Feedback on a request that was never scored (or already purged) ages out too.
                c.execute("DELETE FROM quality_feedback WHERE ts < ? AND NOT EXISTS (SELECT 1 "
                          "FROM quality WHERE quality.request_id = quality_feedback.request_id)",
                          (ts,))
            return len(ids)

        return await self._db.run(q)

    async def aclose(self) -> None:
        await self._db.close()


if TYPE_CHECKING:  # mypy checks the protocol here
    _conforms: QualityStore = SQLiteQualityStore(":memory:")
