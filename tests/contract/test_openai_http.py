"""The OpenAI adapter over real HTTP against the fake OpenAI host."""

from __future__ import annotations

import pytest

from gatewise.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    RateLimitedError,
)
from gatewise.providers.base import Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.openai.adapter import OpenAIAdapter
from gatewise.transport.aiohttp_transport import AiohttpTransport
from gatewise.transport.h1 import H1Transport
from gatewise.types.validation import chat_request_from_dict


@pytest.fixture(params=["h1", "aiohttp"])
def transport(request):
    return H1Transport() if request.param == "h1" else AiohttpTransport()


def _target(srv, model="gpt-4o-mini"):
    return Target(provider="openai", wire="openai", model=model, api_base=srv.url + "/v1",
                  api_key="sk-test")


async def test_chat_round_trip(openai_fake, transport):
    client = HttpProviderClient(OpenAIAdapter(), transport)
    req = chat_request_from_dict({"model": "x", "messages": [{"role": "user", "content": "ping"}]})
    out = await client.chat(req, _target(openai_fake))
    assert out.choices[0].message.content == "Hello! You said: ping"
    assert out.usage is not None and out.usage.completion_tokens == 4
    await client.transport.aclose()


async def test_stream_round_trip(openai_fake, transport):
    client = HttpProviderClient(OpenAIAdapter(), transport)
    req = chat_request_from_dict({"model": "x", "stream": True,
                                  "messages": [{"role": "user", "content": "ping pong"}]})
    chunks = [c async for c in client.stream(req, _target(openai_fake))]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: ping pong"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    await client.transport.aclose()


@pytest.mark.parametrize(("model", "exc"), [
    ("gpt-fail-401", AuthenticationError),
    ("gpt-fail-404", ModelNotFoundError),
    ("gpt-fail-429", RateLimitedError),
    ("gpt-fail-context", ContextLengthExceededError),
    ("gpt-fail-500", ProviderServerError),
    ("gpt-fail-529", ProviderOverloadedError),
    ("gpt-malformed", ProviderResponseError),
    ("gpt-wrong-type", ProviderResponseError),
    ("gpt-cut", ProviderResponseError),
    ("gpt-reset", ProviderConnectionError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_failures_are_mapped(openai_fake, model, exc, stream, transport):
    client = HttpProviderClient(OpenAIAdapter(), transport)
    req = chat_request_from_dict({"model": "x", "stream": stream,
                                  "messages": [{"role": "user", "content": "a b c d"}]})
    with pytest.raises(exc) as info:
        if stream:
            [c async for c in client.stream(req, _target(openai_fake, model))]
        else:
            await client.chat(req, _target(openai_fake, model))
    assert info.value.provider == "openai"
    if model == "gpt-fail-429":
        assert info.value.retry_after == 7.0
    # the pool is still healthy after the failure
    ok = await client.chat(chat_request_from_dict(
        {"model": "x", "messages": [{"role": "user", "content": "again"}]}), _target(openai_fake))
    assert ok.choices[0].message.content == "Hello! You said: again"
    await client.transport.aclose()
