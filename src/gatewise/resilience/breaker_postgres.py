"""`PostgresBreakers`: the same breakers as `MemoryBreakers`, shared by every replica through
the PostgreSQL database they already share, for deployments without Redis.

Why shared: with N replicas each learning on its own, a dead deployment gets N times the
failures before every replica stops sending to it, and N probes when it may be back. Here one
replica's failures open the breaker for all, and exactly one replica probes.

It is `breaker_redis.RedisBreakers` with PostgreSQL underneath (read its docstring; everything
but the store is `breaker_shared.SharedBreakers`): a local view per deployment, so
`available()` and a success never reach the database (successes are counted locally and
flushed every `refresh_s`); every write (a failure, a probe, its verdict, a release) is one
transaction on the deployment's locked row that returns the resulting state
(`storage.postgres_breaker`); versions from a sequence order updates, so a late one never
undoes a newer state; and a probe holds a lease, so a replica that dies while probing blocks
recovery only until the lease ends.

Change signal: each saved change is announced with NOTIFY in the transaction that makes it (so
only committed states are heard), and every replica LISTENs through `PostgresPubSub`: a
breaker opened by replica A is skipped by replica B within a notification's round trip. The
listener's tick re-reads every row and flushes the success counts every `refresh_s`, the
safety net for a notification lost while a listener was reconnecting (NOTIFY keeps nothing
for an absent session); every reconnection re-reads too.

If PostgreSQL is unreachable, the breakers fail open to this process's `MemoryBreakers` and
warn; for `retry_s` after a failure, writes go straight to the local breakers rather than each
waiting out `op_timeout_s` on a dead server; the shared state returns once PostgreSQL answers
(a write after `retry_s`, or the listener reconnecting).

Time is this replica's wall clock (`clock`, injectable), as with Redis: open-until and lease
times are compared across replicas, whose clocks need only agree to well within `open_s`.
Tokens starting with "p" are the local fallback's, "g" the shared store's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gatewise.config.schema import BreakerConfig
from gatewise.resilience.breaker import MAX_LEVEL
from gatewise.resilience.breaker_shared import BUCKETS, SubscribedBreakers
from gatewise.storage.base import PubSub, StoreUnavailableError
from gatewise.storage.breaker_rules import BreakerRules, Reply
from gatewise.storage.postgres_breaker import PostgresBreakerStore

if TYPE_CHECKING:
    from gatewise.storage.postgres import PgDatabase


class PostgresBreakers(SubscribedBreakers):
    """Implements `Breakers` over PostgreSQL. `db` is the stores' `PgDatabase` (its pool and
    schema; a URL opens a pool of its own); `pubsub` the LISTEN/NOTIFY it owns and closes
    (`Stores.new_pubsub()`; built on `db` when not given). Build once per gateway; `aclose()`
    on shutdown."""

    token_prefix = "g"
    store_name = "postgres"

    def __init__(self, config: BreakerConfig, db: PgDatabase | str, *,
                 pubsub: PubSub | None = None, schema: str = "gatewise",
                 refresh_s: float = 1.0, op_timeout_s: float | None = None, retry_s: float = 1.0,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        super().__init__(config, clock=clock, rng=rng, local_clock=clock)
        rules = BreakerRules(config.failure_threshold, config.failure_ratio, config.min_calls,
                             config.window_s / BUCKETS, BUCKETS, config.min_open_s,
                             config.open_s, MAX_LEVEL)
        self._db_schema = schema if isinstance(db, str) else db.schema
        # One channel per schema: two gateways on one server in separate schemas stay apart.
        self.channel = f"gatewise:breaker:{self._db_schema}"
        timeout = self.op_timeout(config, op_timeout_s)
        self._store = PostgresBreakerStore(db, rules, channel=self.channel, schema=schema,
                                           op_timeout_s=timeout)
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self._pubsub = pubsub
        self._skip_until = -1e9
        self._seen = 0  # the highest version read; a lower one means the schema was recreated

    # -- the three writes ----------------------------------------------------------------------
    def _reachable(self) -> None:
        if self.degraded and time.monotonic() < self._skip_until:
            raise StoreUnavailableError("breaker postgres: failed moments ago")

    async def _try_probe(self, deployment_id: str, now: float, lease_s: float,
                         token: str) -> Reply:
        self._reachable()
        return await self._store.try_probe(deployment_id, now, lease_s, token)

    async def _record(self, deployment_id: str, now: float, fails: int, add: int, token: str,
                      jitter_factor: float) -> Reply:
        self._reachable()
        return await self._store.record(deployment_id, now, fails, add, token, jitter_factor)

    async def _release(self, deployment_id: str, now: float, token: str) -> Reply:
        self._reachable()
        return await self._store.release(deployment_id, token)

    def _trouble(self, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + self.retry_s
        super()._trouble(exc)

    # -- background: LISTEN and the periodic refresh -----------------------------------------
    def _pubsub_for(self) -> PubSub:
        if self._pubsub is None:
            from gatewise.storage.pubsub_postgres import PostgresPubSub

            self._pubsub = PostgresPubSub(self._store.db)
        return self._pubsub

    async def sync(self) -> None:
        """Flushes the success counts, then re-reads every deployment's shared state."""
        await self._flush_pending(self._store.flush)
        rows = await self._store.rows()
        top = max((r.version for r in rows), default=0)
        if top < self._seen:  # the schema was recreated: its versions started again
            self._view.clear()
        self._seen = top
        for r in rows:
            self._take(r.deployment, r.version, r.state, r.open_until, r.probe_until)

    async def _close_store(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._store.aclose()
