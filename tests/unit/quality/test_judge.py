"""Reading a judge's reply (`gatewise.quality.judge.parse_judgement`) on a 1-5 or 0-10 scale,
labelled or not, and sampling at the configured rate."""

from __future__ import annotations

import random

import pytest

from gatewise.quality.judge import QualityJudge, parse_judgement


@pytest.mark.parametrize(("reply", "expected"), [
    ('{"relevance": 5, "completeness": 3}', {"relevance": 1.0, "completeness": 0.5}),
    ('```json\n{"relevance": 4, "completeness": 1}\n```', {"relevance": 0.75,
                                                           "completeness": 0.0}),
    ("Relevance: 4/5\nCompleteness: 2/5", {"relevance": 0.75, "completeness": 0.25}),
    ("**Relevance:** 8/10, **Completeness:** 6 out of 10", {"relevance": 0.8,
                                                           "completeness": 0.6}),
    ("relevance = 9, completeness = 7", {"relevance": 0.9, "completeness": 0.7}),
    ("Relevance: 0\nCompleteness: 10", {"relevance": 0.0, "completeness": 1.0}),
    ("4", {"relevance": 0.75, "completeness": 0.75}),
    ("I'd say 7/10.", {"relevance": 0.7, "completeness": 0.7}),
    ("Score: 3.5", {"relevance": 0.625, "completeness": 0.625}),
    ("Relevance: 5", {"relevance": 1.0}),
])
def test_scores_are_read_in_the_forms_judges_answer_with(reply: str,
                                                         expected: dict[str, float]) -> None:
    assert parse_judgement(reply) == expected


@pytest.mark.parametrize("reply", [
    "", "I cannot rate this answer.", "relevance: 42", "Between 3 and 4, maybe 5.",
    "relevance: 7/5", "-3",
])
def test_unreadable_replies_give_nothing_rather_than_a_guess(reply: str) -> None:
    assert parse_judgement(reply) == {}


def _judge(rate: float, seed: int = 1) -> QualityJudge:
    async def nothing(*_: object) -> None:
        return None

    return QualityJudge(runner=None, model="judge", sample_rate=rate,  # type: ignore[arg-type]
                        max_tokens=16, spawn=lambda _: None, on_scores=nothing,
                        rng=random.Random(seed))


def test_sampling_follows_the_rate() -> None:
    assert not any(_judge(0.0).sampled() for _ in range(1000))
    assert all(_judge(1.0).sampled() for _ in range(1000))
    quarter = _judge(0.25)
    hits = sum(quarter.sampled() for _ in range(4000))
    assert 900 < hits < 1100
