"""Traces end to end over HTTP: the official `openai` SDK sends a W3C `traceparent`, the
gateway continues that trace, the upstream (a fake OpenAI host over HTTP) receives a
`traceparent` of the same trace, and the spans reach an OTLP/HTTP collector (a local
receiver decoding the protobuf), with the export headers resolved from secret references."""

from __future__ import annotations

import http.client
import socket
import threading

import openai
import pytest
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


class ScriptedCollector:
    """A raw TCP server answering each request it reads (head and Content-Length body) with
    the next of `answers`, verbatim; closes the connection after an answer when told to. Keeps
    the requests (head, body) and counts the connections."""

    def __init__(self, answers: list[tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1/traces"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buf = b""
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    n = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                 if line.lower().startswith(b"content-length")))
                    while len(buf) < n:
                        buf += conn.recv(65536)
                    self.requests.append((head, buf[:n]))
                    buf = buf[n:]
                    answer, close = self.answers.pop(0)
                    try:
                        conn.sendall(answer)
                    except OSError:  # the poster hung up mid-answer (one it refuses to read
                        break        # to the end): on to its next connection, as a server would
                    if close:
                        break

    def close(self) -> None:
        self._listener.close()


def test_the_poster_keeps_its_connection_and_reads_every_kind_of_answer() -> None:
    """Content-Length, chunked (with a trailer) and no-length answers, keep-alive and close:
    each post gets its status, and the connection is reused until the collector closes it."""
    collector = ScriptedCollector([
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n", False),
        (b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nConnection: close\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\n\r\nbody to the end", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    ])
    poster = HttpPoster(collector.endpoint, {"x-collector-key": "k1"}, timeout_s=5)
    try:
        assert [poster.post(b"span-%d" % i) for i in range(5)] == [200, 200, 503, 200, 204]
    finally:
        poster.close()
        collector.close()
    assert collector.connections == 3  # kept alive, reopened after each close
    assert [body for _, body in collector.requests] == [b"span-%d" % i for i in range(5)]
    head = collector.requests[0][0].decode().split("\r\n")
    assert head[0] == "POST /v1/traces HTTP/1.1"
    assert {"x-collector-key: k1", "Content-Type: application/x-protobuf",
            "Content-Length: 6"} <= set(head[1:])


def test_a_malformed_answer_is_an_export_failure_not_a_crash() -> None:
    collector = ScriptedCollector([(b"SMTP ready\r\n\r\n", True),
                                   (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False)])
    poster = HttpPoster(collector.endpoint, {}, timeout_s=5)
    try:
        with pytest.raises(http.client.HTTPException):
            poster.post(b"x")
        assert poster.post(b"y") == 200  # a new connection after the bad one
    finally:
        poster.close()
        collector.close()


@pytest.mark.parametrize(("answer", "close"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n" + b"x" * 1000, False),
    (b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * (2 << 20), True),
], ids=["content-length", "chunked", "to-the-end"])
def test_an_endless_answer_is_read_no_further_than_a_megabyte(answer: bytes, close: bool) -> None:
    """A collector that announces or streams a huge answer cannot hold the export thread
    until its timeout or fill its memory: the post fails at once (the announced size is
    refused before reading; an unannounced one after a megabyte), the next one reconnects."""
    collector = ScriptedCollector([(answer, close),
                                   (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False)])
    poster = HttpPoster(collector.endpoint, {}, timeout_s=5)
    try:
        with pytest.raises(http.client.HTTPException):
            poster.post(b"x")
        assert poster.post(b"y") == 200
    finally:
        poster.close()
        collector.close()


def test_export_headers_cannot_smuggle_lines_into_the_request() -> None:
    with pytest.raises(ValueError, match="invalid OTLP export header"):
        HttpPoster("http://127.0.0.1:4318/v1/traces", {"x-key": "a\r\nHost: evil"}, 5)
