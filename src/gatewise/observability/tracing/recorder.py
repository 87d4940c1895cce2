"""`SpanRecorder`: gatewise's spans, made cheaply, handed whole to a `SpanSink` when they end.

The SDK's own `Tracer.start_span` costs about 16 µs of CPU a span before any attribute, and
about 1 µs more per attribute (locks, bounded attribute maps validated item by item, limits
bookkeeping), and a `ReadableSpan` plus the SDK's batch processor a few µs more: with a
request span and an attempt span, more than the rest of a library call. Gatewise's spans are
few, short, written by one task, and carry attributes gatewise builds itself (names and
numbers, content cut to `max_content_chars`), so a span is one slotted object with a plain
attribute dict (and the `AttributeBlock`s it shares with other spans: a deployment's
constant attributes, a response's), and that same object is what the sink receives: the
OTLP exporter (`export.py`) queues it and encodes it on its own thread (`otlp.py`); only the `memory` and
`console` exporters (and one passed to `Tracing.use_exporter`) get SDK `ReadableSpan`s,
through `SdkSink`.

Sampling follows the SDK's `ParentBased(TraceIdRatioBased)` rule; ids are random (one
`getrandbits` call each, as the SDK's generator does); the spans are real
`opentelemetry.trace.Span`s, so the W3C context and an application's `get_current_span()`
work as usual. Measured in `bench/tracing_bench.py`.

Span events and links are not recorded (gatewise adds none), and `record_exception` records
nothing: an exception's message may quote the request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from random import getrandbits
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.util import types

from gatewise.observability.tracing.attributes import AnswerBlock

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_TRACE_ID_MASK = (1 << 64) - 1
_KIND_VALUES = {kind: kind.value + 1 for kind in SpanKind}  # OTLP's numbers count from 1
_time_ns = time.time_ns
_new_tuple = tuple.__new__
_new_object = object.__new__


class SpanSink(Protocol):
    """Where finished spans go: `on_end` is called on the event loop and must not block."""

    def on_end(self, span: RecordedSpan) -> None: ...
    def force_flush(self, timeout_ms: int = 30_000) -> bool: ...
    def shutdown(self) -> None: ...


class SpanRecorder:
    """Starts spans for one gateway and hands each finished one to `sink`."""

    def __init__(self, sink: SpanSink, sample_ratio: float) -> None:
        self.sink = sink
        # ParentBased(TraceIdRatioBased(ratio)), inlined (the SDK's sampler objects cost more
        # than the rest of starting a span): a parent's decision is kept, a new trace is
        # sampled when the low 64 bits of its id fall under the ratio's bound.
        self._bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio)

    def start_span(self, name: str, context: Context | None = None,
                   kind: SpanKind = SpanKind.INTERNAL, start_time: int | None = None,
                   parent: SpanContext | None = None) -> Span:
        """A span under `parent`, else under the span of `context` (the current context when
        None); a `NonRecordingSpan` carrying fresh ids when it is not sampled.

        The span stages pass everything by position (and `parent` is not keyword-only):
        3.11 inlines a call to a Python function only when it has no keyword arguments and
        the function no keyword-only parameters; otherwise the call builds its frame through
        `initialize_locals` and runs a nested interpreter loop, about 500 instructions more
        (callgrind, the request's and the attempt's span: 1.1k a sampled request)."""
        if parent is None:  # (an empty context, the usual request's, holds no span)
            parent = (INVALID_SPAN_CONTEXT if context is not None and not context
                      else get_current_span(context).get_span_context())
        # A `SpanContext` is a tuple (trace_id, span_id, is_remote, flags, state, is_valid);
        # read and built by index: its properties and validating constructor were a fifth
        # of starting a span, and these ids are valid by construction.
        if parent[5]:
            trace_id, sampled, state = parent[0], parent[3] & 1, parent[4]
        else:
            trace_id = getrandbits(128) or 1
            sampled, state = trace_id & _TRACE_ID_MASK < self._bound, DEFAULT_TRACE_STATE
            parent = None
        span_id = getrandbits(64) or 1
        if not sampled:
            return NonRecordingSpan(_new_tuple(SpanContext, (trace_id, span_id, False,
                                                             _UNSAMPLED, state, True)))
        # Every field set here, no `__init__`: a class's Python `__init__`, reached from C
        # through the type call, cost about 2,400 instructions a span besides its fifteen
        # stores (callgrind, `slot_tp_init`)
        span = _new_object(RecordedSpan)
        span.sink = self.sink
        span.name = name
        span.trace_id = trace_id
        span.span_id = span_id
        span.state = state
        span._context = None
        span.parent = parent
        span.kind = kind
        span.start_time = start_time if start_time is not None else _time_ns()
        span.end_time = None
        span.attributes = {}
        span.blocks = ()
        span.status_code = 0
        span.status_message = None
        return span


class AttributeBlock:
    """Attributes that many spans carry alike, kept once and encoded once.

    A deployment's attempts all say the same operation, provider, model, deployment, alias
    and server; the requests with the same sampling parameters say the same ones (a request's
    span and its last attempt's share one more block, the answer's: `attributes.AnswerBlock`,
    the same idea with fields for a dict). Written into each span's own dict, every one of
    them was built per span and looked up (or encoded) per span by the OTLP encoder; as a
    block, a span holds one reference (`RecordedSpan.blocks`) and the encoder writes the
    block's bytes, kept on the block (`encoded`, set by the export worker: the bytes of an
    attribute list do not depend on the encoder). Never changed once made; its keys are not
    in the spans' own dicts."""

    __slots__ = ("attributes", "encoded")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.encoded: bytes | None = None


