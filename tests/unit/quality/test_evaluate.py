"""Evaluation runs (`gatewise.quality.evaluate`, `eval_set`, `scorers`): a set is checked line
by line before anything runs, every check scores what it claims (and no more leniently), and
a run through the gateway compares models per kind with a judge and meaning similarity."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ProviderServerError
from gatewise.gateway import Gateway
from gatewise.quality.eval_set import EvalSetError, load_eval_set, parse_item
from gatewise.quality.evaluate import render_markdown, render_table, run_eval
from gatewise.quality.scorers import (
    parse_judge,
    score_contains,
    score_exact,
    score_max_words,
    score_schema,
    score_similar,
    score_tool,
)
from gatewise.testing.scripted import Reply, ScriptedProvider, tool_call
from gatewise.types.requests import ChatRequest

BALANCE_TOOL = {"type": "function", "function": {
    "name": "get_balance", "description": "An account's balance",
    "parameters": {"type": "object", "properties": {"account": {"type": "string"}},
                   "required": ["account"]}}}


def _write(tmp_path: Path, lines: list[Any]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


# -- the set -----------------------------------------------------------------------------------
GOOD = {"id": "t1", "kind": "title", "input": "Name this task", "expected": {"contains": ["x"]}}


@pytest.mark.parametrize(("bad", "words"), [
    ("{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object"),
    ({**GOOD, "id": ""}, "'id' must be a non-empty string"),
    ({**GOOD, "colour": "red"}, "unknown key 'colour'"),
    ({**GOOD, "input": ""}, "'input' must be a non-empty string or a list of messages"),
    ({**GOOD, "input": [{"role": "robot", "content": "hi"}]}, "not a valid chat request"),
    ({**GOOD, "tools": [{"type": "function"}]}, "not a valid chat request"),
    ({**GOOD, "expected": {"regex": "("}}, "expected.regex does not compile"),
    ({**GOOD, "expected": {"tool": {"arguments": {}}}}, "expected.tool must be"),
    ({**GOOD, "expected": {"similarity": "x"}}, "unknown check 'expected.similarity'"),
    ({**GOOD, "expected": None}, "nothing to score"),
    ({**GOOD, "id": "t0"}, "id 't0' is already used on line 1"),
])
def test_a_bad_line_is_an_error_naming_the_file_and_line(tmp_path: Path, bad: Any,
                                                          words: str) -> None:
    path = _write(tmp_path, [{**GOOD, "id": "t0"}, "", bad])
    with pytest.raises(EvalSetError) as err:
        load_eval_set(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert words in str(err.value)


def test_a_set_loads_with_comments_blank_lines_and_a_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, ["# titles", {**GOOD, "id": "a"}, "", {**GOOD, "id": "b"},
                             {**GOOD, "id": "c"}])
    items = load_eval_set(path, limit=2)
    assert [(i.id, i.line) for i in items] == [("a", 2), ("b", 4)]
    assert items[0].messages == [{"role": "user", "content": "Name this task"}]
    with pytest.raises(EvalSetError, match="no items"):
        load_eval_set(_write(tmp_path, ["# nothing"]))


# -- the scorers -------------------------------------------------------------------------------
def test_exact_ignores_case_quotes_and_a_final_period_only() -> None:
    assert score_exact(' "Add login page." ', "add login page").passed
    assert not score_exact("Add the login page", "add login page").passed


def test_contains_scores_the_share_found_with_alternatives() -> None:
    r = score_contains("Restart the gateway", (("restart", "reload"), ("config",)))
    assert (r.score, r.passed, r.note) == (0.5, False, "missing: config")


def test_a_title_over_its_word_limit_or_empty_fails() -> None:
    assert score_max_words("Fix cache eviction", 6).passed
    assert not score_max_words("one two three four five six seven", 6).passed
    assert not score_max_words("   ", 6).passed


def test_schema_accepts_a_fenced_json_answer_and_names_the_problem() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}},
              "required": ["title"]}
    assert score_schema('```json\n{"title": "Hi"}\n```', schema).passed
    bad = score_schema('{"name": "Hi"}', schema)
    assert not bad.passed and "title" in bad.note
    assert score_schema("Sure! Here it is", schema).note == "not JSON"


def test_a_tool_call_scores_its_name_then_each_argument() -> None:
    want = {"account": "checking", "amount": 50}
    assert score_tool([("transfer", '{"account": "Checking", "amount": 50.0}')],
                      "transfer", want).score == 1.0
    half = score_tool([("transfer", '{"account": "savings", "amount": 50}')], "transfer", want)
    assert (half.score, half.passed) == (0.75, False)
    assert score_tool([("get_balance", "{}")], "transfer", want).score == 0.0
    assert score_tool([], "transfer", want).note == "no tool call"
    assert score_tool([("transfer", "{oops")], "transfer", want).score == 0.5


def test_similarity_is_scaled_between_its_anchors() -> None:
    assert score_similar(0.7, 0.5).score == pytest.approx(1.0)
    assert score_similar(0.45, 0.5).score == pytest.approx(0.5)
    assert not score_similar(0.45, 0.5).passed
    assert score_similar(0.05, 0.5).score == 0.0


def test_the_judge_rating_is_its_first_number_out_of_ten() -> None:
    assert parse_judge("8") == 0.8
    assert parse_judge("Rating: 10/10") == 1.0
    assert parse_judge("I'd say 7.5") == 0.7
    assert parse_judge("good answer") is None


# -- a run through the gateway -----------------------------------------------------------------
class KeywordEmbedder:
    """Meaning by keywords: texts sharing the word 'restart' are the same direction."""

    async def embed(self, texts: Sequence[str]) -> Any:
        rows = [[1.0, 0.0] if "restart" in t.lower() else [0.0, 1.0] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def _answer(model: str) -> Any:
    def answer(req: ChatRequest) -> Reply:
        text = str(req.messages[-1].content)
        if model == "bad":
            return Reply(content="I cannot help with that, sorry about that friend")
        if req.tools:
            return tool_call("get_balance", {"account": "checking"})
        if "crash" in text:
            return Reply(content="Restart the service after fixing the config.")
        return Reply(content="Fix cache eviction")

    return answer


def _gateway() -> Gateway:
    cfg, warnings = parse_config({
        "models": {"good": [{"model": "fake/good"}], "bad": [{"model": "fake/bad"}],
                   "judge": [{"model": "fake/judge"}], "down": [{"model": "fake/down"}]},
        "router": {"retry": {"max_retries": 0}}, "storage": {"database": "memory"}})
    gw = Gateway(resolve_config(cfg, None, {}, warnings))
    gw.pool.register("fake", ScriptedProvider({
        "good": _answer("good"), "bad": _answer("bad"), "judge": "8",
        "down": ProviderServerError}))
    return gw


SET = [
    {"id": "title-1", "kind": "title", "input": "Title for: the cache evicts too early",
     "expected": {"contains": [["cache"], ["evict"]], "max_words": 8}},
    {"id": "tool-1", "kind": "tool_call", "input": "What's on my checking account?",
     "tools": [BALANCE_TOOL],
     "expected": {"tool": {"name": "get_balance", "arguments": {"account": "checking"}}}},
    {"id": "answer-1", "kind": "answer", "input": "The gateway crashed, what now?",
     "expected": {"similar": "Restart the gateway."}, "rubric": "Gives a concrete next step"},
]


async def test_models_are_compared_per_kind_with_the_judge_and_similarity() -> None:
    items = [parse_item(x, f"set:{n}") for n, x in enumerate(SET, 1)]
    async with _gateway() as gw:
        rep = await run_eval(gw, items, ["good", "bad"], judge="judge",
                             embedder=KeywordEmbedder(), set_name="s")
    by = {(s.model, s.kind): s for s in rep.summaries}
    assert by[("good", "title")].mean_score == 1.0
    assert by[("good", "tool_call")].mean_score == 1.0
    # similar (1.0) and the judge's 8/10: mean 0.9, and a pass (>= 0.7).
    assert by[("good", "answer")].mean_score == pytest.approx(0.9)
    assert by[("good", "all")].pass_rate == 1.0
    assert by[("bad", "title")].mean_score == 0.0  # neither word, and 9 words
    assert by[("bad", "tool_call")].mean_score == 0.0
    assert by[("bad", "answer")].mean_score == pytest.approx(0.4)  # judge 0.8, similar 0
    assert by[("bad", "all")].pass_rate == 0.0
    assert rep.best() is not None and rep.best().model == "good"  # type: ignore[union-attr]
    assert by[("good", "all")].tokens > 0
    table = render_table(rep).splitlines()
    assert table[0].split()[:3] == ["model", "kind", "n"]
    assert len(table) == 1 + 2 * 4
    md = render_markdown(rep)
    assert "| answer-1 | answer | bad | 0.40 | no | similar 0.00 (cosine 0.000); judge 0.80" \
        " (8/10) |  |" in md


async def test_a_failing_model_scores_zero_with_its_error() -> None:
    items = [parse_item(SET[0], "set:1")]
    async with _gateway() as gw:
        rep = await run_eval(gw, items, ["down"])
    (r,) = rep.results
    assert (r.score, r.passed, r.error) == (0.0, False, "ProviderServerError")
    assert rep.summaries[0].errors == 1


async def test_similarity_needs_an_embedder() -> None:
    items = [parse_item(SET[2], "set:3")]
    async with _gateway() as gw:
        with pytest.raises(ValueError, match="embedder"):
            await run_eval(gw, items, ["good"])


def test_the_project_seed_set_is_valid() -> None:
    path = Path(__file__).resolve().parents[3] / "evals" / "seeds.jsonl"
    items = load_eval_set(path)
    kinds = {i.kind for i in items}
    assert {"title", "tool_call", "answer"} <= kinds
    assert len(items) >= 30
    for i in items:
        assert re.fullmatch(r"[a-z_]+-\d+", i.id)
