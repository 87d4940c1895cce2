"""The REPL's persisted history: every turn (input, answer, its timeline) in SQLite under the
state directory (`storage.state_dir`, `$GATEWISE_STATE_DIR`, else ~/.local/state/gatewise), so
`/conversation <id>` resumes a conversation and `/search` finds old turns.

A local file of one user's terminal sessions, not shared state: it sits beside the gateway's
own SQLite stores but behind none of their protocols (nothing else reads it). Every query runs
in a worker thread, so a slow disk never stalls the screen.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .timeline import Block

_SCHEMA = """
CREATE TABLE IF NOT EXISTS repl_turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    ts REAL NOT NULL,
    input TEXT NOT NULL,
    answer TEXT NOT NULL,
    error TEXT,
    cost_usd REAL,
    blocks TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS repl_turns_conversation ON repl_turns (conversation, id);
"""


@dataclass(slots=True)
class TurnRow:
    id: int
    conversation: str
    ts: float
    input: str
    answer: str
    error: str | None
    cost_usd: float | None
    blocks: list[Block]


class History:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            db = self._conn()
            rows = db.execute(sql, args).fetchall()
            db.commit()
            return rows

    async def add(self, conversation: str, input_: str, answer: str, error: str | None,
                  cost_usd: float | None, blocks: list[Block]) -> None:
        doc = json.dumps([b.to_json() for b in blocks], ensure_ascii=False)
        await asyncio.to_thread(
            self._run, "INSERT INTO repl_turns (conversation, ts, input, answer, error, cost_usd,"
            " blocks) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conversation, time.time(), input_, answer, error, cost_usd, doc))

    async def turns(self, conversation: str) -> list[TurnRow]:
        rows = await asyncio.to_thread(
            self._run, "SELECT id, conversation, ts, input, answer, error, cost_usd, blocks "
            "FROM repl_turns WHERE conversation = ? ORDER BY id", (conversation,))
        return [_row(r) for r in rows]

    async def search(self, text: str, limit: int = 20) -> list[TurnRow]:
        """Turns whose input or answer contains `text` (case-insensitive), newest first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await asyncio.to_thread(
            self._run, "SELECT id, conversation, ts, input, answer, error, cost_usd, blocks "
            "FROM repl_turns WHERE input LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\' "
            "ORDER BY id DESC LIMIT ?", (pattern, pattern, limit))
        return [_row(r) for r in rows]

    async def conversations(self, limit: int = 20) -> list[tuple[str, int, float]]:
        """(id, turns, last activity), most recent first."""
        rows = await asyncio.to_thread(
            self._run, "SELECT conversation, COUNT(*), MAX(ts) FROM repl_turns "
            "GROUP BY conversation ORDER BY MAX(ts) DESC LIMIT ?", (limit,))
        return [(str(c), int(n), float(ts)) for c, n, ts in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _row(r: tuple[Any, ...]) -> TurnRow:
    blocks = [Block.from_json(b) for b in json.loads(r[7])]
    return TurnRow(int(r[0]), str(r[1]), float(r[2]), str(r[3]), str(r[4]), r[5], r[6], blocks)
