"""The span-making middleware: one span per request, per attempt, and per step worth seeing
(a guard, the cache lookup, retrieval).

Built only when tracing is on (`Tracing.instrument` places them), so a gateway without tracing
runs exactly the chain it had before. Parents are explicit: the request span's context rides
on `call.span` (a `RequestTrace`), so an attempt's span hangs under its request whatever task
runs it; calls made without that stage (an orchestration branch, a hedge's twin, a tool loop's
turns) take the ambient OpenTelemetry context instead, which the request stage and the tool
loop's agent span set while their work runs.

The request's and the attempt's spans carry their attributes partly in shared blocks
(`recorder.AttributeBlock`): what every attempt against a deployment says alike (operation,
provider, model, deployment, alias, server) and what every request for a model served by a
deployment says alike, made once per deployment; the answer's id, model, finish reasons and
usage, made once per request for the attempt that got it and the request that returns it.
Each block is built once and encoded once, not once per span.

A step's span covers the step's own work, not everything after it: the wrapper hands the
step a `next` that closes the span when called, so a cache miss's span ends at the lookup and
the provider's attempts are not nested inside the cache.
"""

from __future__ import annotations

import dataclasses
import time
from contextvars import ContextVar
from random import getrandbits
from typing import TYPE_CHECKING, Any, Literal, Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import Context as OtelContext
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)
from opentelemetry.trace import propagation as otel_propagation

from gatewise.observability.tracing.attributes import (
    ATTEMPT,
    ERROR_TYPE,
    FINISH_REASONS,
    HEADER_NAME,
    OPERATIONS,
    OUTPUT_MESSAGES,
    RESPONSE_ID,
    RESPONSE_MODEL,
    TTFT,
    AnswerBlock,
    Attributes,
    answer_attributes,
    answer_block,
    attempt_attributes,
    attempt_constants,
    chat_parameters,
    error_type,
    input_messages,
    outcome_attributes,
    output_messages,
    parameters_key,
    request_attributes,
    request_constants,
    server_address,
    streamed_output,
)
from gatewise.observability.tracing.recorder import AttributeBlock, RecordedSpan
from gatewise.pipeline.core import Call, Handler, Middleware
from gatewise.pipeline.stream import ChunkStream
from gatewise.types.requests import ChatRequest
from gatewise.types.stream import ChatCompletionChunk

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

    from opentelemetry.context import Context

    from gatewise.observability.tracing.recorder import SpanRecorder
    from gatewise.providers.deployment import Deployment
    from gatewise.types.responses import Usage

# Blocks kept per stage (`AttributeBlock`): one per deployment and alias (attempts), per model
# asked for and deployment (requests); cleared when full (direct `provider/model` calls and
# client-chosen model names come and go).
_BLOCKS_LIMIT = 1024

# Events an attempt's reason is read from (the last one since the previous attempt wins).
_REASONS = {"retry": "retry", "failover": "failover", "simplified_prompt": "simplified_prompt",
            "hedge": "hedge"}
CACHE_HEADER = "x-gatewise-cache"
_NONE = object()  # (a cache miss, where None is a value)
_new_object = object.__new__
# (an enum member read off its class goes through the enum type's attribute lookup each time;
# these are globals: with the step stages as bound methods, `Tracing.instrument`, 742k ->
# 738k instructions a sampled request, callgrind)
_SERVER, _CLIENT, _INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL


class Tracing(Protocol):
    """What the stages read from their gateway's `Tracing` (`provider.py`), looked up per
    call so `use_exporter` can swap the tracer underneath them."""

    tracer: SpanRecorder
    capture: bool
    max_chars: int
    propagate: bool

    def extract(self, headers: Sequence[tuple[bytes, bytes]]) -> Context | None: ...


