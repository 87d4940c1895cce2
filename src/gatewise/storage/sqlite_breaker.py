"""The SQLite side of the circuit breakers shared by the workers of one host
(`resilience.breaker_sqlite.SQLiteBreakers`).

Why here: every byte the gateway exchanges with a store goes through `storage/`, so the
breaker logic (the local view, the fail-open fallback) never touches sqlite3, and a backend
failure reaches it as one type, `StoreUnavailableError`.

Layout (one file, `breakers.db` in the state dir, apart from the counters so a failure never
waits behind a budget's write lock):
- `breaker`: one row per deployment that ever failed (state, open-until, probe-until, probe
  token, outage start, backoff level, version);
- `breaker_window`: the sliding window's buckets (calls, failures) per deployment;
- `breaker_seq`: one row, the version counter. Every state change takes the next value in the
  same transaction, so versions grow in commit order across every process: "rows with a
  version above the last one I saw" is an exact change feed, and the one signal a worker needs
  instead of pub/sub (an indexed read that finds nothing when nothing changed).

Every write is a `BEGIN IMMEDIATE` transaction (the write lock first, so a read-then-write is
never overtaken by another worker) that runs the decisions of `storage.breaker_rules` (shared
with PostgreSQL; the same as `storage.redis_breaker`'s Lua scripts), the probe's check-and-set
included. Time and jitter come from the caller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from gatewise.storage import breaker_rules
from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.breaker_rules import AddToWindow, BreakerRules, Reply, Row, State
from gatewise.storage.sqlite import _Db, transaction

__all__ = ["BreakerRules", "Reply", "Row", "SQLiteBreakerStore"]

_ERRORS = (sqlite3.Error, OSError)

# A short busy timeout: a breaker write that waits longer than this is better judged by this
# process's own breakers (fail open) than held; writes here take microseconds.
_SCHEMA = """
PRAGMA busy_timeout = 1000;
CREATE TABLE IF NOT EXISTS breaker (dep TEXT PRIMARY KEY, st TEXT NOT NULL, ou REAL NOT NULL,
  pu REAL NOT NULL, pt TEXT NOT NULL, since REAL, n INTEGER NOT NULL, v INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS breaker_v ON breaker (v);
CREATE TABLE IF NOT EXISTS breaker_window (dep TEXT NOT NULL, b INTEGER NOT NULL,
  c INTEGER NOT NULL, f INTEGER NOT NULL, PRIMARY KEY (dep, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker_seq (id INTEGER PRIMARY KEY CHECK (id = 0),
  v INTEGER NOT NULL);
INSERT OR IGNORE INTO breaker_seq (id, v) VALUES (0, 0);
"""


def _load(c: sqlite3.Connection, dep: str) -> State:
    row = c.execute("SELECT st, ou, pu, pt, since, n, v FROM breaker WHERE dep = ?",
                    (dep,)).fetchone()
    return State(dep) if row is None else State(dep, *row)


def _finish(c: sqlite3.Connection, s: State, reply: Reply) -> Reply:
    """Saves a changed row under the next version (the reply carries it)."""
    if not s.changed:
        return reply
    s.v = int(c.execute("UPDATE breaker_seq SET v = v + 1 WHERE id = 0 RETURNING v")
              .fetchone()[0])
    c.execute("INSERT OR REPLACE INTO breaker (dep, st, ou, pu, pt, since, n, v) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              (s.dep, s.st, s.ou, s.pu, s.pt, s.since, s.n, s.v))
    return reply._replace(version=s.v)


def _record(c: sqlite3.Connection, rules: BreakerRules, dep: str, now: float, fails: int,
            add: int, token: str, jitter_factor: float) -> Reply:
    """Runs `breaker_rules.record`'s window requests on this connection."""
    s = _load(c, dep)
    steps = breaker_rules.record(rules, s, now, fails, add, token, jitter_factor)
    answer: tuple[int, int] | None = None
    try:
        while True:
            op = steps.send(answer)
            answer = None
            if isinstance(op, AddToWindow):
                c.execute("INSERT INTO breaker_window (dep, b, c, f) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (dep, b) DO UPDATE SET c = c + excluded.c, "
                          "f = f + excluded.f", (dep, op.bucket, op.calls, op.failures))
                c.execute("DELETE FROM breaker_window WHERE dep = ? AND b <= ?",
                          (dep, op.oldest))
                calls, nf = c.execute("SELECT COALESCE(SUM(c), 0), COALESCE(SUM(f), 0) "
                                      "FROM breaker_window WHERE dep = ?", (dep,)).fetchone()
                answer = (int(calls), int(nf))
            else:
                c.execute("DELETE FROM breaker_window WHERE dep = ?", (dep,))
    except StopIteration as done:
        return _finish(c, s, done.value)


class SQLiteBreakerStore:
    """Runs the breaker transactions on one SQLite file (one connection on its own thread,
    like every SQLite store); construction does no I/O."""

    def __init__(self, path: str | Path, rules: BreakerRules) -> None:
        self.path = str(path)
        self.rules = rules
        self._db = _Db(path, _SCHEMA)

    async def record(self, dep: str, now: float, fails: int, add: int, token: str = "",
                     jitter_factor: float = 1.0) -> Reply:
        def q(c: sqlite3.Connection) -> Reply:
            with transaction(c):
                return _record(c, self.rules, dep, now, fails, add, token, jitter_factor)

        try:
            return await self._db.run(q)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker record: {type(exc).__name__}") from exc

    async def flush(self, now: float, counts: Sequence[tuple[str, int]]) -> None:
        """Success counts of many deployments, in one transaction (the periodic sync)."""
        def q(c: sqlite3.Connection) -> None:
            with transaction(c):
                for dep, add in counts:
                    _record(c, self.rules, dep, now, 0, add, "", 1.0)

        try:
            await self._db.run(q)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker flush: {type(exc).__name__}") from exc

    async def try_probe(self, dep: str, now: float, lease_s: float, token: str) -> Reply:
        """Grants the half-open probe to one caller across every process."""
        def q(c: sqlite3.Connection) -> Reply:
            with transaction(c):
                s = _load(c, dep)
                return _finish(c, s, breaker_rules.try_probe(s, now, lease_s, token))

        try:
            return await self._db.run(q)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker probe: {type(exc).__name__}") from exc

    async def release(self, dep: str, token: str) -> Reply:
        def q(c: sqlite3.Connection) -> Reply:
            with transaction(c):
                s = _load(c, dep)
                return _finish(c, s, breaker_rules.release(s, token))

        try:
            return await self._db.run(q)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker release: {type(exc).__name__}") from exc

    async def changes(self, since: int) -> tuple[int, list[Row]]:
        """(the current version, every deployment changed after version `since`). A current
        version below `since` means the file was replaced: the caller reads from 0 again."""
        def q(c: sqlite3.Connection) -> tuple[int, list[Row]]:
            # One read transaction: the rows and the version are the same snapshot.
            with transaction(c, immediate=False):
                seq = int(c.execute("SELECT v FROM breaker_seq WHERE id = 0").fetchone()[0])
                rows = [Row(*r) for r in c.execute(
                    "SELECT dep, st, ou, pu, v FROM breaker WHERE v > ? ORDER BY v",
                    (since if since <= seq else 0,))]
            return seq, rows

        try:
            return await self._db.run(q)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker changes: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._db.close()
