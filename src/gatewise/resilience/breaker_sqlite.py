"""`SQLiteBreakers`: the same breakers as `MemoryBreakers`, shared by the workers of one host
through a SQLite file in the state dir (`gatewise serve --workers N` without Redis).

Why shared: with N workers each learning on its own, a dead deployment gets N times the
failures before every worker stops sending to it, and N probes when it may be back. Here one
worker's failures open the breaker for all, and exactly one worker probes.

It follows `breaker_redis.RedisBreakers` (read its docstring), and shares with it everything
but the store (`breaker_shared.SharedBreakers`): each process keeps a local
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
import random
import time
from collections.abc import Callable
from pathlib import Path

from gatewise.config.schema import BreakerConfig
from gatewise.resilience.breaker import MAX_LEVEL
from gatewise.resilience.breaker_shared import BUCKETS, SharedBreakers
from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.sqlite_breaker import BreakerRules, Reply, SQLiteBreakerStore

FILE_NAME = "breakers.db"


class SQLiteBreakers(SharedBreakers):
    """Implements `Breakers` over a SQLite file. Build it once per gateway; `aclose()` on
    shutdown."""

    token_prefix = "s"
    store_name = "state file"

    def __init__(self, config: BreakerConfig, path: str | Path, *, refresh_s: float = 1.0,
                 watch_s: float = 0.1, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        super().__init__(config, clock=clock, rng=rng, local_clock=clock)
        self.refresh_s = refresh_s
        self.watch_s = watch_s
        self._store = SQLiteBreakerStore(path, BreakerRules(
            config.failure_threshold, config.failure_ratio, config.min_calls,
            config.window_s / BUCKETS, BUCKETS, config.min_open_s, config.open_s, MAX_LEVEL))
        self._seen = 0  # the highest version read from the change feed
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _try_probe(self, deployment_id: str, now: float, lease_s: float,
                         token: str) -> Reply:
        return await self._store.try_probe(deployment_id, now, lease_s, token)

    async def _record(self, deployment_id: str, now: float, fails: int, add: int, token: str,
                      jitter_factor: float) -> Reply:
        return await self._store.record(deployment_id, now, fails, add, token, jitter_factor)

    async def _release(self, deployment_id: str, now: float, token: str) -> Reply:
        return await self._store.release(deployment_id, token)

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
        """Writes the success counts gathered since the last flush."""
        await self._flush_pending(self._store.flush)

    async def sync(self) -> None:
        """What the background task does over a refresh interval: flushes the success counts,
        then takes every change since the last look (as the other shared boards' `sync`)."""
        await self.flush()
        await self.watch()

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
