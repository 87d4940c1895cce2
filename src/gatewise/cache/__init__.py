"""The response cache (exact, this slice): key, policy, store and middleware; invalidation,
statistics and the maintenance job over the same store.

`build_cache` makes the middleware from `cache:` in the config, or None when no alias has the
cache on (then the chain has no cache stage and the hot path pays nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from gatewise.accounting.usage import Prices
from gatewise.cache.middleware import HEADER, CacheMiddleware
from gatewise.cache.near import NearCache
from gatewise.cache.policy import CachePolicy
from gatewise.cache.store import LRUStore, ResponseCache
from gatewise.config.schema import CacheConfig
from gatewise.errors import ConfigError
from gatewise.observability.metrics import GatewayMetrics
from gatewise.storage.base import KVStore, PubSub

if TYPE_CHECKING:
    from gatewise.cache.semantic import SemanticCache
    from gatewise.embedding import EmbeddingsClient

__all__ = ["HEADER", "CacheMiddleware", "LRUStore", "ResponseCache", "build_cache"]


def build_cache(config: CacheConfig, *, shared: KVStore | None, redis: bool,
                deployments: Mapping[str, Sequence[str]],
                prices: Prices | None = None,
                metrics: GatewayMetrics | None = None,
                embeddings: EmbeddingsClient | None = None,
                remote: bool = False, pubsub_url: str | None = None,
                new_pubsub: Callable[[], PubSub] | None = None,
                channel: str = "gatewise:cache") -> CacheMiddleware | None:
    """`shared` is the storage section's key-value store, used for `store: shared`, or for
    `auto` when Redis is configured (`redis`). `embeddings` serves `cache.semantic.embedder`
    when it names an embedding alias (the gateway itself). `remote`: `shared` is across the
    network (Redis, PostgreSQL), so entries get a near cache in process (`cache.near_ttl_s`),
    whose invalidations are broadcast on `channel` of the Redis at `pubsub_url`, or without
    one on the `PubSub` that `new_pubsub` makes (PostgreSQL's: `Stores.new_pubsub`)."""
    policy = CachePolicy(config)
    if not policy.any_enabled:
        return None
    use_shared = shared is not None and (
        config.store == "shared" or (config.store == "auto" and redis))
    store: KVStore = shared if use_shared and shared is not None \
        else LRUStore(config.max_entries, max_bytes=config.max_bytes)
    near: NearCache | None = None
    if use_shared and remote and config.near_ttl_s > 0:
        pubsub: PubSub | None = None
        if pubsub_url:
            from gatewise.storage.pubsub import RedisPubSub

            pubsub = RedisPubSub(pubsub_url, connect_timeout_s=1.0, op_timeout_s=2.0)
        elif new_pubsub is not None:
            pubsub = new_pubsub()
        near = NearCache(config.near_ttl_s, max_entries=config.near_max_entries,
                         max_bytes=max(config.max_entry_bytes, 32 * 1024 * 1024),
                         pubsub=pubsub, channel=channel)
    responses = ResponseCache(store, max_entry_bytes=config.max_entry_bytes, near=near)
    mw = CacheMiddleware(responses, policy,
                         deployments=deployments, prices=prices, metrics=metrics,
                         maintenance_interval_s=config.maintenance_interval_s,
                         semantic=build_semantic(config, store if use_shared else None,
                                                 embeddings, aliases=deployments.keys()))
    if use_shared:  # a shared store keeps what it is given: the purge trims it to size
        mw.maintenance.max_entries = config.max_entries
    return mw


def build_semantic(config: CacheConfig, store: KVStore | None,
                   embeddings: EmbeddingsClient | None, *,
                   aliases: Collection[str] = ()) -> SemanticCache | None:
    """The semantic cache, when it is on for the default or some alias (None otherwise: then
    numpy and the embedder are never imported). `store` shares vectors between replicas;
    an `embedder` other than `local` must be one of `aliases`."""
    sem = config.semantic
    if not sem.enabled and not any(a.semantic for a in config.aliases.values()):
        return None
    from gatewise.cache.semantic import SemanticCache
    from gatewise.embedding import (
        AliasEmbedder,
        AsyncEmbedder,
        EmbedderUnavailableError,
        check_installed,
        local_embedder,
    )

    embedder: AsyncEmbedder
    if sem.embedder == "local":
        try:
            check_installed()
        except EmbedderUnavailableError as exc:
            raise ConfigError(str(exc), path="cache.semantic.embedder") from None
        embedder = local_embedder()
    else:
        if embeddings is None or sem.embedder not in aliases:
            raise ConfigError(f"{sem.embedder!r} is not 'local' nor a model alias",
                              path="cache.semantic.embedder")
        embedder = AliasEmbedder(embeddings, sem.embedder)
    return SemanticCache(sem, config.aliases, embedder, store=store)
