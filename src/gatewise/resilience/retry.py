"""Retry decisions for one deployment: which errors, how long to wait, and whether we may.

Three independent questions, answered by three small pieces so each can be tested alone:

- *Is this error worth another attempt on the same deployment?* (`is_retryable`) Only when the
  failure is plausibly transient: rate limited (429), server errors and overload (5xx, 529),
  timeouts, connection failures and garbage responses. Never the caller's own mistakes
  (400, context length, content filter) nor configuration problems (401/403/404): the same
  request would fail the same way, so a retry only adds load and latency. `CircuitOpenError`
  is not retried either: the breaker will not close within a backoff; the fallback moves on.
- *How long to wait?* (`Backoff`) Exponential backoff with "full jitter" (a uniform draw in
  `[0, min(max_delay, base * 2**n)]`): AWS's measurements show it spreads synchronized clients
  best. A server's `retry-after` is a floor, never shortened; one longer than `max_delay_s`
  means "not soon", so we give up and let the fallback chain serve the call instead of
  holding it.
- *May we?* (`RetryBudget`) Retries may add at most `ratio` extra load over a sliding window,
  plus a small floor (`min_per_s`) so a quiet deployment can still retry at all. During an
  outage every request fails; without a budget each one would be tried `1 + max_retries`
  times and the retries would triple the load on a service that is already down.
  Budgets are per deployment (like Envoy's per-cluster budgets): retries into a broken
  deployment are paid for by that deployment's own traffic, not by healthy neighbours'.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from gatewise.config.schema import RetryConfig
from gatewise.errors import (
    ProviderConnectionError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)

# The whole class table: anything not listed (and not a subclass) is never retried.
# ProviderOverloadedError (503/529) is a ProviderServerError.
RETRYABLE: tuple[type[BaseException], ...] = (
    RateLimitedError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderConnectionError,
    ProviderResponseError,
)

# Why a retry did not happen (call events, logs and tests read these).
NOT_RETRYABLE = "not_retryable"
EXHAUSTED = "max_retries"
RETRY_AFTER_TOO_LONG = "retry_after_too_long"
DEADLINE = "deadline"
BUDGET = "budget"
UNAVAILABLE = "deployment_unavailable"


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt on the same deployment could succeed (a retryable class, unless
    the error says otherwise, e.g. a 429 for exhausted quota)."""
    return isinstance(exc, RETRYABLE) and getattr(exc, "retryable", True) is not False


class Backoff:
    """Full-jitter exponential backoff; `retry-after` is honoured as a floor."""

    __slots__ = ("base", "max_delay", "rng")

    def __init__(self, base_s: float, max_delay_s: float, rng: random.Random) -> None:
        self.base = base_s
        self.max_delay = max_delay_s
        self.rng = rng

    def cap(self, retry: int) -> float:
        """The upper bound of the `retry`-th wait (0 = before the first retry)."""
        return min(self.max_delay, self.base * (2.0 ** min(retry, 62)))

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        d = self.rng.random() * self.cap(retry)
        if retry_after is not None and retry_after > d:
            return retry_after
        return d


class RetryBudget:
    """Retries allowed over a sliding window: `ratio * requests + min_per_s * window_s`.

    The window is a ring of `buckets` time slots, so recording and checking are O(1)
    amortised and the state is a few dozen numbers per deployment. `clock` is injectable.
    """

    __slots__ = ("_clock", "_floor", "_n", "_ratio", "_reqs", "_rets", "_slot", "_total_reqs",
                 "_total_rets", "_width")

    def __init__(self, ratio: float, window_s: float, min_per_s: float, *,
                 clock: Callable[[], float] = time.monotonic, buckets: int = 10) -> None:
        self._ratio = ratio
        self._floor = min_per_s * window_s
        self._n = buckets
        self._width = window_s / buckets
        self._clock = clock
        self._reqs = [0] * buckets
        self._rets = [0] * buckets
        self._total_reqs = 0
        self._total_rets = 0
        self._slot = int(clock() / self._width)

    def _advance(self) -> int:
        slot = int(self._clock() / self._width)
        last = self._slot
        if slot > last:
            n = self._n
            if slot - last >= n:
                self._reqs = [0] * n
                self._rets = [0] * n
                self._total_reqs = self._total_rets = 0
            else:
                reqs, rets = self._reqs, self._rets
                for s in range(last + 1, slot + 1):
                    i = s % n
                    self._total_reqs -= reqs[i]
                    self._total_rets -= rets[i]
                    reqs[i] = rets[i] = 0
            self._slot = slot
        return self._slot % self._n

    def record_request(self) -> None:
        """A first attempt (not a retry) was sent: it earns `ratio` of a retry."""
        i = self._advance()
        self._reqs[i] += 1
        self._total_reqs += 1

    def allowed(self) -> float:
        """Retries the window allows in total right now."""
        self._advance()
        return self._ratio * self._total_reqs + self._floor

    def try_spend(self) -> bool:
        """Takes one retry from the budget; False (and nothing taken) when it is spent."""
        i = self._advance()
        if self._total_rets + 1 > self._ratio * self._total_reqs + self._floor:
            return False
        self._rets[i] += 1
        self._total_rets += 1
        return True

    @property
    def requests(self) -> int:
        self._advance()
        return self._total_reqs

    @property
    def retries(self) -> int:
        self._advance()
        return self._total_rets


class RetryPolicy:
    """Everything `RetryMiddleware` decides, without any I/O or sleeping, so it is testable
    with a seeded RNG and an injected clock. One per gateway; budgets are per deployment."""

    def __init__(self, config: RetryConfig, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.max_retries = config.max_retries
        self.backoff = Backoff(config.base_delay_s, config.max_delay_s, rng or random.Random())
        self._clock = clock
        self._budgets: dict[str, RetryBudget] = {}

    def budget(self, deployment_id: str) -> RetryBudget:
        b = self._budgets.get(deployment_id)
        if b is None:
            c = self.config
            b = self._budgets[deployment_id] = RetryBudget(
                c.budget_ratio, c.budget_window_s, c.budget_min_per_s, clock=self._clock)
        return b

    def plan(self, exc: BaseException, retry: int, remaining_s: float | None) -> float | str:
        """The wait before retry number `retry` (0-based) after `exc`, or why there is none.
        Does not touch the budget: the caller spends it last, only for a retry that happens."""
        if not isinstance(exc, RETRYABLE):
            return NOT_RETRYABLE
        if retry >= self.max_retries:
            return EXHAUSTED
        retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
        if retry_after is not None and retry_after > self.backoff.max_delay:
            return RETRY_AFTER_TOO_LONG
        delay = self.backoff.delay(retry, retry_after)
        if remaining_s is not None and delay >= remaining_s:
            return DEADLINE
        return delay

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Budget use per deployment (health pages, debugging)."""
        return {dep: {"requests": b.requests, "retries": b.retries, "allowed": b.allowed()}
                for dep, b in self._budgets.items()}