class RequestTrace:
    """What `call.span` holds while tracing is on: the request's span, the span context its
    children start from, and the 32-hex trace id (the request log line prints it). Made only
    by `RequestSpanMiddleware.__call__` (every field set there, without an `__init__`: see
    `SpanRecorder.start_span`)."""

    __slots__ = ("observer", "parameters", "request", "response", "sampled", "seen", "span",
                 "span_context", "trace_id")

    span: Span
    span_context: SpanContext
    trace_id: str
    # Read by every step stage (`_sampled_out`): the flags' `sampled` is two properties.
    sampled: bool
    # Index into `call.events` up to which attempts have read their reasons.
    seen: int
    # The stream observer an attempt attached (the request span reads the response off it).
    observer: StreamObserver | None
    # The last attempt's whole answer, its response and usage attributes as a block, and
    # the usage they were read from: the request span carries the same block when that
    # answer and usage are what the request ends with (built once, encoded once).
    response: tuple[Any, AnswerBlock, Usage | None] | None
    # The request's sampling parameters as a block (None: it has none, or it is not
    # sampled) and the request they were read from: its attempts carry the same block while
    # they send that same request.
    parameters: AttributeBlock | None
    request: Any


class StreamObserver:
    """Notes the response id, model, finish reasons and (only when content capture is on) the
    text, as the chunks go by (`ChunkStream.observe`: a read-only watcher, so the stream
    keeps its fast path, unlike a transform)."""

    __slots__ = ("id", "model", "parts", "reasons", "stream")

    def __init__(self, stream: ChunkStream, capture: bool) -> None:
        self.stream = stream
        self.id = ""
        self.model = ""
        self.reasons: list[str] = []
        self.parts: list[str] | None = [] if capture else None

    def __call__(self, chunk: ChatCompletionChunk) -> None:
        if not self.id and chunk.id:
            self.id = chunk.id
            self.model = chunk.model
        for c in chunk.choices:
            if c.finish_reason:
                self.reasons.append(c.finish_reason)
            if self.parts is not None and c.delta.content:
                self.parts.append(c.delta.content)

    def attributes(self, a: Attributes) -> None:
        if self.id:
            a[RESPONSE_ID] = self.id
        if self.model:
            a[RESPONSE_MODEL] = self.model
        if self.reasons:
            a[FINISH_REASONS] = tuple(self.reasons)


def end_span(span: Span, a: Attributes, error: BaseException | None,
             end_time: int | None = None) -> None:
    """Sets what was gathered, the error (type only: a message may quote the request) and
    ends the span."""
    if error is not None:
        _mark_failed(span, a, error)
    span.set_attributes(a)
    span.end(end_time)


def _mark_failed(span: Span, a: Attributes, error: BaseException) -> None:
    """The error's type (never its message: that may quote the request) into `a`, and the
    span's status."""
    a[ERROR_TYPE] = etype = error_type(error)
    span.set_status(Status(StatusCode.ERROR, etype))


def _span_key() -> str | None:
    """The context key OpenTelemetry keeps the current span under (`set_span_in_context`
    writes it through two Python calls and a copy; the request stage does it in one step);
    None when this OpenTelemetry version names it otherwise."""
    key = getattr(otel_propagation, "_SPAN_KEY", None)
    return key if isinstance(key, str) else None


_SPAN_KEY = _span_key()



