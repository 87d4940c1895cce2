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
never overtaken by another worker): the same decisions as `storage.redis_breaker`'s Lua
scripts, the probe's check-and-set included. Time and jitter come from the caller.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.sqlite import _Db, transaction

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


@dataclass(frozen=True, slots=True)
class BreakerRules:
    """The thresholds of `BreakerConfig`, as the store needs them (the same for every call)."""

    failure_threshold: int
    failure_ratio: float
    min_calls: int
    bucket_s: float
    buckets: int
    min_open_s: float
    open_s: float
    max_level: int

    def period(self, level: int, jitter_factor: float) -> float:
        """`breaker.open_interval`, with the jitter already turned into a factor."""
        first = min(self.min_open_s, self.open_s)
        return min(self.open_s, first * 2.0 ** min(level, self.max_level)) * jitter_factor


class Reply(NamedTuple):
    """A deployment's state after a write, and what the write decided: `decision` is ''
    (nothing changed), 'open', 'closed', 'probe', 'admit' or 'reject'; `a`, `b` are the
    window's (failures, calls) when it opened, or the recovery time when it closed.
    `version` 0: no shared state (never failed)."""

    state: str
    open_until: float
    probe_until: float
    version: int
    decision: str = ""
    a: float = 0.0
    b: float = 0.0


class Row(NamedTuple):
    deployment: str
    state: str
    open_until: float
    probe_until: float
    version: int


class _State:
    """One deployment's row, read inside the transaction that may change it."""

    __slots__ = ("dep", "n", "ou", "pt", "pu", "since", "st", "v")

    def __init__(self, c: sqlite3.Connection, dep: str) -> None:
        row = c.execute("SELECT st, ou, pu, pt, since, n, v FROM breaker WHERE dep = ?",
                        (dep,)).fetchone()
        self.dep = dep
        if row is None:
            self.st, self.ou, self.pu, self.pt, self.since, self.n, self.v = \
                "closed", 0.0, 0.0, "", None, 0, 0
        else:
            self.st, self.ou, self.pu, self.pt, self.since, self.n, self.v = row

    def save(self, c: sqlite3.Connection) -> None:
        self.v = int(c.execute("UPDATE breaker_seq SET v = v + 1 WHERE id = 0 RETURNING v")
                     .fetchone()[0])
        c.execute("INSERT OR REPLACE INTO breaker (dep, st, ou, pu, pt, since, n, v) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (self.dep, self.st, self.ou, self.pu, self.pt, self.since, self.n, self.v))

    def clear_window(self, c: sqlite3.Connection) -> None:
        c.execute("DELETE FROM breaker_window WHERE dep = ?", (self.dep,))

    def reply(self, decision: str = "", a: float = 0.0, b: float = 0.0) -> Reply:
        return Reply(self.st, self.ou, self.pu, self.v, decision, a, b)


def _record(c: sqlite3.Connection, rules: BreakerRules, dep: str, now: float, fails: int,
            add: int, token: str, jitter_factor: float) -> Reply:
    """A failure (`fails` 1), a flush of `add` successes, or a probe's verdict (`token`)."""
    s = _State(c, dep)
    if token:
        if s.st == "closed" or s.pt != token:
            return s.reply()  # a stale probe: someone else already decided
        if fails:
            s.n = min(s.n + 1, rules.max_level)
            s.st, s.ou, s.pu, s.pt = "open", now + rules.period(s.n, jitter_factor), 0.0, ""
            s.save(c)
            return s.reply("open")
        recovery = now - (s.since if s.since is not None else now)
        s.st, s.ou, s.pu, s.pt, s.n, s.since = "closed", 0.0, 0.0, "", 0, None
        s.clear_window(c)
        s.save(c)
        return s.reply("closed", recovery)
    if s.st != "closed" or (add == 0 and fails == 0):
        return s.reply()  # admitted before it opened: it is open already
    bucket = math.floor(now / rules.bucket_s)
    c.execute("INSERT INTO breaker_window (dep, b, c, f) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (dep, b) DO UPDATE SET c = c + excluded.c, f = f + excluded.f",
              (dep, bucket, add, fails))
    c.execute("DELETE FROM breaker_window WHERE dep = ? AND b <= ?", (dep, bucket - rules.buckets))
    calls, nf = c.execute("SELECT COALESCE(SUM(c), 0), COALESCE(SUM(f), 0) FROM breaker_window "
                          "WHERE dep = ?", (dep,)).fetchone()
    if fails and nf >= rules.failure_threshold and (
            calls < rules.min_calls or nf >= rules.failure_ratio * calls):
        s.st, s.ou, s.pu, s.pt = "open", now + rules.period(s.n, jitter_factor), 0.0, ""
        if s.since is None:
            s.since = now
        s.clear_window(c)
        s.save(c)
        return s.reply("open", nf, calls)
    return s.reply("", nf, calls)


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
                s = _State(c, dep)
                if s.st == "closed":
                    return s.reply("admit")
                if now < s.ou or (s.pt and now < s.pu):
                    return s.reply("reject")
                s.st, s.pu, s.pt = "half_open", now + lease_s, token
                s.save(c)
                return s.reply("probe")

        try:
            return await self._db.run(q)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker probe: {type(exc).__name__}") from exc

    async def release(self, dep: str, token: str) -> Reply:
        def q(c: sqlite3.Connection) -> Reply:
            with transaction(c):
                s = _State(c, dep)
                if s.st != "closed" and s.pt == token:
                    s.pu, s.pt = 0.0, ""
                    s.save(c)
                return s.reply()

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
