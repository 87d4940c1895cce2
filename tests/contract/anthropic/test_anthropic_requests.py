"""Canonical chat requests → the exact Anthropic Messages API requests (URL, headers, body).

Every request goes through `HttpProviderClient` over a `ReplayTransport`, so what is asserted
is what would be put on the wire; no sockets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.providers.anthropic.adapter import AnthropicAdapter
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.transport.base import HttpRequest, Timeouts
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.validation import chat_request_from_dict

RECORDED = Path(__file__).parent / "recorded"
MODEL = "claude-sonnet-4-20250514"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and country"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}


def _target(**kw: Any) -> Target:
    base: dict[str, Any] = {"provider": "anthropic", "wire": "anthropic", "model": MODEL,
                            "api_base": "https://api.anthropic.com",
                            "api_key": "sk-ant-api03-test", "auth": "x-api-key"}
    base.update(kw)
    return Target(**base)


def _expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / name).read_text(encoding="utf-8"))
    return data


async def _sent(body: dict[str, Any], target: Target | None = None) -> HttpRequest:
    """The request gatewise puts on the wire for a canonical request body."""
    req = chat_request_from_dict({"model": "claude", **body})
    if req.stream:
        reply = Recorded(headers={"content-type": "text/event-stream"},
                         body=(RECORDED / "stream_text.sse").read_bytes())
    else:
        reply = Recorded(body=(RECORDED / "message_text.json").read_bytes())
    transport = ReplayTransport(reply)
    client = HttpProviderClient(AnthropicAdapter(), transport)
    if req.stream:
        [c async for c in client.stream(req, target or _target())]
    else:
        await client.chat(req, target or _target())
    assert len(transport.requests) == 1
    return transport.requests[0]


def _body(request: HttpRequest) -> dict[str, Any]:
    assert request.body is not None
    data: dict[str, Any] = json.loads(request.body)
    return data


def _as_recorded(request: HttpRequest) -> dict[str, Any]:
    return {"method": request.method, "url": request.url, "headers": request.headers,
            "body": _body(request)}


async def test_plain_chat_becomes_the_recorded_messages_request():
    sent = await _sent({
        "messages": [{"role": "system", "content": "You are a concise assistant."},
                     {"role": "user", "content": "Hello, Claude"}],
        "max_completion_tokens": 256, "temperature": 0.7, "top_p": 0.9,
        "stop": "\n\nHuman:", "user": "user-1234", "seed": 7, "frequency_penalty": 0.5,
    }, _target(headers={"anthropic-beta": "token-efficient-tools-2025-02-19"}))
    assert _as_recorded(sent) == _expected("request_chat.json")


async def test_tool_history_becomes_tool_use_and_merged_tool_result_turns():
    sent = await _sent({
        "stream": True,
        "messages": [
            {"role": "user", "content": "What's the weather and time in Paris?"},
            {"role": "assistant", "content": "I'll check both for you.", "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                 "function": {"name": "get_weather",
                              "arguments": '{"location": "Paris, France", "unit": "celsius"}'}},
                {"id": "toolu_01BwQbhbZJR7uKSmVWjLomSC", "type": "function",
                 "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
             "content": "18°C, light rain"},
            {"role": "tool", "tool_call_id": "toolu_01BwQbhbZJR7uKSmVWjLomSC",
             "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "Answer in one sentence."},
        ],
        "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": "required",
        "parallel_tool_calls": False,
    })
    assert _as_recorded(sent) == _expected("request_tools_history.json")


async def test_json_schema_output_rides_on_a_forced_synthetic_tool():
    schema = {"type": "object",
              "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"},
                             "conditions": {"type": "array", "items": {"type": "string"}}},
              "required": ["city", "temperature_c"], "additionalProperties": False}
    sent = await _sent({
        "messages": [{"role": "developer", "content": "Report weather as data."},
                     {"role": "user", "content": "Weather report for Paris, please."}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather_report", "description": "A weather report for one city.",
            "schema": schema, "strict": True}},
    })
    assert _as_recorded(sent) == _expected("request_json_schema.json")


async def test_json_object_output_forces_a_permissive_object_tool():
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}],
                              "response_format": {"type": "json_object"}}))
    assert body["tools"] == [{"name": "json_response", "description": "Reply with a JSON object.",
                              "input_schema": {"type": "object", "additionalProperties": True}}]
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


async def test_a_non_object_schema_is_wrapped_because_tool_inputs_must_be_objects():
    body = _body(await _sent({"messages": [{"role": "user", "content": "list"}],
                              "response_format": {"type": "json_schema", "json_schema": {
                                  "name": "names", "schema": {"type": "array",
                                                              "items": {"type": "string"}}}}}))
    assert body["tools"][0]["input_schema"] == {
        "type": "object", "properties": {"value": {"type": "array", "items": {"type": "string"}}},
        "required": ["value"]}


async def test_json_output_with_caller_tools_offers_both_without_forcing():
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}],
                              "tools": [WEATHER_TOOL],
                              "response_format": {"type": "json_object"}}))
    assert [t["name"] for t in body["tools"]] == ["get_weather", "json_response"]
    assert "tool_choice" not in body


async def test_max_tokens_defaults_to_4096_because_anthropic_requires_it():
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}]}))
    assert body["max_tokens"] == 4096


async def test_max_tokens_uses_either_spelling_of_the_callers_limit():
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 77}))
    assert body["max_tokens"] == 77


async def test_target_params_fill_what_the_request_leaves_unset():
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}], "top_p": 0.5},
                             _target(params={"max_tokens": 1000, "temperature": 0.2,
                                             "top_p": 0.1})))
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (1000, 0.2, 0.5)


@pytest.mark.parametrize(("given", "sent"), [(0.0, 0.0), (1.0, 1.0), (1.5, 1.0), (2.0, 1.0)])
async def test_temperature_is_clamped_to_anthropics_0_to_1_range(given, sent):
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}],
                              "temperature": given}))
    assert body["temperature"] == sent


async def test_several_system_and_developer_messages_become_system_text_blocks():
    body = _body(await _sent({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
    ]}))
    assert body["system"] == [{"type": "text", "text": "Be brief."},
                              {"type": "text", "text": "Use metric units."}]
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_consecutive_same_role_messages_are_merged_so_roles_alternate():
    body = _body(await _sent({"messages": [
        {"role": "user", "content": "first"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "a1"},
        {"role": "assistant", "content": [{"type": "text", "text": "a2"}]},
        {"role": "user", "content": "third"},
    ]}))
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first"},
                                     {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a1"},
                                          {"type": "text", "text": "a2"}]},
        {"role": "user", "content": "third"},
    ]


async def test_user_images_become_base64_or_url_image_blocks():
    body = _body(await _sent({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/cat.png",
                                            "detail": "high"}},
    ]}]}))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "/9j/4AAQSkZJRg=="}},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/cat.png"}},
    ]


async def test_inline_pdf_files_become_document_blocks():
    body = _body(await _sent({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQ=",
                                  "filename": "a.pdf"}}]}]}))
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVBERi0xLjQ="}}]


@pytest.mark.parametrize(("part", "param"), [
    ({"type": "image_url", "image_url": {"url": "ftp://host/cat.png"}},
     "messages[0].content[0].image_url.url"),
    ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
     "messages[0].content[0]"),
    ({"type": "file", "file": {"file_id": "file-abc123"}}, "messages[0].content[0].file"),
])
async def test_inputs_anthropic_cannot_take_are_refused_naming_the_part(part, param):
    with pytest.raises(InvalidRequestError) as info:
        await _sent({"messages": [{"role": "user", "content": [part]}]})
    assert info.value.param == param


@pytest.mark.parametrize(("choice", "parallel", "wire"), [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None,
     {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_weather"}}, False,
     {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
])
async def test_tool_choice_maps_to_anthropics_choice_types(choice, parallel, wire):
    req: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}],
                           "tools": [WEATHER_TOOL]}
    if choice is not None:
        req["tool_choice"] = choice
    if parallel is not None:
        req["parallel_tool_calls"] = parallel
    assert _body(await _sent(req))["tool_choice"] == wire


async def test_tools_without_a_choice_send_no_tool_choice():
    body = _body(await _sent({"messages": [{"role": "user", "content": "hi"}],
                              "tools": [WEATHER_TOOL]}))
    assert "tool_choice" not in body
    assert body["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]


@pytest.mark.parametrize("arguments", ['{"location": "Par', "[1, 2]"])
async def test_assistant_tool_call_arguments_that_are_not_a_json_object_are_refused(arguments):
    with pytest.raises(InvalidRequestError) as info:
        await _sent({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "toolu_1", "type": "function",
                                                  "function": {"name": "get_weather",
                                                               "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "x"}]})
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


async def test_more_than_one_candidate_is_refused():
    with pytest.raises(InvalidRequestError) as info:
        await _sent({"messages": [{"role": "user", "content": "hi"}], "n": 2})
    assert info.value.param == "n"


async def test_streaming_requests_ask_for_a_stream():
    assert _body(await _sent({"messages": [{"role": "user", "content": "hi"}],
                              "stream": True}))["stream"] is True
    assert "stream" not in _body(await _sent({"messages": [{"role": "user", "content": "hi"}]}))


@pytest.mark.parametrize("base", ["https://proxy.example.com", "https://proxy.example.com/",
                                  "https://proxy.example.com/v1",
                                  "https://proxy.example.com/v1/messages"])
async def test_api_base_is_the_host_root_and_a_trailing_v1_is_tolerated(base):
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}]}, _target(api_base=base))
    assert sent.url == "https://proxy.example.com/v1/messages"


async def test_bearer_auth_style_sends_an_authorization_header_instead_of_x_api_key():
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}]},
                       _target(auth="bearer", api_key="tok-123"))
    assert sent.headers["authorization"] == "Bearer tok-123"
    assert "x-api-key" not in sent.headers


async def test_target_timeouts_travel_with_the_request():
    t = Timeouts(total=30.0, connect=2.0, read=5.0)
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}]}, _target(timeouts=t))
    assert sent.timeouts is t


async def test_validate_key_lists_models_with_the_key_and_no_body():
    transport = ReplayTransport(Recorded(body=(RECORDED / "models.json").read_bytes()))
    await HttpProviderClient(AnthropicAdapter(), transport).validate_key(_target())
    sent = transport.requests[0]
    assert (sent.method, sent.url, sent.body) == ("GET", "https://api.anthropic.com/v1/models",
                                                  None)
    assert sent.headers == {"accept": "application/json", "anthropic-version": "2023-06-01",
                            "x-api-key": "sk-ant-api03-test"}


async def test_embeddings_are_refused_because_anthropic_has_no_embeddings_api():
    transport = ReplayTransport(Recorded())
    client = HttpProviderClient(AnthropicAdapter(), transport)
    with pytest.raises(InvalidRequestError, match="no embeddings API"):
        await client.embed(EmbeddingRequest(model="claude", input="hi"), _target())
    assert transport.requests == []
