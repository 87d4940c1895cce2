"""Work a middleware starts after the answer (settling a budget, updating a window once a
stream's real size is known): kept referenced until done, and awaitable at shutdown so
nothing is cut off half-written."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("gatewise.background")


class BackgroundTasks:
    def __init__(self, what: str = "background work") -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._what = what

    def spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        """A failure is logged (its type only: messages may carry data), never lost."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed: %s", self._what, type(task.exception()).__name__)

    async def drain(self) -> None:
        """Waits for everything still running, including what those tasks start."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
