"""Consensus: the answer most models give after normalisation, or the one a judge scores best."""

from __future__ import annotations

import json

import pytest

from gatewise.orchestration import consensus
from gatewise.orchestration.consensus import canonical_json, normalize_text
from gatewise.types.requests import ChatRequest

from .support import failing, last_user_text, scripted_gateway, tool_reply

SCHEMA = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}, "pop": {"type": "number"}},
    "required": ["city", "pop"]}}}


def test_text_normalisation_ignores_case_punctuation_and_spacing() -> None:
    assert normalize_text("  The answer is: PARIS!\n") == normalize_text("the answer is paris")
    assert normalize_text("Paris") != normalize_text("London")


def test_canonical_json_sorts_keys_and_treats_integral_floats_as_integers() -> None:
    assert canonical_json({"b": 1.0, "a": [2, {"d": 1, "c": 0}]}) == \
        '{"a":[2,{"c":0,"d":1}],"b":1}'


async def test_majority_over_normalised_text_wins_with_its_agreement_level() -> None:
    gw, _ = scripted_gateway({"a": "Paris.", "b": "London", "c": "  paris "})
    async with gw:
        out = await consensus(gw, "capital of France?", models=["a", "b", "c"])
    assert out.winner is not None and out.winner.model == "a"  # first of the largest group
    assert out.content == "Paris."
    assert out.agreement == pytest.approx(2 / 3)
    assert out.agreed and out.method == "majority"
    assert [(c.result.model, c.votes) for c in out.candidates] == [("a", 2), ("b", 1), ("c", 2)]
    assert out.usage.total_tokens == 3 * 12


async def test_a_tie_goes_to_the_group_listed_first_every_time() -> None:
    gw, _ = scripted_gateway({"a": "yes", "b": "no", "c": "No.", "d": "YES"})
    async with gw:
        winners = {(await consensus(gw, "?", models=["b", "a", "c", "d"])).content
                   for _ in range(5)}
        first_a = await consensus(gw, "?", models=["a", "b", "c", "d"])
    assert winners == {"no"}  # b is listed first, so its group wins the 2-2 tie
    assert first_a.content == "yes" and first_a.agreement == 0.5


async def test_below_min_agreement_the_result_is_flagged_not_agreed() -> None:
    gw, _ = scripted_gateway({"a": "1", "b": "2", "c": "3"})
    async with gw:
        out = await consensus(gw, "?", models=["a", "b", "c"], min_agreement=0.5)
    assert out.winner is not None and out.winner.model == "a"
    assert out.agreement == pytest.approx(1 / 3) and not out.agreed


async def test_a_failed_model_counts_as_not_agreeing() -> None:
    gw, _ = scripted_gateway({"a": "7", "b": "8", "down": failing()})
    async with gw:
        out = await consensus(gw, "?", models=["a", "b", "down"], min_agreement=0.5)
    assert out.agreement == pytest.approx(1 / 3) and not out.agreed
    assert out.candidates[2].key is None and out.candidates[2].result.error is not None


async def test_every_model_failing_gives_no_winner() -> None:
    gw, _ = scripted_gateway({"x": failing(), "y": failing()})
    async with gw:
        out = await consensus(gw, "?", models=["x", "y"])
    assert out.winner is None and out.agreement == 0 and not out.agreed


async def test_structured_outputs_agree_on_canonical_json_whatever_the_formatting() -> None:
    gw, _ = scripted_gateway({
        "a": '{"city": "Paris", "pop": 2.1}',
        "b": '{\n  "pop": 2.1,\n  "city": "Paris"\n}',
        "c": '{"city": "Lyon", "pop": 0.5}',
    })
    async with gw:
        out = await consensus(gw, "?", models=["c", "a", "b"], response_format=SCHEMA)
    assert out.winner is not None and out.winner.model == "a"
    assert json.loads(out.content or "") == {"city": "Paris", "pop": 2.1}
    assert out.agreement == pytest.approx(2 / 3)
    assert out.candidates[1].key == 'json:{"city":"Paris","pop":2.1}'


async def test_tool_calls_agree_on_name_and_arguments_not_on_key_order() -> None:
    gw, _ = scripted_gateway({
        "a": tool_reply("book", {"city": "Paris", "nights": 2}),
        "b": tool_reply("book", '{"nights": 2.0, "city": "Paris"}'),
        "c": tool_reply("book", {"city": "Rome", "nights": 2}),
    })
    async with gw:
        out = await consensus(gw, "?", models=["c", "a", "b"])
    assert out.winner is not None and out.winner.model == "a"
    assert out.winner.tool_calls[0].function.name == "book"
    assert out.agreement == pytest.approx(2 / 3)


async def test_a_judge_picks_the_best_scored_answer_even_against_the_majority() -> None:
    def judge(req: ChatRequest) -> str:
        text = last_user_text(req)
        assert "Candidate 1:\nshallow" in text and "Candidate 3:\nthorough" in text
        return 'Sure! {"scores": [0.2, 0.3, 0.9]}'

    gw, provider = scripted_gateway({"a": "shallow", "b": "shallow", "c": "thorough",
                                     "judge": judge})
    async with gw:
        out = await consensus(gw, "explain", models=["a", "b", "c"], judge="judge",
                              min_agreement=0.8)
    assert out.method == "judge" and out.content == "thorough"
    assert out.agreement == 0.9 and out.agreed
    assert [c.score for c in out.candidates] == [0.2, 0.3, 0.9]
    assert out.judge is not None and out.judge.model == "judge"
    assert out.usage.total_tokens == 4 * 12  # the judge's tokens are part of the cost
    assert provider.calls.count("judge") == 1


async def test_equal_judge_scores_go_to_the_bigger_group_then_to_model_order() -> None:
    gw, _ = scripted_gateway({"a": "one", "b": "two", "c": "Two", "judge": '{"scores": [1, 1, 1]}'})
    async with gw:
        out = await consensus(gw, "?", models=["a", "b", "c"], judge="judge")
    assert out.winner is not None and out.winner.model == "b"


async def test_an_unusable_judge_falls_back_to_the_majority_and_says_why() -> None:
    gw, _ = scripted_gateway({"a": "x", "b": "x", "c": "y", "judge": "I like the second one"})
    async with gw:
        out = await consensus(gw, "?", models=["a", "b", "c"], judge="judge")
    assert out.method == "majority" and out.content == "x"
    assert out.judge_error == "judge answered no usable scores"


async def test_a_failing_judge_falls_back_to_the_majority() -> None:
    gw, _ = scripted_gateway({"a": "x", "b": "y", "judge": failing()})
    async with gw:
        out = await consensus(gw, "?", models=["a", "b"], judge="judge")
    assert out.method == "majority" and out.content == "x"
    assert out.judge_error is not None and out.judge_error.startswith("judge failed")
