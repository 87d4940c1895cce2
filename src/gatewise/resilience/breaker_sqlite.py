"""`SQLiteBreakers`: the same breakers as `MemoryBreakers`, shared by the workers of one host
through a SQLite file in the state dir (`gatewise serve --workers N` without Redis).

Why shared: with N workers each learning on its own, a dead deployment gets N times the
failures before every worker stops sending to it, and N probes when it may be back. Here one
worker's failures open the breaker for all, and exactly one worker probes.

It follows `breaker_redis.RedisBreakers` (read its docstring): each process keeps a local
*view* (state, open-until, probe-until, version per deployment), so `available()` and a
success never touch the file; successes are counted locally and flushed every `refresh_s`;
every write (a failure, a probe, its verdict, a release) is one `BEGIN IMMEDIATE` transaction
that returns the resulting state; versions order updates so a late one never undoes a newer
state; and if the file fails (unwritable, locked too long, gone) it fails open to this
process's own `MemoryBreakers` and warns, returning to the shared state once it answers.

What replaces pub/sub: a change feed. Versions come from one counter bumped in each
transaction (`storage.sqlite_breaker`), so every `watch_s` (0.1 s) a background task asks for
the rows with a version above the last one it saw: an indexed read on the store's own thread
that returns nothing when nothing changed (tens of microseconds), and the only cost of an idle
breaker. A breaker opened by worker A is skipped by worker B within `watch_s` plus one read
(measured ~0.1 s, against a publish round trip with Redis): in that time B may send a few
more calls, each a failure it records into the shared window, not N separate windows.
`PRAGMA data_version` would be as cheap but says only "something changed" (success flushes
too), and a global version row would need a second read to find what; the feed does both.

Time is the wall clock (`clock`, injectable): the open-until and lease times are compared by
every worker, and on one host they share that clock. Tokens starting with "p" are the local
fallback's, "s" the shared store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.sqlite_breaker import BreakerRules, Reply, SQLiteBreakerStore

log = logging.getLogger("gatewise.breaker")

_BUCKETS = 10
_MAX_LEASE_S = 120.0
FILE_NAME = "breakers.db"

_View = tuple[int, str, float, float]  # version, state, open until, probe until


class SQLiteBreakers:
    """Implements `Breakers` over a SQLite file. Build it once per gateway; `aclose()` on
    shutdown."""

    def __init__(self, config: BreakerConfig, path: str | Path, *, refresh_s: float = 1.0,
                 watch_s: float = 0.1, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.refresh_s = refresh_s
        self.watch_s = watch_s
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._store = SQLiteBreakerStore(path, BreakerRules(
            config.failure_threshold, config.failure_ratio, config.min_calls,
            config.window_s / _BUCKETS, _BUCKETS, config.min_open_s, config.open_s, MAX_LEVEL))
        self._view: dict[str, _View] = {}
        self._pending: dict[str, int] = {}
        self._seen = 0  # the highest version read from the change feed
        # Fail-open protection while the file fails (tokens starting with "p" are its).
        self._local = MemoryBreakers(config, clock=clock, rng=self._rng)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._warned_at = -1e9
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
    def _take(self, deployment_id: str, version: int, state: str, open_until: float,
              probe_until: float) -> None:
        """Into the view, unless the view already holds a newer version."""
        if version == 0:  # no shared state (never failed): closed
            self._view.pop(deployment_id, None)
            return
        cur = self._view.get(deployment_id)
        if cur is None or version >= cur[0]:
            self._view[deployment_id] = (version, state, open_until, probe_until)

    def _apply(self, deployment_id: str, reply: Reply) -> Reply:
        self._take(deployment_id, reply.version, reply.state, reply.open_until,
                   reply.probe_until)
        return reply

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
        token = "s" + os.urandom(8).hex()
        lease = min(max(lease_s, 1.0), _MAX_LEASE_S)
        try:
            reply = self._apply(deployment_id,
                                await self._store.try_probe(deployment_id, now, lease, token))
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
            reply = self._apply(deployment_id, await self._store.record(
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
            reply = self._apply(deployment_id, await self._store.record(
                deployment_id, self._clock(), 0, 0, token))
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
            self._apply(deployment_id, await self._store.release(deployment_id, token))
        except StoreUnavailableError as exc:
            self._trouble(exc)

    # -- background: the change feed and the periodic flush --------------------------------
    def start(self) -> None:
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._task = loop.create_task(self._run(), name="gatewise-breaker-sqlite")

    async def wait_ready(self) -> None:
        """Starts, and waits for the first read of the shared state (start-up, tests).
        Callers bound the wait themselves (`asyncio.timeout`)."""
        self.start()
        await self._ready.wait()

    async def _run(self) -> None:
        flushed_at = time.monotonic()
        while True:
            try:
                await self.watch()
                if time.monotonic() - flushed_at >= self.refresh_s:
                    flushed_at = time.monotonic()
                    await self.flush()
                self._healthy()
            except StoreUnavailableError as exc:
                self._trouble(exc)
            self._ready.set()
            await asyncio.sleep(self.watch_s)

    async def watch(self) -> None:
        """Takes every change since the last look into the view."""
        seq, rows = await self._store.changes(self._seen)
        if seq < self._seen:  # the file was replaced: its versions started again
            self._view.clear()
        for r in rows:
            self._take(r.deployment, r.version, r.state, r.open_until, r.probe_until)
        self._seen = seq

    async def flush(self) -> None:
        """Writes the success counts gathered since the last flush (the failure ratio needs
        them only roughly, so a success costs a dict update, not a transaction)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await self._store.flush(self._clock(), sorted(pending.items()))
        except StoreUnavailableError:
            for dep, n in pending.items():  # keep the counts for the next try
                self._pending[dep] = self._pending.get(dep, 0) + n
            raise

    def _trouble(self, exc: BaseException) -> None:
        """The file failed: run on the local breakers, and say so (at most every 10 s)."""
        self.degraded = True
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("breaker state file unavailable; using this process's breakers",
                        extra={"error_type": type(exc).__name__})

    def _healthy(self) -> None:
        if self.degraded:
            self.degraded = False
            log.warning("breaker state file usable again; shared breakers resumed")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out = self._local.snapshot()
        for dep, (version, st, ou, pu) in self._view.items():
            out[dep] = {"state": self.state(dep), "open_for_s": max(0.0, ou - now),
                        "probing": st == HALF_OPEN and pu > now, "version": version,
                        "shared": True}
        return out

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending:
            with contextlib.suppress(StoreUnavailableError, TimeoutError):
                await asyncio.wait_for(self.flush(), 1.0)
        await self._store.aclose()
