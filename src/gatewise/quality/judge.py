"""Relevance and completeness of an answer, asked of a judge model on a sampled fraction of
responses, in the background.

Why sampled and in the background: a judge call costs a model call, so it runs on
`quality.judge_sample_rate` of the answers, after the caller already has theirs; its failure
is logged (type only) and counted, never the request's. It runs through the `Runner` seam (the
whole chain: routing, retries, accounting) as the gateway's own work:

- `call.internal` is set, so the quality stage neither scores nor judges it (no judge of the
  judge) and records no quality row for it;
- its identity has no key, team or user: budgets, rate limits and the caller's usage are not
  charged (the ledger books it to the tenant, unattributed);
- the response cache is told `no-store`, so a judge's answer never lands in a cache a user
  reads from.

What the judge sees: the caller's question as the chain last held it and the answer as the
caller received it, both masked under the PII policy that covered the caller's call (its
key's, else its team's, else its alias's, else the default: `mask`, the guardrails'
`mask_texts`) before the judge call is built, so personal data the caller's policy masks
never reaches the judge's upstream, whichever model judges. A failure to mask is the judge's
failure: nothing is sent. The judge's own call then runs as no team, through the guardrails
of the judge's alias and the default policy, on top.

The prompt asks for a JSON object; `parse_judgement` also reads the looser forms models
answer with ("Relevance: 4/5", "relevance 8 out of 10", a bare "4"), on a 1-5 or a 0-10 scale.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gatewise.pipeline.core import Call, Identity
from gatewise.pipeline.runner import Runner
from gatewise.types.messages import UserMessage, text_of
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict

log = logging.getLogger("gatewise.quality")

METRICS = ("relevance", "completeness")
INSTRUCTION = (
    "You grade an assistant's answer to a user's question. Rate RELEVANCE (does it address "
    "the question?) and COMPLETENESS (does it answer all of it?), each as an integer from 1 "
    "(worst) to 5 (best). Reply with only a JSON object, for example "
    '{"relevance": 4, "completeness": 3}.')
# Question and answer are cut to this many characters: the judge's cost stays bounded.
MAX_TEXT = 6000

_NUMBER = r"(\d+(?:\.\d+)?)"
_SCALE = r"(?:\s*(?:/|out\s+of|of)\s*(\d+))?"
_LABELLED = {m: re.compile(rf'"?{m}"?\s*(?:score)?\s*[:=\-]?\s*\**\s*{_NUMBER}{_SCALE}', re.I)
             for m in METRICS}
_ANY = re.compile(rf"(?<![\w.\-]){_NUMBER}{_SCALE}(?![\w.])")

# (the judged call, the caller's alias, relevance/completeness 0..1)
OnScores = Callable[[Call, str, dict[str, float]], Awaitable[None]]
# (the judged call, [(text, is JSON)]) -> the texts masked under the call's PII policy.
MaskTexts = Callable[[Call, Sequence[tuple[str, bool]]], Awaitable[list[str]]]


def _normalise(value: float, scale: float | None) -> float | None:
    """1-5 (the asked scale) → (v-1)/4; an explicit or implied 0-10 → v/10; /100 → v/100."""
    if scale is None:
        scale = 5.0 if 1.0 <= value <= 5.0 else 10.0 if 0.0 <= value <= 10.0 else None
    if scale == 5.0:
        return (value - 1.0) / 4.0 if 1.0 <= value <= 5.0 else None
    if scale in (10.0, 100.0) and 0.0 <= value <= scale:
        return value / scale
    return None


def parse_judgement(text: str) -> dict[str, float]:
    """0..1 scores per metric found in a judge's reply; empty when nothing could be read.

    A labelled number counts for its metric; a lone unlabelled number counts for both. Two
    labelled numbers on different scales are each read on their own. A reply whose numbers
    fall outside every scale reads as nothing, never as a guess."""
    out: dict[str, float] = {}
    for metric, pattern in _LABELLED.items():
        m = pattern.search(text)
        if m is None:
            continue
        v = _normalise(float(m.group(1)), float(m.group(2)) if m.group(2) else None)
        if v is not None:
            out[metric] = round(v, 4)
    if not out:
        found = _ANY.findall(text)
        if len(found) == 1:
            value, scale = found[0]
            v = _normalise(float(value), float(scale) if scale else None)
            if v is not None:
                out = {m: round(v, 4) for m in METRICS}
    return out


def question_of(request: ChatRequest) -> str:
    for m in reversed(request.messages):
        if isinstance(m, UserMessage):
            return text_of(m.content)
    return ""


class QualityJudge:
    """Samples answers and asks the judge model about them; `maybe_judge` is the hot path (one
    random draw when the rate is between 0 and 1, nothing at 0)."""

    def __init__(self, runner: Runner, model: str, *, sample_rate: float, max_tokens: int,
                 spawn: Callable[[Awaitable[Any]], None], on_scores: OnScores,
                 rng: random.Random | None = None, max_in_flight: int = 16,
                 failures: Callable[[str], None] | None = None,
                 mask: MaskTexts | None = None) -> None:
        """`max_in_flight`: judge calls running at once; a sampled answer beyond it is skipped
        (a burst of traffic never queues judge calls without bound)."""
        self.runner = runner
        self.model = model
        self.sample_rate = sample_rate
        self.max_tokens = max_tokens
        self._spawn = spawn
        self._on_scores = on_scores
        self._rng = rng or random.Random()
        self._failures = failures
        self._mask = mask
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.skipped = 0

    def sampled(self) -> bool:
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)

    def maybe_judge(self, call: Call, alias: str, completion: ChatCompletion) -> bool:
        """Starts a background judgement of `completion` when sampled; True when it did."""
        if call.internal or not self.sampled() or not completion.choices:
            return False
        answer = completion.choices[0].message.content
        question = question_of(call.chat_request)
        if not answer or not question:
            return False
        if self.in_flight >= self.max_in_flight:
            self.skipped += 1
            return False
        self.in_flight += 1
        self._spawn(self._judge(call, alias, question, answer))
        return True

    async def _judge(self, call: Call, alias: str, question: str, answer: str) -> None:
        try:
            await self._judge_one(call, alias, question, answer)
        finally:
            self.in_flight -= 1

    async def _judge_one(self, call: Call, alias: str, question: str, answer: str) -> None:
        try:
            if self._mask is not None:
                question, answer = await self._mask(call, [(question, False), (answer, False)])
            scores = await self.judge(question, answer, tenant=call.identity.tenant)
        except Exception as exc:  # a judge failure is the judge's, never the request's
            log.warning("quality judge failed for %s: %s", call.request_id, type(exc).__name__)
            if self._failures is not None:
                self._failures(type(exc).__name__)
            return
        if not scores:
            log.info("quality judge reply for %s had no readable score", call.request_id)
            if self._failures is not None:
                self._failures("unreadable")
            return
        await self._on_scores(call, alias, scores)

    async def judge(self, question: str, answer: str, *, tenant: str = "default"
                    ) -> dict[str, float]:
        """Relevance and completeness of `answer` to `question` (0..1), from one judge call."""
        req = chat_request_from_dict({
            "model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": INSTRUCTION},
                         {"role": "user", "content": f"Question:\n{question[:MAX_TEXT]}\n\n"
                                                     f"Answer:\n{answer[:MAX_TEXT]}"}]})
        call = Call("chat", req, Identity(tenant=tenant, role="admin", permissions=None))
        call.internal = True
        call.cache_options = {"mode": "no-store"}
        result = await self.runner.run(call)
        if not isinstance(result, ChatCompletion) or not result.choices:
            return {}
        return parse_judgement(result.choices[0].message.content or "")
