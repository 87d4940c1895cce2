"""Failure handling: retries, retry budgets, circuit breakers, hedging and fallback.

The state machines know nothing of the pipeline:
- `retry`: which errors are worth another attempt, full-jitter backoff, the retry budget;
- `breaker`: per-deployment circuit breakers (the state machine, and `MemoryBreakers`);
- `breaker_redis`: the same breakers shared by replicas through Redis (the `redis` extra,
  imported only when configured, so `import gatewise` never pays for it).

Their middleware, which `gateway.py` places in the chain:
- `fallback`: alias chains, stale answers, a simplified prompt, escalation (once per call);
- `hedge`: a twin request to a second deployment when the first is slow (once per alias);
- `retry_middleware` and `breaker_middleware`: around each attempt.

Failovers, breaker transitions, spent retry budgets and escalations are reported through
`gatewise.observability.incidents`.
"""
from __future__ import annotations

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


def build_breakers(config: BreakerConfig, redis_url: str | None = None, *,
                   prefix: str = "gatewise:breaker:") -> Breakers:
    """The breakers a gateway's config asks for: in this process, or shared through Redis."""
    if config.store == "memory":
        return MemoryBreakers(config)
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
    "build_breakers",
    "is_deployment_failure",
    "is_retryable",
]
