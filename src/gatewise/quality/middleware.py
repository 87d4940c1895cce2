"""`QualityMiddleware`: the per-call stage that scores every answer and records it.

It sits right inside telemetry, outside everything else, so it sees every outcome (a refusal
by access control, a guardrail block, a provider failure, a cache hit) and the caller's alias
before experiments, routing or fallbacks change `call.alias`. After a chat answer (or when a
stream ends) it:

1. computes the cheap scores (`scores.ResponseScorer`) and sets `call.scores` (a stream that
   may carry tool calls, JSON or a knowledge-base answer is kept whole by a transform, so
   the answer scored is the one the caller saw; a plain-text stream only collects its text,
   which costs less per chunk);
2. observes `gatewise_quality_score{alias,metric}` for each;
3. feeds the mean to the router (`report_quality`, when `quality.feed_routing`), so the
   quality-aware strategies see it;
4. may start a sampled judge call in the background (`judge.QualityJudge`);
5. records a `QualityRecord` (ids, names, numbers; never text) through the batched recorder.

A failed call is recorded too (its error type, no scores). The gateway's own calls
(`call.internal`: a judge's) and embeddings pass straight through. Nothing here can fail the
request: a scoring bug is logged (its type) and the answer goes out unscored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

import msgspec

from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.recorder import StreamRecorder
from gatewise.pipeline.stream import ChunkStream
from gatewise.quality.judge import QualityJudge
from gatewise.quality.recorder import QualityRecorder
from gatewise.quality.scores import ResponseScorer
from gatewise.storage.quality import QualityRecord
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.stream import ChatCompletionChunk

log = logging.getLogger("gatewise.quality")

ReportQuality = Callable[[str, float], None]
OTHER = "other"  # the metric label of an alias the config does not know (bounded labels)


class QualityMiddleware:
    def __init__(self, scorer: ResponseScorer, recorder: QualityRecorder, *,
                 metrics: GatewayMetrics, known_aliases: Collection[str],
                 judge: QualityJudge | None = None, report_quality: ReportQuality | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.scorer = scorer
        self.recorder = recorder
        self.metrics = metrics
        self.known_aliases = frozenset(known_aliases)
        self.judge = judge
        self.report_quality = report_quality
        self.clock = clock

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.internal or call.kind != "chat":
            return await next(call)
        alias = call.alias
        try:
            result = await next(call)
        except BaseException as exc:
            self._record(call, alias, None, exc)
            raise
        if isinstance(result, ChunkStream):
            req = call.chat_request
            if req.tools or req.response_format is not None or call.rag is not None:
                # Tool calls, a JSON answer or a knowledge-base answer's summary: keep the
                # whole answer as the caller sees it.
                tap = _StreamTap(self, call, alias)
                result.add_transform(tap)
                result.on_finish(tap.finished)
            else:
                # Plain text: the stream's own text collection is enough, and cheaper than a
                # transform on every chunk (the text as the model wrote it).
                result.collect_text()
                result.on_finish(partial(self._text_done, result, alias))
        elif isinstance(result, ChatCompletion):
            self.answered(call, alias, result)
        return result

    def _text_done(self, stream: ChunkStream, alias: str, call: Call,
                   error: BaseException | None) -> None:
        if error is not None:
            self._record(call, alias, None, error)
            return
        parts = stream.text_parts
        text = "".join(parts) if parts else None
        self.answered(call, alias, ChatCompletion(
            id="", created=0, model="", choices=[Choice(
                index=0, message=ResponseMessage(content=text), finish_reason="stop")]))

    def label(self, alias: str) -> str:
        return alias if alias in self.known_aliases else OTHER

    def answered(self, call: Call, alias: str, completion: ChatCompletion | None) -> None:
        """A finished answer (None: a stream whose answer never completed): scores, metrics,
        routing, the judge, the record."""
        scores: dict[str, float] = {}
        if completion is not None:
            try:
                scores = self.scorer.score(call.chat_request, completion)
            except Exception as exc:  # never the request's problem
                log.warning("quality scoring failed for %s: %s", call.request_id,
                            type(exc).__name__)
        call.scores = scores
        if scores:
            try:
                self.observe(alias, scores, call.deployment.id if call.deployment else None)
            except Exception as exc:
                log.warning("quality metrics failed for %s: %s", call.request_id,
                            type(exc).__name__)
        if completion is not None and self.judge is not None:
            try:
                self.judge.maybe_judge(call, alias, completion)
            except Exception as exc:
                log.warning("quality judge not started for %s: %s", call.request_id,
                            type(exc).__name__)
        self._record(call, alias, scores, None)

    def observe(self, alias: str, scores: dict[str, float], deployment: str | None) -> None:
        """Metrics for `scores`, and their mean to the router."""
        label = self.label(alias)
        hist = self.metrics.quality_score
        for metric, value in scores.items():
            hist.observe(value, (label, metric))
        if self.report_quality is not None and deployment is not None:
            self.report_quality(deployment, sum(scores.values()) / len(scores))

    def _record(self, call: Call, alias: str, scores: dict[str, float] | None,
                error: BaseException | None) -> None:
        try:
            ident = call.identity
            dep = call.deployment
            exp = call.experiment
            end = call.ended if call.ended is not None else time.perf_counter()
            latency = end - call.started
            ttft = call.ttft
            if ttft is None and error is None and not call.stream:
                ttft = latency  # a whole answer's first token is the answer (as telemetry)
            self.recorder.record(QualityRecord(
                request_id=call.request_id, ts=self.clock(), alias=alias,
                deployment=dep.id if dep is not None else None,
                model=dep.target.ref if dep is not None else None,
                tenant=ident.tenant, team=ident.team, key_id=ident.key_id, user=ident.user,
                experiment=exp[0] if exp is not None else None,
                variant=exp[1] if exp is not None else None,
                latency_s=latency, ttft_s=ttft, cost_usd=call.cost_usd,
                error_type=type(error).__name__ if error is not None else None,
                scores=dict(scores) if scores else {}))
        except Exception as exc:
            log.warning("quality record failed for %s: %s", call.request_id, type(exc).__name__)


class _StreamTap(StreamRecorder):
    """Keeps the streamed answer (and a knowledge-base answer's `rag` summary) and scores it
    once the stream has ended: in `finish`, which runs after every inner transform released
    what it held back, so the answer scored is the one the caller saw. A stream that fails
    or is abandoned is recorded from the finish callback instead."""

    def __init__(self, owner: QualityMiddleware, call: Call, alias: str) -> None:
        super().__init__()
        self.owner = owner
        self.call = call
        self.alias = alias
        self.rag: dict[str, Any] | None = None
        self.done = False

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        if isinstance(chunk.rag, dict):
            self.rag = chunk.rag
        return super().apply(chunk)

    def finish(self) -> list[ChatCompletionChunk]:
        if not self.done:
            self.done = True
            completion = self.completion(self.call)
            if completion is not None and self.rag is not None:
                completion = msgspec.structs.replace(completion, rag=self.rag)
            self.owner.answered(self.call, self.alias, completion)
        return []

    def finished(self, call: Call, error: BaseException | None) -> None:
        if error is not None and not self.done:
            self.done = True
            self.owner._record(call, self.alias, None, error)
