"""Work a middleware starts after the answer (settling a budget, updating a window once a
stream's real size is known): kept referenced until done, and awaitable at shutdown so
nothing is cut off half-written."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits for everything still running, including what those tasks start."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
