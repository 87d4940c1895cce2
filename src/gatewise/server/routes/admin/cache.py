"""`/admin/cache`: the response cache's statistics, and invalidation by key, by tag, and by
alias pattern or key prefix. Below admin, a caller reads and invalidates its own team's
entries only (`cache:manage`: team admins and admins). With the cache off, statistics are
empty and nothing is deleted."""

from __future__ import annotations

from gatewise.cache.invalidation import Reach
from gatewise.cache.stats import totals
from gatewise.security.inputs import CacheEntriesQuery, CacheScopeQuery, CacheStatsQuery
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import STR, AdminRoute, Args, View, own_team, send_json

_INT = {"type": "integer", "minimum": 0}
_NUM = {"type": "number", "minimum": 0}
_ROW = {"type": "object", "properties": {
    "team": STR, "alias": STR, "hits": _INT, "semantic_hits": _INT, "misses": _INT,
    "bypasses": _INT, "hit_rate": {"type": "number", "minimum": 0, "maximum": 1},
    "tokens_saved": _INT, "usd_saved": _NUM}}
_DELETED = View(extra={"object": STR, "deleted": _INT})


async def stats(ctx: RequestContext, a: Args) -> None:
    """Hits, semantic hits, misses, bypasses, hit rate, tokens and USD saved, per team and
    alias, summed over every replica on a shared store."""
    q: CacheStatsQuery = a.query
    team = own_team(ctx.identity, q.team)
    require(ctx.identity, "usage:read", team=team)
    cache = ctx.gateway.cache
    rows = await cache.stats.read(team) if cache is not None else []
    await send_json(ctx, {"object": "cache.stats", "enabled": cache is not None,
                          "total": totals(rows).to_json(),
                          "data": [r.to_json() for r in rows]})


def _reach(ctx: RequestContext, team: str | None) -> Reach:
    ident = ctx.identity
    team = own_team(ident, team)
    require(ident, "cache:manage", team=team)
    return Reach(team, ident.tenant)


async def _deleted(ctx: RequestContext, n: int) -> None:
    m = ctx.gateway.metrics
    if n:
        m.cache_evictions.inc(("invalidated",), n)
    await send_json(ctx, {"object": "cache.invalidation", "deleted": n})


async def delete_key(ctx: RequestContext, a: Args) -> None:
    """Removes one entry (its key is the `x-gatewise-cache-key` response header)."""
    q: CacheScopeQuery = a.query
    reach = _reach(ctx, q.team)
    cache = ctx.gateway.cache
    n = await cache.invalidation.by_key(a.path["cache_key"], reach) if cache else 0
    await _deleted(ctx, n)


async def delete_tag(ctx: RequestContext, a: Args) -> None:
    """Removes every entry stored with this tag (the caller's team's, below admin)."""
    q: CacheScopeQuery = a.query
    reach = _reach(ctx, q.team)
    cache = ctx.gateway.cache
    n = await cache.invalidation.by_tag(a.path["tag"], reach) if cache else 0
    await _deleted(ctx, n)


async def delete_entries(ctx: RequestContext, a: Args) -> None:
    """Removes entries by alias glob (`alias=gpt-*`) and/or team, or by raw key prefix;
    with neither, every entry within the caller's reach."""
    q: CacheEntriesQuery = a.query
    reach = _reach(ctx, q.team)
    cache = ctx.gateway.cache
    if cache is None:
        n = 0
    elif q.prefix is not None:
        n = await cache.invalidation.by_prefix(q.prefix, reach)
    else:
        n = await cache.invalidation.by_alias(q.alias, reach)
    await _deleted(ctx, n)


ROUTES = [
    AdminRoute("GET", "/admin/cache/stats", "usage:read", stats,
               View(extra={"object": STR, "enabled": {"type": "boolean"}, "total": _ROW,
                           "data": {"type": "array", "items": _ROW}}), query=CacheStatsQuery),
    AdminRoute("DELETE", "/admin/cache/keys/{cache_key}", "cache:manage", delete_key, _DELETED,
               query=CacheScopeQuery),
    AdminRoute("DELETE", "/admin/cache/tags/{tag}", "cache:manage", delete_tag, _DELETED,
               query=CacheScopeQuery),
    AdminRoute("DELETE", "/admin/cache/entries", "cache:manage", delete_entries, _DELETED,
               query=CacheEntriesQuery),
]
