"""A small Prometheus registry: counters and histograms with label values, text exposition.

Written here rather than pulled in because the hot path needs only a dict lookup and an
addition per observation (no locks: the gateway updates metrics from one event loop), and
because metric names are a public contract (`gatewise_<noun>_<unit>`) kept in one place.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, labels: tuple[str, ...] = ()) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for labels, v in self.values.items():
            out.append(f"{self.name}{_labels(self.label_names, labels)} {v:g}")
        return out


class Histogram:
    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self.buckets = tuple(buckets)
        # per label set: [counts per bucket..., +Inf count], sum
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        s = self.series.get(labels)
        if s is None:
            s = ([0] * (len(self.buckets) + 1), [0.0])
            self.series[labels] = s
        s[0][bisect.bisect_left(self.buckets, value)] += 1
        s[1][0] += value

    def count(self, labels: tuple[str, ...] = ()) -> int:
        s = self.series.get(labels)
        return sum(s[0]) if s else 0

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, (counts, total) in self.series.items():
            acc = 0
            for bound, c in zip(self.buckets, counts, strict=False):
                acc += c
                le = f'le="{bound:g}"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {acc}")
            acc += counts[-1]
            inf = 'le="+Inf"'
            out.append(f"{self.name}_bucket{_labels(self.label_names, labels, inf)} {acc}")
            out.append(f"{self.name}_sum{_labels(self.label_names, labels)} {total[0]:.6f}")
            out.append(f"{self.name}_count{_labels(self.label_names, labels)} {acc}")
        return out


class GatewayMetrics:
    """Every metric the gateway exports; one instance per `Gateway`."""

    def __init__(self) -> None:
        self.requests = Counter("gatewise_requests_total", "Requests handled, by outcome.",
                                ("endpoint", "model", "deployment", "status"))
        self.errors = Counter("gatewise_errors_total", "Failed requests, by error type.",
                              ("endpoint", "model", "error_type"))
        self.duration = Histogram("gatewise_request_duration_seconds",
                                  "Total request latency.", ("endpoint", "model", "deployment"))
        self.ttft = Histogram("gatewise_time_to_first_token_seconds",
                              "Time to the first generated token.", ("model", "deployment"))
        self.overhead = Histogram("gatewise_overhead_seconds",
                                  "Time spent in the gateway itself (total minus upstream).",
                                  ("endpoint",),
                                  buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                           0.025, 0.05, 0.1))
        self.tokens = Counter("gatewise_tokens_total", "Tokens processed.",
                              ("direction", "model", "deployment"))
        self.in_flight = Counter("gatewise_requests_in_flight", "Requests being served now.")
        self.incidents = Counter(
            "gatewise_incidents_total",
            "Failovers, breaker transitions, retry budget exhaustion and escalations.",
            ("kind", "alias", "deployment", "error_type"))
        self.retries = Counter("gatewise_retries_total",
                               "Retries sent to a deployment, by error type.",
                               ("deployment", "error_type"))
        self.breaker_recovery = Histogram(
            "gatewise_breaker_recovery_seconds", "Time from a breaker opening to closing again.",
            ("deployment",),
            buckets=(1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0))
        self.hedges = Counter("gatewise_hedges_total",
                              "Hedged requests: started, won, lost, skipped.", ("outcome",))
        self.cost = Counter("gatewise_cost_usd_total", "Spend in USD from the price table.",
                            ("model", "deployment"))
        self.budget_alerts = Counter("gatewise_budget_alerts_total",
                                     "Budget spend thresholds crossed.",
                                     ("scope", "period", "threshold"))
        self.security_events = Counter("gatewise_security_events_total",
                                       "Guardrail decisions, denied keys and other security "
                                       "events.", ("kind", "action"))
        self.cache_requests = Counter(
            "gatewise_cache_requests_total",
            "Response cache lookups, by result: hit, semantic_hit, miss, bypass.",
            ("model", "result"))
        self.cache_tokens_saved = Counter("gatewise_cache_tokens_saved_total",
                                          "Tokens not sent upstream thanks to cache hits.",
                                          ("model",))
        self.cache_usd_saved = Counter("gatewise_cache_saved_usd_total",
                                       "USD not spent thanks to cache hits (price table).",
                                       ("model",))
        self.cache_evictions = Counter("gatewise_cache_evictions_total",
                                       "Entries removed: expired (maintenance), evicted for "
                                       "size, invalidated.", ("reason",))

    def render(self) -> str:
        lines: list[str] = []
        for m in (self.requests, self.errors, self.duration, self.ttft, self.overhead,
                  self.tokens, self.incidents, self.retries, self.breaker_recovery, self.hedges,
                  self.cost, self.budget_alerts, self.security_events, self.cache_requests,
                  self.cache_tokens_saved, self.cache_usd_saved, self.cache_evictions):
            lines.extend(m.render())
        lines.append("# HELP gatewise_requests_in_flight Requests being served now.")
        lines.append("# TYPE gatewise_requests_in_flight gauge")
        lines.append(f"gatewise_requests_in_flight {self.in_flight.get():g}")
        return "\n".join(lines) + "\n"
