"""Finished gatewise spans of every shape the OTLP encoder handles, for encoder and exporter
tests: a request under a remote parent with a tracestate, a failed attempt, a retried one
with every kind of attribute value, and a plain internal span."""

from __future__ import annotations

from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gatewise.observability.tracing.recorder import RecordedSpan, SpanRecorder


class Keep:
    """A sink keeping finished spans as they are."""

    def __init__(self) -> None:
        self.spans: list[RecordedSpan] = []

    def on_end(self, span: RecordedSpan) -> None:
        self.spans.append(span)

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        return None


def some_spans() -> list[RecordedSpan]:
    """A request under a remote parent with a tracestate, a failed attempt, a retried one with
    every kind of attribute value, and a plain internal span."""
    keep = Keep()
    rec = SpanRecorder(keep, 1.0)
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True,
                         TraceFlags(1), TraceState([("vendor", "abc")]))
    request = rec.start_span("chat gpt", kind=SpanKind.SERVER, parent=remote)
    request.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt",
                            "gatewise.request_id": "req_1", "gen_ai.request.temperature": 0.2,
                            "gen_ai.request.stream": True})
    ctx = request.get_span_context()
    failed = rec.start_span("chat gpt-4o", kind=SpanKind.CLIENT, parent=ctx)
    failed.set_attributes({"gatewise.attempt": 1, "server.port": 443})
    failed.set_status(Status(StatusCode.ERROR, "ProviderServerError"))
    failed.set_attribute("error.type", "ProviderServerError")
    failed.end()
    ok = rec.start_span("chat gpt-4o", kind=SpanKind.CLIENT, parent=ctx)
    ok.set_attributes({"gatewise.attempt": 2, "gen_ai.response.finish_reasons": ("stop", "length"),
                       "gatewise.offset": -5, "gen_ai.usage.input_tokens": 300,
                       "gen_ai.output.messages": "é" * 200, "gatewise.cost_usd": 1e-05,
                       "gatewise.cached": False})
    ok.end()
    request.end()
    tool = rec.start_span("execute_tool balance")
    tool.end(tool.start_time + 1500)  # type: ignore[attr-defined]
    return keep.spans
