"""Cache statistics per team and alias: hits, misses, bypasses, semantic hits, tokens and USD
saved.

Counted in process on the hot path (a dict add, plus the Prometheus counters), and added to
the cache's store by `flush` (the maintenance job, and before every read), so every replica
on a shared store (Redis, PostgreSQL) reports the same totals, a few seconds late at most.
The store holds one map of numbers per team (`cachemeta:v1:stats:team:<team>`, fields
`<alias>\x1f<counter>`) and the set of teams seen (`cachemeta:v1:stats:teams`).

The semantic cache records its hits here too: `record("semantic_hit", ...)`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from gatewise.cache.key import META_PREFIX
from gatewise.observability.metrics import GatewayMetrics
from gatewise.storage.base import KVStore

log = logging.getLogger("gatewise.cache")

KINDS = ("hit", "miss", "bypass", "semantic_hit")
NO_TEAM = "-"
TEAMS_KEY = META_PREFIX + "stats:teams"
_SEP = "\x1f"


def _team_key(team: str) -> str:
    return META_PREFIX + "stats:team:" + team


@dataclass(slots=True)
class StatsRow:
    """One team and alias (`team` is "-" for callers without a team)."""

    team: str
    alias: str
    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    bypasses: int = 0
    tokens_saved: int = 0
    usd_saved: float = 0.0

    @property
    def lookups(self) -> int:
        return self.hits + self.semantic_hits + self.misses

    @property
    def hit_rate(self) -> float:
        """Exact and semantic hits over every lookup (bypasses never look)."""
        return (self.hits + self.semantic_hits) / self.lookups if self.lookups else 0.0

    def add(self, other: StatsRow) -> None:
        self.hits += other.hits
        self.semantic_hits += other.semantic_hits
        self.misses += other.misses
        self.bypasses += other.bypasses
        self.tokens_saved += other.tokens_saved
        self.usd_saved += other.usd_saved

    def to_json(self) -> dict[str, object]:
        return {"team": self.team, "alias": self.alias, "hits": self.hits,
                "semantic_hits": self.semantic_hits, "misses": self.misses,
                "bypasses": self.bypasses, "hit_rate": round(self.hit_rate, 6),
                "tokens_saved": self.tokens_saved, "usd_saved": round(self.usd_saved, 10)}


_FIELDS = {"hit": "hits", "semantic_hit": "semantic_hits", "miss": "misses",
           "bypass": "bypasses", "tokens_saved": "tokens_saved", "usd_saved": "usd_saved"}


class CacheStats:
    def __init__(self, store: KVStore, metrics: GatewayMetrics | None = None) -> None:
        self._store = store
        self._metrics = metrics
        # team → field (`alias\x1fcounter`) → amount not yet in the store
        self._pending: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float))
        self._teams_known: set[str] = set()

    def record(self, kind: str, *, team: str | None, alias: str, tokens: int = 0,
               usd: float = 0.0) -> None:
        """One lookup's result (`kind` in KINDS), with what a hit saved."""
        pending = self._pending[team or NO_TEAM]
        pending[alias + _SEP + kind] += 1
        if tokens:
            pending[alias + _SEP + "tokens_saved"] += tokens
        if usd:
            pending[alias + _SEP + "usd_saved"] += usd
        m = self._metrics
        if m is not None:
            m.cache_requests.inc((alias, kind))
            if tokens:
                m.cache_tokens_saved.inc((alias,), tokens)
            if usd:
                m.cache_usd_saved.inc((alias,), usd)

    async def flush(self) -> None:
        """Adds what was counted here to the store; kept for the next flush if that fails."""
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(float))
        for team, deltas in pending.items():
            try:
                if team not in self._teams_known:
                    await self._store.add_members(TEAMS_KEY, [team])
                    self._teams_known.add(team)
                await self._store.incr_fields(_team_key(team), deltas)
            except Exception:
                log.warning("cache statistics flush failed", exc_info=True)
                for name, amount in deltas.items():
                    self._pending[team][name] += amount

    async def read(self, team: str | None = None) -> list[StatsRow]:
        """Rows per team and alias (one team's only when `team` is given), after a flush."""
        await self.flush()
        teams = [team] if team is not None else sorted(await self._store.members(TEAMS_KEY))
        rows: list[StatsRow] = []
        for t in teams:
            by_alias: dict[str, StatsRow] = {}
            for name, value in (await self._store.fields(_team_key(t))).items():
                alias, _, counter = name.rpartition(_SEP)
                attr = _FIELDS.get(counter)
                if attr is None:
                    continue
                row = by_alias.get(alias)
                if row is None:
                    row = by_alias[alias] = StatsRow(t, alias)
                setattr(row, attr, value if attr == "usd_saved" else int(value))
            rows.extend(by_alias[a] for a in sorted(by_alias))
        return rows

    async def reset(self, team: str | None = None) -> None:
        """Forgets the totals (one team's, or all)."""
        self._pending.clear()
        teams = [team] if team is not None else await self._store.members(TEAMS_KEY)
        for t in teams:
            await self._store.delete(_team_key(t))


def totals(rows: list[StatsRow]) -> StatsRow:
    out = StatsRow("*", "*")
    for row in rows:
        out.add(row)
    return out
