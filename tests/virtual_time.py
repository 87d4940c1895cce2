"""Virtual time for background loops that take an injected clock and sleep.

`VirtualTime.sleep` parks the caller until the test moves time past its wake-up; `run_until`
wakes sleepers in time order, letting each run until it sleeps again, so a schedule of hours
runs in milliseconds and every loop sees the same, consistent clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualTime:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._seq), fut))
        await fut

    @staticmethod
    async def settle(rounds: int = 50) -> None:
        """Lets every runnable task run until it blocks (no real I/O in between)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def run_until(self, t: float) -> None:
        """Moves time to `t`, waking every sleeper due on the way, in order."""
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= t:
            when, _, fut = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not fut.done():
                fut.set_result(None)
            await self.settle()
        self.now = max(self.now, t)

    async def advance(self, seconds: float) -> None:
        await self.run_until(self.now + seconds)
