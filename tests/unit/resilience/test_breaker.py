"""Circuit breakers: the state machine on a fake clock, and `BreakerMiddleware` around it."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from gatewise.config.schema import BreakerConfig, RetryConfig, RouterConfig
from gatewise.errors import (
    BadRequestError,
    CircuitOpenError,
    ModelNotFoundError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.observability.incidents import IncidentRecorder
from gatewise.pipeline.core import Call, build_chain
from gatewise.pipeline.stream import ChunkStream
from gatewise.resilience import build_breakers
from gatewise.resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    MemoryBreakers,
    Transition,
    is_deployment_failure,
)
from gatewise.resilience.breaker_middleware import BreakerMiddleware, report_transition
from gatewise.resilience.retry_middleware import RetryMiddleware
from tests.unit.resilience.support import (
    FakeClock,
    FixedRandom,
    Sleeps,
    Upstream,
    chat_call,
    deployment,
)

DEP = "chat:fake/echo"
CFG = BreakerConfig(failure_threshold=3, failure_ratio=0.5, min_calls=10, window_s=10.0,
                    min_open_s=1.0, open_s=30.0)


class Rig:
    """Breakers on a fake clock (and, unless told otherwise, without jitter), the middleware
    around them and its incident recorder."""

    def __init__(self, cfg: BreakerConfig = CFG, rng: random.Random | None = None) -> None:
        self.clock = FakeClock()
        self.b = MemoryBreakers(cfg, clock=self.clock, rng=rng or FixedRandom(0.0))
        self.inc = IncidentRecorder()
        self.mw = BreakerMiddleware(self.b, incidents=self.inc)


async def _fail(b: MemoryBreakers, n: int, dep: str = DEP) -> None:
    for _ in range(n):
        await b.record_failure(dep, "ProviderServerError")


# -- what counts --------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "counts"), [
    (ProviderServerError("500"), True),
    (RateLimitedError("429"), True),
    (ProviderTimeoutError("t"), True),
    (ModelNotFoundError("404: the deployment is misconfigured"), True),
    (BadRequestError("400: the caller's mistake"), False),
    (CircuitOpenError("ours"), False),
    (asyncio.CancelledError(), False),
    (RuntimeError("adapter bug on this deployment's answers"), True),
])
def test_only_the_deployments_own_faults_count(exc: BaseException, counts: bool) -> None:
    assert is_deployment_failure(exc) is counts


# -- the state machine --------------------------------------------------------------------------

async def test_opens_at_the_threshold_within_the_window() -> None:
    r = Rig()
    await _fail(r.b, 2)
    assert r.b.state(DEP) == CLOSED and r.b.available(DEP)
    t = await r.b.record_failure(DEP, "ProviderServerError")
    assert t is not None and (t.deployment, t.old, t.new) == (DEP, CLOSED, OPEN)
    assert (t.failures, t.calls, t.error_type) == (3, 3, "ProviderServerError")
    assert r.b.state(DEP) == OPEN and not r.b.available(DEP) and not r.b.is_closed(DEP)


async def test_failures_older_than_the_window_do_not_count() -> None:
    r = Rig()
    await _fail(r.b, 2)
    r.clock.advance(11.0)
    await _fail(r.b, 2)
    assert r.b.state(DEP) == CLOSED


async def test_a_busy_deployment_with_scattered_errors_stays_closed() -> None:
    r = Rig()
    await _fail(r.b, 1)
    for _ in range(100):
        r.b.note_success(DEP)
    await _fail(r.b, 5)  # 6 failures of 106 calls: over the threshold, far under the ratio
    assert r.b.state(DEP) == CLOSED
    for _ in range(100):  # ...but once half the calls fail, it opens
        await r.b.record_failure(DEP, "ProviderServerError")
        if r.b.state(DEP) == OPEN:
            break
    assert r.b.state(DEP) == OPEN
    assert r.b.snapshot() == {DEP: {"state": OPEN, "calls": 0, "failures": 0, "open_for_s": 1.0,
                                  "probing": False}}


async def test_open_rejects_then_half_open_admits_a_single_probe() -> None:
    r = Rig()
    await _fail(r.b, 3)
    with pytest.raises(CircuitOpenError, match=r"next probe in 1\.0s"):
        await r.b.admit(DEP, 10.0)
    r.clock.advance(1.0)
    assert r.b.state(DEP) == HALF_OPEN and r.b.available(DEP)
    token = await r.b.admit(DEP, 10.0)
    assert token is not None
    assert not r.b.available(DEP)  # the probe is out: nobody else is routed here
    with pytest.raises(CircuitOpenError):
        await r.b.admit(DEP, 10.0)
    r.clock.advance(4.0)
    t = await r.b.record_probe_success(DEP, token)
    assert t is not None and (t.old, t.new) == (HALF_OPEN, CLOSED)
    assert t.recovery_s == pytest.approx(5.0)  # from opening to closing
    assert r.b.is_closed(DEP) and r.b.available(DEP)
    assert await r.b.admit(DEP, 10.0) is None  # closed: everyone goes, no probe token


async def test_a_failed_probe_reopens_and_recovery_counts_from_the_first_opening() -> None:
    r = Rig()
    await _fail(r.b, 3)
    r.clock.advance(1.0)
    token = await r.b.admit(DEP, 10.0)
    assert token is not None
    t = await r.b.record_failure(DEP, "ProviderTimeoutError", token)
    assert t is not None and (t.old, t.new, t.open_s) == (HALF_OPEN, OPEN, 2.0)
    assert not r.b.available(DEP)
    r.clock.advance(1.9)
    assert not r.b.available(DEP)
    r.clock.advance(0.1)
    token = await r.b.admit(DEP, 10.0)
    assert token is not None
    t = await r.b.record_probe_success(DEP, token)
    assert t is not None and t.recovery_s == pytest.approx(3.0)


async def test_a_probe_that_never_reports_stops_blocking_after_its_lease() -> None:
    r = Rig()
    await _fail(r.b, 3)
    r.clock.advance(1.0)
    lost = await r.b.admit(DEP, 5.0)
    r.clock.advance(4.9)
    assert not r.b.available(DEP)
    r.clock.advance(0.2)
    assert r.b.available(DEP)
    fresh = await r.b.admit(DEP, 5.0)
    assert fresh is not None and fresh != lost
    assert lost is not None and await r.b.record_probe_success(DEP, lost) is None  # stale verdict
    assert r.b.state(DEP) == HALF_OPEN


async def test_a_released_probe_lets_the_next_call_probe() -> None:
    r = Rig()
    await _fail(r.b, 3)
    r.clock.advance(1.0)
    token = await r.b.admit(DEP, 60.0)
    assert token is not None
    await r.b.release(DEP, token)
    assert await r.b.admit(DEP, 60.0) is not None


async def test_failures_admitted_before_the_opening_do_not_reopen_it() -> None:
    r = Rig()
    await _fail(r.b, 3)
    assert await r.b.record_failure(DEP, "ProviderServerError") is None  # a late straggler
    assert r.b.state(DEP) == OPEN


async def _failed_probe(r: Rig) -> float:
    """Waits out the open period, sends a probe that fails; returns the new open period."""
    r.clock.advance(r.b.retry_in(DEP))
    token = await r.b.admit(DEP, 10.0)
    assert token is not None
    t = await r.b.record_failure(DEP, "ProviderServerError", token)
    assert t is not None and t.open_s is not None
    return t.open_s


async def test_open_periods_double_after_each_failed_probe_up_to_open_s() -> None:
    r = Rig()
    await _fail(r.b, 3)
    assert r.b.retry_in(DEP) == 1.0  # the first period is min_open_s, not open_s
    periods = [await _failed_probe(r) for _ in range(7)]
    assert periods == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


async def test_a_successful_probe_resets_the_backoff() -> None:
    r = Rig()
    await _fail(r.b, 3)
    for _ in range(3):
        await _failed_probe(r)
    r.clock.advance(r.b.retry_in(DEP))
    token = await r.b.admit(DEP, 10.0)
    assert token is not None and await r.b.record_probe_success(DEP, token) is not None
    t = await r.b.record_failure(DEP, "ProviderServerError")  # a new outage: 3 more failures
    t = await r.b.record_failure(DEP, "ProviderServerError")
    t = await r.b.record_failure(DEP, "ProviderServerError")
    assert t is not None and t.new == OPEN and t.open_s == 1.0


async def test_jitter_only_shortens_a_period_and_comes_from_the_injected_rng() -> None:
    r = Rig(rng=FixedRandom(0.5))
    await _fail(r.b, 3)
    assert r.b.retry_in(DEP) == pytest.approx(0.95)  # 1 s less half of the 10 % jitter
    assert await _failed_probe(r) == pytest.approx(1.9)
    seeded = [Rig(rng=random.Random(7)) for _ in range(2)]
    for s in seeded:
        await _fail(s.b, 3)
    assert seeded[0].b.retry_in(DEP) == seeded[1].b.retry_in(DEP)  # same seed, same period
    rng = random.Random(1)
    many = Rig(rng=rng)
    for i in range(50):
        await _fail(many.b, 3, dep=f"d{i}")
    waits = {many.b.retry_in(f"d{i}") for i in range(50)}
    assert len(waits) > 40 and all(0.9 <= w <= 1.0 for w in waits)  # spread, never longer


async def test_an_open_s_below_min_open_s_is_every_period() -> None:
    """Configs written before `min_open_s` with a short `open_s` keep their period."""
    r = Rig(BreakerConfig(failure_threshold=3, open_s=0.2))
    await _fail(r.b, 3)
    assert r.b.retry_in(DEP) == pytest.approx(0.2)
    assert await _failed_probe(r) == pytest.approx(0.2)


async def test_retry_in_is_the_time_until_a_probe_may_go() -> None:
    r = Rig()
    assert r.b.retry_in(DEP) == 0.0  # never failed
    await _fail(r.b, 3)
    r.clock.advance(0.25)
    assert r.b.retry_in(DEP) == pytest.approx(0.75)
    with pytest.raises(CircuitOpenError) as refused:
        await r.b.admit(DEP, 10.0)
    assert refused.value.retry_after == pytest.approx(0.75)
    r.clock.advance(0.75)
    assert r.b.retry_in(DEP) == 0.0 and r.b.available(DEP)
    token = await r.b.admit(DEP, 10.0)
    assert token is not None
    # While the probe runs, its verdict is what clients wait for: about one short period,
    # not the probe's whole lease.
    with pytest.raises(CircuitOpenError) as refused:
        await r.b.admit(DEP, 10.0)
    assert refused.value.retry_after == pytest.approx(1.0) == r.b.retry_in(DEP)
    r.clock.advance(9.5)
    assert r.b.retry_in(DEP) == pytest.approx(0.5)  # the lease ends sooner
    await r.b.record_probe_success(DEP, token)
    assert r.b.retry_in(DEP) == 0.0


def test_build_breakers_chooses_the_store() -> None:
    assert isinstance(build_breakers(BreakerConfig()), MemoryBreakers)
    with pytest.raises(Exception, match="redis_url"):
        build_breakers(BreakerConfig(store="redis"))


# -- the middleware -----------------------------------------------------------------------------

async def test_an_open_breaker_rejects_without_calling_the_provider() -> None:
    r = Rig()
    up = Upstream(ProviderServerError("500"))
    for _ in range(3):
        with pytest.raises(ProviderServerError):
            await r.mw(chat_call(), up)
    assert up.calls == 3 and r.b.state(DEP) == OPEN
    call = chat_call()
    with pytest.raises(CircuitOpenError):
        await r.mw(call, up)
    assert up.calls == 3 and call.attempts == 0
    assert r.inc.counter.get(("breaker_open", "chat", DEP, "ProviderServerError")) == 1


async def test_the_opening_call_carries_the_incident_event() -> None:
    r = Rig()
    up = Upstream(ProviderServerError("500"))
    calls = [chat_call() for _ in range(3)]
    for call in calls:
        with pytest.raises(ProviderServerError):
            await r.mw(call, up)
    assert [n for n, _ in calls[2].events] == ["breaker_open"]
    data = calls[2].events[0][1]
    assert (data["deployment"], data["error_type"], data["window_failures"]) == \
        (DEP, "ProviderServerError", 3)
    assert data["open_for_s"] == 1.0  # operators see how long this open period lasts


async def test_the_caller_mistakes_never_open_the_breaker() -> None:
    r = Rig()
    up = Upstream(BadRequestError("400"))
    for _ in range(10):
        with pytest.raises(BadRequestError):
            await r.mw(chat_call(), up)
    assert r.b.state(DEP) == CLOSED


async def test_single_half_open_probe_under_concurrency() -> None:
    """Twenty calls arrive together at a half-open deployment: one probes, nineteen are
    rejected without reaching it; the probe's success closes the breaker for everyone."""
    r = Rig()
    await _fail(r.b, 3)
    r.clock.advance(1.0)
    gate = asyncio.Event()
    reached = 0

    async def slow_upstream(call: Call) -> str:
        nonlocal reached
        reached += 1
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(r.mw(chat_call(), slow_upstream)) for _ in range(20)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert reached == 1
    assert sum(r == "ok" for r in results) == 1
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 19
    assert r.b.state(DEP) == CLOSED
    assert r.inc.counter.get(("breaker_half_open", "chat", DEP, "none")) == 1
    assert r.inc.counter.get(("breaker_closed", "chat", DEP, "none")) == 1
    assert r.inc.recovery.count((DEP,)) == 1


