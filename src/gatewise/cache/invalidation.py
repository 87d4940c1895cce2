"""Invalidation of cached answers: by key, by tag, by alias pattern or raw key prefix, always
within what the caller may touch.

A team admin acts on its own team's entries only; a global admin (`team=None`) on any, or
on one team's. Entries are found by prefix (see `key`: `cache:v1:<scope>:<alias>:...`), so
the scopes and aliases that ever stored an entry are kept in two sets in the cache's store
(written once per process and name, off the hot path): a global admin's invalidation of a
tag or an alias then reaches every team, on every replica.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from gatewise.cache.key import META_PREFIX, PREFIX, alias_prefix, scope_prefix, scope_tag_key
from gatewise.cache.near import NearCache
from gatewise.errors import ForbiddenError, InvalidRequestError
from gatewise.storage.base import KVStore

SCOPES_KEY = META_PREFIX + "scopes"
ALIASES_KEY = META_PREFIX + "aliases"


@dataclass(frozen=True, slots=True)
class Reach:
    """Whose entries a caller may invalidate: `team` None is every team (a global admin);
    `tenant` is the caller's (a team admin's scope is computed even before the registry
    knows it)."""

    team: str | None
    tenant: str = "default"


def _team_of(scope: str) -> str | None:
    _, _, who = scope.partition("/")
    return who[5:] if who.startswith("team:") else None


class Invalidator:
    """`near`: the replica's near cache (`near.NearCache`): what is deleted from the store is
    dropped there too and broadcast to every other replica's."""

    def __init__(self, store: KVStore, aliases: Iterable[str] = (), *,
                 near: NearCache | None = None) -> None:
        self._store = store
        self._near = near
        self._configured = frozenset(aliases)
        self._seen_scopes: set[str] = set()
        self._seen_aliases: set[str] = set()

    async def remember(self, scope: str, alias: str) -> None:
        """Called when an entry is stored: registers its scope and alias (once per process)."""
        if scope not in self._seen_scopes:
            await self._store.add_members(SCOPES_KEY, [scope])
            self._seen_scopes.add(scope)
        if alias not in self._seen_aliases:
            await self._store.add_members(ALIASES_KEY, [alias])
            self._seen_aliases.add(alias)

    async def scopes(self, reach: Reach) -> list[str]:
        """Every scope within reach that ever stored an entry."""
        known = set(await self._store.members(SCOPES_KEY))
        if reach.team is None:
            return sorted(known)
        own = f"{reach.tenant}/team:{reach.team}"
        return sorted({s for s in known if _team_of(s) == reach.team} | {own})

    async def aliases(self, pattern: str) -> list[str]:
        """Aliases matching a glob (`gpt-*`), among the configured and the stored ones."""
        names = self._configured | set(await self._store.members(ALIASES_KEY))
        return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))

    async def _within(self, key_or_prefix: str, reach: Reach) -> None:
        if not key_or_prefix.startswith(PREFIX):
            raise InvalidRequestError(f"a cache key starts with {PREFIX!r}", param="key")
        if reach.team is None:
            return
        prefixes = [scope_prefix(s) for s in await self.scopes(reach)]
        if not any(key_or_prefix.startswith(p) for p in prefixes):
            raise ForbiddenError("this key may only invalidate its own team's cache entries")

    async def by_key(self, key: str, reach: Reach) -> int:
        await self._within(key, reach)
        removed = int(await self._store.delete(key))
        if self._near is not None:
            await self._near.invalidate_keys([key])
        return removed

    async def by_prefix(self, prefix: str, reach: Reach) -> int:
        """A raw key prefix (of a key from the `x-gatewise-cache-key` header, say)."""
        await self._within(prefix, reach)
        return await self._delete_prefix(prefix)

    async def _delete_prefix(self, prefix: str) -> int:
        removed = await self._store.delete_prefix(prefix)
        if self._near is not None:
            await self._near.invalidate_prefix(prefix)
        return removed

    async def by_tag(self, tag: str, reach: Reach) -> int:
        removed = 0
        for scope in await self.scopes(reach):
            tkey = scope_tag_key(scope, tag)
            keys = await self._store.members(tkey)
            for key in keys:
                removed += int(await self._store.delete(key))
            await self._store.delete(tkey)
            if self._near is not None:
                await self._near.invalidate_keys(keys)
        return removed

    async def by_alias(self, pattern: str | None, reach: Reach) -> int:
        """Every entry of the aliases matching `pattern` (all aliases when None)."""
        if pattern is None and reach.team is None:
            return await self._delete_prefix(PREFIX)
        scopes = await self.scopes(reach)
        if pattern is None:
            prefixes = [scope_prefix(s) for s in scopes]
        else:
            aliases = await self.aliases(pattern)
            prefixes = [alias_prefix(s, a) for s in scopes for a in aliases]
        removed = 0
        for p in prefixes:
            removed += await self._delete_prefix(p)
        return removed
