"""The response cache (exact, this slice): key, policy, store and middleware.

`build_cache` makes the middleware from `cache:` in the config, or None when no alias has the
cache on (then the chain has no cache stage and the hot path pays nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gatewise.accounting.usage import Prices
from gatewise.cache.middleware import HEADER, CacheMiddleware
from gatewise.cache.policy import CachePolicy
from gatewise.cache.store import LRUStore, ResponseCache
from gatewise.config.schema import CacheConfig
from gatewise.storage.base import KVStore

__all__ = ["HEADER", "CacheMiddleware", "LRUStore", "ResponseCache", "build_cache"]


def build_cache(config: CacheConfig, *, shared: KVStore | None, redis: bool,
                deployments: Mapping[str, Sequence[str]],
                prices: Prices | None = None) -> CacheMiddleware | None:
    """`shared` is the storage section's key-value store, used for `store: shared`, or for
    `auto` when Redis is configured (`redis`)."""
    policy = CachePolicy(config)
    if not policy.any_enabled:
        return None
    use_shared = shared is not None and (
        config.store == "shared" or (config.store == "auto" and redis))
    store: KVStore = shared if use_shared and shared is not None \
        else LRUStore(config.max_entries)
    return CacheMiddleware(ResponseCache(store, max_entry_bytes=config.max_entry_bytes), policy,
                           deployments=deployments, prices=prices)
