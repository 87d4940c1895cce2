"""The Anthropic adapter over real HTTP (aiohttp, 127.0.0.1) against the fake Anthropic host."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.providers.anthropic.adapter import AnthropicAdapter
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.transport.aiohttp_transport import AiohttpTransport
from gatewise.transport.base import Timeouts
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import chat_request_from_dict
from tests.fakes.common import count_tokens, reply_for, sample_arguments, sample_for_schema
from tests.fakes.faults import SLOW_SECONDS
from tests.fakes.server import FakeServer

MODEL = "claude-sonnet-4-20250514"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]}}}
REPORT_SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string"}, "temperature": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["city"]}


def _target(srv: FakeServer, model: str = MODEL, **kw: Any) -> Target:
    return Target(provider="anthropic", wire="anthropic", model=model, api_base=srv.url,
                  api_key=kw.pop("api_key", "sk-ant-api03-test"), auth="x-api-key", **kw)


def _req(text: str = "ping", **extra: Any):
    return chat_request_from_dict({"model": "claude",
                                   "messages": [{"role": "user", "content": text}], **extra})


@pytest.fixture
async def client() -> AsyncIterator[HttpProviderClient]:
    c = HttpProviderClient(AnthropicAdapter(), AiohttpTransport())
    yield c
    await c.transport.aclose()


async def _collect(client: HttpProviderClient, req: Any, target: Target) -> list[ChatCompletionChunk]:
    return [c async for c in client.stream(req, target)]


def _text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _last_body(srv: FakeServer) -> dict[str, Any]:
    seen = [r for r in srv.requests if r.path == "/v1/messages"]
    body: dict[str, Any] = seen[-1].json()
    return body


async def test_chat_answers_with_the_reply_and_the_hosts_token_counts(client, anthropic_fake):
    out = await client.chat(_req("ping pong", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "ping pong"}]), _target(anthropic_fake))
    assert out.choices[0].message.content == "Hello! You said: ping pong"
    assert out.choices[0].finish_reason == "stop"
    assert out.id.startswith("msg_01")
    assert out.model == MODEL
    assert out.usage is not None
    assert out.usage.completion_tokens == count_tokens("Hello! You said: ping pong")
    assert out.usage.prompt_tokens == count_tokens("Be brief.") + count_tokens("ping pong") + 3
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    sent = anthropic_fake.requests[-1]
    assert sent.headers["x-api-key"] == "sk-ant-api03-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert _last_body(anthropic_fake)["system"] == "Be brief."


async def test_stream_text_joins_to_the_reply_and_the_last_chunk_carries_usage(
        client, anthropic_fake):
    chunks = await _collect(client, _req("ping pong", stream=True), _target(anthropic_fake))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert _text(chunks) == reply_for("ping pong")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == count_tokens(reply_for("ping pong"))
    assert last.usage.prompt_tokens == count_tokens("ping pong") + 3
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("msg_01")


async def test_temperature_above_one_is_clamped_so_the_host_accepts_it(client, anthropic_fake):
    out = await client.chat(_req(temperature=1.8), _target(anthropic_fake))
    assert out.choices[0].message.content == reply_for("ping")
    assert _last_body(anthropic_fake)["temperature"] == 1.0


async def test_a_small_output_limit_ends_with_length(client, anthropic_fake):
    out = await client.chat(_req("a b c d", max_tokens=2), _target(anthropic_fake))
    assert out.choices[0].message.content == "Hello! You"
    assert out.choices[0].finish_reason == "length"


async def test_a_stop_sequence_cuts_the_reply_and_ends_with_stop(client, anthropic_fake):
    out = await client.chat(_req("ping", stop=["said"]), _target(anthropic_fake))
    assert out.choices[0].message.content == "Hello! You "
    assert out.choices[0].finish_reason == "stop"
    assert _last_body(anthropic_fake)["stop_sequences"] == ["said"]


@pytest.mark.parametrize("stream", [False, True])
async def test_thinking_is_kept_out_of_the_content(client, anthropic_fake, stream):
    target = _target(anthropic_fake, "claude-think-sonnet")
    if stream:
        text = _text(await _collect(client, _req(stream=True), target))
    else:
        text = (await client.chat(_req(), target)).choices[0].message.content
    assert text == reply_for("ping")


async def test_offered_tools_come_back_as_tool_calls_with_json_string_arguments(
        client, anthropic_fake):
    out = await client.chat(_req("weather in Paris?", tools=[WEATHER]), _target(anthropic_fake))
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("toolu_01")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == json.loads(
        sample_arguments(WEATHER["function"]["parameters"]))
    assert _last_body(anthropic_fake)["tools"] == [{
        "name": "get_weather", "description": "Current weather for a city",
        "input_schema": WEATHER["function"]["parameters"]}]


async def test_streamed_tool_calls_open_with_id_and_name_then_stream_argument_fragments(
        client, anthropic_fake):
    chunks = await _collect(client, _req("weather?", stream=True, tools=[WEATHER]),
                            _target(anthropic_fake))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    first, *rest = calls
    assert first.index == 0
    assert first.id is not None
    assert first.id.startswith("toolu_01")
    assert first.type == "function"
    assert first.function is not None
    assert (first.function.name, first.function.arguments) == ("get_weather", "")
    assert len(rest) > 1
    args = "".join(tc.function.arguments or "" for tc in rest if tc.function)
    assert json.loads(args) == sample_for_schema(WEATHER["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_a_tool_history_reaches_the_host_in_its_native_shape_and_gets_an_answer(
        client, anthropic_fake):
    target = _target(anthropic_fake)
    first = await client.chat(_req("weather in Paris?", tools=[WEATHER]), target)
    assert first.choices[0].message.tool_calls is not None
    call = first.choices[0].message.tool_calls[0]
    history = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    out = await client.chat(chat_request_from_dict(
        {"model": "claude", "messages": history, "tools": [WEATHER]}), target)
    assert out.choices[0].message.content == reply_for("weather in Paris?")
    assert out.choices[0].finish_reason == "stop"
    assert _last_body(anthropic_fake)["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": call.id, "name": "get_weather",
             "input": json.loads(call.function.arguments)}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ]


async def test_tool_choice_none_gets_text_even_with_tools(client, anthropic_fake):
    out = await client.chat(_req(tools=[WEATHER], tool_choice="none"), _target(anthropic_fake))
    assert out.choices[0].message.content == reply_for("ping")
    assert out.choices[0].message.tool_calls is None


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_output_is_json_content_matching_the_schema(
        client, anthropic_fake, stream):
    req = _req("report", stream=stream, response_format={
        "type": "json_schema", "json_schema": {"name": "report", "schema": REPORT_SCHEMA}})
    target = _target(anthropic_fake)
    if stream:
        chunks = await _collect(client, req, target)
        text, finish = _text(chunks), [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        out = await client.chat(req, target)
        text, finish = out.choices[0].message.content or "", out.choices[0].finish_reason
        assert out.choices[0].message.tool_calls is None
    assert json.loads(text) == sample_for_schema(REPORT_SCHEMA)
    assert finish == "stop"


async def test_json_object_output_is_a_json_object(client, anthropic_fake):
    out = await client.chat(_req("hi", response_format={"type": "json_object"}),
                            _target(anthropic_fake))
    assert json.loads(out.choices[0].message.content or "") == {"answer": reply_for("hi")}


async def test_embeddings_are_refused_without_calling_the_host(client, anthropic_fake):
    before = len(anthropic_fake.requests)
    with pytest.raises(InvalidRequestError, match="no embeddings API"):
        await client.embed(EmbeddingRequest(model="claude", input="hi"), _target(anthropic_fake))
    assert len(anthropic_fake.requests) == before


async def test_validate_key_accepts_a_good_key(client, anthropic_fake):
    await client.validate_key(_target(anthropic_fake))
    assert anthropic_fake.requests[-1].path == "/v1/models"


@pytest.mark.parametrize("key", ["bad-key", None])
async def test_validate_key_refuses_a_wrong_or_missing_key(client, anthropic_fake, key):
    with pytest.raises(AuthenticationError) as info:
        await client.validate_key(_target(anthropic_fake, api_key=key))
    assert info.value.upstream_status == 401
    assert info.value.provider == "anthropic"


async def test_chat_with_a_wrong_key_is_an_authentication_error(client, anthropic_fake):
    with pytest.raises(AuthenticationError, match="invalid x-api-key"):
        await client.chat(_req(), _target(anthropic_fake, api_key="bad-key"))


@pytest.mark.parametrize(("model", "exc"), [
    ("claude-fail-400", BadRequestError),
    ("claude-fail-401", AuthenticationError),
    ("claude-fail-403", PermissionDeniedError),
    ("claude-fail-404", ModelNotFoundError),
    ("claude-fail-429", RateLimitedError),
    ("claude-fail-429-noretry", RateLimitedError),
    ("claude-fail-context", ContextLengthExceededError),
    ("claude-fail-500", ProviderServerError),
    ("claude-fail-503", ProviderOverloadedError),
    ("claude-fail-529", ProviderOverloadedError),
    ("claude-malformed", ProviderResponseError),
    ("claude-wrong-type", ProviderResponseError),
    ("claude-cut", ProviderResponseError),
    ("claude-reset", ProviderConnectionError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_faults_map_to_the_error_tree_and_the_pool_recovers(
        client, anthropic_fake, model, exc, stream):
    req = _req("a b c d", stream=stream)
    target = _target(anthropic_fake, model)
    with pytest.raises(exc) as info:
        await (_collect(client, req, target) if stream else client.chat(req, target))
    assert type(info.value) is exc
    assert info.value.provider == "anthropic"
    assert info.value.model == model
    if model == "claude-fail-429":
        assert info.value.retry_after == 7.0
    if model == "claude-fail-429-noretry":
        assert info.value.retry_after is None
    ok = await client.chat(_req("again"), _target(anthropic_fake))
    assert ok.choices[0].message.content == reply_for("again")


async def test_an_overloaded_event_mid_stream_raises_after_the_text_so_far(
        client, anthropic_fake):
    seen: list[ChatCompletionChunk] = []

    async def consume() -> None:
        async for chunk in client.stream(_req("a b c d", stream=True),
                                         _target(anthropic_fake, "claude-stream-error")):
            seen.append(chunk)

    with pytest.raises(ProviderOverloadedError):
        await consume()
    assert _text(seen) == "Hello! "
    ok = await client.chat(_req("again"), _target(anthropic_fake))
    assert ok.choices[0].message.content == reply_for("again")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_host_slower_than_the_read_timeout_is_a_timeout(client, anthropic_fake, stream):
    target = _target(anthropic_fake, "claude-slow",
                     timeouts=Timeouts(total=SLOW_SECONDS / 3, connect=1.0,
                                       read=SLOW_SECONDS / 3))
    req = _req(stream=stream)
    with pytest.raises(ProviderTimeoutError):
        await (_collect(client, req, target) if stream else client.chat(req, target))
