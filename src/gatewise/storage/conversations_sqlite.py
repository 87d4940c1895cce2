"""`SQLiteConversations`: conversations in one SQLite file (the embedded default).

Two tables: `convs` (one row per conversation: times, count, summary, metadata, expiry) and
`turns` (one row per message). An append is one transaction, so a crash never leaves a
count that disagrees with the turns. Expired rows are ignored on read and purged by
`delete_before` (retention) or when the same id is written again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gatewise.storage.base import ConversationInfo
from gatewise.storage.sqlite import _Db, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS convs (scope TEXT NOT NULL, id TEXT NOT NULL, created REAL NOT NULL,
  updated REAL NOT NULL, turns INTEGER NOT NULL, summary TEXT, summarised INTEGER NOT NULL
  DEFAULT 0, metadata TEXT NOT NULL DEFAULT '{}', expires REAL, PRIMARY KEY (scope, id));
CREATE INDEX IF NOT EXISTS convs_updated ON convs (updated);
CREATE TABLE IF NOT EXISTS conv_turns (scope TEXT NOT NULL, id TEXT NOT NULL,
  seq INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (scope, id, seq));
"""
_COLS = "id, scope, created, updated, turns, summary, summarised, metadata"


def _info(row: Sequence[Any]) -> ConversationInfo:
    return ConversationInfo(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                            json.loads(row[7]))


class SQLiteConversations:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = _Db(path, _SCHEMA)
        self._clock = clock

    @staticmethod
    def _drop(c: sqlite3.Connection, scope: str, conversation: str) -> int:
        c.execute("DELETE FROM conv_turns WHERE scope = ? AND id = ?", (scope, conversation))
        return c.execute("DELETE FROM convs WHERE scope = ? AND id = ?",
                         (scope, conversation)).rowcount

    def _row(self, c: sqlite3.Connection, scope: str, conversation: str) -> Any:
        return c.execute(f"SELECT {_COLS} FROM convs WHERE scope = ? AND id = ? AND "
                         "(expires IS NULL OR expires > ?)",
                         (scope, conversation, self._clock())).fetchone()

    async def append(self, scope: str, conversation: str, messages: Sequence[dict[str, Any]],
                     *, ttl: float | None = None,
                     metadata: dict[str, Any] | None = None) -> int:
        now = self._clock()
        encoded = [json.dumps(m) for m in messages]

        def q(c: sqlite3.Connection) -> int:
            with transaction(c):
                row = self._row(c, scope, conversation)
                if row is None:
                    self._drop(c, scope, conversation)  # an expired one under the same id
                    info = ConversationInfo(conversation, scope, now, now, 0)
                else:
                    info = _info(row)
                info.metadata.update(metadata or {})
                c.executemany("INSERT INTO conv_turns (scope, id, seq, message) VALUES "
                              "(?, ?, ?, ?)", [(scope, conversation, info.turns + i, m)
                                               for i, m in enumerate(encoded)])
                turns = info.turns + len(encoded)
                c.execute("INSERT OR REPLACE INTO convs (scope, id, created, updated, turns, "
                          "summary, summarised, metadata, expires) VALUES (?,?,?,?,?,?,?,?,?)",
                          (scope, conversation, info.created, now, turns, info.summary,
                           info.summarised, json.dumps(info.metadata),
                           now + ttl if ttl else None))
                return turns

        return await self._db.run(q)

    async def history(self, scope: str, conversation: str, *, start: int = 0,
                      limit: int | None = None) -> list[dict[str, Any]]:
        def q(c: sqlite3.Connection) -> list[dict[str, Any]]:
            if self._row(c, scope, conversation) is None:
                return []
            rows = c.execute("SELECT message FROM conv_turns WHERE scope = ? AND id = ? AND "
                             "seq >= ? ORDER BY seq", (scope, conversation, start)).fetchall()
            return [json.loads(r[0]) for r in (rows[-limit:] if limit else rows)]

        return await self._db.run(q)

    async def info(self, scope: str, conversation: str) -> ConversationInfo | None:
        def q(c: sqlite3.Connection) -> ConversationInfo | None:
            row = self._row(c, scope, conversation)
            return _info(row) if row is not None else None

        return await self._db.run(q)

    async def list(self, scope: str, *, limit: int = 100) -> list[ConversationInfo]:
        def q(c: sqlite3.Connection) -> list[ConversationInfo]:
            rows = c.execute(f"SELECT {_COLS} FROM convs WHERE scope = ? AND (expires IS NULL "
                             "OR expires > ?) ORDER BY updated DESC LIMIT ?",
                             (scope, self._clock(), limit)).fetchall()
            return [_info(r) for r in rows]

        return await self._db.run(q)

    async def set_summary(self, scope: str, conversation: str, summary: str,
                          summarised: int) -> None:
        await self._db.run(lambda c: c.execute(
            "UPDATE convs SET summary = ?, summarised = ? WHERE scope = ? AND id = ?",
            (summary, summarised, scope, conversation)))

    async def delete(self, scope: str, conversation: str) -> bool:
        def q(c: sqlite3.Connection) -> bool:
            live = self._row(c, scope, conversation) is not None
            c.execute("BEGIN IMMEDIATE")
            self._drop(c, scope, conversation)
            c.execute("COMMIT")
            return live

        return await self._db.run(q)

    async def delete_before(self, ts: float, limit: int) -> int:
        def q(c: sqlite3.Connection) -> int:
            rows = c.execute("SELECT scope, id FROM convs WHERE updated < ? OR expires <= ? "
                             "LIMIT ?", (ts, self._clock(), limit)).fetchall()
            c.execute("BEGIN IMMEDIATE")
            for scope, conv in rows:
                self._drop(c, scope, conv)
            c.execute("COMMIT")
            return len(rows)

        return await self._db.run(q)

    async def aclose(self) -> None:
        await self._db.close()
