"""OpenTelemetry traces: one span per request with one CLIENT span per attempt under it, spans
for guards, the cache lookup and tool calls, the GenAI semantic-convention attributes, W3C
trace context continued from the client and sent upstream, prompt text only when an operator
opts in (and then masked), and nothing of OpenTelemetry loaded when tracing is off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ConfigError, PIIViolation, ProviderServerError
from gatewise.observability.tracing.attributes import header_carrier
from gatewise.observability.tracing.spans import RequestTrace
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.base import Target
from gatewise.testing import Reply, ScriptedProvider, tool_call
from gatewise.tools import ToolRegistry, run_tools
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict

SECRET_PROMPT = "CANARY-trace-prompt-51c2"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class RecordingProvider(ScriptedProvider):
    """A scripted provider that also keeps the headers each attempt's target carried."""

    def __init__(self, script: Any) -> None:
        super().__init__(script)
        self.headers: list[dict[str, str]] = []

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        self.headers.append(dict(target.headers))
        return await super().chat(req, target)


def traced(script: dict[str, Any], *, tracing: dict[str, Any] | None = None,
           provider: ScriptedProvider | None = None, **extra: Any
           ) -> tuple[Gateway, ScriptedProvider]:
    """Alias `x` served by scripted model `x`; spans kept in memory."""
    cfg, warnings = parse_config({
        "models": {m: [{"model": f"fake/{m}"}] for m in script},
        "storage": {"database": "memory"},
        "observability": {"tracing": {"enabled": True, "exporter": "memory", **(tracing or {})}},
        **extra})
    gw = Gateway(resolve_config(cfg, None, {}, warnings))
    provider = provider or ScriptedProvider(script)
    gw.pool.register("fake", provider)
    return gw, provider


def spans(gw: Gateway) -> dict[str, list[Any]]:
    assert gw.tracing is not None
    out: dict[str, list[Any]] = {}
    for s in gw.tracing.finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


def only(gw: Gateway, name: str) -> Any:
    found = spans(gw)[name]
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def every(gw: Gateway) -> list[Any]:
    assert gw.tracing is not None
    return list(gw.tracing.finished_spans())


def root(gw: Gateway) -> Any:
    assert gw.tracing is not None
    (found,) = [s for s in gw.tracing.finished_spans() if s.parent is None]
    return found


def client(gw: Gateway) -> list[Any]:
    """The attempt spans, in the order they started."""
    assert gw.tracing is not None
    return sorted((s for s in gw.tracing.finished_spans() if s.kind.name == "CLIENT"),
                  key=lambda s: s.start_time)


def chat_call(model: str, text: str = "hello", *, headers: list[tuple[bytes, bytes]] | None = None,
              **params: Any) -> Call:
    req = chat_request_from_dict({"model": model,
                                  "messages": [{"role": "user", "content": text}], **params})
    return Call("chat", req, request_headers=headers or ())


async def test_a_chat_is_a_request_span_over_one_attempt_span() -> None:
    gw, _ = traced({"m": "Hi there friend"})
    call = chat_call("m", max_tokens=50, temperature=0.2, top_p=0.9)
    await gw.run(call)
    request, attempt = root(gw), client(gw)[0]
    assert request.name == attempt.name == "chat m"  # the alias and the model share a name
    assert request.kind.name == "INTERNAL" and attempt.kind.name == "CLIENT"
    assert attempt.parent.span_id == request.context.span_id
    assert attempt.context.trace_id == request.context.trace_id
    assert isinstance(call.span, RequestTrace)
    assert call.span.trace_id == format(request.context.trace_id, "032x")
    assert len(call.span.trace_id) == 32
    r = request.attributes
    assert r["gen_ai.operation.name"] == "chat"
    assert r["gen_ai.request.model"] == "m"
    assert r["gen_ai.request.max_tokens"] == 50
    assert r["gen_ai.request.temperature"] == 0.2 and r["gen_ai.request.top_p"] == 0.9
    assert r["gen_ai.provider.name"] == r["gen_ai.system"] == "fake"
    assert r["gen_ai.response.model"] == "m"
    assert r["gen_ai.response.id"] == "chatcmpl-scripted-1"
    assert r["gen_ai.response.finish_reasons"] == ("stop",)
    assert (r["gen_ai.usage.input_tokens"], r["gen_ai.usage.output_tokens"]) == (10, 2)
    assert r["gatewise.deployment"] == "m:fake/m" and r["gatewise.alias"] == "m"
    assert r["gatewise.request_id"] == call.request_id
    a = attempt.attributes
    assert a["gen_ai.request.model"] == "m" and a["gatewise.attempt"] == 1
    assert a["gatewise.deployment"] == "m:fake/m"
    assert "gatewise.attempt.reason" not in a
    assert request.status.status_code.name == "UNSET"
    await gw.aclose()


