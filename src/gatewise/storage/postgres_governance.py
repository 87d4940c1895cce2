"""`PostgresGovernance`: keys, teams, budgets, audit and credentials shared by every replica.

Records are JSON documents plus the columns we filter or sort on (see `records.py`); a key's
`last_used` is its own column so `touch_keys` never rewrites documents. Audit appends are
serialised by a one-row chain head (`audit_head`) locked `FOR UPDATE` in the same
transaction as the insert: two replicas appending at once queue on that row, so `seq` stays
gap-free and every `prev_hash` is the hash just before it (the chain never forks), and
retention deleting every record never restarts the sequence. The audit detail is stored as
`json` (text, key order kept), so a verifier re-hashing what it reads gets the same bytes.
Ordering matches `MemoryGovernance`.
"""

from __future__ import annotations

import json
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
from gatewise.storage.postgres import PgDatabase, _PgStore
from gatewise.storage.records import ZERO_HASH, from_doc, to_doc

ChainFn = Callable[[str, int, float, str, str, str | None, dict[str, Any]], str]


def _key(doc: Any, last_used: float | None) -> KeyRecord:
    key = from_doc(KeyRecord, doc)
    if last_used is not None and (key.last_used is None or last_used > key.last_used):
        key.last_used = last_used
    return key


