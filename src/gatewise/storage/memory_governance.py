"""`MemoryGovernance`: the `GovernanceStore` for one process (the library default and tests).

Records are copied in and out, exactly as a database would serialise them, so a caller that
mutates a record it got back changes nothing until it calls `put_*` again (the SQL backends
behave the same way, and code written against this store must not rely on aliasing).

Single event loop: every method body runs without an `await`, so each is atomic; the audit
chain can never fork. The chain's tail (last seq and hash) is remembered separately from the
records, so retention deleting every record does not restart the sequence at 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from gatewise.storage.base import (
    AuditEntry,
    AuditRecord,
    BudgetRecord,
    CredentialRecord,
    KeyRecord,
    TeamRecord,
)

GENESIS_HASH = "0" * 64

ChainFn = Callable[[str, int, float, str, str, str | None, dict[str, Any]], str]


class MemoryGovernance:
    def __init__(self) -> None:
        self._teams: dict[str, TeamRecord] = {}
        self._keys: dict[str, KeyRecord] = {}
        self._budgets: dict[str, BudgetRecord] = {}
        self._audit: list[AuditRecord] = []
        self._last_seq = 0
        self._last_hash = GENESIS_HASH
        self._credentials: dict[str, CredentialRecord] = {}

    # -- teams -----------------------------------------------------------------------------
    async def put_team(self, team: TeamRecord) -> None:
        self._teams[team.id] = copy.deepcopy(team)

    async def get_team(self, team_id: str) -> TeamRecord | None:
        team = self._teams.get(team_id)
        return None if team is None else copy.deepcopy(team)

    async def list_teams(self) -> list[TeamRecord]:
        return [copy.deepcopy(self._teams[k]) for k in sorted(self._teams)]

    async def delete_team(self, team_id: str) -> bool:
        return self._teams.pop(team_id, None) is not None

    # -- keys ------------------------------------------------------------------------------
    async def put_key(self, key: KeyRecord) -> None:
        self._keys[key.id] = copy.deepcopy(key)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        key = self._keys.get(key_id)
        return None if key is None else copy.deepcopy(key)

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        keys = [k for k in self._keys.values() if team is None or k.team == team]
        keys.sort(key=lambda k: (k.created, k.id))
        return copy.deepcopy(keys)

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        for key_id, ts in last_used.items():
            key = self._keys.get(key_id)
            if key is not None and (key.last_used is None or ts > key.last_used):
                key.last_used = ts

    # -- budgets ---------------------------------------------------------------------------
    async def put_budget(self, budget: BudgetRecord) -> None:
        self._budgets[budget.id] = copy.deepcopy(budget)

    async def list_budgets(self, scope: str | None = None,
                           subject: str | None = None) -> list[BudgetRecord]:
        out = [b for b in self._budgets.values()
               if (scope is None or b.scope == scope) and (subject is None or b.subject == subject)]
        out.sort(key=lambda b: (b.created, b.id))
        return copy.deepcopy(out)

    async def delete_budget(self, budget_id: str) -> bool:
        return self._budgets.pop(budget_id, None) is not None

    # -- audit -----------------------------------------------------------------------------
    async def append_audit(self, ts: float, actor: str, action: str, target: str | None,
                           detail: dict[str, Any], chain: ChainFn) -> AuditRecord:
        seq = self._last_seq + 1
        detail = copy.deepcopy(detail)
        digest = chain(self._last_hash, seq, ts, actor, action, target, detail)
        rec = AuditRecord(seq=seq, ts=ts, actor=actor, action=action, target=target,
                          detail=detail, prev_hash=self._last_hash, hash=digest)
        self._audit.append(rec)
        self._last_seq, self._last_hash = seq, digest
        return copy.deepcopy(rec)

    async def append_audit_many(self, entries: Sequence[AuditEntry],
                                chain: ChainFn) -> list[AuditRecord]:
        seq, prev = self._last_seq, self._last_hash
        made: list[AuditRecord] = []
        for e in entries:  # all built first: an error leaves the log as it was
            seq += 1
            detail = copy.deepcopy(e.detail)
            digest = chain(prev, seq, e.ts, e.actor, e.action, e.target, detail)
            made.append(AuditRecord(seq=seq, ts=e.ts, actor=e.actor, action=e.action,
                                    target=e.target, detail=detail, prev_hash=prev, hash=digest))
            prev = digest
        self._audit.extend(made)
        self._last_seq, self._last_hash = seq, prev
        return copy.deepcopy(made)

    async def audit(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        # Records are appended in seq order, so the first match starts a contiguous run.
        start = next((i for i, r in enumerate(self._audit) if r.seq > since_seq), len(self._audit))
        return copy.deepcopy(self._audit[start:start + max(0, limit)])

    async def delete_audit_before(self, ts: float, limit: int) -> int:
        """Deletes only a prefix of the chain (stopping at the first record at or after `ts`),
        so a record with a skewed clock never leaves a hole in the middle of the chain."""
        n = 0
        while n < limit and n < len(self._audit) and self._audit[n].ts < ts:
            n += 1
        del self._audit[:n]
        return n

    # -- credentials -----------------------------------------------------------------------
    async def put_credential(self, cred: CredentialRecord) -> None:
        self._credentials[cred.name] = copy.deepcopy(cred)

    async def get_credential(self, name: str) -> CredentialRecord | None:
        cred = self._credentials.get(name)
        return None if cred is None else copy.deepcopy(cred)

    async def list_credentials(self) -> list[CredentialRecord]:
        return [copy.deepcopy(self._credentials[k]) for k in sorted(self._credentials)]

    async def aclose(self) -> None:
        return None
