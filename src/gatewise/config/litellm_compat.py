"""Reads a LiteLLM proxy `config.yaml` as it is, so teams can switch without rewriting config.

`model_list` entries become gatewise aliases and deployments, with `api_base` keeping the
meaning LiteLLM documents per provider (`os.environ/NAME` read as LiteLLM reads it).
Router settings (fallback chains, retries, timeout, routing strategy, cool-downs), from
`router_settings` or `litellm_settings`, become `Config.router`; when both name a key,
`router_settings` wins, as in LiteLLM's proxy. The rest has a module each:

    litellm_cache        litellm_settings.cache / cache_params        → cache:, storage:
    litellm_observe      callbacks, callback_settings, json_logs       → observability:
    litellm_guardrails   guardrails:, guard callbacks                  → guardrails.default
    litellm_governance   general_settings, budgets in litellm_settings → server:, storage:,
                                                                          health:, accounting:

Anything without a gatewise equivalent is reported back as one line naming the key (what
`gatewise check` prints), never silently dropped. docs/litellm.md has the whole table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatewise.config.litellm_cache import redis_url, translate_cache
from gatewise.config.litellm_common import Translation, names_list
from gatewise.config.litellm_governance import (
    BUDGET_SETTINGS,
    translate_budgets,
    translate_general,
)
from gatewise.config.litellm_guardrails import (
    translate_guardrails,
    translate_injection_params,
    translate_legacy_guardrails,
)
from gatewise.config.litellm_observe import (
    CALLBACK_KEYS,
    translate_callback_settings,
    translate_callbacks,
    translate_log_settings,
)
from gatewise.config.secrets import process_env
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
# Read from the environment here: the native fields are plain values, not secret references.
_ENV_PARAMS = frozenset({"api_base", "api_version"})
_HEADER_KEYS = ("extra_headers", "headers")
_PRICE_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cached_input",
}
# Request defaults LiteLLM lets a deployment carry.
_DEFAULT_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
                   "frequency_penalty", "presence_penalty", "reasoning_effort")
# Settings whose LiteLLM behaviour is what gatewise does anyway: `drop_params` (adapters send
# only what each provider takes), `redact_user_api_key_info` (no key material is ever logged).
_HARMLESS_LITELLM_SETTINGS = {"telemetry", "suppress_debug_info", "drop_params",
                              "redact_user_api_key_info"}
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
_ROUTER_REDIS = frozenset({"redis_host", "redis_port", "redis_password", "redis_url"})
_TOP_LEVEL = frozenset({"model_list", "litellm_settings", "general_settings", "router_settings",
                        "environment_variables", "guardrails", "callback_settings"})


def is_litellm_config(data: Any) -> bool:
    return isinstance(data, dict) and "model_list" in data


def translate(data: dict[str, Any], file: str | None,
              env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(native config dict, report lines) from a LiteLLM proxy config.

    `env` is what LiteLLM would read (default: this process's environment), with the file's
    own `environment_variables` on top, as LiteLLM sets them before reading the rest."""
    base = process_env() if env is None else env
    extra = data.get("environment_variables")
    if isinstance(extra, dict):
        base = {**base, **{str(k): str(v) for k, v in extra.items()}}
    t = Translation(file, base)
    models: dict[str, list[dict[str, Any]]] = {}
    t.out["models"] = models
    _model_list(t, data.get("model_list") or [], models)
    if data.get("callback_settings") is not None:
        translate_callback_settings(t, data["callback_settings"])
    router: dict[str, Any] = {}
    settings = data.get("litellm_settings") or {}
    if not isinstance(settings, dict):
        raise t.error("must be a mapping", "litellm_settings")
    _litellm_settings(t, settings, router, models)
    if data.get("guardrails") is not None:
        translate_guardrails(t, data["guardrails"])
    if data.get("general_settings") is not None:
        translate_general(t, data["general_settings"])
    _router_settings(t, data.get("router_settings") or {}, router, models)
    if settings.get("default_fallbacks"):
        _default_fallbacks(settings["default_fallbacks"], router, models)
    if router:
        t.out["router"] = router
    for key in data:
        if key not in _TOP_LEVEL:
            t.unsupported(key)
    return t.out, t.warnings


