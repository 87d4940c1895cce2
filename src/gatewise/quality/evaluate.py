"""Evaluation runs: an evaluation set (`eval_set.py`) against one or more models, through the
gateway's own chain (a `Runner`: guardrails, routing, retries, accounting apply as for any
client), scored by `scorers.py`, summed per model and per kind.

The answers' meaning is compared in one batch per run (the local MiniLM embedder, in a worker
thread); a judge model, when given, rates each item that has a rubric. A failed call scores 0
and fails (an error is a wrong answer to the person who asked), and its error type is kept.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from gatewise.embedding.base import Vectors
from gatewise.errors import GatewayError
from gatewise.pipeline.core import ANONYMOUS, Call, Identity
from gatewise.pipeline.runner import Runner
from gatewise.quality.eval_set import EvalItem
from gatewise.quality.scorers import (
    JUDGE_PROMPT,
    CheckResult,
    score_judge,
    score_similar,
    score_text_checks,
)
from gatewise.quality.stats import percentile
from gatewise.types.messages import text_of
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict

_ANSWER_CHARS = 300
_JUDGE_INPUT_CHARS = 2000


class Embeds(Protocol):
    async def embed(self, texts: Sequence[str]) -> Vectors: ...


@dataclass(slots=True)
class ItemResult:
    item: str
    kind: str
    model: str
    score: float
    passed: bool
    checks: list[CheckResult] = field(default_factory=list)
    latency_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    answer: str = ""  # the first characters, for reading the report


@dataclass(frozen=True, slots=True)
class Summary:
    model: str
    kind: str  # "all" or one kind
    n: int
    mean_score: float
    pass_rate: float
    errors: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens: int
    cost_usd: float | None


@dataclass(slots=True)
class EvalReport:
    set_name: str
    models: list[str]
    judge: str | None
    results: list[ItemResult]
    summaries: list[Summary]

    def to_json(self) -> dict[str, Any]:
        return {"object": "eval.report", "set": self.set_name, "models": self.models,
                "judge": self.judge, "summary": [asdict(s) for s in self.summaries],
                "results": [asdict(r) for r in self.results]}

    def best(self) -> Summary | None:
        overall = [s for s in self.summaries if s.kind == "all"]
        return max(overall, key=lambda s: s.mean_score) if overall else None


def _judge_question(item: EvalItem) -> str:
    parts = [f"{m.get('role', 'user')}: {m.get('content')}" for m in item.messages
             if isinstance(m.get("content"), str)]
    return "\n".join(parts)[:_JUDGE_INPUT_CHARS]


async def _ask(runner: Runner, item: EvalItem, model: str, identity: Identity,
               clock: Callable[[], float]) -> tuple[ItemResult, str, list[tuple[str, str]]]:
    req = chat_request_from_dict({"model": model, "messages": item.messages, **item.params})
    call = Call("chat", req, identity)
    start = clock()
    res = ItemResult(item.id, item.kind, model, 0.0, False)
    try:
        out = await runner.run(call)
    except GatewayError as exc:
        res.error = type(exc).__name__
        res.latency_s = clock() - start
        return res, "", []
    res.latency_s = call.latency if call.latency is not None else clock() - start
    if call.usage is not None:
        res.prompt_tokens, res.completion_tokens = (call.usage.prompt_tokens,
                                                    call.usage.completion_tokens)
    res.cost_usd = call.cost_usd
    text, calls = "", []
    if isinstance(out, ChatCompletion) and out.choices:
        msg = out.choices[0].message
        text = text_of(msg.content) if msg.content is not None else ""
        calls = [(tc.function.name, tc.function.arguments) for tc in msg.tool_calls or ()]
    res.answer = (text or json.dumps([{"name": n, "arguments": a} for n, a in calls]))[
        :_ANSWER_CHARS]
    return res, text, calls


async def _judge(runner: Runner, judge: str, item: EvalItem, text: str,
                 calls: list[tuple[str, str]], identity: Identity) -> CheckResult:
    answer = text or json.dumps([{"name": n, "arguments": a} for n, a in calls])
    prompt = JUDGE_PROMPT.format(rubric=item.rubric, question=_judge_question(item),
                                 answer=answer[:_JUDGE_INPUT_CHARS])
    try:
        r = await runner.chat(prompt, model=judge, identity=identity, max_tokens=8,
                              temperature=0)
    except GatewayError as exc:
        return CheckResult("judge", 0.0, False, f"the judge failed: {type(exc).__name__}")
    return score_judge(r.content or "")


async def run_eval(runner: Runner, items: Sequence[EvalItem], models: Sequence[str], *,
                   judge: str | None = None, embedder: Embeds | None = None,
                   concurrency: int = 4, identity: Identity = ANONYMOUS,
                   set_name: str = "", clock: Callable[[], float] = time.perf_counter,
                   progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Every item against every model; `embedder` is needed when an item has `similar`;
    `progress(done, total)` after each answer."""
    if embedder is None and any(i.checks.similar is not None for i in items):
        raise ValueError("items compare meaning ('similar'), so an embedder is needed")
    judged_only = [i.id for i in items if i.checks.empty]
    if judge is None and judged_only:
        raise ValueError(f"items with only a rubric need a judge model: {judged_only[0]}")
    gate = asyncio.Semaphore(max(1, concurrency))
    total, done = len(items) * len(models), 0
    similar: list[tuple[ItemResult, str, EvalItem]] = []

    async def one(item: EvalItem, model: str) -> ItemResult:
        async with gate:
            res, text, calls = await _ask(runner, item, model, identity, clock)
            if res.error is None:
                res.checks = score_text_checks(item.checks, text, calls)
                if item.checks.similar is not None:
                    similar.append((res, text, item))
                if judge is not None and item.rubric is not None:
                    res.checks.append(await _judge(runner, judge, item, text, calls, identity))
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        return res

    results = list(await asyncio.gather(*(one(i, m) for m in models for i in items)))
    if similar:
        assert embedder is not None
        texts = [t for _, t, _ in similar] + [i.checks.similar or "" for _, _, i in similar]
        vecs = np.asarray(await embedder.embed(texts), dtype=np.float32)
        n = len(similar)
        for k, (res, text, item) in enumerate(similar):
            cos = float(np.dot(vecs[k], vecs[n + k])) if text.strip() else 0.0
            at = sum(c.check != "judge" for c in res.checks)  # the judge's stays last
            res.checks.insert(at, score_similar(cos, item.checks.similar_min))
    for res in results:
        if res.error is None and res.checks:
            res.score = math.fsum(c.score for c in res.checks) / len(res.checks)
            res.passed = all(c.passed for c in res.checks)
    return EvalReport(set_name, list(models), judge, results, summarise(results, models))


