"""Gatewise's own OTLP trace export: the hand-written protobuf encoder writes exactly the bytes
the official OpenTelemetry encoder writes for the same spans (so any collector decodes them),
and the export worker batches, retries a struggling collector with backoff, and drops rather
than blocks when the collector cannot keep up."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gatewise.errors import ConfigError
from gatewise.observability.tracing.export import OtlpHttpSink, default_endpoint
from gatewise.observability.tracing.otlp import OtlpEncoder
from gatewise.observability.tracing.recorder import RecordedSpan, SdkSink, SpanRecorder
from tests.fakes.spans import Keep, some_spans

RESOURCE = Resource.create({"service.name": "gw-test"})


def official_bytes(spans: list[RecordedSpan]) -> bytes:
    memory = InMemorySpanExporter()
    sdk = SdkSink(SimpleSpanProcessor(memory), RESOURCE, InstrumentationScope("gatewise"))
    for s in spans:
        sdk.on_end(s)
    out: bytes = encode_spans(memory.get_finished_spans()).SerializeToString()
    return out


def test_the_encoding_is_byte_for_byte_the_official_encoders() -> None:
    spans = some_spans()
    encoder = OtlpEncoder(RESOURCE.attributes, "gatewise")
    assert encoder.encode(spans) == official_bytes(spans)
    assert encoder.encode(spans) == official_bytes(spans)  # again, from the attribute cache


def test_equal_values_of_different_types_keep_their_own_type_on_the_wire() -> None:
    """1 == 1.0 == True, and the encoder's cache must not hand one the other's encoding."""
    keep = Keep()
    rec = SpanRecorder(keep, 1.0)
    for value in (1, 1.0, True, 1, True):
        span = rec.start_span("chat gpt")
        span.set_attribute("gatewise.value", value)
        span.end()
    encoder = OtlpEncoder(RESOURCE.attributes, "gatewise")
    assert encoder.encode(keep.spans) == official_bytes(keep.spans)


def test_a_collector_decodes_names_ids_parents_attributes_and_status() -> None:
    spans = some_spans()
    req = ExportTraceServiceRequest()
    req.ParseFromString(OtlpEncoder(RESOURCE.attributes, "gatewise").encode(spans))
    (rs,) = req.resource_spans
    assert {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"] \
        == "gw-test"
    (ss,) = rs.scope_spans
    assert ss.scope.name == "gatewise"
    failed, ok, request, tool = ss.spans
    assert request.kind == 2 and failed.kind == 3 and tool.kind == 1  # SERVER, CLIENT, INTERNAL
    assert request.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert request.parent_span_id.hex() == "b7ad6b7169203331"
    assert request.trace_state == "vendor=abc"
    assert request.flags == 0x300  # the parent is remote, and that is known
    assert ok.parent_span_id == failed.parent_span_id == request.span_id
    assert ok.flags == 0x100 and not tool.parent_span_id
    assert failed.status.code == 2 and failed.status.message == "ProviderServerError"
    assert ok.status.code == 0 and not ok.status.message
    attrs = {a.key: a.value for a in ok.attributes}
    assert attrs["gatewise.attempt"].int_value == 2
    assert attrs["gatewise.offset"].int_value == -5
    assert [v.string_value for v in attrs["gen_ai.response.finish_reasons"].array_value.values] \
        == ["stop", "length"]
    assert attrs["gatewise.cost_usd"].double_value == 1e-05
    assert attrs["gatewise.cached"].WhichOneof("value") == "bool_value"
    assert attrs["gen_ai.output.messages"].string_value == "é" * 200
    assert tool.end_time_unix_nano - tool.start_time_unix_nano == 1500


def test_a_struggling_collector_is_retried_with_backoff_then_the_batch_is_dropped() -> None:
    statuses = [503, 429, 200, 500]
    bodies: list[bytes] = []
    waits: list[float] = []

    def post(body: bytes) -> int:
        bodies.append(body)
        return statuses.pop(0)

    sink = OtlpHttpSink(OtlpEncoder({}, "gatewise"), post, delay_s=60, sleep=waits.append)
    spans = some_spans()
    sink.on_end(spans[0])
    assert sink.force_flush()
    assert waits == [0.5, 1.0] and len(bodies) == 3 and sink.exported == 1
    sink.on_end(spans[1])
    sink.force_flush()  # 500: not worth retrying
    assert sink.dropped == 1 and len(bodies) == 4
    sink.shutdown()


def test_a_full_queue_drops_new_spans_instead_of_blocking_the_request() -> None:
    posted: list[bytes] = []

    def post(body: bytes) -> int:
        posted.append(body)
        return 200

    sink = OtlpHttpSink(OtlpEncoder({}, "gatewise"), post, queue=3, batch=100, delay_s=60)
    spans = some_spans()
    for s in spans:
        sink.on_end(s)
    assert sink.dropped == 1 and not posted
    sink.shutdown()
    assert sink.exported == 3


def test_a_span_that_cannot_be_encoded_is_dropped_alone_and_its_batch_still_goes_out() -> None:
    posted: list[bytes] = []

    def post(body: bytes) -> int:
        posted.append(body)
        return 200

    sink = OtlpHttpSink(OtlpEncoder(RESOURCE.attributes, "gatewise"), post, delay_s=60)
    spans = some_spans()
    spans[1].attributes["gatewise.note"] = "\ud800"  # a lone surrogate: no UTF-8 for it
    for s in spans:
        sink.on_end(s)  # queued as they are: the request never pays for (or fails on) this
    assert not posted and sink.dropped == 0
    assert sink.force_flush()
    good = [spans[0], *spans[2:]]
    assert posted == [official_bytes(good)]
    assert sink.exported == 3 and sink.dropped == 1
    sink.shutdown()


def test_without_an_endpoint_the_opentelemetry_variables_decide() -> None:
    assert default_endpoint({}) == "http://localhost:4318/v1/traces"
    assert default_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/"}) \
        == "http://otel:4318/v1/traces"
    assert default_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
                             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"}) \
        == "http://t:1/x"


def test_an_endpoint_that_is_not_an_http_url_is_a_config_error() -> None:
    from gatewise.config.loader import parse_config, resolve_config
    from gatewise.observability.tracing import build_tracing

    cfg, w = parse_config({"observability": {"tracing": {"enabled": True,
                                                          "endpoint": "localhost:4318"}}})
    resolved = resolve_config(cfg, None, {}, w)
    with pytest.raises(ConfigError, match=r"observability\.tracing\.endpoint: not an http"):
        build_tracing(resolved.config.observability.tracing)
