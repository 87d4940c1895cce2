"""`open_stores`: every store a gateway needs, chosen from `storage:` in the config.

- `database` (sqlite | postgres | memory) holds the ledger, governance, conversations and,
  without Redis, the key-value cache. SQLite files live under `state_dir`: `gatewise.db`
  (governance) and one file per other store, so the hot counters never wait on a ledger batch.
- `counters` (auto | memory | sqlite | redis) holds budget counters and rate-limit windows;
  `auto` is Redis when a Redis URL is configured, else the database's kind (PostgreSQL
  counters and windows run on row and advisory locks).
- With a Redis URL the key-value cache is on Redis too, and so are conversations (they expire
  when idle) unless `memory.store` says `database`.
- Broadcasts between replicas (near-cache invalidation, key revocation) go over Redis pub/sub
  when Redis is configured, else over PostgreSQL LISTEN/NOTIFY when it is the database
  (`Stores.new_pubsub`); with neither there is no other replica to tell.

Nothing connects or touches the disk here: every backend opens on first use, so building a
`Gateway` stays cheap. One Redis client and one PostgreSQL pool are shared by the stores that
use them and closed by `Stores.aclose`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.storage.base import (
    ConversationStore,
    CounterStore,
    GovernanceStore,
    KVStore,
    LedgerStore,
    PubSub,
    WindowStore,
)
from gatewise.storage.leases import LeaseStore
from gatewise.storage.prompts import PromptStore
from gatewise.storage.quality import QualityStore

if TYPE_CHECKING:
    from gatewise.config.loader import ResolvedConfig

log = logging.getLogger("gatewise.storage")


@dataclass
class Stores:
    kv: KVStore
    counters: CounterStore
    windows: WindowStore
    ledger: LedgerStore
    governance: GovernanceStore
    conversations: ConversationStore
    # Shared clients/pools, closed after every store.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)
    # Where counters and windows live (memory | sqlite | redis | postgres): callers that can
    # take a round trip off a request's path (budget settles) do so only when there is one.
    counters_kind: str = "memory"
    # Prompt template versions (the admin API's), beside the governance records.
    prompts: PromptStore | None = None
    # Quality rows and feedback (scores per response), on the ledger's database.
    quality: QualityStore | None = None
    # Leases for work one replica at a time does (maintenance jobs): on Redis when configured,
    # else on the database (PostgreSQL, SQLite or memory), like the other shared state.
    leases: LeaseStore | None = None
    # The console's live request log shared by every replica: on Redis when configured, else
    # None (each process keeps its own ring; `gatewise.observability.recent_shared`).
    recent_log: Any = None
    # The console's guard events, shared the same way (another list on the same store).
    security_log: Any = None
    # Health probes of the stores this gateway depends on (`gatewise.observability.health`):
    # kind (redis | postgres | sqlite) -> an async check that raises when it is unreachable.
    probes: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict, repr=False)
    # Makes a `PubSub` over PostgreSQL for a subscriber that owns it (closes it), when
    # PostgreSQL is the database and Redis is not configured; None otherwise (with Redis,
    # subscribers keep their Redis pub/sub, built from the URL).
    new_pubsub: Callable[[], PubSub] | None = field(default=None, repr=False)
    # The PostgreSQL pool and schema (a `PgDatabase`) when one is configured, for state kept
    # beside the stores (shared circuit breakers); closed with the other clients.
    pg: Any = field(default=None, repr=False)

    async def aclose(self) -> None:
        """Closes every store, then the shared clients; one failing close doesn't stop the rest."""
        stores: list[Any] = [self.kv, self.counters, self.windows, self.ledger,
                             self.governance, self.conversations]
        if self.prompts is not None:
            stores.append(self.prompts)
        if self.quality is not None:
            stores.append(self.quality)
        if self.leases is not None:
            stores.append(self.leases)
        if self.recent_log is not None:
            stores.append(self.recent_log)
        if self.security_log is not None:
            stores.append(self.security_log)
        for store in stores:
            try:
                await store.aclose()
            except Exception as exc:  # pragma: no cover - best effort at shutdown
                log.warning("closing %s failed: %s", type(store).__name__, type(exc).__name__)
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()
        self.closers.clear()