async def test_a_cancelled_probe_is_released() -> None:
    r = Rig()
    await _fail(r.b, 3)
    r.clock.advance(1.0)

    async def hang(call: Call) -> None:
        await asyncio.sleep(10)

    task = asyncio.create_task(r.mw(chat_call(), hang))
    await asyncio.sleep(0)
    assert not r.b.available(DEP)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the release runs as its own task
    assert r.b.available(DEP) and r.b.state(DEP) == HALF_OPEN


async def test_a_stream_cut_mid_way_counts_as_a_failure_when_it_ends() -> None:
    r = Rig(BreakerConfig(failure_threshold=1, min_calls=10, window_s=10.0,
                                          open_s=30.0))
    up = Upstream(("stream", 1, ProviderResponseError("cut")))
    result = await r.mw(chat_call(stream=True), up)
    assert isinstance(result, ChunkStream) and r.b.is_closed(DEP)
    with pytest.raises(ProviderResponseError):
        async for _ in result:
            pass
    await asyncio.sleep(0)
    assert r.b.state(DEP) == OPEN


# -- in the chain: router skips, retry stops, fallback serves -------------------------------------

class AvailabilityRouter:
    """What the router does with breakers (the contract): choose among available deployments;
    when none is, fail fast with CircuitOpenError so the fallback moves on."""

    def __init__(self, deps: dict[str, list[Any]], breakers: MemoryBreakers) -> None:
        self.deps = deps
        self.breakers = breakers
        self.rng = random.Random(0)

    async def __call__(self, call: Call, next: Any) -> Any:
        usable = [d for d in self.deps[call.alias] if self.breakers.available(d.id)]
        if not usable:
            raise CircuitOpenError(f"every deployment of '{call.alias}' is open")
        call.deployment = self.rng.choice(usable)
        return await next(call)


