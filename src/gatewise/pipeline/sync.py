"""`SyncRunner`: what the library's `_sync` methods run on.

A private event loop on a daemon thread, so sync calls reuse one loop (and so one connection
pool) instead of paying for a new loop and new connections per call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SyncRunner:
    """One per gateway, made by its first `_sync` call and closed by `Gateway.close`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="gatewise-sync")
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
