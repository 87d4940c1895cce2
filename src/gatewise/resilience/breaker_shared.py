"""`SharedBreakers`: what every shared breaker board does, whatever store it shares through
(Redis, a SQLite file, PostgreSQL). Read `breaker_redis`'s docstring for the design.

Why one base: the local *view* (version, state, open-until, probe-until per deployment), what
a store's reply means (a token, a `CircuitOpenError`, a `Transition`), the fail-open fallback
to this process's `MemoryBreakers`, and the version check that keeps a late update from
undoing a newer state are the same for every backend, and were copied in each. A backend
supplies three writes, each one atomic transaction in its store that returns a `Reply`:
`_try_probe`, `_record` and `_release`, plus how it keeps the view fresh: a subscription to
the store's event channel (`SubscribedBreakers`: Redis, PostgreSQL) or its own polling loop
(SQLite's `start`, `aclose`).

A backend failure reaches this class as `StoreUnavailableError`; `_trouble` switches to the
local breakers and warns (at most every 10 s), `_healthy` switches back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gatewise.config.schema import BreakerConfig
from gatewise.resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    JITTER,
    OPEN,
    MemoryBreakers,
    Transition,
    circuit_open,
    probe_wait,
)
from gatewise.storage.base import PubSub, StoreUnavailableError, Subscription
from gatewise.storage.breaker_rules import Reply

log = logging.getLogger("gatewise.breaker")

BUCKETS = 10
MAX_LEASE_S = 120.0

_View = tuple[int, str, float, float]  # version, state, open until, probe until


class Event(msgspec.Struct):
    """A transition as the stores announce it (Redis PUBLISH, PostgreSQL NOTIFY)."""

    d: str
    s: str
    o: float
    p: float
    v: int


class SharedBreakers:
    """Implements `Breakers` over a shared store; subclasses plug in the store. Tokens that
    start with "p" are the local fallback's, with `token_prefix` the shared store's."""

    token_prefix = "s"
    # What the warnings call the store ("breaker <what> unavailable; ...").
    store_name = "store"

    def __init__(self, config: BreakerConfig, *, clock: Callable[[], float],
                 rng: random.Random | None, local_clock: Callable[[], float] | None = None,
                 ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._view: dict[str, _View] = {}
        self._pending: dict[str, int] = {}
        # Fail-open protection while the store is unreachable (tokens starting with "p").
        self._local = MemoryBreakers(config, rng=self._rng) if local_clock is None else \
            MemoryBreakers(config, clock=local_clock, rng=self._rng)
        self._warned_at = -1e9
        self._decode = msgspec.json.Decoder(Event).decode
        self.degraded = False

    # -- what a backend supplies -----------------------------------------------------------
    async def _try_probe(self, deployment_id: str, now: float, lease_s: float,
                         token: str) -> Reply:
        raise NotImplementedError

    async def _record(self, deployment_id: str, now: float, fails: int, add: int, token: str,
                      jitter_factor: float) -> Reply:
        """A failure (`fails` 1, with `add` calls), or a probe's verdict (`token`)."""
        raise NotImplementedError

    async def _release(self, deployment_id: str, now: float, token: str) -> Reply:
        raise NotImplementedError

    def start(self) -> None:
        """Starts keeping the view fresh (no-op outside an event loop)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

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

    async def _flush_pending(
            self, write: Callable[[float, list[tuple[str, int]]], Awaitable[None]]) -> None:
        """Hands the success counts gathered since the last flush to `write` (the failure
        ratio needs them only roughly, so a success costs a dict update, not a write); if the
        store is away they are kept for the next try."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await write(self._clock(), sorted(pending.items()))
        except StoreUnavailableError:
            for dep, n in pending.items():
                self._pending[dep] = self._pending.get(dep, 0) + n
            raise

    # -- the view ----------------------------------------------------------------------------
    def _take(self, deployment_id: str, version: int, state: str, open_until: float,
              probe_until: float) -> None:
        """Into the view, unless the view already holds a newer version."""
        if version == 0:  # no shared state (never failed, or expired): closed
            self._view.pop(deployment_id, None)
            return
        cur = self._view.get(deployment_id)
        if cur is None or version >= cur[0]:
            self._view[deployment_id] = (version, state, open_until, probe_until)

    def _on_event(self, data: Any) -> None:
        """A transition another replica announced; a malformed message is ignored."""
        try:
            e = self._decode(data)
        except (msgspec.DecodeError, TypeError):
            return
        self._take(e.d, e.v, e.s, float(e.o), float(e.p))

    def _apply(self, deployment_id: str, reply: Reply) -> Reply:
        self._take(deployment_id, reply.version, reply.state, reply.open_until,
                   reply.probe_until)
        return reply

    # -- writes ----------------------------------------------------------------------------
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
        token = self.token_prefix + os.urandom(8).hex()
        lease = min(max(lease_s, 1.0), MAX_LEASE_S)
        try:
            reply = self._apply(deployment_id,
                                await self._try_probe(deployment_id, now, lease, token))
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return None  # fail open: the local breaker judges this call
        self._healthy()
        if reply.decision == "probe":
            return token
        if reply.decision == "admit":
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
        jitter = 1.0 - JITTER * self._rng.random()
        try:
            reply = self._apply(deployment_id, await self._record(
                deployment_id, now, 1, pending + 1, token or "", jitter))
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return self._local.failure_now(deployment_id, error_type)
        self._healthy()
        if reply.decision != OPEN:
            return None
        return Transition(deployment_id, HALF_OPEN if token else CLOSED, OPEN, error_type,
                          int(reply.a), int(reply.b), open_s=reply.open_until - now)

    async def record_probe_success(self, deployment_id: str, token: str) -> Transition | None:
        if token.startswith("p"):
            return self._local.probe_success_now(deployment_id, token)
        try:
            reply = self._apply(deployment_id, await self._record(
                deployment_id, self._clock(), 0, 0, token, 1.0))
        except StoreUnavailableError as exc:
            self._trouble(exc)
            return None
        self._healthy()
        if reply.decision != CLOSED:
            return None
        return Transition(deployment_id, HALF_OPEN, CLOSED, recovery_s=reply.a)

    async def release(self, deployment_id: str, token: str) -> None:
        if token.startswith("p"):
            await self._local.release(deployment_id, token)
            return
        try:
            self._apply(deployment_id,
                        await self._release(deployment_id, self._clock(), token))
        except StoreUnavailableError as exc:
            self._trouble(exc)

    # -- health ----------------------------------------------------------------------------
    def _trouble(self, exc: BaseException) -> None:
        """The store failed: run on the local breakers, and say so (at most every 10 s)."""
        self.degraded = True
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("breaker %s unavailable; using this process's breakers",
                        self.store_name, extra={"error_type": type(exc).__name__})

    def _healthy(self) -> None:
        if self.degraded:
            self.degraded = False
            log.warning("breaker %s reachable again; shared breakers resumed", self.store_name)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out = self._local.snapshot()
        for dep, (version, st, ou, pu) in self._view.items():
            out[dep] = {"state": self.state(dep), "open_for_s": max(0.0, ou - now),
                        "probing": st == HALF_OPEN and pu > now, "version": version,
                        "shared": True}
        return out