def open_stores(cfg: ResolvedConfig, *, pg_schema: str | None = None,
                redis_prefix: str | None = None) -> Stores:
    """The stores `cfg.config.storage` asks for; `pg_schema`/`redis_prefix` override the
    config's `postgres_schema`/`redis_prefix` (tests use one of their own)."""
    st = cfg.config.storage
    pg_schema = pg_schema or st.postgres_schema
    redis_prefix = redis_prefix or st.redis_prefix
    database = st.database
    redis_url = cfg.storage_redis_url
    counters: str = st.counters
    if counters == "auto":
        counters = "redis" if redis_url else database
    state = Path(cfg.state_dir)
    closers: list[Callable[[], Awaitable[None]]] = []

    redis_client: Any = None
    if redis_url:
        import redis.asyncio as aioredis

        redis_client = aioredis.Redis.from_url(redis_url)
        closers.append(redis_client.aclose)

    pg: Any = None
    if database == "postgres" or counters == "postgres":
        from gatewise.storage.postgres import PgDatabase

        if not cfg.postgres_url:
            from gatewise.errors import ConfigError

            raise ConfigError("database 'postgres' needs 'storage.postgres_url'", file=cfg.file,
                              path="storage.postgres_url")
        pg = PgDatabase(cfg.postgres_url, schema=pg_schema)
        closers.append(pg.close)

    kv: KVStore
    ledger: LedgerStore
    governance: GovernanceStore
    conversations: ConversationStore
    if database == "memory":
        from gatewise.storage.conversations_memory import MemoryConversations
        from gatewise.storage.memory import MemoryKV, MemoryLedger
        from gatewise.storage.memory_governance import MemoryGovernance
        from gatewise.storage.prompts import MemoryPrompts

        kv, ledger, governance = MemoryKV(), MemoryLedger(), MemoryGovernance()
        conversations = MemoryConversations()
        prompts: PromptStore = MemoryPrompts()
        from gatewise.storage.quality_memory import MemoryQualityStore

        quality: QualityStore = MemoryQualityStore()
    elif database == "postgres":
        from gatewise.storage.conversations_postgres import PostgresConversations
        from gatewise.storage.postgres import PostgresKV, PostgresLedger
        from gatewise.storage.postgres_governance import PostgresGovernance
        from gatewise.storage.postgres_prompts import PostgresPrompts

        kv, ledger, governance = PostgresKV(pg), PostgresLedger(pg), PostgresGovernance(pg)
        conversations = PostgresConversations(pg)
        prompts = PostgresPrompts(pg)
        from gatewise.storage.quality_postgres import PostgresQualityStore

        quality = PostgresQualityStore(pg)
    else:
        from gatewise.storage.conversations_sqlite import SQLiteConversations
        from gatewise.storage.sqlite import SQLiteKV, SQLiteLedger
        from gatewise.storage.sqlite_governance import SQLiteGovernance
        from gatewise.storage.sqlite_prompts import SQLitePrompts

        kv, ledger = SQLiteKV(state / "kv.db"), SQLiteLedger(state / "ledger.db")
        governance = SQLiteGovernance(state / "gatewise.db")
        prompts = SQLitePrompts(state / "gatewise.db")
        conversations = SQLiteConversations(state / "conversations.db")
        from gatewise.storage.quality_sqlite import SQLiteQualityStore

        quality = SQLiteQualityStore(state / "quality.db")

    # The lean RESP client for plain redis:// (redis-py otherwise: TLS, unix sockets): budgets,
    # windows and the response cache's reads and writes run on it on every request.
    fast: Any = None
    if redis_url and redis_url.startswith("redis://"):
        from gatewise.storage.resp import RespClient

        fast = RespClient(redis_url)
        closers.insert(0, fast.aclose)
    if redis_client is not None:
        from gatewise.storage.redis import RedisKV

        kv = RedisKV(client=redis_client, prefix=redis_prefix, fast=fast)
    if redis_client is not None and cfg.config.memory.store in ("auto", "redis"):
        # Conversations expire when idle and every replica reads every turn: Redis.
        from gatewise.storage.conversations_redis import RedisConversations

        conversations = RedisConversations(client=redis_client, prefix=redis_prefix)

    counter_store: CounterStore
    windows: WindowStore
    if counters == "redis":
        from gatewise.storage.redis import RedisCounters, RedisWindow

        counter_store = RedisCounters(client=redis_client, prefix=redis_prefix, fast=fast)
        windows = RedisWindow(client=redis_client, prefix=redis_prefix, fast=fast)
    elif counters == "postgres":
        from gatewise.storage.postgres import PostgresCounters, PostgresWindow

        counter_store, windows = PostgresCounters(pg), PostgresWindow(pg)
    elif counters == "sqlite":
        from gatewise.storage.sqlite import SQLiteCounters, SQLiteWindow

        counter_store = SQLiteCounters(state / "counters.db")
        windows = SQLiteWindow(state / "windows.db")
    else:
        from gatewise.storage.memory import MemoryCounters, MemoryWindow

        counter_store, windows = MemoryCounters(), MemoryWindow()
    stores = Stores(kv, counter_store, windows, ledger, governance, conversations, closers, counters,
                  prompts, quality)
    stores.leases, stores.probes = _leases_and_probes(database, state, redis_client,
                                                       redis_prefix, pg, closers)
    stores.pg = pg
    if pg is not None and database == "postgres" and not redis_url:
        from gatewise.storage.pubsub_postgres import ListenHub, PostgresPubSub

        # One LISTEN session for the replica, whoever subscribes (breakers, near cache, keys).
        hub = ListenHub(pg, connect_timeout_s=1.0, op_timeout_s=2.0)
        closers.insert(0, hub.aclose)
        stores.new_pubsub = partial(PostgresPubSub, pg, hub=hub, connect_timeout_s=1.0,
                                    op_timeout_s=2.0)
    if redis_client is not None:
        from gatewise.storage.recent_redis import RedisRecentLog

        stores.recent_log = RedisRecentLog(client=redis_client, prefix=redis_prefix)
        stores.security_log = RedisRecentLog(client=redis_client, prefix=redis_prefix,
                                             name="security", capacity=1000)
    return stores