async def test_a_stream_span_ends_when_the_stream_does_with_time_to_first_chunk() -> None:
    gw, _ = traced({"m": "one two three"})
    call = chat_call("m", stream=True)
    stream = await gw.run(call)
    assert isinstance(stream, ChunkStream)
    assert gw.tracing is not None and gw.tracing.finished_spans() == ()  # still streaming
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "one two three"
    request, attempt = root(gw), client(gw)[0]
    for s in (request, attempt):
        assert s.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert s.attributes["gen_ai.response.id"] == "chatcmpl-scripted-1"
        assert 0 < s.attributes["gen_ai.response.time_to_first_chunk"] < 5
        assert s.attributes["gen_ai.usage.output_tokens"] == 2
    assert request.attributes["gen_ai.request.stream"] is True
    assert request.end_time >= attempt.end_time
    await gw.aclose()


async def test_an_abandoned_stream_ends_its_spans_as_cancelled() -> None:
    gw, _ = traced({"m": "many words in this streamed answer"})
    stream = await gw.run(chat_call("m", stream=True))
    assert isinstance(stream, ChunkStream)
    await stream.__anext__()
    await stream.aclose()  # the client left
    for s in (root(gw), client(gw)[0]):
        assert s.attributes["error.type"] == "cancelled"
        assert s.status.status_code.name == "ERROR"
    await gw.aclose()


async def test_a_retry_then_success_is_two_attempts_the_second_saying_why() -> None:
    gw, _ = traced({"m": [Reply(error=ProviderServerError), "fine"]},
                   router={"retry": {"max_retries": 1, "base_delay_s": 0},
                           "breaker": {"enabled": False}})
    await gw.run(chat_call("m"))
    attempts = client(gw)
    assert [s.attributes["gatewise.attempt"] for s in attempts] == [1, 2]
    first, second = attempts
    assert first.status.status_code.name == "ERROR"
    assert first.attributes["error.type"] == "ProviderServerError"
    assert second.attributes["gatewise.attempt.reason"] == "retry"
    assert second.attributes["gatewise.previous_error.type"] == "ProviderServerError"
    assert second.status.status_code.name == "UNSET"
    request = root(gw)
    assert {s.parent.span_id for s in attempts} == {request.context.span_id}
    assert request.attributes["gatewise.attempts"] == 2
    await gw.aclose()


async def test_a_fallback_attempt_names_the_other_alias_and_the_reason() -> None:
    gw, _ = traced({"a": Reply(error=ProviderServerError), "b": "from b"},
                   router={"retry": {"max_retries": 0}, "breaker": {"enabled": False},
                           "fallbacks": {"a": ["b"]}})
    await gw.run(chat_call("a"))
    attempts = client(gw)
    assert [s.name for s in attempts] == ["chat a", "chat b"]
    assert attempts[0].attributes["error.type"] == "ProviderServerError"
    assert attempts[1].attributes["gatewise.attempt.reason"] == "fallback"
    assert attempts[1].attributes["gatewise.fallback.reason"] == "outage"
    assert attempts[1].attributes["gatewise.alias"] == "b"
    request = root(gw)
    assert request.name == "chat a"  # named for what the client asked
    assert request.attributes["gatewise.alias"] == "b"
    assert request.attributes["gatewise.deployment"] == "b:fake/b"
    await gw.aclose()


async def test_a_failed_request_carries_the_error_type_and_never_its_message() -> None:
    gw, _ = traced({"m": Reply(error=ProviderServerError)},
                   router={"retry": {"max_retries": 0}, "breaker": {"enabled": False}})
    with pytest.raises(ProviderServerError):
        await gw.run(chat_call("m"))
    request = root(gw)
    assert request.status.status_code.name == "ERROR"
    assert request.attributes["error.type"] == "ProviderServerError"
    assert request.status.description == "ProviderServerError"
    assert not request.events  # no exception event: its message may quote the request
    await gw.aclose()


