"""Teams: the unit keys, budgets and usage are grouped by (and the tenant of their keys).

A team's `models` (allow-list, fnmatch patterns) and `rpm`/`tpm` apply on top of each key's own.
Every change is audited; when a `KeyManager` is given, its cached identities of the team's keys
are dropped (on every replica) so a narrowed model list applies at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from gatewise.errors import ConflictError, InvalidRequestError, TeamNotFoundError
from gatewise.security.audit import AuditLog
from gatewise.storage.base import GovernanceStore, TeamRecord
from gatewise.types.limits import TEAM_ID_PATTERN

if TYPE_CHECKING:
    from gatewise.security.keys import KeyManager

_TEAM_ID = re.compile(TEAM_ID_PATTERN)
_UPDATABLE = frozenset({"name", "models", "rpm", "tpm", "metadata"})


class TeamManager:
    def __init__(self, store: GovernanceStore, audit: AuditLog, *, keys: KeyManager | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.audit = audit
        self.keys = keys
        self._clock = clock

    async def create(self, team_id: str, *, name: str | None = None, models: Iterable[str] = (),
                     rpm: int | None = None, tpm: int | None = None,
                     metadata: dict[str, Any] | None = None, actor: str) -> TeamRecord:
        if not _TEAM_ID.fullmatch(team_id):
            raise InvalidRequestError("team id must be 1-64 of a-z 0-9 _ . - (starting with a "
                                      "letter or digit)", param="id")
        if await self.store.get_team(team_id) is not None:
            raise ConflictError(f"team {team_id!r} already exists", param="id",
                                code="team_exists")
        team = TeamRecord(id=team_id, name=name or team_id, models=list(models), rpm=rpm, tpm=tpm,
                          created=self._clock(), metadata=dict(metadata or {}))
        await self.store.put_team(team)
        await self.audit.record(actor, "team.create", team_id, name=team.name, models=team.models,
                                rpm=rpm, tpm=tpm)
        return team

    async def get(self, team_id: str) -> TeamRecord:
        team = await self.store.get_team(team_id)
        if team is None:
            raise TeamNotFoundError(f"no team {team_id!r}", param="team")
        return team

    async def list(self) -> list[TeamRecord]:
        return await self.store.list_teams()

    async def update(self, team_id: str, *, actor: str, **changes: Any) -> TeamRecord:
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise InvalidRequestError(f"cannot update {', '.join(unknown)}", param=unknown[0])
        team = await self.get(team_id)
        if "models" in changes:
            changes["models"] = list(changes["models"])
        for field, value in changes.items():
            setattr(team, field, value)
        await self.store.put_team(team)
        if self.keys is not None:
            await self.keys.team_changed(team_id)
        shown = {k: v for k, v in changes.items() if k != "metadata"}
        await self.audit.record(actor, "team.update", team_id, fields=sorted(changes),
                                changes=shown)
        return team

    async def delete(self, team_id: str, *, actor: str) -> None:
        """Refuses (409) while the team has live keys (revoke them first): a key of a deleted
        team would otherwise keep the team's name but lose its limits."""
        await self.get(team_id)
        now = self._clock()
        live = [k.id for k in await self.store.list_keys(team_id)
                if k.revoked is None and (k.expires is None or k.expires > now)]
        if live:
            raise ConflictError(f"team {team_id!r} still has {len(live)} live key(s)",
                                param="team", code="team_has_keys")
        await self.store.delete_team(team_id)
        if self.keys is not None:
            await self.keys.team_changed(team_id)
        await self.audit.record(actor, "team.delete", team_id)
