"""Canonical requests → the exact OpenAI API requests (method, URL, headers, body).

OpenAI's chat shape is the canonical one, so the body is the caller's request with the upstream
model name swapped in; these pin what else is (and is not) added on the way: usage asked for on
streams, the Azure deployment URL and `api-key` header, embeddings' fields. No sockets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.openai.adapter import OpenAIAdapter
from gatewise.transport.base import HttpRequest
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.validation import chat_request_from_dict

RECORDED = Path(__file__).parent / "recorded"
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
            "required": ["location", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def _target(**kw: Any) -> Target:
    base: dict[str, Any] = {"provider": "openai", "wire": "openai", "model": "gpt-4o-mini",
                            "api_base": "https://api.openai.com/v1", "api_key": "sk-test",
                            "extra": {"stream_usage": True}}
    base.update(kw)
    return Target(**base)


def _expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / name).read_text(encoding="utf-8"))
    return data


def _as_recorded(request: HttpRequest) -> dict[str, Any]:
    assert request.body is not None
    return {"method": request.method, "url": request.url, "headers": request.headers,
            "body": json.loads(request.body)}


async def _sent(body: dict[str, Any], target: Target | None = None) -> dict[str, Any]:
    """The request gatewise puts on the wire for a canonical request body."""
    req = chat_request_from_dict({"model": "gpt", **body})
    name = "stream_text.sse" if req.stream else "chat_text.json"
    headers = {"content-type": "text/event-stream" if req.stream else "application/json"}
    transport = ReplayTransport(Recorded(headers=headers, body=(RECORDED / name).read_bytes()))
    client = HttpProviderClient(OpenAIAdapter(), transport)
    if req.stream:
        [c async for c in client.stream(req, target or _target())]
    else:
        await client.chat(req, target or _target())
    assert len(transport.requests) == 1
    return _as_recorded(transport.requests[0])


async def test_a_chat_with_a_json_schema_is_sent_as_it_came_with_the_upstream_model():
    sent = await _sent({
        "messages": [{"role": "developer", "content": "You are a concise assistant."},
                     {"role": "user", "content": "Rate this haiku from 1 to 10."}],
        "max_completion_tokens": 256, "temperature": 0.7, "seed": 7, "user": "user-1234",
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "rating", "strict": True, "schema": {
                "type": "object", "properties": {"score": {"type": "integer"}},
                "required": ["score"], "additionalProperties": False}}},
    })
    assert sent == _expected("request_chat.json")


async def test_a_streamed_tool_history_asks_for_usage_and_keeps_every_turn():
    sent = await _sent({
        "stream": True, "tools": [WEATHER_TOOL], "parallel_tool_calls": False,
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
                "function": {"name": "get_weather",
                             "arguments": '{"location":"Paris, France","unit":"celsius"}'}}]},
            {"role": "tool", "tool_call_id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
             "content": '{"temperature":18,"conditions":"cloudy"}'},
        ],
    })
    assert sent == _expected("request_stream_tools.json")
    assert sent["body"]["stream_options"] == {"include_usage": True}


async def test_a_host_that_rejects_stream_options_is_not_sent_them():
    sent = await _sent({"stream": True, "messages": [{"role": "user", "content": "hi"}]},
                       _target(extra={"stream_usage": False}))
    assert "stream_options" not in sent["body"]


async def test_azure_puts_the_deployment_and_version_in_the_url_and_the_key_in_api_key():
    sent = await _sent({"messages": [{"role": "user", "content": "hi"}]}, _target(
        provider="azure", model="prod-gpt4o", api_base="https://contoso.openai.azure.com",
        api_key="az-test", auth="api-key", url_style="azure", api_version="2024-10-21"))
    assert sent["url"] == ("https://contoso.openai.azure.com/openai/deployments/prod-gpt4o/"
                           "chat/completions?api-version=2024-10-21")
    assert sent["headers"] == {"accept": "application/json", "content-type": "application/json",
                               "api-key": "az-test"}
    assert sent["body"]["model"] == "prod-gpt4o"


async def test_embeddings_are_sent_with_the_upstream_model_and_their_options():
    transport = ReplayTransport(Recorded(body=(RECORDED / "embeddings.json").read_bytes()))
    client = HttpProviderClient(OpenAIAdapter(), transport)
    await client.embed(EmbeddingRequest(model="e", input=["alpha", "beta gamma"], dimensions=5,
                                        encoding_format="float"),
                       _target(model="text-embedding-3-small"))
    assert _as_recorded(transport.requests[0]) == _expected("request_embeddings.json")
