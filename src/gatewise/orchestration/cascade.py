"""Cascade: the cheap model first, the next one only when a quality gate rejects the answer.

Models are tried in order; each answer must pass every gate, else the cascade escalates to the
next model. A model that fails outright (after its own retries and fallbacks) escalates too.
The result is the accepted answer plus the trail: every model tried and why each was rejected,
so callers (and the `x-gatewise-cascade: a>b` header) can see what the quality cost.

Gates:

- `non_empty`: some text or a tool call;
- `valid_json`: the content parses as JSON, as it is (no fence stripping: the caller will parse
  exactly what it gets);
- `json_schema`: valid JSON that matches the request's `response_format` schema (all of JSON
  Schema, see `gatewise.types.jsonschema`);
- `tool_calls_valid`: every call names a tool the request declared, its arguments are a JSON
  object valid against that tool's parameters, and `tool_choice` (required / a named function)
  is honoured;
- `judge`: a judge alias scores the answer 0..1 (JSON `{"score": x}`); below `min_score`
  escalates (an unusable judge reply counts as 0: a high-stakes gate fails closed);
- a caller-supplied `async check(completion, request) -> bool | Verdict`.

No gate given → the request decides: `json_schema` when it carries a schema, `valid_json` for
`json_object`, `tool_calls_valid` when it offers tools, else `non_empty`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gatewise.errors import InvalidRequestError
from gatewise.orchestration.consensus import (
    extract_json,
    parse_json,
    render_answer,
    render_conversation,
)
from gatewise.orchestration.parallel import (
    Branches,
    ModelResult,
    build_request,
    library_branches,
    sum_cost,
    sum_usage,
)
from gatewise.pipeline.core import ANONYMOUS, Identity
from gatewise.pipeline.runner import Runner
from gatewise.types.jsonschema import first_problem
from gatewise.types.requests import (
    ChatRequest,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
)
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.validation import chat_request_from_dict

GateName = Literal["valid_json", "json_schema", "tool_calls_valid", "judge", "non_empty"]
GATE_NAMES: tuple[GateName, ...] = ("valid_json", "json_schema", "tool_calls_valid", "judge",
                                    "non_empty")

JUDGE_SYSTEM = (
    "You are a strict judge. Score the assistant's answer to the conversation below from 0 "
    "(wrong or useless) to 1 (correct and complete). Reply with JSON only, exactly "
    '{"score": <number between 0 and 1>}.'
)


@dataclass(slots=True, frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    score: float | None = None


ACCEPT = Verdict(True)
Check = Callable[[ChatCompletion, ChatRequest], Awaitable[bool | Verdict]]
Gate = GateName | Check


# -- gates -------------------------------------------------------------------------------------
def _message(c: ChatCompletion) -> tuple[str | None, list[Any]]:
    if not c.choices:
        return None, []
    m = c.choices[0].message
    return m.content, m.tool_calls or []


def check_non_empty(c: ChatCompletion, req: ChatRequest) -> Verdict:
    content, calls = _message(c)
    return ACCEPT if calls or (content and content.strip()) else Verdict(False, "empty answer")


def check_valid_json(c: ChatCompletion, req: ChatRequest) -> Verdict:
    content, _ = _message(c)
    ok, _ = parse_json(content)
    return ACCEPT if ok else Verdict(False, "the answer is not valid JSON")


def check_json_schema(c: ChatCompletion, req: ChatRequest) -> Verdict:
    rf = req.response_format
    if not isinstance(rf, ResponseFormatJSONSchema):
        raise InvalidRequestError("the json_schema gate needs a request with response_format "
                                  "of type json_schema", param="response_format")
    content, _ = _message(c)
    ok, value = parse_json(content)
    if not ok:
        return Verdict(False, "the answer is not valid JSON")
    schema = rf.json_schema.schema
    err = first_problem(value, schema) if schema else None
    return ACCEPT if err is None else Verdict(False, f"schema: {err}")


def check_tool_calls(c: ChatCompletion, req: ChatRequest) -> Verdict:
    _, calls = _message(c)
    declared = {t.function.name: t.function.parameters for t in req.tools or ()}
    choice = req.tool_choice
    named = choice.function.name if isinstance(choice, NamedToolChoice) else None
    if not calls:
        if choice == "required" or named is not None:
            return Verdict(False, "no tool call, but the request requires one")
        return ACCEPT
    for call in calls:
        name = call.function.name
        if name not in declared:
            return Verdict(False, f"tool '{name}' is not declared in the request")
        if named is not None and name != named:
            return Verdict(False, f"tool '{name}' called, but the request requires '{named}'")
        ok, args = parse_json(call.function.arguments or "{}")
        if not ok or not isinstance(args, dict):
            return Verdict(False, f"tool '{name}': arguments are not a JSON object")
        params = declared[name]
        err = first_problem(args, params) if params else None
        if err is not None:
            return Verdict(False, f"tool '{name}': {err}")
    return ACCEPT


_LOCAL_CHECKS: dict[str, Callable[[ChatCompletion, ChatRequest], Verdict]] = {
    "non_empty": check_non_empty,
    "valid_json": check_valid_json,
    "json_schema": check_json_schema,
    "tool_calls_valid": check_tool_calls,
}


def default_gate(req: ChatRequest) -> GateName:
    rf = req.response_format
    if isinstance(rf, ResponseFormatJSONSchema):
        return "json_schema"
    if isinstance(rf, ResponseFormatJSONObject):
        return "valid_json"
    return "tool_calls_valid" if req.tools else "non_empty"


def judge_score_request(req: ChatRequest, judge: str, answer: ModelResult) -> ChatRequest:
    convo = render_conversation(req)
    return chat_request_from_dict({"model": judge, "messages": [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Conversation:\n{convo}\n\nAnswer:\n{render_answer(answer)}"},
    ]})


@dataclass(slots=True)
class CascadeStep:
    model: str
    result: ModelResult
    verdict: Verdict
    judge: ModelResult | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict.ok


@dataclass(slots=True)
class CascadeResult:
    # The accepted answer; when none passed, the last model that answered (accepted=False).
    result: ModelResult | None
    accepted: bool
    trail: list[CascadeStep] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def path(self) -> str:
        """`cheap>better`: every model tried, in order."""
        return ">".join(s.model for s in self.trail)

    @property
    def content(self) -> str | None:
        return self.result.content if self.result is not None else None

    @property
    def results(self) -> list[ModelResult]:
        out: list[ModelResult] = []
        for s in self.trail:
            out.append(s.result)
            if s.judge is not None:
                out.append(s.judge)
        return out

    @property
    def usage(self) -> Usage:
        return sum_usage(self.results)

    @property
    def cost_usd(self) -> float | None:
        return sum_cost(self.results)


async def evaluate(gates: Sequence[Gate], res: ModelResult, req: ChatRequest,
                   branches: Branches, *, judge: str | None, min_score: float,
                   ) -> tuple[Verdict, ModelResult | None]:
    """Runs every gate in order until one rejects; returns the verdict and the judge's call."""
    c = res.completion
    assert c is not None
    judged: ModelResult | None = None
    score: float | None = None
    for gate in gates:
        if callable(gate):
            got = await gate(c, req)
            verdict = got if isinstance(got, Verdict) else \
                ACCEPT if got else Verdict(False, "rejected by the caller's check")
        elif gate == "judge":
            assert judge is not None, "checked by _gates"
            judged = await branches.one(judge, judge_score_request(req, judge, res),
                                        judge=True)
            data = extract_json(judged.content) if judged.ok else None
            raw = data.get("score") if isinstance(data, dict) else None
            if judged.error is not None:
                verdict = Verdict(False, f"judge failed: {type(judged.error).__name__}", 0.0)
            elif not isinstance(raw, int | float) or isinstance(raw, bool):
                verdict = Verdict(False, "the judge gave no usable score", 0.0)
            else:
                s = min(1.0, max(0.0, float(raw)))
                verdict = Verdict(s >= min_score, "" if s >= min_score else
                                  f"judge score {s:g} < {min_score:g}", s)
        else:
            verdict = _LOCAL_CHECKS[gate](c, req)
        if not verdict.ok:
            return verdict, judged
        if verdict.score is not None:
            score = verdict.score
    return (ACCEPT if score is None else Verdict(True, "", score)), judged