def _context_var() -> ContextVar[Context] | None:
    """The context variable OpenTelemetry keeps the current context in, when its runtime
    context is the default one (`contextvars`); None for another (`OTEL_PYTHON_CONTEXT`).
    Reading and setting it directly skips three Python calls for each of `get_current`,
    `attach` and `detach`, on every request."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar) \
        else None


class RequestSpanMiddleware:
    """Outermost stage: the request's span (SERVER when the call came over HTTP, continuing
    the client's `traceparent`; INTERNAL from the library), ended when the answer is whole:
    at return, or when a stream finishes."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self._var = _context_var()
        # (model asked for, deployment id) -> (the deployment, alias, kind, their block)
        self._blocks: dict[tuple[str, str | None], tuple[Any, str, str, AttributeBlock]] = {}
        self._chat_names: dict[str, str] = {}  # model asked for -> its chats' span name
        self._params: dict[tuple[Any, ...], AttributeBlock | None] = {}  # (`_parameters`)

    async def __call__(self, call: Call, next: Handler) -> Any:
        t = self._tracing
        var = self._var
        headers = call.request_headers
        # (the usual request has no `traceparent`: looked for here, in C, before any call)
        parent = t.extract(headers) \
            if headers and b"traceparent" in map(HEADER_NAME, headers) else None
        # The context read once, for both the parent's span and the one made here.
        base = parent if parent is not None else \
            var.get() if var is not None else otel_context.get_current()
        # `span_name(operation_of(call), model)`, kept per model asked for in a chat
        model = call.request.model
        name = self._chat_names.get(model) if call.kind == "chat" else None
        if name is None:
            name = self._name(call.kind, model)
        # (positional: see `SpanRecorder.start_span`)
        span = t.tracer.start_span(name, base, _SERVER if headers else _INTERNAL)
        # `set_span_in_context(span, base)`: a new context holding the span (from an empty
        # one, the usual, one dict literal: `{**base, ...}` makes two, 500 instructions more
        # by callgrind)
        ctx = (OtelContext({**base, _SPAN_KEY: span}) if base else
               OtelContext({_SPAN_KEY: span})) if _SPAN_KEY is not None \
            else set_span_in_context(span, base)
        rec = span if type(span) is RecordedSpan else None  # None: not sampled (no ABC check)
        trace: RequestTrace = _new_object(RequestTrace)  # (made here only: no function call)
        trace.span = span
        trace.sampled = rec is not None
        trace.span_context = sc = span.get_span_context()
        # (by index: see `SpanRecorder.start_span`; `to_bytes().hex()` is the same 32 digits as
        # format(id, "032x"), without the format-spec parsing: half the instructions)
        trace.trace_id = sc[0].to_bytes(16, "big").hex()
        trace.seen = 0
        trace.observer = trace.response = trace.parameters = trace.request = None
        call.span = trace
        if rec is not None:
            req = call.request
            if type(req) is ChatRequest:
                request_attributes(call, rec.attributes, False)  # (positional: as `start_span`)
                trace.request = req
                trace.parameters = self._parameters(req)
            else:
                request_attributes(call, rec.attributes)
        token = var.set(ctx) if var is not None else otel_context.attach(ctx)
        try:
            result = await next(call)
        except BaseException as exc:
            self._end(call, trace, None, exc)
            raise
        finally:
            if var is None:
                otel_context.detach(token)
            else:
                try:
                    var.reset(token)
                except Exception:  # (another context's token): as `detach`, logged, not raised
                    otel_context.detach(token)
        if rec is None:  # not sampled: nothing to end (a stream costs nothing per chunk)
            return result
        if isinstance(result, ChunkStream):
            return self._stream(trace, result)
        self._end(call, trace, result, None)
        return result

    def _stream(self, trace: RequestTrace, result: ChunkStream) -> ChunkStream:
        """A sampled request's span ends when its stream does. (A method of its own: variables
        a closure reads are cells for the whole function, made and read through on every
        request, streamed or not.)"""
        obs = trace.observer
        if obs is None or obs.stream is not result:  # replayed (cache, stale copy)
            trace.observer = obs = StreamObserver(result, False)
            result.observe(obs)
        result.on_finish(lambda c, error: self._end(c, trace, None, error))
        return result

    def _end(self, call: Call, trace: RequestTrace, result: Any,
             error: BaseException | None) -> None:
        span = trace.span
        if type(span) is not RecordedSpan or span.end_time is not None:
            return
        a = span.attributes
        outcome_attributes(call, a)
        constants = self._constants(call)
        parameters = trace.parameters
        seen = trace.response
        if result is not None and seen is not None and seen[0] is result \
                and seen[2] is call.usage:  # the last attempt's answer: its block
            span.blocks = (constants, seen[1]) if parameters is None \
                else (constants, parameters, seen[1])
        else:
            span.blocks = (constants,) if parameters is None else (constants, parameters)
            answer_attributes(result, call.usage, a)
            if result is None and trace.observer is not None:
                trace.observer.attributes(a)
        if call.stream and call.ttft is not None:
            a[TTFT] = call.ttft
        if error is not None:  # (into the span's own dict: no copy as in `end_span`)
            _mark_failed(span, a, error)
        span.end()

    def _name(self, kind: str, model: str) -> str:
        """`{gen_ai.operation.name} {gen_ai.request.model}`, kept for chats (made once, and
        one string the encoder's name cache finds without hashing it again)."""
        name = f"{OPERATIONS.get(kind, kind)} {model}"
        if kind == "chat":
            if len(self._chat_names) >= _BLOCKS_LIMIT:
                self._chat_names.clear()
            self._chat_names[model] = name
        return name

    def _parameters(self, req: ChatRequest) -> AttributeBlock | None:
        """The sampling parameters' block, one per distinct set (most applications send the
        same few every time), shared by the request's span and its attempts': made and
        encoded once, not read off the request and looked up by the encoder per span."""
        key = parameters_key(req)
        block = self._params.get(key, _NONE)
        if block is _NONE:
            if len(self._params) >= _BLOCKS_LIMIT:
                self._params.clear()
            a = chat_parameters(req)
            block = self._params[key] = AttributeBlock(a) if a else None
        return block  # type: ignore[return-value]

    def _constants(self, call: Call) -> AttributeBlock:
        """The request span's block: operation, model asked for, where it was served."""
        dep = call.deployment
        model = call.request.model
        key = (model, dep.id if dep is not None else None)
        cached = self._blocks.get(key)
        if cached is None or cached[0] is not dep or cached[1] != call.alias \
                or cached[2] != call.kind:
            if len(self._blocks) >= _BLOCKS_LIMIT:
                self._blocks.clear()
            block = AttributeBlock(request_constants(
                call.kind, model, dep.target if dep is not None else None,
                dep.id if dep is not None else None, call.alias))
            cached = self._blocks[key] = (dep, call.alias, call.kind, block)
        return cached[3]


