"""The complexity scorer: a labelled set of prompts, tiers, determinism, speed and the header."""

from __future__ import annotations

import time

import pytest

from gatewise.routing.complexity import ComplexityScorer
from gatewise.types.validation import chat_request_from_dict

SMALL = [
    "hi!",
    "Hello, how are you today?",
    "thanks, that's great",
    "ok cool",
    "What is the capital of France?",
    "Tell me a joke.",
    "What time zone is Tokyo in?",
    "Translate 'good morning' to Spanish.",
    "Who wrote Pride and Prejudice?",
    "Give me a synonym for happy.",
    "Is a tomato a fruit?",
    "What's 2 + 2?",
]

MEDIUM = [
    "Write a short, friendly email to my team announcing that Friday's meeting moved to 3pm "
    "and asking everyone to confirm they can still make it.",
    "Summarize the main causes of World War I in one paragraph for a high-school student.",
    "What are the pros and cons of electric cars compared to hybrids for someone who drives "
    "mostly in the city?",
    "Explain how a refrigerator works in simple terms, including what the compressor does.",
    "Write a haiku about autumn and then explain the imagery you chose.",
    "Give me a 3-day itinerary for Rome with museums, walking routes and food "
    "recommendations for each day.",
    "What's the difference between a list and a tuple in Python?",
    "Rewrite this paragraph to sound more professional: hey guys, the server was down all "
    "morning, sorry about that, we fixed it now and it shouldn't happen again, probably.",
    "Draft a product description for a stainless steel water bottle that keeps drinks cold "
    "for 24 hours and hot for 12, aimed at hikers.",
    "Explain why the sky is blue and why sunsets are red.",
]

LARGE = [
    "```python\ndef merge(a, b):\n    out = []\n    for x in a:\n        for y in b:\n"
    "            if x == y:\n                out.append(x)\n    return out\n```\n"
    "This function is slow on large inputs and sometimes returns duplicates. Refactor it to "
    "run in O(n log n), add type hints and write pytest tests for the edge cases.",
    "Design a distributed rate limiter for a multi-region API gateway. Discuss the "
    "consistency trade-offs and failure modes, and give the data structures and pseudo-code "
    "for synchronizing the token buckets.",
    "Prove that the square root of 2 is irrational, then generalize the proof to show that "
    "the square root of any prime is irrational.",
    "Solve the integral of x^2 * e^(3x) dx step by step and verify the result by "
    "differentiation.",
    "This PostgreSQL query takes 30 seconds:\nSELECT o.id, c.name FROM orders o JOIN "
    "customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '7 days' "
    "ORDER BY o.total DESC;\nAnalyze why it is slow, suggest indexes, and explain how the "
    "query plan changes with each one.",
    "Implement a thread-safe LRU cache in Rust with generic keys and values, explain how the "
    "ownership model shapes the design, and benchmark it against a HashMap plus VecDeque "
    "version.",
    "Compare three approaches to training a text classifier with little labelled data "
    "(transfer learning, weak supervision, active learning). For each, explain the "
    "assumptions and estimate the labelling cost, then recommend one for a 500-example "
    "medical dataset and justify your answer.",
    "Our Java service crashes with this stack trace:\njava.lang.NullPointerException\n"
    "    at com.shop.cart.CartService.total(CartService.java:42)\n"
    "    at com.shop.api.CartController.get(CartController.java:17)\n"
    "Explain the root cause, propose a fix, then write a JUnit test that reproduces it.",
    "Plan the migration of a monolithic Django app to microservices: list the steps, the "
    "order in which to extract services, how to handle the shared database, and the "
    "rollback strategy for each phase.",
    "Write a function in TypeScript that parses a cron expression and returns the next 5 run "
    "times. Handle ranges, steps and lists, and explain the algorithm.",
    "Why does my React component re-render twice? Is it StrictMode? How do I memoize the "
    "onChange callback? Should I use useReducer instead of several useState calls?",
    "A bag has 3 red and 5 blue balls and two are drawn without replacement. What is the "
    "probability that both are red? Show your reasoning step by step, then compute the "
    "expected number of red balls drawn.",
]

LABELLED = [(p, "small") for p in SMALL] + [(p, "medium") for p in MEDIUM] \
    + [(p, "large") for p in LARGE]


def test_labelled_set_agrees_at_least_90_percent() -> None:
    scorer = ComplexityScorer()
    wrong = [(tier, scorer.score_text(p), p[:60]) for p, tier in LABELLED
             if scorer.score_text(p).tier != tier]
    agreement = 1 - len(wrong) / len(LABELLED)
    assert len(LABELLED) >= 30
    assert agreement >= 0.9, wrong


def test_scores_are_deterministic_and_bounded() -> None:
    scorer = ComplexityScorer()
    for p, _ in LABELLED:
        a, b = scorer.score_text(p), ComplexityScorer().score_text(p)
        assert (a.tier, a.score) == (b.tier, b.score)
        assert 0.0 <= a.score <= 1.0


def test_the_header_carries_tier_and_score() -> None:
    s = ComplexityScorer().score_text("hi")
    assert s.header == "small;score=0.00"


def test_tools_structured_output_and_long_conversations_raise_the_score() -> None:
    scorer = ComplexityScorer()
    plain = chat_request_from_dict({"model": "auto", "messages": [
        {"role": "user", "content": "What's the weather in Paris?"}]})
    tools = [{"type": "function", "function": {"name": f"t{i}", "parameters": {"type": "object"}}}
             for i in range(4)]
    with_tools = chat_request_from_dict({"model": "auto", "tools": tools, "messages": [
        {"role": "user", "content": "What's the weather in Paris?"}]})
    history = [{"role": "user" if i % 2 else "assistant", "content": "and then?"}
               for i in range(11)]
    long_chat = chat_request_from_dict({"model": "auto", "messages": history})
    base = scorer.score_request(plain)
    assert base.tier == "small"
    assert scorer.score_request(with_tools).score > base.score
    assert scorer.score_request(with_tools).tier != "small"
    assert scorer.score_request(long_chat).score > scorer.score_text("and then?").score


def test_the_system_prompt_counts_towards_length_but_the_task_is_the_last_user_turn() -> None:
    scorer = ComplexityScorer()
    req = chat_request_from_dict({"model": "auto", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Prove the theorem step by step, then derive the lemma."},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "thanks!"}]})
    assert scorer.score_request(req).tier == "small"


def test_tiers_follow_the_configured_thresholds() -> None:
    scorer = ComplexityScorer(medium_at=0.1, large_at=0.2)
    assert scorer.tier_of(0.05) == "small" and scorer.tier_of(0.15) == "medium"
    assert scorer.tier_of(0.2) == "large"
    with pytest.raises(ValueError):
        ComplexityScorer(medium_at=0.7, large_at=0.6)


def test_scoring_an_8kb_prompt_takes_well_under_a_millisecond() -> None:
    scorer = ComplexityScorer()
    text = (LARGE[0] + " " + MEDIUM[0] + " ") * 20
    text = text[:8192]
    scorer.score_text(text)
    best = min(_timed(scorer, text) for _ in range(5))
    assert best < 1e-3, f"{best * 1e6:.0f} µs"


def _timed(scorer: ComplexityScorer, text: str) -> float:
    t0 = time.perf_counter()
    for _ in range(20):
        scorer.score_text(text)
    return (time.perf_counter() - t0) / 20
