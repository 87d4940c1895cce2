"""User feedback on a response: `POST /v1/feedback` and `gw.feedback(...)`.

The contract (the OpenAPI document publishes the same):

- `request_id`: the response's request id (the `x-request-id` header, `result.info
  .request_id` in the library); 1-128 characters of `A-Z a-z 0-9 _ . : -`.
- `score`: a number from 0 (bad) to 1 (good), or `"up"` (= 1) / `"down"` (= 0). Booleans,
  other strings and numbers outside 0..1 are refused: one scale, so every consumer (the
  record's `feedback` score, the router, experiments) reads it the same way.
- `comment`: optional text, at most `MAX_COMMENT` characters, no control characters but
  newline and tab.

Who may rate what: the caller needs `llm:generate` (anyone who may ask may say how it went;
a `viewer` key may not). A request can only be rated by its own tenant, and by the key that
made it unless the caller is an administrator (master key or `admin:*`). A request that does
not exist, was not recorded, or belongs to someone else answers the same 404, so ids of other
callers' requests cannot be probed. Every check runs before anything is stored: a refused
feedback leaves no trace but its error.

A rating of a request is kept (`QualityStore.add_feedback`), becomes the request's
`feedback` score (the latest rating wins), counts in `gatewise_feedback_total{alias,
sentiment}` (positive > 0.5, negative < 0.5, neutral = 0.5), and feeds the router when
`quality.feed_routing`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from typing import Any

from gatewise.errors import InvalidRequestError, NotConfiguredError, NotFoundError
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.core import Identity
from gatewise.quality.middleware import OTHER, ReportQuality
from gatewise.quality.recorder import QualityRecorder
from gatewise.security.rbac import is_superuser, require
from gatewise.storage.quality import FeedbackRecord, QualityStore

MAX_COMMENT = 2000
REQUEST_ID_CHARS = r"[A-Za-z0-9_.:\-]{1,128}"
# Control characters but tab and newline (and CR, which a browser's textarea sends).
COMMENT_FORBIDDEN = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
_REQUEST_ID = re.compile(REQUEST_ID_CHARS)
_CONTROL = re.compile(COMMENT_FORBIDDEN)
WORDS = {"up": 1.0, "down": 0.0}


def parse_score(value: Any) -> float:
    """0..1 from a number in range or "up"/"down"; InvalidRequestError otherwise."""
    if isinstance(value, str):
        if value in WORDS:
            return WORDS[value]
    elif isinstance(value, int | float) and not isinstance(value, bool) \
            and 0.0 <= value <= 1.0:
        return float(value)
    raise InvalidRequestError('score must be a number from 0 to 1, "up" or "down"',
                              param="score", code="invalid_score")


def check_comment(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError("comment must be a string", param="comment")
    if len(value) > MAX_COMMENT:
        raise InvalidRequestError(f"comment is longer than {MAX_COMMENT} characters",
                                  param="comment", code="comment_too_long")
    if _CONTROL.search(value):
        raise InvalidRequestError("comment contains control characters", param="comment")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (`\ud800` in JSON): no store takes it
        raise InvalidRequestError("comment is not valid Unicode text", param="comment") from None
    return value


def check_request_id(value: Any) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise InvalidRequestError("request_id must be the response's request id (1-128 "
                                  "characters: letters, digits, _ . : -)", param="request_id")
    return value


def sentiment(score: float) -> str:
    return "positive" if score > 0.5 else "negative" if score < 0.5 else "neutral"


class FeedbackService:
    def __init__(self, store: QualityStore, recorder: QualityRecorder | None, *,
                 metrics: GatewayMetrics, known_aliases: Collection[str],
                 report_quality: ReportQuality | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`recorder` None: quality recording is off, so there is nothing to rate (409)."""
        self.store = store
        self.recorder = recorder
        self.metrics = metrics
        self.known_aliases = frozenset(known_aliases)
        self.report_quality = report_quality
        self.clock = clock

    async def give(self, identity: Identity, request_id: Any, score: Any,
                   comment: Any = None) -> FeedbackRecord:
        """Validates, authorises, finds the request, then stores; raises before storing."""
        require(identity, "llm:generate")
        rid = check_request_id(request_id)
        value = parse_score(score)
        text = check_comment(comment)
        if self.recorder is None:
            raise NotConfiguredError("feedback needs quality records: set 'quality.enabled'")
        record = await self.recorder.get(rid)
        if record is None or record.tenant != identity.tenant or (
                not is_superuser(identity) and record.key_id != identity.key_id):
            raise NotFoundError(f"no request {rid!r} to give feedback on", param="request_id",
                                code="request_not_found")
        fb = FeedbackRecord(request_id=rid, ts=self.clock(), score=value, comment=text,
                            tenant=identity.tenant, key_id=identity.key_id, user=identity.user)
        await self.store.add_feedback(fb)
        # Still pending in the recorder: the row is written later with this score in it.
        await self.recorder.add_scores(rid, {"feedback": value})
        alias = record.alias if record.alias in self.known_aliases else OTHER
        self.metrics.feedback.inc((alias, sentiment(value)))
        if self.report_quality is not None and record.deployment is not None:
            self.report_quality(record.deployment, value)
        return fb
