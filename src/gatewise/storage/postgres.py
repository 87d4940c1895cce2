"""PostgreSQL stores, for many replicas sharing one database: ledger, counters (for
deployments without Redis), key-value and conversations. Governance is in
`postgres_governance.py`; both share `PgDatabase` (one pool per process).

Tables live in a configurable schema (default `gatewise`) and are created on first use
(`CREATE … IF NOT EXISTS` under an advisory lock, so replicas starting together don't race).
Nothing connects at construction. Time that must agree across replicas (counter periods, KV
expiry) is the database's clock, never the replica's.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from gatewise.errors import InvalidRequestError
from gatewise.storage.base import (
    Reservation,
    UsageGroup,
    UsageRecord,
    UsageRow,
    WindowResult,
    hit_in_turn,
)
from gatewise.storage.usage import LEDGER_COLUMNS, check_groups, encode_records, where_clause

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_NOW = "extract(epoch from clock_timestamp())"


class _NeverRaised(Exception):
    """Stands in for psycopg's DataError until the pool (and psycopg) is loaded."""


class PgDatabase:
    """A lazily opened connection pool plus the set of DDL blocks already applied."""

    def __init__(self, url: str, *, schema: str = "gatewise", min_size: int = 1,
                 max_size: int = 10) -> None:
        if not _IDENT.match(schema):
            raise ValueError(f"invalid PostgreSQL schema name {schema!r}")
        self.schema = schema
        self._url = url
        self._min, self._max = min_size, max_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._lock = asyncio.Lock()
        self._ready: set[str] = set()
        # psycopg's DataError, imported with the pool (psycopg is an optional extra).
        self._data_error: type[Exception] = _NeverRaised

    async def _open(self) -> AsyncConnectionPool[Any]:
        async with self._lock:
            if self._pool is None:
                from psycopg import DataError
                from psycopg_pool import AsyncConnectionPool

                self._data_error = DataError
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self._url, min_size=self._min, max_size=self._max, open=False,
                    kwargs={"autocommit": True}, name=f"gatewise-{self.schema}")
                try:
                    await pool.open(wait=True)
                except BaseException:
                    # Unreachable, or the caller gave up (a health probe's timeout): a pool
                    # left open would keep reconnecting in the background, one per attempt.
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def _ensure(self, name: str, ddl: str) -> None:
        pool = self._pool or await self._open()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                               (f"gatewise-ddl:{self.schema}",))
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(ddl.replace("{s}", f'"{self.schema}"').encode())
        self._ready.add(name)

    @asynccontextmanager
    async def connect(self, name: str, ddl: str) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled autocommit connection, after `ddl` (known as `name`) has been applied.

        A value PostgreSQL cannot take (a NUL byte in text, a number out of a column's range,
        a negative LIMIT: SQLSTATE class 22, psycopg's `DataError`) came from the caller's
        input, so it is raised as an `InvalidRequestError` (a 400), not left to become a
        500. The edges validate first; this is the backstop. The message names neither the
        value nor the SQL."""
        if name not in self._ready:
            await self._ensure(name, ddl)
        assert self._pool is not None
        async with self._pool.connection() as conn:
            try:
                yield conn
            except self._data_error as exc:
                state = getattr(exc, "sqlstate", None) or "22000"
                raise InvalidRequestError(
                    "a value in the request cannot be stored: out of range, or containing a "
                    f"character the database does not accept (SQLSTATE {state})",
                    code="invalid_value") from None

    @property
    def url(self) -> str:
        """For sessions the pool must not hand out: a LISTEN is session state
        (`pubsub_postgres.py`)."""
        return self._url

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled autocommit connection for statements that touch no table (`pg_notify`)."""
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._ready.clear()


class _PgStore:
    _name = ""
    _ddl = ""

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise") -> None:
        self._owned = isinstance(db, str)
        self._db = PgDatabase(db, schema=schema) if isinstance(db, str) else db
        self._s = f'"{self._db.schema}"'

    def _conn(self) -> AbstractAsyncContextManager[AsyncConnection[Any]]:
        return self._db.connect(self._name, self._ddl)

    async def aclose(self) -> None:
        """Closes the pool only if this store opened it (a shared one belongs to its owner)."""
        if self._owned:
            await self._db.close()


class PostgresKV(_PgStore):
    _name = "kv"
    _ddl = ("CREATE TABLE IF NOT EXISTS {s}.kv (k text PRIMARY KEY, v bytea NOT NULL, "
            "expires float8);"
            "CREATE TABLE IF NOT EXISTS {s}.kv_set (k text NOT NULL, m text NOT NULL, "
            "expires float8, PRIMARY KEY (k, m));"
            "CREATE TABLE IF NOT EXISTS {s}.kv_field (k text NOT NULL, f text NOT NULL, "
            "v float8 NOT NULL, PRIMARY KEY (k, f))")
    _tables = ("kv", "kv_set", "kv_field")

    async def get(self, key: str) -> bytes | None:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT v, expires <= {_NOW} FROM {self._s}.kv WHERE k = %s", (key,))).fetchone()
            if row is None:
                return None
            if row[1]:
                await conn.execute(f"DELETE FROM {self._s}.kv WHERE k = %s AND expires <= {_NOW}",
                                   (key,))
                return None
            return bytes(row[0])

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        async with self._conn() as conn:
            await conn.execute(
                f"INSERT INTO {self._s}.kv (k, v, expires) VALUES (%s, %s, {_NOW} + %s) "
                "ON CONFLICT (k) DO UPDATE SET v = excluded.v, expires = excluded.expires",
                (key, value, ttl))

    async def delete(self, key: str) -> bool:
        async with self._conn() as conn:
            n = 0
            for t in self._tables:
                cur = await conn.execute(f"DELETE FROM {self._s}.{t} WHERE k = %s", (key,))
                n += cur.rowcount
            return n > 0

    async def delete_prefix(self, prefix: str) -> int:
        async with self._conn() as conn:
            n = 0
            for t in self._tables:
                cur = await conn.execute(
                    f"DELETE FROM {self._s}.{t} WHERE starts_with(k, %s)", (prefix,))
                n += cur.rowcount
            return n

    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        s = self._s
        async with self._conn() as conn, conn.transaction():
            # One set's rows are changed under one advisory lock, so two replicas adding to
            # the same set agree on its expiry.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"kv_set:{key}",))
            await conn.execute(f"DELETE FROM {s}.kv_set WHERE k = %s AND expires <= {_NOW}",
                               (key,))
            if ttl is None:
                await conn.execute(f"UPDATE {s}.kv_set SET expires = NULL WHERE k = %s", (key,))
                expires = None
            else:
                row = await (await conn.execute(
                    f"SELECT expires, {_NOW} + %s FROM {s}.kv_set WHERE k = %s LIMIT 1",
                    (ttl, key))).fetchone()
                if row is None:
                    row = await (await conn.execute(f"SELECT NULL::float8, {_NOW} + %s",
                                                    (ttl,))).fetchone()
                    assert row is not None
                    expires = row[1]
                else:
                    expires = None if row[0] is None else max(row[0], row[1])
                await conn.execute(f"UPDATE {s}.kv_set SET expires = %s WHERE k = %s",
                                   (expires, key))
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO {s}.kv_set (k, m, expires) VALUES (%s, %s, %s) "
                    "ON CONFLICT (k, m) DO NOTHING", [(key, m, expires) for m in members])

    async def members(self, key: str) -> list[str]:
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT m FROM {self._s}.kv_set WHERE k = %s AND (expires IS NULL OR "
                f"expires > {_NOW})", (key,))).fetchall()
            return [r[0] for r in rows]

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        if not deltas:
            return
        async with self._conn() as conn, conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO {self._s}.kv_field (k, f, v) VALUES (%s, %s, %s) "
                f"ON CONFLICT (k, f) DO UPDATE SET v = {self._s}.kv_field.v + excluded.v",
                [(key, f, float(d)) for f, d in deltas.items()])

    async def fields(self, key: str) -> dict[str, float]:
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT f, v FROM {self._s}.kv_field WHERE k = %s", (key,))).fetchall()
            return {f: float(v) for f, v in rows}

    async def trim(self, prefix: str, keep: int) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"DELETE FROM {self._s}.kv WHERE k IN (SELECT k FROM {self._s}.kv "
                f"WHERE starts_with(k, %s) ORDER BY expires DESC NULLS FIRST, k OFFSET %s)",
                (prefix, keep))
            return cur.rowcount

    async def purge_expired(self) -> int:
        async with self._conn() as conn:
            n = 0
            for t in ("kv", "kv_set"):
                cur = await conn.execute(f"DELETE FROM {self._s}.{t} WHERE expires <= {_NOW}")
                n += cur.rowcount
            return n


