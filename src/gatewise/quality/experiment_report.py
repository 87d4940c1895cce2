"""An experiment's report: per variant, what it cost and how well it did, and whether each
variant differs from the control (the first variant) on the experiment's `metric` by more
than chance.

Read from the quality records (`storage/quality.py`), which carry the experiment and variant
of every request an experiment served; a record's quality is the mean of its recorded scores
(validity, groundedness, toxicity, judge scores; user feedback is reported on its own).
The same report backs `gatewise experiments report NAME` and
`GET /admin/experiments/{experiment}/report`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gatewise.config.schema_ops import ExperimentConfig
from gatewise.errors import InvalidRequestError
from gatewise.quality.stats import ALPHA, TestResult, percentile, two_proportion_z, welch_t
from gatewise.storage.quality import QualityFilter, QualityRecord, QualityStore
from gatewise.types.limits import parse_time_bound

# Higher is better for these metrics; lower for latency, cost and errors.
_HIGHER_BETTER = frozenset({"quality", "feedback"})
_MAX_ROWS = 1_000_000
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None, now: float) -> float | None:
    """`7d`, `12h`, `30m`, `2w`, `90s` before `now`; or epoch seconds, a date or a date and
    time (as the usage report takes them)."""
    if not text:
        return None
    m = _DURATION.fullmatch(text)
    if m is not None:
        return now - int(m[1]) * _UNIT_S[m[2]]
    ts = parse_time_bound(text)
    if ts is None:
        raise InvalidRequestError("'since' must be a duration (7d, 12h, 30m, 2w), epoch "
                                  "seconds, a date (YYYY-MM-DD) or a date and time", param="since")
    return ts


@dataclass(frozen=True, slots=True)
class VariantStats:
    variant: str
    model: str | None
    n: int
    errors: int
    error_rate: float | None
    quality_mean: float | None
    quality_n: int
    feedback_mean: float | None
    feedback_n: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    cost_mean_usd: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """A variant against the control on the experiment's metric."""

    variant: str
    metric: str
    result: TestResult | None  # None: too few samples to test
    verdict: str


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment: str
    alias: str
    metric: str
    control: str
    since: float | None
    until: float | None
    variants: list[VariantStats]
    comparisons: list[Comparison]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["object"] = "experiment.report"
        finite: dict[str, Any] = _finite(out)
        return finite


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def record_quality(r: QualityRecord) -> float | None:
    """The mean of a record's recorded scores, user feedback left out (it has its own column)."""
    vals = [v for k, v in r.scores.items() if k != "feedback"]
    return math.fsum(vals) / len(vals) if vals else None


def _mean(xs: Sequence[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


def _values(metric: str) -> Callable[[QualityRecord], float | None]:
    if metric == "quality":
        return record_quality
    if metric == "feedback":
        return lambda r: r.scores.get("feedback")
    if metric == "latency":
        return lambda r: r.latency_s if r.error_type is None else None
    return lambda r: r.cost_usd  # cost


def _stats(name: str, model: str | None, rows: list[QualityRecord]) -> VariantStats:
    n = len(rows)
    errors = sum(r.error_type is not None for r in rows)
    quality = [q for r in rows if (q := record_quality(r)) is not None]
    feedback = [r.scores["feedback"] for r in rows if "feedback" in r.scores]
    latency = sorted(r.latency_s for r in rows if r.latency_s is not None and r.error_type is None)
    cost = [r.cost_usd for r in rows if r.cost_usd is not None]
    return VariantStats(
        variant=name, model=model, n=n, errors=errors, error_rate=errors / n if n else None,
        quality_mean=_mean(quality), quality_n=len(quality),
        feedback_mean=_mean(feedback), feedback_n=len(feedback),
        latency_p50_s=percentile(latency, 0.5), latency_p95_s=percentile(latency, 0.95),
        cost_mean_usd=_mean(cost))


def _verdict(metric: str, result: TestResult | None, variant: str, control: str) -> str:
    if result is None:
        return "not enough data (at least two samples per arm)"
    if not result.significant:
        more = (f"; about {result.needed_per_arm} samples per arm would detect a difference "
                "this size" if result.needed_per_arm else "")
        return f"no significant difference (p = {result.p_value:.3g} >= {ALPHA}){more}"
    better = (result.difference > 0) == (metric in _HIGHER_BETTER)
    return (f"{variant} is significantly {'better' if better else 'worse'} than {control} "
            f"on {metric} (p = {result.p_value:.3g} < {ALPHA})")


def build_report(name: str, exp: ExperimentConfig, rows: Sequence[QualityRecord], *,
                 since: float | None = None, until: float | None = None) -> ExperimentReport:
    """The report over `rows` (this experiment's records); pure, so tests feed it rows."""
    by_variant: dict[str, list[QualityRecord]] = {v.name: [] for v in exp.variants}
    for r in rows:
        if r.experiment == name and r.variant in by_variant:
            by_variant[r.variant].append(r)
    variants = [_stats(v.name, v.model or exp.alias, by_variant[v.name]) for v in exp.variants]
    control = exp.variants[0].name
    base = by_variant[control]
    value = _values(exp.metric)
    comparisons: list[Comparison] = []
    for v in exp.variants[1:]:
        arm = by_variant[v.name]
        result: TestResult | None
        if exp.metric == "errors":
            result = two_proportion_z(sum(r.error_type is not None for r in base), len(base),
                                      sum(r.error_type is not None for r in arm), len(arm))
        else:
            result = welch_t([x for r in base if (x := value(r)) is not None],
                             [x for r in arm if (x := value(r)) is not None])
        comparisons.append(Comparison(v.name, exp.metric, result,
                                      _verdict(exp.metric, result, v.name, control)))
    return ExperimentReport(name, exp.alias, exp.metric, control, since, until, variants,
                            comparisons)


async def experiment_report(store: QualityStore, name: str, exp: ExperimentConfig, *,
                            since: float | None = None, until: float | None = None,
                            ) -> ExperimentReport:
    rows = await store.query(QualityFilter(experiment=name, since=since, until=until),
                             limit=_MAX_ROWS)
    return build_report(name, exp, rows, since=since, until=until)


# -- text ----------------------------------------------------------------------------------------
def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_text(rep: ExperimentReport, *, now: Callable[[], float] = time.time) -> str:
    """The report as the CLI prints it: a table per variant, then the verdicts."""
    lines = [f"experiment {rep.experiment}: alias {rep.alias}, metric {rep.metric}, "
             f"control {rep.control}"]
    if rep.since is not None:
        lines.append(f"since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(rep.since))} UTC "
                     f"({(now() - rep.since) / 86400:.1f} days)")
    head = ("variant", "model", "n", "errors", "quality", "feedback", "p50 s", "p95 s",
            "cost USD")
    rows = [head] + [(v.variant, v.model or "-", str(v.n),
                      _f(v.error_rate, ".1%") if v.n else "-",
                      _f(v.quality_mean, ".3f"), _f(v.feedback_mean, ".3f"),
                      _f(v.latency_p50_s, ".3f"), _f(v.latency_p95_s, ".3f"),
                      _f(v.cost_mean_usd, ".6f")) for v in rep.variants]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    lines.append("")
    for c in rep.comparisons:
        r = c.result
        stat = "" if r is None else (
            f" [{r.test}: statistic {r.statistic:.3f}"
            + (f", df {r.df:.1f}" if r.df is not None else "")
            + f", difference {r.difference:+.4g}]")
        lines.append(f"{c.variant} vs {rep.control}: {c.verdict}{stat}")
    return "\n".join(lines)
