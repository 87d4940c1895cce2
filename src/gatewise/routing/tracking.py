"""Feeds the router's `PerformanceTracker` from every attempt (innermost, before the call).

Once per attempt, so each retry and failover counts against the deployment that served it:
in-flight while running, requests and tokens per minute, latency of complete answers, time to
the first chunk of streams, errors (which start a cool-down). A stream is measured until it
ends (`ChunkStream.on_finish`), not when its first chunk returns up the chain; a stream the
client abandoned releases its slot without counting as success or failure.

Latency and time to first chunk are kept apart on purpose: a stream's total time depends on
how long the answer is, and would make a deployment serving long answers look slow.
"""

from __future__ import annotations

import time
from typing import Any

from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import Cancelled, ChunkStream
from gatewise.routing.tracker import DeploymentStats, PerformanceTracker


class TrackingMiddleware:
    def __init__(self, tracker: PerformanceTracker) -> None:
        self.tracker = tracker

    async def __call__(self, call: Call, next: Handler) -> Any:
        dep = call.deployment
        assert dep is not None, "the router runs before tracking"
        tracker = self.tracker
        stats = tracker.started(dep.id)
        t0 = time.perf_counter()
        try:
            result = await next(call)
        except Exception as exc:
            tracker.failed(stats, exc)
            raise
        except BaseException:
            tracker.abandoned(stats)
            raise
        if isinstance(result, ChunkStream):
            tracker.first_token(stats, time.perf_counter() - t0)
            result.on_finish(_StreamDone(tracker, stats))
            return result
        u = call.usage
        tracker.succeeded(stats, time.perf_counter() - t0, u.total_tokens if u else 0)
        return result


class _StreamDone:
    __slots__ = ("stats", "tracker")

    def __init__(self, tracker: PerformanceTracker, stats: DeploymentStats) -> None:
        self.tracker = tracker
        self.stats = stats

    def __call__(self, call: Call, error: BaseException | None) -> None:
        u = call.usage
        tokens = u.total_tokens if u else 0
        if error is None:
            self.tracker.succeeded(self.stats, None, tokens)
        elif isinstance(error, Cancelled):
            self.tracker.abandoned(self.stats)
        else:
            self.tracker.failed(self.stats, error, tokens)