def _leases_and_probes(database: str, state: Path, redis_client: Any, redis_prefix: str,
                       pg: Any, closers: list[Callable[[], Awaitable[None]]],
                       ) -> tuple[LeaseStore, dict[str, Callable[[], Awaitable[None]]]]:
    """The lease store, shared when a shared store is configured (Redis, else PostgreSQL,
    else the SQLite state files or memory), and a probe per store the gateway depends on:
    Redis PING, PostgreSQL `SELECT 1`, the SQLite state files."""
    from gatewise.storage.leases import MemoryLeases

    probes: dict[str, Callable[[], Awaitable[None]]] = {}
    candidates: list[Any] = [MemoryLeases()]
    if database == "sqlite":
        from gatewise.storage.leases_sqlite import SQLiteLeases

        candidates.append(SQLiteLeases(state / "leases.db"))
        probes["sqlite"] = candidates[-1].ping
    if pg is not None:
        from gatewise.storage.leases_postgres import PostgresLeases

        candidates.append(PostgresLeases(pg))
        probes["postgres"] = candidates[-1].ping
    if redis_client is not None:
        from gatewise.storage.leases_redis import RedisLeases

        candidates.append(RedisLeases(client=redis_client, prefix=redis_prefix))
        probes["redis"] = candidates[-1].ping
    # The last is the most shared; the others stay only as probes, closed with the clients.
    for unused in candidates[1:-1]:
        closers.insert(0, unused.aclose)
    leases: LeaseStore = candidates[-1]
    return leases, probes
