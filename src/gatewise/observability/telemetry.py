"""Outermost middleware: timings, metrics and one structured log line per request.

The request line (`gatewise.request`, message `request`) carries the call's ids, names and
numbers as fields (`observability/logs.py` prints them as JSON or `key=value`): request and
trace id, key and team ids (not the end user's id: callers often put an e-mail address
there), the requested alias and the model and deployment that
served it, status and error type, latency and time to first token, tokens, cost, the cache's
verdict, the guardrails' decisions (`["pii:mask", "injection:flag"]`) and the A/B arm. Never
prompt or completion text, never a key: only what the call's own bookkeeping holds.

Successes are logged at INFO when `observability.logging.requests` is on (DEBUG otherwise),
failures always at INFO: a request line is a record, not an alarm (what went wrong upstream is
an incident, logged at WARNING, and alerts come from the metrics), and a library caller who
configured no logging gets no stray lines from Python's last-resort handler. The fields are
gathered only when the logger would emit the line, so a quiet logger costs one level check.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from gatewise.errors import GatewayError
from gatewise.observability.logs import BATCHED, FIELDS
from gatewise.observability.metrics import GatewayMetrics
from gatewise.observability.recent import Feed, RecentFeed
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import Cancelled, ChunkStream

log = logging.getLogger("gatewise.request")

# The response cache's verdict header (`gatewise.cache.middleware.HEADER`; not imported: the
# cache package already reports to observability).
CACHE_HEADER = "x-gatewise-cache"

# Call events the guardrails record, as (guard, action); None: the event's own `action`.
# Guard names are those of `gatewise_guard_decisions_total` (`security.events.GUARD_OF_KIND`,
# not imported: security already reports to observability).
_GUARD_EVENTS: dict[str, tuple[str, str | None]] = {
    "pii": ("pii", None),
    "prompt_injection": ("injection", None),
    "output_flagged": ("output", "flag"),
    "output_check_retry": ("output", "retry"),
    "tools_dropped": ("tool_call", "flag"),
    "tool_call_repair": ("tool_call", "retry"),
    "tool_call_rejected": ("tool_call", "block"),
}
# A guard's refusal, when it raised without recording a call event first.
_GUARD_ERRORS = {"PIIViolation": "pii", "PromptInjectionDetected": "injection",
                 "ToolCallRejected": "tool_call", "OutputCheckFailed": "output"}
_HITS = frozenset({"hit", "semantic-hit"})
_MAX_ALIAS_CHARS = 200


def guard_decisions(call: Call, error: BaseException | None = None) -> list[str]:
    """The guardrails' decisions on this call, in order, once each: `guard:action`."""
    out: list[str] = []
    for name, data in call.events:
        spec = _GUARD_EVENTS.get(name)
        if spec is None:
            continue
        guard, action = spec
        item = f"{guard}:{action or data.get('action', 'flag')}"
        if item not in out:
            out.append(item)
    if error is not None:
        refused = _GUARD_ERRORS.get(type(error).__name__)
        if refused is not None and f"{refused}:block" not in out:
            out.append(f"{refused}:block")
    return out


def request_fields(call: Call, status: int, latency: float,
                   error: BaseException | None) -> dict[str, Any]:
    """The request line's fields; absent facts are left out rather than logged as null."""
    dep = call.deployment
    ident = call.identity
    alias = call.request.model
    out: dict[str, Any] = {
        "request_id": call.request_id,
        "endpoint": call.kind,
        "alias": alias if len(alias) <= _MAX_ALIAS_CHARS else alias[:_MAX_ALIAS_CHARS] + "…",
    }
    if dep is not None:
        out["model"] = dep.target.ref
        out["deployment"] = dep.id
    out["status"] = status
    # Rounded as integers, not by `round(x, n)`, which makes a decimal string and parses it
    # back (the three fields cost ~4.8k instructions a request more that way, callgrind);
    # an integer divided by a power of ten is the double nearest the decimal all the same.
    out["latency_ms"] = int(latency * 1e6 + 0.5) / 1000
    span = call.span
    if span is not None:
        trace_id = getattr(span, "trace_id", None)
        if trace_id:
            out["trace_id"] = trace_id
    if ident.key_id is not None:
        out["key_id"] = ident.key_id
    if ident.team is not None:
        out["team"] = ident.team
    if call.stream:
        out["stream"] = True
    if error is not None:
        out["error_type"] = type(error).__name__
    if call.ttft is not None and error is None:
        out["ttft_ms"] = int(call.ttft * 1e6 + 0.5) / 1000
    u = call.usage
    if u is not None:
        out["prompt_tokens"] = u.prompt_tokens
        out["completion_tokens"] = u.completion_tokens
    cost = call.cost_usd
    if cost is not None:  # (a price from config could make it anything: NaN stays NaN)
        out["cost_usd"] = int(cost * 1e8 + 0.5) / 1e8 if 0.0 <= cost < 1e9 else cost
    cache = call.response_headers.get(CACHE_HEADER)
    if cache is not None:
        out["cache"] = cache
    guards = guard_decisions(call, error)
    if guards:
        out["guards"] = guards
    if call.experiment is not None:
        out["experiment"], out["variant"] = call.experiment
    if call.attempts > 1:
        out["attempts"] = call.attempts
    return out


