"""The LiteLLM provider in process, against the fake OpenAI host over real HTTP.

`litellm/openai/<model>` makes LiteLLM speak OpenAI's wire format to the fake, so these tests
check what gatewise adds around LiteLLM: canonical results, a usage-only last chunk, cut
streams noticed, one upstream request per attempt (no hidden LiteLLM retries), LiteLLM's
exceptions replaced by the gatewise tree, and LiteLLM imported only on first use.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gatewise.config.litellm_env import apply_litellm_env_defaults

apply_litellm_env_defaults()  # before LiteLLM is imported, so the import stays offline
pytest.importorskip("litellm")

from gatewise import Gateway  # noqa: E402
from gatewise.config.loader import parse_config, resolve_config  # noqa: E402
from gatewise.errors import (  # noqa: E402
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthExceededError,
    GatewayError,
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
from gatewise.providers.base import Target  # noqa: E402
from gatewise.providers.litellm.provider import LiteLLMProvider, loop_suffix  # noqa: E402
from gatewise.transport.base import Timeouts  # noqa: E402
from gatewise.types.validation import (  # noqa: E402
    chat_request_from_dict,
    embedding_request_from_dict,
)
from tests.fakes.server import FakeServer  # noqa: E402

pytestmark = [
    pytest.mark.litellm,
    # LiteLLM's own code trips these pydantic warnings (not gatewise's; warnings are errors here).
    pytest.mark.filterwarnings("ignore:Item '.*' on TypedDict class .* `ReadOnly` qualifier"
                               ":UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_[a-z_]*' attribute on the "
                               "instance is deprecated:DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def _target(srv: FakeServer, model: str = "gpt-4o-mini", **kw: object) -> Target:
    return Target(provider="litellm", wire="litellm", model=f"openai/{model}",
                  api_base=srv.url + "/v1", api_key="sk-test", auth="none", **kw)


def _chat(text: str = "ping", **kw: object):
    return chat_request_from_dict({"model": "tail", "messages": [{"role": "user", "content": text}],
                                   **kw})


@pytest.fixture
async def provider() -> AsyncIterator[LiteLLMProvider]:
    p = LiteLLMProvider()
    yield p
    await p.aclose()


async def _drain(provider: LiteLLMProvider, req, target):
    return [c async for c in provider.stream(req, target)]


# --- chat ------------------------------------------------------------------------------------

async def test_chat_returns_the_canonical_completion(provider, openai_fake) -> None:
    out = await provider.chat(_chat("ping"), _target(openai_fake))
    assert out.object == "chat.completion"
    assert out.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert out.model == "gpt-4o-mini" and out.system_fingerprint == "fp_fake0001"
    assert out.choices[0].message.content == "Hello! You said: ping"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (4, 4, 8)


async def test_chat_sends_the_request_upstream_with_key_headers_and_deployment_params(
        provider, openai_fake) -> None:
    target = _target(openai_fake, headers={"x-team": "search"},
                     params={"temperature": 0.2, "seed": 7})
    await provider.chat(_chat("hello", seed=1, max_tokens=50, user="u-1"), target)
    seen = openai_fake.requests[-1]
    body = seen.json()
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-test"
    assert seen.headers["x-team"] == "search"
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["temperature"] == 0.2  # the deployment's default fills what the caller left unset
    assert body["seed"] == 1  # ... and never overrides what the caller set
    assert body["max_tokens"] == 50 and body["user"] == "u-1"
    assert "stream" not in body or body["stream"] is False


async def test_chat_returns_tool_calls(provider, openai_fake) -> None:
    out = await provider.chat(_chat("weather in Oslo?", tools=WEATHER), _target(openai_fake))
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert (call.id, call.type, call.function.name) == ("call_fake0001", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "sample"}
    assert openai_fake.requests[-1].json()["tools"] == WEATHER


async def test_chat_passes_a_json_schema_response_format_through(provider, openai_fake) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "count", "schema": schema, "strict": True}}
    out = await provider.chat(_chat("count", response_format=rf), _target(openai_fake))
    assert json.loads(out.choices[0].message.content or "") == {"n": 42}
    assert openai_fake.requests[-1].json()["response_format"] == rf


# --- stream ----------------------------------------------------------------------------------

async def test_stream_text_joins_and_ends_with_a_usage_only_chunk(provider, openai_fake) -> None:
    chunks = await _drain(provider, _chat("ping pong", stream=True), _target(openai_fake))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: ping pong"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, 5)
    assert all(c.usage is None for c in chunks[:-1])
    assert openai_fake.requests[-1].json()["stream_options"] == {"include_usage": True}


async def test_stream_assembles_tool_call_deltas(provider, openai_fake) -> None:
    chunks = await _drain(provider, _chat("weather?", stream=True, tools=WEATHER),
                          _target(openai_fake))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id == "call_fake0001" and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {"city": "sample"}
    assert {d.index for d in deltas} == {0}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


async def test_abandoning_a_stream_closes_the_upstream_connection(provider, openai_fake) -> None:
    before = openai_fake.notes.count("stream-aborted")
    stream = provider.stream(_chat("go", stream=True), _target(openai_fake, "gpt-endless"))
    got = [await stream.__anext__() for _ in range(3)]
    assert got[-1].choices[0].delta.content == "tick "
    await stream.aclose()
    for _ in range(200):  # the fake notices the disconnect on its own thread
        if openai_fake.notes.count("stream-aborted") > before:
            break
        await asyncio.sleep(0.01)
    assert openai_fake.notes.count("stream-aborted") == before + 1


# --- embeddings ------------------------------------------------------------------------------

async def test_embed_returns_vectors_and_usage(provider, openai_fake) -> None:
    req = embedding_request_from_dict({"model": "emb", "input": ["a b", "c"], "dimensions": 4})
    out = await provider.embed(req, _target(openai_fake, "text-embedding-3-small"))
    assert out.object == "list" and out.model == "text-embedding-3-small"
    assert [d.index for d in out.data] == [0, 1]
    assert all(isinstance(d.embedding, list) and len(d.embedding) == 4 for d in out.data)
    assert (out.usage.prompt_tokens, out.usage.total_tokens) == (3, 3)
    body = openai_fake.requests[-1].json()
    assert body["input"] == ["a b", "c"] and body["dimensions"] == 4


async def test_embed_failures_are_mapped(provider, openai_fake) -> None:
    req = embedding_request_from_dict({"model": "emb", "input": "x"})
    with pytest.raises(AuthenticationError) as info:
        await provider.embed(req, _target(openai_fake, "emb-fail-401"))
    assert info.value.provider == "litellm" and info.value.model == "openai/emb-fail-401"


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "exc"), [
    ("gpt-fail-400", BadRequestError),
    ("gpt-fail-401", AuthenticationError),
    ("gpt-fail-403", PermissionDeniedError),
    ("gpt-fail-404", ModelNotFoundError),
    ("gpt-fail-429", RateLimitedError),
    ("gpt-fail-context", ContextLengthExceededError),
    ("gpt-fail-500", ProviderServerError),
    ("gpt-fail-503", ProviderOverloadedError),
    ("gpt-fail-529", ProviderOverloadedError),
    ("gpt-reset", ProviderConnectionError),
    ("gpt-malformed", ProviderResponseError),
    ("gpt-cut", ProviderResponseError),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_failures_become_gatewise_errors_after_one_upstream_request(
        provider, openai_fake, model, exc, stream) -> None:
    n = len(openai_fake.requests)
    req = _chat("a b c d", stream=stream)
    with pytest.raises(exc) as info:
        if stream:
            await _drain(provider, req, _target(openai_fake, model))
        else:
            await provider.chat(req, _target(openai_fake, model))
    err = info.value
    assert type(err).__module__ == "gatewise.errors"  # never a LiteLLM (or openai SDK) type
    assert err.provider == "litellm" and err.model == f"openai/{model}"
    assert f"openai/{model}" in str(err) and "litellm." not in err.message
    assert len(openai_fake.requests) - n == 1  # LiteLLM does not retry behind gatewise's back
    # and the provider is healthy afterwards
    ok = await provider.chat(_chat("again"), _target(openai_fake))
    assert ok.choices[0].message.content == "Hello! You said: again"


async def test_rate_limit_carries_retry_after_from_the_upstream_headers(provider, openai_fake) -> None:
    with pytest.raises(RateLimitedError) as info:
        await provider.chat(_chat(), _target(openai_fake, "gpt-fail-429"))
    assert info.value.retry_after == 7.0
    assert info.value.upstream_status == 429 and info.value.retryable
    with pytest.raises(RateLimitedError) as info:
        await provider.chat(_chat(), _target(openai_fake, "gpt-fail-429-noretry"))
    assert info.value.retry_after is None


async def test_error_keeps_the_upstream_status_and_the_cleaned_message(provider, openai_fake) -> None:
    with pytest.raises(ContextLengthExceededError) as info:
        await provider.chat(_chat(), _target(openai_fake, "gpt-fail-context"))
    err = info.value
    assert err.upstream_status == 400 and not err.retryable
    assert err.message.startswith("litellm error (openai/gpt-fail-context): 400 This model's "
                                  "maximum context length is 8192 tokens")


async def test_a_stalled_upstream_is_a_timeout(provider, openai_fake) -> None:
    target = _target(openai_fake, "gpt-slow", timeouts=Timeouts(total=0.3, connect=0.3, read=0.3))
    with pytest.raises(ProviderTimeoutError) as info:
        await provider.chat(_chat(), target)
    assert info.value.retryable and info.value.provider == "litellm"


async def test_an_unknown_litellm_provider_is_a_bad_request(provider) -> None:
    target = Target(provider="litellm", wire="litellm", model="no-such-provider/model-x")
    with pytest.raises(BadRequestError) as info:
        await provider.chat(_chat(), target)
    assert info.value.model == "no-such-provider/model-x"


# --- validate_key, capabilities, loading -----------------------------------------------------

async def test_validate_key_passes_for_a_working_deployment(provider, openai_fake) -> None:
    await provider.validate_key(_target(openai_fake))
    body = openai_fake.requests[-1].json()
    assert body["max_tokens"] == 1 and body["model"] == "gpt-4o-mini"


async def test_validate_key_uses_a_one_word_embedding_for_embedding_models(provider, openai_fake) -> None:
    await provider.validate_key(_target(openai_fake, "text-embedding-3-small"))
    seen = openai_fake.requests[-1]
    assert seen.path == "/v1/embeddings" and seen.json()["input"] == ["ping"]


async def test_validate_key_raises_the_mapped_error_for_a_rejected_key(provider, openai_fake) -> None:
    with pytest.raises(AuthenticationError) as info:
        await provider.validate_key(_target(openai_fake, "gpt-fail-401"))
    assert info.value.provider == "litellm" and info.value.upstream_status == 401


def test_capabilities_come_from_litellms_model_map(openai_fake) -> None:
    p = LiteLLMProvider()
    chat = p.capabilities(_target(openai_fake, "gpt-4o-mini"))
    assert (chat.chat, chat.tools, chat.vision, chat.json_schema, chat.embeddings) == (
        True, True, True, True, False)
    assert chat.context_window == 128000
    emb = p.capabilities(_target(openai_fake, "text-embedding-3-small"))
    assert (emb.chat, emb.embeddings, emb.context_window) == (False, True, 8191)
    unknown = p.capabilities(_target(openai_fake, "my-own-finetune"))
    assert unknown.chat and unknown.context_window is None


async def test_missing_litellm_is_a_config_error_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # what an absent package looks like
    p = LiteLLMProvider()
    with pytest.raises(ConfigError) as info:
        await p.chat(_chat(), Target(provider="litellm", wire="litellm", model="openai/x"))
    assert "pip install 'gatewise[litellm]'" in str(info.value)


async def test_aclose_closes_the_http_clients_litellm_opened_on_this_loop(openai_fake) -> None:
    import litellm

    p = LiteLLMProvider()
    await p.chat(_chat(), _target(openai_fake))
    suffix = loop_suffix(litellm.in_memory_llm_clients_cache)
    cache = litellm.in_memory_llm_clients_cache.cache_dict
    clients = [c for k, c in cache.items() if k.endswith(suffix) and hasattr(c, "is_closed")]
    assert clients and not any(c.is_closed() for c in clients)
    await p.aclose()
    assert all(c.is_closed() for c in clients)
    assert not any(k.endswith(suffix) for k in cache)  # the next call builds fresh ones


# --- through the Gateway ---------------------------------------------------------------------

def _gateway(srv: FakeServer) -> Gateway:
    cfg, warnings = parse_config({"models": {
        "tail": [{"model": "litellm/openai/gpt-4o-mini", "api_base": srv.url + "/v1",
                  "api_key": "sk-test"}],
        "tail-emb": [{"model": "litellm/openai/text-embedding-3-small",
                      "api_base": srv.url + "/v1", "api_key": "sk-test"}],
        "tail-limited": [{"model": "litellm/openai/gpt-fail-429", "api_base": srv.url + "/v1",
                          "api_key": "sk-test"}],
    }, "default_model": "tail"})
    return Gateway(resolve_config(cfg, None, {}, warnings))


async def test_gateway_config_serves_chat_stream_and_embeddings_through_litellm(openai_fake) -> None:
    async with _gateway(openai_fake) as gw:
        r = await gw.chat("hello there")
        s = gw.stream("one two")
        chunks = [c async for c in s]
        e = await gw.embed(["a", "b c"], model="tail-emb")
        keys = await gw.validate_keys()
    assert r.content == "Hello! You said: hello there"
    assert r.deployment == "tail:litellm/openai/gpt-4o-mini" and r.info.provider == "litellm"
    assert r.usage is not None and r.usage.completion_tokens == 5
    assert s.text == "Hello! You said: one two"
    assert all(c.usage is None for c in chunks)  # not asked for: hidden from the caller
    assert s.info is not None and s.info.usage is not None and s.info.usage.completion_tokens == 5
    assert len(e.vectors) == 2
    assert keys["tail:litellm/openai/gpt-4o-mini"] is None


async def test_gateway_surfaces_the_mapped_error(openai_fake) -> None:
    async with _gateway(openai_fake) as gw:
        with pytest.raises(GatewayError) as info:
            await gw.chat("x", model="tail-limited")
    err = info.value
    errors = getattr(err, "errors", [err])
    assert isinstance(errors[-1], RateLimitedError) and isinstance(errors[-1], ProviderError)
    assert errors[-1].retry_after == 7.0


# --- lazy import -----------------------------------------------------------------------------

LAZY_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import gatewise
    from gatewise import Gateway
    from gatewise.config.loader import parse_config, resolve_config
    from tests.fakes.openai_fake import make_app
    from tests.fakes.server import FakeServer

    assert "litellm" not in sys.modules, "import gatewise imported litellm"
    with FakeServer(make_app) as srv:
        cfg, w = parse_config({"models": {"tail": [{"model": "litellm/openai/gpt-4o-mini",
                                                   "api_base": srv.url + "/v1",
                                                   "api_key": "sk-test"}]}})
        gw = Gateway(resolve_config(cfg, None, {}, w))
        dep = gw.deployments()[0]
        gw.pool.client_for(dep.target)  # the provider object exists ...
        assert "litellm" not in sys.modules, "building the gateway imported litellm"

        async def main():
            async with gw:
                r = await gw.chat("hi", model="tail")
            assert r.content == "Hello! You said: hi", r.content
            assert "litellm" in sys.modules
        asyncio.run(main())
    print("ok")
""")


@pytest.fixture(scope="module", autouse=True)
def lazy_import_run() -> Iterator[subprocess.Popen[str]]:
    """Started with the module so the seconds a fresh interpreter spends importing LiteLLM
    overlap the other tests instead of adding to them."""
    proc = subprocess.Popen([sys.executable, "-W", "error::ResourceWarning", "-c", LAZY_SCRIPT],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_litellm_is_imported_on_the_first_call_not_before(lazy_import_run) -> None:
    out, err = lazy_import_run.communicate(timeout=120)
    assert lazy_import_run.returncode == 0, err[-3000:]
    assert out.strip() == "ok"
