"""LiteLLM's `litellm_settings.cache` / `cache_params` read as they are: the cache type picks
where entries live, `ttl` and `namespace` carry over, and what gatewise does not do (other
call types, object-store caches, `default_off`) is a warning naming the key."""

from __future__ import annotations

from typing import Any

from gatewise.config.loader import parse_config

MODEL_LIST = [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "x"}}]


def _litellm(**settings: Any) -> tuple[Any, list[str]]:
    return parse_config({"model_list": MODEL_LIST, "litellm_settings": settings})


def test_cache_true_turns_the_cache_on_in_process() -> None:
    cfg, warnings = _litellm(cache=True)
    assert warnings == []
    assert cfg.cache.enabled and cfg.cache.store == "memory"


def test_a_redis_cache_shares_entries_through_redis() -> None:
    cfg, warnings = _litellm(cache=True, cache_params={
        "type": "redis", "host": "127.0.0.1", "port": 6380, "password": "p@ss",
        "ttl": 600, "namespace": "litellm.caching", "supported_call_types": ["acompletion"]})
    assert warnings == []
    c = cfg.cache
    assert c.enabled and c.store == "shared" and c.default_ttl_s == 600
    assert cfg.storage.redis_url == "redis://:p%40ss@127.0.0.1:6380"
    assert cfg.storage.redis_prefix == "litellm.caching:"


def test_a_redis_url_and_the_types_own_ttl() -> None:
    cfg, _ = _litellm(cache=True, cache_params={
        "type": "redis", "url": "redis://cache:6379/2", "default_in_redis_ttl": 120})
    assert cfg.storage.redis_url == "redis://cache:6379/2" and cfg.cache.default_ttl_s == 120


def test_unsupported_settings_warn_by_name() -> None:
    cfg, warnings = _litellm(cache=True, cache_params={
        "type": "s3", "s3_bucket_name": "b", "mode": "default_off",
        "supported_call_types": ["acompletion", "aembedding"], "max_connections": 10})
    text = "\n".join(warnings)
    for name in ("type", "s3_bucket_name", "mode", "supported_call_types", "max_connections"):
        assert f"cache_params.{name}" in text
    assert "aembedding" in text
    assert cfg.cache.enabled and cfg.cache.store == "memory"


def test_no_chat_call_type_means_nothing_is_cached() -> None:
    cfg, warnings = _litellm(cache=True, cache_params={"supported_call_types": ["aembedding"]})
    assert not cfg.cache.enabled
    assert any("nothing is cached" in w for w in warnings)


def test_disk_is_the_shared_store_and_cache_false_changes_nothing() -> None:
    cfg, _ = _litellm(cache=True, cache_params={"type": "disk", "ttl": 30})
    assert cfg.cache.store == "shared" and cfg.cache.default_ttl_s == 30
    off, warnings = _litellm(cache=False, cache_params={"type": "redis"})
    assert not off.cache.enabled and warnings == []


def test_a_redis_semantic_cache_turns_on_matching_by_meaning() -> None:
    cfg, warnings = _litellm(cache=True, cache_params={
        "type": "redis-semantic", "url": "redis://cache:6379/0", "similarity_threshold": 0.85,
        "redis_semantic_cache_embedding_model": "gpt"})
    assert warnings == []
    c = cfg.cache
    assert c.enabled and c.store == "shared" and cfg.storage.redis_url == "redis://cache:6379/0"
    assert c.semantic.enabled and c.semantic.threshold == 0.85 and c.semantic.embedder == "gpt"
