"""Recorded Anthropic wire bodies (messages, SSE captures, error bodies) → exact canonical results.

Replayed through `HttpProviderClient` over a `ReplayTransport`: no sockets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    RateLimitedError,
)
from gatewise.providers.anthropic.adapter import AnthropicAdapter
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.transport.base import ProtocolError
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.transport.sse import SSEDecoder
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.responses import (
    ChatCompletion,
    Choice,
    PromptTokensDetails,
    ResponseMessage,
    Usage,
)
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)
from gatewise.types.validation import chat_request_from_dict

RECORDED = Path(__file__).parent / "recorded"
SSE = {"content-type": "text/event-stream; charset=utf-8"}
TARGET = Target(provider="anthropic", wire="anthropic", model="claude-sonnet-4-20250514",
                api_base="https://api.anthropic.com", api_key="sk-ant-api03-test",
                auth="x-api-key")
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                                   "temperature_c": {"type": "number"}}}


def _recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def _request(stream: bool = False, **extra: Any):
    return chat_request_from_dict({"model": "claude", "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}], **extra})


async def _chat(name: str, **extra: Any) -> ChatCompletion:
    client = HttpProviderClient(AnthropicAdapter(), ReplayTransport(Recorded(body=_recorded(name))))
    return await client.chat(_request(**extra), TARGET)


async def _stream(rec: Recorded, **extra: Any) -> list[ChatCompletionChunk]:
    client = HttpProviderClient(AnthropicAdapter(), ReplayTransport(rec))
    return [c async for c in client.stream(_request(stream=True, **extra), TARGET)]


def _usage(prompt: int, completion: int, cached: int = 0, created: int = 0) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=cached,
                                                           cache_creation_tokens=created))


def _completion(out: ChatCompletion, msg_id: str, model: str, message: ResponseMessage,
                finish: str, usage: Usage) -> ChatCompletion:
    return ChatCompletion(id=msg_id, created=out.created, model=model,
                          choices=[Choice(index=0, message=message, finish_reason=finish)],
                          usage=usage)


async def test_text_blocks_join_into_content_and_cache_counts_join_the_prompt():
    out = await _chat("message_text.json")
    assert out == _completion(
        out, "msg_01XFDUDYJgAACzvnptvVoYEL", "claude-sonnet-4-20250514",
        ResponseMessage(content="Hello! It's nice to meet you. How can I help you today?"),
        "stop", _usage(12 + 2048 + 1024, 18, cached=2048, created=1024))
    assert out.created > 0


async def test_tool_use_blocks_become_tool_calls_with_json_string_arguments():
    out = await _chat("message_tool_use.json")
    assert out == _completion(
        out, "msg_01Aq9w938a90dw8q", "claude-sonnet-4-20250514",
        ResponseMessage(
            content="I'll check the current weather and time in Paris for you.",
            tool_calls=[
                ToolCall(id="toolu_01A09q90qw90lq917835lq9", type="function",
                         function=FunctionCall(
                             name="get_weather",
                             arguments='{"location":"Paris, France","unit":"celsius"}')),
                ToolCall(id="toolu_01BwQbhbZJR7uKSmVWjLomSC", type="function",
                         function=FunctionCall(name="get_time",
                                               arguments='{"timezone":"Europe/Paris"}')),
            ]),
        "tool_calls", _usage(482, 112))


async def test_a_tool_call_alone_leaves_content_null():
    out = await _chat("message_tool_only.json")
    msg = out.choices[0].message
    assert msg.content is None
    assert msg.tool_calls == [ToolCall(id="toolu_01Ks6V5rEJcfZ4d2hcJ6ySCF", type="function",
                                       function=FunctionCall(name="list_files", arguments="{}"))]
    assert out.model == "claude-3-5-haiku-20241022"


async def test_thinking_blocks_are_kept_out_and_max_tokens_means_length():
    out = await _chat("message_thinking.json")
    assert out.choices[0].message == ResponseMessage(
        content="Crimson leaves drifting,\nwhispers of the cooling wind,")
    assert out.choices[0].finish_reason == "length"


async def test_a_refusal_stop_is_a_content_filter_finish():
    out = await _chat("message_refusal.json")
    assert out.choices[0].finish_reason == "content_filter"
    assert out.choices[0].message.content == "I can't help with that."


async def test_the_synthetic_json_tool_comes_back_as_json_content_with_a_stop_finish():
    out = await _chat("message_json_tool.json", response_format={
        "type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA}})
    choice = out.choices[0]
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert json.loads(choice.message.content or "") == {
        "city": "Paris", "temperature_c": 18.5, "conditions": ["cloudy", "light rain"]}


async def test_a_json_response_tool_is_an_ordinary_tool_call_when_no_json_output_was_asked():
    out = await _chat("message_json_tool.json")
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls is not None
    assert out.choices[0].message.tool_calls[0].function.name == "json_response"


async def test_a_wrapped_non_object_schema_is_unwrapped():
    body = json.loads(_recorded("message_json_tool.json"))
    body["content"][0]["input"] = {"value": ["Ada", "Grace"]}
    client = HttpProviderClient(AnthropicAdapter(),
                                ReplayTransport(Recorded(body=json.dumps(body).encode())))
    out = await client.chat(_request(response_format={"type": "json_schema", "json_schema": {
        "name": "names", "schema": {"type": "array", "items": {"type": "string"}}}}), TARGET)
    assert out.choices[0].message.content == '["Ada","Grace"]'


def _chunk(delta: Delta, finish: str | None = None, *, msg_id: str, model: str,
           created: int) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=msg_id, created=created, model=model,
                               choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)])


def _call(index: int, *, id: str | None = None, name: str | None = None,
          args: str) -> Delta:
    return Delta(tool_calls=[DeltaToolCall(
        index=index, id=id, type="function" if id else None,
        function=DeltaFunctionCall(name=name, arguments=args))])


async def test_a_full_stream_capture_becomes_the_exact_openai_chunks():
    chunks = await _stream(Recorded(headers=SSE, body=_recorded("stream_full.sse")))
    ids = {"msg_id": "msg_014p7gG3wDgGV9EUtLvnow3U", "model": "claude-sonnet-4-20250514",
           "created": chunks[0].created}
    expected = [
        _chunk(Delta(role="assistant", content=""), **ids),
        _chunk(Delta(content="Okay"), **ids),
        _chunk(Delta(content=", let's check the weather for San Francisco, CA:"), **ids),
        _chunk(_call(0, id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather", args=""), **ids),
        _chunk(_call(0, args='{"location":'), **ids),
        _chunk(_call(0, args=' "San Francisco, CA"'), **ids),
        _chunk(_call(0, args=', "unit": "fahrenheit"}'), **ids),
        _chunk(_call(1, id="toolu_01CZ5LNcdHYRqnKJgZTtTAzx", name="get_time", args=""), **ids),
        _chunk(_call(1, args="{}"), **ids),
        _chunk(Delta(), "tool_calls", **ids),
        ChatCompletionChunk(id=ids["msg_id"], created=ids["created"], model=ids["model"],
                            choices=[], usage=_usage(472 + 1536, 89, cached=1536)),
    ]
    assert chunks == expected


@pytest.mark.parametrize("size", [1, 7, 64])
async def test_a_stream_split_anywhere_decodes_the_same(size):
    raw = _recorded("stream_full.sse")
    whole = await _stream(Recorded(headers=SSE, body=raw))
    pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
    split = await _stream(Recorded(headers=SSE, chunks=pieces))
    assert [msgspec.structs.replace(c, created=0) for c in split] == \
        [msgspec.structs.replace(c, created=0) for c in whole]


def test_stream_state_ends_with_usage_finish_reason_and_done():
    adapter = AnthropicAdapter()
    state = adapter.new_stream_state(_request(stream=True), TARGET)
    decoder = SSEDecoder()
    for frame in decoder.feed(_recorded("stream_text.sse")):
        adapter.parse_stream_event(frame, state)
    assert state.done is True
    assert state.finish_reason == "length"
    assert state.usage == _usage(14, 16)


async def test_a_text_stream_ends_with_length_and_usage_from_both_usage_frames():
    chunks = await _stream(Recorded(headers=SSE, body=_recorded("stream_text.sse")))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "1, 2, 3, 4, 5, 6"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == _usage(14, 16)


async def test_a_streamed_json_tool_streams_as_content():
    chunks = await _stream(Recorded(headers=SSE, body=_recorded("stream_json_tool.sse")),
                           response_format={"type": "json_schema", "json_schema": {
                               "name": "weather", "schema": WEATHER_SCHEMA}})
    assert all(c.choices[0].delta.tool_calls is None for c in chunks if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Paris", "temperature_c": 18.5}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_a_streamed_wrapped_json_tool_is_unwrapped_when_its_block_ends():
    raw = _recorded("stream_json_tool.sse").replace(
        b'{\\"city\\": \\"Par', b'{\\"value\\": [\\"Ada').replace(
        b'is\\", \\"temperature_c\\": 18.5}', b'\\", \\"Grace\\"]}')
    chunks = await _stream(Recorded(headers=SSE, body=raw), response_format={
        "type": "json_schema", "json_schema": {"name": "names", "schema": {
            "type": "array", "items": {"type": "string"}}}})
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == '["Ada","Grace"]'


async def test_an_error_event_mid_stream_raises_the_mapped_error_after_the_text_so_far():
    client = HttpProviderClient(AnthropicAdapter(), ReplayTransport(
        Recorded(headers=SSE, body=_recorded("stream_error.sse"))))
    seen: list[ChatCompletionChunk] = []

    async def consume() -> None:
        async for chunk in client.stream(_request(stream=True), TARGET):
            seen.append(chunk)

    with pytest.raises(ProviderOverloadedError) as info:
        await consume()
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "Once upon a time"
    assert info.value.provider == "anthropic"
    assert info.value.retryable is True


async def test_a_stream_without_message_stop_is_a_bad_response():
    raw = _recorded("stream_text.sse")
    cut = raw[: raw.index(b"event: message_delta")]
    with pytest.raises(ProviderResponseError, match="end marker"):
        await _stream(Recorded(headers=SSE, body=cut))


async def test_a_connection_broken_mid_stream_is_a_connection_error():
    raw = _recorded("stream_text.sse")
    with pytest.raises(ProviderConnectionError):
        await _stream(Recorded(headers=SSE, chunks=[raw[:300]],
                               error_after_chunks=ProtocolError("reset")))


async def test_unknown_event_types_are_skipped():
    raw = _recorded("stream_text.sse").replace(
        b"event: message_stop",
        b'event: future_thing\ndata: {"type":"future_thing","x":1}\n\nevent: message_stop')
    chunks = await _stream(Recorded(headers=SSE, body=raw))
    assert chunks[-1].usage == _usage(14, 16)


@pytest.mark.parametrize(("name", "status", "exc"), [
    ("error_authentication.json", 401, AuthenticationError),
    ("error_permission.json", 403, PermissionDeniedError),
    ("error_not_found.json", 404, ModelNotFoundError),
    ("error_invalid_request.json", 400, BadRequestError),
    ("error_credit_balance.json", 400, BadRequestError),
    ("error_prompt_too_long.json", 400, ContextLengthExceededError),
    ("error_context_limit.json", 400, ContextLengthExceededError),
    ("error_request_too_large.json", 413, BadRequestError),
    ("error_rate_limit.json", 429, RateLimitedError),
    ("error_api.json", 500, ProviderServerError),
    ("error_overloaded.json", 529, ProviderOverloadedError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_error_bodies_map_to_the_error_tree(name, status, exc, stream):
    rec = Recorded(status=status, body=_recorded(name),
                   headers={"content-type": "application/json", "request-id": "req_011C"})
    client = HttpProviderClient(AnthropicAdapter(), ReplayTransport(rec))
    with pytest.raises(exc) as info:
        await (_stream(rec) if stream else client.chat(_request(), TARGET))
    err = info.value
    assert type(err) is exc
    assert (err.provider, err.model, err.upstream_status) == (
        "anthropic", "claude-sonnet-4-20250514", status)
    assert err.body == _recorded(name)
    assert json.loads(_recorded(name))["error"]["message"][:40] in err.message


async def test_rate_limits_keep_retry_after():
    rec = Recorded(status=429, body=_recorded("error_rate_limit.json"),
                   headers={"content-type": "application/json", "retry-after": "23",
                            "anthropic-ratelimit-input-tokens-remaining": "0"})
    with pytest.raises(RateLimitedError) as info:
        await HttpProviderClient(AnthropicAdapter(), ReplayTransport(rec)).chat(_request(), TARGET)
    assert info.value.retry_after == 23.0


@pytest.mark.parametrize(("name", "exc"), [
    ("error_overloaded.json", ProviderOverloadedError),
    ("error_rate_limit.json", RateLimitedError),
    ("error_authentication.json", AuthenticationError),
])
async def test_an_error_body_answered_with_200_to_a_stream_is_mapped_by_its_type(name, exc):
    with pytest.raises(exc):
        await _stream(Recorded(status=200, body=_recorded(name)))


async def test_a_billing_error_is_not_retryable():
    body = b'{"type":"error","error":{"type":"billing_error","message":"Billing issue"}}'
    with pytest.raises(ProviderError) as info:
        await HttpProviderClient(AnthropicAdapter(), ReplayTransport(
            Recorded(status=402, body=body))).chat(_request(), TARGET)
    assert isinstance(info.value, PermissionDeniedError)
    assert info.value.retryable is False
    assert info.value.upstream_status == 402


@pytest.mark.parametrize("body", [b'{"id":"msg_01","type":"message","role":"assis',
                                  b"not json at all", b'{"type":"completion"}'])
async def test_a_body_that_is_not_a_message_is_a_bad_response(body):
    with pytest.raises(ProviderResponseError):
        await HttpProviderClient(AnthropicAdapter(), ReplayTransport(
            Recorded(body=body))).chat(_request(), TARGET)
