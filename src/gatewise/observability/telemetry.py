"""Outermost middleware: timings, metrics and one structured log line per request.

Logs never contain prompt or completion text, nor keys: only ids, names, numbers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gatewise.errors import GatewayError
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import Cancelled, ChunkStream

log = logging.getLogger("gatewise.request")


class TelemetryMiddleware:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    async def __call__(self, call: Call, next: Handler) -> Any:
        m = self.metrics
        m.in_flight.inc()
        try:
            result = await next(call)
        except BaseException as exc:
            m.in_flight.inc(amount=-1)
            call.ended = time.perf_counter()
            self._record(call, exc)
            raise
        if isinstance(result, ChunkStream):
            result.on_finish(self._stream_done)
            return result
        m.in_flight.inc(amount=-1)
        call.ended = time.perf_counter()
        if call.ttft is None:
            call.ttft = call.ended - call.started
        self._record(call, None)
        return result

    def _stream_done(self, call: Call, error: BaseException | None) -> None:
        self.metrics.in_flight.inc(amount=-1)
        self._record(call, error)

    def _record(self, call: Call, error: BaseException | None) -> None:
        m = self.metrics
        dep = call.deployment
        model = dep.alias if dep is not None else "unknown"
        dep_id = dep.id if dep is not None else "none"
        endpoint = call.kind
        latency = (call.ended or time.perf_counter()) - call.started
        if error is None:
            status = "200"
        elif isinstance(error, Cancelled):
            status = "499"
        elif isinstance(error, GatewayError):
            status = str(error.status)
        else:
            status = "500"
        m.requests.inc((endpoint, model, dep_id, status))
        if error is not None and not isinstance(error, Cancelled):
            etype = type(error).__name__
            m.errors.inc((endpoint, model, etype))
        m.duration.observe(latency, (endpoint, model, dep_id))
        if not call.stream and error is None:
            m.overhead.observe(max(0.0, latency - call.upstream_s), (endpoint,))
        if call.ttft is not None and error is None and endpoint == "chat":
            m.ttft.observe(call.ttft, (model, dep_id))
        u = call.usage
        if u is not None:
            if u.prompt_tokens:
                m.tokens.inc(("input", model, dep_id), u.prompt_tokens)
            if u.completion_tokens:
                m.tokens.inc(("output", model, dep_id), u.completion_tokens)
        if log.isEnabledFor(logging.INFO if error is not None else logging.DEBUG):
            log.log(
                logging.INFO if error is not None else logging.DEBUG,
                "request",
                extra={
                    "request_id": call.request_id,
                    "endpoint": endpoint,
                    "model": model,
                    "deployment": dep_id,
                    "status": status,
                    "latency_ms": round(latency * 1000, 3),
                    "prompt_tokens": u.prompt_tokens if u else None,
                    "completion_tokens": u.completion_tokens if u else None,
                    "error_type": type(error).__name__ if error is not None else None,
                },
            )
