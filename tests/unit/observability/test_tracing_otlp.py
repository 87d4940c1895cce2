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
from opentelemetry.trace import SpanKind

from gatewise.errors import ConfigError
from gatewise.observability.tracing.attributes import answer_attributes, answer_block
from gatewise.observability.tracing.export import OtlpHttpSink, default_endpoint
from gatewise.observability.tracing.otlp import OtlpEncoder
from gatewise.observability.tracing.recorder import (
    AttributeBlock,
    RecordedSpan,
    SdkSink,
    SpanRecorder,
)
from gatewise.types.embeddings import EmbeddingResponse, EmbeddingUsage
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage
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


def test_unique_values_and_unhashable_ones_encode_as_the_official_encoder_does() -> None:
    """Request ids and costs are appended to their keys' kept bytes (never cached); a list
    value cannot be a cache key, so its span's attributes take the uncached path."""
    keep = Keep()
    rec = SpanRecorder(keep, 1.0)
    for i in range(3):
        span = rec.start_span("chat gpt")
        span.set_attributes({"gatewise.request_id": f"req_{i}", "gatewise.cost_usd": i / 7,
                             "gatewise.attempts": 1, "gen_ai.response.id": "x" * (100 + i * 60)})
        if i == 1:
            span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        span.end()
    encoder = OtlpEncoder(RESOURCE.attributes, "gatewise")
    assert encoder.encode(keep.spans) == official_bytes(keep.spans)
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


def blocked_spans() -> tuple[list[RecordedSpan], AttributeBlock]:
    """A request span and two attempts sharing a deployment's block, the second attempt and
    the request sharing a response's block, each with attributes of its own."""
    keep = Keep()
    rec = SpanRecorder(keep, 1.0)
    deployment = AttributeBlock({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                 "gen_ai.request.model": "gpt-4o", "server.port": 443})
    response = AttributeBlock({"gen_ai.response.id": "chatcmpl-1",
                               "gen_ai.response.finish_reasons": ("stop",),
                               "gen_ai.usage.output_tokens": 7})
    request = rec.start_span("chat gpt", kind=SpanKind.SERVER)
    assert isinstance(request, RecordedSpan)
    request.set_attribute("gatewise.request_id", "req_1")
    ctx = request.get_span_context()
    for n, blocks in ((1, (deployment,)), (2, (deployment, response))):
        attempt = rec.start_span("chat gpt-4o", kind=SpanKind.CLIENT, parent=ctx)
        assert isinstance(attempt, RecordedSpan)
        attempt.attributes = {"gatewise.attempt": n, "gen_ai.request.temperature": 0.2}
        attempt.blocks = blocks
        attempt.end()
    request.blocks = (AttributeBlock({"gatewise.alias": "gpt"}), response)
    request.end()
    return keep.spans, deployment


def test_attribute_blocks_encode_as_if_every_span_carried_them_itself() -> None:
    """A block shared by spans is written into each (first, then the span's own attributes)
    from bytes encoded once, by whichever encoder met it first."""
    spans, deployment = blocked_spans()
    first = OtlpEncoder(RESOURCE.attributes, "gatewise")
    assert first.encode(spans) == official_bytes(spans)
    assert deployment.encoded is not None  # kept on the block...
    other = OtlpEncoder(RESOURCE.attributes, "gatewise")
    assert other.encode(spans) == official_bytes(spans)  # ... and right for any encoder
    req = ExportTraceServiceRequest()
    req.ParseFromString(other.encode(spans))
    first_attempt, second_attempt, request = req.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in second_attempt.attributes] == [
        "gen_ai.operation.name", "gen_ai.system", "gen_ai.request.model", "server.port",
        "gen_ai.response.id", "gen_ai.response.finish_reasons", "gen_ai.usage.output_tokens",
        "gatewise.attempt", "gen_ai.request.temperature"]
    assert {a.key: a.value.int_value for a in first_attempt.attributes}["gatewise.attempt"] == 1
    assert [a.key for a in request.attributes] == [
        "gatewise.alias", "gen_ai.response.id", "gen_ai.response.finish_reasons",
        "gen_ai.usage.output_tokens", "gatewise.request_id"]


