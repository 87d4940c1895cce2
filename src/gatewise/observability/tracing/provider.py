"""`Tracing`: one gateway's OpenTelemetry span processor, its exporter, and the span stages
it adds to that gateway's chain.

Everything belongs to the gateway (never `trace.set_tracer_provider`: two gateways in one
process trace independently, and an application's own global provider is left alone). Only
the W3C trace context is shared with the process, as OpenTelemetry means it to be: a library
call made inside an application's span continues that trace. Spans are made by the
`SpanRecorder` (`recorder.py`: the SDK's sampler, ids and processors, without the SDK tracer's
per-span cost).

Exporters: `otlp_http` (OTLP/protobuf over HTTP, encoded by gatewise and batched on its own
worker thread, `export.py`, so the event loop never waits for the collector), `console`
(stderr, batched by the SDK) and `memory` (kept in process and exported synchronously:
`finished_spans()` for tests and timelines).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gatewise.config.schema_ops import TracingConfig
from gatewise.errors import ConfigError
from gatewise.observability.tracing.attributes import (
    ERROR_TYPE,
    OPERATION,
    REQUEST_MODEL,
    header_carrier,
)
from gatewise.observability.tracing.export import default_endpoint, otlp_http_sink
from gatewise.observability.tracing.recorder import SdkSink, SpanRecorder, SpanSink
from gatewise.observability.tracing.spans import (
    AttemptSpanMiddleware,
    GuardSpanMiddleware,
    RequestSpanMiddleware,
    StepSpanMiddleware,
    end_span,
)
from gatewise.pipeline.core import Middleware

if TYPE_CHECKING:
    from opentelemetry.context import Context

_SCOPE = "gatewise"


class ToolSpan:
    """The span of one tool execution; `fail` marks it failed with an error type."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def fail(self, error_type: str) -> None:
        self.span.set_attribute(ERROR_TYPE, error_type)
        self.span.set_status(Status(StatusCode.ERROR, error_type))


