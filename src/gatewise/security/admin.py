"""`AdminService`: what an administrator can do, in one place for every surface.

The admin API (`server/routes/admin/`) and the CLI's admin commands (`cli/admin.py`) call
these methods and nothing beneath them, so a change to how keys, teams, budgets, usage,
audit or credentials are kept is made here once. Who may do what is the caller's business
(the routes check permissions and team scope; the CLI's user owns the database); every change
is audited under the `actor` it is given.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from gatewise.accounting.build import Accounting
from gatewise.errors import KeyNotFoundError, NotConfiguredError, TeamNotFoundError
from gatewise.security.audit import VerifyResult
from gatewise.security.build import Security
from gatewise.storage.base import (
    AuditRecord,
    BudgetRecord,
    CredentialRecord,
    KeyRecord,
    TeamRecord,
    UsageGroup,
    UsageRecord,
    UsageRow,
)


class AdminService:
    def __init__(self, security: Security, accounting: Accounting) -> None:
        self._security = security
        self._accounting = accounting
        self._store = security.store

    # -- keys --------------------------------------------------------------------------------
    async def create_key(self, *, name: str, role: str, team: str | None, user: str | None,
                         models: Iterable[str], permissions: Iterable[str],
                         expires_in_s: float | None, rpm: int | None, tpm: int | None,
                         actor: str) -> tuple[str, KeyRecord]:
        """The full key (its secret is shown this once) and its record."""
        return await self._security.keys.create(
            name=name, role=role, team=team, user=user, models=models,
            permissions=permissions, expires_in_s=expires_in_s, rpm=rpm, tpm=tpm, actor=actor)

    async def get_key(self, key_id: str) -> KeyRecord:
        rec = await self._store.get_key(key_id)
        if rec is None:
            raise KeyNotFoundError(f"no key '{key_id}'", param="key_id")
        return rec

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        return await self._security.keys.list(team=team)

    async def update_key(self, key_id: str, *, actor: str, **changes: Any) -> KeyRecord:
        return await self._security.keys.update(key_id, actor=actor, **changes)

    async def revoke_key(self, key_id: str, *, actor: str) -> KeyRecord:
        """Revoked at once, on every replica."""
        return await self._security.keys.revoke(key_id, actor=actor)

    async def rotate_key(self, key_id: str, *, actor: str,
                         overlap_s: float) -> tuple[str, KeyRecord]:
        return await self._security.keys.rotate(key_id, actor=actor, overlap_s=overlap_s)

    # -- teams -------------------------------------------------------------------------------
    async def create_team(self, team_id: str, *, name: str, models: Iterable[str],
                          rpm: int | None, tpm: int | None, actor: str) -> TeamRecord:
        return await self._security.teams.create(team_id=team_id, name=name, models=models,
                                                 rpm=rpm, tpm=tpm, actor=actor)

    async def list_teams(self) -> list[TeamRecord]:
        return await self._security.teams.list()

    async def find_team(self, team_id: str) -> TeamRecord | None:
        return await self._store.get_team(team_id)

    async def get_team(self, team_id: str) -> TeamRecord:
        team = await self._store.get_team(team_id)
        if team is None:
            raise TeamNotFoundError(f"no team '{team_id}'", param="team_id")
        return team

    async def update_team(self, team_id: str, *, actor: str, **changes: Any) -> TeamRecord:
        """Its keys' cached identities are dropped on every replica."""
        return await self._security.teams.update(team_id, actor=actor, **changes)

    async def delete_team(self, team_id: str, *, actor: str) -> None:
        """Refused (409) while the team has live keys."""
        await self._security.teams.delete(team_id, actor=actor)

    # -- budgets -----------------------------------------------------------------------------
    async def create_budget(self, *, scope: str, subject: str, period: str,
                            limit_usd: float | None, limit_tokens: int | None, hard: bool,
                            actor: str) -> BudgetRecord:
        """Applies on this replica at once and on the others as soon as they hear of it."""
        rec = BudgetRecord(id=f"bud_{secrets.token_hex(6)}", scope=scope, subject=subject,
                           period=period, limit_usd=limit_usd, limit_tokens=limit_tokens,
                           hard=hard, created=time.time())
        await self._store.put_budget(rec)
        await self._budgets_changed()
        await self._security.audit.record(
            actor, "budget.create", rec.id, scope=scope, subject=subject, period=period,
            limit_usd=limit_usd, limit_tokens=limit_tokens, hard=hard)
        return rec

    async def list_budgets(self, scope: str | None = None,
                           subject: str | None = None) -> list[BudgetRecord]:
        return await self._store.list_budgets(scope, subject)

    async def budget_spent(self, budget: BudgetRecord) -> dict[str, float]:
        """This period's spend, per unit (usd, tokens)."""
        return await self._accounting.spent(budget)

    async def delete_budget(self, budget_id: str, *, actor: str) -> bool:
        """False when there was no such budget."""
        gone = await self._store.delete_budget(budget_id)
        if gone:
            await self._budgets_changed()
            await self._security.audit.record(actor, "budget.delete", budget_id)
        return gone

    async def _budgets_changed(self) -> None:
        self._accounting.budgets.invalidate()
        await self._security.keys.budgets_changed()

    # -- usage -------------------------------------------------------------------------------
    async def usage(self, group_by: Sequence[UsageGroup], *, since: float | None,
                    until: float | None, team: str | None,
                    key_id: str | None) -> list[UsageRow]:
        return await self._accounting.usage(group_by, since=since, until=until, team=team,
                                            key_id=key_id)

    async def usage_records(self, *, since: float | None, until: float | None, limit: int,
                            team: str | None, key_id: str | None) -> list[UsageRecord]:
        return await self._accounting.usage_records(since=since, until=until, limit=limit,
                                                    team=team, key_id=key_id)

    # -- audit and retention -----------------------------------------------------------------
    async def audit(self, *, since_seq: int, limit: int) -> list[AuditRecord]:
        """Records after `since_seq`, the security events still batched included."""
        return await self._security.audit.entries(since_seq=since_seq, limit=limit)

    async def verify_audit(self) -> VerifyResult:
        """Recomputes the hash chain."""
        return await self._security.audit.verify()

    async def run_retention(self, *, actor: str) -> dict[str, int]:
        """Purges usage and audit records past their retention now."""
        return await self._security.purge(actor=actor)

    # -- provider credentials ----------------------------------------------------------------
    async def put_credential(self, name: str, provider: str, secret: str, *, actor: str,
                             rotate_every_days: int | None) -> CredentialRecord:
        """409 (`NotConfiguredError`) without `security.encryption_key`."""
        return await self._security.vault.put(name, provider, secret, actor=actor,
                                              rotate_every_days=rotate_every_days)

    async def list_credentials(self) -> list[CredentialRecord]:
        if self._security.vault_configured:
            # Key-usage monitoring shows this replica's latest uses.
            await self._security.vault.flush_usage()
        return await self._store.list_credentials()

    async def rotate_credential(self, name: str, secret: str | None, *,
                                actor: str) -> CredentialRecord:
        """Replaces the secret with `secret`, or, without one, rotates now from the source
        configured in `security.rotation` (the new key checked live first). 409
        (`NotConfiguredError`) without `security.encryption_key` or a source; 502
        (`CredentialRotationError`) when the source or the live check fails."""
        if secret is not None:
            return await self._security.vault.rotate(name, secret, actor=actor)
        rotation = self._security.rotation
        if rotation is None:
            raise NotConfiguredError(
                f"no rotation source for credential '{name}': give a 'secret', or configure "
                f"'security.rotation.{name}'")
        return await rotation.rotate_now(name, actor=actor)
