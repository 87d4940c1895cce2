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

The Redis side (the Lua scripts, the client, the event channel) is `storage.redis_breaker`,
and the subscription with its reconnect loop is `storage.pubsub`: this module decides, the
storage seam talks to Redis, and every backend failure arrives here as `StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec

from gatewise.config.schema import BreakerConfig
from gatewise.resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    JITTER,
    MAX_LEVEL,
    OPEN,
    MemoryBreakers,
    Transition,
    circuit_open,
    probe_wait,
)
from gatewise.storage.base import StoreUnavailableError, Subscription
from gatewise.storage.redis_breaker import RedisBreakerStore

log = logging.getLogger("gatewise.breaker")

_BUCKETS = 10
_MAX_LEASE_S = 120.0

_View = tuple[int, str, float, float]  # version, state, open until, probe until


class _Event(msgspec.Struct):
    d: str
    s: str
    o: float
    p: float
    v: int


class RedisBreakers:
    """Implements `Breakers` over Redis. Build it once per gateway; `aclose()` on shutdown."""

    def __init__(self, config: BreakerConfig, url: str | None = None, *,
                 client: Any = None, prefix: str = "gatewise:breaker:",
                 refresh_s: float = 1.0, op_timeout_s: float = 0.5,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        # `client`: a redis-py client to share (typed loosely: redis lives in storage/ only).
        self._store = RedisBreakerStore(url, client=client, prefix=prefix,
                                        op_timeout_s=op_timeout_s)
        self.config = config
        self.prefix = prefix
        self.channel = self._store.channel
        self.refresh_s = refresh_s
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._ttl_ms = int((2 * (config.window_s + config.open_s) + 2 * _MAX_LEASE_S) * 1000)
        # `_RECORD`'s ARGV[5..12]: the same for every call
        self._record_conf: list[str | int] = [config.failure_threshold, repr(config.failure_ratio),
                             config.min_calls, repr(config.window_s / _BUCKETS), _BUCKETS,
                             repr(config.open_s), self._ttl_ms, self.channel]
        self._view: dict[str, _View] = {}
        self._pending: dict[str, int] = {}
        # Fail-open protection while Redis is unreachable (tokens starting with "p" are its).
        self._local = MemoryBreakers(config, rng=self._rng)
        self._decode = msgspec.json.Decoder(_Event).decode
        self._sub: Subscription | None = None
        self._warned_at = 0.0
        self.degraded = False

    # -- the synchronous view (router, fast path) ------------------------------------------
    def is_closed(self, deployment_id: str) -> bool:
        v = self._view.get(deployment_id)
        return (v is None or v[1] == CLOSED) and self._local.is_closed(deployment_id)

    def available(self, deployment_id: str) -> bool:
        v = self._view.get(deployment_id)
        if v is not None and v[1] != CLOSED:
            now = self._clock()
            if now < v[2] or now < v[3]:
                return False
        return self._local.available(deployment_id)

    def state(self, deployment_id: str) -> str:
        v = self._view.get(deployment_id)
        if v is None or v[1] == CLOSED:
            return self._local.state(deployment_id)
        return HALF_OPEN if v[1] == OPEN and self._clock() >= v[2] else v[1]

    def retry_in(self, deployment_id: str) -> float:
        v = self._view.get(deployment_id)
        if v is not None and v[1] != CLOSED:
            wait = probe_wait(self.config, v[2], v[3], self._clock())
            if wait > 0:
                return wait
        return self._local.retry_in(deployment_id)

    def note_success(self, deployment_id: str) -> None:
        p = self._pending
        p[deployment_id] = p.get(deployment_id, 0) + 1

    # -- writes ----------------------------------------------------------------------------
    def _record_args(self, deployment_id: str, now: str, fails: int, add: int,
                     token: str) -> list[str | int]:
        # The jitter is drawn only when this write may open the breaker.
        jitter = repr(1.0 - JITTER * self._rng.random()) if fails else "1"
        return [now, fails, add, token, *self._record_conf, deployment_id,
                repr(self.config.min_open_s), jitter, MAX_LEVEL]

    def _apply(self, deployment_id: str, reply: list[str]) -> tuple[str, str, str]:
        """Takes a script's reply into the view; returns (decision, a, b)."""
        version = int(reply[3])
        if version == 0:  # no state in Redis (never failed, or expired): closed
            self._view.pop(deployment_id, None)
        else:
            cur = self._view.get(deployment_id)
            if cur is None or version >= cur[0]:
                self._view[deployment_id] = (version, reply[0], float(reply[1]),
                                             float(reply[2]))
        return reply[4], reply[5], reply[6]

    async def admit(self, deployment_id: str, lease_s: float) -> str | None:
        self.start()
        if not self._local.is_closed(deployment_id):
            return self._local.admit_now(deployment_id, lease_s)
        v = self._view.get(deployment_id)
        if v is None or v[1] == CLOSED:
            return None
        now = self._clock()
        if now < v[2] or now < v[3]:
            raise circuit_open(deployment_id, probe_wait(self.config, v[2], v[3], now))
        token = "r" + os.urandom(8).hex()
        lease = min(max(lease_s, 1.0), _MAX_LEASE_S)
        try:
            reply = await self._store.try_probe(
                deployment_id,
                [repr(now), repr(lease), token, self._ttl_ms, self.channel, deployment_id])
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return None  # fail open: the local breaker judges this call
        self._healthy()
        decision, _, _ = self._apply(deployment_id, reply)
        if decision == "probe":
            return token
        if decision == "admit":
            return None
        view = self._view.get(deployment_id)
        raise circuit_open(deployment_id, None if view is None else
                           probe_wait(self.config, view[2], view[3], now))

    async def record_failure(self, deployment_id: str, error_type: str,
                             token: str | None = None) -> Transition | None:
        self.start()
        if token is not None and token.startswith("p"):
            return self._local.failure_now(deployment_id, error_type, token)
        pending = self._pending.pop(deployment_id, 0)
        now = self._clock()
        try:
            reply = await self._store.record(deployment_id, self._record_args(
                deployment_id, repr(now), 1, pending + 1, token or ""))
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return self._local.failure_now(deployment_id, error_type)
        self._healthy()
        decision, a, b = self._apply(deployment_id, reply)
        if decision != OPEN:
            return None
        old = HALF_OPEN if token else CLOSED
        return Transition(deployment_id, old, OPEN, error_type, int(a), int(b),
                          open_s=float(reply[1]) - now)

    async def record_probe_success(self, deployment_id: str, token: str) -> Transition | None:
        if token.startswith("p"):
            return self._local.probe_success_now(deployment_id, token)
        try:
            reply = await self._store.record(deployment_id, self._record_args(
                deployment_id, repr(self._clock()), 0, 0, token))
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return None
        self._healthy()
        decision, a, _ = self._apply(deployment_id, reply)
        if decision != CLOSED:
            return None
        return Transition(deployment_id, HALF_OPEN, CLOSED, recovery_s=float(a))

    async def release(self, deployment_id: str, token: str) -> None:
        if token.startswith("p"):
            await self._local.release(deployment_id, token)
            return
        try:
            reply = await self._store.release(deployment_id, [
                repr(self._clock()), token, self._ttl_ms, self.channel, deployment_id])
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return
        self._apply(deployment_id, reply)

    # -- background: subscription and periodic sync ----------------------------------------
    def start(self) -> None:
        if self._sub is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            # Every (re)subscription re-reads the shared state (a transition published while
            # this replica was away is lost); every `refresh_s` a sync flushes success counts.
            self._sub = self._store.pubsub.subscribe(
                self.channel, self._on_event, on_connect=self._on_connect,
                on_error=self._trouble, tick_s=self.refresh_s, on_tick=self.sync)

    async def wait_ready(self) -> None:
        """Starts, and waits for the subscription and the first sync (start-up, tests).
        Callers bound the wait themselves (`asyncio.timeout`)."""
        self.start()
        if self._sub is not None:
            await self._sub.wait_ready()

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
            self._apply(dep, reply)

    async def _on_connect(self, resumed: bool) -> None:
        await self.sync()
        self._healthy()

    def _on_event(self, data: Any) -> None:
        try:
            e = self._decode(data)
        except (msgspec.DecodeError, TypeError):
            return
        cur = self._view.get(e.d)
        if cur is None or e.v >= cur[0]:
            self._view[e.d] = (e.v, e.s, float(e.o), float(e.p))

    def _trouble(self, exc: BaseException) -> None:
        """Redis failed: run on the local breakers, and say so (at most every 10 s)."""
        self.degraded = True
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("breaker redis unavailable; using this process's breakers",
                        extra={"error_type": type(exc).__name__})

    def _healthy(self) -> None:
        if self.degraded:
            self.degraded = False
            log.warning("breaker redis reachable again; shared breakers resumed")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out = self._local.snapshot()
        for dep, (version, st, ou, pu) in self._view.items():
            out[dep] = {"state": self.state(dep), "open_for_s": max(0.0, ou - now),
                        "probing": st == HALF_OPEN and pu > now, "version": version,
                        "shared": True}
        return out

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.aclose()  # bounded even if a cancel is lost inside redis-py
        if self._pending:
            with contextlib.suppress(StoreUnavailableError, TimeoutError):
                await asyncio.wait_for(self.sync(), 1.0)
        await self._store.aclose()
