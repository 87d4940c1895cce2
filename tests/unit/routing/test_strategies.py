"""Each strategy's choice on synthetic tracker states, and seeded determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gatewise.errors import ProviderServerError, RateLimitedError
from gatewise.providers.deployment import Deployment
from gatewise.routing.capabilities import Needs
from gatewise.routing.router import Router
from gatewise.routing.strategies import (
    CostStrategy,
    LatencyStrategy,
    LeastInFlightStrategy,
    UsageStrategy,
    WeightedStrategy,
    deployment_prices,
    make_strategy,
)
from gatewise.routing.tracker import PerformanceTracker

from .conftest import Clock, fakes, resolved

ANY = Needs()


def _deps(*specs: dict[str, object]) -> list[Deployment]:
    cfg = resolved({"m": [{"model": f"openai/model-{i}", "api_key": "k", "id": f"d{i}", **s}
                          for i, s in enumerate(specs)]})
    return cfg.aliases["m"]


def _observe(t: PerformanceTracker, dep_id: str, latency: float, n: int = 1) -> None:
    for _ in range(n):
        t.succeeded(t.started(dep_id), latency)


def test_weighted_follows_the_weights() -> None:
    deps = _deps({"weight": 1}, {"weight": 3})
    s = WeightedStrategy(PerformanceTracker(), random.Random(7))
    picks = Counter(s.pick(deps, ANY).id for _ in range(4000))
    assert picks["d1"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_least_in_flight_picks_the_idlest() -> None:
    deps = _deps({}, {}, {})
    t = PerformanceTracker()
    t.started("d0")
    t.started("d0")
    t.started("d1")
    s = LeastInFlightStrategy(t, random.Random(1))
    assert s.pick(deps, ANY).id == "d2"
    t.started("d2")
    t.started("d2")
    assert s.pick(deps, ANY).id == "d1"


def test_least_in_flight_spreads_ties_instead_of_piling_on_the_first() -> None:
    deps = _deps({}, {}, {})
    s = LeastInFlightStrategy(PerformanceTracker(), random.Random(3))
    assert {s.pick(deps, ANY).id for _ in range(50)} == {"d0", "d1", "d2"}


def test_latency_picks_the_lowest_ewma() -> None:
    deps = _deps({}, {}, {})
    t = PerformanceTracker()
    _observe(t, "d0", 0.5)
    _observe(t, "d1", 0.1)
    _observe(t, "d2", 0.3)
    assert LatencyStrategy(t, random.Random(0)).pick(deps, ANY).id == "d1"


def test_latency_tries_a_never_measured_deployment_first() -> None:
    deps = _deps({}, {})
    t = PerformanceTracker()
    _observe(t, "d0", 0.01)
    assert LatencyStrategy(t, random.Random(0)).pick(deps, ANY).id == "d1"


def test_latency_is_inflated_by_recent_errors() -> None:
    deps = _deps({}, {})
    t = PerformanceTracker(cooldown_s=0)
    _observe(t, "d0", 0.10)
    _observe(t, "d1", 0.15)
    for _ in range(5):
        t.failed(t.started("d0"), ProviderServerError("x"))
    assert LatencyStrategy(t, random.Random(0)).pick(deps, ANY).id == "d1"


def test_latency_uses_time_to_first_token_for_streams() -> None:
    deps = _deps({}, {})
    t = PerformanceTracker()
    _observe(t, "d0", 2.0)  # long complete answers …
    _observe(t, "d1", 1.0)
    t.first_token(t.stats("d0"), 0.05)  # … but d0 starts streaming sooner
    t.first_token(t.stats("d1"), 0.40)
    s = LatencyStrategy(t, random.Random(0))
    assert s.pick(deps, Needs(streaming=True)).id == "d0"
    assert s.pick(deps, Needs(streaming=False)).id == "d1"


def test_latency_passes_over_a_deployment_callers_rate_badly() -> None:
    deps = _deps({}, {})
    t = PerformanceTracker()
    _observe(t, "d0", 0.1)
    _observe(t, "d1", 0.3)
    for _ in range(3):
        t.report_quality("d0", 0.1)
    assert LatencyStrategy(t, random.Random(0)).pick(deps, ANY).id == "d1"
    for _ in range(3):
        t.report_quality("d1", 0.1)  # both bad: quality no longer decides
    assert LatencyStrategy(t, random.Random(0)).pick(deps, ANY).id == "d0"


def test_cost_picks_the_cheapest_for_this_request() -> None:
    # d0: cheap input, pricey output; d1 the reverse.
    deps = _deps({"prices": {"input": 0.1, "output": 10}}, {"prices": {"input": 5, "output": 0.5}})
    s = CostStrategy(PerformanceTracker(), random.Random(0))
    long_prompt_short_answer = Needs(input_tokens=10_000, output_limit=10)
    short_prompt_long_answer = Needs(input_tokens=10, output_limit=4000)
    assert s.pick(deps, long_prompt_short_answer).id == "d0"
    assert s.pick(deps, short_prompt_long_answer).id == "d1"
    assert s.estimate(deps[0], Needs(input_tokens=1_000_000, output_limit=0)) == pytest.approx(0.1)


def test_cost_ranks_unknown_prices_last_and_local_models_as_free() -> None:
    cfg = resolved({"m": [{"model": "openai/x", "api_key": "k", "id": "unknown"},
                          {"model": "openai/y", "api_key": "k", "id": "priced",
                           "prices": {"input": 1, "output": 2}},
                          {"model": "llamacpp/smollm2-135m", "id": "local"}]})
    unknown, priced, local = cfg.aliases["m"]
    assert deployment_prices(unknown) is None and deployment_prices(local) == (0.0, 0.0)
    s = CostStrategy(PerformanceTracker(), random.Random(0))
    assert s.pick([unknown, priced], ANY) is priced
    assert s.pick([unknown, priced, local], ANY) is local


def test_usage_prefers_the_most_headroom_and_skips_deployments_at_their_limit() -> None:
    clock = Clock()
    t = PerformanceTracker(clock=clock)
    deps = _deps({"rpm": 10}, {"rpm": 100}, {"tpm": 1000})
    for _ in range(9):
        t.succeeded(t.started("d0"), 0.1)  # d0: 1 of 10 left → 0 after this request
    for _ in range(50):
        t.succeeded(t.started("d1"), 0.1)  # d1: 49 % left after this one
    t.succeeded(t.started("d2"), 0.1, tokens=400)  # d2: 1000-400-(10+256) → 33 % left
    s = UsageStrategy(t, random.Random(0))
    needs = Needs(input_tokens=10)
    assert s.headroom(deps[0], needs) == 0.0
    assert s.pick(deps, needs).id == "d1"
    for _ in range(30):
        t.succeeded(t.started("d1"), 0.1)  # d1 now 19 % left: d2 wins
    assert s.pick(deps, needs).id == "d2"


def test_usage_with_every_deployment_at_its_limit_is_rate_limited() -> None:
    clock = Clock(0.0)
    t = PerformanceTracker(clock=clock)
    deps = _deps({"rpm": 2})
    t.started("d0")
    clock.advance(10)
    t.started("d0")
    with pytest.raises(RateLimitedError, match="'m'") as info:
        UsageStrategy(t, random.Random(0)).pick(deps, ANY)
    assert info.value.retry_after == 50  # the first request leaves the window at t=60
    clock.advance(50)
    assert UsageStrategy(t, random.Random(0)).pick(deps, ANY).id == "d0"


def test_deployments_without_limits_always_have_headroom() -> None:
    t = PerformanceTracker()
    deps = _deps({})
    for _ in range(1000):
        t.started("d0")
    assert UsageStrategy(t, random.Random(0)).headroom(deps[0], ANY) == 1.0


def test_unknown_strategy_names_the_choices() -> None:
    with pytest.raises(ValueError, match="least_in_flight"):
        make_strategy("fastest", PerformanceTracker(), random.Random(0))


@pytest.mark.parametrize("strategy", ["weighted", "least_in_flight", "latency", "cost", "usage"])
def test_a_seeded_router_makes_the_same_choices_every_run(strategy: str) -> None:
    cfg = resolved({"m": fakes("a", "b", "c", "d", weight=1)}, strategy=strategy)

    def run(seed: int) -> list[str]:
        r = Router(cfg, seed=seed)
        out = []
        for i in range(200):
            dep = r.choose(r.candidates("m"))
            out.append(dep.id)
            s = r.tracker.started(dep.id)
            if i % 3:
                r.tracker.succeeded(s, 0.01 * (i % 7), tokens=i)
        return out

    first = run(42)
    assert run(42) == first
    assert len(set(first)) > 1  # and it does spread, rather than being trivially constant
    if strategy == "weighted":
        assert run(43) != first
