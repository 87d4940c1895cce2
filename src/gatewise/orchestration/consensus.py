"""Consensus for high-stakes calls: ask several models, keep the answer most of them give.

Answers are compared after normalisation, so models that say the same thing in different
spellings agree:

- text: case, punctuation and whitespace are ignored ("Paris." == "paris");
- structured outputs (the request asked for JSON, or `normalize="json"`): canonical JSON with
  sorted keys, compact separators and integral floats as integers, so key order and
  formatting never split a vote;
- tool calls: each call's name plus canonical arguments, in a sorted list (order-free).

The winner is the largest group; ties go to the group whose first member comes earliest in
`models` (the caller's order is its preference order), so the same answers always give the
same winner. `agreement` is the winner's group size over the number of models ASKED: a model
that failed counts as not agreeing, so two disagreeing survivors of three never look agreed.
Below `min_agreement` the result is flagged `agreed=False`.

With a `judge` alias, the judge scores every answer 0..1 in one call (JSON
`{"scores": [...]}`); the best score wins (ties: bigger group, then `models` order) and
`agreement` is the judge's score of the winner. A judge that fails or answers no usable scores
falls back to the majority vote, and says why in `judge_error`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
from gatewise.types.messages import text_of
from gatewise.types.requests import ChatRequest, ResponseFormatJSONObject, ResponseFormatJSONSchema
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.validation import chat_request_from_dict

Normalize = Literal["auto", "text", "json", "tools"]

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")

JUDGE_SYSTEM = (
    "You are a strict judge. Score each candidate answer to the conversation below from 0 "
    "(wrong or useless) to 1 (correct and complete). Reply with JSON only, exactly "
    '{"scores": [s1, s2, ...]} with one number per candidate, in order.'
)


def normalize_text(text: str) -> str:
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.casefold())).strip()


def _canon(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_json(text: str | None) -> tuple[bool, Any]:
    """(parsed?, value): JSON parse without raising."""
    if text is None:
        return False, None
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def answer_key(completion: ChatCompletion, mode: Normalize) -> str:
    """The normalised answer two candidates must share to agree."""
    msg = completion.choices[0].message if completion.choices else None
    if msg is None:
        return "empty:"
    if msg.tool_calls and mode in ("auto", "tools"):
        calls = []
        for c in msg.tool_calls:
            ok, args = parse_json(c.function.arguments or "{}")
            calls.append(f"{c.function.name}({canonical_json(args) if ok else c.function.arguments})")
        return "tools:" + "|".join(sorted(calls))
    text = msg.content or ""
    if mode == "json":
        ok, value = parse_json(text)
        if ok:
            return "json:" + canonical_json(value)
    return "text:" + normalize_text(text)


def mode_for(req: ChatRequest, normalize: Normalize) -> Normalize:
    if normalize != "auto":
        return normalize
    if isinstance(req.response_format, ResponseFormatJSONSchema | ResponseFormatJSONObject):
        return "json"
    return "auto"


@dataclass(slots=True)
class Candidate:
    result: ModelResult
    key: str | None = None  # the normalised answer; None when the model failed
    votes: int = 0  # how many candidates (this one included) gave the same answer
    score: float | None = None  # the judge's, when one was asked


@dataclass(slots=True)
class ConsensusResult:
    winner: ModelResult | None
    agreement: float
    agreed: bool
    candidates: list[Candidate]
    method: Literal["majority", "judge"] = "majority"
    judge: ModelResult | None = None
    judge_error: str | None = None
    elapsed_s: float = 0.0

    @property
    def content(self) -> str | None:
        return self.winner.content if self.winner is not None else None

    @property
    def results(self) -> list[ModelResult]:
        """Every call made, judge included (for usage and cost)."""
        out = [c.result for c in self.candidates]
        return [*out, self.judge] if self.judge is not None else out

    @property
    def usage(self) -> Usage:
        return sum_usage(self.results)

    @property
    def cost_usd(self) -> float | None:
        return sum_cost(self.results)


def vote(results: Sequence[ModelResult], mode: Normalize) -> list[Candidate]:
    cands = [Candidate(r) for r in results]
    counts: dict[str, int] = {}
    for c in cands:
        if c.result.completion is not None and c.result.error is None:
            c.key = answer_key(c.result.completion, mode)
            counts[c.key] = counts.get(c.key, 0) + 1
    for c in cands:
        if c.key is not None:
            c.votes = counts[c.key]
    return cands


def majority(cands: Sequence[Candidate]) -> Candidate | None:
    """The first candidate (in `models` order) of the largest group."""
    best: Candidate | None = None
    for c in cands:
        if c.key is not None and (best is None or c.votes > best.votes):
            best = c
    return best


def judge_request(req: ChatRequest, judge: str, cands: Sequence[Candidate]) -> ChatRequest:
    parts = [f"Conversation:\n{render_conversation(req)}", ""]
    for i, c in enumerate(cands, 1):
        parts.append(f"Candidate {i}:\n{render_answer(c.result)}\n")
    return chat_request_from_dict({"model": judge, "messages": [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": "\n".join(parts)},
    ]})


def render_conversation(req: ChatRequest) -> str:
    """The request's turns as `role: text` lines, for a judge to read."""
    return "\n".join(f"{m.__struct_config__.tag}: {text_of(getattr(m, 'content', None))}"
                     for m in req.messages)


