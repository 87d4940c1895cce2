"""Canonical OpenAI-shaped requests become exactly the HTTP requests Ollama's native API expects.

Driven through `HttpProviderClient` over a `ReplayTransport`: no sockets, and each test reads the
request the adapter actually handed to the transport.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.ollama.adapter import OllamaAdapter
from gatewise.transport.base import HttpRequest, Timeouts
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict

RECORDED = Path(__file__).parent / "recorded"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City and country"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "format"],
        },
        "strict": True,
    },
}
CLOCK = {"type": "function", "function": {"name": "get_current_time",
                                          "parameters": {"type": "object", "properties": {}}}}


def _target(**kw: Any) -> Target:
    kw.setdefault("model", "llama3.2")
    return Target(provider="ollama", wire="ollama", **kw)


def _replay(name: str, ctype: str = "application/json; charset=utf-8") -> ReplayTransport:
    body = (RECORDED / name).read_bytes()
    if name.endswith(".ndjson"):
        return ReplayTransport(Recorded(chunks=[body], headers={"content-type": ctype}))
    return ReplayTransport(Recorded(body=body, headers={"content-type": ctype}))


async def _sent(req: dict[str, Any], target: Target | None = None) -> HttpRequest:
    request = chat_request_from_dict({"model": "gw-alias", **req})
    target = target or _target()
    if request.stream:
        transport = _replay("stream_text.ndjson", "application/x-ndjson")
        [c async for c in HttpProviderClient(OllamaAdapter(), transport).stream(request, target)]
    else:
        transport = _replay("chat.json")
        await HttpProviderClient(OllamaAdapter(), transport).chat(request, target)
    assert len(transport.requests) == 1
    return transport.requests[0]


def _body(sent: HttpRequest) -> Any:
    assert sent.body is not None
    return json.loads(sent.body)


async def test_plain_chat_posts_to_api_chat_on_the_default_local_host_with_stream_false():
    sent = await _sent({"messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Why is the sky blue?"}]})
    assert sent.method == "POST"
    assert sent.url == "http://localhost:11434/api/chat"
    assert sent.headers == {"accept": "application/json", "content-type": "application/json"}
    assert sent.body == (
        b'{"model":"llama3.2","messages":[{"role":"system","content":"Be brief."},'
        b'{"role":"user","content":"Why is the sky blue?"}],"stream":false}'
    )


async def test_streaming_request_says_stream_true_and_accepts_ndjson():
    sent = await _sent({"stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert _body(sent)["stream"] is True
    assert sent.headers["accept"] == "application/x-ndjson"


@pytest.mark.parametrize("base", ["http://gpu-box:11434", "http://gpu-box:11434/"])
async def test_api_base_is_the_host_root_with_or_without_trailing_slash(base):
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}]}, _target(api_base=base))
    assert sent.url == "http://gpu-box:11434/api/chat"


async def test_bearer_key_extra_headers_and_timeouts_come_from_the_target():
    timeouts = Timeouts(total=30.0, connect=2.0, read=9.0)
    target = _target(api_base="https://ollama.com", api_key="ok-123",
                     headers={"x-tenant": "acme"}, timeouts=timeouts)
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}]}, target)
    assert sent.url == "https://ollama.com/api/chat"
    assert sent.headers["authorization"] == "Bearer ok-123"
    assert sent.headers["x-tenant"] == "acme"
    assert sent.timeouts == timeouts


async def test_no_authorization_header_without_a_key_or_with_auth_none():
    for target in (_target(), _target(api_key="secret", auth="none")):
        sent = await _sent({"messages": [{"role": "user", "content": "hi"}]}, target)
        assert "authorization" not in sent.headers


async def test_sampling_fields_become_ollama_options_and_request_values_beat_deployment_params():
    target = _target(params={"num_ctx": 8192, "temperature": 0.2, "top_k": 20,
                             "keep_alive": "10m"})
    sent = await _sent({
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 128, "stop": "\n\n", "seed": 42,
        "presence_penalty": 0.5, "frequency_penalty": 0.25,
    }, target)
    body = _body(sent)
    assert body["options"] == {
        "num_ctx": 8192, "temperature": 0.7, "top_k": 20, "top_p": 0.9, "seed": 42,
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "num_predict": 128,
        "stop": ["\n\n"],
    }
    assert body["keep_alive"] == "10m"


async def test_max_completion_tokens_is_num_predict_and_no_options_object_when_nothing_is_set():
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}],
                        "max_completion_tokens": 64, "stop": ["END", "STOP"]})
    assert _body(sent)["options"] == {"num_predict": 64, "stop": ["END", "STOP"]}
    plain = await _sent({"messages": [{"role": "user", "content": "hi"}]})
    assert "options" not in _body(plain)


async def test_json_object_response_format_is_format_json():
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}],
                        "response_format": {"type": "json_object"}})
    assert _body(sent)["format"] == "json"


async def test_json_schema_response_format_sends_the_schema_itself_as_format():
    schema = {"type": "object", "properties": {"age": {"type": "integer"},
                                               "available": {"type": "boolean"}},
              "required": ["age", "available"]}
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}],
                        "response_format": {"type": "json_schema",
                                            "json_schema": {"name": "person", "schema": schema}}})
    assert _body(sent)["format"] == schema


async def test_tools_are_sent_openai_style_without_strict():
    sent = await _sent({"messages": [{"role": "user", "content": "Weather in Paris?"}],
                        "tools": [WEATHER, CLOCK]})
    assert _body(sent)["tools"] == [
        {"type": "function", "function": {
            "name": "get_current_weather",
            "description": "Get the current weather for a location",
            "parameters": WEATHER["function"]["parameters"]}},
        {"type": "function", "function": {"name": "get_current_time",
                                          "parameters": {"type": "object", "properties": {}}}},
    ]


async def test_tool_choice_none_withholds_tools_and_a_named_choice_offers_only_that_tool():
    base = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER, CLOCK]}
    none = await _sent({**base, "tool_choice": "none"})
    assert "tools" not in _body(none)
    named = await _sent({**base, "tool_choice": {"type": "function",
                                                 "function": {"name": "get_current_time"}}})
    assert [t["function"]["name"] for t in _body(named)["tools"]] == ["get_current_time"]


async def test_history_with_tool_calls_and_results_becomes_ollamas_native_shape():
    sent = await _sent({"tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_r0s8l2vw", "type": "function", "function": {
                "name": "get_current_weather",
                "arguments": '{"location": "Paris, FR", "format": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_r0s8l2vw", "content": '{"temperature": 22}'},
    ]})
    assert _body(sent)["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_current_weather",
                          "arguments": {"location": "Paris, FR", "format": "celsius"}}}]},
        {"role": "tool", "content": '{"temperature": 22}', "tool_name": "get_current_weather"},
    ]


async def test_tool_call_arguments_that_are_not_a_json_object_are_refused_naming_the_field():
    with pytest.raises(InvalidRequestError) as info:
        await _sent({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "f", "arguments": "[1, 2]"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ]})
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


async def test_developer_messages_are_system_and_text_parts_join_with_newlines():
    sent = await _sent({"messages": [
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": [{"type": "text", "text": "first"},
                                     {"type": "text", "text": "second"}]},
    ]})
    assert _body(sent)["messages"] == [{"role": "system", "content": "Answer in French."},
                                       {"role": "user", "content": "first\nsecond"}]


async def test_data_url_images_become_bare_base64_images_beside_the_text():
    sent = await _sent({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]}]})
    assert _body(sent)["messages"] == [
        {"role": "user", "content": "What is in this picture?", "images": [PNG]}]


async def test_remote_image_urls_are_refused_because_ollama_cannot_fetch_them():
    with pytest.raises(InvalidRequestError) as info:
        await _sent({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ]}]})
    assert info.value.param == "messages[0].content[1].image_url.url"


async def test_audio_parts_are_refused_naming_the_part():
    with pytest.raises(InvalidRequestError) as info:
        await _sent({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
    assert info.value.param == "messages[0].content[0]"


async def test_embedding_request_posts_to_api_embed_with_model_input_and_dimensions():
    transport = _replay("embed.json")
    req = embedding_request_from_dict({"model": "gw-embed", "input": ["Why is the sky blue?",
                                                                      "Why is the grass green?"],
                                       "dimensions": 10})
    await HttpProviderClient(OllamaAdapter(), transport).embed(req, _target(model="all-minilm"))
    sent = transport.requests[0]
    assert (sent.method, sent.url) == ("POST", "http://localhost:11434/api/embed")
    assert sent.body == (b'{"model":"all-minilm","input":["Why is the sky blue?",'
                         b'"Why is the grass green?"],"dimensions":10}')


async def test_token_id_embedding_inputs_are_refused():
    req = embedding_request_from_dict({"model": "gw-embed", "input": [[101, 2054, 102]]})
    with pytest.raises(InvalidRequestError) as info:
        await HttpProviderClient(OllamaAdapter(), _replay("embed.json")).embed(
            req, _target(model="all-minilm"))
    assert info.value.param == "input"


async def test_validate_key_lists_models_with_a_bodiless_get_to_api_tags():
    transport = _replay("tags.json")
    await HttpProviderClient(OllamaAdapter(), transport).validate_key(
        _target(api_base="https://ollama.com/", api_key="ok-123"))
    sent = transport.requests[0]
    assert (sent.method, sent.url, sent.body) == ("GET", "https://ollama.com/api/tags", None)
    assert sent.headers == {"accept": "application/json", "authorization": "Bearer ok-123"}
