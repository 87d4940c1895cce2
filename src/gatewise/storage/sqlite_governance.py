"""`SQLiteGovernance`: keys, teams, budgets, audit and credentials in one SQLite file.

Records are JSON documents plus the columns we filter or sort on (see `records.py`). The audit
chain's tail (last seq and hash) lives in a one-row `audit_head` table, updated in the same
`BEGIN IMMEDIATE` transaction as the insert: appends are serialised even across processes
sharing the file, and retention deleting every record never restarts the sequence.
Ordering matches `MemoryGovernance`: teams by id, keys and budgets by (created, id),
credentials by name.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gatewise.storage.base import (
    AuditEntry,
    AuditRecord,
    BudgetRecord,
    CredentialRecord,
    KeyRecord,
    TeamRecord,
)
from gatewise.storage.records import ZERO_HASH, from_doc, to_doc
from gatewise.storage.sqlite import _Db, transaction

ChainFn = Callable[[str, int, float, str, str, str | None, dict[str, Any]], str]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS gov_teams (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gov_keys (id TEXT PRIMARY KEY, team TEXT, created REAL NOT NULL,
  last_used REAL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gov_keys_team ON gov_keys (team);
CREATE TABLE IF NOT EXISTS gov_budgets (id TEXT PRIMARY KEY, scope TEXT NOT NULL,
  subject TEXT NOT NULL, created REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gov_credentials (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gov_audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL,
  actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gov_audit_head (id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL, hash TEXT NOT NULL);
INSERT OR IGNORE INTO gov_audit_head VALUES (1, 0, '{ZERO_HASH}');
"""


def _key(doc: str, last_used: float | None) -> KeyRecord:
    key = from_doc(KeyRecord, doc)
    if last_used is not None and (key.last_used is None or last_used > key.last_used):
        key.last_used = last_used
    return key


