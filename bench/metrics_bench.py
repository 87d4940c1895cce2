"""gatewise's metrics registry against the ecosystem's client library (prometheus_client).

The issue's rule: use the ecosystem's client library unless ours is measurably faster and its
exposition is proven valid by the real Prometheus parser (the validity half is
`tests/unit/observability/test_metrics_exposition.py`: promtool and prometheus_client's
parser). This is the speed half, on the operations the gateway does:

- per request: a counter increment with 4 labels (`gatewise_requests_total`) and a histogram
  observation with 3 labels (`gatewise_request_duration_seconds`), label values changing from
  call to call as they do across requests (ours: `inc(tuple)`; prometheus_client:
  `.labels(...).inc()`, its documented use);
- per scrape: rendering a realistic registry (20 aliases x 2 deployments x 3 statuses, 40
  latency series, tokens, cost, 30 teams, breakers, budgets) to the text format
  (ours: `GatewayMetrics.render()`; prometheus_client: `generate_latest(registry)`).

    .venv/bin/python bench/metrics_bench.py [--ops 200000]

CPU time (process_time), best of 5 runs; bounded (each measurement stops at its time cap).
Prints one table with ratios; exit status 0 when ours is at least as fast on every row.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PCounter
from prometheus_client import Gauge as PGauge
from prometheus_client import Histogram as PHistogram

from gatewise.observability.metrics import LATENCY_BUCKETS, GatewayMetrics

CAP_S = 4.0
ALIASES = [f"alias-{i}" for i in range(20)]
DEPS = [(a, f"{a}:provider-{j}/model") for a in ALIASES for j in range(2)]
STATUSES = ("200", "429", "502")
TEAMS = [f"team-{i}" for i in range(30)]


def _per_op_ns(fn: Callable[[int], None], ops: int) -> float:
    best = float("inf")
    deadline = time.monotonic() + CAP_S
    for _ in range(5):
        start = time.process_time()
        fn(ops)
        best = min(best, (time.process_time() - start) / ops * 1e9)
        if time.monotonic() > deadline:
            break
    return best


def _render_us(fn: Callable[[], object], runs: int = 50) -> float:
    best = float("inf")
    deadline = time.monotonic() + CAP_S
    for _ in range(5):
        start = time.process_time()
        for _ in range(runs):
            fn()
        best = min(best, (time.process_time() - start) / runs * 1e6)
        if time.monotonic() > deadline:
            break
    return best


def _ours() -> GatewayMetrics:
    m = GatewayMetrics()
    for alias, dep in DEPS:
        for status in STATUSES:
            m.requests.inc(("chat", alias, dep, status), 17)
        m.duration.observe(0.2, ("chat", alias, dep))
        m.ttft.observe(0.05, (alias, dep))
        m.tokens.inc(("input", alias, dep), 1000)
        m.tokens.inc(("output", alias, dep), 500)
        m.cost.inc((alias, dep), 0.25)
        m.breaker_state.set((dep,), 0)
    for team in TEAMS:
        m.team_cost.inc((team,), 1.5)
        m.team_tokens.inc((team, "input"), 1000)
        m.budget_remaining.set(("team", team, "month"), 10.0)
    return m


def _theirs() -> tuple[CollectorRegistry, PCounter, PHistogram]:
    r = CollectorRegistry()
    requests = PCounter("gatewise_requests", "Requests handled, by outcome.",
                        ("endpoint", "model", "deployment", "status"), registry=r)
    duration = PHistogram("gatewise_request_duration_seconds", "Total request latency.",
                          ("endpoint", "model", "deployment"), buckets=LATENCY_BUCKETS,
                          registry=r)
    ttft = PHistogram("gatewise_time_to_first_token_seconds", "TTFT.", ("model", "deployment"),
                      buckets=LATENCY_BUCKETS, registry=r)
    tokens = PCounter("gatewise_tokens", "Tokens.", ("direction", "model", "deployment"),
                      registry=r)
    cost = PCounter("gatewise_cost_usd", "Spend.", ("model", "deployment"), registry=r)
    breaker = PGauge("gatewise_breaker_state", "Breaker.", ("deployment",), registry=r)
    team_cost = PCounter("gatewise_team_cost_usd", "Team spend.", ("team",), registry=r)
    team_tokens = PCounter("gatewise_team_tokens", "Team tokens.", ("team", "direction"),
                           registry=r)
    remaining = PGauge("gatewise_budget_remaining_usd", "Budget left.",
                       ("scope", "subject", "period"), registry=r)
    for alias, dep in DEPS:
        for status in STATUSES:
            requests.labels("chat", alias, dep, status).inc(17)
        duration.labels("chat", alias, dep).observe(0.2)
        ttft.labels(alias, dep).observe(0.05)
        tokens.labels("input", alias, dep).inc(1000)
        tokens.labels("output", alias, dep).inc(500)
        cost.labels(alias, dep).inc(0.25)
        breaker.labels(dep).set(0)
    for team in TEAMS:
        team_cost.labels(team).inc(1.5)
        team_tokens.labels(team, "input").inc(1000)
        remaining.labels("team", team, "month").set(10.0)
    return r, requests, duration


def main(ops: int) -> int:
    m = _ours()
    registry, p_requests, p_duration = _theirs()
    n = len(DEPS)

    def ours_inc(k: int) -> None:
        inc = m.requests.inc
        for i in range(k):
            alias, dep = DEPS[i % n]
            inc(("chat", alias, dep, "200"))

    def theirs_inc(k: int) -> None:
        labels = p_requests.labels
        for i in range(k):
            alias, dep = DEPS[i % n]
            labels("chat", alias, dep, "200").inc()

    def ours_observe(k: int) -> None:
        observe = m.duration.observe
        for i in range(k):
            alias, dep = DEPS[i % n]
            observe(0.123, ("chat", alias, dep))

    def theirs_observe(k: int) -> None:
        labels = p_duration.labels
        for i in range(k):
            alias, dep = DEPS[i % n]
            labels("chat", alias, dep).observe(0.123)

    def loop_only(k: int) -> None:  # the loop and the label lookups both sides share
        for i in range(k):
            alias, dep = DEPS[i % n]
            _ = ("chat", alias, dep, "200")

    base = _per_op_ns(loop_only, ops)
    rows = [
        ("counter inc, 4 labels (ns)", _per_op_ns(ours_inc, ops) - base,
         _per_op_ns(theirs_inc, ops) - base),
        ("histogram observe, 3 labels (ns)", _per_op_ns(ours_observe, ops) - base,
         _per_op_ns(theirs_observe, ops) - base),
        ("render registry (µs)", _render_us(m.render), _render_us(lambda: generate_latest(
            registry))),
    ]
    ours_lines = m.render().count("\n")
    theirs_lines = generate_latest(registry).decode().count("\n")

    print(f"{'operation':<34} {'gatewise':>10} {'prometheus_client':>18} {'theirs/ours':>12}")
    ok = True
    for name, a, b in rows:
        ok = ok and a <= b
        print(f"{name:<34} {a:>10.1f} {b:>18.1f} {b / a:>12.2f}")
    print()
    print(f"registry: {len(DEPS)} deployments, {len(TEAMS)} teams; exposition lines: gatewise "
          f"{ours_lines} (every family, the empty ones as HELP/TYPE), prometheus_client "
          f"{theirs_lines} (only the families built here, plus _created samples)")
    print(f"loop overhead subtracted from per-op rows: {base:.1f} ns")
    print(f"verdict: gatewise's registry is {'faster on every row' if ok else 'NOT faster'}")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=200_000)
    sys.exit(main(ap.parse_args().ops))
