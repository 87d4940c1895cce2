"""Model names from callers cannot reach a service the operator did not configure, and what an
upstream says in an error reaches callers only bounded and cleaned (issue 9, defect 1).

Fakes on 127.0.0.1 stand in for internal services: an OpenAI-compatible one (vLLM, LM Studio,
llamafile, llama.cpp's server) and an Ollama. Each test counts what they received."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakes import ollama_fake, openai_fake
from tests.fakes.faults import LEAK_SECRETS
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

LOCAL_DEFAULT_REFS = ("ollama/llama3.2", "ollama_chat/llama3.2:1b", "hosted_vllm/qwen2.5",
                      "vllm/qwen2.5", "lm_studio/phi-3", "lmstudio/phi-3", "llamafile/x",
                      "llama_cpp_server/x")
FAST = {"retry": {"max_retries": 0}, "breaker": {"enabled": False}}


@pytest.fixture(scope="module")
def internal() -> Iterator[tuple[FakeServer, FakeServer]]:
    """(an OpenAI-compatible internal service, an internal Ollama), fresh for this module."""
    with FakeServer(openai_fake.make_app) as oai, FakeServer(ollama_fake.make_app) as oll:
        yield oai, oll


def _setup(oai: FakeServer, oll: FakeServer) -> tuple[dict[str, Any], dict[str, str]]:
    """Every local-default provider pointed at the internal fakes, by env and by config, as an
    operator running them next to the gateway would; plus hosted providers with keys."""
    env = {"OLLAMA_HOST": oll.url + "/local", "HOSTED_VLLM_API_BASE": oai.url + "/v1",
           "LM_STUDIO_API_BASE": oai.url + "/v1", "HOSTED_VLLM_API_KEY": "vllm-operator",
           "OPENAI_API_KEY": "sk-operator",
           "OPENAI_BASE_URL": oai.url + "/v1", "GEMINI_API_KEY": "AIza-operator",
           "GEMINI_API_BASE": oai.url, "AZURE_API_KEY": "az-operator",
           "AZURE_API_BASE": oai.url}
    providers = {"llamafile": {"api_base": oai.url + "/v1"},
                 "llama_cpp_server": {"api_base": oai.url + "/v1"}}
    return {"models": {"gpt": [{"model": "openai/gpt-4o-mini"}]}, "providers": providers,
            "router": FAST}, env


async def _post(url: str, body: dict[str, Any], path: str = "/v1/chat/completions",
                ) -> tuple[int, dict[str, Any], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as r:
        raw = await r.read()
        return r.status, json.loads(raw), raw


def _chat(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


def _seen(*fakes: FakeServer) -> int:
    return sum(len(f.requests) for f in fakes)


async def test_local_default_providers_are_refused_by_default_and_reach_nothing(
        internal: tuple[FakeServer, FakeServer]) -> None:
    config, env = _setup(*internal)
    before = _seen(*internal)
    with GatewayServer(config, env) as gw:
        for ref in LOCAL_DEFAULT_REFS:
            for stream in (False, True):
                status, body, _ = await _post(gw.url, _chat(ref, stream=stream))
                assert status == 404, (ref, body)
                assert body["error"]["code"] == "model_not_found"
                assert body["error"]["type"] == "invalid_request_error"
            status, body, _ = await _post(gw.url, {"model": ref, "input": "x"}, "/v1/embeddings")
            assert (status, body["error"]["code"]) == (404, "model_not_found"), ref
        assert _seen(*internal) == before  # not one connection attempt
        # A hosted provider with a key still works directly (and shows the fake is reachable).
        status, body, _ = await _post(gw.url, _chat("openai/gpt-4o-mini"))
        assert status == 200, body
    assert _seen(*internal) == before + 1


async def test_listed_providers_take_direct_models_and_only_those(
        internal: tuple[FakeServer, FakeServer]) -> None:
    oai, oll = internal
    config, env = _setup(oai, oll)
    config["allow_direct_models"] = ["ollama", "vllm"]  # another spelling of hosted_vllm
    with GatewayServer(config, env) as gw:
        before = len(oll.requests)
        status, body, _ = await _post(gw.url, _chat("ollama/llama3.2"))
        assert status == 200, body
        assert len(oll.requests) == before + 1 and oll.requests[-1].path == "/local/api/chat"
        status, body, _ = await _post(gw.url, _chat("hosted_vllm/qwen2.5"))
        assert status == 200 and oai.requests[-1].json()["model"] == "qwen2.5"
        seen = _seen(oai, oll)
        # Not listed: refused, even the hosted provider whose key is set.
        for ref in ("lm_studio/phi-3", "llamafile/x", "llama_cpp_server/x", "openai/gpt-4o-mini"):
            status, body, _ = await _post(gw.url, _chat(ref))
            assert (status, body["error"]["code"]) == (404, "model_not_found"), ref
        assert _seen(oai, oll) == seen


async def test_direct_models_can_be_switched_off(internal: tuple[FakeServer, FakeServer]) -> None:
    config, env = _setup(*internal)
    config["allow_direct_models"] = False
    before = _seen(*internal)
    with GatewayServer(config, env) as gw:
        status, body, _ = await _post(gw.url, _chat("openai/gpt-4o-mini"))
        assert (status, body["error"]["code"]) == (404, "model_not_found")
        status, _, _ = await _post(gw.url, _chat("gpt"))  # aliases are not direct models
        assert status == 200
    assert _seen(*internal) == before + 1


HOSTILE = (
    "openai/../../admin", "openai/..", "openai/./x", "openai/x?y=1", "openai/x#frag",
    "openai/x@10.0.0.1", "openai/user:pw@host", "openai/ x", "openai/x y", "openai/x\ty",
    "openai/x\ny", "openai/x\x00", "openai/x\r\nHost: evil", "openai/%2e%2e", "openai/..%2fx",
    "openai//x", "openai/x/", "openai/", "openai/" + "a" * 129, "openai/\u202ex",
    "openai/\uff58", "gemini/../../v1/x", "gemini/a/b", "gemini/gemini-pro:streamGenerateContent",
    "gemini/x?alt=sse", "azure/..%2f", "azure/a/b", "azure/x?api-version=1",
    "openai_compatible/x", "OpenAI/gpt-4o-mini", "../openai/x", "/openai/x", "ollama/../x",
    "ollama/http://10.0.0.1:11434", "openai/http://127.0.0.1:8080/v1",
)


async def test_model_names_that_try_to_steer_the_url_are_refused_and_reach_nothing(
        internal: tuple[FakeServer, FakeServer]) -> None:
    config, env = _setup(*internal)
    config["allow_direct_models"] = ["openai", "gemini", "azure", "openai_compatible", "ollama"]
    before = _seen(*internal)
    with GatewayServer(config, env) as gw:
        for model in HOSTILE:
            status, body, raw = await _post(gw.url, _chat(model))
            assert status == 404, (model, body)
            assert body["error"]["code"] == "model_not_found", model
            assert len(raw) < 600, model  # the name is not echoed at length
        assert _seen(*internal) == before
        # The same providers with plain names do reach their configured address.
        for model in ("openai/gpt-4o-mini", "azure/prod-gpt4o", "ollama/llama3.2:1b"):
            status, body, _ = await _post(gw.url, _chat(model))
            assert status == 200, (model, body)
    assert _seen(*internal) == before + 3


def _leaky_config(fakes: dict[str, FakeServer]) -> dict[str, Any]:
    o, a, g, ol = fakes["openai"], fakes["anthropic"], fakes["gemini"], fakes["ollama"]
    return {"models": {
        "openai": [{"model": "openai/gpt-fail-leak", "api_base": o.url + "/v1", "api_key": "k"}],
        "anthropic": [{"model": "anthropic/claude-fail-leak", "api_base": a.url,
                       "api_key": "sk-ant-test"}],
        "gemini": [{"model": "gemini/gemini-fail-leak", "api_base": g.url, "api_key": "AIza-t"}],
        "ollama": [{"model": "ollama/llama-fail-leak", "api_base": ol.url + "/local"}],
        "context": [{"model": "openai/gpt-fail-context", "api_base": o.url + "/v1",
                     "api_key": "k"}],
        "unreachable": [{"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1",
                         "api_key": "k"}],
    }, "router": FAST}


@pytest.fixture(scope="module")
def leaky(openai_fake: FakeServer, anthropic_fake: FakeServer, gemini_fake: FakeServer,
          ollama_fake: FakeServer) -> Iterator[GatewayServer]:
    fakes = {"openai": openai_fake, "anthropic": anthropic_fake, "gemini": gemini_fake,
             "ollama": ollama_fake}
    with GatewayServer(_leaky_config(fakes)) as gw:
        yield gw


def _assert_clean(message: str) -> None:
    assert 0 < len(message) <= 300
    for secret in (*LEAK_SECRETS, "http://", "redis://", "127.0.0.1", ":9/"):
        assert secret not in message, (secret, message)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in message), message


@pytest.mark.parametrize("alias", ["openai", "anthropic", "gemini", "ollama"])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_error_reaches_the_client_bounded_and_cleaned(
        leaky: GatewayServer, alias: str, stream: bool) -> None:
    status, body, raw = await _post(leaky.url, _chat(alias, stream=stream))
    assert status == 502, body  # the status and the error class are kept...
    assert (body["error"]["type"], body["error"]["code"]) == ("api_error",
                                                              "upstream_server_error")
    _assert_clean(body["error"]["message"])  # ...the upstream's words are not
    assert "backend failure" in body["error"]["message"]  # the harmless start survives
    assert len(raw) < 1024


async def test_a_connection_error_does_not_name_the_address(leaky: GatewayServer) -> None:
    status, body, _ = await _post(leaky.url, _chat("unreachable"))
    assert (status, body["error"]["code"]) == (502, "upstream_connection_error")
    _assert_clean(body["error"]["message"])


async def test_well_known_provider_messages_keep_their_useful_part(leaky: GatewayServer) -> None:
    status, body, _ = await _post(leaky.url, _chat("context"))
    assert (status, body["error"]["code"]) == (400, "context_length_exceeded")
    assert "This model's maximum context length is 8192 tokens. However, your messages " \
           "resulted in 9000 tokens" in body["error"]["message"]


async def test_an_escalation_quotes_the_upstream_only_cleaned(openai_fake: FakeServer) -> None:
    """`escalate: true` answers 200 with the failure in a tool call: the same rule applies."""
    dep = {"model": "openai/gpt-fail-leak", "api_base": openai_fake.url + "/v1", "api_key": "k"}
    with GatewayServer({"models": {"m": [dep]}, "router": {**FAST, "escalate": True}}) as gw:
        status, body, raw = await _post(gw.url, _chat("m"))
    assert status == 200, body
    args = json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    _assert_clean(args["reason"].split(": ", 1)[1])
    for attempt in args["attempts"]:
        _assert_clean(attempt["message"])
    assert len(raw) < 2048