class PostgresGovernance(_PgStore):
    _name = "governance"
    _ddl = f"""
CREATE TABLE IF NOT EXISTS {{s}}.gov_teams (id text PRIMARY KEY, doc text NOT NULL);
CREATE TABLE IF NOT EXISTS {{s}}.gov_keys (id text PRIMARY KEY, team text, created float8 NOT NULL,
  last_used float8, doc text NOT NULL);
CREATE INDEX IF NOT EXISTS gov_keys_team ON {{s}}.gov_keys (team);
CREATE TABLE IF NOT EXISTS {{s}}.gov_budgets (id text PRIMARY KEY, scope text NOT NULL,
  subject text NOT NULL, created float8 NOT NULL, doc text NOT NULL);
CREATE TABLE IF NOT EXISTS {{s}}.gov_credentials (name text PRIMARY KEY, doc text NOT NULL);
CREATE TABLE IF NOT EXISTS {{s}}.gov_audit (seq int8 PRIMARY KEY, ts float8 NOT NULL,
  actor text NOT NULL, action text NOT NULL, target text, detail json NOT NULL,
  prev_hash text NOT NULL, hash text NOT NULL);
CREATE INDEX IF NOT EXISTS gov_audit_ts ON {{s}}.gov_audit (ts);
CREATE TABLE IF NOT EXISTS {{s}}.gov_audit_head (id int PRIMARY KEY CHECK (id = 1),
  seq int8 NOT NULL, hash text NOT NULL);
INSERT INTO {{s}}.gov_audit_head VALUES (1, 0, '{ZERO_HASH}') ON CONFLICT (id) DO NOTHING;
"""

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise") -> None:
        super().__init__(db, schema=schema)

    async def _one(self, sql: str, args: Any = ()) -> Any:
        async with self._conn() as conn:
            return await (await conn.execute(sql, args)).fetchone()

    async def _all(self, sql: str, args: Any = ()) -> list[Any]:
        async with self._conn() as conn:
            return await (await conn.execute(sql, args)).fetchall()

    async def _rowcount(self, sql: str, args: Any = ()) -> int:
        async with self._conn() as conn:
            return (await conn.execute(sql, args)).rowcount

    # -- teams -----------------------------------------------------------------------------
    async def put_team(self, team: TeamRecord) -> None:
        await self._rowcount(f"INSERT INTO {self._s}.gov_teams VALUES (%s, %s) ON CONFLICT (id) "
                             "DO UPDATE SET doc = excluded.doc", (team.id, to_doc(team)))

    async def get_team(self, team_id: str) -> TeamRecord | None:
        row = await self._one(f"SELECT doc FROM {self._s}.gov_teams WHERE id = %s", (team_id,))
        return None if row is None else from_doc(TeamRecord, row[0])

    async def list_teams(self) -> list[TeamRecord]:
        rows = await self._all(f"SELECT doc FROM {self._s}.gov_teams ORDER BY id")
        return [from_doc(TeamRecord, r[0]) for r in rows]

    async def delete_team(self, team_id: str) -> bool:
        return await self._rowcount(f"DELETE FROM {self._s}.gov_teams WHERE id = %s", (team_id,)) > 0

    # -- keys ------------------------------------------------------------------------------
    async def put_key(self, key: KeyRecord) -> None:
        await self._rowcount(
            f"INSERT INTO {self._s}.gov_keys VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
            "SET team = excluded.team, created = excluded.created, last_used = excluded.last_used, "
            "doc = excluded.doc", (key.id, key.team, key.created, key.last_used, to_doc(key)))

    async def get_key(self, key_id: str) -> KeyRecord | None:
        row = await self._one(f"SELECT doc, last_used FROM {self._s}.gov_keys WHERE id = %s",
                              (key_id,))
        return None if row is None else _key(row[0], row[1])

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        where = " WHERE team = %s" if team is not None else ""
        rows = await self._all(f"SELECT doc, last_used FROM {self._s}.gov_keys{where} "
                               "ORDER BY created, id", (team,) if team is not None else ())
        return [_key(r[0], r[1]) for r in rows]

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        if not last_used:
            return
        ids, stamps = list(last_used), list(last_used.values())
        await self._rowcount(
            f"UPDATE {self._s}.gov_keys k SET last_used = u.ts FROM "
            "unnest(%s::text[], %s::float8[]) AS u(id, ts) "
            "WHERE k.id = u.id AND (k.last_used IS NULL OR k.last_used < u.ts)", (ids, stamps))

    # -- budgets ---------------------------------------------------------------------------
    async def put_budget(self, budget: BudgetRecord) -> None:
        await self._rowcount(
            f"INSERT INTO {self._s}.gov_budgets VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO "
            "UPDATE SET scope = excluded.scope, subject = excluded.subject, "
            "created = excluded.created, doc = excluded.doc",
            (budget.id, budget.scope, budget.subject, budget.created, to_doc(budget)))

    async def list_budgets(self, scope: str | None = None,
                           subject: str | None = None) -> list[BudgetRecord]:
        where, args = [], []
        for col, value in (("scope", scope), ("subject", subject)):
            if value is not None:
                where.append(f"{col} = %s")
                args.append(value)
        rows = await self._all(f"SELECT doc FROM {self._s}.gov_budgets"
                               + (" WHERE " + " AND ".join(where) if where else "")
                               + " ORDER BY created, id", args)
        return [from_doc(BudgetRecord, r[0]) for r in rows]

    async def delete_budget(self, budget_id: str) -> bool:
        return await self._rowcount(f"DELETE FROM {self._s}.gov_budgets WHERE id = %s",
                                    (budget_id,)) > 0

    # -- audit -----------------------------------------------------------------------------
    async def append_audit(self, ts: float, actor: str, action: str, target: str | None,
                           detail: dict[str, Any], chain: ChainFn) -> AuditRecord:
        detail_json = json.dumps(detail)
        detail = json.loads(detail_json)  # the chain hashes exactly what a reader gets back
        async with self._conn() as conn, conn.transaction():
            head = await (await conn.execute(
                f"SELECT seq, hash FROM {self._s}.gov_audit_head WHERE id = 1 FOR UPDATE")).fetchone()
            assert head is not None
            seq, prev = int(head[0]) + 1, str(head[1])
            digest = chain(prev, seq, ts, actor, action, target, detail)
            await conn.execute(
                f"INSERT INTO {self._s}.gov_audit VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (seq, ts, actor, action, target, detail_json, prev, digest))
            await conn.execute(f"UPDATE {self._s}.gov_audit_head SET seq = %s, hash = %s WHERE id = 1",
                               (seq, digest))
        return AuditRecord(seq, ts, actor, action, target, detail, prev, digest)

    async def append_audit_many(self, entries: Sequence[AuditEntry],
                                chain: ChainFn) -> list[AuditRecord]:
        if not entries:
            return []
        docs = [json.dumps(e.detail) for e in entries]
        details = [json.loads(d) for d in docs]  # what a reader gets back, hashed
        async with self._conn() as conn, conn.transaction():
            head = await (await conn.execute(
                f"SELECT seq, hash FROM {self._s}.gov_audit_head WHERE id = 1 FOR UPDATE")).fetchone()
            assert head is not None
            seq, prev = int(head[0]), str(head[1])
            made: list[AuditRecord] = []
            for e, detail in zip(entries, details, strict=True):
                seq += 1
                digest = chain(prev, seq, e.ts, e.actor, e.action, e.target, detail)
                made.append(AuditRecord(seq, e.ts, e.actor, e.action, e.target, detail, prev,
                                        digest))
                prev = digest
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO {self._s}.gov_audit VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [(r.seq, r.ts, r.actor, r.action, r.target, doc, r.prev_hash, r.hash)
                     for r, doc in zip(made, docs, strict=True)])
            await conn.execute(f"UPDATE {self._s}.gov_audit_head SET seq = %s, hash = %s WHERE id = 1",
                               (seq, prev))
        return made

    async def audit(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        rows = await self._all(
            f"SELECT seq, ts, actor, action, target, detail::text, prev_hash, hash "
            f"FROM {self._s}.gov_audit WHERE seq > %s ORDER BY seq LIMIT %s",
            (since_seq, max(0, limit)))
        return [AuditRecord(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7])
                for r in rows]

    async def delete_audit_before(self, ts: float, limit: int) -> int:
        """Deletes a prefix of the chain only (up to the first record at or after `ts`, at
        most `limit`), so a record with a skewed clock never leaves a hole in the middle."""
        return await self._rowcount(
            f"DELETE FROM {self._s}.gov_audit WHERE seq IN (SELECT seq FROM {self._s}.gov_audit "
            f"WHERE seq < COALESCE((SELECT MIN(seq) FROM {self._s}.gov_audit WHERE ts >= %s), "
            "9223372036854775807) ORDER BY seq LIMIT %s)", (ts, max(0, limit)))

    # -- credentials -----------------------------------------------------------------------
    async def put_credential(self, cred: CredentialRecord) -> None:
        await self._rowcount(f"INSERT INTO {self._s}.gov_credentials VALUES (%s, %s) "
                             "ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                             (cred.name, to_doc(cred)))

    async def get_credential(self, name: str) -> CredentialRecord | None:
        row = await self._one(f"SELECT doc FROM {self._s}.gov_credentials WHERE name = %s", (name,))
        return None if row is None else from_doc(CredentialRecord, row[0])

    async def list_credentials(self) -> list[CredentialRecord]:
        rows = await self._all(f"SELECT doc FROM {self._s}.gov_credentials ORDER BY name")
        return [from_doc(CredentialRecord, r[0]) for r in rows]