def _model_list(t: Translation, entries: Any, models: dict[str, list[dict[str, Any]]]) -> None:
    if not isinstance(entries, list):
        raise t.error("must be a list", "model_list")
    for i, entry in enumerate(entries):
        where = f"model_list[{i}]"
        if not isinstance(entry, dict) or "model_name" not in entry:
            raise t.error("each entry needs 'model_name' and 'litellm_params'", where)
        params = entry.get("litellm_params") or {}
        if not isinstance(params, dict) or "model" not in params:
            raise t.error("'litellm_params.model' is required", f"{where}.litellm_params")
        dep: dict[str, Any] = {"model": _model_ref(str(params["model"]))}
        prices: dict[str, float] = {}
        defaults: dict[str, Any] = {}
        for key, value in params.items():
            if key == "model":
                continue
            if key in _PARAM_KEYS:
                native = _PARAM_KEYS[key]
                if native in _ENV_PARAMS:
                    value = t.env_value(value, f"{where}.litellm_params.{key}")
                dep[native] = value
            elif key in _HEADER_KEYS:
                dep["headers"] = {str(k): str(v) for k, v in (value or {}).items()}
            elif key in _PRICE_KEYS:
                prices[_PRICE_KEYS[key]] = float(value) * 1_000_000
            elif key in _DEFAULT_PARAMS:
                defaults[key] = value
            else:
                t.unsupported(f"{where}.litellm_params.{key}")
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
                    t.unsupported(f"{where}.model_info.{key}")
        for key in entry:
            if key not in ("model_name", "litellm_params", "model_info"):
                t.unsupported(f"{where}.{key}")
        models.setdefault(str(entry["model_name"]), []).append(dep)


def _litellm_settings(t: Translation, settings: dict[str, Any], router: dict[str, Any],
                      models: dict[str, list[dict[str, Any]]]) -> None:
    translate_callbacks(t, settings)
    guard_callbacks = {n for k in CALLBACK_KEYS for n in names_list(settings.get(k))}
    for item in settings.get("guardrails") or []:  # the older list names callbacks too
        for spec in item.values() if isinstance(item, dict) else ():
            if isinstance(spec, dict):
                guard_callbacks.update(names_list(spec.get("callbacks")))
    for key, value in settings.items():
        if key in _HARMLESS_LITELLM_SETTINGS or key in CALLBACK_KEYS or key in BUDGET_SETTINGS:
            continue
        if translate_log_settings(t, key, value):
            continue
        if key in _ROUTER_KEYS:
            if value is not None:
                _router_setting(router, key, value, f"litellm_settings.{key}", t.file)
        elif key == "default_fallbacks":
            continue  # after router_settings (`translate`)
        elif key == "request_timeout":
            for deps in models.values():
                for d in deps:
                    d.setdefault("timeout", value)
        elif key == "guardrails":
            translate_legacy_guardrails(t, value, settings)
        elif key == "prompt_injection_params":
            translate_injection_params(t, value)
        elif key.startswith("presidio_") or key == "output_parse_pii":
            if "presidio" not in guard_callbacks:
                t.report(f"litellm_settings.{key}", "applies to the 'presidio' callback, which "
                         "is not configured")
        elif key not in ("cache", "cache_params"):
            t.unsupported(f"litellm_settings.{key}")
    if settings.get("cache"):
        translate_cache(t, settings.get("cache_params") or {})
    translate_budgets(t, settings)


def _default_fallbacks(value: Any, router: dict[str, Any],
                       models: dict[str, list[dict[str, Any]]]) -> None:
    """LiteLLM's `default_fallbacks` apply to every model group without a chain of its own
    (run after every other fallback setting is read); a group that is one of the targets, or
    another name for one (`model_group_alias`), keeps none."""
    targets = names_list(value)
    chains: dict[str, list[str]] = router.setdefault("fallbacks", {})
    for alias, deps in models.items():
        if alias not in targets and not any(models.get(x) == deps for x in targets):
            chains.setdefault(alias, list(targets))
    if not chains:
        router.pop("fallbacks")


def _router_settings(t: Translation, settings: Any, router: dict[str, Any],
                     models: dict[str, list[dict[str, Any]]]) -> None:
    if not isinstance(settings, dict):
        raise t.error("must be a mapping", "router_settings")
    for key, value in settings.items():
        where = f"router_settings.{key}"
        if key in _ROUTER_KEYS:
            if value is not None:
                _router_setting(router, key, value, where, t.file)
        elif key in _ROUTER_REDIS:
            continue
        elif key == "model_group_alias":
            _group_aliases(t, value, models)
        else:
            t.unsupported(where)
    if _ROUTER_REDIS & set(settings):
        # LiteLLM shares deployments' rpm/tpm usage between replicas through this Redis;
        # gatewise keeps its counters and rate windows there.
        url = redis_url(t, settings, "router_settings", prefix="redis_")
        if url and "redis_url" not in t.out.get("storage", {}):
            t.section("storage")["redis_url"] = url


def _group_aliases(t: Translation, value: Any, models: dict[str, list[dict[str, Any]]]) -> None:
    """`model_group_alias: {alias: model_name}` (or `{alias: {model: name, hidden: bool}}`):
    one more alias for the same deployments."""
    where = "router_settings.model_group_alias"
    if not isinstance(value, dict):
        raise t.error("must map an alias to a model_name", where)
    for alias, target in value.items():
        name = target.get("model") if isinstance(target, dict) else target
        if not isinstance(name, str) or name not in models:
            raise t.error(f"names '{name}', which is not a model_name in model_list",
                          f"{where}.{alias}")
        if isinstance(target, dict) and target.get("hidden"):
            t.report(f"{where}.{alias}", "hidden: gatewise lists every alias in /v1/models")
        models.setdefault(str(alias), [dict(d) for d in models[name]])


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