def answer_spans(usage: Usage | None, result: object) -> list[RecordedSpan]:
    """An attempt and its request span sharing the block of the attempt's answer, as the
    span stages make it."""
    keep = Keep()
    rec = SpanRecorder(keep, 1.0)
    answer = answer_block(result, usage)
    request = rec.start_span("chat gpt", kind=SpanKind.SERVER)
    assert isinstance(request, RecordedSpan)
    attempt = rec.start_span("chat gpt-4o", kind=SpanKind.CLIENT,
                             parent=request.get_span_context())
    assert isinstance(attempt, RecordedSpan)
    attempt.blocks = (AttributeBlock({"gen_ai.system": "openai"}), answer)
    attempt.end()
    request.blocks = (answer,)
    request.set_attribute("gatewise.request_id", "req_1")
    request.end()
    return keep.spans


def _completion(rid: str, model: str, reasons: list[str | None]) -> ChatCompletion:
    return ChatCompletion(id=rid, created=1, model=model, choices=[
        Choice(index=i, message=ResponseMessage(content="hi"), finish_reason=r)
        for i, r in enumerate(reasons)])


@pytest.mark.parametrize(("usage", "result"), [
    (Usage(prompt_tokens=19, completion_tokens=24, total_tokens=43),
     _completion("chatcmpl-1", "gpt-4o-2024-08-06", ["stop"])),
    # counts past one byte of varint, an id too long for the kept heads, several choices
    (Usage(prompt_tokens=131_072, completion_tokens=300, total_tokens=131_372),
     _completion("chatcmpl-" + "x" * 200, "gpt-4o", ["length", None, "tool_calls"])),
    # no usage, no id, no model, no finish reason: nothing of them is written
    (None, _completion("", "", [None])),
    (Usage(prompt_tokens=5, completion_tokens=0, total_tokens=5),
     EmbeddingResponse(data=[], model="text-embedding-3-small", usage=EmbeddingUsage())),
    (None, None),
])
def test_an_answers_block_encodes_as_its_attributes_would(usage: Usage | None,
                                                          result: object) -> None:
    """The answer's block is written in a fixed layout, not from a dict: the bytes are still
    the official encoder's for the same attributes, in the same order, whichever values it
    holds, and the same again from the encoder's kept entries."""
    encoder = OtlpEncoder(RESOURCE.attributes, "gatewise")
    for _ in range(2):
        spans = answer_spans(usage, result)
        assert encoder.encode(spans) == official_bytes(spans)
    expected: dict[str, object] = {}
    answer_attributes(result, usage, expected)  # type: ignore[arg-type]
    assert spans[0].all_attributes == {"gen_ai.system": "openai", **expected}


def test_setting_a_blocks_key_on_one_span_changes_that_span_alone_and_says_it_once() -> None:
    spans, deployment = blocked_spans()
    keep = Keep()
    rec = SpanRecorder(keep, 1.0)
    span = rec.start_span("chat gpt-4o", kind=SpanKind.CLIENT)
    assert isinstance(span, RecordedSpan)
    span.blocks = (deployment,)
    span.set_attribute("gen_ai.system", "azure")  # an application's own say, on this span
    span.end()
    assert span.all_attributes["gen_ai.system"] == "azure"
    assert deployment.attributes["gen_ai.system"] == "openai"  # the others' block as it was
    req = ExportTraceServiceRequest()
    req.ParseFromString(OtlpEncoder(RESOURCE.attributes, "gatewise").encode([*spans, span]))
    *_, changed = req.resource_spans[0].scope_spans[0].spans
    keys = [a.key for a in changed.attributes]
    assert keys.count("gen_ai.system") == 1
    assert {a.key: a.value.string_value for a in changed.attributes}["gen_ai.system"] == "azure"
    assert OtlpEncoder(RESOURCE.attributes, "gatewise").encode([span]) == official_bytes([span])