class PostgresCounters(_PgStore):
    """Counters with row locks, for deployments without Redis. Each operation is one call to
    a PL/pgSQL function (one round trip, one transaction): the counter's row is locked
    (`FOR UPDATE`) before its reservations, always in that order, so operations on one key
    serialise and never deadlock. Reservations are rows, so settle/release are idempotent
    and an expired period drops them."""

    _name = "counters"
    _ddl = f"""
CREATE TABLE IF NOT EXISTS {{s}}.counters (k text PRIMARY KEY, total float8 NOT NULL,
  expires float8);
CREATE TABLE IF NOT EXISTS {{s}}.counter_res (id text PRIMARY KEY, k text NOT NULL,
  amount float8 NOT NULL);
CREATE INDEX IF NOT EXISTS counter_res_k ON {{s}}.counter_res (k);
CREATE OR REPLACE FUNCTION {{s}}.gw_reserve(p_k text, p_amount float8, p_limit float8,
  p_ttl float8, p_id text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE v_total float8; v_exp float8; v_now float8 := {_NOW};
BEGIN
  INSERT INTO {{s}}.counters (k, total, expires)
    VALUES (p_k, 0, CASE WHEN p_ttl > 0 THEN v_now + p_ttl END) ON CONFLICT (k) DO NOTHING;
  SELECT total, expires INTO v_total, v_exp FROM {{s}}.counters WHERE k = p_k FOR UPDATE;
  IF v_exp IS NOT NULL AND v_exp <= v_now THEN
    DELETE FROM {{s}}.counter_res WHERE k = p_k;
    v_total := 0;
    UPDATE {{s}}.counters SET total = 0, expires = CASE WHEN p_ttl > 0 THEN v_now + p_ttl END
      WHERE k = p_k;
  END IF;
  IF v_total + p_amount > p_limit THEN RETURN NULL; END IF;
  UPDATE {{s}}.counters SET total = total + p_amount WHERE k = p_k RETURNING total INTO v_total;
  INSERT INTO {{s}}.counter_res (id, k, amount) VALUES (p_id, p_k, p_amount);
  RETURN v_total;
END $$;
CREATE OR REPLACE FUNCTION {{s}}.gw_settle(p_k text, p_id text, p_actual float8)
  RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE v_total float8; v_exp float8; v_amount float8;
BEGIN
  SELECT total, expires INTO v_total, v_exp FROM {{s}}.counters WHERE k = p_k FOR UPDATE;
  IF NOT FOUND OR (v_exp IS NOT NULL AND v_exp <= {_NOW}) THEN RETURN 0; END IF;
  DELETE FROM {{s}}.counter_res WHERE id = p_id AND k = p_k RETURNING amount INTO v_amount;
  IF NOT FOUND THEN RETURN v_total; END IF;
  UPDATE {{s}}.counters SET total = total + p_actual - v_amount WHERE k = p_k
    RETURNING total INTO v_total;
  RETURN v_total;
END $$;
"""

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        rid = uuid.uuid4().hex
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT {self._s}.gw_reserve(%s, %s, %s, %s, %s)",
                (key, float(amount), float(limit), float(ttl or 0), rid))).fetchone()
        return None if row is None or row[0] is None else Reservation(key, amount, rid)

    async def settle(self, reservation: Reservation, actual: float) -> float:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT {self._s}.gw_settle(%s, %s, %s)",
                (reservation.key, reservation.id, float(actual)))).fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0

    async def release(self, reservation: Reservation) -> float:
        return await self.settle(reservation, 0.0)

    async def value(self, key: str) -> float:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT total FROM {self._s}.counters WHERE k = %s AND "
                f"(expires IS NULL OR expires > {_NOW})", (key,))).fetchone()
        return float(row[0]) if row else 0.0


