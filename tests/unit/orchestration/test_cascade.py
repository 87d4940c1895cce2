"""Cascade: the cheap model answers unless a quality gate rejects it; the trail says why."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.orchestration import Verdict, cascade
from gatewise.orchestration.cascade import default_gate
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict

from .support import Reply, failing, scripted_gateway, tool_reply

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "role"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                         "role": {"enum": ["admin", "user"]},
                         "email": {"type": ["string", "null"]}}}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
GOOD_PERSON = '{"name": "Ada", "age": 36, "role": "admin", "email": null}'
TOOLS = [{"type": "function", "function": {"name": "book", "parameters": {
    "type": "object", "required": ["city"], "additionalProperties": False,
    "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}}}}}]


async def test_the_cheap_model_answers_when_its_answer_passes() -> None:
    gw, provider = scripted_gateway({"cheap": "fine", "big": "also fine"})
    async with gw:
        out = await cascade(gw, "q", models=["cheap", "big"], gate="non_empty")
    assert out.accepted and out.content == "fine" and out.path == "cheap"
    assert provider.calls == ["cheap"]  # the expensive model was never called


async def test_non_empty_gate_escalates_on_a_blank_answer() -> None:
    gw, _ = scripted_gateway({"cheap": "  \n", "big": "a real answer"})
    async with gw:
        out = await cascade(gw, "q", models=["cheap", "big"], gate="non_empty")
    assert out.accepted and out.content == "a real answer" and out.path == "cheap>big"
    assert [(s.model, s.accepted, s.verdict.reason) for s in out.trail] == [
        ("cheap", False, "empty answer"), ("big", True, "")]


async def test_valid_json_gate_escalates_on_prose_or_fenced_json() -> None:
    gw, _ = scripted_gateway({"a": "Here you go: {}", "b": '```json\n{"x": 1}\n```',
                              "c": '{"x": 1}'})
    async with gw:
        out = await cascade(gw, "q", models=["a", "b", "c"], gate="valid_json")
    assert out.content == '{"x": 1}' and out.path == "a>b>c"
    assert {s.verdict.reason for s in out.trail[:2]} == {"the answer is not valid JSON"}


@pytest.mark.parametrize(("bad", "reason"), [
    ('{"name": "Ada", "age": 36}', "$: missing required property 'role'"),
    ('{"name": "Ada", "age": "36", "role": "admin"}', "$.age: expected integer, got string"),
    ('{"name": "Ada", "age": 36, "role": "root"}', '$.role: must be one of ["admin", "user"]'),
    ('{"name": "Ada", "age": 36, "role": "user", "x": 1}', "$: unexpected property 'x'"),
    ('{"name": "Ada", "age": 36, "role": "user", "email": 5}',
     "$.email: expected string or null, got integer"),
    ("[1, 2]", "$: expected object, got array"),
])
async def test_json_schema_gate_escalates_with_the_first_violation(bad: str, reason: str) -> None:
    gw, _ = scripted_gateway({"cheap": bad, "big": GOOD_PERSON})
    async with gw:
        out = await cascade(gw, "who?", models=["cheap", "big"], gate="json_schema",
                            response_format=SCHEMA_FORMAT)
    assert out.accepted and out.content == GOOD_PERSON
    assert out.trail[0].verdict.reason == f"schema: {reason}"


async def test_json_schema_gate_without_a_schema_in_the_request_is_a_mistake() -> None:
    gw, _ = scripted_gateway({"cheap": "{}"})
    async with gw:
        with pytest.raises(InvalidRequestError, match="response_format"):
            await cascade(gw, "q", models=["cheap"], gate="json_schema")


@pytest.mark.parametrize(("bad", "reason"), [
    (tool_reply("cancel", {"city": "Oslo"}), "tool 'cancel' is not declared in the request"),
    (tool_reply("book", {"nights": 2}), "tool 'book': $: missing required property 'city'"),
    (tool_reply("book", {"city": "Oslo", "nights": 1.5}),
     "tool 'book': $.nights: expected integer, got number"),
    (tool_reply("book", "{not json"), "tool 'book': arguments are not a JSON object"),
    (Reply(content="I would book Oslo"), "no tool call, but the request requires one"),
])
async def test_tool_calls_valid_gate_checks_names_arguments_and_tool_choice(
        bad: Reply, reason: str) -> None:
    gw, _ = scripted_gateway({"cheap": bad, "big": tool_reply("book", {"city": "Oslo"})})
    async with gw:
        out = await cascade(gw, "book Oslo", models=["cheap", "big"], gate="tool_calls_valid",
                            tools=TOOLS, tool_choice="required")
    assert out.accepted and out.result is not None and out.result.model == "big"
    assert out.trail[0].verdict.reason == reason


async def test_judge_gate_escalates_below_min_score_and_accepts_above() -> None:
    def judge(req: ChatRequest) -> str:
        answer = req.messages[-1].content
        assert isinstance(answer, str)
        return '{"score": 0.4}' if answer.endswith("meh") else 'Verdict: {"score": 0.95}'

    gw, provider = scripted_gateway({"cheap": "meh", "big": "great", "judge": judge})
    async with gw:
        out = await cascade(gw, "q", models=["cheap", "big"], gate="judge", judge="judge",
                            min_score=0.7)
    assert out.accepted and out.content == "great"
    assert [(s.verdict.score, s.verdict.reason) for s in out.trail] == [
        (0.4, "judge score 0.4 < 0.7"), (0.95, "")]
    assert provider.calls == ["cheap", "judge", "big", "judge"]
    assert out.usage.total_tokens == 4 * 12


async def test_an_unusable_judge_reply_fails_the_gate_closed() -> None:
    gw, _ = scripted_gateway({"cheap": "x", "big": "y", "judge": "looks good to me"})
    async with gw:
        out = await cascade(gw, "q", models=["cheap", "big"], gate="judge", judge="judge")
    assert not out.accepted
    assert out.trail[0].verdict == Verdict(False, "the judge gave no usable score", 0.0)


async def test_the_judge_gate_needs_a_judge() -> None:
    gw, provider = scripted_gateway({"cheap": "x"})
    async with gw:
        with pytest.raises(InvalidRequestError, match="judge"):
            await cascade(gw, "q", models=["cheap"], gate="judge")
    assert provider.calls == []


async def test_a_caller_check_can_reject_with_a_reason_or_a_plain_bool() -> None:
    async def has_citation(c: ChatCompletion, req: ChatRequest) -> Verdict:
        text = c.choices[0].message.content or ""
        return Verdict(True) if "[1]" in text else Verdict(False, "no citation")

    async def short(c: ChatCompletion, req: ChatRequest) -> bool:
        return len(c.choices[0].message.content or "") < 20

    gw, _ = scripted_gateway({"a": "trust me", "b": "it is so [1] " + "x" * 30, "c": "yes [1]"})
    async with gw:
        out = await cascade(gw, "q", models=["a", "b", "c"], gate=[has_citation, short])
    assert out.content == "yes [1]"
    assert [s.verdict.reason for s in out.trail] == [
        "no citation", "rejected by the caller's check", ""]


async def test_a_failing_model_escalates_and_is_in_the_trail() -> None:
    gw, _ = scripted_gateway({"cheap": failing(), "big": "ok"})
    async with gw:
        out = await cascade(gw, "q", models=["cheap", "big"])
    assert out.accepted and out.path == "cheap>big"
    assert out.trail[0].verdict.reason.startswith("failed: ProviderServerError")


async def test_when_nothing_passes_the_last_answer_is_returned_not_accepted() -> None:
    gw, _ = scripted_gateway({"a": "no", "b": "nope"})
    async with gw:
        out = await cascade(gw, "q", models=["a", "b"], gate="valid_json")
    assert not out.accepted and out.content == "nope" and out.path == "a>b"


def _req(**kw: Any) -> ChatRequest:
    return chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                   **kw})


def test_without_a_gate_the_request_decides_which_one_applies() -> None:
    assert default_gate(_req(response_format=SCHEMA_FORMAT)) == "json_schema"
    assert default_gate(_req(response_format={"type": "json_object"})) == "valid_json"
    assert default_gate(_req(tools=TOOLS)) == "tool_calls_valid"
    assert default_gate(_req()) == "non_empty"


async def test_unknown_gate_names_are_rejected_before_any_call() -> None:
    gw, provider = scripted_gateway({"a": "x"})
    async with gw:
        with pytest.raises(InvalidRequestError, match="unknown gate 'vibes'"):
            await cascade(gw, "q", models=["a"], gate="vibes")  # type: ignore[arg-type]
    assert provider.calls == []
