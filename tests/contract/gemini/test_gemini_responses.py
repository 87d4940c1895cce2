"""Gemini contract, responses: recorded wire bodies (JSON, SSE captures, error bodies) → the
exact canonical results. `ReplayTransport` answers; no sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.transport.replay import Recorded
from tests.contract.gemini.recording import (
    BASE,
    SIG,
    SSE,
    chat_request,
    gemini_target,
    plain,
    recorded,
    replay,
)

# --- non-streaming responses -------------------------------------------------------------------

async def test_text_response_skips_thought_parts_and_reports_cached_and_reasoning_tokens():
    client, _ = replay(Recorded(body=recorded("chat_text.json")))
    out = await client.chat(chat_request(), gemini_target())
    assert plain(out) == {
        "id": "mK1yaPW8NMGdz7IP5ZOSsQ4", "object": "chat.completion", "created": out.created,
        "model": "gemini-2.5-flash",
        "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "The capital of France is **Paris**.", "refusal": None,
            "tool_calls": None, "annotations": None}, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 2079, "completion_tokens": 9 + 312, "total_tokens": 2400,
                  "prompt_tokens_details": {"cached_tokens": 1019},
                  "completion_tokens_details": {"reasoning_tokens": 312}},
        "system_fingerprint": None, "service_tier": None,
    }
    assert out.created > 1_700_000_000


async def test_parallel_function_calls_become_tool_calls_with_json_string_arguments():
    client, _ = replay(Recorded(body=recorded("chat_tool_calls.json")))
    out = await client.chat(chat_request(), gemini_target())
    (choice,) = out.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 2
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert [c.function.arguments for c in calls] == [
        '{"location":"Paris, France","unit":"celsius"}',
        '{"location":"Tokyo, Japan","unit":"celsius"}',
    ]
    assert all(c.type == "function" for c in calls)
    assert calls[0].id.startswith("call-")
    assert calls[0].id.endswith(f"__thought__{SIG}")
    assert calls[1].id.startswith("call-")
    assert "__thought__" not in calls[1].id
    assert calls[0].id != calls[1].id
    assert out.usage is not None
    assert out.usage.completion_tokens == 46 + 104


async def test_each_candidate_becomes_a_choice_with_its_own_finish_reason():
    client, _ = replay(Recorded(body=recorded("chat_two_candidates.json")))
    out = await client.chat(chat_request(n=2), gemini_target("gemini-2.0-flash"))
    assert [(c.index, c.message.content, c.finish_reason) for c in out.choices] == [
        (0, "Roses are red,\nthe sky is wide,", "length"),
        (1, "A quiet sea.", "stop"),
    ]
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == \
        (6, 16, 22)
    assert out.usage.prompt_tokens_details is None
    assert out.usage.completion_tokens_details is None


async def test_a_candidate_stopped_for_safety_reports_content_filter():
    client, _ = replay(Recorded(body=recorded("chat_safety_stop.json")))
    out = await client.chat(chat_request(), gemini_target("gemini-2.0-flash"))
    assert out.choices[0].finish_reason == "content_filter"
    assert out.choices[0].message.content == ""
    assert out.choices[0].message.tool_calls is None


@pytest.mark.parametrize("stream", [False, True])
async def test_a_blocked_prompt_raises_content_filtered_error(stream):
    if stream:
        client, _ = replay(Recorded(headers=SSE, body=recorded("stream_prompt_blocked.sse")))
        with pytest.raises(ContentFilteredError) as info:
            [c async for c in client.stream(chat_request(stream=True), gemini_target())]
    else:
        client, _ = replay(Recorded(body=recorded("chat_prompt_blocked.json")))
        with pytest.raises(ContentFilteredError) as info:
            await client.chat(chat_request(), gemini_target())
    assert "PROHIBITED_CONTENT" in str(info.value)
    assert info.value.provider == "gemini"


# --- streams -----------------------------------------------------------------------------------

def _chunk(choices: list[dict[str, Any]], usage: Any = None, *, created: int,
           rid: str = "IZI2acSKMoWl0-kPmYj2yQc") -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "created": created,
            "model": "gemini-2.5-flash", "choices": choices, "usage": usage,
            "system_fingerprint": None}


def _choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]


@pytest.mark.parametrize("piece", [None, 7, 1])
async def test_text_stream_becomes_openai_chunks_ending_with_usage(piece):
    raw = recorded("stream_text.sse")
    chunks = None if piece is None else [raw[i:i + piece] for i in range(0, len(raw), piece)]
    client, transport = replay(Recorded(headers=SSE, body=raw, chunks=chunks))
    out = [plain(c) async for c in client.stream(chat_request(stream=True), gemini_target())]
    created = out[0]["created"]
    assert out == [
        _chunk(_choice({"role": "assistant", "content": ""}), created=created),
        _chunk(_choice({"content": "Hello"}), created=created),
        _chunk(_choice({"content": " there! How can I help you"}), created=created),
        _chunk(_choice({"content": " today? 2 < 3, ça va 😀"}), created=created),
        _chunk(_choice({}, "stop"), created=created),
        _chunk([], {"prompt_tokens": 7, "completion_tokens": 12 + 46, "total_tokens": 65,
                    "prompt_tokens_details": None,
                    "completion_tokens_details": {"reasoning_tokens": 46}}, created=created),
    ]
    assert transport.requests[0].url == \
        f"{BASE}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


async def test_streamed_function_calls_become_tool_call_header_and_argument_chunks():
    client, _ = replay(Recorded(headers=SSE, body=recorded("stream_tool_calls.sse")))
    out = [c async for c in client.stream(chat_request(stream=True), gemini_target())]
    deltas = [plain(c.choices[0].delta) for c in out if c.choices]
    first_id = deltas[1]["tool_calls"][0]["id"]
    second_id = deltas[3]["tool_calls"][0]["id"]
    assert first_id.endswith("__thought__CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMd"
                             "fpmNpgBwplAXLI2nyA/pIFcnZwFm+7WFmLyMd8R4DXwsjqaeAAfCKo5G1xIkbAlJp8")
    assert deltas == [
        {"role": "assistant", "content": "Let me check both cities."},
        {"tool_calls": [{"index": 0, "id": first_id, "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"location":"Paris, France"}'}}]},
        {"tool_calls": [{"index": 1, "id": second_id, "type": "function",
                         "function": {"name": "get_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"timezone":"Asia/Tokyo"}'}}]},
        {},
    ]
    assert out[-2].choices[0].finish_reason == "tool_calls"
    assert out[-1].choices == []
    assert out[-1].usage is not None
    assert out[-1].usage.completion_tokens == 31 + 104


async def test_an_error_event_mid_stream_raises_after_the_text_alreadysent():
    client, _ = replay(Recorded(headers=SSE, body=recorded("stream_error_midway.sse")))
    seen: list[str] = []

    async def read_all() -> None:
        async for c in client.stream(chat_request(stream=True), gemini_target("gemini-2.0-flash")):
            seen.append(c.choices[0].delta.content or "")

    with pytest.raises(ProviderOverloadedError) as info:
        await read_all()
    assert seen == ["Once upon a time"]
    assert info.value.provider == "gemini"


async def test_a_stream_that_ends_before_any_finish_reason_is_a_bad_response():
    events = recorded("stream_text.sse").split(b"\r\n\r\n")
    truncated = b"\r\n\r\n".join(events[:2]) + b"\r\n\r\n"
    client, _ = replay(Recorded(headers=SSE, body=truncated))
    with pytest.raises(ProviderResponseError, match="end marker"):
        [c async for c in client.stream(chat_request(stream=True), gemini_target())]


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "status", "exc"), [
    ("error_400_api_key_invalid.json", 400, AuthenticationError),
    ("error_403_unregistered_caller.json", 403, AuthenticationError),
    ("error_403_permission_denied.json", 403, PermissionDeniedError),
    ("error_404_model_not_found.json", 404, ModelNotFoundError),
    ("error_400_token_limit.json", 400, ContextLengthExceededError),
    ("error_400_invalid_argument.json", 400, BadRequestError),
    ("error_400_safety_settings.json", 400, BadRequestError),
    ("error_429_quota.json", 429, RateLimitedError),
    ("error_429_resource_exhausted_list.json", 429, RateLimitedError),
    ("error_500_internal.json", 500, ProviderServerError),
    ("error_503_unavailable.json", 503, ProviderOverloadedError),
    ("error_504_deadline_exceeded.json", 504, ProviderTimeoutError),
])
async def test_error_bodies_map_to_the_gatewise_error_tree(name, status, exc):
    body = recorded(name)
    client, _ = replay(Recorded(status=status, body=body))
    with pytest.raises(exc) as info:
        await client.chat(chat_request(), gemini_target())
    err = info.value
    assert type(err) is exc
    assert (err.provider, err.model, err.upstream_status, err.body) == \
        ("gemini", "gemini-2.5-flash", status, body)
    message = json.loads(body)
    message = (message[0] if isinstance(message, list) else message)["error"]["message"]
    assert message.split("\n")[0] in str(err)


async def test_retry_delay_in_the_body_becomes_retry_after():
    client, _ = replay(Recorded(status=429, body=recorded("error_429_quota.json")))
    with pytest.raises(RateLimitedError) as info:
        await client.chat(chat_request(), gemini_target())
    assert info.value.retry_after == 19.0


async def test_a_retry_after_header_wins_over_the_body_delay():
    client, _ = replay(Recorded(status=429, body=recorded("error_429_quota.json"),
                                 headers={"content-type": "application/json",
                                          "retry-after": "3"}))
    with pytest.raises(RateLimitedError) as info:
        await client.chat(chat_request(), gemini_target())
    assert info.value.retry_after == 3.0


async def test_a_rate_limit_without_retry_info_has_no_retry_after():
    client, _ = replay(Recorded(status=429, body=recorded("error_429_resource_exhausted_list.json")))
    with pytest.raises(RateLimitedError) as info:
        await client.chat(chat_request(), gemini_target())
    assert info.value.retry_after is None


async def test_stream_errors_before_the_first_event_are_mapped_the_same_way():
    client, _ = replay(Recorded(status=400, body=recorded("error_400_api_key_invalid.json")))
    with pytest.raises(AuthenticationError):
        [c async for c in client.stream(chat_request(stream=True), gemini_target())]
