"""Reads a LiteLLM proxy `config.yaml` as it is, so teams can switch without rewriting config.

`model_list` entries become gatewise aliases and deployments, with `api_base` keeping the
meaning LiteLLM documents per provider. Router settings (fallback chains, retries, timeout,
routing strategy, cool-downs), from `router_settings` or `litellm_settings`, become
`Config.router`; when both name a key, `router_settings` wins, as in LiteLLM's proxy.
`litellm_settings.cache` / `cache_params` become `cache:` (see `_cache_settings`). Anything
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
        if key in ("cache", "cache_params"):
            continue
        warnings.append(f"litellm_settings.{key}: not supported yet, ignored")
    if settings.get("cache"):
        _cache_settings(settings.get("cache_params") or {}, out, warnings, file)
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


# LiteLLM cache types (`cache_params.type`) → where gatewise keeps the exact cache.
_CACHE_STORES = {"local": "memory", "redis": "shared", "disk": "shared"}
_SEMANTIC_TYPES = ("redis-semantic", "valkey-semantic", "qdrant-semantic")
_CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
_REDIS_PARAMS = ("host", "port", "password", "username", "url", "redis_url", "ssl")


def _cache_settings(params: Any, out: dict[str, Any], warnings: list[str],
                    file: str | None) -> None:
    """`litellm_settings.cache: true` + `cache_params` → `cache:` (and `storage:` for Redis).

    `type: local` is the in-process cache, `redis` the shared one on Redis (from `url`, or
    `host`/`port`/`password`, else LiteLLM's REDIS_* variables), `disk` the shared one in the
    SQLite store; `ttl` (or the type's `default_in_*_ttl`) the default TTL; `namespace` the
    Redis key prefix. gatewise caches chat completions only, so other call types warn."""
    where = "litellm_settings.cache_params"
    if not isinstance(params, dict):
        raise ConfigError("must be a mapping", file=file, path=where)
    cache: dict[str, Any] = {"enabled": True}
    kind = str(params.get("type") or "local")
    if kind in _SEMANTIC_TYPES:
        # Matching by meaning: gatewise's semantic cache (local embedder unless LiteLLM named
        # an embedding model, which must then be an alias of this config).
        semantic: dict[str, Any] = {"enabled": True}
        if params.get("similarity_threshold") is not None:
            semantic["threshold"] = params["similarity_threshold"]
        model = params.get("redis_semantic_cache_embedding_model") or params.get(
            "qdrant_semantic_cache_embedding_model")
        if model:
            semantic["embedder"] = str(model)
        cache["semantic"] = semantic
        kind = "redis" if kind != "qdrant-semantic" else "local"
    store = _CACHE_STORES.get(kind)
    if store is None:
        warnings.append(f"{where}.type: {kind!r} is not supported, the cache is kept in "
                        "process instead")
        store = "memory"
    cache["store"] = store
    ttl = params.get("ttl")
    if ttl is None:
        ttl = params.get("default_in_redis_ttl" if kind == "redis" else "default_in_memory_ttl")
    if ttl is not None:
        cache["default_ttl_s"] = ttl
    calls = params.get("supported_call_types")
    if calls is not None:
        names = {str(c) for c in calls} if isinstance(calls, list) else set()
        if not names & _CHAT_CALL_TYPES:
            cache["enabled"] = False
            warnings.append(f"{where}.supported_call_types: chat completions are not listed, "
                            "so nothing is cached (gatewise caches chat completions only)")
        elif names - _CHAT_CALL_TYPES:
            warnings.append(f"{where}.supported_call_types: only chat completions are cached "
                            f"({', '.join(sorted(names - _CHAT_CALL_TYPES))} ignored)")
    if params.get("mode") == "default_off":
        warnings.append(f"{where}.mode: 'default_off' is not supported: every cacheable "
                        "request uses the cache (send x-gatewise-cache: no-cache to skip it)")
    storage = out.setdefault("storage", {})
    if kind == "redis":
        url = _redis_url(params, file)
        if url is not None:
            storage["redis_url"] = url
        else:
            warnings.append(f"{where}: no Redis address (url, host or REDIS_HOST): the cache is "
                            "kept in process")
            cache["store"] = "memory"
        namespace = params.get("namespace")
        if namespace:
            storage["redis_prefix"] = f"{namespace}:"
    elif params.get("namespace"):
        warnings.append(f"{where}.namespace: applies to Redis only, ignored")
    known = {"type", "ttl", "default_in_memory_ttl", "default_in_redis_ttl", "namespace",
             "supported_call_types", "mode", "similarity_threshold",
             "redis_semantic_cache_embedding_model", "qdrant_semantic_cache_embedding_model",
             *_REDIS_PARAMS}
    for key in params:
        if key not in known:
            warnings.append(f"{where}.{key}: not supported yet, ignored")
    out["cache"] = cache
    if not storage:
        out.pop("storage")


def _redis_url(params: dict[str, Any], file: str | None) -> str | None:
    """From `url`/`redis_url`, else `host`/`port`/`password`/`username` (secret references
    resolved), else LiteLLM's REDIS_URL / REDIS_HOST / REDIS_PORT / REDIS_PASSWORD."""
    from gatewise.config.secrets import process_env, resolve_secret

    env = process_env()
    where = "litellm_settings.cache_params"

    def value(key: str, env_name: str) -> str | None:
        raw = params.get(key)
        if raw is None:
            return env.get(env_name) or None
        return resolve_secret(str(raw), env=env, file=file, path=f"{where}.{key}")

    url = value("url", "REDIS_URL") or (resolve_secret(str(params["redis_url"]), env=env,
                                                       file=file, path=f"{where}.redis_url")
                                        if params.get("redis_url") else None)
    if url:
        return url
    host = value("host", "REDIS_HOST")
    if not host:
        return None
    from urllib.parse import quote

    port = value("port", "REDIS_PORT") or "6379"
    password = value("password", "REDIS_PASSWORD")
    user = value("username", "REDIS_USERNAME")
    auth = ""
    if password:
        auth = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
    scheme = "rediss" if params.get("ssl") else "redis"
    return f"{scheme}://{auth}{host}:{port}"


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