async def test_after_the_breaker_opens_the_next_request_goes_elsewhere_with_no_extra_attempt(
) -> None:
    broken, healthy = deployment("chat:broken"), deployment("chat:healthy")
    r = Rig(BreakerConfig(failure_threshold=3, window_s=10.0, open_s=30.0))
    sent: list[str] = []

    async def provider(call: Call) -> str:
        assert call.deployment is not None
        sent.append(call.deployment.id)
        call.attempts += 1
        if call.deployment.id == "chat:broken":
            raise ProviderServerError("500")
        return "ok"

    router = AvailabilityRouter({"chat": [broken]}, r.b)
    cfg = RouterConfig(retry=RetryConfig(max_retries=2, base_delay_s=0.0))
    retry = RetryMiddleware(cfg, available=r.b.available, sleep=Sleeps())
    chain = build_chain([router, retry, BreakerMiddleware(r.b)], provider)

    call = Call("chat", chat_call().request)
    with pytest.raises(ProviderServerError):
        await chain(call)  # 3 attempts (1 + 2 retries) open the breaker
    assert sent == ["chat:broken"] * 3 and r.b.state("chat:broken") == OPEN

    router.deps["chat"] = [broken, healthy]
    for _ in range(20):
        assert await chain(Call("chat", chat_call().request)) == "ok"
    assert sent.count("chat:broken") == 3  # not one more attempt on the broken deployment
    assert sent.count("chat:healthy") == 20


