"""Waiting for a condition instead of sleeping for a guess.

A fixed sleep is too short on a loaded machine (a flaky test) and too long everywhere else (a
slow suite). These helpers poll a predicate until it holds and fail with what was awaited when
the bound runs out; the bound is a safety net, not the expected wait, so keep it generous.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, *, what: str = "condition",
               every_s: float = 0.01) -> None:
    """Blocks (sync tests, servers in other threads or processes) until `predicate()` holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: still false after {timeout_s:.1f} s")
        time.sleep(every_s)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0, *,
                     what: str = "condition", every_s: float = 0.005) -> None:
    """The async twin of `wait_until`: yields to the loop between checks."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: still false after {timeout_s:.1f} s")
        await asyncio.sleep(every_s)
