"""`AccountingMiddleware`: one usage record per call, whatever its outcome, plus its cost.

Placed just inside telemetry, so it sees every outcome: `success`, `error`, `blocked` (a policy
refused it: auth, guardrails, budget, rate limit), `cancelled` (the client left), `cached`
(a cache hit; costs nothing). Cost comes from the price table and goes on `call.cost_usd`, the
`x-gatewise-cost-usd` header (non-streams) or the usage chunk's `cost_usd` (streams). When a
stream ends without usage (the provider omitted it, or the client left), prompt and generated
text are counted with the tokenizer and the record says so (`extra={"usage": "counted"}`).

Hot path: building one record and a journal write; the store write is the ledger's batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gatewise.accounting.ledger import UsageLedger
from gatewise.accounting.usage import (
    Prices,
    TokenCounting,
    cache_hit,
    collect_stream_text,
    cost_of,
    ensure_usage,
    is_cache_hit,
    usage_was_counted,
)
from gatewise.errors import PolicyError
from gatewise.observability.metrics import Counter
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import Cancelled, ChunkStream
from gatewise.storage.base import UsageRecord
from gatewise.types.stream import ChatCompletionChunk

COST_HEADER = "x-gatewise-cost-usd"
_COUNTED = {"usage": "counted"}


def outcome_of(call: Call, error: BaseException | None) -> str:
    if error is None:
        return "cached" if is_cache_hit(call) else "success"
    if isinstance(error, Cancelled | asyncio.CancelledError):
        return "cancelled"
    if isinstance(error, PolicyError):
        return "blocked"
    return "error"


class AccountingMiddleware:
    def __init__(self, ledger: UsageLedger, prices: Prices, tokenizers: TokenCounting, *,
                 metrics: Counter | None = None, clock: Callable[[], float] = time.time) -> None:
        """`metrics`: a counter labelled (model, deployment) that receives USD spent."""
        self.ledger = ledger
        self.prices = prices
        self.tokenizers = tokenizers
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, call: Call, next: Handler) -> Any:
        try:
            result = await next(call)
        except BaseException as exc:
            self._record(call, exc)
            raise
        if isinstance(result, ChunkStream):
            collect_stream_text(result)
            result.on_usage(self._usage_chunk)
            result.on_finish(lambda c, error: self._stream_done(c, result, error))
            return result
        cost = cost_of(call, self.prices)
        if cost is not None:
            call.response_headers[COST_HEADER] = f"{cost:.8f}"
        self._record(call, None)
        return result

    def _usage_chunk(self, call: Call, chunk: ChatCompletionChunk) -> None:
        usage = chunk.usage
        if usage is None:
            return
        cost = cost_of(call, self.prices)
        if cost is not None:
            usage.cost_usd = cost

    def _stream_done(self, call: Call, stream: ChunkStream, error: BaseException | None) -> None:
        ensure_usage(call, stream, self.tokenizers)
        self._record(call, error)

    def _record(self, call: Call, error: BaseException | None) -> None:
        cost = cost_of(call, self.prices)
        u = call.usage
        dep = call.deployment
        ident = call.identity
        now = time.perf_counter()
        ttft = call.ttft
        rec = UsageRecord(
            request_id=call.request_id,
            ts=self.clock(),
            tenant=ident.tenant,
            alias=call.request.model,
            deployment=dep.id if dep is not None else "",
            outcome=outcome_of(call, error),
            prompt_tokens=u.prompt_tokens if u is not None else 0,
            completion_tokens=u.completion_tokens if u is not None else 0,
            cached_tokens=u.cached_tokens if u is not None else 0,
            cost_usd=cost or 0.0,
            latency_ms=((call.ended or now) - call.started) * 1000.0,
            ttft_ms=ttft * 1000.0 if ttft is not None else None,
            key_id=ident.key_id,
            team=ident.team,
            user=ident.user,
        )
        if u is not None and usage_was_counted(call):
            rec.extra = dict(_COUNTED)
        hit = cache_hit(call) if error is None else None
        if hit is not None:  # a cache hit costs nothing; the record keeps what it saved
            rec.extra = {**rec.extra, "cache": "semantic" if hit.get("semantic") else "hit",
                         "saved_usd": hit.get("saved_usd", 0.0)}
        self.ledger.record(rec)
        if cost and self.metrics is not None:
            self.metrics.inc((call.request.model, rec.deployment), cost)