async def test_a_breaker_opening_mid_retries_ends_the_retries() -> None:
    r = Rig(BreakerConfig(failure_threshold=2, window_s=10.0, open_s=30.0))
    up = Upstream(ProviderServerError("500"))
    cfg = RouterConfig(retry=RetryConfig(max_retries=5, base_delay_s=0.0))
    chain = build_chain([RetryMiddleware(cfg, available=r.b.available, sleep=Sleeps()),
                         BreakerMiddleware(r.b)], up)
    call = chat_call()
    with pytest.raises(ProviderServerError):
        await chain(call)
    assert up.calls == 2 and call.events[-1][0] == "retry_skipped"


# -- a short outage on a one-deployment alias, on the fake clock --------------------------------

PACE_S = 0.1  # the client sends a request every PACE_S
ATTEMPT_S = 0.02  # each upstream attempt takes this long


def _one_deployment_chain(clock: FakeClock, breakers: MemoryBreakers, up_at: list[float],
                          sent: list[float]) -> Any:
    """The gateway's own per-alias chain (real Router, Retry, Breaker) over a provider that
    fails until `up_at[0]`; retries' sleeps move the fake clock instead of waiting."""
    from gatewise.config.loader import parse_config, resolve_config
    from gatewise.routing.middleware import RouterMiddleware
    from gatewise.routing.router import Router

    cfg, warnings = parse_config({"models": {"chat": [{"model": "fake/echo", "id": "only"}]}})
    resolved = resolve_config(cfg, None, {}, warnings)
    router = Router(resolved, seed=0, clock=clock,
                    available=lambda d: breakers.available(d.id),
                    retry_in=lambda d: breakers.retry_in(d.id))

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    retry = RetryMiddleware(resolved.config.router, available=breakers.available,
                            rng=random.Random(0), budget_clock=clock, sleep=sleep)

    async def provider(call: Call) -> str:
        call.attempts += 1
        sent.append(clock())
        clock.advance(ATTEMPT_S)
        if clock() < up_at[0]:
            raise ProviderServerError("500")
        return "ok"

    return build_chain([RouterMiddleware(router), retry, BreakerMiddleware(breakers)], provider)