class SubscribedBreakers(SharedBreakers):
    """A board kept fresh through a subscription to its store's event channel (Redis pub/sub,
    PostgreSQL LISTEN/NOTIFY): every (re)subscription re-reads the shared state (a transition
    published while this replica was away is lost), and every `refresh_s` a `sync` flushes
    the success counts and re-reads. A backend supplies `sync`, the channel's `_pubsub_for`
    and `_close_store`."""

    channel: str
    refresh_s: float
    _sub: Subscription | None = None

    @staticmethod
    def op_timeout(config: BreakerConfig, given: float | None) -> float:
        """A store operation's timeout: the config's `store_timeout_s` unless one is given
        (the tests of the fail-open fallback give a short one)."""
        return config.store_timeout_s if given is None else given

    def _pubsub_for(self) -> PubSub:
        """The pub/sub the subscription runs on (built on first `start`)."""
        raise NotImplementedError

    async def sync(self) -> None:
        raise NotImplementedError

    async def _close_store(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._sub is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            self._sub = self._pubsub_for().subscribe(
                self.channel, self._on_event, on_connect=self._on_connect,
                on_error=self._trouble, tick_s=self.refresh_s, on_tick=self.sync)

    async def wait_ready(self) -> None:
        """Starts, and waits for the subscription and the first sync (start-up, tests).
        Callers bound the wait themselves (`asyncio.timeout`)."""
        self.start()
        if self._sub is not None:
            await self._sub.wait_ready()

    async def _on_connect(self, resumed: bool) -> None:
        await self.sync()
        self._healthy()

    async def aclose(self) -> None:
        """Ends the subscription (bounded even if a store client loses the cancel), sends the
        success counts still pending (at most 1 s: the store may be what is failing), and
        closes the store."""
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.aclose()
        if self._pending:
            with contextlib.suppress(StoreUnavailableError, TimeoutError):
                await asyncio.wait_for(self.sync(), 1.0)
        await self._close_store()
