"""Reads a LiteLLM proxy `config.yaml` as it is, so teams can switch without rewriting config.

`model_list` entries become gatewise aliases and deployments, with `api_base` keeping the
meaning LiteLLM documents per provider. Router settings (fallback chains, retries, timeout,
routing strategy, cool-downs), from `router_settings` or `litellm_settings`, become
`Config.router`; when both name a key, `router_settings` wins, as in LiteLLM's proxy. Anything
gatewise does not support yet is reported back as a warning naming the key, never silently
dropped.
"""

from __future__ import annotations

from typing import Any

from gatewise.errors import ConfigError
from gatewise.providers.presets import find_preset

_PARAM_KEYS = {
    "api_base": "api_base",
    "base_url": "api_base",
    "api_key": "api_key",
    "api_version": "api_version",
    "rpm": "rpm",
    "tpm": "tpm",
    "timeout": "timeout",
    "stream_timeout": "stream_timeout",
    "weight": "weight",
}
_HEADER_KEYS = ("extra_headers", "headers")
_PRICE_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cached_input",
}
# Request defaults LiteLLM lets a deployment carry.
_DEFAULT_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
                   "frequency_penalty", "presence_penalty", "reasoning_effort")
_HARMLESS_LITELLM_SETTINGS = {"set_verbose", "telemetry", "json_logs", "suppress_debug_info"}
_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_in_flight",
    "latency-based-routing": "latency",
    "cost-based-routing": "cost",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
}
_FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
_ROUTER_KEYS = frozenset({*_FALLBACK_KEYS, "num_retries", "timeout", "routing_strategy",
                          "allowed_fails", "cooldown_time"})


def is_litellm_config(data: Any) -> bool:
    return isinstance(data, dict) and "model_list" in data


def translate(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], list[str]]:
    """(native config dict, warnings) from a LiteLLM proxy config."""
    warnings: list[str] = []
    models: dict[str, list[dict[str, Any]]] = {}
    out: dict[str, Any] = {"models": models}
    entries = data.get("model_list") or []
    if not isinstance(entries, list):
        raise ConfigError("must be a list", file=file, path="model_list")
    for i, entry in enumerate(entries):
        where = f"model_list[{i}]"
        if not isinstance(entry, dict) or "model_name" not in entry:
            raise ConfigError("each entry needs 'model_name' and 'litellm_params'", file=file,
                              path=where)
        params = entry.get("litellm_params") or {}
        if not isinstance(params, dict) or "model" not in params:
            raise ConfigError("'litellm_params.model' is required", file=file,
                              path=f"{where}.litellm_params")
        dep: dict[str, Any] = {"model": _model_ref(str(params["model"]))}
        prices: dict[str, float] = {}
        defaults: dict[str, Any] = {}
        for key, value in params.items():
            if key == "model":
                continue
            if key in _PARAM_KEYS:
                dep[_PARAM_KEYS[key]] = value
            elif key in _HEADER_KEYS:
                dep["headers"] = {str(k): str(v) for k, v in (value or {}).items()}
            elif key in _PRICE_KEYS:
                prices[_PRICE_KEYS[key]] = float(value) * 1_000_000
            elif key in _DEFAULT_PARAMS:
                defaults[key] = value
            else:
                warnings.append(f"{where}.litellm_params.{key}: not supported yet, ignored")
        if prices:
            dep["prices"] = prices
        if defaults:
            dep["params"] = defaults
        info = entry.get("model_info") or {}
        if isinstance(info, dict):
            if "id" in info:
                dep["id"] = str(info["id"])
            for key in info:
                if key not in ("id", "mode", "base_model", "description"):
                    warnings.append(f"{where}.model_info.{key}: not supported yet, ignored")
        for key in entry:
            if key not in ("model_name", "litellm_params", "model_info"):
                warnings.append(f"{where}.{key}: not supported yet, ignored")
        models.setdefault(str(entry["model_name"]), []).append(dep)

    router: dict[str, Any] = {}
    settings = data.get("litellm_settings") or {}
    for key, value in settings.items():
        if key in _HARMLESS_LITELLM_SETTINGS:
            continue
        if key == "callbacks" and not value:
            continue
        if key in _ROUTER_KEYS:
            if value is not None:
                _router_setting(router, key, value, f"litellm_settings.{key}", file)
            continue
        if key == "request_timeout":
            for deps in models.values():
                for d in deps:
                    d.setdefault("timeout", value)
            continue
        warnings.append(f"litellm_settings.{key}: not supported yet, ignored")
    general = data.get("general_settings") or {}
    for key, value in general.items():
        if key == "master_key":
            out.setdefault("server", {})["master_key"] = value
        elif key in ("disable_spend_logs", "disable_error_logs") and value:
            continue
        else:
            warnings.append(f"general_settings.{key}: not supported yet, ignored")
    for key, value in (data.get("router_settings") or {}).items():
        if key in _ROUTER_KEYS:
            if value is not None:
                _router_setting(router, key, value, f"router_settings.{key}", file)
        else:
            warnings.append(f"router_settings.{key}: not supported yet, ignored")
    if router:
        out["router"] = router
    for key in data:
        if key not in ("model_list", "litellm_settings", "general_settings", "router_settings",
                       "environment_variables"):
            warnings.append(f"{key}: not supported yet, ignored")
    return out, warnings


