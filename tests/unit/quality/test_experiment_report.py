"""An experiment's report (`gatewise.quality.experiment_report`): per-variant numbers from the
quality records, each variant tested against the control on the experiment's metric, with a
verdict a person can act on."""

from __future__ import annotations

import msgspec
import pytest

from gatewise.config.schema_ops import ExperimentConfig
from gatewise.errors import InvalidRequestError
from gatewise.quality.experiment_report import build_report, parse_since, render_text
from gatewise.storage.quality import QualityRecord

EXP = msgspec.convert({"alias": "chat", "metric": "quality", "variants": [
    {"name": "control"}, {"name": "small", "model": "small"}]}, ExperimentConfig)


def _row(i: int, variant: str, *, quality: float | None = None, error: str | None = None,
         latency: float = 1.0, cost: float = 0.01, feedback: float | None = None,
         experiment: str = "e") -> QualityRecord:
    scores: dict[str, float] = {}
    if quality is not None:
        scores = {"validity": quality, "groundedness": quality}
    if feedback is not None:
        scores["feedback"] = feedback
    return QualityRecord(request_id=f"r{variant}{i}", ts=1000.0 + i, alias="chat",
                         experiment=experiment, variant=variant, latency_s=latency,
                         cost_usd=cost, error_type=error, scores=scores)


def test_per_variant_numbers() -> None:
    rows = [_row(i, "control", quality=0.8, latency=1.0 + i / 10, feedback=1.0)
            for i in range(10)]
    rows += [_row(i, "small", quality=0.6, latency=0.5, cost=0.002) for i in range(4)]
    rows += [_row(9, "small", error="ProviderServerError")]
    rows += [_row(99, "control", quality=0.0, experiment="other")]  # another experiment's
    rep = build_report("e", EXP, rows)
    control, small = rep.variants
    assert (control.n, control.errors, control.error_rate) == (10, 0, 0.0)
    assert control.quality_mean == pytest.approx(0.8)
    assert (control.feedback_mean, control.feedback_n) == (1.0, 10)
    assert control.latency_p50_s == pytest.approx(1.45)
    assert control.latency_p95_s == pytest.approx(1.855)
    assert control.cost_mean_usd == pytest.approx(0.01)
    assert (small.n, small.errors, small.error_rate) == (5, 1, 0.2)
    assert small.quality_mean == pytest.approx(0.6)
    assert small.feedback_mean is None and small.model == "small"
    assert control.model == "chat"  # the control keeps the experiment alias


def test_a_clearly_worse_variant_is_significantly_worse() -> None:
    rows = [_row(i, "control", quality=0.80 + (i % 3) * 0.02) for i in range(30)]
    rows += [_row(i, "small", quality=0.60 + (i % 3) * 0.02) for i in range(30)]
    (c,) = build_report("e", EXP, rows).comparisons
    assert c.result is not None and c.result.test == "welch_t"
    assert c.result.significant and c.result.p_value < 1e-10
    assert c.verdict.startswith("small is significantly worse than control on quality")


def test_a_small_sample_is_not_significant_and_says_how_many_samples_would_be() -> None:
    rows = [_row(i, "control", quality=q) for i, q in enumerate((0.7, 0.8, 0.75, 0.72))]
    rows += [_row(i, "small", quality=q) for i, q in enumerate((0.74, 0.83, 0.78, 0.76))]
    (c,) = build_report("e", EXP, rows).comparisons
    assert c.result is not None and not c.result.significant
    assert "no significant difference" in c.verdict
    assert "about 22 samples per arm" in c.verdict


def test_the_errors_metric_uses_the_two_proportion_test_and_lower_is_better() -> None:
    exp = msgspec.structs.replace(EXP, metric="errors")
    rows = [_row(i, "control", error="X" if i < 30 else None) for i in range(100)]
    rows += [_row(i, "small", error="X" if i < 45 else None) for i in range(100)]
    (c,) = build_report("e", exp, rows).comparisons
    assert c.result is not None and c.result.test == "two_proportion_z"
    assert c.result.p_value == pytest.approx(0.0285, abs=0.0003)
    assert "small is significantly worse" in c.verdict


def test_latency_is_compared_on_successful_calls_and_lower_is_better() -> None:
    exp = msgspec.structs.replace(EXP, metric="latency")
    rows = [_row(i, "control", latency=2.0 + (i % 2) / 10) for i in range(20)]
    rows += [_row(i, "small", latency=1.0 + (i % 2) / 10) for i in range(20)]
    rows += [_row(50, "small", latency=60.0, error="ProviderTimeoutError")]
    (c,) = build_report("e", exp, rows).comparisons
    assert c.result is not None and c.result.difference == pytest.approx(-1.0)
    assert "small is significantly better" in c.verdict


def test_no_data_is_said_plainly() -> None:
    rep = build_report("e", EXP, [])
    assert [v.n for v in rep.variants] == [0, 0]
    assert rep.comparisons[0].result is None
    assert "not enough data" in rep.comparisons[0].verdict
    text = render_text(rep)
    assert "small vs control: not enough data" in text
    assert rep.to_json()["variants"][0]["error_rate"] is None


def test_the_text_report_has_a_row_per_variant() -> None:
    rows = [_row(i, v, quality=0.5) for i in range(3) for v in ("control", "small")]
    lines = render_text(build_report("e", EXP, rows)).splitlines()
    assert lines[0] == "experiment e: alias chat, metric quality, control control"
    assert lines[1].split() == ["variant", "model", "n", "errors", "quality", "feedback",
                                "p50", "s", "p95", "s", "cost", "USD"]
    assert lines[2].split()[:5] == ["control", "chat", "3", "0.0%", "0.500"]
    assert lines[3].split()[:5] == ["small", "small", "3", "0.0%", "0.500"]


@pytest.mark.parametrize(("text", "want"), [
    ("7d", 1_000_000 - 7 * 86400), ("12h", 1_000_000 - 12 * 3600), ("30m", 1_000_000 - 1800),
    ("2w", 1_000_000 - 14 * 86400), ("1970-01-02", 86400.0), ("5000", 5000.0), (None, None),
])
def test_since_takes_durations_and_times(text: str | None, want: float | None) -> None:
    assert parse_since(text, 1_000_000.0) == want


@pytest.mark.parametrize("text", ["7x", "-1d", "yesterday", "0d"])
def test_a_bad_since_names_the_parameter(text: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_since(text, 0.0)
    assert err.value.param == "since"
