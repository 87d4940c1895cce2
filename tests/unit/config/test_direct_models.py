"""Direct models (`provider/model` in a request, no alias): which providers, which names, and
that the address only ever comes from config, environment or the preset."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.errors import ConfigError
from gatewise.providers.presets import DIRECT_MODEL_MAX, PRESETS

ENV = {"OPENAI_API_KEY": "sk-op", "GEMINI_API_KEY": "AIza-op", "AZURE_API_KEY": "az",
       "AZURE_API_BASE": "https://res.openai.azure.com", "GROQ_API_KEY": "gsk",
       "OLLAMA_HOST": "ollama.lan:11434", "HOSTED_VLLM_API_BASE": "http://vllm.lan:8000/v1"}
LOCAL_DEFAULT = ("ollama", "hosted_vllm", "lm_studio", "llamafile", "llama_cpp_server")


def _resolved(allow: Any = None, **extra: Any) -> ResolvedConfig:
    data: dict[str, Any] = {"models": {"a": [{"model": "fake/echo"}]}, **extra}
    if allow is not None:
        data["allow_direct_models"] = allow
    cfg, warnings = parse_config(data)
    return resolve_config(cfg, None, ENV, warnings)


def test_by_default_hosted_providers_with_keys_are_direct_and_local_ones_are_not() -> None:
    r = _resolved()
    for ref in ("openai/gpt-4o-mini", "groq/llama-3.1-8b-instant", "gemini/gemini-2.0-flash",
                "azure/prod-gpt4o", "openai/ft:gpt-4o-mini:org:x:1"):
        assert r.direct(ref) is not None, ref
    assert r.direct("anthropic/claude-3-5-haiku-latest") is None  # no key configured
    # Configured addresses (env, config) do not make a local-default or keyless provider direct.
    internal = {"api_base": "http://internal.lan:8080/v1"}
    r2 = _resolved(providers={"llamafile": internal, "openai_compatible": internal})
    for provider in (*LOCAL_DEFAULT, "vllm", "lmstudio", "ollama_chat", "openai_compatible"):
        assert r2.direct(f"{provider}/m") is None, provider
    listed = _resolved(["openai_compatible"], providers={"openai_compatible": internal})
    assert listed.direct("openai_compatible/m") is not None
    for in_process in ("llamacpp/smollm2-135m", "litellm/openai/gpt-4o", "fake/echo"):
        assert r2.direct(in_process) is None


def test_a_list_allows_exactly_the_listed_providers_in_any_spelling() -> None:
    r = _resolved(["ollama_chat", "vllm", "groq"])
    assert r.direct_providers == {"ollama", "hosted_vllm", "groq"}
    ollama = r.direct("ollama/llama3.2:1b")
    assert ollama is not None and ollama.target.api_base == "http://ollama.lan:11434"
    vllm = r.direct("hosted_vllm/Qwen/Qwen2.5-7B-Instruct")
    assert vllm is not None and vllm.target.api_base == "http://vllm.lan:8000/v1"
    assert vllm.target.model == "Qwen/Qwen2.5-7B-Instruct"
    assert r.direct("groq/llama-3.1-8b-instant") is not None
    for ref in ("openai/gpt-4o-mini", "lm_studio/x", "llamafile/x"):
        assert r.direct(ref) is None, ref
    assert _resolved(False).direct_providers == frozenset()
    assert _resolved(False).direct("openai/gpt-4o-mini") is None


@pytest.mark.parametrize(("allow", "problem"), [
    (["ollama", "nonsense"], "unknown provider 'nonsense'"),
    (["llamacpp"], "runs in process"),
    (["litellm"], "runs in process"),
])
def test_a_list_names_only_known_network_providers(allow: list[str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        _resolved(allow)
    assert info.value.path == f"allow_direct_models[{len(allow) - 1}]"


@pytest.mark.parametrize("model", [
    "", "..", ".", "./x", "../x", "x/..", "x/../y", "x//y", "/x", "x/", "x?y", "x#y", "x@y",
    "x%2fy", "%2e%2e", "x y", " x", "x\t", "x\n", "x\r\ny", "x\x00", "x\\y", "x;y", "x&y",
    "x=y", "\uff58", "x\u202e", "é", "a" * (DIRECT_MODEL_MAX + 1), "http://10.0.0.1:11434",
    "-x", ":x",
])
def test_hostile_model_names_are_refused(model: str) -> None:
    r = _resolved(["openai", "ollama", "groq"])
    for provider in ("openai", "ollama", "groq"):
        assert r.direct(f"{provider}/{model}") is None, repr(model)


def test_names_in_the_url_path_take_one_segment() -> None:
    r = _resolved()
    for ok in ("gemini/gemini-2.5-flash", "gemini/models/gemini-2.5-flash", "azure/prod.gpt_4o"):
        assert r.direct(ok) is not None, ok
    for bad in ("gemini/a/b", "gemini/tunedModels/x", "gemini/x:streamGenerateContent",
                "azure/a/b", "azure/x:y", "gemini/models/../x"):
        assert r.direct(bad) is None, bad
    assert r.direct("openai/" + "a" * DIRECT_MODEL_MAX) is not None  # the cap itself is fine


@pytest.mark.parametrize("model", ["gemini/../../x", "gemini/a/b", "azure/x?api-version=1",
                                   "azure/a b", "gemini/x:y"])
def test_configured_models_that_would_change_the_url_path_are_config_errors(model: str) -> None:
    cfg, _ = parse_config({"models": {"m": [{"model": model, "api_key": "k",
                                             "api_base": "https://x.example"}]}})
    with pytest.raises(ConfigError, match="URL path") as info:
        resolve_config(cfg, None, {}, [])
    assert info.value.path == "models.m[0].model"


def test_every_preset_with_a_default_on_this_host_is_marked_local_default() -> None:
    """The flag is data; this keeps it true when a preset is added."""
    for name, preset in PRESETS.items():
        host = urlsplit(preset.api_base).hostname or ""
        on_this_host = host in ("localhost", "0.0.0.0", "::1") or host.startswith("127.")
        assert preset.local_default == on_this_host, name


def test_the_address_never_comes_from_the_model_name() -> None:
    r = _resolved(["openai", "ollama"])
    for ref in ("openai/gpt-4o-mini", "openai/evil.example.com", "ollama/evil.example.com:80"):
        dep = r.direct(ref)
        assert dep is not None
        assert urlsplit(dep.target.api_base).hostname in ("api.openai.com", "ollama.lan")
        assert dep.target.headers == {} and dep.target.params == {}
