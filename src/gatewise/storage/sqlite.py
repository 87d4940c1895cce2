"""SQLite stores: the embedded default that survives restarts, with no server to run.

One connection per store, used from a single worker thread (sqlite3 objects are bound to their
thread), so queries never block the event loop and writes are serialised, which also makes
`reserve` atomic. WAL mode lets readers in other processes look at the same file; writes that
must be atomic across processes (reserve, a window hit) run in `BEGIN IMMEDIATE`.
Nothing touches the disk until the first call. The governance store is in
`sqlite_governance.py`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from gatewise.storage.base import (
    Reservation,
    UsageGroup,
    UsageRecord,
    UsageRow,
    WindowResult,
    hit_in_turn,
)
from gatewise.storage.memory import reset_after
from gatewise.storage.usage import LEDGER_COLUMNS, check_groups, ledger_rows, where_clause

T = TypeVar("T")


@contextmanager
def transaction(c: sqlite3.Connection, *, immediate: bool = True) -> Iterator[None]:
    """The block as one transaction on `c`: committed when it ends (a `return` inside it
    included), rolled back when it raises, a failed COMMIT too, so the connection is never
    left inside a transaction for the next caller. `immediate` (BEGIN IMMEDIATE) takes the
    write lock first, so a read-then-write cannot be overtaken by another process."""
    c.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
        c.execute("COMMIT")
    except BaseException:
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise


class _Db:
    def __init__(self, path: str | Path, schema: str) -> None:
        self._path = str(path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatewise-sqlite")
        self._schema = schema
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self._path != ":memory:":  # here, not in __init__: construction does no I/O
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
            for attempt in range(100):
                # Two processes (or stores) opening a new file at once can find it locked while
                # the other switches it to WAL; that lock skips the busy timeout, so retry.
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.executescript(self._schema)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 99:
                        conn.close()
                        raise
                    time.sleep(0.02)
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
                             "expires REAL);"
                             "CREATE TABLE IF NOT EXISTS kv_set (k TEXT NOT NULL, m TEXT NOT NULL, "
                             "expires REAL, PRIMARY KEY (k, m));"
                             "CREATE TABLE IF NOT EXISTS kv_field (k TEXT NOT NULL, f TEXT NOT NULL,"
                             " v REAL NOT NULL, PRIMARY KEY (k, f))")

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
        def q(c: sqlite3.Connection) -> bool:
            return sum(c.execute(f"DELETE FROM {t} WHERE k = ?", (key,)).rowcount
                       for t in ("kv", "kv_set", "kv_field")) > 0

        return await self._db.run(q)

    async def delete_prefix(self, prefix: str) -> int:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

        def q(c: sqlite3.Connection) -> int:
            return sum(c.execute(f"DELETE FROM {t} WHERE k LIKE ? ESCAPE '\\'",
                                 (escaped + "%",)).rowcount for t in ("kv", "kv_set", "kv_field"))

        return await self._db.run(q)

    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        def q(c: sqlite3.Connection) -> None:
            now = time.time()
            with transaction(c):
                c.execute("DELETE FROM kv_set WHERE k = ? AND expires <= ?", (key, now))
                if ttl is None:
                    c.execute("UPDATE kv_set SET expires = NULL WHERE k = ?", (key,))
                    expires = None
                else:
                    row = c.execute("SELECT expires FROM kv_set WHERE k = ? LIMIT 1",
                                    (key,)).fetchone()
                    expires = now + ttl if row is None else \
                        None if row[0] is None else max(row[0], now + ttl)
                    c.execute("UPDATE kv_set SET expires = ? WHERE k = ?", (expires, key))
                c.executemany("INSERT OR IGNORE INTO kv_set (k, m, expires) VALUES (?, ?, ?)",
                              [(key, m, expires) for m in members])

        await self._db.run(q)

    async def members(self, key: str) -> list[str]:
        def q(c: sqlite3.Connection) -> list[str]:
            rows = c.execute("SELECT m FROM kv_set WHERE k = ? AND (expires IS NULL OR "
                             "expires > ?)", (key, time.time())).fetchall()
            return [r[0] for r in rows]

        return await self._db.run(q)

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        await self._db.run(lambda c: c.executemany(
            "INSERT INTO kv_field (k, f, v) VALUES (?, ?, ?) ON CONFLICT(k, f) DO UPDATE SET "
            "v = v + excluded.v", [(key, f, float(d)) for f, d in deltas.items()]))

    async def fields(self, key: str) -> dict[str, float]:
        def q(c: sqlite3.Connection) -> dict[str, float]:
            return {f: v for f, v in c.execute("SELECT f, v FROM kv_field WHERE k = ?", (key,))}

        return await self._db.run(q)

    async def trim(self, prefix: str, keep: int) -> int:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return await self._db.run(lambda c: c.execute(
            "DELETE FROM kv WHERE k IN (SELECT k FROM kv WHERE k LIKE ? ESCAPE '\\' "
            "ORDER BY COALESCE(expires, 1e308) DESC, k LIMIT -1 OFFSET ?)",
            (escaped + "%", keep)).rowcount)

    async def purge_expired(self) -> int:
        def q(c: sqlite3.Connection) -> int:
            now = time.time()
            return sum(c.execute(f"DELETE FROM {t} WHERE expires <= ?", (now,)).rowcount
                       for t in ("kv", "kv_set"))

        return await self._db.run(q)

    async def aclose(self) -> None:
        await self._db.close()


class SQLiteCounters:
    """Totals plus open reservations (so settle/release are idempotent and a period that
    expired drops its reservations)."""

    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, "CREATE TABLE IF NOT EXISTS counters (k TEXT PRIMARY KEY, "
                             "total REAL NOT NULL, expires REAL);"
                             "CREATE TABLE IF NOT EXISTS counter_res (id TEXT PRIMARY KEY, "
                             "k TEXT NOT NULL, amount REAL NOT NULL);"
                             "CREATE INDEX IF NOT EXISTS counter_res_k ON counter_res (k);")

    @staticmethod
    def _current(c: sqlite3.Connection, key: str) -> float | None:
        """The live total, None when the key is absent or its period expired (then dropped)."""
        row = c.execute("SELECT total, expires FROM counters WHERE k = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[1] is not None and row[1] <= time.time():
            c.execute("DELETE FROM counters WHERE k = ?", (key,))
            c.execute("DELETE FROM counter_res WHERE k = ?", (key,))
            return None
        return float(row[0])

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        def q(c: sqlite3.Connection) -> Reservation | None:
            c.execute("BEGIN IMMEDIATE")
            try:
                current = self._current(c, key)
                if (current or 0.0) + amount > limit:
                    return None
                if current is None:
                    c.execute("INSERT INTO counters (k, total, expires) VALUES (?, ?, ?)",
                              (key, amount, time.time() + ttl if ttl else None))
                else:
                    c.execute("UPDATE counters SET total = total + ? WHERE k = ?", (amount, key))
                rid = uuid.uuid4().hex
                c.execute("INSERT INTO counter_res (id, k, amount) VALUES (?, ?, ?)",
                          (rid, key, amount))
                return Reservation(key, amount, rid)
            finally:
                c.execute("COMMIT")

        return await self._db.run(q)

    async def _close(self, reservation: Reservation, actual: float) -> float:
        def q(c: sqlite3.Connection) -> float:
            c.execute("BEGIN IMMEDIATE")
            try:
                current = self._current(c, reservation.key)
                if current is None:
                    return 0.0
                row = c.execute("DELETE FROM counter_res WHERE id = ? RETURNING amount",
                                (reservation.id,)).fetchone()
                if row is None:
                    return current
                total = c.execute("UPDATE counters SET total = total + ? WHERE k = ? RETURNING total",
                                  (actual - float(row[0]), reservation.key)).fetchone()
                return float(total[0])
            finally:
                c.execute("COMMIT")

        return await self._db.run(q)

    async def settle(self, reservation: Reservation, actual: float) -> float:
        return await self._close(reservation, actual)

    async def release(self, reservation: Reservation) -> float:
        return await self._close(reservation, 0.0)

    async def value(self, key: str) -> float:
        return await self._db.run(lambda c: self._current(c, key) or 0.0)

    async def aclose(self) -> None:
        await self._db.close()


_ROWS_PER_INSERT = 60
# Ledger columns whole batches often leave None: key, team and user without virtual keys, the
# time to first token of answers that were not streamed.
_OFTEN_EMPTY = frozenset(("ttft_ms", "key_id", "team", "user"))


def _ledger_insert(records: Sequence[UsageRecord]) -> tuple[str, list[Any]]:
    """One multi-row INSERT of `records`, and its parameters. A column that every record
    leaves None is not named (SQLite stores NULL in it all the same): Python's sqlite3 binds a
    None through its adapter lookup, a failed attribute lookup that formats an AttributeError
    (~3,000 instructions), and a record made without a virtual key has four of them, 2% of the
    bare proxy path's CPU. Rows keep their order, so `OR IGNORE` keeps the same one of two
    records with the same id."""
    rows = ledger_rows(records)
    empty = {c for c in _OFTEN_EMPTY if all(getattr(r, c) is None for r in records)}
    names = [*LEDGER_COLUMNS, "extra"]
    if empty:
        keep = [i for i, c in enumerate(names) if c not in empty]
        names = [names[i] for i in keep]
        pick = itemgetter(*keep)
        rows = [pick(row) for row in rows]
    mark = "(" + ", ".join("?" * len(names)) + ")"
    columns = ", ".join(f'"{c}"' for c in names)
    return (f"INSERT OR IGNORE INTO usage ({columns}) VALUES " + ", ".join([mark] * len(rows)),
            list(chain.from_iterable(rows)))


class SQLiteLedger:
    def __init__(self, path: str | Path) -> None:
        cols = ", ".join(f"\"{c}\" {'TEXT PRIMARY KEY' if c == 'request_id' else ''}"
                         for c in LEDGER_COLUMNS)
        self._db = _Db(path, f"CREATE TABLE IF NOT EXISTS usage ({cols}, extra TEXT);"
                             "CREATE INDEX IF NOT EXISTS usage_tenant_ts ON usage (tenant, ts);"
                             "CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);")

    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        """One multi-row INSERT per `_ROWS_PER_INSERT` records, statements and parameters
        built here on the loop. Why not `executemany`: it takes the GIL back from the event
        loop after every row (SQLite runs each row's step with the GIL released), and a batch
        of 256 such hand-overs, each up to a thread switch, slowed every request in flight
        during a commit (the Redis cache hit's p99). One statement per 60 rows keeps the
        worker off the GIL while SQLite works, and under SQLite's oldest limit of 999
        parameters. Each statement's rows are built in a stretch of their own (the loop
        serves requests in between), so a commit holds the loop a quarter as long at a time.
        `encoded` is not used: SQLite taking a JSON batch apart itself (`json_each` +
        `json_extract` per column) costs three times the CPU of binding."""
        statements: list[tuple[str, list[Any]]] = []
        for i in range(0, len(records), _ROWS_PER_INSERT):
            if i:
                await asyncio.sleep(0)
            statements.append(_ledger_insert(records[i:i + _ROWS_PER_INSERT]))

        def q(c: sqlite3.Connection) -> int:
            before = c.total_changes
            with transaction(c, immediate=False):
                for sql, params in statements:
                    c.execute(sql, params)
            return c.total_changes - before

        return await self._db.run(q)

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000,
                    team: str | None = None, key_id: str | None = None,
                    alias: str | None = None) -> list[UsageRecord]:
        where, args = where_clause("?", tenant=tenant, since=since, until=until, team=team,
                                   key_id=key_id, alias=alias)
        sql = f"SELECT * FROM usage{where} ORDER BY ts LIMIT ?"
        args.append(limit)

        def q(c: sqlite3.Connection) -> list[UsageRecord]:
            out = []
            for row in c.execute(sql, args).fetchall():
                data: dict[str, Any] = dict(zip(LEDGER_COLUMNS, row[:-1], strict=True))
                out.append(UsageRecord(**data, extra=json.loads(row[-1] or "{}")))
            return out

        return await self._db.run(q)

    async def aggregate(self, group_by: Sequence[UsageGroup], *, since: float | None = None,
                        until: float | None = None, team: str | None = None,
                        key_id: str | None = None) -> list[UsageRow]:
        check_groups(group_by)
        exprs = [_SQLITE_GROUP[g] for g in group_by]
        where, args = where_clause("?", since=since, until=until, team=team, key_id=key_id)
        keys = ", ".join(exprs)
        select = (keys + ", " if keys else "") + (
            "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
            "SUM(cost_usd)")
        sql = f"SELECT {select} FROM usage{where}"
        if keys:
            sql += f" GROUP BY {keys} ORDER BY {keys}"
        n = len(group_by)

        def q(c: sqlite3.Connection) -> list[UsageRow]:
            return [UsageRow(dict(zip(group_by, row[:n], strict=True)), int(row[n]),
                             int(row[n + 1] or 0), int(row[n + 2] or 0), int(row[n + 3] or 0),
                             float(row[n + 4] or 0.0))
                    for row in c.execute(sql, args).fetchall() if row[n]]

        return await self._db.run(q)

    async def delete_before(self, ts: float, limit: int) -> int:
        return await self._db.run(lambda c: c.execute(
            "DELETE FROM usage WHERE request_id IN (SELECT request_id FROM usage WHERE ts < ? "
            "ORDER BY ts LIMIT ?)", (ts, limit)).rowcount)

    async def aclose(self) -> None:
        await self._db.close()


_SQLITE_GROUP = {"team": "COALESCE(team, '')", "key": "COALESCE(key_id, '')",
                 "model": "COALESCE(alias, '')", "deployment": "COALESCE(deployment, '')",
                 "user": "COALESCE(\"user\", '')", "outcome": "COALESCE(outcome, '')",
                 "day": "strftime('%Y-%m-%d', ts, 'unixepoch')"}


class SQLiteWindow:
    """Exact sliding windows: one row per hit, pruned as it slides out. `BEGIN IMMEDIATE`
    makes a hit atomic across processes sharing the file. Rows of keys nobody hits again are
    swept every `sweep_every` writes (each row carries the end of its window)."""

    def __init__(self, path: str | Path, *, sweep_every: int = 1000) -> None:
        self._db = _Db(path, "CREATE TABLE IF NOT EXISTS window_hits (k TEXT NOT NULL, "
                             "ts REAL NOT NULL, amount REAL NOT NULL, until REAL NOT NULL);"
                             "CREATE INDEX IF NOT EXISTS window_hits_k ON window_hits (k, ts);"
                             "CREATE INDEX IF NOT EXISTS window_hits_until ON window_hits (until);")
        self._sweep_every = sweep_every
        self._writes = 0

    def _prune(self, c: sqlite3.Connection, key: str, now: float, window_s: float) -> float:
        self._writes += 1
        if self._writes % self._sweep_every == 0:
            c.execute("DELETE FROM window_hits WHERE until <= ?", (now,))
        c.execute("DELETE FROM window_hits WHERE k = ? AND ts <= ?", (key, now - window_s))
        row = c.execute("SELECT COALESCE(SUM(amount), 0) FROM window_hits WHERE k = ?",
                        (key,)).fetchone()
        return float(row[0])

    async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
        def q(c: sqlite3.Connection) -> WindowResult:
            now = time.time()
            c.execute("BEGIN IMMEDIATE")
            try:
                used = self._prune(c, key, now, window_s)
                allowed = used + amount <= limit
                if allowed:
                    c.execute("INSERT INTO window_hits VALUES (?, ?, ?, ?)",
                              (key, now, amount, now + window_s))
                    used += amount
                need = 1.0 if allowed else amount
                reset = 0.0
                if used + min(need, limit) > limit:
                    hits = c.execute("SELECT ts, amount FROM window_hits WHERE k = ? ORDER BY ts",
                                     (key,)).fetchall()
                    reset = reset_after(hits, used, need, limit, window_s, now)
                return WindowResult(allowed, used, limit, reset)
            finally:
                c.execute("COMMIT")

        return await self._db.run(q)

    async def hit_many(self, hits: Sequence[tuple[str, float, float]],
                       window_s: float) -> list[WindowResult]:
        return await hit_in_turn(self, hits, window_s)

    async def add(self, key: str, amount: float, window_s: float) -> None:
        def q(c: sqlite3.Connection) -> None:
            now = time.time()
            c.execute("INSERT INTO window_hits VALUES (?, ?, ?, ?)",
                      (key, now, amount, now + window_s))

        await self._db.run(q)

    async def aclose(self) -> None:
        await self._db.close()