async def test_a_cache_hit_is_a_lookup_span_and_no_attempt() -> None:
    gw, provider = traced({"m": "cached answer"}, cache={"enabled": True})
    await gw.run(chat_call("m", "same question", temperature=0))
    assert gw.tracing is not None
    gw.tracing.clear_spans()
    await gw.run(chat_call("m", "same question", temperature=0))
    assert len(provider.requests) == 1
    lookup = only(gw, "cache lookup")
    assert lookup.attributes["gatewise.cache.result"] == "hit"
    request = only(gw, "chat m")
    assert lookup.parent.span_id == request.context.span_id
    assert request.attributes["gatewise.cache"] == "hit"
    assert request.attributes["gatewise.attempts"] == 0
    assert not client(gw)
    await gw.aclose()


async def test_a_cache_miss_span_covers_the_lookup_not_the_provider_call() -> None:
    gw, _ = traced({"m": Reply(content="slow", delay_s=0.05)}, cache={"enabled": True})
    await gw.run(chat_call("m", temperature=0))
    lookup = only(gw, "cache lookup")
    (attempt,) = client(gw)
    assert lookup.attributes["gatewise.cache.result"] == "miss"
    assert lookup.end_time <= attempt.start_time  # a sibling before it, not its parent
    assert attempt.parent.span_id == lookup.parent.span_id
    await gw.aclose()


async def test_prompt_text_stays_off_spans_unless_an_operator_opts_in() -> None:
    gw, _ = traced({"m": f"echo {SECRET_PROMPT}"})
    await gw.run(chat_call("m", f"please keep {SECRET_PROMPT} private"))
    for s in every(gw):
        assert SECRET_PROMPT not in repr(dict(s.attributes)) + s.name
        assert "gen_ai.input.messages" not in s.attributes
    await gw.aclose()


async def test_captured_content_is_the_masked_request_and_a_pii_block_is_a_guard_span() -> None:
    gw, _ = traced({"m": "noted"}, tracing={"capture_content": True, "max_content_chars": 400},
                   guardrails={"default": {"pii": {"ner": False,
                                                    "entities": {"IBAN_CODE": "block"}}}})
    await gw.run(chat_call("m", "write to jane.doe@example.com today"))
    (attempt,) = client(gw)
    sent = attempt.attributes["gen_ai.input.messages"]
    assert "<EMAIL_1>" in sent and "jane.doe@example.com" not in sent
    assert attempt.attributes["gen_ai.output.messages"].startswith('[{"role":"assistant"')
    for s in every(gw):
        assert "jane.doe@example.com" not in repr(dict(s.attributes))
    guard = only(gw, "guard pii")
    assert guard.attributes["gatewise.guard.decision"] == "mask"
    assert only(gw, "guard pii output").attributes["gatewise.guard.phase"] == "output"

    assert gw.tracing is not None
    gw.tracing.clear_spans()
    with pytest.raises(PIIViolation):
        await gw.run(chat_call("m", "pay to DE89370400440532013000 now"))
    guard = only(gw, "guard pii")
    assert guard.attributes["gatewise.guard.decision"] == "block"
    assert guard.attributes["error.type"] == "PIIViolation"
    request = only(gw, "chat m")
    assert request.attributes["error.type"] == "PIIViolation"
    assert not client(gw)
    await gw.aclose()


async def test_content_is_cut_to_max_content_chars() -> None:
    gw, _ = traced({"m": "x " * 200}, tracing={"capture_content": True, "max_content_chars": 40})
    await gw.run(chat_call("m", "y " * 200))
    (attempt,) = client(gw)
    assert len(attempt.attributes["gen_ai.input.messages"]) == 41  # 40 and the ellipsis
    assert len(attempt.attributes["gen_ai.output.messages"]) == 41
    await gw.aclose()


