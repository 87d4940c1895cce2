"""`Flusher`: the background task behind write-behind buffers (the usage ledger, quality rows).

Both keep records in memory on the hot path and need the same loop: wake every interval, or
sooner when a batch is full; back off while the store keeps failing; never die of one bad
flush; stop promptly at shutdown, never in the middle of a write. The owner keeps its records
and its `flush`; this keeps the timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gatewise.storage.tasks import stop_task

log = logging.getLogger("gatewise.pipeline")

MAX_BACKOFF_S = 30.0


class Flusher:
    """Calls `flush` every `interval_s`, at once after `wake()`, and every
    `interval_s * 2**failures` (at most `MAX_BACKOFF_S`) while the owner reports failures
    (`failures`, which the owner's `flush` counts up on a store error and resets on success).
    """

    def __init__(self, flush: Callable[[], Awaitable[Any]], *, interval_s: float, name: str,
                 what: str) -> None:
        self._flush = flush
        self.interval_s = interval_s
        self._name = name
        self._what = what
        self.failures = 0
        # The loop sleeps on a plain future that `wake` resolves early. Not
        # `wait_for(event.wait())`: on 3.11 a cancel racing the event being set is lost, and
        # shutdown would wait forever for a flusher that never stops.
        self._waiter: asyncio.Future[None] | None = None
        self._wake_pending = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def wake(self) -> None:
        """A batch is full: flush now rather than at the next interval (no awaits)."""
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        else:
            self._wake_pending = True

    def start(self) -> None:
        """Starts the loop (needs a running event loop); a second call does nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Cancels the loop and waits for it; the owner then flushes what is left."""
        task, self._task = self._task, None
        if task is not None:  # cancelled again if a store client swallows the cancel
            await stop_task(task, task.get_name())

    async def _run(self) -> None:
        while True:
            delay = self.interval_s if not self.failures else min(
                MAX_BACKOFF_S, self.interval_s * 2 ** self.failures)
            if self._wake_pending:
                self._wake_pending = False
            else:
                loop = asyncio.get_running_loop()
                self._waiter = waiter = loop.create_future()
                timer = loop.call_later(delay, _resolve, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
            try:
                # Shielded: a stop that lands mid-flush ends the loop, not the write. The
                # owner's batch is already out of its pending list, so a cancelled write would
                # lose it; the owner's final flush waits for this one (its lock) instead.
                await asyncio.shield(self._flush())
            except Exception as exc:  # the loop must outlive any one bad flush
                self.failures += 1
                log.error("%s failed (%s)", self._what, type(exc).__name__)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
