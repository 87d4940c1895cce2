"""Traces end to end over HTTP: the official `openai` SDK sends a W3C `traceparent`, the
gateway continues that trace, the upstream (a fake OpenAI host over HTTP) receives a
`traceparent` of the same trace, and the spans reach an OTLP/HTTP collector (a local
receiver decoding the protobuf), with the export headers resolved from secret references."""

from __future__ import annotations

import openai
from opentelemetry.sdk.resources import Resource

from gatewise.observability.tracing.export import HttpPoster, OtlpHttpSink
from gatewise.observability.tracing.otlp import OtlpEncoder
from tests.fakes.gateway import GatewayServer
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.server import FakeServer
from tests.fakes.spans import some_spans

MASTER = "sk-gatewise-test-master"
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
STREAM_TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"


def test_the_clients_trace_runs_through_the_gateway_to_the_upstream_and_the_collector(
        openai_fake: FakeServer) -> None:
    dep = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    with OtlpReceiver() as rx:
        config = {
            "models": {"gpt": [{"model": "openai/gpt-4o-mini", **dep}]},
            "server": {"master_key": MASTER},
            "storage": {"database": "memory"},
            "observability": {"tracing": {
                "enabled": True, "endpoint": rx.endpoint, "service_name": "gw-test",
                "headers": {"x-collector-key": "env:COLLECTOR_KEY"}}},
        }
        with GatewayServer(config, env={"COLLECTOR_KEY": "collector-s3cret"}) as gw:
            before = len(openai_fake.requests)
            with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0,
                               default_headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}) as c:
                out = c.chat.completions.create(
                    model="gpt", messages=[{"role": "user", "content": "trace me"}],
                    max_tokens=30)
                assert out.choices[0].message.content == "Hello! You said: trace me"
                chunks = list(c.chat.completions.create(
                    model="gpt", messages=[{"role": "user", "content": "stream me"}],
                    stream=True, extra_headers={
                        "traceparent": f"00-{STREAM_TRACE}-{PARENT}-01"}))
                assert chunks
            upstream = openai_fake.requests[before:]
        # The server has shut down: the gateway closed and flushed its batched spans.

    sent = [r.headers.get("traceparent", "") for r in upstream]
    assert [tp.split("-")[1] for tp in sent] == [TRACE, STREAM_TRACE]
    by_trace = {TRACE: [s for s in rx.spans if s.trace_id == TRACE],
                STREAM_TRACE: [s for s in rx.spans if s.trace_id == STREAM_TRACE]}
    for trace_id, tp in zip((TRACE, STREAM_TRACE), sent, strict=True):
        (server,) = [s for s in by_trace[trace_id] if s.kind == "SERVER"]
        (attempt,) = [s for s in by_trace[trace_id] if s.kind == "CLIENT"]
        assert server.name == "chat gpt" and server.parent_span_id == PARENT
        assert attempt.parent_span_id == server.span_id
        assert tp.split("-")[2] == attempt.span_id  # the upstream's parent is the attempt
        assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["server.port"] == openai_fake.port
        assert server.attributes["gen_ai.provider.name"] == "openai"
        assert server.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert server.resource["service.name"] == "gw-test"
    plain = next(s for s in by_trace[TRACE] if s.kind == "SERVER")
    assert plain.attributes["gen_ai.request.max_tokens"] == 30
    assert plain.attributes["gen_ai.usage.output_tokens"] == 5
    streamed = next(s for s in by_trace[STREAM_TRACE] if s.kind == "SERVER")
    assert streamed.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert rx.headers and all(h.get("x-collector-key") == "collector-s3cret" for h in rx.headers)
    assert all("trace me" not in repr(s.attributes) for s in rx.spans)


def test_batches_reach_a_collector_over_http_with_the_configured_headers() -> None:
    with OtlpReceiver() as rx:
        poster = HttpPoster(rx.endpoint, {"x-collector-key": "k1"}, timeout_s=5)
        encoder = OtlpEncoder(Resource.create({"service.name": "gw-test"}).attributes, "gatewise")
        sink = OtlpHttpSink(encoder, poster.post, batch=2, delay_s=60, on_close=poster.close)
        for s in some_spans():
            sink.on_end(s)
        sink.shutdown()  # exports what is left
    assert sorted(s.name for s in rx.spans) == ["chat gpt", "chat gpt-4o", "chat gpt-4o",
                                                "execute_tool balance"]
    assert sink.exported == 4 and sink.dropped == 0
    assert all(h["x-collector-key"] == "k1" for h in rx.headers)
    assert all(h["content-type"] == "application/x-protobuf" for h in rx.headers)
