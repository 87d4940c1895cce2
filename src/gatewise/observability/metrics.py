"""A small Prometheus registry: counters and histograms with label values, text exposition.

Written here rather than pulled in because the hot path needs only a dict lookup and an
addition per observation (no locks: the gateway updates metrics from one event loop), and
because metric names are a public contract (`gatewise_<noun>_<unit>`) kept in one place.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)

# Series one family may hold before new label sets are folded into its overflow series (every
# label "other"): callers choose some label values (a model name, a user), and Prometheus pays
# for every series. Only checked when a new series appears, so the hot path is unchanged.
DEFAULT_MAX_SERIES = 2000
OTHER = "other"

_INF = float("inf")


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(v: float) -> str:
    """A sample value, exactly: integers without a fraction, others in Python's shortest
    round-trip form (`{:g}` would round a large counter to six digits), and the text format's
    spellings of the special values."""
    if v != v:
        return "NaN"
    if v == _INF:
        return "+Inf"
    if v == -_INF:
        return "-Inf"
    if v == int(v) and -1e15 < v < 1e15:
        return str(int(v))
    return repr(float(v))


class _Family:
    """What every metric family shares: names, the series cap, exposition of its labels."""

    type_name = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str],
                 max_series: int) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self.max_series = max_series
        # Where label sets past the cap go; a family without labels never overflows.
        self.other: tuple[str, ...] = (OTHER,) * len(self.label_names)
        self._rendered: dict[tuple[str, ...], str] = {}

    def _label_text(self, values: tuple[str, ...]) -> str:
        """`a="x",b="y"` for one series (cached: label sets repeat on every scrape)."""
        text = self._rendered.get(values)
        if text is None:
            if len(self._rendered) > 2 * self.max_series:
                self._rendered.clear()
            text = ",".join(f'{n}="{_escape(v if isinstance(v, str) else str(v))}"'
                            for n, v in zip(self.label_names, values, strict=True))
            self._rendered[values] = text
        return text

    def _header(self) -> list[str]:
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {text}", f"# TYPE {self.name} {self.type_name}"]

    def _simple(self, values: dict[tuple[str, ...], float]) -> list[str]:
        out = self._header()
        name = self.name
        for labels, v in values.items():
            if labels:
                out.append(f"{name}{{{self._label_text(labels)}}} {_fmt(v)}")
            else:
                out.append(f"{name} {_fmt(v)}")
        return out


class _Scalar(_Family):
    """One number per label set: what counters and gauges share."""

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), *,
                 max_series: int = DEFAULT_MAX_SERIES) -> None:
        super().__init__(name, help, labels, max_series)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        values = self.values
        if labels in values:
            values[labels] += amount
        else:
            key = labels if len(values) < self.max_series else self.other
            values[key] = values.get(key, 0.0) + amount

    def get(self, labels: tuple[str, ...] = ()) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        return self._simple(self.values)


class Counter(_Scalar):
    type_name = "counter"


class Gauge(_Scalar):
    """A value that goes up and down (breaker state, budget remaining, component health).

    Set by whoever owns the value, or refreshed at scrape time by a collector registered with
    `GatewayMetrics.add_collector`."""

    type_name = "gauge"

    def set(self, labels: tuple[str, ...] = (), value: float = 0.0) -> None:
        values = self.values
        if labels not in values and len(values) >= self.max_series:
            labels = self.other
        values[labels] = value

    def remove(self, labels: tuple[str, ...]) -> None:
        self.values.pop(labels, None)

    def clear(self) -> None:
        """Drops every series (a collector that rebuilds the whole set each scrape, so a
        deleted budget or deployment stops being exported)."""
        self.values.clear()


class Histogram(_Family):
    type_name = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS, *,
                 max_series: int = DEFAULT_MAX_SERIES) -> None:
        super().__init__(name, help, labels, max_series)
        self.buckets = tuple(buckets)
        self._le = [f'le="{b:g}"' for b in self.buckets] + ['le="+Inf"']
        # per label set: [counts per bucket..., +Inf count], sum
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        s = self.series.get(labels)
        if s is None:
            if len(self.series) >= self.max_series:
                labels = self.other
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
        out = self._header()
        name = self.name
        les = self._le
        for labels, (counts, total) in self.series.items():
            lbl = self._label_text(labels) + "," if labels else ""
            acc = 0
            for le, c in zip(les, counts, strict=True):
                acc += c
                out.append(f"{name}_bucket{{{lbl}{le}}} {acc}")
            plain = f"{{{lbl[:-1]}}}" if labels else ""
            out.append(f"{name}_sum{plain} {_fmt(total[0])}")
            out.append(f"{name}_count{plain} {acc}")
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
        self.in_flight = Gauge("gatewise_requests_in_flight", "Requests being served now.")
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
        # -- operations (issue 14) ------------------------------------------------------------
        # Per team: the dashboards' cost and token panels (team ids are admin-created, so the
        # label is bounded by the teams that exist; "none" for calls without a team).
        self.team_cost = Counter("gatewise_team_cost_usd_total", "Spend in USD, by team.",
                                 ("team",))
        self.team_tokens = Counter("gatewise_team_tokens_total", "Tokens, by team and direction.",
                                   ("team", "direction"))
        self.budget_remaining = Gauge("gatewise_budget_remaining_usd",
                                      "USD left in a budget's current period.",
                                      ("scope", "subject", "period"))
        self.budget_used_ratio = Gauge("gatewise_budget_used_ratio",
                                       "Share of a budget's current period already spent.",
                                       ("scope", "subject", "period"))
        self.breaker_state = Gauge("gatewise_breaker_state",
                                   "Circuit breaker per deployment: 0 closed, 1 half-open, 2 "
                                   "open.", ("deployment",))
        self.rate_limited = Counter("gatewise_rate_limit_rejections_total",
                                    "Requests refused by a rate limit, by scope.", ("scope",))
        self.guard_decisions = Counter("gatewise_guard_decisions_total",
                                       "Guardrail decisions by guard and action.",
                                       ("guard", "action"))
        self.component_up = Gauge("gatewise_component_up",
                                  "Health of a component: 1 up, 0 down (providers, stores, the "
                                  "local model, quotas).", ("component", "kind"))
        self.health_check_duration = Histogram("gatewise_health_check_duration_seconds",
                                               "Time a health probe took.", ("kind",))
        self.maintenance_runs = Counter("gatewise_maintenance_runs_total",
                                        "Maintenance job runs, by outcome (ok, error, skipped "
                                        "when another replica holds the lease). The label is "
                                        "`job_name`: Prometheus' own `job` label would clash.",
                                        ("job_name", "outcome"))
        self.key_rotations = Counter("gatewise_key_rotations_total",
                                     "Provider-key rotations, by outcome (ok, failed).",
                                     ("credential", "outcome"))
        self.credential_age = Gauge("gatewise_credential_age_seconds",
                                    "Seconds since a stored provider credential was rotated.",
                                         ("credential",))
        self.quality_score = Histogram("gatewise_quality_score",
                                       "Per-response quality scores (0..1), by alias and metric.",
                                       ("alias", "metric"),
                                       buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
                                                0.95, 1.0))
        self.quality_mean = Gauge("gatewise_quality_score_mean",
                                  "Mean score over the degradation window, by alias and metric.",
                                  ("alias", "metric"))
        self.quality_baseline = Gauge("gatewise_quality_score_baseline",
                                      "A model's own baseline mean score, by alias and metric.",
                                      ("alias", "metric"))
        self.quality_degraded = Gauge("gatewise_quality_degraded",
                                      "1 when an alias's score dropped below its baseline by "
                                      "more than the configured margin.", ("alias", "metric"))
        self.feedback = Counter("gatewise_feedback_total",
                                "User feedback received, by alias and sentiment.",
                                ("alias", "sentiment"))
        self.experiment_requests = Counter("gatewise_experiment_requests_total",
                                           "Requests per experiment variant, by status.",
                                           ("experiment", "variant", "status"))
        self.build_info = Gauge("gatewise_build_info", "Always 1; the version as a label.",
                                ("version",))
        # Scrape-time refreshers (breaker states, budget remaining, credential ages): each is
        # a cheap synchronous function that sets gauges from state already in memory.
        self._collectors: list[Callable[[], None]] = []

    def add_collector(self, collect: Callable[[], None]) -> None:
        self._collectors.append(collect)

    def families(self) -> list[Counter | Gauge | Histogram]:
        """Every metric this gateway can export (dashboards and alert rules are checked
        against these names)."""
        return [m for m in vars(self).values() if isinstance(m, Counter | Gauge | Histogram)]

    def render(self) -> str:
        self.collect()
        lines: list[str] = []
        for m in self.families():
            lines.extend(m.render())
        return "\n".join(lines) + "\n"

    def collect(self) -> None:
        """Runs the scrape-time collectors (gauges refreshed from state in memory)."""
        for collect in self._collectors:
            try:
                collect()
            except Exception as exc:  # one broken collector must not take /metrics down
                logging.getLogger("gatewise.metrics").warning(
                    "metrics collector failed", extra={"collector": getattr(
                        collect, "__qualname__", type(collect).__name__),
                        "error_type": type(exc).__name__})
