"""Recorded OpenAI wire bodies (completions, SSE captures, embeddings, error bodies) → exact
canonical results.

OpenAI's shape is the canonical one, so these pin that nothing is lost on the way through:
ids, `created`, `system_fingerprint`, `service_tier` and every usage detail survive, and each
error body lands on the right class. Replayed over a `ReplayTransport`: no sockets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    ModelNotFoundError,
    ProviderServerError,
    QuotaExhaustedError,
    RateLimitedError,
)
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.openai.adapter import OpenAIAdapter
from gatewise.resilience.retry import is_retryable
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.responses import (
    ChatCompletion,
    Choice,
    CompletionTokensDetails,
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
TARGET = Target(provider="openai", wire="openai", model="gpt-4o-mini",
                api_base="https://api.openai.com/v1", api_key="sk-test")


def _recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def _request(stream: bool = False, **extra: Any):
    return chat_request_from_dict({"model": "gpt", "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}], **extra})


async def _chat(name: str) -> ChatCompletion:
    client = HttpProviderClient(OpenAIAdapter(), ReplayTransport(Recorded(body=_recorded(name))))
    return await client.chat(_request(), TARGET)


async def _stream(rec: Recorded) -> list[ChatCompletionChunk]:
    client = HttpProviderClient(OpenAIAdapter(), ReplayTransport(rec))
    return [c async for c in client.stream(_request(stream=True), TARGET)]


def _usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
                 completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning))


async def test_a_text_completion_keeps_ids_fingerprint_tier_and_cached_tokens():
    out = await _chat("chat_text.json")
    assert out == ChatCompletion(
        id="chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", created=1741569952,
        model="gpt-4o-2024-08-06",
        choices=[Choice(index=0, message=ResponseMessage(
            content="Hello! How can I assist you today?", annotations=[]),
            finish_reason="stop")],
        usage=_usage(1117, 10, cached=1024),
        system_fingerprint="fp_fc9f1d7035", service_tier="default")
    assert out.usage is not None and out.usage.cached_tokens == 1024


async def test_parallel_tool_calls_come_back_in_order_with_null_content():
    out = await _chat("chat_tool_calls.json")
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message == ResponseMessage(content=None, tool_calls=[
        ToolCall(id="call_DdmO9pD3xa9XTPNJ32zg2hcA", type="function", function=FunctionCall(
            name="get_weather", arguments='{"location":"Paris, France","unit":"celsius"}')),
        ToolCall(id="call_3Nwq8tpcs6YuALOvzTDTtCDd", type="function",
                 function=FunctionCall(name="get_time", arguments="{}")),
    ], annotations=[])
    assert out.usage == _usage(118, 47)


async def test_a_reasoning_model_that_spent_its_budget_thinking_reports_length():
    out = await _chat("chat_reasoning_length.json")
    assert out.choices[0].finish_reason == "length"
    assert out.choices[0].message.content == ""
    assert out.usage == _usage(25, 256, reasoning=256)
    assert out.system_fingerprint is None


def _chunk(delta: Delta, finish: str | None = None, *, cid: str, created: int) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=cid, created=created, model="gpt-4o-mini-2024-07-18",
                               choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)],
                               system_fingerprint="fp_b376dfbbd5")


async def test_a_text_stream_with_usage_becomes_the_same_chunks_and_a_final_usage_chunk():
    chunks = await _stream(Recorded(headers=SSE, body=_recorded("stream_text.sse")))
    ids = {"cid": "chatcmpl-BJf4LJ5ZbUN3ZyivR9KEyCC9t0Eg3", "created": 1744198761}
    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    last = _chunk(Delta(), **ids)
    last.choices = []
    last.usage = _usage(19, 9)
    assert chunks == [
        _chunk(Delta(role="assistant", content=""), **ids),
        *[_chunk(Delta(content=w), **ids) for w in words],
        _chunk(Delta(), "stop", **ids),
        last,
    ]


async def test_a_streamed_tool_call_arrives_as_argument_fragments_that_join_to_json():
    chunks = await _stream(Recorded(headers=SSE, body=_recorded("stream_tool_call.sse")))
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    assert first.tool_calls == [DeltaToolCall(
        index=0, id="call_gH0JJ0XpNcvnpq5ONbeQzq5x", type="function",
        function=DeltaFunctionCall(name="get_weather", arguments=""))]
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                   for tc in c.choices[0].delta.tool_calls or [] if tc.function)
    assert args == '{"location":"Paris, France","unit":"celsius"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage == _usage(81, 17)


async def test_an_error_event_in_the_middle_of_a_stream_raises_after_the_text_so_far():
    seen: list[ChatCompletionChunk] = []
    client = HttpProviderClient(OpenAIAdapter(), ReplayTransport(
        Recorded(headers=SSE, body=_recorded("stream_error.sse"))))
    with pytest.raises(ProviderServerError) as info:
        async for c in client.stream(_request(stream=True), TARGET):
            seen.append(c)
    assert [c.choices[0].delta.content for c in seen] == ["", "Once"]
    assert "server had an error" in str(info.value)


async def test_embeddings_keep_order_vectors_and_usage():
    client = HttpProviderClient(OpenAIAdapter(), ReplayTransport(
        Recorded(body=_recorded("embeddings.json"))))
    target = Target(provider="openai", wire="openai", model="text-embedding-3-small",
                    api_base="https://api.openai.com/v1", api_key="sk-test")
    out = await client.embed(EmbeddingRequest(model="e", input=["alpha", "beta gamma"]), target)
    assert [d.index for d in out.data] == [0, 1]
    assert out.data[0].embedding == [-0.006929283, -0.005336422, 0.000024047, -0.024047505,
                                     0.013168129]
    assert out.model == "text-embedding-3-small"
    assert (out.usage.prompt_tokens, out.usage.total_tokens) == (8, 8)


@pytest.mark.parametrize(("name", "status", "exc"), [
    ("error_invalid_api_key.json", 401, AuthenticationError),
    ("error_model_not_found.json", 404, ModelNotFoundError),
    ("error_context_length.json", 400, ContextLengthExceededError),
    ("error_invalid_request.json", 400, BadRequestError),
    ("error_rate_limit.json", 429, RateLimitedError),
    ("error_insufficient_quota.json", 429, QuotaExhaustedError),
    ("error_server.json", 500, ProviderServerError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_error_bodies_map_to_the_error_tree(name, status, exc, stream):
    rec = Recorded(status=status, body=_recorded(name),
                   headers={"content-type": "application/json",
                            "x-request-id": "req_4a5f0e2b8c6d41a9b3e7f1d2c8a9b0e1"})
    client = HttpProviderClient(OpenAIAdapter(), ReplayTransport(rec))
    with pytest.raises(exc) as info:
        await (_stream(rec) if stream else client.chat(_request(), TARGET))
    err = info.value
    assert type(err) is exc
    assert (err.provider, err.model, err.upstream_status) == ("openai", "gpt-4o-mini", status)


async def test_a_rate_limit_keeps_retry_after_and_quota_exhaustion_is_a_rate_limit_too():
    headers = {"content-type": "application/json", "retry-after": "1",
               "x-ratelimit-remaining-tokens": "1440", "x-ratelimit-reset-tokens": "510ms"}
    with pytest.raises(RateLimitedError) as info:
        await HttpProviderClient(OpenAIAdapter(), ReplayTransport(Recorded(
            status=429, body=_recorded("error_rate_limit.json"), headers=headers))
        ).chat(_request(), TARGET)
    assert info.value.retry_after == 1.0 and info.value.retryable
    # Out of quota is also a 429 and reaches callers as a rate limit, so clients back off and
    # fallbacks apply; but it is never retried on the same deployment.
    with pytest.raises(QuotaExhaustedError) as quota:
        await HttpProviderClient(OpenAIAdapter(), ReplayTransport(Recorded(
            status=429, body=_recorded("error_insufficient_quota.json")))).chat(_request(), TARGET)
    assert isinstance(quota.value, RateLimitedError)
    assert not quota.value.retryable and not is_retryable(quota.value)
    assert is_retryable(info.value)