def summarise(results: Sequence[ItemResult], models: Sequence[str]) -> list[Summary]:
    kinds = sorted({r.kind for r in results})
    out: list[Summary] = []
    for model in models:
        mine = [r for r in results if r.model == model]
        for kind in ("all", *kinds):
            rows = [r for r in mine if kind == "all" or r.kind == kind]
            if not rows:
                continue
            lat = sorted(r.latency_s for r in rows if r.latency_s is not None and r.error is None)
            costs = [r.cost_usd for r in rows if r.cost_usd is not None]
            out.append(Summary(
                model=model, kind=kind, n=len(rows),
                mean_score=math.fsum(r.score for r in rows) / len(rows),
                pass_rate=sum(r.passed for r in rows) / len(rows),
                errors=sum(r.error is not None for r in rows),
                latency_p50_s=percentile(lat, 0.5), latency_p95_s=percentile(lat, 0.95),
                tokens=sum(r.prompt_tokens + r.completion_tokens for r in rows),
                cost_usd=math.fsum(costs) if costs else None))
    return out


# -- rendering -----------------------------------------------------------------------------------
_HEAD = ("model", "kind", "n", "mean score", "pass rate", "errors", "p50 s", "p95 s", "tokens",
         "cost USD")


def _row(s: Summary) -> tuple[str, ...]:
    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    return (s.model, s.kind, str(s.n), f"{s.mean_score:.3f}", f"{s.pass_rate:.1%}",
            str(s.errors), f(s.latency_p50_s, ".3f"), f(s.latency_p95_s, ".3f"), str(s.tokens),
            f(s.cost_usd, ".6f"))


def render_table(report: EvalReport) -> str:
    rows = [_HEAD, *(_row(s) for s in report.summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def render_markdown(report: EvalReport) -> str:
    lines = [f"# Evaluation: {report.set_name or 'set'}", "",
             f"Models: {', '.join(report.models)}"
             + (f"; judge: {report.judge}" if report.judge else ""), "",
             "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(_row(s)) + " |" for s in report.summaries]
    lines += ["", "## Items", "", "| item | kind | model | score | pass | checks | error |",
              "|---|---|---|---|---|---|---|"]
    for r in report.results:
        checks = "; ".join(f"{c.check} {c.score:.2f}" + (f" ({c.note})" if c.note else "")
                           for c in r.checks).replace("|", "\\|")
        lines.append(f"| {r.item} | {r.kind} | {r.model} | {r.score:.2f} | "
                     f"{'yes' if r.passed else 'no'} | {checks} | {r.error or ''} |")
    return "\n".join(lines) + "\n"
