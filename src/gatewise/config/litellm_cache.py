"""LiteLLM's `litellm_settings.cache: true` + `cache_params` → gatewise's `cache:` section.

`type: local` is the in-process cache, `redis` the shared one on Redis (from `url`, or
`host`/`port`/`password`, else LiteLLM's REDIS_* variables), `disk` the shared one in the
SQLite store; `redis-semantic` adds matching by meaning (the local embedder, or the embedding
model LiteLLM names, which must be an alias of the same file). `ttl` (or the type's
`default_in_*_ttl`) is the default TTL; `namespace` the Redis key prefix. gatewise caches chat
completions only, and has no object-store or Qdrant backend: those are reported, and the cache
then lives in process rather than not at all.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gatewise.config.litellm_common import Translation
from gatewise.config.secrets import resolve_secret

# LiteLLM cache types (`cache_params.type`) → where gatewise keeps the exact cache.
_CACHE_STORES = {"local": "memory", "redis": "shared", "disk": "shared"}
_SEMANTIC_TYPES = ("redis-semantic", "valkey-semantic", "qdrant-semantic")
_CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
_REDIS_PARAMS = ("host", "port", "password", "username", "url", "redis_url", "ssl")
_KNOWN = frozenset({"type", "ttl", "default_in_memory_ttl", "default_in_redis_ttl", "namespace",
                    "supported_call_types", "mode", "similarity_threshold",
                    "redis_semantic_cache_embedding_model",
                    "qdrant_semantic_cache_embedding_model", *_REDIS_PARAMS})
_WHERE = "litellm_settings.cache_params"


def translate_cache(t: Translation, params: Any) -> None:
    if not isinstance(params, dict):
        raise t.error("must be a mapping", _WHERE)
    cache: dict[str, Any] = {"enabled": True}
    kind = str(params.get("type") or "local")
    if kind in _SEMANTIC_TYPES:
        semantic: dict[str, Any] = {"enabled": True}
        if params.get("similarity_threshold") is not None:
            semantic["threshold"] = params["similarity_threshold"]
        model = params.get("redis_semantic_cache_embedding_model") or params.get(
            "qdrant_semantic_cache_embedding_model")
        if model:
            semantic["embedder"] = str(model)
        cache["semantic"] = semantic
        if kind == "qdrant-semantic":
            t.report(f"{_WHERE}.type", "'qdrant-semantic': gatewise has no Qdrant backend; the "
                     "semantic cache keeps its vectors in process instead")
            kind = "local"
        else:
            kind = "redis"
    store = _CACHE_STORES.get(kind)
    if store is None:
        t.report(f"{_WHERE}.type", f"{kind!r} is not supported, the cache is kept in process "
                 "instead")
        store = "memory"
    cache["store"] = store
    ttl = params.get("ttl")
    if ttl is None:
        ttl = params.get("default_in_redis_ttl" if kind == "redis" else "default_in_memory_ttl")
    if ttl is not None:
        cache["default_ttl_s"] = ttl
    _call_types(t, params.get("supported_call_types"), cache)
    if params.get("mode") == "default_off":
        t.report(f"{_WHERE}.mode", "'default_off' is not supported: every cacheable request "
                 "uses the cache (send x-gatewise-cache: no-cache to skip it)")
    storage = t.out.setdefault("storage", {})
    if kind == "redis":
        url = redis_url(t, params, _WHERE)
        if url is not None:
            storage["redis_url"] = url
        else:
            t.report(_WHERE, "no Redis address (url, host or REDIS_HOST): the cache is kept in "
                     "process")
            cache["store"] = "memory"
        namespace = params.get("namespace")
        if namespace:
            storage["redis_prefix"] = f"{namespace}:"
    elif params.get("namespace"):
        t.report(f"{_WHERE}.namespace", "applies to Redis only, ignored")
    for key in params:
        if key not in _KNOWN:
            t.unsupported(f"{_WHERE}.{key}")
    t.out["cache"] = cache
    if not storage:
        t.out.pop("storage")


def _call_types(t: Translation, calls: Any, cache: dict[str, Any]) -> None:
    if calls is None:
        return
    names = {str(c) for c in calls} if isinstance(calls, list) else set()
    if not names & _CHAT_CALL_TYPES:
        cache["enabled"] = False
        t.report(f"{_WHERE}.supported_call_types", "chat completions are not listed, so nothing "
                 "is cached (gatewise caches chat completions only)")
    elif names - _CHAT_CALL_TYPES:
        t.report(f"{_WHERE}.supported_call_types", "only chat completions are cached "
                 f"({', '.join(sorted(names - _CHAT_CALL_TYPES))} ignored)")


def redis_url(t: Translation, params: dict[str, Any], where: str,
              prefix: str = "") -> str | None:
    """From `url`/`redis_url`, else `host`/`port`/`password`/`username` (secret references
    resolved), else LiteLLM's REDIS_URL / REDIS_HOST / REDIS_PORT / REDIS_PASSWORD.
    `prefix` is how the section spells the keys (`router_settings` says `redis_host`)."""

    def value(key: str, env_name: str) -> str | None:
        raw = params.get(prefix + key)
        if raw is None:
            return t.env.get(env_name) or None
        return resolve_secret(str(raw), env=t.env, file=t.file, path=f"{where}.{prefix}{key}")

    url = value("url", "REDIS_URL")
    if not url and params.get("redis_url"):
        url = resolve_secret(str(params["redis_url"]), env=t.env, file=t.file,
                             path=f"{where}.redis_url")
    if url:
        return url
    host = value("host", "REDIS_HOST")
    if not host:
        return None
    port = value("port", "REDIS_PORT") or "6379"
    password = value("password", "REDIS_PASSWORD")
    user = value("username", "REDIS_USERNAME")
    auth = ""
    if password:
        auth = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
    scheme = "rediss" if params.get(prefix + "ssl") else "redis"
    return f"{scheme}://{auth}{host}:{port}"
