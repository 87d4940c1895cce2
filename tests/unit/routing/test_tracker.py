"""PerformanceTracker: EWMAs, the sliding minute, cool-downs and quality, on an injected clock."""

from __future__ import annotations

import pytest

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderServerError,
    RateLimitedError,
)
from gatewise.routing.tracker import MinuteWindow, PerformanceTracker, is_deployment_fault

from .conftest import Clock


def test_latency_and_ttft_are_ewmas_seeded_by_the_first_sample() -> None:
    t = PerformanceTracker(alpha=0.5, clock=Clock())
    s = t.started("a")
    t.succeeded(s, 1.0)
    s = t.started("a")
    t.succeeded(s, 3.0)
    t.first_token(s, 0.2)
    t.first_token(s, 0.4)
    assert s.latency == pytest.approx(2.0) and s.ttft == pytest.approx(0.3)


def test_in_flight_counts_running_attempts_only() -> None:
    t = PerformanceTracker(clock=Clock())
    a, b = t.started("a"), t.started("a")
    assert t.in_flight("a") == 2 and t.in_flight("never-seen") == 0
    t.succeeded(a, 0.1)
    t.failed(b, ProviderServerError("x"))
    assert t.in_flight("a") == 0


def test_error_rate_rises_on_faults_and_decays_on_successes() -> None:
    t = PerformanceTracker(alpha=0.5, cooldown_s=0, clock=Clock())
    t.failed(t.started("a"), ProviderServerError("x"))
    assert t.stats("a").error_rate == pytest.approx(0.5)
    t.succeeded(t.started("a"), 0.1)
    assert t.stats("a").error_rate == pytest.approx(0.25)


@pytest.mark.parametrize(("exc", "fault"), [
    (ProviderServerError("x"), True),
    (RateLimitedError("x"), True),
    (AuthenticationError("x"), True),
    (BadRequestError("x"), False),
    (ContextLengthExceededError("x"), False),
    (InvalidRequestError("x"), False),
    (KeyError("adapter bug"), True),
])
def test_only_the_deployments_own_failures_count(exc: BaseException, fault: bool) -> None:
    assert is_deployment_fault(exc) is fault


def test_a_failed_deployment_cools_down_until_the_clock_passes_cooldown_s() -> None:
    clock = Clock()
    t = PerformanceTracker(cooldown_s=5.0, clock=clock)
    t.failed(t.started("a"), ProviderServerError("x"))
    assert t.cooling_down("a")
    clock.advance(4.9)
    assert t.cooling_down("a")
    clock.advance(0.2)
    assert not t.cooling_down("a")


def test_retry_after_lengthens_the_cooldown_but_is_capped() -> None:
    clock = Clock()
    t = PerformanceTracker(cooldown_s=5.0, clock=clock)
    t.failed(t.started("a"), RateLimitedError("x", retry_after=20.0))
    t.failed(t.started("b"), RateLimitedError("x", retry_after=1e9))
    clock.advance(19.0)
    assert t.cooling_down("a")
    clock.advance(2.0)
    assert not t.cooling_down("a")
    assert t.cooling_down("b")
    clock.advance(300.0)
    assert not t.cooling_down("b")


def test_a_callers_mistake_starts_no_cooldown() -> None:
    t = PerformanceTracker(cooldown_s=5.0, clock=Clock())
    t.failed(t.started("a"), ContextLengthExceededError("x"))
    assert not t.cooling_down("a") and t.stats("a").errors == 0


def test_requests_and_tokens_per_minute_slide_with_the_clock() -> None:
    clock = Clock(0.0)
    t = PerformanceTracker(clock=clock)
    for _ in range(3):
        t.succeeded(t.started("a"), 0.1, tokens=100)
    clock.advance(30)
    t.succeeded(t.started("a"), 0.1, tokens=50)
    assert (t.requests_per_minute("a"), t.tokens_per_minute("a")) == (4, 350)
    clock.advance(30.5)  # the first three are now older than a minute
    assert (t.requests_per_minute("a"), t.tokens_per_minute("a")) == (1, 50)
    clock.advance(120)
    assert (t.requests_per_minute("a"), t.tokens_per_minute("a")) == (0, 0)


def test_minute_window_says_when_capacity_frees() -> None:
    w = MinuteWindow()
    w.add(10.0)
    w.add(40.0)
    assert w.frees_in(45.0) == pytest.approx(25.0)  # the t=10 entry leaves at t=70
    assert w.total(71.0) == 1


def test_quality_reports_are_an_ewma_between_0_and_1() -> None:
    t = PerformanceTracker(alpha=0.5, clock=Clock())
    t.report_quality("a", 1.0)
    t.report_quality("a", 0.0)
    assert t.stats("a").quality == pytest.approx(0.5) and t.stats("a").quality_n == 2
    with pytest.raises(ValueError):
        t.report_quality("a", 1.5)


def test_snapshot_lists_every_deployment_seen() -> None:
    clock = Clock()
    t = PerformanceTracker(cooldown_s=5.0, clock=clock)
    t.succeeded(t.started("a"), 0.25, tokens=7)
    t.failed(t.started("b"), ProviderServerError("x"))
    snap = t.snapshot()
    assert snap["a"]["latency_ewma_s"] == 0.25 and snap["a"]["tokens_per_minute"] == 7
    assert snap["b"]["errors"] == 1 and snap["b"]["cooldown_s"] == pytest.approx(5.0)
