"""`SQLiteLeases`: leases in a SQLite file, for processes sharing one state directory.

One row per lease; taking or renewing it is a single upsert whose `WHERE` lets it through
only when the row is expired or already the caller's, so two processes racing for a lease
are serialised by SQLite's write lock and exactly one of them changes the row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from gatewise.storage.sqlite import _Db

_SCHEMA = ("CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
           "expires REAL NOT NULL)")


class SQLiteLeases:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = _Db(path, _SCHEMA)
        self._clock = clock

    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        now = self._clock()

        def q(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires = excluded.expires WHERE leases.expires <= ? OR leases.holder = "
                "excluded.holder", (name, holder, now + ttl_s, now))
            return cur.rowcount == 1

        return await self._db.run(q)

    async def release(self, name: str, holder: str) -> bool:
        now = self._clock()

        def q(c: sqlite3.Connection) -> bool:
            row = c.execute("DELETE FROM leases WHERE name = ? AND holder = ? RETURNING expires",
                            (name, holder)).fetchone()
            return row is not None and row[0] > now

        return await self._db.run(q)

    async def holder(self, name: str) -> str | None:
        now = self._clock()

        def q(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT holder FROM leases WHERE name = ? AND expires > ?",
                            (name, now)).fetchone()
            return str(row[0]) if row is not None else None

        return await self._db.run(q)

    async def ping(self) -> None:
        """The file opens and answers a query (the health check's SQLite probe)."""
        await self._db.run(lambda c: c.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        await self._db.close()
