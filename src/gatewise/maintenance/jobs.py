"""What a maintenance job is: a name, how often it runs by default, and one async run.

Components (the cache, accounting, security, health, quality) define their jobs next to what
they clean; the scheduler (`scheduler.py`) only knows this protocol. A job may also say
`exclusive = False` (read with a default of True, so it is not part of the protocol): work on
the process's own state, run on every replica without taking the lease.
"""

from __future__ import annotations

from typing import Any, Protocol


class Job(Protocol):
    name: str
    # Seconds between runs unless `maintenance.intervals[name]` says otherwise.
    default_interval_s: float

    async def run(self) -> dict[str, Any]:
        """One run; returns a small summary (counts, names) for the log line and the report.
        Raising marks the run failed (logged, counted); the next run comes on schedule."""
        ...