# What a span's `blocks` hold: attributes shared as a dict, or an answer's as fields.
Block = AttributeBlock | AnswerBlock


class RecordedSpan(Span):
    """A sampled span being recorded, and (once ended) the record its sink keeps.

    Its attributes are its `blocks`' (shared with other spans, see `AttributeBlock`), then its
    own `attributes` dict, the two never sharing a key (`set_attribute` of a block's key copies
    the blocks into the dict first); `all_attributes` is both, in that order.

    Its `SpanContext` is made when first asked for (`context`): a request's span is asked at
    once (its children hang under it), an attempt's usually never (its `traceparent` is
    written from the ids), and a span without one is one object fewer for the collector to
    walk while it waits in the export queue."""

    __slots__ = ("_context", "attributes", "blocks", "end_time", "kind", "name", "parent",
                 "sink", "span_id", "start_time", "state", "status_code", "status_message",
                 "trace_id")

    # Made only by `SpanRecorder.start_span`, which sets every field without an `__init__`.
    sink: SpanSink
    name: str
    trace_id: int
    span_id: int
    state: TraceState
    _context: SpanContext | None
    parent: SpanContext | None
    kind: SpanKind
    start_time: int
    end_time: int | None
    attributes: dict[str, Any]
    blocks: tuple[Block, ...]
    status_code: int  # 0: StatusCode.UNSET
    status_message: str | None

    @property
    def context(self) -> SpanContext:
        return self.get_span_context()

    # -- what the OTLP encoder reads (`otlp.SpanRecord`) -----------------------------------------
    @property
    def kind_value(self) -> int:
        """The OTLP `SpanKind` number (the API's enum counts from 0, OTLP's from 1)."""
        return _KIND_VALUES[self.kind]

    @property
    def all_attributes(self) -> dict[str, Any]:
        """The blocks' attributes and the span's own, in the order the encoder writes them."""
        if not self.blocks:
            return self.attributes
        out: dict[str, Any] = {}
        for block in self.blocks:
            out.update(block.attributes)
        out.update(self.attributes)
        return out

    def _unblock(self, keys: Iterable[str]) -> None:
        """Before one of the blocks' keys is set on this span alone: the blocks' attributes
        copied into its own dict (so no key is written twice, and the block stays as it is)."""
        if any(k in b.attributes for b in self.blocks for k in keys):
            self.attributes = self.all_attributes
            self.blocks = ()

    @property
    def status(self) -> Status:
        return Status(StatusCode(self.status_code), self.status_message)

    # -- opentelemetry.trace.Span ------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        """(A method, not the property: called from Python, one frame, no C slot between.)"""
        ctx = self._context
        if ctx is None:  # (ids valid by construction: no validating constructor)
            ctx = self._context = _new_tuple(SpanContext, (self.trace_id, self.span_id, False,
                                                           _SAMPLED, self.state, True))
        return ctx

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is None:
            if self.blocks:
                self._unblock(attributes)
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is None:
            if self.blocks:
                self._unblock((key,))
            self.attributes[key] = value

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is None:
            code = status.status_code if isinstance(status, Status) else status
            if isinstance(status, Status):
                description = status.description
            self.status_code = code.value
            self.status_message = description if code is StatusCode.ERROR else None

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def add_event(self, name: str, attributes: types.Attributes = None,
                  timestamp: int | None = None) -> None:
        return None

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        return None

    def record_exception(self, exception: BaseException, attributes: types.Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        return None

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else _time_ns()
        self.sink.on_end(self)


class SdkSink:
    """Finished spans as SDK `ReadableSpan`s, for an SDK span processor and its exporter (the
    `memory` and `console` exporters, or one given to `Tracing.use_exporter`)."""

    def __init__(self, processor: SpanProcessor, resource: Resource,
                 scope: InstrumentationScope) -> None:
        self.processor = processor
        self._resource = resource
        self._scope = scope

    def on_end(self, span: RecordedSpan) -> None:
        self.processor.on_end(ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=self._resource,
            attributes=span.all_attributes, kind=span.kind, status=span.status,
            start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=self._scope))

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        return self.processor.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.processor.shutdown()
