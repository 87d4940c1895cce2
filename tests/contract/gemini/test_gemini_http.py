"""The Gemini adapter over real HTTP against the fake Gemini host."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.providers.base import Target
from gatewise.providers.gemini.adapter import GeminiAdapter
from gatewise.providers.http import HttpProviderClient
from gatewise.transport.aiohttp_transport import AiohttpTransport
from gatewise.transport.base import Timeouts
from gatewise.types.requests import ChatRequest
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict
from tests.fakes.common import count_tokens, reply_for, sample_for_schema
from tests.fakes.server import FakeServer

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"},
                                  "days": {"type": "integer", "minimum": 1}},
                   "required": ["city"]}}}


def _target(srv: FakeServer, model: str = "gemini-2.5-flash", **kw: Any) -> Target:
    kw.setdefault("api_key", "AIzaSyFake-key")
    return Target(provider="gemini", wire="gemini", model=model, api_base=srv.url,
                  auth="x-goog-api-key", **kw)


def _chat(text: str = "ping", **kw: Any) -> ChatRequest:
    return chat_request_from_dict({"model": "x", "messages": [{"role": "user", "content": text}],
                                   **kw})


async def _call(client: HttpProviderClient, req: ChatRequest, target: Target) -> list[Any]:
    """Runs a request the way its `stream` flag says; streams are drained to the end."""
    if req.stream:
        return [c async for c in client.stream(req, target)]
    return [await client.chat(req, target)]


@pytest.fixture
async def client() -> AsyncIterator[HttpProviderClient]:
    c = HttpProviderClient(GeminiAdapter(), AiohttpTransport())
    yield c
    await c.transport.aclose()


async def test_chat_answers_with_the_reply_and_counted_usage(client, gemini_fake):
    out = await client.chat(_chat("ping pong"), _target(gemini_fake))
    reply = reply_for("ping pong")
    assert out.choices[0].message.content == reply
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == \
        (2, count_tokens(reply), 2 + count_tokens(reply))
    assert out.model == "gemini-2.5-flash"
    assert len(out.id) == 23
    seen = gemini_fake.requests[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == "AIzaSyFake-key"
    assert seen.query == {}


async def test_stream_text_joins_to_the_reply_and_ends_with_usage(client, gemini_fake):
    chunks = [c async for c in client.stream(_chat("ping pong", stream=True),
                                             _target(gemini_fake))]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_for("ping pong")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == count_tokens(text)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1
    assert gemini_fake.requests[-1].query == {"alt": "sse"}


@pytest.mark.parametrize("stream", [False, True])
async def test_offered_tools_come_back_as_tool_calls_with_json_string_arguments(
        client, gemini_fake, stream):
    req = _chat("weather in Paris?", tools=[WEATHER], stream=stream)
    if stream:
        chunks = [c async for c in client.stream(req, _target(gemini_fake))]
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        headers = [d.tool_calls[0] for d in deltas if d.tool_calls and d.tool_calls[0].id]
        assert len(headers) == 1
        assert headers[0].function is not None
        name = headers[0].function.name
        arguments = "".join(d.tool_calls[0].function.arguments or "" for d in deltas
                            if d.tool_calls and d.tool_calls[0].function)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        out = await client.chat(req, _target(gemini_fake))
        (call,) = out.choices[0].message.tool_calls or []
        assert out.choices[0].message.content is None
        name, arguments, finish = call.function.name, call.function.arguments, \
            out.choices[0].finish_reason
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "sample", "days": 42}
    assert finish == "tool_calls"
    declared = gemini_fake.requests[-1].json()["tools"][0]["functionDeclarations"][0]
    assert "additionalProperties" not in declared["parameters"]


async def test_a_tool_round_trip_reaches_gemini_as_function_call_and_response_turns(
        client, gemini_fake):
    target = _target(gemini_fake, "gemini-3-pro-preview")
    question = {"role": "user", "content": "weather in Paris?"}
    first = await client.chat(chat_request_from_dict(
        {"model": "x", "messages": [question], "tools": [WEATHER]}), target)
    (call,) = first.choices[0].message.tool_calls or []
    history = [question,
               {"role": "assistant", "content": None,
                "tool_calls": [msgspec.to_builtins(call)]},
               {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'}]
    out = await client.chat(chat_request_from_dict(
        {"model": "x", "messages": history, "tools": [WEATHER]}), target)
    assert out.choices[0].message.content == reply_for("weather in Paris?")
    sent = gemini_fake.requests[-1].json()["contents"]
    signature = call.id.split("__thought__", 1)[1]
    assert sent == [
        {"role": "user", "parts": [{"text": "weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                      "args": json.loads(call.function.arguments)},
                                     "thoughtSignature": signature}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"temp_c": 18}}}]},
    ]


async def test_a_gemini_3_history_without_thought_signatures_is_refused(client, gemini_fake):
    history = [{"role": "user", "content": "weather?"},
               {"role": "assistant", "tool_calls": [{"id": "call_plain", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
               {"role": "tool", "tool_call_id": "call_plain", "content": "sunny"}]
    req = chat_request_from_dict({"model": "x", "messages": history, "tools": [WEATHER]})
    with pytest.raises(BadRequestError, match="thought_signature"):
        await client.chat(req, _target(gemini_fake, "gemini-3-pro-preview"))


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_output_matches_the_schema(client, gemini_fake, stream):
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                             "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["name", "age", "tags"]}
    req = _chat("describe", stream=stream, response_format={
        "type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                               "schema": schema}})
    if stream:
        text = "".join([c.choices[0].delta.content or "" async for c in
                        client.stream(req, _target(gemini_fake)) if c.choices])
    else:
        text = (await client.chat(req, _target(gemini_fake))).choices[0].message.content or ""
    assert json.loads(text) == sample_for_schema(schema)
    config = gemini_fake.requests[-1].json()["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"


async def test_json_object_output_is_json(client, gemini_fake):
    out = await client.chat(_chat("hi", response_format={"type": "json_object"}),
                            _target(gemini_fake))
    assert json.loads(out.choices[0].message.content or "") == {"answer": reply_for("hi")}


async def test_max_tokens_truncates_and_reports_length(client, gemini_fake):
    out = await client.chat(_chat("one two three", max_tokens=2), _target(gemini_fake))
    assert out.choices[0].message.content == "Hello! You"
    assert out.choices[0].finish_reason == "length"


async def test_n_asks_for_several_candidates(client, gemini_fake):
    out = await client.chat(_chat("hey", n=2), _target(gemini_fake))
    assert [c.index for c in out.choices] == [0, 1]
    assert {c.message.content for c in out.choices} == {reply_for("hey")}


async def test_embeddings_for_one_and_several_inputs(client, gemini_fake):
    target = _target(gemini_fake, "gemini-embedding-001")
    one = await client.embed(embedding_request_from_dict(
        {"model": "e", "input": "hello", "dimensions": 16}), target)
    assert gemini_fake.requests[-1].path == "/v1beta/models/gemini-embedding-001:embedContent"
    many = await client.embed(embedding_request_from_dict(
        {"model": "e", "input": ["hello", "world", "again"], "dimensions": 16}), target)
    assert gemini_fake.requests[-1].path == \
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [len(e.embedding) for e in one.data + many.data] == [16] * 4
    assert many.data[0].embedding == one.data[0].embedding
    assert many.data[1].embedding != many.data[0].embedding
    assert [e.index for e in many.data] == [0, 1, 2]
    assert many.usage.prompt_tokens == 0
    assert many.model == "gemini-embedding-001"


async def test_validate_key_accepts_a_good_key(client, gemini_fake):
    await client.validate_key(_target(gemini_fake))
    assert gemini_fake.requests[-1].path == "/v1beta/models"


@pytest.mark.parametrize("key", ["bad-key", None])
async def test_validate_key_rejects_a_wrong_or_missing_key(client, gemini_fake, key):
    with pytest.raises(AuthenticationError) as info:
        await client.validate_key(_target(gemini_fake, api_key=key))
    assert info.value.provider == "gemini"
    assert info.value.upstream_status == (400 if key else 403)


@pytest.mark.parametrize(("model", "exc"), [
    ("gemini-fail-401", AuthenticationError),
    ("gemini-fail-403", PermissionDeniedError),
    ("gemini-fail-404", ModelNotFoundError),
    ("gemini-fail-400", BadRequestError),
    ("gemini-fail-context", ContextLengthExceededError),
    ("gemini-fail-429", RateLimitedError),
    ("gemini-fail-429-noretry", RateLimitedError),
    ("gemini-fail-500", ProviderServerError),
    ("gemini-fail-503", ProviderOverloadedError),
    ("gemini-fail-529", ProviderOverloadedError),
    ("gemini-malformed", ProviderResponseError),
    ("gemini-wrong-type", ProviderResponseError),
    ("gemini-cut", ProviderResponseError),
    ("gemini-reset", ProviderConnectionError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_faults_are_mapped_and_the_pool_recovers(client, gemini_fake, model, exc, stream):
    req = _chat("a b c d", stream=stream)
    with pytest.raises(exc) as info:
        await _call(client, req, _target(gemini_fake, model))
    assert type(info.value) is exc
    assert info.value.provider == "gemini"
    if model == "gemini-fail-429":
        assert info.value.retry_after == 7.0
    if model == "gemini-fail-429-noretry":
        assert info.value.retry_after is None
    ok = await client.chat(_chat("again"), _target(gemini_fake))
    assert ok.choices[0].message.content == reply_for("again")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_slow_upstream_times_out(client, gemini_fake, stream):
    target = _target(gemini_fake, "gemini-slow", timeouts=Timeouts(total=0.3, connect=1.0,
                                                                   read=0.3))
    with pytest.raises(ProviderTimeoutError):
        await _call(client, _chat(stream=stream), target)


async def test_embedding_faults_are_mapped_too(client, gemini_fake):
    with pytest.raises(RateLimitedError) as info:
        await client.embed(embedding_request_from_dict({"model": "e", "input": "x"}),
                           _target(gemini_fake, "embedding-fail-429"))
    assert info.value.retry_after == 7.0
