"""Cheap per-response scores (`gatewise.quality.scores`): validity of JSON, schema-bound JSON,
tool calls and code blocks; groundedness against supplied or retrieved context; toxicity
(1 = clean). A score that does not apply is absent, never a made-up 1."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.quality.scores import ResponseScorer, brackets_balance, code_block_valid
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.validation import chat_request_from_dict

WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}
PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"]}


@pytest.fixture(scope="module")
def scorer() -> ResponseScorer:
    return ResponseScorer()


def _req(*messages: dict[str, Any], **params: Any) -> Any:
    msgs = list(messages) or [{"role": "user", "content": "hi"}]
    return chat_request_from_dict({"model": "m", "messages": msgs, **params})


def _answer(content: str | None = None, tools: list[tuple[str, str]] = (),  # type: ignore[assignment]
            rag: dict[str, Any] | None = None) -> ChatCompletion:
    calls = [ToolCall(id=f"c{i}", type="function", function=FunctionCall(name=n, arguments=a))
             for i, (n, a) in enumerate(tools)] or None
    extra: dict[str, Any] = {"rag": rag} if rag is not None else {}
    return ChatCompletion(id="x", created=0, model="m", choices=[Choice(
        index=0, message=ResponseMessage(content=content, tool_calls=calls),
        finish_reason="tool_calls" if calls else "stop")], **extra)


# -- validity: JSON ------------------------------------------------------------------------------

def test_json_mode_answer_is_valid_only_when_it_parses_as_an_object(scorer: ResponseScorer) -> None:
    req = _req(response_format={"type": "json_object"})
    assert scorer.score(req, _answer('{"a": 1}'))["validity"] == 1.0
    assert scorer.score(req, _answer('{"a": 1'))["validity"] == 0.0
    assert scorer.score(req, _answer("[1, 2]"))["validity"] == 0.0


def test_json_schema_answer_must_also_validate_against_the_schema(scorer: ResponseScorer) -> None:
    req = _req(response_format={"type": "json_schema",
                                "json_schema": {"name": "person", "schema": PERSON}})
    assert scorer.score(req, _answer('{"name": "Ada", "age": 36}'))["validity"] == 1.0
    assert scorer.score(req, _answer('{"name": "Ada", "age": -1}'))["validity"] == 0.0
    assert scorer.score(req, _answer('{"name": "Ada"}'))["validity"] == 0.0
    assert scorer.score(req, _answer("Ada is 36"))["validity"] == 0.0


def test_plain_prose_has_no_validity_score(scorer: ResponseScorer) -> None:
    assert "validity" not in scorer.score(_req(), _answer("Paris is the capital of France."))


# -- validity: tool calls ------------------------------------------------------------------------

def test_tool_calls_must_name_an_offered_tool_with_arguments_fitting_its_schema(
        scorer: ResponseScorer) -> None:
    req = _req(tools=[WEATHER])
    assert scorer.score(req, _answer(tools=[("weather", '{"city": "Oslo"}')]))["validity"] == 1.0
    assert scorer.score(req, _answer(tools=[("weather", '{"town": "Oslo"}')]))["validity"] == 0.0
    assert scorer.score(req, _answer(tools=[("weather", '{"city": ')]))["validity"] == 0.0
    assert scorer.score(req, _answer(tools=[("weather", '["Oslo"]')]))["validity"] == 0.0
    assert scorer.score(req, _answer(tools=[("stocks", '{"city": "Oslo"}')]))["validity"] == 0.0


def test_validity_is_the_share_of_parts_that_check_out(scorer: ResponseScorer) -> None:
    req = _req(tools=[WEATHER])
    got = scorer.score(req, _answer(tools=[("weather", '{"city": "Oslo"}'),
                                           ("weather", '{"city": 3}')]))
    assert got["validity"] == 0.5


# -- validity: code blocks -----------------------------------------------------------------------

def test_python_blocks_must_parse(scorer: ResponseScorer) -> None:
    good = "Here:\n```python\ndef f(x):\n    return x + 1\n```\n"
    bad = "Here:\n```python\ndef f(x)\n    return x +\n```\n"
    assert scorer.score(_req(), _answer(good))["validity"] == 1.0
    assert scorer.score(_req(), _answer(bad))["validity"] == 0.0


def test_json_blocks_must_parse_and_other_languages_must_balance_their_brackets(
        scorer: ResponseScorer) -> None:
    text = ("```json\n{\"a\": [1, 2]}\n```\n"
            "```js\nfunction f(a) { return [a, \"}\"]; }\n```\n"
            "```rust\nfn main() { let v = vec![1, 2;\n}\n```\n")
    assert scorer.score(_req(), _answer(text))["validity"] == pytest.approx(2 / 3)


def test_prose_blocks_are_not_judged() -> None:
    assert code_block_valid("text", "a ( b") is None
    assert code_block_valid("", "a ( b") is None
    assert brackets_balance("char c = '('; s = \"[\"; f(c)")
    assert not brackets_balance("f(a]")
    assert not brackets_balance("{")


# -- groundedness --------------------------------------------------------------------------------

def test_an_answer_grounded_in_supplied_context_scores_high_and_an_invented_one_low(
        scorer: ResponseScorer) -> None:
    ctx = ("The Falkenberg plant produces 40,000 bicycles per year. It opened in 1998 and "
           "employs 320 people.")
    req = _req({"role": "system", "name": "context", "content": ctx},
               {"role": "user", "content": "Tell me about the plant."})
    grounded = "The Falkenberg plant produces 40,000 bicycles per year and employs 320 people."
    invented = "The company sells submarines to Norwegian fishermen during winter festivals."
    assert scorer.score(req, _answer(grounded))["groundedness"] == 1.0
    assert scorer.score(req, _answer(invented))["groundedness"] == 0.0


def test_developer_context_and_metadata_context_count_too(scorer: ResponseScorer) -> None:
    ctx = "Invoices are paid within thirty days of the delivery date by bank transfer."
    answer = _answer("Invoices are paid within thirty days of delivery by bank transfer.")
    dev = _req({"role": "developer", "name": "documents", "content": ctx},
               {"role": "user", "content": "When are invoices paid?"})
    meta = _req({"role": "user", "content": "When are invoices paid?"}, metadata={"context": ctx})
    assert scorer.score(dev, answer)["groundedness"] == 1.0
    assert scorer.score(meta, answer)["groundedness"] == 1.0


def test_without_context_there_is_no_groundedness(scorer: ResponseScorer) -> None:
    assert "groundedness" not in scorer.score(_req(), _answer("The sky is blue today, clearly."))


def test_a_knowledge_base_answer_keeps_its_own_groundedness(scorer: ResponseScorer) -> None:
    got = scorer.score(_req(), _answer("Per the handbook, leave is 25 days [1].",
                                       rag={"groundedness": 0.8, "not_found": False}))
    assert got["groundedness"] == 0.8
    not_found = scorer.score(_req(), _answer("I don't know.",
                                             rag={"groundedness": None, "not_found": True}))
    assert "groundedness" not in not_found


# -- toxicity ------------------------------------------------------------------------------------

def test_a_clean_answer_scores_one_and_abuse_lowers_it(scorer: ResponseScorer) -> None:
    assert scorer.score(_req(), _answer("Happy to help with Scunthorpe."))["toxicity"] == 1.0
    assert scorer.score(_req(), _answer("That is shit."))["toxicity"] == 0.5
    assert scorer.score(_req(), _answer("shit, sh1t and more shit"))["toxicity"] == 0.25


def test_switched_off_scores_are_not_computed() -> None:
    off = ResponseScorer(validity=False, groundedness=False, toxicity=False)
    req = _req({"role": "system", "name": "context", "content": "Oslo is in Norway."},
               response_format={"type": "json_object"})
    assert off.score(req, _answer("{oops")) == {}


def test_an_answer_without_choices_or_text_has_no_scores(scorer: ResponseScorer) -> None:
    empty = ChatCompletion(id="x", created=0, model="m", choices=[])
    assert scorer.score(_req(), empty) == {}
    assert scorer.score(_req(), _answer(None)) == {}


def test_an_unusable_schema_is_invalid_and_schemas_and_contexts_are_prepared_once(
        scorer: ResponseScorer) -> None:
    fresh = ResponseScorer()
    req = _req(response_format={"type": "json_schema", "json_schema": {
        "name": "p", "schema": PERSON}})
    for _ in range(3):
        fresh.score(req, _answer('{"name": "a", "age": 1}'))
    assert len(fresh._schemas) == 1
    ctx = _req({"role": "system", "name": "context", "content": "Oslo is the capital of Norway."})
    for _ in range(3):
        assert fresh.score(ctx, _answer("Oslo is the capital of Norway."))["groundedness"] == 1.0
    assert len(fresh._contexts) == 1
    assert fresh._validator({"type": "object", "properties": {"a": {"$ref": "#/nope"}}}) is None
