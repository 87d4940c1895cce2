"""One matrix over every wire format: the same requests through `Gateway` against each
provider's fake upstream must give the same canonical answers and the same error classes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    RateLimitedError,
)
from tests.fakes.server import FakeServer


@dataclass(frozen=True)
class Entry:
    fixture: str | None  # the fake upstream's fixture; None for an in-process provider
    deployment: Callable[[str, str], dict[str, Any]]  # (fake url, model suffix) -> deployment
    embeddings: bool
    # Appended to the model for the tool-call cases (the test double calls tools only when asked).
    tool_suffix: str = ""
    # Cases an in-process provider cannot be driven into (no wire to corrupt, no schema mode):
    # test names and fault suffixes, skipped for it and run for everyone else.
    unsupported: frozenset[str] = frozenset()
    retry_after: float = 7.0


ENTRIES: dict[str, Entry] = {
    "openai": Entry("openai_fake", lambda url, s: {
        "model": f"openai/gpt-4o-mini{s}", "api_base": url + "/v1", "api_key": "sk-test"}, True),
    "azure": Entry("openai_fake", lambda url, s: {
        "model": f"azure/prod-gpt4o{s}", "api_base": url, "api_key": "az-test",
        "api_version": "2024-10-21"}, True),
    "anthropic": Entry("anthropic_fake", lambda url, s: {
        "model": f"anthropic/claude-3-5-haiku-latest{s}", "api_base": url,
        "api_key": "sk-ant-test"}, False),
    "gemini": Entry("gemini_fake", lambda url, s: {
        "model": f"gemini/gemini-2.5-flash{s}", "api_base": url, "api_key": "AIza-test"}, True),
    "ollama": Entry("ollama_fake", lambda url, s: {
        "model": f"ollama/llama3.2{s}", "api_base": url + "/local"}, True),
    # gatewise.testing.FakeProvider, in process: its behaviour is the model name itself.
    "fake": Entry(None, lambda url, s: {"model": "fake/" + (s.lstrip("-") or "echo")}, True,
                  tool_suffix="-tools", retry_after=1.0,
                  unsupported=frozenset({"test_json_schema", "-malformed", "-cut", "-reset"})),
}

FAULTS = [
    ("-fail-401", AuthenticationError),
    ("-fail-404", ModelNotFoundError),
    ("-fail-429", RateLimitedError),
    ("-fail-context", ContextLengthExceededError),
    ("-fail-500", ProviderServerError),
    ("-fail-529", ProviderOverloadedError),
    ("-malformed", ProviderResponseError),
    ("-cut", ProviderResponseError),
    ("-reset", ProviderConnectionError),
]

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"]}}}]
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"},
                                           "score": {"type": "integer"}},
          "required": ["title", "score"]}


def _gateway(request: pytest.FixtureRequest, name: str, suffix: str = "") -> Gateway:
    entry = ENTRIES[name]
    url = ""
    if entry.fixture is not None:
        fake: FakeServer = request.getfixturevalue(entry.fixture)
        url = fake.url
    # This matrix checks what each adapter maps a failure to, so nothing retries or trips.
    cfg, w = parse_config({"models": {"m": [entry.deployment(url, suffix)]},
                           "router": {"retry": {"max_retries": 0},
                                      "breaker": {"enabled": False}}})
    return Gateway(resolve_config(cfg, None, {}, w))


@pytest.fixture(params=sorted(ENTRIES))
def provider(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if request.node.originalname in ENTRIES[name].unsupported:
        pytest.skip(f"{name} cannot be driven into this case")
    return name


async def test_text(request: pytest.FixtureRequest, provider: str) -> None:
    async with _gateway(request, provider) as gw:
        r = await gw.chat("ping", model="m")
    assert r.content == "Hello! You said: ping"
    assert r.finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 4
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


async def test_stream(request: pytest.FixtureRequest, provider: str) -> None:
    async with _gateway(request, provider) as gw:
        s = gw.stream("stream me now", model="m", stream_options={"include_usage": True})
        chunks = [c async for c in s]
    assert s.text == "Hello! You said: stream me now"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


async def test_tool_call(request: pytest.FixtureRequest, provider: str) -> None:
    async with _gateway(request, provider, ENTRIES[provider].tool_suffix) as gw:
        r = await gw.chat("weather in Paris?", model="m", tools=TOOLS, tool_choice="required")
    assert r.finish_reason == "tool_calls"
    call = r.tool_calls[0]
    assert call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"city": "sample", "unit": "c"}


async def test_tool_call_streamed(request: pytest.FixtureRequest, provider: str) -> None:
    async with _gateway(request, provider, ENTRIES[provider].tool_suffix) as gw:
        chunks = [c async for c in gw.stream("weather?", model="m", tools=TOOLS,
                                             tool_choice="required")]
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(args) == {"city": "sample", "unit": "c"}


async def test_tool_result_round_trip(request: pytest.FixtureRequest, provider: str) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    async with _gateway(request, provider) as gw:
        r = await gw.chat(model="m", messages=messages, tools=TOOLS)
    assert r.content == "Hello! You said: weather?"
    assert r.finish_reason == "stop"


async def test_json_schema(request: pytest.FixtureRequest, provider: str) -> None:
    async with _gateway(request, provider) as gw:
        r = await gw.chat("rate this", model="m", response_format={
            "type": "json_schema", "json_schema": {"name": "rating", "schema": SCHEMA}})
    assert json.loads(r.content or "") == {"title": "sample", "score": 42}


async def test_embeddings(request: pytest.FixtureRequest, provider: str) -> None:
    async with _gateway(request, provider) as gw:
        if not ENTRIES[provider].embeddings:
            with pytest.raises(InvalidRequestError, match="embeddings"):
                await gw.embed(["alpha"], model="m")
            return
        r = await gw.embed(["alpha", "beta gamma"], model="m")
    assert [d.index for d in r.response.data] == [0, 1]
    assert len(r.vectors[0]) > 0 and len(r.vectors[0]) == len(r.vectors[1])


@pytest.mark.parametrize(("suffix", "exc"), FAULTS, ids=[f[0].strip("-") for f in FAULTS])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_faults_map_to_the_same_errors(request: pytest.FixtureRequest, provider: str,
                                             suffix: str, exc: type[Exception],
                                             stream: bool) -> None:
    if suffix in ENTRIES[provider].unsupported:
        pytest.skip(f"{provider} has no wire to break with {suffix}")
    async with _gateway(request, provider, suffix) as gw:
        with pytest.raises(exc) as info:
            if stream:
                [c async for c in gw.stream("a b c d e f", model="m")]
            else:
                await gw.chat("a b c d e f", model="m")
    err = info.value
    assert getattr(err, "provider", None) == provider
    if suffix == "-fail-429":
        assert err.retry_after == ENTRIES[provider].retry_after  # type: ignore[attr-defined]