def _gates(gate: Gate | Sequence[Gate] | None, req: ChatRequest, judge: str | None) -> list[Gate]:
    if gate is None:
        return [default_gate(req)]
    if isinstance(gate, str) or callable(gate):
        gates: list[Gate] = [gate]
    else:
        gates = list(gate)
    for g in gates:
        if isinstance(g, str) and g not in GATE_NAMES:
            raise InvalidRequestError(f"unknown gate '{g}' (one of {', '.join(GATE_NAMES)})",
                                      param="gate")
        if g == "judge" and judge is None:
            raise InvalidRequestError("the judge gate needs a judge model", param="judge")
    return gates


async def run_cascade(branches: Branches, req: ChatRequest, models: Sequence[str], *,
                      gate: Gate | Sequence[Gate] | None = None, judge: str | None = None,
                      min_score: float = 0.7) -> CascadeResult:
    gates = _gates(gate, req, judge)
    out = CascadeResult(None, False)
    for model in models:
        res = await branches.one(model, req)
        if not res.ok:
            err = res.error
            out.trail.append(CascadeStep(model, res, Verdict(
                False, f"failed: {type(err).__name__}: {err}" if err else "failed: no answer")))
            continue
        verdict, judged = await evaluate(gates, res, req, branches, judge=judge,
                                         min_score=min_score)
        out.trail.append(CascadeStep(model, res, verdict, judged))
        out.result = res
        if verdict.ok:
            out.accepted = True
            break
    out.elapsed_s = time.perf_counter() - branches.started
    return out


async def cascade(gw: Runner, prompt: str | None = None, *, models: Sequence[str],
                  gate: Gate | Sequence[Gate] | None = None,
                  messages: list[dict[str, Any]] | None = None, judge: str | None = None,
                  min_score: float = 0.7, identity: Identity = ANONYMOUS,
                  deadline_s: float | None = None, **params: Any) -> CascadeResult:
    """Tries `models` in order (cheapest first) until an answer passes every gate."""
    req = build_request(prompt, messages, models, params)
    branches = library_branches(gw, identity, deadline_s)
    return await run_cascade(branches, req, models, gate=gate, judge=judge, min_score=min_score)
