"""`build_quality`: the quality features of one gateway, from `quality:` in the config.

What `Gateway` holds as `gw.quality`: the store (always, so experiment reports and `gatewise
eval` can read it), and, when `quality.enabled`, the per-call stage, the recorder, the judge,
feedback and the maintenance jobs. Off means no stage in the chain and nothing recorded.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from gatewise.config.loader import ResolvedConfig
from gatewise.maintenance.jobs import Job
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.background import BackgroundTasks
from gatewise.pipeline.core import Call, Identity
from gatewise.pipeline.runner import Runner
from gatewise.quality.degradation import DegradationCheck, QualityRetention
from gatewise.quality.feedback import FeedbackService
from gatewise.quality.judge import MaskTexts, QualityJudge
from gatewise.quality.middleware import QualityMiddleware, ReportQuality
from gatewise.quality.recorder import QualityRecorder
from gatewise.quality.scores import ResponseScorer
from gatewise.storage.quality import FeedbackRecord, QualityStore

log = logging.getLogger("gatewise.quality")


class Quality:
    def __init__(self, store: QualityStore, *, recorder: QualityRecorder | None = None,
                 middleware: QualityMiddleware | None = None, judge: QualityJudge | None = None,
                 feedback: FeedbackService, jobs: list[Job] | None = None,
                 background: BackgroundTasks | None = None) -> None:
        self.store = store
        self.recorder = recorder
        self.middleware = middleware
        self.judge = judge
        self.feedback_service = feedback
        self._jobs = jobs or []
        self._background = background

    @property
    def enabled(self) -> bool:
        return self.middleware is not None

    def jobs(self) -> list[Job]:
        """`quality_check` and `quality_retention`, for the maintenance scheduler."""
        return list(self._jobs)

    async def feedback(self, identity: Identity, request_id: Any, score: Any,
                       comment: Any = None) -> FeedbackRecord:
        return await self.feedback_service.give(identity, request_id, score, comment)

    async def flush(self) -> None:
        """Waits for judges in flight, then writes every pending row (tests, shutdown)."""
        if self._background is not None:
            await self._background.drain()
        if self.recorder is not None:
            await self.recorder.flush()

    async def aclose(self) -> None:
        """Before the stores close: judges finish, pending rows are written."""
        if self._background is not None:
            await self._background.drain()
        if self.recorder is not None:
            await self.recorder.aclose()


def known_aliases(config: ResolvedConfig) -> frozenset[str]:
    """Aliases a metric label may name: configured ones and experiments' (bounded)."""
    return frozenset(config.aliases) | frozenset(
        e.alias for e in config.config.experiments.values())


def build_quality(config: ResolvedConfig, store: QualityStore | None, *,
                  metrics: GatewayMetrics,
                  runner: Runner, report_quality: ReportQuality | None = None,
                  clock: Callable[[], float] = time.time,
                  rng: random.Random | None = None, mask: MaskTexts | None = None) -> Quality:
    """`store` None: an in-process one (stores opened without a quality store). `mask`: the
    guardrails' `mask_texts`, what the judge masks question and answer with."""
    if store is None:
        from gatewise.storage.quality_memory import MemoryQualityStore

        store = MemoryQualityStore()
    qc = config.config.quality
    aliases = known_aliases(config)
    feed = report_quality if qc.feed_routing else None
    # An experiment's report is read from these rows, so a configured experiment records
    # them even when `quality.enabled` is left off.
    if not (qc.enabled or any(e.enabled for e in config.config.experiments.values())):
        return Quality(store, feedback=FeedbackService(store, None, metrics=metrics,
                                                       known_aliases=aliases))
    recorder = QualityRecorder(store)
    scorer = ResponseScorer(validity=qc.validity, groundedness=qc.groundedness,
                            toxicity=qc.toxicity)
    background = BackgroundTasks("quality judge")
    middleware = QualityMiddleware(scorer, recorder, metrics=metrics, known_aliases=aliases,
                                   report_quality=feed, clock=clock)
    judge: QualityJudge | None = None
    judge_model = qc.judge_model or config.default_model
    if qc.judge_sample_rate > 0 and judge_model:
        async def judged(call: Call, alias: str, scores: dict[str, float]) -> None:
            if call.scores is not None:
                call.scores.update(scores)
            middleware.observe(alias, scores, call.deployment.id if call.deployment else None)
            await recorder.add_scores(call.request_id, scores)

        judge = QualityJudge(runner, judge_model, sample_rate=qc.judge_sample_rate,
                             max_tokens=qc.judge_max_tokens, spawn=background.spawn,
                             on_scores=judged, rng=rng, mask=mask)
        middleware.judge = judge
    elif qc.judge_sample_rate > 0:
        log.warning("quality.judge_sample_rate is set but there is no judge model "
                    "(quality.judge_model or default_model): no judge runs")
    feedback = FeedbackService(store, recorder, metrics=metrics, known_aliases=aliases,
                               report_quality=feed, clock=clock)
    jobs: list[Job] = [DegradationCheck(store, qc, metrics, known_aliases=aliases, clock=clock),
                       QualityRetention(store, qc.retention_days, clock=clock)]
    return Quality(store, recorder=recorder, middleware=middleware, judge=judge,
                   feedback=feedback, jobs=jobs, background=background)