class TelemetryMiddleware:
    def __init__(self, metrics: GatewayMetrics, *, log_requests: bool = True,
                 recent: Feed | None = None) -> None:
        """`log_requests`: successful requests logged at INFO (else DEBUG); `recent`: the
        live request log (default: this process's ring)."""
        self.metrics = metrics
        self.success_level = logging.INFO if log_requests else logging.DEBUG
        self.lines = RequestLine()
        # The web console's live request log: the request line's fields, kept only while
        # somebody reads them (`observability.recent`), so an unwatched gateway pays one check.
        self.recent: Feed = recent if recent is not None else RecentFeed(2000, idle_s=60.0)

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
        if dep is not None:
            model = dep.alias
        elif call.response_headers.get(CACHE_HEADER) in _HITS:
            model = call.alias  # a resolved, configured alias (the cache keys on it)
        else:
            model = "unknown"  # never the requested name: callers choose it (cardinality)
        dep_id = dep.id if dep is not None else "none"
        endpoint = call.kind
        latency = (call.ended or time.perf_counter()) - call.started
        if error is None:
            code = 200
        elif isinstance(error, Cancelled):
            code = 499
        elif isinstance(error, GatewayError):
            code = error.status
        else:
            code = 500
        status = str(code)
        m.requests.inc((endpoint, model, dep_id, status))
        if error is not None and not isinstance(error, Cancelled):
            etype = type(error).__name__
            m.errors.inc((endpoint, model, etype))
        m.duration.observe(latency, (endpoint, model, dep_id))
        if not call.stream and error is None:
            m.overhead.observe(max(0.0, latency - call.upstream_s), (endpoint,))
        if call.ttft is not None and error is None and endpoint == "chat":
            m.ttft.observe(call.ttft, (model, dep_id))
        team = call.identity.team or "none"
        u = call.usage
        if u is not None:
            if u.prompt_tokens:
                m.tokens.inc(("input", model, dep_id), u.prompt_tokens)
                m.team_tokens.inc((team, "input"), u.prompt_tokens)
            if u.completion_tokens:
                m.tokens.inc(("output", model, dep_id), u.completion_tokens)
                m.team_tokens.inc((team, "output"), u.completion_tokens)
        if call.cost_usd:
            m.team_cost.inc((team,), call.cost_usd)
        level = self.success_level if error is None else logging.INFO
        recent = self.recent
        if self.lines.log.isEnabledFor(level):
            fields = request_fields(call, code, latency, error)
            self.lines.emit(level, fields)
            if recent.active:
                recent.add({**fields, "ts": time.time()})
        elif recent.active:
            recent.add({**request_fields(call, code, latency, error), "ts": time.time()})


class RequestLine:
    """Emits the request line: `log.log(level, "request", extra=fields)`, less what it does
    not need. No caller's frame lookup and no per-field clash checks (the keys are this
    module's own); with the default record factory, `LogRecord.__init__`'s path arithmetic,
    the same for every line, is done once per level: the fixed attributes are copied from a
    prototype record made exactly that way, the time and thread filled in per line. The
    record goes through the logger's filters and handlers like any other. About a third of
    a JSON line's cost is saved (`bench/logging_bench.py`)."""

    def __init__(self, logger: logging.Logger = log, msg: str = "request", *,
                 batched: bool = False) -> None:
        """`msg`: the line's message (security events use this emitter too); `batched`: the
        line waits for the handler's batch even at WARNING (`observability.logs.BATCHED`)."""
        self.log = logger
        self.msg = msg
        self.batched = batched
        self._prototypes: dict[int, logging.LogRecord] = {}  # per level: at most five

    def emit(self, level: int, fields: dict[str, Any]) -> None:
        factory = logging.getLogRecordFactory()
        if factory is logging.LogRecord:
            record = self._record(level)
        else:
            record = factory(self.log.name, level, __file__, 0, self.msg, None, None)
        d = record.__dict__
        d.update(fields)  # as `extra` would: filters and other formatters see attributes
        d[FIELDS] = fields  # ours read the dict as it is (`observability.logs`)
        if self.batched:
            d[BATCHED] = True
        self.log.handle(record)

    def _record(self, level: int) -> logging.LogRecord:
        proto = self._prototypes.get(level)
        if proto is None:
            proto = logging.LogRecord(self.log.name, level, __file__, 0, self.msg, None, None)
            self._prototypes[level] = proto
        record = logging.LogRecord.__new__(logging.LogRecord)
        d = record.__dict__
        d.update(proto.__dict__)
        now = time.time()
        d["created"] = now
        d["msecs"] = int((now - int(now)) * 1000) + 0.0
        d["relativeCreated"] = (now - proto.created) * 1000 + proto.relativeCreated
        if logging.logThreads:
            d["thread"] = threading.get_ident()
            d["threadName"] = threading.current_thread().name
        return record