_PG_TYPES = {"ts": "float8", "prompt_tokens": "int8", "completion_tokens": "int8",
             "cached_tokens": "int8", "cost_usd": "float8", "latency_ms": "float8",
             "ttft_ms": "float8"}
_PG_GROUP = {"team": "COALESCE(team, '')", "key": "COALESCE(key_id, '')",
             "model": "COALESCE(alias, '')", "deployment": "COALESCE(deployment, '')",
             "user": "COALESCE(\"user\", '')", "outcome": "COALESCE(outcome, '')",
             "day": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}
_COLS = ", ".join(f'"{c}"' for c in LEDGER_COLUMNS)


class PostgresLedger(_PgStore):
    """The usage ledger: batched inserts that skip request ids already stored; aggregates
    computed in SQL. A batch travels as one parameter, a JSON array of records
    (`encode_records`, or the journal's own lines joined) that `json_populate_recordset`
    turns into rows on the server: the commit's share of the event loop is one string, not
    a Python tuple and ~16 driver-adapted values per record (milliseconds per batch)."""

    _name = "ledger"
    _ddl = ("CREATE TABLE IF NOT EXISTS {s}.usage ("
            + ", ".join(f'"{c}" {_PG_TYPES.get(c, "text")}'
                        + (" PRIMARY KEY" if c == "request_id" else "") for c in LEDGER_COLUMNS)
            + ", extra jsonb NOT NULL DEFAULT '{}');"
            "CREATE INDEX IF NOT EXISTS usage_ts ON {s}.usage (ts);"
            "CREATE INDEX IF NOT EXISTS usage_tenant_ts ON {s}.usage (tenant, ts);")

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise", batch: int = 1000,
                 delete_batch: int = 5000) -> None:
        super().__init__(db, schema=schema)
        self._batch = batch
        self._delete_batch = delete_batch
        self._insert = (f"INSERT INTO {self._s}.usage ({_COLS}, extra) "
                        f"SELECT {_COLS}, extra FROM json_populate_recordset("
                        f"NULL::{self._s}.usage, %s::json) "
                        "ON CONFLICT (request_id) DO NOTHING")

    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        whole = encoded is not None and len(records) <= self._batch
        new = 0
        async with self._conn() as conn:
            for i in range(0, len(records), self._batch):
                batch = encoded if whole and encoded is not None else encode_records(
                    records[i:i + self._batch])
                cur = await conn.execute(self._insert, (batch.decode(),))
                new += max(0, cur.rowcount)
        return new

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000,
                    team: str | None = None, key_id: str | None = None,
                    alias: str | None = None) -> list[UsageRecord]:
        where, args = where_clause("%s", tenant=tenant, since=since, until=until, team=team,
                                   key_id=key_id, alias=alias)
        args.append(limit)
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT {_COLS}, extra FROM {self._s}.usage{where} ORDER BY ts LIMIT %s",
                args)).fetchall()
        return [UsageRecord(**dict(zip(LEDGER_COLUMNS, row[:-1], strict=True)), extra=row[-1])
                for row in rows]

    async def aggregate(self, group_by: Sequence[UsageGroup], *, since: float | None = None,
                        until: float | None = None, team: str | None = None,
                        key_id: str | None = None) -> list[UsageRow]:
        check_groups(group_by)
        keys = ", ".join(_PG_GROUP[g] for g in group_by)
        where, args = where_clause("%s", since=since, until=until, team=team, key_id=key_id)
        sql = (f"SELECT {keys + ', ' if keys else ''}COUNT(*), SUM(prompt_tokens), "
               f"SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd) "
               f"FROM {self._s}.usage{where}")
        if keys:
            sql += f" GROUP BY {keys} ORDER BY {keys}"
        n = len(group_by)
        async with self._conn() as conn:
            rows = await (await conn.execute(sql, args)).fetchall()
        return [UsageRow(dict(zip(group_by, row[:n], strict=True)), int(row[n]),
                         int(row[n + 1] or 0), int(row[n + 2] or 0), int(row[n + 3] or 0),
                         float(row[n + 4] or 0.0))
                for row in rows if row[n]]

    async def delete_before(self, ts: float, limit: int) -> int:
        """Deletes in batches of `delete_batch` (short transactions, short locks)."""
        deleted = 0
        async with self._conn() as conn:
            while deleted < limit:
                n = min(self._delete_batch, limit - deleted)
                cur = await conn.execute(
                    f"DELETE FROM {self._s}.usage WHERE request_id = ANY(ARRAY("
                    f"SELECT request_id FROM {self._s}.usage WHERE ts < %s ORDER BY ts LIMIT %s))",
                    (ts, n))
                deleted += cur.rowcount
                if cur.rowcount < n:
                    break
        return deleted