class AttemptSpanMiddleware:
    """Innermost stage, right before the provider call: one CLIENT span per attempt, with the
    deployment, the attempt number and why it happened (a retry, a failover to another
    deployment, a fallback to another alias), and the `traceparent` sent upstream.

    Under a sampled-out request no span object is made at all, only the span id that
    `traceparent` sends (with the request stage's trace made inline and its `_end` not
    called when there is nothing to end: 668k -> 656k instructions a request through the
    server at sample ratio 0, callgrind, `bench/tracing_bench.py --callgrind 512`)."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self._addresses: dict[str, tuple[str, int] | None] = {}
        self._copies: dict[str, tuple[Deployment, Deployment]] = {}
        # deployment id -> (the deployment, alias, kind, their block, the span name, their
        # block with `gatewise.attempt: 1`)
        self._blocks: dict[str, tuple[Deployment, str, str, AttributeBlock, str,
                                      AttributeBlock]] = {}

    async def __call__(self, call: Call, next: Handler) -> Any:
        t = self._tracing
        dep = call.deployment
        assert dep is not None, "the router runs before the attempt"
        trace = call.span if isinstance(call.span, RequestTrace) else None
        span: Span | None
        if trace is not None and not trace.sampled:
            # Under a sampled-out request: no span object at all (a `NonRecordingSpan` nobody
            # sees: the attempt's is never made current), only the span id `traceparent`
            # sends, drawn as `SpanRecorder.start_span` draws it (even when not sent: the
            # same draws from the generator as before).
            span = rec = None
            span_id = getrandbits(64) or 1
        else:
            constants = self._constants(call, dep)
            # (positional: see `SpanRecorder.start_span`)
            span = t.tracer.start_span(constants[4], None, _CLIENT, None,
                                       trace.span_context if trace is not None else None)
            rec = span if type(span) is RecordedSpan else None  # None: not sampled (no ABC check)
        if rec is not None:
            # A first attempt's number is in the deployment's second block (`_constants`).
            first = not call.attempts
            block = constants[5] if first else constants[3]
            if trace is not None and call.request is trace.request:  # the request's block
                self._start_attributes(call, trace, rec.attributes, False, not first)
                parameters = trace.parameters
                rec.blocks = (block,) if parameters is None else (block, parameters)
            else:  # (changed on the way, or no request span): read here
                self._start_attributes(call, trace, rec.attributes, True, not first)
                rec.blocks = (block,)
        if t.propagate:  # W3C trace context, on the deployment's copy (`_copy_of`)
            # (Under a request span the trace id's hex is already made: the same trace.)
            if rec is not None:  # from the ids (a recorded span's `SpanContext` is not made)
                span_id, flags, state = rec.span_id, "01", rec.state
                trace_hex = trace.trace_id if trace is not None \
                    else rec.trace_id.to_bytes(16, "big").hex()
            elif trace is not None:  # (under the sampled-out request: no span made above)
                flags, state = "00", trace.span_context[4]
                trace_hex = trace.trace_id
            else:  # (by index: see `SpanRecorder.start_span`)
                assert span is not None
                sc = span.get_span_context()
                span_id, flags, state = sc[1], "01" if sc[3] & 1 else "00", sc[4]
                trace_hex = sc[0].to_bytes(16, "big").hex()
            parent = f"00-{trace_hex}-{span_id.to_bytes(8, 'big').hex()}-{flags}"
            target = dep.target
            headers = {**target.headers, "traceparent": parent} if target.headers \
                else {"traceparent": parent}
            if state is not DEFAULT_TRACE_STATE and state:
                headers["tracestate"] = state.to_header()
            # The deployment's copy carries this attempt's headers (`_copy_of`: why one copy)
            cached = self._copies.get(dep.id)
            copy = cached[1] if cached is not None and cached[0] is dep else self._copy_of(dep)
            copy.target.headers = headers
            call.deployment = copy
        try:
            result = await next(call)
        except BaseException as exc:
            if span is not None:
                end_span(span, {}, exc)
            raise
        finally:
            call.deployment = dep
            if rec is not None and trace is not None:  # (read by the next recorded attempt)
                trace.seen = len(call.events)
        if rec is None:  # (a `NonRecordingSpan` has nothing to end)
            return result
        if isinstance(result, ChunkStream):
            return self._stream(trace, rec, result)
        a = rec.attributes
        usage = call.usage
        answer = answer_block(result, usage)  # shared with the request span when it returns it
        rec.blocks = (*rec.blocks, answer)
        if trace is not None:
            trace.response = (result, answer, usage)
        if t.capture:
            text = output_messages(result, t.max_chars)
            if text is not None:
                a[OUTPUT_MESSAGES] = text
        rec.end()
        return result

    def _stream(self, trace: RequestTrace | None, span: RecordedSpan,
                result: ChunkStream) -> ChunkStream:
        """A recorded attempt's span ends when its stream does (a method of its own, as the
        request stage's `_stream`)."""
        obs = StreamObserver(result, self._tracing.capture)
        result.observe(obs)
        if trace is not None:
            trace.observer = obs
        result.on_finish(lambda c, error: self._end_stream(c, span, obs, error))
        return result

    def _copy_of(self, dep: Deployment) -> Deployment:
        """A new copy of `dep` (new, or the vault's copy changed), kept: the one copy per
        deployment whose target's headers each attempt swaps for its own (copying two
        dataclasses per attempt cost more than the span). Safe because this stage is the
        last before the provider call, which builds its HTTP request from them
        synchronously, before its first await, so a concurrent attempt cannot swap them in
        between. The usual attempt finds its copy in `_copies` without this call."""
        if len(self._copies) >= 1024:  # direct `provider/model` deployments come and go
            self._copies.clear()
        copy = dataclasses.replace(dep, target=dataclasses.replace(dep.target))
        self._copies[dep.id] = (dep, copy)
        return copy

    def _constants(self, call: Call, dep: Deployment
                   ) -> tuple[Deployment, str, str, AttributeBlock, str, AttributeBlock]:
        """The deployment's block for this alias and kind of call, its attempts' span name
        (`{gen_ai.operation.name} {gen_ai.request.model}`), and the block of its first
        attempts (the same and `gatewise.attempt: 1`: most requests need one), made once."""
        cached = self._blocks.get(dep.id)
        if cached is None or cached[0] is not dep or cached[1] != call.alias \
                or cached[2] != call.kind:  # new, the vault's copy changed, another alias
            if len(self._blocks) >= _BLOCKS_LIMIT:
                self._blocks.clear()
            target = dep.target
            base = target.api_base
            if base not in self._addresses:  # one entry per upstream base URL in the config
                self._addresses[base] = server_address(base)
            a = attempt_constants(call.kind, target, dep.id, call.alias, self._addresses[base])
            name = f"{OPERATIONS.get(call.kind, call.kind)} {target.model}"
            cached = self._blocks[dep.id] = (dep, call.alias, call.kind, AttributeBlock(a), name,
                                             AttributeBlock({**a, ATTEMPT: 1}))
        return cached

    def _start_attributes(self, call: Call, trace: RequestTrace | None, a: Attributes,
                          parameters: bool, number: bool) -> None:
        """An attempt's own attributes, into `a`: its number and parameters (unless its blocks
        hold them), the previous error, why it happened, the input with capture on."""
        if parameters or number:
            attempt_attributes(call, a, parameters, number)
        if call.failures:
            a["gatewise.previous_error.type"] = error_type(call.failures[-1])
        if trace is not None and len(call.events) > trace.seen:  # (no slice made for none)
            for name, data in reversed(call.events[trace.seen:]):
                reason = _REASONS.get(name)
                if reason is not None:
                    if name == "failover" and "reason" in data:  # an alias fallback
                        reason = "fallback"
                        a["gatewise.fallback.reason"] = str(data["reason"])
                    a["gatewise.attempt.reason"] = reason
                    break
        elif call.failures:
            a["gatewise.attempt.reason"] = "retry"
        t = self._tracing
        if t.capture:
            text = input_messages(call, t.max_chars)
            if text is not None:
                a["gen_ai.input.messages"] = text

    def _end_stream(self, call: Call, span: Span, obs: StreamObserver,
                    error: BaseException | None) -> None:
        a: Attributes = {}
        obs.attributes(a)
        answer_attributes(None, call.usage, a)
        if call.ttft is not None:
            a[TTFT] = call.ttft
        if obs.parts is not None:
            a[OUTPUT_MESSAGES] = streamed_output(obs.parts, obs.reasons, self._tracing.max_chars)
        end_span(span, a, error)


