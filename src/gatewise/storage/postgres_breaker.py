"""The PostgreSQL side of the circuit breakers shared by replicas without Redis
(`resilience.breaker_postgres.PostgresBreakers`).

Why here: every byte the gateway exchanges with a store goes through `storage/`, so the
breaker logic never touches psycopg, and a backend failure reaches it as one type,
`StoreUnavailableError`.

Layout, in the configured schema, created on first use like every PostgreSQL store:
- `breaker`: one row per deployment that ever failed (state, open-until, probe-until, probe
  token, outage start, backoff level, version);
- `breaker_window`: the sliding window's buckets (calls, failures) per deployment;
- `breaker_seq`: the version sequence. A version is drawn while the deployment's row is
  locked, so one deployment's versions grow in the order its changes commit, which is all a
  view needs to ignore a late update.

Every write is one transaction that first locks the deployment's row (`SELECT … FOR UPDATE`;
a first failure inserts the row, then locks it), then runs the decisions of
`storage.breaker_rules` (the same code as SQLite's), so two replicas' writes on one deployment
never interleave and exactly one caller gets the half-open probe. A change is saved and
announced in one statement (`UPDATE … RETURNING` feeding `pg_notify`): the notification is
sent on commit and never for a transaction that rolled back, so a listener hears exactly the
committed states. The window's add, expiry and sums are one statement too: a failure that
opens nothing costs BEGIN, the lock, the window and COMMIT.

Every operation is bounded by `op_timeout_s` (a pool that cannot connect would otherwise wait
its own 30 s): a breaker write that waits longer is better judged by this process's breakers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gatewise.storage import breaker_rules
from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.breaker_rules import AddToWindow, BreakerRules, Reply, Row, State
from gatewise.storage.postgres import PgDatabase, _PgStore
from gatewise.storage.pubsub_postgres import pg_channel

if TYPE_CHECKING:
    from psycopg import AsyncConnection

T = TypeVar("T")


class PostgresBreakerStore(_PgStore):
    """Runs the breaker transactions on a `PgDatabase` (the stores' shared pool, or a URL);
    construction does no I/O. `channel` is where changes are announced (`pg_notify`)."""

    _name = "breakers"
    _ddl = ("CREATE TABLE IF NOT EXISTS {s}.breaker (dep text PRIMARY KEY, st text NOT NULL, "
            "ou float8 NOT NULL, pu float8 NOT NULL, pt text NOT NULL, since float8, "
            "n integer NOT NULL, v bigint NOT NULL);"
            "CREATE TABLE IF NOT EXISTS {s}.breaker_window (dep text NOT NULL, b bigint NOT NULL,"
            " c bigint NOT NULL, f bigint NOT NULL, PRIMARY KEY (dep, b));"
            "CREATE SEQUENCE IF NOT EXISTS {s}.breaker_seq")

    def __init__(self, db: PgDatabase | str, rules: BreakerRules, *, channel: str,
                 schema: str = "gatewise", op_timeout_s: float = 0.5) -> None:
        import psycopg

        super().__init__(db, schema=schema)
        self.rules = rules
        self.channel = pg_channel(channel)
        self._op_timeout_s = op_timeout_s
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError, TimeoutError)
        s = self._s
        self._q_lock = (f"SELECT st, ou, pu, pt, since, n, v FROM {s}.breaker WHERE dep = %s "
                        "FOR UPDATE")
        self._q_insert = (f"INSERT INTO {s}.breaker (dep, st, ou, pu, pt, n, v) "
                          "VALUES (%s, 'closed', 0, 0, '', 0, 0) ON CONFLICT (dep) DO NOTHING")
        # The new version is drawn under the row lock; the notification goes out on commit.
        self._q_save = (
            f"WITH u AS (UPDATE {s}.breaker SET st = %s, ou = %s, pu = %s, pt = %s, since = %s, "
            f"n = %s, v = nextval('{s}.breaker_seq') WHERE dep = %s "
            "RETURNING dep, st, ou, pu, v) "
            "SELECT u.v, pg_notify(%s, json_build_object('d', u.dep, 's', u.st, 'o', u.ou, "
            "'p', u.pu, 'v', u.v)::text) FROM u")
        # Add to the bucket, drop expired buckets and sum the rest in one statement: the sums
        # read the statement's snapshot, so they take the bucket's new totals from RETURNING.
        self._q_window = (
            f"WITH i AS (INSERT INTO {s}.breaker_window AS w (dep, b, c, f) "
            "VALUES (%(d)s, %(b)s, %(c)s, %(f)s) ON CONFLICT (dep, b) DO UPDATE "
            "SET c = w.c + excluded.c, f = w.f + excluded.f RETURNING c, f), "
            f"x AS (DELETE FROM {s}.breaker_window WHERE dep = %(d)s AND b <= %(o)s) "
            "SELECT i.c + o.c, i.f + o.f FROM i, (SELECT COALESCE(SUM(c), 0)::bigint AS c, "
            f"COALESCE(SUM(f), 0)::bigint AS f FROM {s}.breaker_window "
            "WHERE dep = %(d)s AND b > %(o)s AND b <> %(b)s) AS o")
        self._q_clear = f"DELETE FROM {s}.breaker_window WHERE dep = %s"

    async def _tx(self, what: str,
                  work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                async with self._conn() as conn, conn.transaction():
                    return await work(conn)
        except self._errors as exc:
            raise StoreUnavailableError(f"breaker {what}: {type(exc).__name__}") from exc

    async def _lock(self, conn: AsyncConnection[Any], dep: str) -> State:
        row = await (await conn.execute(self._q_lock, (dep,))).fetchone()
        if row is None:  # a first failure: make the row, so there is one to lock
            await conn.execute(self._q_insert, (dep,))
            row = await (await conn.execute(self._q_lock, (dep,))).fetchone()
            assert row is not None
        return State(dep, *row)

    async def _finish(self, conn: AsyncConnection[Any], s: State, reply: Reply) -> Reply:
        """Saves a changed row under a new version and announces it."""
        if not s.changed:
            return reply
        row = await (await conn.execute(self._q_save, (
            s.st, s.ou, s.pu, s.pt, s.since, s.n, s.dep, self.channel))).fetchone()
        assert row is not None
        s.v = int(row[0])
        return reply._replace(version=s.v)

    async def _record(self, conn: AsyncConnection[Any], dep: str, now: float, fails: int,
                      add: int, token: str, jitter_factor: float) -> Reply:
        s = await self._lock(conn, dep)
        steps = breaker_rules.record(self.rules, s, now, fails, add, token, jitter_factor)
        answer: tuple[int, int] | None = None
        try:
            while True:
                op = steps.send(answer)
                answer = None
                if isinstance(op, AddToWindow):
                    row = await (await conn.execute(self._q_window, {
                        "d": dep, "b": op.bucket, "c": op.calls, "f": op.failures,
                        "o": op.oldest})).fetchone()
                    assert row is not None
                    answer = (int(row[0]), int(row[1]))
                else:
                    await conn.execute(self._q_clear, (dep,))
        except StopIteration as done:
            return await self._finish(conn, s, done.value)

    async def record(self, dep: str, now: float, fails: int, add: int, token: str = "",
                     jitter_factor: float = 1.0) -> Reply:
        """A failure (`fails` 1), a flush of `add` successes, or a probe's verdict."""
        return await self._tx("record", lambda c: self._record(
            c, dep, now, fails, add, token, jitter_factor))

    async def flush(self, now: float, counts: Sequence[tuple[str, int]]) -> None:
        """Success counts of many deployments, in one transaction (rows locked in the order
        given: callers sort, so two flushes never deadlock)."""
        async def work(c: AsyncConnection[Any]) -> None:
            for dep, add in counts:
                await self._record(c, dep, now, 0, add, "", 1.0)

        await self._tx("flush", work)

    async def try_probe(self, dep: str, now: float, lease_s: float, token: str) -> Reply:
        """Grants the half-open probe to one caller across every replica."""
        async def work(c: AsyncConnection[Any]) -> Reply:
            s = await self._lock(c, dep)
            return await self._finish(c, s, breaker_rules.try_probe(s, now, lease_s, token))

        return await self._tx("probe", work)

    async def release(self, dep: str, token: str) -> Reply:
        async def work(c: AsyncConnection[Any]) -> Reply:
            s = await self._lock(c, dep)
            return await self._finish(c, s, breaker_rules.release(s, token))

        return await self._tx("release", work)

    async def rows(self) -> list[Row]:
        """Every deployment's shared state (the periodic refresh: one row per deployment that
        ever failed, so a small table)."""
        async def work(c: AsyncConnection[Any]) -> list[Row]:
            cur = await c.execute(f"SELECT dep, st, ou, pu, v FROM {self._s}.breaker")
            return [Row(*r) for r in await cur.fetchall()]

        return await self._tx("refresh", work)

    @property
    def db(self) -> PgDatabase:
        return self._db
