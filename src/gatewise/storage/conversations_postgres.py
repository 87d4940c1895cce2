"""`PostgresConversations`: conversations shared by every replica on PostgreSQL.

`conv_meta` holds one row per conversation, `conv_turns` one per message. An append upserts
the meta row first (its row lock orders concurrent appends to one conversation), takes the
sequence numbers the new count implies, then inserts the messages, in one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from gatewise.storage.base import ConversationInfo
from gatewise.storage.postgres import PgDatabase, _PgStore

_COLS = "id, scope, created, updated, turns, summary, summarised, metadata"


def _info(row: Sequence[Any]) -> ConversationInfo:
    return ConversationInfo(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                            dict(row[7] or {}))


class PostgresConversations(_PgStore):
    _name = "conversations"
    _ddl = """
CREATE TABLE IF NOT EXISTS {s}.conv_meta (scope text NOT NULL, id text NOT NULL,
  created float8 NOT NULL, updated float8 NOT NULL, turns int NOT NULL, summary text,
  summarised int NOT NULL DEFAULT 0, metadata jsonb NOT NULL DEFAULT '{}', expires float8,
  PRIMARY KEY (scope, id));
CREATE INDEX IF NOT EXISTS conv_meta_updated ON {s}.conv_meta (updated);
CREATE TABLE IF NOT EXISTS {s}.conv_turns (scope text NOT NULL, id text NOT NULL,
  seq int NOT NULL, message jsonb NOT NULL, PRIMARY KEY (scope, id, seq));
"""

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(db, schema=schema)
        self._clock = clock

    async def _drop(self, conn: Any, scope: str, conversation: str, *,
                    expired_only: bool = False) -> bool:
        cond = " AND expires <= %s" if expired_only else ""
        args: tuple[Any, ...] = (scope, conversation, self._clock()) if expired_only else (
            scope, conversation)
        cur = await conn.execute(f"DELETE FROM {self._s}.conv_meta WHERE scope = %s AND id = %s"
                                 f"{cond}", args)
        if cur.rowcount or not expired_only:
            await conn.execute(f"DELETE FROM {self._s}.conv_turns WHERE scope = %s AND id = %s",
                               (scope, conversation))
        return bool(cur.rowcount)

    async def append(self, scope: str, conversation: str, messages: Sequence[dict[str, Any]],
                     *, ttl: float | None = None,
                     metadata: dict[str, Any] | None = None) -> int:
        now = self._clock()
        n = len(messages)
        async with self._conn() as conn, conn.transaction():
            await self._drop(conn, scope, conversation, expired_only=True)
            cur = await conn.execute(
                f"INSERT INTO {self._s}.conv_meta AS m (scope, id, created, updated, turns, "
                "metadata, expires) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) "
                "ON CONFLICT (scope, id) DO UPDATE SET updated = excluded.updated, "
                "turns = m.turns + excluded.turns, metadata = m.metadata || excluded.metadata, "
                "expires = excluded.expires RETURNING turns",
                (scope, conversation, now, now, n, json.dumps(metadata or {}),
                 now + ttl if ttl else None))
            row = await cur.fetchone()
            assert row is not None
            total = int(row[0])
            if n:
                first = total - n
                async with conn.cursor() as c:
                    await c.executemany(
                        f"INSERT INTO {self._s}.conv_turns (scope, id, seq, message) "
                        "VALUES (%s, %s, %s, %s::jsonb)",
                        [(scope, conversation, first + i, json.dumps(m))
                         for i, m in enumerate(messages)])
            return total

    def _live(self) -> str:
        return "(expires IS NULL OR expires > %s)"

    async def history(self, scope: str, conversation: str, *, start: int = 0,
                      limit: int | None = None) -> list[dict[str, Any]]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT t.message FROM {self._s}.conv_turns t JOIN {self._s}.conv_meta m "
                "USING (scope, id) WHERE t.scope = %s AND t.id = %s AND t.seq >= %s AND "
                f"(m.expires IS NULL OR m.expires > %s) ORDER BY t.seq",
                (scope, conversation, start, self._clock()))
            rows = [r[0] for r in await cur.fetchall()]
        return rows[-limit:] if limit else rows

    async def info(self, scope: str, conversation: str) -> ConversationInfo | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_COLS} FROM {self._s}.conv_meta WHERE scope = %s AND id = %s AND "
                f"{self._live()}", (scope, conversation, self._clock()))
            row = await cur.fetchone()
        return _info(row) if row is not None else None

    async def list(self, scope: str, *, limit: int = 100) -> list[ConversationInfo]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_COLS} FROM {self._s}.conv_meta WHERE scope = %s AND {self._live()} "
                "ORDER BY updated DESC LIMIT %s", (scope, self._clock(), limit))
            return [_info(r) for r in await cur.fetchall()]

    async def set_summary(self, scope: str, conversation: str, summary: str,
                          summarised: int) -> None:
        async with self._conn() as conn:
            await conn.execute(f"UPDATE {self._s}.conv_meta SET summary = %s, summarised = %s "
                               "WHERE scope = %s AND id = %s",
                               (summary, summarised, scope, conversation))

    async def delete(self, scope: str, conversation: str) -> bool:
        live = await self.info(scope, conversation) is not None
        async with self._conn() as conn, conn.transaction():
            await self._drop(conn, scope, conversation)
        return live

    async def delete_before(self, ts: float, limit: int) -> int:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                f"DELETE FROM {self._s}.conv_meta WHERE (scope, id) IN (SELECT scope, id FROM "
                f"{self._s}.conv_meta WHERE updated < %s OR expires <= %s LIMIT %s) "
                "RETURNING scope, id", (ts, self._clock(), limit))
            gone = await cur.fetchall()
            for scope, conv in gone:
                await conn.execute(f"DELETE FROM {self._s}.conv_turns WHERE scope = %s AND "
                                   "id = %s", (scope, conv))
        return len(gone)
