"""Scrape-time collectors: gauges refreshed from state already in memory when `/metrics` is
read, never from a store (a scrape must not wait on Redis or PostgreSQL, nor add to their
load). Each is a plain function `GatewayMetrics.add_collector` runs before rendering; it takes
what it reads as callables, so this module knows no feature that owns the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gatewise.observability.metrics import Gauge

# `gatewise_breaker_state`: the breaker's states (`gatewise.resilience.breaker`) as numbers.
BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def breaker_collector(gauge: Gauge, configured: Sequence[str],
                      snapshot: Callable[[], Mapping[str, Mapping[str, Any]]]
                      ) -> Callable[[], None]:
    """Every configured deployment's breaker (0 closed until it has state), plus any other
    deployment the breakers know (direct `provider/model` calls, bounded by the router)."""
    ids = tuple(configured)

    def collect() -> None:
        gauge.clear()
        for dep in ids:
            gauge.set((dep,), 0.0)
        for dep, info in snapshot().items():
            gauge.set((dep,), BREAKER_STATES.get(str(info.get("state")), BREAKER_STATES["open"]))

    return collect