class SQLiteGovernance:
    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, _SCHEMA)

    # -- teams -----------------------------------------------------------------------------
    async def put_team(self, team: TeamRecord) -> None:
        doc = to_doc(team)
        await self._db.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO gov_teams VALUES (?, ?)", (team.id, doc)))

    async def get_team(self, team_id: str) -> TeamRecord | None:
        row = await self._db.run(lambda c: c.execute(
            "SELECT doc FROM gov_teams WHERE id = ?", (team_id,)).fetchone())
        return None if row is None else from_doc(TeamRecord, row[0])

    async def list_teams(self) -> list[TeamRecord]:
        rows = await self._db.run(lambda c: c.execute(
            "SELECT doc FROM gov_teams ORDER BY id").fetchall())
        return [from_doc(TeamRecord, r[0]) for r in rows]

    async def delete_team(self, team_id: str) -> bool:
        return await self._db.run(lambda c: c.execute(
            "DELETE FROM gov_teams WHERE id = ?", (team_id,)).rowcount > 0)

    # -- keys ------------------------------------------------------------------------------
    async def put_key(self, key: KeyRecord) -> None:
        doc = to_doc(key)
        await self._db.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO gov_keys VALUES (?, ?, ?, ?, ?)",
            (key.id, key.team, key.created, key.last_used, doc)))

    async def get_key(self, key_id: str) -> KeyRecord | None:
        row = await self._db.run(lambda c: c.execute(
            "SELECT doc, last_used FROM gov_keys WHERE id = ?", (key_id,)).fetchone())
        return None if row is None else _key(row[0], row[1])

    async def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        sql = "SELECT doc, last_used FROM gov_keys"
        args: tuple[Any, ...] = ()
        if team is not None:
            sql, args = sql + " WHERE team = ?", (team,)
        rows = await self._db.run(lambda c: c.execute(sql + " ORDER BY created, id", args).fetchall())
        return [_key(r[0], r[1]) for r in rows]

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        rows = [(ts, key_id, ts) for key_id, ts in last_used.items()]

        def q(c: sqlite3.Connection) -> None:
            c.execute("BEGIN")
            c.executemany("UPDATE gov_keys SET last_used = ? WHERE id = ? AND "
                          "(last_used IS NULL OR last_used < ?)", rows)
            c.execute("COMMIT")

        if rows:
            await self._db.run(q)

    # -- budgets ---------------------------------------------------------------------------
    async def put_budget(self, budget: BudgetRecord) -> None:
        doc = to_doc(budget)
        await self._db.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO gov_budgets VALUES (?, ?, ?, ?, ?)",
            (budget.id, budget.scope, budget.subject, budget.created, doc)))

    async def list_budgets(self, scope: str | None = None,
                           subject: str | None = None) -> list[BudgetRecord]:
        where, args = [], []
        for col, value in (("scope", scope), ("subject", subject)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT doc FROM gov_budgets" + (" WHERE " + " AND ".join(where) if where else "")
        rows = await self._db.run(lambda c: c.execute(sql + " ORDER BY created, id", args).fetchall())
        return [from_doc(BudgetRecord, r[0]) for r in rows]

    async def delete_budget(self, budget_id: str) -> bool:
        return await self._db.run(lambda c: c.execute(
            "DELETE FROM gov_budgets WHERE id = ?", (budget_id,)).rowcount > 0)

    # -- audit -----------------------------------------------------------------------------
    async def append_audit(self, ts: float, actor: str, action: str, target: str | None,
                           detail: dict[str, Any], chain: ChainFn) -> AuditRecord:
        detail_json = json.dumps(detail)
        detail = json.loads(detail_json)  # the chain hashes what a reader will get back

        def q(c: sqlite3.Connection) -> AuditRecord:
            with transaction(c):
                last_seq, prev = c.execute("SELECT seq, hash FROM gov_audit_head").fetchone()
                seq = int(last_seq) + 1
                digest = chain(prev, seq, ts, actor, action, target, detail)
                c.execute("INSERT INTO gov_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (seq, ts, actor, action, target, detail_json, prev, digest))
                c.execute("UPDATE gov_audit_head SET seq = ?, hash = ?", (seq, digest))
            return AuditRecord(seq, ts, actor, action, target, detail, prev, digest)

        return await self._db.run(q)

    async def append_audit_many(self, entries: Sequence[AuditEntry],
                                chain: ChainFn) -> list[AuditRecord]:
        # Encoded before the transaction; the chain hashes what a reader will get back.
        docs = [json.dumps(e.detail) for e in entries]
        details = [json.loads(d) for d in docs]

        def q(c: sqlite3.Connection) -> list[AuditRecord]:
            with transaction(c):
                last_seq, prev = c.execute("SELECT seq, hash FROM gov_audit_head").fetchone()
                seq = int(last_seq)
                made: list[AuditRecord] = []
                for e, detail in zip(entries, details, strict=True):
                    seq += 1
                    digest = chain(prev, seq, e.ts, e.actor, e.action, e.target, detail)
                    made.append(AuditRecord(seq, e.ts, e.actor, e.action, e.target, detail,
                                            prev, digest))
                    prev = digest
                c.executemany("INSERT INTO gov_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              [(r.seq, r.ts, r.actor, r.action, r.target, doc, r.prev_hash,
                                r.hash) for r, doc in zip(made, docs, strict=True)])
                c.execute("UPDATE gov_audit_head SET seq = ?, hash = ?", (seq, prev))
            return made

        return await self._db.run(q) if entries else []

    async def audit(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        rows = await self._db.run(lambda c: c.execute(
            "SELECT seq, ts, actor, action, target, detail, prev_hash, hash FROM gov_audit "
            "WHERE seq > ? ORDER BY seq LIMIT ?", (since_seq, max(0, limit))).fetchall())
        return [AuditRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7])
                for r in rows]

    async def delete_audit_before(self, ts: float, limit: int) -> int:
        """Deletes a prefix of the chain only (up to the first record at or after `ts`), so a
        record with a skewed clock never leaves a hole in the middle."""
        def q(c: sqlite3.Connection) -> int:
            c.execute("BEGIN IMMEDIATE")
            try:
                stop = c.execute("SELECT MIN(seq) FROM gov_audit WHERE ts >= ?", (ts,)).fetchone()[0]
                bound = c.execute("SELECT seq FROM gov_audit ORDER BY seq LIMIT 1 OFFSET ?",
                                  (max(0, limit),)).fetchone()
                upper = min(x for x in (stop, bound[0] if bound else None, 2**62) if x is not None)
                return c.execute("DELETE FROM gov_audit WHERE seq < ?", (upper,)).rowcount
            finally:
                c.execute("COMMIT")

        return await self._db.run(q)

    # -- credentials -----------------------------------------------------------------------
    async def put_credential(self, cred: CredentialRecord) -> None:
        doc = to_doc(cred)
        await self._db.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO gov_credentials VALUES (?, ?)", (cred.name, doc)))

    async def get_credential(self, name: str) -> CredentialRecord | None:
        row = await self._db.run(lambda c: c.execute(
            "SELECT doc FROM gov_credentials WHERE name = ?", (name,)).fetchone())
        return None if row is None else from_doc(CredentialRecord, row[0])

    async def list_credentials(self) -> list[CredentialRecord]:
        rows = await self._db.run(lambda c: c.execute(
            "SELECT doc FROM gov_credentials ORDER BY name").fetchall())
        return [from_doc(CredentialRecord, r[0]) for r in rows]

    async def aclose(self) -> None:
        await self._db.close()
