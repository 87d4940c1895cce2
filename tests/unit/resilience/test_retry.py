"""Retries: which errors, how long to wait, the budget, and the deadline.

Randomness is seeded, waits are recorded instead of slept, and the budget runs on a fake clock,
so every number below is exact and the file runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from gatewise.config.schema import RetryConfig, RouterConfig
from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContentFilteredError,
    ContextLengthExceededError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.observability.incidents import IncidentRecorder
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.resilience.retry import (
    DEADLINE,
    EXHAUSTED,
    NOT_RETRYABLE,
    RETRY_AFTER_TOO_LONG,
    Backoff,
    RetryBudget,
    RetryPolicy,
    is_retryable,
)
from gatewise.resilience.retry_middleware import RetryMiddleware, transport_bound
from gatewise.transport.base import Timeouts
from tests.unit.resilience.support import FakeClock, Sleeps, Upstream, chat_call


def _err(cls: type[GatewayError], **kw: object) -> GatewayError:
    return cls("boom", provider="fake", model="m", **kw)  # type: ignore[call-arg]


# -- the class table ------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "retry"), [
    (RateLimitedError("429", retry_after=1.0), True),
    (RateLimitedError("429"), True),
    (ProviderServerError("500"), True),
    (ProviderOverloadedError("503/529"), True),
    (ProviderTimeoutError("timeout"), True),
    (ProviderConnectionError("refused/reset"), True),
    (ProviderResponseError("garbage"), True),
    (BadRequestError("400"), False),
    (ContextLengthExceededError("context"), False),
    (ContentFilteredError("filtered"), False),
    (AuthenticationError("401"), False),
    (PermissionDeniedError("403"), False),
    (ModelNotFoundError("404"), False),
    (CircuitOpenError("open"), False),
    (InvalidRequestError("caller"), False),
    (RuntimeError("a bug"), False),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v))
def test_only_transient_failures_are_retried(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry


# -- backoff ----------------------------------------------------------------------------------

def test_full_jitter_stays_within_the_exponential_cap_and_uses_all_of_it() -> None:
    b = Backoff(0.25, 8.0, random.Random(7))
    for retry, cap in enumerate([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        draws = [b.delay(retry) for _ in range(2000)]
        assert all(0.0 <= d <= cap for d in draws)
        # full jitter: the whole range is used, not a narrow band around the cap
        assert min(draws) < 0.05 * cap and max(draws) > 0.95 * cap
        assert 0.45 * cap < sum(draws) / len(draws) < 0.55 * cap


def test_a_seeded_backoff_is_reproducible() -> None:
    a = Backoff(0.1, 5.0, random.Random(42))
    b = Backoff(0.1, 5.0, random.Random(42))
    assert [a.delay(i % 6) for i in range(50)] == [b.delay(i % 6) for i in range(50)]


def test_retry_after_is_a_floor_never_shortened() -> None:
    b = Backoff(0.25, 8.0, random.Random(1))
    assert all(b.delay(0, retry_after=0.7) == 0.7 for _ in range(100))  # jitter cap 0.25 < 0.7
    draws = [b.delay(5, retry_after=0.7) for _ in range(500)]  # cap 8: jitter may exceed it
    assert all(d >= 0.7 for d in draws) and max(draws) > 7.0


def test_plan_gives_up_for_the_right_reasons() -> None:
    p = RetryPolicy(RetryConfig(max_retries=2, base_delay_s=0.1, max_delay_s=2.0),
                    rng=random.Random(3))
    assert p.plan(BadRequestError("400"), 0, 10.0) == NOT_RETRYABLE
    assert p.plan(ProviderServerError("500"), 2, 10.0) == EXHAUSTED
    assert p.plan(RateLimitedError("429", retry_after=7.0), 0, 30.0) == RETRY_AFTER_TOO_LONG
    assert p.plan(RateLimitedError("429", retry_after=1.5), 0, 1.0) == DEADLINE
    assert p.plan(RateLimitedError("429", retry_after=1.5), 0, 10.0) == 1.5
    delay = p.plan(ProviderServerError("500"), 1, 10.0)
    assert isinstance(delay, float) and 0.0 <= delay <= 0.2


# -- the budget -------------------------------------------------------------------------------

def test_budget_under_sustained_failure_never_exceeds_the_ratio() -> None:
    """Every request fails for two minutes and wants 2 retries; retries in any window stay
    within 20 % of the requests plus the floor, instead of doubling the load."""
    clock = FakeClock()
    ratio, window, floor_per_s = 0.2, 10.0, 1.0
    budget = RetryBudget(ratio, window, floor_per_s, clock=clock)
    per_second, seconds = 50, 120
    history: list[tuple[float, int, int]] = []  # (time, requests, retries) per step
    for step in range(seconds * per_second):
        clock.now = 1000.0 + step / per_second
        budget.record_request()
        retries = 0
        for _ in range(2):
            if not budget.try_spend():
                break
            retries += 1
        history.append((clock.now, 1, retries))
    total_req = sum(h[1] for h in history)
    total_ret = sum(h[2] for h in history)
    # Over any 10 s window (checked at every second boundary), retries <= 20 % + floor.
    for start in range(seconds - int(window) + 1):
        lo, hi = 1000.0 + start, 1000.0 + start + window
        reqs = sum(h[1] for h in history if lo <= h[0] < hi)
        rets = sum(h[2] for h in history if lo <= h[0] < hi)
        assert rets <= ratio * reqs + floor_per_s * window + 1e-9, (start, reqs, rets)
    # ...and the budget is really spent (retries happen), at about the ratio overall.
    assert 0.19 * total_req <= total_ret <= 0.2 * total_req + floor_per_s * seconds
    # Without a budget this outage would have sent 3x the requests; here, 1.2x and a bit.
    assert (total_req + total_ret) / total_req < 1.25


def test_the_floor_lets_a_quiet_deployment_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, 10.0, 0.5, clock=clock)  # floor: 5 retries per 10 s
    budget.record_request()
    assert [budget.try_spend() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(10.0)  # the window slides past them
    assert budget.try_spend()


def test_a_zero_budget_allows_no_retry() -> None:
    budget = RetryBudget(0.0, 10.0, 0.0, clock=FakeClock())
    for _ in range(100):
        budget.record_request()
    assert not budget.try_spend() and budget.retries == 0


def test_budgets_are_per_deployment() -> None:
    p = RetryPolicy(RetryConfig(budget_ratio=0.0, budget_min_per_s=0.1, budget_window_s=10.0),
                    clock=FakeClock())
    assert p.budget("a").try_spend() and not p.budget("a").try_spend()
    assert p.budget("b").try_spend()  # b's budget is its own
    assert set(p.snapshot()) == {"a", "b"}


# -- the middleware ---------------------------------------------------------------------------

def _mw(sleeps: Sleeps | None = None, **retry: object) -> RetryMiddleware:
    cfg = RouterConfig(retry=RetryConfig(**{"base_delay_s": 0.1, "max_delay_s": 2.0,
                                            "max_retries": 2, **retry}))  # type: ignore[arg-type]
    return RetryMiddleware(cfg, rng=random.Random(0), sleep=sleeps or Sleeps(),
                           budget_clock=FakeClock())


async def test_a_retryable_failure_is_retried_up_to_max_retries() -> None:
    sleeps = Sleeps()
    mw = _mw(sleeps)
    up = Upstream(_err(ProviderServerError))
    call = chat_call()
    with pytest.raises(ProviderServerError):
        await mw(call, up)
    assert up.calls == 3 and call.attempts == 3
    assert len(call.failures) == 3
    assert len(sleeps.waits) == 2 and 0 <= sleeps.waits[0] <= 0.1 and 0 <= sleeps.waits[1] <= 0.2
    retries = [d for name, d in call.events if name == "retry"]
    assert [r["retry"] for r in retries] == [1, 2]
    assert retries[0]["error_type"] == "ProviderServerError"
    assert mw.retries.get(("chat:fake/echo", "ProviderServerError")) == 2


async def test_a_transient_failure_then_success_returns_the_success() -> None:
    mw = _mw()
    up = Upstream(_err(ProviderConnectionError), _err(ProviderOverloadedError), "ok")
    call = chat_call()
    assert await mw(call, up) == "ok"
    assert up.calls == 3
    assert [type(e).__name__ for e in call.failures] == ["ProviderConnectionError",
                                                          "ProviderOverloadedError"]


@pytest.mark.parametrize("cls", [BadRequestError, ContextLengthExceededError,
                                 ContentFilteredError, AuthenticationError,
                                 PermissionDeniedError, ModelNotFoundError])
async def test_a_non_retryable_error_reaches_the_upstream_exactly_once(
        cls: type[GatewayError]) -> None:
    sleeps = Sleeps()
    up = Upstream(_err(cls))
    call = chat_call()
    with pytest.raises(cls):
        await _mw(sleeps)(call, up)
    assert up.calls == 1 and sleeps.waits == [] and call.failures[0].__class__ is cls


async def test_retry_after_is_honoured() -> None:
    sleeps = Sleeps()
    up = Upstream(_err(RateLimitedError, retry_after=1.5), "ok")
    assert await _mw(sleeps)(chat_call(), up) == "ok"
    assert sleeps.waits == [1.5]


async def test_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    sleeps = Sleeps()
    up = Upstream(_err(RateLimitedError, retry_after=1.5))
    call = chat_call()
    call.deadline = time.perf_counter() + 1.0
    with pytest.raises(RateLimitedError):
        await _mw(sleeps)(call, up)
    assert up.calls == 1 and sleeps.waits == []


async def test_retry_after_longer_than_max_delay_ends_retrying_at_once() -> None:
    sleeps = Sleeps()
    up = Upstream(_err(RateLimitedError, retry_after=7.0))
    with pytest.raises(RateLimitedError) as info:
        await _mw(sleeps)(chat_call(), up)
    assert up.calls == 1 and sleeps.waits == [] and info.value.retry_after == 7.0


async def test_sleeps_never_outlast_the_deadline() -> None:
    sleeps = Sleeps()
    up = Upstream(_err(ProviderServerError))
    call = chat_call()
    call.deadline = time.perf_counter() + 0.3
    with pytest.raises(ProviderServerError):
        await _mw(sleeps, base_delay_s=1.0, max_delay_s=8.0, max_retries=10)(call, up)
    assert all(w < 0.3 for w in sleeps.waits)


async def test_the_deadline_comes_from_timeout_s_and_cuts_a_hanging_attempt() -> None:
    cfg = RouterConfig(timeout_s=0.05, retry=RetryConfig(max_retries=3))
    mw = RetryMiddleware(cfg, sleep=Sleeps())
    calls = 0

    async def hang(call: object) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)

    call = chat_call()
    t0 = time.perf_counter()
    with pytest.raises(ProviderTimeoutError, match="deadline"):
        await mw(call, hang)
    assert call.deadline == pytest.approx(call.started + 0.05)
    assert time.perf_counter() - t0 < 1.0
    assert calls == 1  # no time left for a retry


async def test_an_outer_deadline_is_kept() -> None:
    call = chat_call()
    call.deadline = call.started + 3.0
    await _mw()(call, Upstream("ok"))
    assert call.deadline == call.started + 3.0


async def test_a_spent_budget_stops_retries_and_is_an_incident(
        caplog: pytest.LogCaptureFixture) -> None:
    inc = IncidentRecorder()
    cfg = RouterConfig(retry=RetryConfig(budget_ratio=0.0, budget_min_per_s=0.0))
    mw = RetryMiddleware(cfg, incidents=inc, sleep=Sleeps(), budget_clock=FakeClock())
    up = Upstream(_err(ProviderServerError))
    with caplog.at_level(logging.WARNING, logger="gatewise.incident"):
        for _ in range(5):
            call = chat_call()
            with pytest.raises(ProviderServerError):
                await mw(call, up)
            assert [n for n, _ in call.events] == ["retry_budget_exhausted"]
    assert up.calls == 5
    assert inc.counter.get(("retry_budget_exhausted", "chat", "chat:fake/echo",
                            "ProviderServerError")) == 5
    lines = [r for r in caplog.records if r.getMessage() == "retry_budget_exhausted"]
    assert len(lines) == 1  # throttled: one line per second per deployment, metric counts all


async def test_no_retry_once_the_deployment_became_unavailable() -> None:
    cfg = RouterConfig(retry=RetryConfig(max_retries=3))
    mw = RetryMiddleware(cfg, available=lambda dep_id: False, sleep=Sleeps())
    up = Upstream(_err(ProviderServerError))
    call = chat_call()
    with pytest.raises(ProviderServerError):
        await mw(call, up)
    assert up.calls == 1
    assert call.events[-1][0] == "retry_skipped"


async def test_a_stream_failing_before_its_first_chunk_is_retried() -> None:
    up = Upstream(("stream", 0, _err(ProviderConnectionError)), ("stream", None))
    result = await _mw()(chat_call(stream=True), up)
    assert isinstance(result, ChunkStream)
    assert [c.choices[0].delta.content async for c in result] == ["w0 ", "w1 ", "w2 "]
    assert up.calls == 2


async def test_a_stream_failing_after_its_first_chunk_is_not_retried() -> None:
    up = Upstream(("stream", 2, _err(ProviderResponseError)))
    result = await _mw()(chat_call(stream=True), up)
    assert isinstance(result, ChunkStream)
    seen = []
    with pytest.raises(ProviderResponseError):
        async for c in result:
            seen.append(c.choices[0].delta.content)
    assert seen == ["w0 ", "w1 "] and up.calls == 1


def test_transport_bound_knows_which_attempts_the_transport_ends_itself() -> None:
    http = Target(provider="openai", wire="openai", model="m",
                  timeouts=Timeouts(total=30.0, connect=5.0, read=10.0))
    assert transport_bound(http, stream=False) == 30.0
    assert transport_bound(http, stream=True) == 20.0  # headers, then the first chunk
    assert transport_bound(Target(provider="fake", wire="fake", model="m"), stream=False) is None
    unbounded = Target(provider="openai", wire="openai", model="m",
                       timeouts=Timeouts(total=None, read=None))
    assert transport_bound(unbounded, stream=False) is None


@pytest.mark.parametrize(("timeout_s", "armed"), [(600.0, False), (5.0, True)])
async def test_an_attempt_gets_a_deadline_timer_only_when_the_transport_would_overrun(
        monkeypatch: pytest.MonkeyPatch, timeout_s: float, armed: bool) -> None:
    timers: list[float] = []
    real = asyncio.timeout

    def spy(delay: float | None) -> asyncio.Timeout:
        timers.append(delay or 0.0)
        return real(delay)

    monkeypatch.setattr(asyncio, "timeout", spy)
    http = Target(provider="openai", wire="openai", model="m",
                  timeouts=Timeouts(total=30.0, connect=5.0, read=10.0))
    call = chat_call(dep=Deployment("chat", "chat:openai/m", http))
    mw = RetryMiddleware(RouterConfig(timeout_s=timeout_s), sleep=Sleeps())
    assert await mw(call, Upstream("ok")) == "ok"
    assert bool(timers) is armed