StepKind = Literal["cache", "retrieval", "guard"]


class StepSpanMiddleware:
    """Wraps one middleware so its own work gets a span: from its start until it calls `next`
    (or returns without doing so: a cache hit, a blocked request). A guard's work on the way
    back (unmasking, output checks) gets a second span, `phase=output`, for whole answers
    (a stream's is done chunk by chunk later, inside the stream).

    The cache's span is made only when the cache looked (its header says hit, semantic-hit,
    miss or bypass), retrieval's only when a knowledge base was searched."""

    def __init__(self, inner: Middleware, tracing: Tracing, kind: StepKind,
                 name: str = "") -> None:
        self.inner = inner
        self._tracing = tracing
        self._kind = kind
        self._name = name

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        """Not a coroutine itself: a call with nothing to record for this step (retrieval
        without a knowledge base, any step of a sampled-out call) runs the stage's own
        coroutine, one frame less on every await of everything after it."""
        trace = call.span  # (`_sampled_out(call)` first and inline: one call less for each)
        if type(trace) is RequestTrace and not trace.sampled:
            return self.inner(call, next)
        kind = self._kind
        if (call.kind != "chat" and kind != "guard") or (kind == "retrieval" and call.rag is None):
            return self.inner(call, next)
        return self._traced(call, next)

    async def _traced(self, call: Call, next: Handler) -> Any:
        start = time.time_ns()
        mark = len(call.events)
        handed: list[int] = []

        async def hand_on(c: Call) -> Any:
            if not handed:
                handed.append(time.time_ns())
                self._emit(call, "input", start, handed[0], mark, None)
            return await next(c)

        try:
            result = await self.inner(call, hand_on)
        except BaseException as exc:
            if not handed:
                self._emit(call, "input", start, time.time_ns(), mark, exc)
            raise
        # (A guard failing on the way back after `next` succeeded is caught below.)
        return result if handed else self._done(call, start, mark, result)

    def _done(self, call: Call, start: int, mark: int, result: Any) -> Any:
        self._emit(call, "input", start, time.time_ns(), mark, None)
        return result

    def _emit(self, call: Call, phase: str, start: int, end: int, mark: int,
              error: BaseException | None) -> None:
        kind = self._kind
        events = call.events[mark:]
        a: Attributes = {}
        if kind == "cache":
            result = call.response_headers.get(CACHE_HEADER)
            if result is None and error is None:
                return  # the cache did not look (not a cached alias, not a chat)
            name = "cache lookup"
            a["gatewise.cache.result"] = _cache_result(result, error)
        elif kind == "retrieval":
            rag = next((d for n, d in events if n == "rag"), None)
            if rag is None and error is None:
                return  # no knowledge base named
            collection = str((rag or {}).get("collection") or getattr(call.rag, "collection", ""))
            name = f"retrieval {collection}".rstrip()
            a["gen_ai.data_source.id"] = collection
            spec_k = getattr(call.rag, "k", None)
            if isinstance(spec_k, int):
                a["gatewise.rag.k"] = spec_k
            for key in ("hits", "sources", "injection_dropped", "below_min_score"):
                v = (rag or {}).get(key)
                if isinstance(v, int):
                    a[f"gatewise.rag.{key}"] = v
            if (rag or {}).get("not_found"):
                a["gatewise.rag.not_found"] = True
        else:
            name = f"guard {self._name}" if phase == "input" else f"guard {self._name} output"
            a["gatewise.guard.name"] = self._name
            a["gatewise.guard.phase"] = phase
            names = [n for n, _ in events]
            if names:
                a["gatewise.guard.events"] = tuple(names)
            actions = [str(d["action"]) for _, d in events if "action" in d]
            a["gatewise.guard.decision"] = ("block" if error is not None else
                                            actions[-1] if actions else "pass")
        t = self._tracing
        trace = call.span if isinstance(call.span, RequestTrace) else None
        span = t.tracer.start_span(name, start_time=start,
                                   parent=trace.span_context if trace is not None else None)
        end_span(span, a, error, end)

    def wrap_output(self) -> GuardSpanMiddleware:
        return GuardSpanMiddleware(self)


class GuardSpanMiddleware:
    """A guard's step span, plus the span of its work on a whole answer on the way back."""

    def __init__(self, step: StepSpanMiddleware) -> None:
        self._step = step

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        if _sampled_out(call):  # the guard's own coroutine (as `StepSpanMiddleware.__call__`)
            return self._step.inner(call, next)
        return self._traced(call, next)

    async def _traced(self, call: Call, next: Handler) -> Any:
        step = self._step
        back: list[int] = []

        async def downstream(c: Call) -> Any:
            result = await next(c)
            if not isinstance(result, ChunkStream):
                back.append(time.time_ns())
                back.append(len(call.events))
            return result

        try:
            result = await step(call, downstream)
        except BaseException as exc:
            if back:
                step._emit(call, "output", back[0], time.time_ns(), back[1], exc)
            raise
        if back:
            step._emit(call, "output", back[0], time.time_ns(), back[1], None)
        return result


def _sampled_out(call: Call) -> bool:
    trace = call.span
    return type(trace) is RequestTrace and not trace.sampled


def _cache_result(header: str | None, error: BaseException | None) -> str:
    if header == "semantic-hit":
        return "semantic"
    if header is not None:
        return header
    return "miss" if error is not None else "none"
