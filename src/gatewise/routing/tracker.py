"""`PerformanceTracker`: what each deployment has recently done, for routing decisions.

Per deployment it keeps in-flight count, EWMAs of latency, time to first token, error rate and
caller-reported quality, requests and tokens over a sliding minute, and a cool-down deadline
after a failure. The router's strategies read it; `TrackingMiddleware` (one attempt, innermost)
and callers (`report_quality`) write it.

Why EWMAs and one-second buckets: a routing decision must cost microseconds, so every read
is O(1) and nothing is sorted or scanned per request. State lives in this process (one event
loop, no locks); breaker state, which must agree across replicas, is the breaker's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gatewise.errors import BadRequestError, GatewayError, ProviderError, RateLimitedError

_WINDOW = 60  # seconds in the sliding usage window
_MAX_COOLDOWN_S = 300.0  # a huge retry-after never benches a deployment for longer


class MinuteWindow:
    """A count over the last 60 s in one-second buckets; add and read are amortised O(1)."""

    __slots__ = ("_buckets", "_last", "_total")

    def __init__(self) -> None:
        self._buckets = [0.0] * _WINDOW
        self._last = 0  # the newest second written or read
        self._total = 0.0

    def _advance(self, sec: int) -> None:
        last = self._last
        if sec <= last:
            return
        b = self._buckets
        if sec - last >= _WINDOW:
            for i in range(_WINDOW):
                b[i] = 0.0
            self._total = 0.0
        else:
            for s in range(last + 1, sec + 1):
                i = s % _WINDOW
                self._total -= b[i]
                b[i] = 0.0
        self._last = sec

    def add(self, now: float, amount: float = 1.0) -> None:
        sec = int(now)
        self._advance(sec)
        if sec < self._last - _WINDOW + 1:
            return  # older than the window (a clock step back): nothing to count
        self._buckets[sec % _WINDOW] += amount
        self._total += amount

    def total(self, now: float) -> float:
        self._advance(int(now))
        return max(0.0, self._total)

    def frees_in(self, now: float) -> float:
        """Seconds until the oldest counted second leaves the window (0 if nothing counted)."""
        sec = int(now)
        self._advance(sec)
        b = self._buckets
        for age in range(_WINDOW - 1, -1, -1):
            if b[(sec - age) % _WINDOW] > 0:
                return float(_WINDOW - age) - (now - sec)
        return 0.0


class DeploymentStats:
    """One deployment's recent behaviour. `None` EWMAs mean "never observed"."""

    __slots__ = (
        "cooldown_until",
        "error_rate",
        "errors",
        "in_flight",
        "latency",
        "quality",
        "quality_n",
        "requests",
        "rpm",
        "successes",
        "tpm",
        "ttft",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.latency: float | None = None
        self.ttft: float | None = None
        self.error_rate = 0.0
        self.quality: float | None = None
        self.quality_n = 0
        self.requests = 0
        self.successes = 0
        self.errors = 0
        self.cooldown_until = 0.0
        self.rpm = MinuteWindow()
        self.tpm = MinuteWindow()


def is_deployment_fault(exc: BaseException) -> bool:
    """Whether a failure says something about the deployment (so it counts as an error and
    starts a cool-down): upstream errors except the caller's own 400s. Cancellation (a hedge
    loser, a client gone) and gateway-side request errors say nothing about it."""
    if isinstance(exc, ProviderError):
        return not isinstance(exc, BadRequestError)
    return isinstance(exc, Exception) and not isinstance(exc, GatewayError)


class PerformanceTracker:
    """Per-deployment counters and EWMAs. `clock` is injectable so tests control time."""

    def __init__(self, *, cooldown_s: float = 5.0, alpha: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self.alpha = alpha
        self.clock = clock
        # Deployment id → stats. Strategies read it directly (`by_id.get`) on the hot path;
        # only the tracker's methods write.
        self.by_id: dict[str, DeploymentStats] = {}

    def stats(self, dep_id: str) -> DeploymentStats:
        s = self.by_id.get(dep_id)
        if s is None:
            s = self.by_id[dep_id] = DeploymentStats()
        return s

    def peek(self, dep_id: str) -> DeploymentStats | None:
        """The stats if this deployment was ever seen; reading never creates entries."""
        return self.by_id.get(dep_id)

    # -- writes (TrackingMiddleware) ---------------------------------------------------------
    def started(self, dep_id: str) -> DeploymentStats:
        s = self.stats(dep_id)
        s.in_flight += 1
        s.requests += 1
        s.rpm.add(self.clock())
        return s

    def first_token(self, s: DeploymentStats, ttft: float) -> None:
        s.ttft = ttft if s.ttft is None else s.ttft + self.alpha * (ttft - s.ttft)

    def succeeded(self, s: DeploymentStats, latency: float | None, tokens: int = 0) -> None:
        s.in_flight -= 1
        s.successes += 1
        a = self.alpha
        if latency is not None:
            s.latency = latency if s.latency is None else s.latency + a * (latency - s.latency)
        s.error_rate -= a * s.error_rate
        if tokens:
            s.tpm.add(self.clock(), tokens)

    def failed(self, s: DeploymentStats, exc: BaseException, tokens: int = 0) -> None:
        s.in_flight -= 1
        if tokens:
            s.tpm.add(self.clock(), tokens)
        if not is_deployment_fault(exc):
            return
        s.errors += 1
        s.error_rate += self.alpha * (1.0 - s.error_rate)
        if self.cooldown_s > 0:
            pause = self.cooldown_s
            if isinstance(exc, RateLimitedError) and exc.retry_after:
                pause = max(pause, min(exc.retry_after, _MAX_COOLDOWN_S))
            s.cooldown_until = max(s.cooldown_until, self.clock() + pause)

    def abandoned(self, s: DeploymentStats) -> None:
        """Released without a verdict (cancelled: a hedge lost or the client left)."""
        s.in_flight -= 1

    def report_quality(self, dep_id: str, score: float) -> None:
        """A caller's judgement of an answer from this deployment, 0 (bad) to 1 (good)."""
        if not 0.0 <= score <= 1.0:
            raise ValueError("a quality score is between 0 and 1")
        s = self.stats(dep_id)
        s.quality = score if s.quality is None else s.quality + self.alpha * (score - s.quality)
        s.quality_n += 1

    def cool_down(self, dep_id: str, seconds: float) -> None:
        """Benches a deployment now (an operator action, or another component's verdict)."""
        s = self.stats(dep_id)
        s.cooldown_until = max(s.cooldown_until, self.clock() + seconds)

    # -- reads (strategies) ------------------------------------------------------------------
    def cooling_down(self, dep_id: str) -> bool:
        s = self.by_id.get(dep_id)
        return s is not None and s.cooldown_until > self.clock()

    def in_flight(self, dep_id: str) -> int:
        s = self.by_id.get(dep_id)
        return 0 if s is None else s.in_flight

    def requests_per_minute(self, dep_id: str) -> float:
        s = self.by_id.get(dep_id)
        return 0.0 if s is None else s.rpm.total(self.clock())

    def tokens_per_minute(self, dep_id: str) -> float:
        s = self.by_id.get(dep_id)
        return 0.0 if s is None else s.tpm.total(self.clock())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Everything known, per deployment id (health pages, the REPL, debugging)."""
        now = self.clock()
        return {
            dep_id: {
                "in_flight": s.in_flight,
                "requests": s.requests,
                "successes": s.successes,
                "errors": s.errors,
                "error_rate": round(s.error_rate, 4),
                "latency_ewma_s": s.latency,
                "ttft_ewma_s": s.ttft,
                "quality": s.quality,
                "quality_reports": s.quality_n,
                "requests_per_minute": s.rpm.total(now),
                "tokens_per_minute": s.tpm.total(now),
                "cooldown_s": max(0.0, s.cooldown_until - now),
            }
            for dep_id, s in self.by_id.items()
        }