async def _run_outage(outage_s: float, seed: int) -> tuple[float, int, int]:
    """A client at a steady pace through an outage of `outage_s`: (seconds from the upstream's
    return to the first success, attempts the dead upstream received, refusals)."""
    clock = FakeClock()
    breakers = MemoryBreakers(BreakerConfig(), clock=clock, rng=random.Random(seed))
    up_at = [clock() + outage_s]
    sent: list[float] = []
    chain = _one_deployment_chain(clock, breakers, up_at, sent)
    refusals = 0
    while clock() < up_at[0] + 40.0:
        refused: CircuitOpenError | None = None
        try:
            await chain(Call("chat", chat_call().request))
        except CircuitOpenError as exc:
            refused = exc
        except ProviderServerError:
            pass
        else:
            if clock() >= up_at[0]:
                return clock() - up_at[0], sum(t < up_at[0] for t in sent), refusals
        if refused is not None:
            # Every refusal says when the next probe may go.
            wait = refused.retry_after
            assert wait is not None and 0 < wait <= 30.0
            assert wait == pytest.approx(breakers.retry_in("only"))
            refusals += 1
        clock.advance(PACE_S)
    raise AssertionError(f"no success within 40 s of the end of a {outage_s} s outage")


async def test_a_short_outage_on_a_single_deployment_costs_seconds_not_open_s() -> None:
    """Defaults (threshold 5, retries 2, min_open_s 1, open_s 30), outages of 0.5 to 4 s:
    after the upstream returns, the first request succeeds within 5 s (with a fixed 30 s open
    period it took ~27 s), every refusal in between says when to come back, and the dead
    upstream saw a handful of requests however many the client sent."""
    worst = 0.0
    for tenths in range(5, 41):
        for seed in range(3):
            recovery, attempts, refusals = await _run_outage(tenths / 10, seed)
            worst = max(worst, recovery)
            assert attempts <= 12  # 5 to open (+ retries in flight), then a probe per period
            if tenths >= 10:
                assert refusals  # the breaker opened: not just retries riding it out
    assert worst <= 5.0
    assert worst > 1.0  # the sweep does hit probes that fail just before the return


def test_breaker_transitions_are_always_logged_and_recovery_is_observed(
        caplog: pytest.LogCaptureFixture) -> None:
    inc = IncidentRecorder(clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="gatewise.incident"):
        for _ in range(3):
            report_transition(inc, Transition("d", CLOSED, OPEN, "ProviderServerError", 5, 7))
        report_transition(inc, Transition("d", OPEN, HALF_OPEN))
        report_transition(inc, Transition("d", HALF_OPEN, CLOSED, recovery_s=42.5))
    assert [r.getMessage() for r in caplog.records] == ["breaker_open"] * 3 + [
        "breaker_half_open", "breaker_closed"]
    assert caplog.records[0].window_failures == 5  # type: ignore[attr-defined]
    assert caplog.records[-1].recovery_s == 42.5  # type: ignore[attr-defined]
    assert inc.recovery.count(("d",)) == 1
    text = "\n".join(inc.recovery.render() + inc.counter.render())
    assert 'gatewise_breaker_recovery_seconds_sum{deployment="d"} 42.5' in text
    assert ('gatewise_incidents_total{kind="breaker_open",alias="none",deployment="d",'
            'error_type="ProviderServerError"} 3') in text
