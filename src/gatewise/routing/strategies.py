"""Strategies: which of an alias's usable deployments serves this request.

Every strategy gets deployments the router already filtered (config problems, capabilities,
open breakers, cool-downs), ranks them from `PerformanceTracker` state and breaks ties by
weighted random choice on the router's seeded RNG, so a seeded router makes the same choices
in the same situation. A ranking is one pass over at most a few dozen deployments: the whole
decision stays in microseconds.

- `weighted`: random in proportion to `weight` (the default; spreads load blindly).
- `least_in_flight`: fewest requests now running on the deployment.
- `latency`: lowest EWMA of observed latency (time to first token for streams, where the
  total depends on the answer's length), inflated by the recent error rate; a deployment
  never observed is tried first, so new deployments get measured.
- `cost`: lowest estimated price of this request from `Deployment.prices` (USD per million
  input/output tokens); an in-process model costs nothing; unknown prices rank last.
- `usage`: most RPM/TPM headroom left this minute against `Deployment.rpm/tpm`, counting this
  request's estimated tokens; deployments at their limit are skipped, and when all are, the
  pick fails with `RateLimitedError` (retry-after: when the window frees) without a call.

Caller-reported quality feeds the latency and cost strategies: once a deployment has enough
reports, one whose quality EWMA is below `min_quality` is passed over while a better one is
usable (a cheap or fast model that answers badly is neither cheap nor fast).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from gatewise.errors import RateLimitedError
from gatewise.providers.deployment import Deployment
from gatewise.providers.presets import FREE_WIRES
from gatewise.routing.capabilities import Needs
from gatewise.routing.tracker import DeploymentStats, PerformanceTracker

_INF = math.inf

PriceLookup = Callable[[Deployment], tuple[float, float] | None]


def deployment_prices(dep: Deployment) -> tuple[float, float] | None:
    """(input, output) USD per million tokens: the deployment's own prices, zero for a
    free engine (its preset's `free` fact), None when unknown (the shipped price table can be
    plugged in here)."""
    p = dep.prices
    if p is not None and (p.input is not None or p.output is not None):
        return (p.input or 0.0, p.output or 0.0)
    if dep.target.wire in FREE_WIRES:
        return (0.0, 0.0)
    return None


def weighted_choice(deps: Sequence[Deployment], rng: random.Random) -> Deployment:
    """One deployment, with probability proportional to its weight."""
    if len(deps) == 1:
        return deps[0]
    total = 0.0
    for d in deps:
        total += d.weight
    r = rng.random() * total
    for d in deps:
        r -= d.weight
        if r < 0:
            return d
    return deps[-1]


class Strategy(Protocol):
    name: str

    def pick(self, deps: Sequence[Deployment], needs: Needs) -> Deployment:
        """One of `deps` (never empty); may raise when none should be used right now."""
        ...


class WeightedStrategy:
    name = "weighted"

    def __init__(self, tracker: PerformanceTracker, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, deps: Sequence[Deployment], needs: Needs) -> Deployment:
        return weighted_choice(deps, self.rng)


class _Ranked:
    """Lowest `score` wins, ties by weighted random; one pass, one stats lookup per deployment.

    With `quality_aware`, deployments callers rated below `min_quality` (after `min_reports`
    reports) are passed over while any other is left."""

    name = "ranked"
    quality_aware = False

    def __init__(self, tracker: PerformanceTracker, rng: random.Random, *,
                 min_quality: float = 0.5, min_reports: int = 3) -> None:
        self.tracker = tracker
        self.rng = rng
        self.min_quality = min_quality
        self.min_reports = min_reports

    def score(self, dep: Deployment, s: DeploymentStats | None, needs: Needs) -> float:
        raise NotImplementedError

    def pick(self, deps: Sequence[Deployment], needs: Needs) -> Deployment:
        if len(deps) == 1:
            return deps[0]
        return self._best(deps, needs, self.quality_aware)[0]

    def _best(self, deps: Sequence[Deployment], needs: Needs,
              quality: bool) -> tuple[Deployment, float]:
        get = self.tracker.by_id.get
        score = self.score
        best = _INF
        tied: list[Deployment] = []
        rated_bad: list[Deployment] = []
        for d in deps:
            s = get(d.id)
            if quality and s is not None and s.quality is not None \
                    and s.quality_n >= self.min_reports and s.quality < self.min_quality:
                rated_bad.append(d)
                continue
            x = score(d, s, needs)
            if x < best:
                best = x
                tied = [d]
            elif x == best:
                tied.append(d)
        if not tied:  # every one rated badly: quality no longer tells them apart
            return self._best(rated_bad, needs, False)
        return (tied[0] if len(tied) == 1 else weighted_choice(tied, self.rng)), best


class LeastInFlightStrategy(_Ranked):
    name = "least_in_flight"

    def score(self, dep: Deployment, s: DeploymentStats | None, needs: Needs) -> float:
        return 0.0 if s is None else float(s.in_flight)


class LatencyStrategy(_Ranked):
    name = "latency"
    quality_aware = True

    def score(self, dep: Deployment, s: DeploymentStats | None, needs: Needs) -> float:
        if s is None:
            return 0.0  # never measured: try it, so it gets measured
        if needs.streaming:
            lat = s.ttft if s.ttft is not None else s.latency
        else:
            lat = s.latency if s.latency is not None else s.ttft
        return 0.0 if lat is None else lat * (1.0 + 2.0 * s.error_rate)


class CostStrategy(_Ranked):
    name = "cost"
    quality_aware = True

    def __init__(self, tracker: PerformanceTracker, rng: random.Random, *,
                 prices: PriceLookup = deployment_prices, min_quality: float = 0.5,
                 min_reports: int = 3) -> None:
        super().__init__(tracker, rng, min_quality=min_quality, min_reports=min_reports)
        self.prices = prices

    def estimate(self, dep: Deployment, needs: Needs) -> float:
        """This request's expected USD on `dep`, inflated by its error rate (failed attempts
        are paid for in retries); infinite when its prices are unknown."""
        return self.score(dep, self.tracker.peek(dep.id), needs)

    def score(self, dep: Deployment, s: DeploymentStats | None, needs: Needs) -> float:
        p = self.prices(dep)
        if p is None:
            return _INF
        usd = (needs.input_tokens * p[0] + needs.output_tokens * p[1]) / 1e6
        return usd if s is None else usd * (1.0 + s.error_rate)


class UsageStrategy(_Ranked):
    name = "usage"

    def __init__(self, tracker: PerformanceTracker, rng: random.Random) -> None:
        super().__init__(tracker, rng)
        self._now = 0.0  # read once per decision, not once per deployment

    def headroom(self, dep: Deployment, needs: Needs) -> float:
        """The smaller of the RPM and TPM fractions left after this request; 1.0 unlimited."""
        self._now = self.tracker.clock()
        return -self.score(dep, self.tracker.peek(dep.id), needs)

    def score(self, dep: Deployment, s: DeploymentStats | None, needs: Needs) -> float:
        rpm, tpm = dep.rpm, dep.tpm
        if not rpm and not tpm:
            return -1.0
        requests = tokens = 0.0
        if s is not None:
            requests, tokens = s.rpm.total(self._now), s.tpm.total(self._now)
        left = 1.0
        if rpm:
            left = (rpm - requests - 1) / rpm
        if tpm:
            left = min(left, (tpm - tokens - needs.input_tokens - needs.output_tokens) / tpm)
        return -left

    def pick(self, deps: Sequence[Deployment], needs: Needs) -> Deployment:
        self._now = self.tracker.clock()
        dep, best = self._best(deps, needs, False)
        if best > 0:  # even the one with most headroom would go over its limit
            t = self.tracker
            now = t.clock()
            wait = min(max(s.rpm.frees_in(now), s.tpm.frees_in(now))
                       for s in (t.stats(d.id) for d in deps))
            # A rate limit like an upstream 429, so fallbacks treat it the same way (the
            # `rate_limit_fallback`, normally the local model), just without the round trip.
            raise RateLimitedError(
                f"every deployment of '{deps[0].alias}' is at its rpm/tpm limit",
                provider="gatewise", model=deps[0].alias, retry_after=max(1.0, math.ceil(wait)))
        return dep


STRATEGIES: dict[str, Callable[[PerformanceTracker, random.Random], Strategy]] = {
    "weighted": WeightedStrategy,
    "least_in_flight": LeastInFlightStrategy,
    "latency": LatencyStrategy,
    "cost": CostStrategy,
    "usage": UsageStrategy,
}


def make_strategy(name: str, tracker: PerformanceTracker, rng: random.Random) -> Strategy:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown routing strategy '{name}' "
                         f"(one of {', '.join(STRATEGIES)})") from None
    return factory(tracker, rng)