class PostgresWindow(_PgStore):
    """Sliding windows for deployments without Redis: the same sub-bucket scheme as
    `RedisWindow` (`buckets` per window, error ≤ one bucket, on the strict side), one
    PL/pgSQL call per hit, serialised per key by a transaction advisory lock. Time is the
    database's clock. Buckets of keys nobody hits again are swept now and then."""

    _name = "windows"
    _ddl = f"""
CREATE TABLE IF NOT EXISTS {{s}}.window_buckets (k text NOT NULL, bucket int8 NOT NULL,
  amount float8 NOT NULL, until float8 NOT NULL, PRIMARY KEY (k, bucket));
CREATE INDEX IF NOT EXISTS window_buckets_until ON {{s}}.window_buckets (until);
CREATE OR REPLACE FUNCTION {{s}}.gw_hit(p_k text, p_amount float8, p_limit float8,
  p_window float8, p_buckets int, p_force bool,
  OUT allowed bool, OUT used float8, OUT reset float8) LANGUAGE plpgsql AS $$
DECLARE v_now float8 := {_NOW}; v_size float8 := p_window / p_buckets; v_cur int8;
  v_min int8; v_need float8; v_left float8; r record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('gatewise-window:' || p_k));
  IF random() < 0.001 THEN DELETE FROM {{s}}.window_buckets WHERE until < v_now; END IF;
  v_cur := floor(v_now / v_size);
  v_min := floor((v_now - p_window) / v_size);
  DELETE FROM {{s}}.window_buckets WHERE k = p_k AND bucket < v_min;
  SELECT COALESCE(SUM(amount), 0) INTO used FROM {{s}}.window_buckets WHERE k = p_k;
  allowed := p_force OR used + p_amount <= p_limit;
  IF allowed THEN
    INSERT INTO {{s}}.window_buckets AS w (k, bucket, amount, until)
      VALUES (p_k, v_cur, p_amount, v_now + p_window + v_size)
      ON CONFLICT (k, bucket) DO UPDATE SET amount = w.amount + excluded.amount;
    used := used + p_amount;
  END IF;
  v_need := LEAST(CASE WHEN allowed THEN 1 ELSE p_amount END, p_limit);
  reset := 0;
  IF used + v_need > p_limit THEN
    reset := p_window;
    v_left := used;
    FOR r IN SELECT bucket, amount FROM {{s}}.window_buckets WHERE k = p_k ORDER BY bucket LOOP
      v_left := v_left - r.amount;
      IF v_left + v_need <= p_limit THEN
        reset := GREATEST(0, (r.bucket + 1) * v_size + p_window - v_now);
        EXIT;
      END IF;
    END LOOP;
  END IF;
END $$;
"""

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise", buckets: int = 20) -> None:
        super().__init__(db, schema=schema)
        self._buckets = buckets

    async def _run(self, key: str, amount: float, limit: float, window_s: float,
                   force: bool) -> WindowResult:
        async with self._conn() as conn:
            row = await (await conn.execute(
                f"SELECT * FROM {self._s}.gw_hit(%s, %s, %s, %s, %s, %s)",
                (key, float(amount), float(limit), float(window_s), self._buckets, force))).fetchone()
        assert row is not None
        return WindowResult(bool(row[0]), float(row[1]), limit, float(row[2]))

    async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
        return await self._run(key, amount, limit, window_s, False)

    async def hit_many(self, hits: Sequence[tuple[str, float, float]],
                       window_s: float) -> list[WindowResult]:
        return await hit_in_turn(self, hits, window_s)

    async def add(self, key: str, amount: float, window_s: float) -> None:
        await self._run(key, amount, 1e300, window_s, True)
