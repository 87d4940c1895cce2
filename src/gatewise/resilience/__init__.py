"""Failure handling: retries, retry budgets, circuit breakers, hedging and fallback.

The state machines know nothing of the pipeline:
- `retry`: which errors are worth another attempt, full-jitter backoff, the retry budget;
- `breaker`: per-deployment circuit breakers (the state machine, and `MemoryBreakers`);
- `breaker_redis`: the same breakers shared by replicas through Redis (the `redis` extra,
  imported only when configured, so `import gatewise` never pays for it);
- `breaker_sqlite`: shared by the workers of one host through a SQLite file (`serve
  --workers N` without Redis);
- `breaker_postgres`: shared by every replica through the PostgreSQL database (no Redis);
- `breaker_shared`: what those three share (the local view, replies, the fail-open fallback).

Their middleware, which `gateway.py` places in the chain:
- `fallback`: alias chains, stale answers, a simplified prompt, escalation (once per call);
- `hedge`: a twin request to a second deployment when the first is slow (once per alias);
- `retry_middleware` and `breaker_middleware`: around each attempt.

Failovers, breaker transitions, spent retry budgets and escalations are reported through
`gatewise.observability.incidents`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatewise.config.schema import BreakerConfig
from gatewise.errors import ConfigError
from gatewise.resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breakers,
    CircuitBreaker,
    MemoryBreakers,
    Transition,
    is_deployment_failure,
)
from gatewise.resilience.retry import Backoff, RetryBudget, RetryPolicy, is_retryable
from gatewise.storage.base import PubSub


def breaker_store(config: BreakerConfig, *, workers: int = 1, database: str = "sqlite",
                  redis: bool = False) -> str:
    """Where the breakers live: `config.store`, with "auto" resolved. With the router's Redis,
    every replica shares them there (one replica's failures open the breaker for all). Several
    workers on the SQLite database share them through the state dir (else each learns alone,
    N times the failures and N probes); one process keeps them in memory, where sharing has no
    reader and every failure would cost a transaction. Without Redis, replicas on PostgreSQL share
    them there (that database is what replicas have in common; its host's state dir may not even
    be writable), whatever the number of workers: only failures and probes cost a transaction."""
    if config.store != "auto":
        return config.store
    if config.enabled and redis:
        return "redis"
    if config.enabled and database == "postgres":
        return "postgres"
    return "sqlite" if config.enabled and workers > 1 and database == "sqlite" else "memory"


def build_breakers(config: BreakerConfig, redis_url: str | None = None, *,
                   prefix: str = "gatewise:breaker:", state_dir: str | None = None,
                   workers: int = 1, database: str = "sqlite", postgres: Any = None,
                   new_pubsub: Callable[[], PubSub] | None = None) -> Breakers:
    """The breakers a gateway's config asks for: in this process, shared by this host's
    workers through a SQLite file in `state_dir`, shared through Redis, or through PostgreSQL
    (`postgres`: the stores' `PgDatabase`; `new_pubsub`: their LISTEN/NOTIFY factory)."""
    store = breaker_store(config, workers=workers, database=database, redis=bool(redis_url))
    if store == "memory":
        return MemoryBreakers(config)
    if store == "postgres":
        if postgres is None:
            raise ConfigError("breaker.store 'postgres' needs storage.database 'postgres'",
                              path="router.breaker.store")
        from gatewise.resilience.breaker_postgres import PostgresBreakers

        return PostgresBreakers(config, postgres,
                                pubsub=new_pubsub() if new_pubsub is not None else None)
    if store == "sqlite":
        if not state_dir:
            raise ConfigError("breaker.store 'sqlite' needs storage.state_dir",
                              path="router.breaker.store")
        from pathlib import Path

        from gatewise.resilience.breaker_sqlite import FILE_NAME, SQLiteBreakers

        return SQLiteBreakers(config, Path(state_dir) / FILE_NAME)
    if not redis_url:
        raise ConfigError("breaker.store 'redis' needs router.redis_url",
                          path="router.breaker.store")
    try:
        from gatewise.resilience.breaker_redis import RedisBreakers
    except ImportError as exc:  # the optional extra is missing
        raise ConfigError(f"breaker.store 'redis' needs the redis extra "
                          f"(pip install 'gatewise[redis]'): {exc}",
                          path="router.breaker.store") from None
    return RedisBreakers(config, redis_url, prefix=prefix)


__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "Backoff",
    "Breakers",
    "CircuitBreaker",
    "MemoryBreakers",
    "RetryBudget",
    "RetryPolicy",
    "Transition",
    "breaker_store",
    "build_breakers",
    "is_deployment_failure",
    "is_retryable",
]
