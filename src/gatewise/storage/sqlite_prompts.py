"""`SQLitePrompts`: prompt template versions in the governance SQLite file.

The next version number comes from a per-name counter row (`gov_prompt_heads`) bumped in the
same `BEGIN IMMEDIATE` transaction as the insert, so processes sharing the file never assign
one number twice and a deleted version's number is never reused.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from gatewise.storage.prompts import PromptRecord
from gatewise.storage.sqlite import _Db, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gov_prompts (name TEXT NOT NULL, version INTEGER NOT NULL,
  created REAL NOT NULL, actor TEXT NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS gov_prompt_heads (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""
_COLS = "name, version, spec, created, actor"


def _record(row: Any) -> PromptRecord:
    return PromptRecord(row[0], int(row[1]), json.loads(row[2]), float(row[3]), row[4])


class SQLitePrompts:
    def __init__(self, path: str | Path) -> None:
        self._db = _Db(path, _SCHEMA)

    async def add_prompt(self, name: str, spec: dict[str, Any], *, created: float,
                         actor: str) -> PromptRecord:
        doc = json.dumps(spec, separators=(",", ":"))

        def q(c: sqlite3.Connection) -> PromptRecord:
            with transaction(c):
                row = c.execute("SELECT version FROM gov_prompt_heads WHERE name = ?",
                                (name,)).fetchone()
                version = (int(row[0]) if row else 0) + 1
                c.execute("INSERT OR REPLACE INTO gov_prompt_heads VALUES (?, ?)", (name, version))
                c.execute("INSERT INTO gov_prompts VALUES (?, ?, ?, ?, ?)",
                          (name, version, created, actor, doc))
            return PromptRecord(name, version, json.loads(doc), created, actor)

        return await self._db.run(q)

    async def get_prompt(self, name: str, version: int | None = None) -> PromptRecord | None:
        if version is None:
            sql = (f"SELECT {_COLS} FROM gov_prompts WHERE name = ? "
                   "ORDER BY version DESC LIMIT 1")
            args: tuple[Any, ...] = (name,)
        else:
            sql, args = f"SELECT {_COLS} FROM gov_prompts WHERE name = ? AND version = ?", (
                name, version)
        row = await self._db.run(lambda c: c.execute(sql, args).fetchone())
        return None if row is None else _record(row)

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        rows = await self._db.run(lambda c: c.execute(
            f"SELECT {_COLS} FROM gov_prompts WHERE name = ? ORDER BY version", (name,)).fetchall())
        return [_record(r) for r in rows]

    async def list_prompts(self) -> list[PromptRecord]:
        rows = await self._db.run(lambda c: c.execute(
            f"SELECT {_COLS} FROM gov_prompts p WHERE version = (SELECT MAX(version) FROM "
            "gov_prompts q WHERE q.name = p.name) ORDER BY name").fetchall())
        return [_record(r) for r in rows]

    async def delete_prompt(self, name: str, version: int | None = None) -> int:
        args: tuple[Any, ...]
        if version is None:
            sql, args = "DELETE FROM gov_prompts WHERE name = ?", (name,)
        else:
            sql, args = "DELETE FROM gov_prompts WHERE name = ? AND version = ?", (name, version)
        return await self._db.run(lambda c: c.execute(sql, args).rowcount)

    async def aclose(self) -> None:
        await self._db.close()