def _router_setting(router: dict[str, Any], key: str, value: Any, where: str,
                    file: str | None) -> None:
    """One LiteLLM router setting onto gatewise's `router` section (types are checked by the
    schema afterwards)."""
    if key in _FALLBACK_KEYS:
        router[key] = _fallback_chains(value, where, file)
    elif key == "num_retries":
        router.setdefault("retry", {})["max_retries"] = value
    elif key == "timeout":
        router["timeout_s"] = value
    elif key == "routing_strategy":
        if value not in _STRATEGIES:
            raise ConfigError(f"unknown routing strategy '{value}' (known: "
                              + ", ".join(sorted(_STRATEGIES)) + ")", file=file, path=where)
        router["strategy"] = _STRATEGIES[value]
    elif key == "allowed_fails":
        # LiteLLM cools a deployment down once it fails more than this within a minute.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError("must be a whole number, 0 or more", file=file, path=where)
        breaker = router.setdefault("breaker", {})
        breaker["failure_threshold"] = value + 1
        breaker.setdefault("window_s", 60.0)
    elif key == "cooldown_time":
        # LiteLLM's cool-down is both how long a failing deployment sits out and how long its
        # breaker stays open; 0 turns cool-downs off.
        router["cooldown_s"] = value
        if value:
            router.setdefault("breaker", {})["open_s"] = value


def _fallback_chains(value: Any, where: str, file: str | None) -> dict[str, list[str]]:
    """LiteLLM writes chains as a list of one-key mappings (`[{"gpt-4o": ["claude"]}]`);
    a plain mapping is accepted too."""
    items = value if isinstance(value, list) else [value]
    chains: dict[str, list[str]] = {}
    for i, item in enumerate(items):
        path = f"{where}[{i}]" if isinstance(value, list) else where
        if not isinstance(item, dict):
            raise ConfigError("each entry maps a model_name to a list of model_names",
                              file=file, path=path)
        for alias, targets in item.items():
            names = [targets] if isinstance(targets, str) else targets
            if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
                raise ConfigError("each entry maps a model_name to a list of model_names",
                                  file=file, path=f"{path}.{alias}")
            chains.setdefault(str(alias), []).extend(names)
    return chains


def _model_ref(model: str) -> str:
    """LiteLLM allows bare model names for OpenAI (`gpt-4o`); gatewise always names the provider.
    Providers gatewise has no adapter for run through LiteLLM itself, in process."""
    if "/" not in model:
        return f"openai/{model}"
    provider = model.split("/", 1)[0]
    return model if find_preset(provider) is not None else f"litellm/{model}"
