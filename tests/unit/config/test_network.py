"""Proxies and TLS in config: the environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY (lower-case
first, as curl and requests read them) land in the resolved config for the transport, and
TLS files and proxy settings are checked at load with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.errors import ConfigError


def _load(env: dict[str, str], *deployments: dict[str, Any],
          providers: dict[str, Any] | None = None) -> ResolvedConfig:
    deps = list(deployments) or [{"model": "openai/gpt-4o-mini", "api_key": "sk-x"}]
    cfg, warnings = parse_config({"models": {"m": deps}, "providers": providers or {}})
    return resolve_config(cfg, None, env, warnings)


def test_proxies_are_read_from_the_environment_lower_case_first() -> None:
    net = _load({"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128",
                 "HTTP_PROXY": "proxy.internal:8080", "NO_PROXY": ".corp,10.0.0.0/8"}).network
    assert net.https_proxy is not None and net.https_proxy.host == "lower"
    assert net.http_proxy is not None and (net.http_proxy.host, net.http_proxy.port) == \
        ("proxy.internal", 8080)
    assert net.no_proxy.bypass("api.corp", 443) and net.no_proxy.bypass("10.1.2.3", 443)
    assert not net.no_proxy.bypass("api.openai.com", 443)


def test_no_proxy_environment_means_direct_connections() -> None:
    net = _load({}).network
    assert net.https_proxy is None and net.http_proxy is None
    assert net.route(("https", "api.openai.com", 443)).proxy is None


def test_proxy_credentials_become_a_header_and_stay_out_of_repr() -> None:
    net = _load({"HTTPS_PROXY": "http://alice:p%40ss@proxy:3128"}).network
    assert net.https_proxy is not None
    assert net.https_proxy.authorization == "Basic YWxpY2U6cEBzcw=="  # alice:p@ss
    assert "YWxp" not in repr(net) and "p%40ss" not in repr(net)


def test_an_unsupported_proxy_scheme_is_a_config_error_without_the_credentials() -> None:
    with pytest.raises(ConfigError, match="HTTPS_PROXY") as info:
        _load({"HTTPS_PROXY": "socks5://bob:hunter2@proxy:1080"})
    assert "hunter2" not in str(info.value)


def test_tls_files_must_exist_and_errors_name_the_key(tmp_path: Path) -> None:
    dep = {"model": "openai/gpt-4o-mini", "api_key": "sk-x",
           "ca_bundle": str(tmp_path / "missing.pem")}
    with pytest.raises(ConfigError, match="file not found") as info:
        _load({}, dep)
    assert "models.m[0].ca_bundle" in str(info.value)


def test_a_file_that_is_not_a_certificate_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="ca_bundle"):
        _load({}, {"model": "openai/gpt-4o-mini", "api_key": "sk-x", "ca_bundle": str(junk)})


def test_a_client_key_needs_a_client_certificate(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("x")
    with pytest.raises(ConfigError, match="'client_key' needs 'client_cert'"):
        _load({}, {"model": "openai/gpt-4o-mini", "api_key": "sk-x", "client_key": str(key)})


def test_deployment_settings_apply_to_their_origin_and_may_come_from_the_provider() -> None:
    net = _load({"HTTPS_PROXY": "http://proxy:3128"},
                {"model": "openai/gpt-4o-mini", "api_key": "sk-x",
                 "api_base": "https://llm.internal/v1"},
                providers={"openai": {"no_proxy": True}}).network
    assert net.route(("https", "llm.internal", 443)).proxy is None
    assert net.route(("https", "api.example.com", 443)).proxy is not None


def test_one_origin_cannot_have_two_different_settings() -> None:
    base = {"model": "openai/gpt-4o-mini", "api_key": "sk-x", "api_base": "https://h/v1"}
    with pytest.raises(ConfigError, match="already has other proxy/TLS settings"):
        _load({}, {**base, "proxy": "http://p1:3128"}, {**base, "proxy": "http://p2:3128"})


def test_proxy_may_be_a_secret_reference() -> None:
    net = _load({"CORP_PROXY": "http://u:pw@corp:3128"},
                {"model": "openai/gpt-4o-mini", "api_key": "sk-x",
                 "api_base": "https://h/v1", "proxy": "env:CORP_PROXY"}).network
    route = net.route(("https", "h", 443))
    assert route.proxy is not None and route.proxy.host == "corp"