async def test_the_clients_traceparent_is_continued_and_sent_upstream() -> None:
    provider = RecordingProvider("ok")
    gw, _ = traced({"m": "ok"}, provider=provider)
    headers = [(b"traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode()),
               (b"tracestate", b"vendor=abc")]
    call = chat_call("m", headers=headers)
    await gw.run(call)
    (request,) = [s for s in every(gw) if s.kind.name == "SERVER"]
    (attempt,) = client(gw)
    assert format(request.context.trace_id, "032x") == CLIENT_TRACE
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN and request.parent.is_remote
    assert call.span is not None and call.span.trace_id == CLIENT_TRACE
    sent = provider.headers[0]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{format(attempt.context.span_id, '016x')}-01"
    assert provider.headers[0]["tracestate"] == "vendor=abc"
    # The deployment's own target is untouched: the header rode on a per-attempt copy.
    assert "traceparent" not in gw.deployments()[0].target.headers
    await gw.aclose()


def test_the_trace_context_is_read_from_the_raw_headers_and_needs_a_traceparent() -> None:
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode()
    assert header_carrier([(b"host", b"gw"), (b"tracestate", b"vendor=abc")]) is None
    assert header_carrier([(b"traceparent", b"stale"), (b"host", b"gw"),
                           (b"traceparent", parent)]) \
        == {"traceparent": parent.decode()}  # a repeated header: the last one wins
    assert header_carrier([(b"tracestate", b"vendor=\xe9"), (b"traceparent", parent)]) \
        == {"traceparent": parent.decode(), "tracestate": "vendor=\xe9"}  # latin-1, as sent


async def test_propagation_upstream_can_be_turned_off() -> None:
    provider = RecordingProvider("ok")
    gw, _ = traced({"m": "ok"}, provider=provider, tracing={"propagate_upstream": False})
    await gw.run(chat_call("m"))
    assert "traceparent" not in provider.headers[0]
    await gw.aclose()


async def test_a_sampled_out_request_keeps_its_trace_id_and_records_nothing() -> None:
    provider = RecordingProvider("ok")
    gw, _ = traced({"m": "ok"}, provider=provider, tracing={"sample_ratio": 0.0})
    call = chat_call("m")
    await gw.run(call)
    assert gw.tracing is not None and gw.tracing.finished_spans() == ()
    assert call.span is not None and len(call.span.trace_id) == 32
    version, trace_id, parent_id, flags = provider.headers[0]["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1 == 0  # "not sampled", said upstream too
    assert trace_id == call.span.trace_id  # the same trace the request log line names
    assert len(parent_id) == 16 and int(parent_id, 16) != 0  # the attempt's own span id
    assert parent_id != f"{call.span.span_context.span_id:016x}"
    await gw.aclose()


async def test_the_clients_sampling_decision_wins_over_the_ratio() -> None:
    provider = RecordingProvider("ok")
    gw, _ = traced({"m": "ok"}, provider=provider, tracing={"sample_ratio": 0.0})
    await gw.run(chat_call("m", headers=[(b"traceparent",
                                          f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode())]))
    assert [s.kind.name for s in every(gw)] == ["CLIENT", "SERVER"]  # sampled by the client

    loud, _ = traced({"m": "ok"}, provider=provider)  # ratio 1, but the client said no
    await loud.run(chat_call("m", headers=[(b"traceparent",
                                            f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00".encode())]))
    assert every(loud) == []
    assert provider.headers[-1]["traceparent"].startswith(f"00-{CLIENT_TRACE}-")
    assert provider.headers[-1]["traceparent"].endswith("-00")
    await gw.aclose()
    await loud.aclose()


async def test_a_tool_loop_is_an_agent_span_over_its_turns_and_tool_calls() -> None:
    registry = ToolRegistry()

    @registry.register
    def balance(account: str) -> str:
        """Balance of an account."""
        return "120 EUR"

    gw, _ = traced({"m": [tool_call("balance", {"account": "A1"}), "You have 120 EUR."]})
    out = await run_tools(gw, messages=[{"role": "user", "content": "balance?"}],
                          registry=registry, identity=Call("chat", chat_call("m").request).identity,
                          model="m")
    assert out.content == "You have 120 EUR."
    agent = only(gw, "invoke_agent run_tools")
    tool = only(gw, "execute_tool balance")
    turns = [s for s in spans(gw)["chat m"] if s.kind.name == "INTERNAL"]
    assert len(turns) == 2
    assert {s.parent.span_id for s in [tool, *turns]} == {agent.context.span_id}
    assert tool.attributes["gen_ai.tool.name"] == "balance"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1_0"
    assert "120 EUR" not in repr(dict(tool.attributes))
    await gw.aclose()


async def test_a_call_inside_an_applications_span_continues_it_and_restores_its_context(
) -> None:
    from opentelemetry import context, trace

    gw, _ = traced({"m": "ok"})
    app_span = trace.NonRecordingSpan(trace.SpanContext(
        int(CLIENT_TRACE, 16), int(CLIENT_SPAN, 16), False, trace.TraceFlags(1)))
    token = context.attach(trace.set_span_in_context(app_span))
    try:
        current = context.get_current()
        await gw.run(chat_call("m"))
        assert context.get_current() is current  # the request's context is current only inside
    finally:
        context.detach(token)
    (request,) = [s for s in every(gw) if s.kind.name == "INTERNAL"]
    assert format(request.context.trace_id, "032x") == CLIENT_TRACE
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN
    assert client(gw)[0].parent.span_id == request.context.span_id
    await gw.aclose()


async def test_each_gateway_has_its_own_provider_and_leaves_the_global_one_alone() -> None:
    from opentelemetry import trace

    before = trace.get_tracer_provider()
    one, _ = traced({"m": "ok"})
    two, _ = traced({"m": "ok"})
    await one.run(chat_call("m"))
    assert two.tracing is not None and two.tracing.finished_spans() == ()
    assert len(every(one)) == 2
    assert trace.get_tracer_provider() is before
    await one.aclose()
    await two.aclose()


def test_export_headers_are_secret_references_resolved_at_load() -> None:
    data = {"observability": {"tracing": {"enabled": True, "endpoint": "http://127.0.0.1:9/v1/traces",
                                          "headers": {"x-api-key": "env:OTLP_KEY"}}}}
    cfg, w = parse_config(data)
    resolved = resolve_config(cfg, None, {"OTLP_KEY": "s3cret"}, w)
    assert resolved.tracing_headers == {"x-api-key": "s3cret"}
    assert "s3cret" not in repr(resolved)
    with pytest.raises(ConfigError, match=r"observability\.tracing\.headers\.x-api-key"):
        resolve_config(cfg, None, {}, w)


def test_tracing_off_builds_no_stage_and_imports_no_opentelemetry() -> None:
    code = textwrap.dedent("""
        import asyncio, sys
        from gatewise import Gateway
        from gatewise.config.loader import parse_config, resolve_config
        cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                               "storage": {"database": "memory"}})
        gw = Gateway(resolve_config(cfg, None, {}, w))
        async def main():
            r = await gw.chat("hi", model="m")
            assert r.content == "Hello! You said: hi"
            await gw.aclose()
        asyncio.run(main())
        assert gw.tracing is None
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print("loaded:", loaded)
        assert not loaded, loaded
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded: []" in out.stdout


async def test_retrieval_is_a_span_naming_the_collection_and_its_hits() -> None:
    pytest.importorskip("usearch")
    from gatewise.guardrails.injection import InjectionDetector
    from gatewise.pipeline.core import ANONYMOUS
    from gatewise.rag.types import LoadedDocument, Section

    gw, _ = traced({"kb": "Employees get 25 days [1]."},
                   rag={"store": "memory", "aliases": {"kb": {"collection": "hr", "k": 2}}})
    gw.rag_answers.scanner = InjectionDetector(learned=False)  # heuristics only: no training
    await gw.rag.create_collection(ANONYMOUS, "hr")
    await gw.rag.ingest(ANONYMOUS, "hr", [LoadedDocument("leave.md", (Section(
        "Employees get 25 days of paid leave per year.", path=("Leave",)),), {})])
    await gw.run(chat_call("kb", "how many days of paid leave do employees get?"))
    retrieval = only(gw, "retrieval hr")
    request = root(gw)
    assert retrieval.parent.span_id == request.context.span_id
    assert retrieval.attributes["gen_ai.data_source.id"] == "hr"
    assert retrieval.attributes["gatewise.rag.k"] == 2
    assert retrieval.attributes["gatewise.rag.hits"] == 1
    (attempt,) = client(gw)
    assert retrieval.end_time <= attempt.start_time  # the search, not the answer
    await gw.aclose()