class Tracing:
    """One gateway's traces: where spans go, how they are sampled, and the stages that make
    them (`instrument`). The span stages read `tracer` per call, so `use_exporter` can
    redirect a running gateway's spans (benchmarks, a REPL timeline)."""

    def __init__(self, config: TracingConfig, *, headers: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """`headers`: the OTLP export headers, their secret references already resolved
        (`ResolvedConfig.tracing_headers`); `env`: where `OTEL_EXPORTER_OTLP_*ENDPOINT` is
        read when the config names no endpoint."""
        self.config = config
        self.capture = config.capture_content
        self.max_chars = config.max_content_chars
        self.propagate = config.propagate_upstream
        self.propagator: TextMapPropagator = TraceContextTextMapPropagator()
        self._memory: InMemorySpanExporter | None = None
        self._closed = False
        self._resource = Resource.create({"service.name": config.service_name})
        self.tracer = SpanRecorder(self._configured_sink(config, headers or {}, env or {}),
                                   config.sample_ratio)
        # The stages as bound methods: a chain link calls a bound method through 3.11's
        # specialised call (an inlined frame), an instance's `__call__` through a C slot.
        self.request = RequestSpanMiddleware(self).__call__
        self.attempt = AttemptSpanMiddleware(self).__call__

    def _configured_sink(self, config: TracingConfig, headers: Mapping[str, str],
                         env: Mapping[str, str]) -> SpanSink:
        if config.exporter == "memory":
            self._memory = InMemorySpanExporter()
            return self._sdk_sink(self._memory, batch=False)
        if config.exporter == "console":
            return self._sdk_sink(ConsoleSpanExporter(service_name=config.service_name,
                                                      out=sys.stderr), batch=True)
        # No endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else http://localhost:4318/v1/traces.
        endpoint = config.endpoint or default_endpoint(env)
        try:
            return otlp_http_sink(endpoint, headers, self._resource.attributes, _SCOPE)
        except ValueError as exc:
            raise ConfigError(str(exc),
                              path="observability.tracing.endpoint") from exc

    def _sdk_sink(self, exporter: SpanExporter, batch: bool) -> SdkSink:
        processor: SpanProcessor = (BatchSpanProcessor(exporter) if batch else
                                    SimpleSpanProcessor(exporter))
        return SdkSink(processor, self._resource, InstrumentationScope(_SCOPE))

    def use_exporter(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        """Sends spans to an SDK `exporter` from now on (the previous sink is shut down)."""
        old = self.tracer.sink
        self._memory = exporter if isinstance(exporter, InMemorySpanExporter) else None
        self.tracer = SpanRecorder(self._sdk_sink(exporter, batch), self.config.sample_ratio)
        old.shutdown()

    # -- what tests and timelines read ---------------------------------------------------------
    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        """Every span ended so far (the `memory` exporter only)."""
        if self._memory is None:
            raise RuntimeError("finished_spans() needs observability.tracing.exporter: memory")
        return self._memory.get_finished_spans()

    def clear_spans(self) -> None:
        if self._memory is not None:
            self._memory.clear()

    # -- the chain ------------------------------------------------------------------------------
    def instrument(self, per_call: Sequence[Middleware], per_attempt: Sequence[Middleware], *,
                   cache: object = None, retrieval: object = None, guards: object = None
                   ) -> tuple[list[Middleware], list[Middleware]]:
        """The chain's stages with tracing added: the request span outermost, the cache and
        retrieval stages (found by identity) wrapped, each guard wrapped through the guard
        middleware's `wrap_guards`, and the attempt span innermost."""
        calls: list[Middleware] = [self.request]
        for mw in per_call:  # (bound methods, as `request` and `attempt`: see `__init__`)
            if cache is not None and mw is cache:
                mw = StepSpanMiddleware(mw, self, "cache").__call__
            elif retrieval is not None and mw is retrieval:
                mw = StepSpanMiddleware(mw, self, "retrieval").__call__
            calls.append(mw)
        wrap = getattr(guards, "wrap_guards", None)
        if wrap is not None:
            wrap(self.guard)
        return calls, [*per_attempt, self.attempt]

    def guard(self, guard: Middleware) -> Middleware:
        """`guard` with its spans: its checks on the way in, its work on whole answers on the
        way out. Named for its class: injection, tool, pii, output."""
        name = type(guard).__name__
        for suffix in ("Middleware", "Check", "Guard"):
            name = name.removesuffix(suffix)
        return GuardSpanMiddleware(StepSpanMiddleware(guard, self, "guard", name.lower()))

    def extract(self, headers: Sequence[tuple[bytes, bytes]]) -> Context | None:
        """The client's trace context from its `traceparent`/`tracestate`; None without one."""
        carrier = header_carrier(headers)
        return None if carrier is None else self.propagator.extract(carrier)

    # -- the tool loop (gatewise.tools.run_tools) -----------------------------------------------
    @contextmanager
    def agent(self, model: str | None) -> Iterator[None]:
        """A span around a whole tool loop; its model turns and tool calls nest under it."""
        span = self.tracer.start_span("invoke_agent run_tools", kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes({OPERATION: "invoke_agent", "gen_ai.agent.name": "run_tools",
                                 **({REQUEST_MODEL: model} if model else {})})
        token = otel_context.attach(set_span_in_context(span))
        try:
            yield
        except BaseException as exc:
            end_span(span, {}, exc)
            raise
        else:
            end_span(span, {}, None)
        finally:
            otel_context.detach(token)

    @contextmanager
    def tool(self, name: str, call_id: str) -> Iterator[ToolSpan]:
        """A span per tool execution (`execute_tool {name}`); never its arguments or result."""
        name = name[:64]  # the model wrote it; a rejected call's name is unchecked
        span = self.tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes({OPERATION: "execute_tool", "gen_ai.tool.name": name,
                                 "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function"})
        try:
            yield ToolSpan(span)
        except BaseException as exc:
            end_span(span, {}, exc)
            raise
        span.end()

    # -- lifetime --------------------------------------------------------------------------------
    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        """Exports what is queued now (blocks: call it off the event loop)."""
        return self.tracer.sink.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Flushes and stops the exporter (blocks: `Gateway.aclose` runs it in a thread).
        Once: closing a gateway twice is harmless."""
        if not self._closed:
            self._closed = True
            self.tracer.sink.shutdown()

