"""LiteLLM's router settings read as they are: fallback chains, retries, timeout, routing
strategy and cool-downs land on `Config.router` instead of being reported unsupported."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ConfigError

MODEL_LIST = [
    {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "sk-x"}}
    for name in ("gpt-4o", "gpt-4o-mini", "claude", "long-context", "safe")
]


def _litellm(**sections: Any) -> tuple[Any, list[str]]:
    return parse_config({"model_list": MODEL_LIST, **sections})


def test_router_settings_map_onto_the_router_section() -> None:
    cfg, warnings = _litellm(router_settings={
        "routing_strategy": "least-busy",
        "num_retries": 3,
        "timeout": 45,
        "allowed_fails": 2,
        "cooldown_time": 20,
        "fallbacks": [{"gpt-4o": ["claude", "gpt-4o-mini"]}, {"claude": ["gpt-4o"]}],
        "context_window_fallbacks": [{"gpt-4o-mini": ["long-context"]}],
        "content_policy_fallbacks": [{"gpt-4o": ["safe"]}],
    })
    r = cfg.router
    assert warnings == []
    assert r.strategy == "least_in_flight"
    assert r.retry.max_retries == 3 and r.timeout_s == 45
    assert r.breaker.failure_threshold == 3 and r.breaker.window_s == 60  # > 2 fails a minute
    assert r.cooldown_s == 20 and r.breaker.open_s == 20
    assert r.fallbacks == {"gpt-4o": ["claude", "gpt-4o-mini"], "claude": ["gpt-4o"]}
    assert r.context_window_fallbacks == {"gpt-4o-mini": ["long-context"]}
    assert r.content_policy_fallbacks == {"gpt-4o": ["safe"]}


@pytest.mark.parametrize(("litellm", "gatewise"), [
    ("simple-shuffle", "weighted"),
    ("least-busy", "least_in_flight"),
    ("latency-based-routing", "latency"),
    ("cost-based-routing", "cost"),
    ("usage-based-routing", "usage"),
    ("usage-based-routing-v2", "usage"),
])
def test_every_litellm_routing_strategy_has_a_gatewise_strategy(litellm: str, gatewise: str) -> None:
    cfg, _ = _litellm(router_settings={"routing_strategy": litellm})
    assert cfg.router.strategy == gatewise


def test_litellm_settings_carry_the_same_keys_and_router_settings_win() -> None:
    cfg, warnings = _litellm(
        litellm_settings={"num_retries": 1, "fallbacks": [{"gpt-4o": ["claude"]}],
                          "context_window_fallbacks": [{"gpt-4o": ["long-context"]}],
                          "request_timeout": 30},
        router_settings={"num_retries": 4})
    assert warnings == []
    assert cfg.router.retry.max_retries == 4
    assert cfg.router.fallbacks == {"gpt-4o": ["claude"]}
    assert cfg.router.context_window_fallbacks == {"gpt-4o": ["long-context"]}
    assert cfg.models["gpt-4o"][0].timeout == 30  # request_timeout stays per deployment


def test_zero_cooldown_turns_cool_downs_off_and_unset_values_are_ignored() -> None:
    cfg, _ = _litellm(router_settings={"cooldown_time": 0, "num_retries": None})
    assert cfg.router.cooldown_s == 0 and cfg.router.retry.max_retries == 2  # the default
    assert cfg.router.breaker.open_s == 30


def test_other_router_settings_are_still_reported_not_dropped() -> None:
    _, warnings = _litellm(router_settings={"enable_pre_call_checks": True, "num_retries": 2})
    assert warnings == ["router_settings.enable_pre_call_checks: not supported yet, ignored"]


def test_the_routers_redis_holds_the_shared_counters() -> None:
    cfg, warnings = _litellm(router_settings={"redis_host": "cache", "redis_port": 6380})
    assert warnings == [] and cfg.storage.redis_url == "redis://cache:6380"


def test_an_unknown_strategy_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="unknown routing strategy 'fastest'") as info:
        _litellm(router_settings={"routing_strategy": "fastest"})
    assert info.value.path == "router_settings.routing_strategy"


@pytest.mark.parametrize("chains", [["gpt-4o"], [{"gpt-4o": [1]}], "gpt-4o"])
def test_malformed_fallback_chains_are_errors_naming_the_key(chains: Any) -> None:
    with pytest.raises(ConfigError, match="maps a model_name") as info:
        _litellm(router_settings={"fallbacks": chains})
    assert info.value.path is not None and info.value.path.startswith("router_settings.fallbacks")


def test_fallbacks_to_unknown_model_names_fail_at_load() -> None:
    cfg, w = _litellm(router_settings={"fallbacks": [{"gpt-4o": ["nope"]}]})
    with pytest.raises(ConfigError, match="'nope'"):
        resolve_config(cfg, None, {}, w)


def test_out_of_range_values_are_schema_errors() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        _litellm(router_settings={"num_retries": 50})
    with pytest.raises(ConfigError, match="allowed_fails"):
        _litellm(router_settings={"allowed_fails": -1})
