"""Config: strict schema with precise errors, secret references, LiteLLM configs as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewise.config.loader import load_config, parse_config, resolve_config
from gatewise.errors import ConfigError


def _write(tmp_path: Path, text: str, name: str = "gatewise.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_zero_config_serves_the_embedded_model_as_local() -> None:
    cfg = load_config(env={})
    assert cfg.default_model == "local"
    dep = cfg.aliases["local"][0]
    assert (dep.target.wire, dep.target.model, dep.problem) == ("llamacpp", "smollm2-135m", None)


def test_unknown_key_names_file_path_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  fast:\n    - model: openai/gpt-4o-mini\n      modle: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    msg = str(info.value)
    assert str(p) in msg and "models.fast[0].modle" in msg and "unknown key 'modle'" in msg


def test_wrong_type_names_the_key_path(tmp_path: Path) -> None:
    p = _write(tmp_path, "server:\n  port: lots\n")
    with pytest.raises(ConfigError, match=r"server\.port: Expected `int`"):
        load_config(p, env={})


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  fast: [\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_config(p, env={})


def test_model_refs_must_name_a_provider(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  a:\n    - model: gpt-4o\n")
    with pytest.raises(ConfigError, match=r"models\.a\[0\]\.model"):
        load_config(p, env={})


def test_unknown_provider_suggests_litellm(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  a:\n    - model: bedrock/claude\n")
    with pytest.raises(ConfigError, match="litellm/bedrock/claude"):
        load_config(p, env={})


def test_keys_come_from_env_references_and_standard_variables(tmp_path: Path) -> None:
    p = _write(tmp_path, """
models:
  a:
    - model: openai/gpt-4o-mini
      api_key: env:MY_KEY
  b:
    - model: anthropic/claude-3-5-haiku-latest
  c:
    - model: groq/llama-3.1-8b-instant
      api_key: os.environ/GROQ_ALT
""")
    cfg = load_config(p, env={"MY_KEY": "sk-a", "ANTHROPIC_API_KEY": "sk-b", "GROQ_ALT": "gk"})
    assert cfg.aliases["a"][0].target.api_key == "sk-a"
    assert cfg.aliases["b"][0].target.api_key == "sk-b"
    assert cfg.aliases["b"][0].target.api_base == "https://api.anthropic.com"
    assert cfg.aliases["c"][0].target.api_base == "https://api.groq.com/openai/v1"
    assert "sk-a" not in repr(cfg.aliases["a"][0])


def test_missing_env_reference_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  a:\n    - model: openai/x\n      api_key: env:NOPE\n")
    with pytest.raises(ConfigError, match=r"models\.a\[0\]\.api_key: environment variable NOPE"):
        load_config(p, env={})


def test_missing_provider_key_is_reported_not_fatal(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  a:\n    - model: openai/gpt-4o-mini\n")
    cfg = load_config(p, env={})
    assert cfg.aliases["a"][0].problem == "no API key: set OPENAI_API_KEY or 'api_key'"
    assert any("OPENAI_API_KEY" in w for w in cfg.warnings)


def test_azure_uses_its_url_style_and_header(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  a:\n    - model: azure/my-deployment\n"
                         "      api_base: https://x.openai.azure.com\n      api_version: '2024-10-21'\n")
    t = load_config(p, env={"AZURE_API_KEY": "az"}).aliases["a"][0].target
    assert (t.url_style, t.auth, t.api_key, t.api_version) == ("azure", "api-key", "az", "2024-10-21")


def test_ollama_host_without_scheme_gets_http(tmp_path: Path) -> None:
    p = _write(tmp_path, "models:\n  a:\n    - model: ollama/llama3.2\n")
    t = load_config(p, env={"OLLAMA_HOST": "10.0.0.5:11434"}).aliases["a"][0].target
    assert t.api_base == "http://10.0.0.5:11434"


def test_litellm_proxy_config_runs_unchanged(tmp_path: Path) -> None:
    p = _write(tmp_path, """
model_list:
  - model_name: fake
    litellm_params:
      model: openai/fake
      api_base: http://127.0.0.1:18080/v1
      api_key: os.environ/FAKE_KEY
      rpm: 100
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
      temperature: 0.3
      mystery_flag: true
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
      api_key: sk-literal
litellm_settings:
  num_retries: 0
  request_timeout: 30
  cache: true
general_settings:
  master_key: os.environ/MASTER
router_settings:
  routing_strategy: latency-based-routing
""", name="config.yaml")
    cfg = load_config(p, env={"FAKE_KEY": "fk", "MASTER": "mk"})
    fake = cfg.aliases["fake"][0]
    assert fake.target.api_base == "http://127.0.0.1:18080/v1" and fake.target.api_key == "fk"
    assert fake.rpm == 100 and fake.target.params == {"temperature": 0.3}
    assert fake.prices is not None and fake.prices.input == pytest.approx(0.15)
    assert fake.target.timeouts.total == 30
    assert cfg.aliases["claude"][0].target.api_key == "sk-literal"
    assert cfg.master_key == "mk"
    assert cfg.config.router.strategy == "latency"
    assert cfg.config.cache.enabled  # `cache: true` maps onto the response cache
    assert sorted(cfg.warnings) == [
        "model_list[0].litellm_params.mystery_flag: not supported yet, ignored",
    ]


def test_litellm_unknown_provider_runs_through_litellm_explicitly() -> None:
    cfg, _ = parse_config({"models": {"b": [{"model": "litellm/bedrock/anthropic.claude-v2"}]}})
    dep = resolve_config(cfg, None, {}, []).aliases["b"][0]
    assert (dep.target.wire, dep.target.model) == ("litellm", "bedrock/anthropic.claude-v2")


def test_default_model_must_be_an_alias() -> None:
    cfg, _ = parse_config({"models": {"a": [{"model": "fake/echo"}]}, "default_model": "b"})
    with pytest.raises(ConfigError, match="default_model"):
        resolve_config(cfg, None, {}, [])


def test_direct_provider_refs_resolve_only_with_keys() -> None:
    cfg, _ = parse_config({"models": {"a": [{"model": "fake/echo"}]}})
    with_key = resolve_config(cfg, None, {"OPENAI_API_KEY": "sk"}, [])
    assert with_key.direct("openai/gpt-4o-mini") is not None
    assert resolve_config(cfg, None, {}, []).direct("openai/gpt-4o-mini") is None
    assert with_key.direct("nonsense/model") is None


def test_litellm_config_sends_providers_without_an_adapter_through_litellm() -> None:
    cfg, _ = parse_config({"model_list": [{"model_name": "claude-bedrock", "litellm_params": {
        "model": "bedrock/anthropic.claude-3-haiku", "api_key": "k"}}]})
    dep = resolve_config(cfg, None, {}, []).aliases["claude-bedrock"][0]
    assert (dep.target.wire, dep.target.model, dep.target.api_key) == (
        "litellm", "bedrock/anthropic.claude-3-haiku", "k")
