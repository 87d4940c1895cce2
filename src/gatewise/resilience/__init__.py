"""Failure handling below the router: retries, retry budgets, circuit breakers, incidents.

- `retry`: which errors are worth another attempt, full-jitter backoff, the retry budget;
- `breaker`: per-deployment circuit breakers (the state machine, and `MemoryBreakers`);
- `breaker_redis`: the same breakers shared by replicas through Redis (the `redis` extra,
  imported only when configured, so `import gatewise` never pays for it);
- `incidents`: failovers, breaker transitions, budget exhaustion and escalations reported as
  a log line, a metric and a call event.

The middlewares that use them live in `gatewise.pipeline.retry` and `gatewise.pipeline.breaker`.
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
from gatewise.resilience.incidents import IncidentRecorder
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
    "IncidentRecorder",
    "MemoryBreakers",
    "RetryBudget",
    "RetryPolicy",
    "Transition",
    "build_breakers",
    "is_deployment_failure",
    "is_retryable",
]
