"""SQLite stores: the embedded default that survives restarts, with no server to run.

One connection per store, used from a single worker thread (sqlite3 objects are bound to their
thread), so queries never block the event loop and writes are serialised, which also makes
`reserve` atomic. WAL mode lets readers in other processes look at the same file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gatewise.storage.base import Reservation, UsageRecord

T = TypeVar("T")


class _Db:
    def __init__(self, path: str | Path, schema: str) -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatewise-sqlite")
        self._schema = schema
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._connect()))

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self.run(shut)
        self._pool.shutdown(wait=True)


class SQLiteKV:
    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL, "
                             "expires REAL)")

    async def get(self, key: str) -> bytes | None:
        def q(c: sqlite3.Connection) -> bytes | None:
            row = c.execute("SELECT v, expires FROM kv WHERE k = ?", (key,)).fetchone()
            if row is None:
                return None
            if row[1] is not None and row[1] <= time.time():
                c.execute("DELETE FROM kv WHERE k = ?", (key,))
                return None
            return bytes(row[0])

        return await self._db.run(q)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        expires = time.time() + ttl if ttl is not None else None
        await self._db.run(lambda c: c.execute(
            "INSERT INTO kv (k, v, expires) VALUES (?, ?, ?) ON CONFLICT(k) DO UPDATE SET "
            "v = excluded.v, expires = excluded.expires", (key, value, expires)))

    async def delete(self, key: str) -> bool:
        return await self._db.run(
            lambda c: c.execute("DELETE FROM kv WHERE k = ?", (key,)).rowcount > 0)

    async def delete_prefix(self, prefix: str) -> int:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return await self._db.run(lambda c: c.execute(
            "DELETE FROM kv WHERE k LIKE ? ESCAPE '\\'", (escaped + "%",)).rowcount)

    async def aclose(self) -> None:
        await self._db.close()


class SQLiteCounters:
    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, "CREATE TABLE IF NOT EXISTS counters (k TEXT PRIMARY KEY, "
                             "total REAL NOT NULL, expires REAL)")

    @staticmethod
    def _current(c: sqlite3.Connection, key: str) -> float:
        row = c.execute("SELECT total, expires FROM counters WHERE k = ?", (key,)).fetchone()
        if row is None:
            return 0.0
        if row[1] is not None and row[1] <= time.time():
            c.execute("DELETE FROM counters WHERE k = ?", (key,))
            return 0.0
        return float(row[0])

    @staticmethod
    def _add(c: sqlite3.Connection, key: str, delta: float, ttl: float | None) -> float:
        expires = time.time() + ttl if ttl else None
        c.execute("INSERT INTO counters (k, total, expires) VALUES (?, ?, ?) ON CONFLICT(k) DO "
                  "UPDATE SET total = total + excluded.total", (key, delta, expires))
        return SQLiteCounters._current(c, key)

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        def q(c: sqlite3.Connection) -> Reservation | None:
            c.execute("BEGIN IMMEDIATE")
            try:
                if self._current(c, key) + amount > limit:
                    return None
                self._add(c, key, amount, ttl)
                return Reservation(key, amount, uuid.uuid4().hex)
            finally:
                c.execute("COMMIT")

        return await self._db.run(q)

    async def settle(self, reservation: Reservation, actual: float) -> float:
        return await self._db.run(
            lambda c: self._add(c, reservation.key, actual - reservation.amount, None))

    async def release(self, reservation: Reservation) -> float:
        return await self._db.run(lambda c: self._add(c, reservation.key, -reservation.amount, None))

    async def value(self, key: str) -> float:
        return await self._db.run(lambda c: self._current(c, key))

    async def aclose(self) -> None:
        await self._db.close()


_LEDGER_COLUMNS = ("request_id", "ts", "tenant", "alias", "deployment", "outcome",
                   "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
                   "latency_ms", "ttft_ms", "key_id", "team", "user")


class SQLiteLedger:
    def __init__(self, path: str | Path) -> None:
        cols = ", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'request_id' else ''}"
                         for c in _LEDGER_COLUMNS)
        self._db = _Db(path, f"CREATE TABLE IF NOT EXISTS usage ({cols}, extra TEXT);"
                             "CREATE INDEX IF NOT EXISTS usage_tenant_ts ON usage (tenant, ts);")

    async def append(self, records: Sequence[UsageRecord]) -> int:
        rows = [(*(getattr(r, c) for c in _LEDGER_COLUMNS), json.dumps(r.extra))
                for r in records]
        marks = ", ".join("?" * (len(_LEDGER_COLUMNS) + 1))

        def q(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.execute("BEGIN")
            c.executemany(f"INSERT OR IGNORE INTO usage VALUES ({marks})", rows)
            c.execute("COMMIT")
            return c.total_changes - before

        return await self._db.run(q)

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000) -> list[UsageRecord]:
        where, args = [], []
        for cond, value in (("tenant = ?", tenant), ("ts >= ?", since), ("ts < ?", until)):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = "SELECT * FROM usage" + (" WHERE " + " AND ".join(where) if where else "") + \
            " ORDER BY ts LIMIT ?"
        args.append(limit)

        def q(c: sqlite3.Connection) -> list[UsageRecord]:
            out = []
            for row in c.execute(sql, args).fetchall():
                data: dict[str, Any] = dict(zip(_LEDGER_COLUMNS, row[:-1], strict=True))
                out.append(UsageRecord(**data, extra=json.loads(row[-1] or "{}")))
            return out

        return await self._db.run(q)

    async def aclose(self) -> None:
        await self._db.close()


class SQLiteConversations:
    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, "CREATE TABLE IF NOT EXISTS turns (conv TEXT NOT NULL, seq INTEGER "
                             "PRIMARY KEY AUTOINCREMENT, message TEXT NOT NULL);"
                             "CREATE INDEX IF NOT EXISTS turns_conv ON turns (conv, seq);")

    async def append(self, conversation: str, messages: Sequence[dict[str, Any]]) -> None:
        rows = [(conversation, json.dumps(m)) for m in messages]

        def q(c: sqlite3.Connection) -> None:
            c.execute("BEGIN")
            c.executemany("INSERT INTO turns (conv, message) VALUES (?, ?)", rows)
            c.execute("COMMIT")

        await self._db.run(q)

    async def history(self, conversation: str, limit: int | None = None) -> list[dict[str, Any]]:
        def q(c: sqlite3.Connection) -> list[dict[str, Any]]:
            if limit:
                rows = c.execute("SELECT message FROM (SELECT seq, message FROM turns WHERE "
                                 "conv = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                                 (conversation, limit)).fetchall()
            else:
                rows = c.execute("SELECT message FROM turns WHERE conv = ? ORDER BY seq",
                                 (conversation,)).fetchall()
            return [json.loads(r[0]) for r in rows]

        return await self._db.run(q)

    async def clear(self, conversation: str) -> None:
        await self._db.run(lambda c: c.execute("DELETE FROM turns WHERE conv = ?", (conversation,)))

    async def aclose(self) -> None:
        await self._db.close()