def render_answer(r: ModelResult) -> str:
    calls = r.tool_calls
    if calls:
        return "\n".join(f"call {c.function.name}({c.function.arguments})" for c in calls)
    return r.content or ""


def extract_json(text: str | None) -> Any:
    """The first JSON object in a model's reply (tolerates prose or code fences around it)."""
    if not text:
        return None
    ok, value = parse_json(text)
    if ok:
        return value
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        ok, value = parse_json(text[start:end + 1])
        if ok:
            return value
    return None


def _scores(reply: str | None, n: int) -> list[float] | None:
    data = extract_json(reply)
    raw = data.get("scores") if isinstance(data, dict) else data
    if not isinstance(raw, list) or len(raw) != n:
        return None
    if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in raw):
        return None
    return [min(1.0, max(0.0, float(s))) for s in raw]


async def run_consensus(branches: Branches, req: ChatRequest, models: Sequence[str], *,
                        judge: str | None = None, min_agreement: float = 0.5,
                        normalize: Normalize = "auto") -> ConsensusResult:
    fan = await branches.fan_out(req, models)
    cands = vote(fan.results, mode_for(req, normalize))
    answered = [c for c in cands if c.key is not None]
    asked = max(1, len(models))
    out = ConsensusResult(None, 0.0, False, cands)
    if judge is not None and answered:
        jr = await branches.one(judge, judge_request(req, judge, answered), judge=True)
        out.judge = jr
        scores = _scores(jr.content, len(answered)) if jr.ok else None
        if scores is None:
            out.judge_error = (f"judge failed: {jr.error}" if jr.error is not None
                               else "judge answered no usable scores")
        else:
            best, best_key = answered[0], (-1.0, 0)
            for c, s in zip(answered, scores, strict=True):
                c.score = s
                if (s, c.votes) > best_key:  # strict: ties keep the earlier model
                    best, best_key = c, (s, c.votes)
            out.winner, out.agreement, out.method = best.result, best_key[0], "judge"
    if out.method == "majority":
        best_m = majority(cands)
        if best_m is not None:
            out.winner, out.agreement = best_m.result, best_m.votes / asked
    out.agreed = out.winner is not None and out.agreement >= min_agreement
    out.elapsed_s = time.perf_counter() - branches.started
    return out


async def consensus(gw: Runner, prompt: str | None = None, *, models: Sequence[str],
                    messages: list[dict[str, Any]] | None = None, judge: str | None = None,
                    min_agreement: float = 0.5, normalize: Normalize = "auto",
                    identity: Identity = ANONYMOUS, deadline_s: float | None = None,
                    **params: Any) -> ConsensusResult:
    """Asks every model in parallel and returns the answer most of them agree on (or the one
    `judge` scores best), the agreement level and every candidate."""
    req = build_request(prompt, messages, models, params)
    branches = library_branches(gw, identity, deadline_s)
    return await run_consensus(branches, req, models, judge=judge, min_agreement=min_agreement,
                               normalize=normalize)
