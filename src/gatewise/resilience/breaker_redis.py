"""`RedisBreakers`: the same breakers as `MemoryBreakers`, shared by every gateway replica.

Why shared: with N replicas each learning on its own, a dead deployment gets N times the
failures before everyone stops sending to it, and N probes when it may be back. Here one
replica's failures open the breaker for all, and exactly one replica probes.

How it stays fast: the router needs a synchronous `available()` on every request, so each
process keeps a local *view* (state, open-until, probe-until, version per deployment) and
never asks Redis on the success path. The view is refreshed three ways:

1. every write (a failure, a probe, a probe's verdict) runs one atomic Lua script that
   returns the resulting state;
2. every transition is published on `<prefix>events`; each replica subscribes, so a
   breaker opened by replica A is skipped by replica B within a publish round trip;
3. every `refresh_s` one pipelined round trip flushes this process's success counts and
   re-reads every known deployment (a safety net for a missed message or a restart).

A version number per deployment orders updates, so a late message never undoes a newer state.
Successes are counted locally and flushed with the next write or refresh (the failure ratio
only needs them roughly), so a healthy request costs a dict update and no Redis call.

Atomicity: check-and-set lives in Lua (`try_probe` grants the half-open probe to one caller
across all replicas, with a lease so a crashed prober cannot block recovery; `record`
updates the sliding window and decides to open in the same step). The open period's backoff
(`min_open_s` doubled per failed probe up to `open_s`, see `breaker.open_interval`) is
counted in the same hash (`n`), so every replica backs off together; the jitter is drawn
here (`rng`, injectable) and passed in, so the scripts stay deterministic. Time comes from this
process's wall clock (`clock`, injectable); replicas' clocks need only agree to well within
`open_s`. All of a deployment's state is one hash, so scripts touch one key (cluster-safe).

If Redis is unreachable, the breaker fails open to this process's own `MemoryBreakers`
(protection continues per replica, traffic is never blocked by a Redis outage) and warns;
it returns to the shared state once Redis answers again.

The view, what a reply means and the fail-open fallback are `breaker_shared.SharedBreakers`
(shared with the SQLite and PostgreSQL boards); this class supplies the Redis writes and the
subscription. The Redis side (the Lua scripts, the client, the event channel) is `storage.redis_breaker`,
and the subscription with its reconnect loop is `storage.pubsub`: this module decides, the
storage seam talks to Redis, and every backend failure arrives here as `StoreUnavailableError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from gatewise.config.schema import BreakerConfig
from gatewise.resilience.breaker import MAX_LEVEL
from gatewise.resilience.breaker_shared import BUCKETS, MAX_LEASE_S, SubscribedBreakers
from gatewise.storage.base import PubSub, StoreUnavailableError
from gatewise.storage.breaker_rules import Reply
from gatewise.storage.redis_breaker import RedisBreakerStore


def _reply(raw: list[str]) -> Reply:
    """A script's reply: state, open until, probe until, version, decision, a, b."""
    return Reply(raw[0], float(raw[1]), float(raw[2]), int(raw[3]), raw[4], float(raw[5]),
                 float(raw[6]))


class RedisBreakers(SubscribedBreakers):
    """Implements `Breakers` over Redis. Build it once per gateway; `aclose()` on shutdown."""

    token_prefix = "r"
    store_name = "redis"

    def __init__(self, config: BreakerConfig, url: str | None = None, *,
                 client: Any = None, prefix: str = "gatewise:breaker:",
                 refresh_s: float = 1.0, op_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        # `client`: a redis-py client to share (typed loosely: redis lives in storage/ only).
        super().__init__(config, clock=clock, rng=rng)
        timeout = self.op_timeout(config, op_timeout_s)
        self._store = RedisBreakerStore(url, client=client, prefix=prefix, op_timeout_s=timeout)
        self.prefix = prefix
        self.channel = self._store.channel
        self.refresh_s = refresh_s
        self._ttl_ms = int((2 * (config.window_s + config.open_s) + 2 * MAX_LEASE_S) * 1000)
        # `_RECORD`'s ARGV[5..12]: the same for every call
        self._record_conf: list[str | int] = [config.failure_threshold, repr(config.failure_ratio),
                             config.min_calls, repr(config.window_s / BUCKETS), BUCKETS,
                             repr(config.open_s), self._ttl_ms, self.channel]

    # -- the three writes, as Lua scripts ------------------------------------------------------
    def _record_args(self, deployment_id: str, now: str, fails: int, add: int,
                     token: str, jitter: float = 1.0) -> list[str | int]:
        return [now, fails, add, token, *self._record_conf, deployment_id,
                repr(self.config.min_open_s), repr(jitter) if fails else "1", MAX_LEVEL]

    async def _try_probe(self, deployment_id: str, now: float, lease_s: float,
                         token: str) -> Reply:
        return _reply(await self._store.try_probe(
            deployment_id,
            [repr(now), repr(lease_s), token, self._ttl_ms, self.channel, deployment_id]))

    async def _record(self, deployment_id: str, now: float, fails: int, add: int, token: str,
                      jitter_factor: float) -> Reply:
        return _reply(await self._store.record(deployment_id, self._record_args(
            deployment_id, repr(now), fails, add, token, jitter_factor)))

    async def _release(self, deployment_id: str, now: float, token: str) -> Reply:
        return _reply(await self._store.release(deployment_id, [
            repr(now), token, self._ttl_ms, self.channel, deployment_id]))

    # -- background: subscription and periodic sync ----------------------------------------
    def _pubsub_for(self) -> PubSub:
        return self._store.pubsub

    async def sync(self) -> None:
        """One round trip: flushes success counts and re-reads every known deployment."""
        deps = set(self._view) | set(self._pending)
        if not deps:
            return
        pending, self._pending = self._pending, {}
        now = repr(self._clock())
        order = sorted(deps)
        try:
            replies = await self._store.record_many(
                [(dep, self._record_args(dep, now, 0, pending.get(dep, 0), "")) for dep in order])
        except StoreUnavailableError:
            for dep, n in pending.items():  # keep the counts for the next try
                self._pending[dep] = self._pending.get(dep, 0) + n
            raise
        for dep, reply in zip(order, replies, strict=True):
            self._apply(dep, _reply(reply))

    async def _close_store(self) -> None:
        await self._store.aclose()
