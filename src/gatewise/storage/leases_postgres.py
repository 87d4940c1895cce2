"""`PostgresLeases`: leases in the shared database, timed by the database's clock.

Taking or renewing a lease is one `INSERT … ON CONFLICT DO UPDATE … WHERE` that only
changes the row when it expired or is the caller's own; `RETURNING` says whether it did.
Concurrent callers are serialised on the row, so exactly one wins a free lease.
"""

from __future__ import annotations

from gatewise.storage.postgres import _NOW, _PgStore


class PostgresLeases(_PgStore):
    _name = "leases"
    _ddl = ("CREATE TABLE IF NOT EXISTS {s}.leases (name text PRIMARY KEY, holder text NOT NULL, "
            "expires float8 NOT NULL)")

    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        s = self._s
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"INSERT INTO {s}.leases (name, holder, expires) VALUES (%s, %s, {_NOW} + %s) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                f"expires = excluded.expires WHERE {s}.leases.expires <= {_NOW} "
                f"OR {s}.leases.holder = excluded.holder RETURNING holder",
                (name, holder, ttl_s))).fetchone()
            return row is not None

    async def release(self, name: str, holder: str) -> bool:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"DELETE FROM {self._s}.leases WHERE name = %s AND holder = %s "
                f"RETURNING expires > {_NOW}", (name, holder))).fetchone()
            return bool(row is not None and row[0])

    async def holder(self, name: str) -> str | None:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT holder FROM {self._s}.leases WHERE name = %s AND expires > {_NOW}",
                (name,))).fetchone()
            return str(row[0]) if row is not None else None

    async def ping(self) -> None:
        """The database answers `SELECT 1` (the health check's PostgreSQL probe)."""
        async with self._conn() as conn:
            await conn.execute("SELECT 1")
