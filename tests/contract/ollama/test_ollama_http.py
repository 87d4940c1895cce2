"""The Ollama adapter over real HTTP (the production aiohttp transport) against the fake host."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

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
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.ollama.adapter import OllamaAdapter
from gatewise.transport.aiohttp_transport import AiohttpTransport
from gatewise.transport.base import Timeouts
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict
from tests.fakes.common import count_tokens, reply_for, sample_for_schema
from tests.fakes.faults import SLOW_SECONDS
from tests.fakes.server import FakeServer

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_PARAMS = {"type": "object",
                  "properties": {"location": {"type": "string"},
                                 "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                  "required": ["location", "unit"]}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                            "parameters": WEATHER_PARAMS}}


@pytest.fixture
async def client() -> AsyncIterator[HttpProviderClient]:
    c = HttpProviderClient(OllamaAdapter(), AiohttpTransport())
    yield c
    await c.transport.aclose()


def _target(srv: FakeServer, model: str = "llama3.2", **kw: Any) -> Target:
    kw.setdefault("api_base", srv.url)
    kw.setdefault("api_key", "ollama-test-key")
    return Target(provider="ollama", wire="ollama", model=model, **kw)


def _req(content: str = "ping", **kw: Any) -> Any:
    return chat_request_from_dict({"model": "gw-alias",
                                   "messages": [{"role": "user", "content": content}], **kw})


async def _run(client: HttpProviderClient, req: Any, target: Target,
               into: list[ChatCompletionChunk] | None = None) -> None:
    """One call, streamed or not as the request says; stream chunks are kept in `into`."""
    if req.stream:
        async for chunk in client.stream(req, target):
            if into is not None:
                into.append(chunk)
    else:
        await client.chat(req, target)


def _text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_chat_reply_and_usage_come_back_from_the_host(client, ollama_fake):
    out = await client.chat(_req("ping"), _target(ollama_fake))
    assert out.choices[0].message.content == reply_for("ping")
    assert out.choices[0].finish_reason == "stop"
    assert out.model == "llama3.2"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (
        count_tokens("ping") + 3, count_tokens(reply_for("ping")),
        count_tokens("ping") + 3 + count_tokens(reply_for("ping")))
    seen = ollama_fake.requests[-1]
    assert seen.path == "/api/chat"
    assert seen.json()["stream"] is False
    assert seen.headers["Authorization"] == "Bearer ollama-test-key"


async def test_a_local_daemon_is_reached_without_any_key(client, ollama_fake):
    target = _target(ollama_fake, api_base=ollama_fake.url + "/local/", api_key=None)
    out = await client.chat(_req("hello local"), target)
    assert out.choices[0].message.content == reply_for("hello local")
    assert "Authorization" not in ollama_fake.requests[-1].headers


async def test_stream_text_joins_to_the_reply_and_the_last_chunk_carries_usage(client, ollama_fake):
    chunks = [c async for c in client.stream(_req("ping pong", stream=True),
                                             _target(ollama_fake))]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert _text(chunks) == reply_for("ping pong")
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == count_tokens(reply_for("ping pong"))
    assert ollama_fake.requests[-1].json()["stream"] is True


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(client, ollama_fake):
    out = await client.chat(_req("a b c d e f", max_tokens=3), _target(ollama_fake))
    assert out.choices[0].finish_reason == "length"
    assert out.choices[0].message.content == "Hello! You said:"
    assert ollama_fake.requests[-1].json()["options"] == {"num_predict": 3}


async def test_offered_tools_come_back_as_canonical_tool_calls_with_json_string_arguments(
        client, ollama_fake):
    out = await client.chat(_req("Weather in Paris?", tools=[WEATHER]), _target(ollama_fake))
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert (call.type, call.function.name) == ("function", "get_weather")
    assert call.id == "call_k2x8f1qd"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == sample_for_schema(WEATHER_PARAMS)
    assert ollama_fake.requests[-1].json()["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                          "parameters": WEATHER_PARAMS}}]


async def test_streamed_tool_call_assembles_into_name_and_arguments(client, ollama_fake):
    chunks = [c async for c in client.stream(_req("Weather?", tools=[WEATHER], stream=True),
                                             _target(ollama_fake))]
    parts = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert parts[0].id == "call_k2x8f1qd"
    assert parts[0].function is not None
    assert parts[0].function.name == "get_weather"
    args = "".join(p.function.arguments or "" for p in parts if p.function is not None)
    assert json.loads(args) == sample_for_schema(WEATHER_PARAMS)
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None


async def test_tool_results_reach_ollama_as_tool_messages_named_after_the_call(client, ollama_fake):
    req = chat_request_from_dict({"model": "gw-alias", "tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_k2x8f1qd", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"location": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_k2x8f1qd", "content": "22 degrees"},
    ]})
    out = await client.chat(req, _target(ollama_fake))
    assert out.choices[0].message.content == reply_for("Weather in Paris?")
    assert ollama_fake.requests[-1].json()["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {
            "name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "content": "22 degrees", "tool_name": "get_weather"},
    ]


async def test_json_schema_output_matches_the_schema_sent_as_format(client, ollama_fake):
    schema = {"type": "object", "properties": {"age": {"type": "integer"},
                                               "available": {"type": "boolean"}}}
    req = _req("Ollama is 22", response_format={"type": "json_schema", "json_schema": {
        "name": "person", "schema": schema}})
    out = await client.chat(req, _target(ollama_fake))
    assert json.loads(out.choices[0].message.content or "") == sample_for_schema(schema)
    assert ollama_fake.requests[-1].json()["format"] == schema


async def test_json_object_mode_answers_json(client, ollama_fake):
    out = await client.chat(_req("hi", response_format={"type": "json_object"}),
                            _target(ollama_fake))
    assert json.loads(out.choices[0].message.content or "") == {"answer": reply_for("hi")}


async def test_a_data_url_image_reaches_the_host_as_valid_base64(client, ollama_fake):
    req = chat_request_from_dict({"model": "gw-alias", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]})
    out = await client.chat(req, _target(ollama_fake, model="llava"))
    assert out.choices[0].message.content == reply_for("What is this?")
    assert ollama_fake.requests[-1].json()["messages"][0]["images"] == [PNG]


async def test_embeddings_for_one_text_and_for_a_list(client, ollama_fake):
    one = await client.embed(embedding_request_from_dict({"model": "e", "input": "sky blue"}),
                             _target(ollama_fake, model="all-minilm"))
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 8
    assert one.usage.prompt_tokens == one.usage.total_tokens == 2
    many = await client.embed(embedding_request_from_dict(
        {"model": "e", "input": ["sky blue", "grass green today"], "dimensions": 4}),
        _target(ollama_fake, model="all-minilm"))
    assert [d.index for d in many.data] == [0, 1]
    assert [len(d.embedding) for d in many.data] == [4, 4]
    assert many.usage.prompt_tokens == 5
    assert ollama_fake.requests[-1].path == "/api/embed"
    assert ollama_fake.requests[-1].json()["input"] == ["sky blue", "grass green today"]


async def test_base64_embeddings_decode_to_the_float_vector(client, ollama_fake):
    target = _target(ollama_fake, model="all-minilm")
    floats = await client.embed(embedding_request_from_dict({"model": "e", "input": "x y"}), target)
    packed = await client.embed(embedding_request_from_dict(
        {"model": "e", "input": "x y", "encoding_format": "base64"}), target)
    encoded = packed.data[0].embedding
    assert isinstance(encoded, str)
    decoded = struct.unpack("<8f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


async def test_validate_key_accepts_a_good_key(client, ollama_fake):
    await client.validate_key(_target(ollama_fake))
    assert ollama_fake.requests[-1].path == "/api/tags"


@pytest.mark.parametrize("key", ["bad-key", None])
async def test_validate_key_rejects_a_wrong_or_missing_key_with_401(client, ollama_fake, key):
    with pytest.raises(AuthenticationError) as info:
        await client.validate_key(_target(ollama_fake, api_key=key))
    assert info.value.upstream_status == 401
    assert info.value.provider == "ollama"


async def test_chat_with_a_wrong_key_is_an_authentication_error(client, ollama_fake):
    with pytest.raises(AuthenticationError):
        await client.chat(_req(), _target(ollama_fake, api_key="bad-key"))


@pytest.mark.parametrize(("model", "exc"), [
    ("llama3.2-fail-401", AuthenticationError),
    ("llama3.2-fail-403", PermissionDeniedError),
    ("llama3.2-fail-404", ModelNotFoundError),
    ("llama3.2-fail-400", BadRequestError),
    ("llama3.2-fail-context", ContextLengthExceededError),
    ("llama3.2-fail-429", RateLimitedError),
    ("llama3.2-fail-429-noretry", RateLimitedError),
    ("llama3.2-fail-500", ProviderServerError),
    ("llama3.2-fail-503", ProviderOverloadedError),
    ("llama3.2-fail-529", ProviderOverloadedError),
    ("llama3.2-malformed", ProviderResponseError),
    ("llama3.2-wrong-type", ProviderResponseError),
    ("llama3.2-cut", ProviderResponseError),
    ("llama3.2-reset", ProviderConnectionError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_faults_map_to_the_right_error_and_the_pool_still_answers(
        client, ollama_fake, model, exc, stream):
    req = _req("a b c d", stream=stream)
    with pytest.raises(ProviderError) as info:
        await _run(client, req, _target(ollama_fake, model))
    assert type(info.value) is exc
    assert (info.value.provider, info.value.model) == ("ollama", model)
    if isinstance(info.value, RateLimitedError):
        assert info.value.retry_after == (7.0 if model.endswith("fail-429") else None)
    ok = await client.chat(_req("again"), _target(ollama_fake))
    assert ok.choices[0].message.content == reply_for("again")


async def test_an_error_line_after_the_200_fails_the_stream_after_the_text_so_far(
        client, ollama_fake):
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(ProviderServerError) as info:
        await _run(client, _req("a b c d", stream=True),
                   _target(ollama_fake, "llama3.2-stream-error"), seen)
    assert _text(seen) == "Hello! You "
    assert info.value.upstream_status == 200
    assert info.value.provider == "ollama"
    ok = await client.chat(_req("again"), _target(ollama_fake))
    assert ok.choices[0].message.content == reply_for("again")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_host_slower_than_the_target_timeouts_is_a_timeout_error(
        client, ollama_fake, stream):
    quick = Timeouts(total=SLOW_SECONDS / 3, connect=1.0, read=SLOW_SECONDS / 3)
    target = _target(ollama_fake, "llama3.2-slow", timeouts=quick)
    with pytest.raises(ProviderTimeoutError) as info:
        await _run(client, _req(stream=stream), target)
    assert info.value.provider == "ollama"
