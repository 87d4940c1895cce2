"""`PostgresPrompts`: prompt template versions shared by every replica.

The next version number comes from a per-name counter row (`gov_prompt_heads`), upserted and
returned in the same transaction as the insert: two replicas publishing one name at once queue
on that row, so no number is assigned twice and a deleted version's number is never reused.
"""

from __future__ import annotations

import json
from typing import Any

from gatewise.storage.postgres import PgDatabase, _PgStore
from gatewise.storage.prompts import PromptRecord

_COLS = "name, version, spec, created, actor"


def _record(row: Any) -> PromptRecord:
    return PromptRecord(row[0], int(row[1]), json.loads(row[2]), float(row[3]), row[4])


class PostgresPrompts(_PgStore):
    _name = "prompts"
    _ddl = """
CREATE TABLE IF NOT EXISTS {s}.gov_prompts (name text NOT NULL, version int8 NOT NULL,
  created float8 NOT NULL, actor text NOT NULL, spec text NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS {s}.gov_prompt_heads (name text PRIMARY KEY, version int8 NOT NULL);
"""

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise") -> None:
        super().__init__(db, schema=schema)

    async def add_prompt(self, name: str, spec: dict[str, Any], *, created: float,
                         actor: str) -> PromptRecord:
        doc = json.dumps(spec, separators=(",", ":"))
        async with self._conn() as conn, conn.transaction():
            row = await (await conn.execute(
                f"INSERT INTO {self._s}.gov_prompt_heads VALUES (%s, 1) ON CONFLICT (name) "
                f"DO UPDATE SET version = {self._s}.gov_prompt_heads.version + 1 "
                "RETURNING version", (name,))).fetchone()
            assert row is not None  # RETURNING always gives the row
            version = int(row[0])
            await conn.execute(f"INSERT INTO {self._s}.gov_prompts VALUES (%s, %s, %s, %s, %s)",
                               (name, version, created, actor, doc))
        return PromptRecord(name, version, json.loads(doc), created, actor)

    async def get_prompt(self, name: str, version: int | None = None) -> PromptRecord | None:
        if version is None:
            sql = (f"SELECT {_COLS} FROM {self._s}.gov_prompts WHERE name = %s "
                   "ORDER BY version DESC LIMIT 1")
            args: tuple[Any, ...] = (name,)
        else:
            sql = f"SELECT {_COLS} FROM {self._s}.gov_prompts WHERE name = %s AND version = %s"
            args = (name, version)
        async with self._conn() as conn:
            row = await (await conn.execute(sql, args)).fetchone()
        return None if row is None else _record(row)

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT {_COLS} FROM {self._s}.gov_prompts WHERE name = %s ORDER BY version",
                (name,))).fetchall()
        return [_record(r) for r in rows]

    async def list_prompts(self) -> list[PromptRecord]:
        async with self._conn() as conn:
            rows = await (await conn.execute(
                f"SELECT DISTINCT ON (name) {_COLS} FROM {self._s}.gov_prompts "
                "ORDER BY name, version DESC")).fetchall()
        return [_record(r) for r in rows]

    async def delete_prompt(self, name: str, version: int | None = None) -> int:
        args: tuple[Any, ...]
        if version is None:
            sql, args = f"DELETE FROM {self._s}.gov_prompts WHERE name = %s", (name,)
        else:
            sql = f"DELETE FROM {self._s}.gov_prompts WHERE name = %s AND version = %s"
            args = (name, version)
        async with self._conn() as conn:
            return int((await conn.execute(sql, args)).rowcount)
