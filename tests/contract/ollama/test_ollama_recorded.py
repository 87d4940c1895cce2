"""Recorded Ollama bodies (see `recorded/`) become exactly the canonical OpenAI-shaped results.

Replayed through `HttpProviderClient`, so status handling, NDJSON framing (chunks split at
arbitrary byte offsets) and the end-marker check are exercised as in production.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    ModelNotFoundError,
    ProviderError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
)
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.ollama.adapter import OllamaAdapter
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict

RECORDED = Path(__file__).parent / "recorded"
JSON = {"content-type": "application/json; charset=utf-8"}
NDJSON = {"content-type": "application/x-ndjson"}


def _target(model: str = "llama3.2") -> Target:
    return Target(provider="ollama", wire="ollama", model=model)


def _client(name: str, status: int = 200, split: int | None = None) -> HttpProviderClient:
    body = (RECORDED / name).read_bytes()
    if name.endswith(".ndjson"):
        step = split or len(body)
        chunks = [body[i:i + step] for i in range(0, len(body), step)]
        rec = Recorded(status=status, chunks=chunks, headers=NDJSON)
    else:
        rec = Recorded(status=status, body=body, headers=JSON)
    return HttpProviderClient(OllamaAdapter(), ReplayTransport(rec))


def _chat_request(stream: bool = False) -> Any:
    return chat_request_from_dict({"model": "gw-alias", "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}]})


def _plain(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


async def _completion(name: str, model: str = "llama3.2") -> dict[str, Any]:
    out = await _client(name).chat(_chat_request(), _target(model))
    data: dict[str, Any] = _plain(out)
    assert data.pop("id").startswith("chatcmpl-")
    return data


async def _run(client: HttpProviderClient, stream: bool,
               into: list[ChatCompletionChunk] | None = None) -> None:
    """One call, streamed or not; stream chunks are kept in `into`."""
    if stream:
        async for chunk in client.stream(_chat_request(True), _target()):
            if into is not None:
                into.append(chunk)
    else:
        await client.chat(_chat_request(), _target())


async def _chunks(name: str, split: int | None = None) -> list[ChatCompletionChunk]:
    return [c async for c in _client(name, split=split).stream(_chat_request(True), _target())]


async def test_text_reply_becomes_a_chat_completion_with_usage_from_the_eval_counts():
    assert await _completion("chat.json") == {
        "object": "chat.completion",
        "created": 1749737007,
        "model": "llama3.2",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
            "role": "assistant",
            "content": "The sky looks blue because air molecules scatter short blue wavelengths "
                       "of sunlight far more than long red ones (Rayleigh scattering).",
            "refusal": None, "tool_calls": None, "annotations": None}}],
        "usage": {"prompt_tokens": 31, "completion_tokens": 27, "total_tokens": 58,
                  "prompt_tokens_details": None, "completion_tokens_details": None},
        "system_fingerprint": None,
        "service_tier": None,
    }


async def test_done_reason_length_is_finish_reason_length():
    data = await _completion("chat_length.json")
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 12


async def test_thinking_is_left_out_of_the_answer():
    data = await _completion("chat_thinking.json", "qwen3:8b")
    assert data["choices"][0]["message"]["content"] == "17 * 23 = 391."


async def test_tool_calls_keep_ollamas_ids_and_get_json_string_arguments():
    data = await _completion("chat_tool_calls.json", "qwen3:8b")
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_r0s8l2vw", "type": "function", "function": {
            "name": "get_current_weather",
            "arguments": '{"format":"celsius","location":"Paris, FR"}'}},
        {"id": "call_9xk2mq4t", "type": "function", "function": {
            "name": "get_current_weather",
            "arguments": '{"format":"celsius","location":"Tokyo, JP"}'}},
    ]
    assert data["usage"]["total_tokens"] == 219 + 96


async def test_tool_calls_from_servers_that_send_no_ids_get_generated_unique_ids():
    data = await _completion("chat_tool_calls_no_ids.json")
    (call,) = data["choices"][0]["message"]["tool_calls"]
    assert call["id"].startswith("call-")
    assert len(call["id"]) > len("call-")
    assert json.loads(call["function"]["arguments"]) == {"format": "celsius",
                                                         "location": "Paris, FR"}
    assert data["choices"][0]["finish_reason"] == "tool_calls"


async def test_structured_output_arrives_as_the_json_text_content():
    data = await _completion("chat_json_schema.json", "llama3.1")
    assert json.loads(data["choices"][0]["message"]["content"]) == {"age": 22, "available": False}
    assert data["created"] == 1733446018


@pytest.mark.parametrize("split", [None, 7, 1])
async def test_text_stream_becomes_role_then_text_then_finish_then_usage_chunks(split):
    chunks = await _chunks("stream_text.ndjson", split)
    assert [_plain(c.choices) for c in chunks] == [
        [{"index": 0, "delta": {"role": "assistant", "content": ""},
          "finish_reason": None, "logprobs": None}],
        [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None, "logprobs": None}],
        [{"index": 0, "delta": {"content": "! How"}, "finish_reason": None, "logprobs": None}],
        [{"index": 0, "delta": {"content": " can I help — "}, "finish_reason": None,
          "logprobs": None}],
        [{"index": 0, "delta": {"content": "today? 😊"}, "finish_reason": None,
          "logprobs": None}],
        [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}],
        [],
    ]
    assert _plain(chunks[-1].usage) == {"prompt_tokens": 12, "completion_tokens": 19,
                                        "total_tokens": 31, "prompt_tokens_details": None,
                                        "completion_tokens_details": None}
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert {(c.object, c.created, c.model) for c in chunks} == {
        ("chat.completion.chunk", 1760951731, "qwen3:8b")}


async def test_tool_call_stream_opens_each_call_then_sends_its_arguments_then_tool_calls_finish():
    chunks = await _chunks("stream_tool_calls.ndjson", 13)
    deltas = [_plain(c.choices[0].delta) for c in chunks if c.choices]
    assert deltas[:2] == [{"role": "assistant", "content": ""}, {"content": "Looking that up. "}]
    assert deltas[2:6] == [
        {"tool_calls": [{"index": 0, "id": "call_4hm2c7ze", "type": "function",
                         "function": {"name": "get_current_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {
            "arguments": '{"format":"celsius","location":"Paris, FR"}'}}]},
        {"tool_calls": [{"index": 1, "id": deltas[4]["tool_calls"][0]["id"], "type": "function",
                         "function": {"name": "get_current_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"timezone":"Europe/Paris"}'}}]},
    ]
    assert deltas[4]["tool_calls"][0]["id"].startswith("call-")
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 142 + 37


async def test_length_stream_finishes_with_length():
    chunks = await _chunks("stream_length.ndjson")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Once upon a"
    assert chunks[-2].choices[0].finish_reason == "length"


async def test_stream_state_records_done_finish_reason_and_usage_at_the_done_line():
    adapter = OllamaAdapter()
    state = adapter.new_stream_state(_chat_request(True), _target())
    lines = (RECORDED / "stream_text.ndjson").read_bytes().splitlines()
    for line in lines[:-1]:
        adapter.parse_stream_event(line, state)
        assert not state.done
    adapter.parse_stream_event(lines[-1], state)
    assert state.done
    assert state.finish_reason == "stop"
    assert state.usage is not None
    assert state.usage.prompt_tokens == 12


async def test_error_line_mid_stream_raises_a_mapped_error_after_the_text_so_far():
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(ProviderServerError) as info:
        await _run(_client("stream_error.ndjson"), True, seen)
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "The sky"
    assert info.value.provider == "ollama"
    assert info.value.upstream_status == 200
    assert "llama runner process has terminated" in info.value.message


@pytest.mark.parametrize(("name", "status", "exc"), [
    ("error_model_not_found.json", 404, ModelNotFoundError),
    ("error_model_not_found_quoted.json", 404, ModelNotFoundError),
    ("error_model_not_found.json", 400, ModelNotFoundError),
    ("error_no_tools.json", 400, BadRequestError),
    ("error_context.json", 400, ContextLengthExceededError),
    ("error_runner.json", 500, ProviderServerError),
    ("error_busy.json", 503, ProviderOverloadedError),
    ("error_unauthorized.json", 401, AuthenticationError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_error_bodies_map_to_the_error_tree(name, status, exc, stream):
    client = _client(name, status=status)
    with pytest.raises(ProviderError) as info:
        await _run(client, stream)
    assert type(info.value) is exc
    assert (info.value.provider, info.value.model) == ("ollama", "llama3.2")
    assert info.value.upstream_status == status
    assert json.loads((RECORDED / name).read_bytes())["error"] in info.value.message


async def test_embed_response_becomes_openai_embeddings_with_usage_from_prompt_eval_count():
    req = embedding_request_from_dict({"model": "gw-embed", "input": ["a", "b"]})
    out = await _client("embed.json").embed(req, _target("all-minilm"))
    data = _plain(out)
    assert data["object"] == "list"
    assert data["model"] == "all-minilm"
    assert [(d["object"], d["index"]) for d in data["data"]] == [("embedding", 0), ("embedding", 1)]
    assert data["data"][0]["embedding"][:2] == [0.010071029, -0.0017594862]
    assert len(data["data"][1]["embedding"]) == 10
    assert data["usage"] == {"prompt_tokens": 12, "total_tokens": 12}


async def test_base64_embeddings_are_little_endian_float32_as_openai_encodes_them():
    req = embedding_request_from_dict({"model": "gw-embed", "input": "a",
                                       "encoding_format": "base64"})
    out = await _client("embed.json").embed(req, _target("all-minilm"))
    encoded = out.data[0].embedding
    assert isinstance(encoded, str)
    floats = struct.unpack("<10f", base64.b64decode(encoded))
    assert floats[0] == pytest.approx(0.010071029)


async def test_model_listing_answer_validates_the_key():
    client = _client("tags.json")
    await client.validate_key(_target())


async def test_unparseable_bodies_are_provider_response_errors():
    client = HttpProviderClient(OllamaAdapter(), ReplayTransport(
        Recorded(body=b'{"model":"llama3.2","created_at":"20', headers=JSON)))
    with pytest.raises(ProviderResponseError):
        await client.chat(_chat_request(), _target())


def test_capabilities_follow_the_model_family():
    adapter = OllamaAdapter()
    assert adapter.capabilities("llama3.2").chat
    assert not adapter.capabilities("llama3.2").vision
    assert adapter.capabilities("llava:13b").vision
    assert adapter.capabilities("llama3.2-vision:11b").vision
    embed = adapter.capabilities("nomic-embed-text:latest")
    assert embed.embeddings
    assert not embed.chat
    assert not embed.tools
    assert adapter.capabilities("all-minilm").embeddings
