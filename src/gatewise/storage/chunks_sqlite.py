"""`SQLiteChunkStore`: a knowledge base in one SQLite file (`rag.db` under the state
directory), the embedded default.

Tables: `rag_collections` (with the collection's change sequence `seq` and `seq_floor`, below
which an index must start again), `rag_documents`, `rag_chunks` (text, JSON metadata, a
float16 vector BLOB and the sequence number that added it) and `rag_removed` (tombstones:
chunk ids with the sequence that removed them). Replacing a document bumps the collection's
sequence, tombstones the old chunks and inserts the new ones in one `BEGIN IMMEDIATE`
transaction, so a reader (another process too: WAL) sees the old chunks or the new ones.
All queries run on the store's own worker thread (`storage.sqlite._Db`), never on the loop.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.errors import CollectionNotFoundError
from gatewise.storage.chunks import Chunk, ChunkChange, CollectionRecord, DocumentRecord
from gatewise.storage.chunks_codec import (
    TOMBSTONE_TTL_S,
    check_collection,
    check_id,
    check_replace,
    decode_vectors,
    dump_json,
    encode_vectors,
    first_seq,
    name_taken,
    page_cut,
    strip_nul,
)
from gatewise.storage.sqlite import _Db, transaction

if TYPE_CHECKING:
    from gatewise.storage.chunks import Vectors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rag_collections (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
  name TEXT NOT NULL, embedder TEXT NOT NULL, dimension INTEGER NOT NULL, created REAL NOT NULL,
  shared_with TEXT NOT NULL, chunker TEXT NOT NULL, description TEXT NOT NULL,
  metadata TEXT NOT NULL, seq INTEGER NOT NULL, seq_floor INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS rag_collections_name ON rag_collections (owner, name);
CREATE TABLE IF NOT EXISTS rag_documents (collection TEXT NOT NULL, id TEXT NOT NULL,
  digest TEXT NOT NULL, chunks INTEGER NOT NULL, tokens INTEGER NOT NULL, updated REAL NOT NULL,
  metadata TEXT NOT NULL, PRIMARY KEY (collection, id));
CREATE TABLE IF NOT EXISTS rag_chunks (collection TEXT NOT NULL, id TEXT NOT NULL,
  document_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
  tokens INTEGER NOT NULL, metadata TEXT NOT NULL, vector BLOB NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (collection, id));
CREATE INDEX IF NOT EXISTS rag_chunks_seq ON rag_chunks (collection, seq);
CREATE INDEX IF NOT EXISTS rag_chunks_document ON rag_chunks (collection, document_id);
CREATE TABLE IF NOT EXISTS rag_removed (collection TEXT NOT NULL, id TEXT NOT NULL,
  seq INTEGER NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rag_removed_seq ON rag_removed (collection, seq);
"""
_COLLECTION = ("id, name, owner, embedder, dimension, created, shared_with, chunker, "
               "description, metadata")
_DOCUMENT = "collection, id, digest, chunks, tokens, updated, metadata"
_CHUNK = "id, document_id, ordinal, text, tokens, metadata"


def _collection(row: Sequence[Any]) -> CollectionRecord:
    return CollectionRecord(row[0], row[1], row[2], row[3], row[4], row[5],
                            tuple(json.loads(row[6])), row[7], row[8], json.loads(row[9]))


def _document(row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))


class SQLiteChunkStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = _Db(path, _SCHEMA)
        self._clock = clock

    async def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def q(c: sqlite3.Connection) -> Any:
            with transaction(c):
                return fn(c)

        return await self._db.run(q)

    async def put_collection(self, collection: CollectionRecord) -> None:
        check_collection(collection)
        start = first_seq(self._clock())

        def q(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM rag_collections WHERE owner = ? AND name = ?",
                            (collection.owner, collection.name)).fetchone()
            if row is not None and row[0] != collection.id:
                raise name_taken(collection.name)
            c.execute(
                "INSERT INTO rag_collections (id, owner, name, embedder, dimension, created, "
                "shared_with, chunker, description, metadata, seq, seq_floor) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                "shared_with = excluded.shared_with, chunker = excluded.chunker, "
                "description = excluded.description, metadata = excluded.metadata",
                (collection.id, collection.owner, collection.name, collection.embedder,
                 collection.dimension, collection.created, json.dumps(list(collection.shared_with)),
                 collection.chunker, strip_nul(collection.description),
                 dump_json(collection.metadata), start, start))

        await self._tx(q)

    async def get_collection(self, collection_id: str) -> CollectionRecord | None:
        row = await self._db.run(lambda c: c.execute(
            f"SELECT {_COLLECTION} FROM rag_collections WHERE id = ?",
            (collection_id,)).fetchone())
        return _collection(row) if row is not None else None

    async def find_collection(self, owner: str, name: str) -> CollectionRecord | None:
        row = await self._db.run(lambda c: c.execute(
            f"SELECT {_COLLECTION} FROM rag_collections WHERE owner = ? AND name = ?",
            (owner, name)).fetchone())
        return _collection(row) if row is not None else None

    async def list_collections(self, team: str | None = None) -> list[CollectionRecord]:
        if team is None:
            sql, args = "", ()
        else:
            sql = (" WHERE owner = ? OR EXISTS (SELECT 1 FROM json_each(shared_with) "
                   "WHERE value IN (?, '*'))")
            args = (team, team)  # type: ignore[assignment]
        rows = await self._db.run(lambda c: c.execute(
            f"SELECT {_COLLECTION} FROM rag_collections{sql} ORDER BY owner, name",
            args).fetchall())
        return [_collection(r) for r in rows]

    async def delete_collection(self, collection_id: str) -> int:
        def q(c: sqlite3.Connection) -> int:
            n = c.execute("DELETE FROM rag_chunks WHERE collection = ?", (collection_id,)).rowcount
            for table in ("rag_removed", "rag_documents"):
                c.execute(f"DELETE FROM {table} WHERE collection = ?", (collection_id,))
            c.execute("DELETE FROM rag_collections WHERE id = ?", (collection_id,))
            return int(n)

        out: int = await self._tx(q)
        return out

    async def get_document(self, collection_id: str, document_id: str) -> DocumentRecord | None:
        row = await self._db.run(lambda c: c.execute(
            f"SELECT {_DOCUMENT} FROM rag_documents WHERE collection = ? AND id = ?",
            (collection_id, document_id)).fetchone())
        return _document(row) if row is not None else None

    async def list_documents(self, collection_id: str, *, after: str = "",
                             limit: int = 100) -> list[DocumentRecord]:
        rows = await self._db.run(lambda c: c.execute(
            f"SELECT {_DOCUMENT} FROM rag_documents WHERE collection = ? AND id > ? "
            "ORDER BY id LIMIT ?", (collection_id, after, max(limit, 0))).fetchall())
        return [_document(r) for r in rows]

    def _bump(self, c: sqlite3.Connection, collection_id: str) -> int:
        row = c.execute("UPDATE rag_collections SET seq = seq + 1 WHERE id = ? RETURNING seq",
                        (collection_id,)).fetchone()
        if row is None:
            raise CollectionNotFoundError(f"no collection {collection_id!r}", param="collection")
        return int(row[0])

    def _drop(self, c: sqlite3.Connection, collection_id: str, document_id: str,
              seq: int) -> int:
        now = self._clock()
        c.execute("INSERT INTO rag_removed (collection, id, seq, ts) SELECT collection, id, ?, ? "
                  "FROM rag_chunks WHERE collection = ? AND document_id = ?",
                  (seq, now, collection_id, document_id))
        n = c.execute("DELETE FROM rag_chunks WHERE collection = ? AND document_id = ?",
                      (collection_id, document_id)).rowcount
        # Tombstones older than the TTL go; an index asking from before them starts again.
        row = c.execute("DELETE FROM rag_removed WHERE collection = ? AND ts < ? RETURNING seq",
                        (collection_id, now - TOMBSTONE_TTL_S)).fetchall()
        if row:
            c.execute("UPDATE rag_collections SET seq_floor = max(seq_floor, ?) WHERE id = ?",
                      (max(r[0] for r in row), collection_id))
        return int(n)

    async def replace_document(self, document: DocumentRecord, chunks: Sequence[Chunk],
                               vectors: Vectors) -> None:
        collection = await self.get_collection(check_id(document.collection, "collection"))
        if collection is None:
            raise CollectionNotFoundError(f"no collection {document.collection!r}",
                                          param="collection")
        cleaned = check_replace(document, chunks, vectors, collection.dimension)
        blobs = encode_vectors(vectors)
        cid = document.collection

        def q(c: sqlite3.Connection) -> None:
            seq = self._bump(c, cid)
            self._drop(c, cid, document.id, seq)
            c.executemany(
                "INSERT INTO rag_chunks (collection, id, document_id, ordinal, text, tokens, "
                "metadata, vector, seq) VALUES (?,?,?,?,?,?,?,?,?)",
                [(cid, ch.id, ch.document_id, ch.ordinal, ch.text, ch.tokens,
                  dump_json(ch.metadata), blob, seq) for ch, blob in zip(cleaned, blobs,
                                                                         strict=True)])
            c.execute(
                "INSERT OR REPLACE INTO rag_documents (collection, id, digest, chunks, tokens, "
                "updated, metadata) VALUES (?,?,?,?,?,?,?)",
                (cid, document.id, document.digest, document.chunks, document.tokens,
                 document.updated, dump_json(document.metadata)))

        await self._tx(q)

    async def delete_document(self, collection_id: str, document_id: str) -> int:
        def q(c: sqlite3.Connection) -> int:
            if c.execute("SELECT 1 FROM rag_documents WHERE collection = ? AND id = ?",
                         (collection_id, document_id)).fetchone() is None:
                return 0
            n = self._drop(c, collection_id, document_id, self._bump(c, collection_id))
            c.execute("DELETE FROM rag_documents WHERE collection = ? AND id = ?",
                      (collection_id, document_id))
            return n

        out: int = await self._tx(q)
        return out

    async def get_chunks(self, collection_id: str, ids: Sequence[str]) -> list[Chunk]:
        wanted = list(dict.fromkeys(ids))

        def q(c: sqlite3.Connection) -> dict[str, Chunk]:
            found: dict[str, Chunk] = {}
            for i in range(0, len(wanted), 500):
                part = wanted[i:i + 500]
                rows = c.execute(f"SELECT {_CHUNK} FROM rag_chunks WHERE collection = ? AND id "
                                 f"IN ({','.join('?' * len(part))})", (collection_id, *part))
                found.update((r[0], _chunk(r)) for r in rows)
            return found

        found = await self._db.run(q)
        return [found[i] for i in ids if i in found]

    async def changes(self, collection_id: str, since: int, *, limit: int = 10_000) -> ChunkChange:
        check_id(collection_id, "collection")

        def q(c: sqlite3.Connection) -> ChunkChange:
            c.execute("BEGIN")  # one snapshot for the sequence, the chunks and the tombstones
            try:
                return self._changes(c, collection_id, since, limit)
            finally:
                c.execute("COMMIT")

        out: ChunkChange = await self._db.run(q)
        return out

    def _changes(self, c: sqlite3.Connection, collection_id: str, since: int,
                 limit: int) -> ChunkChange:
        head = c.execute("SELECT seq, seq_floor, dimension FROM rag_collections WHERE id = ?",
                         (collection_id,)).fetchone()
        if head is None:
            return ChunkChange(0, reset=since > 0)
        seq, floor, dimension = head
        reset = since != 0 and not floor <= since <= seq
        if reset:
            since = 0
        cols = f"{_CHUNK}, vector, seq"
        rows = c.execute(f"SELECT {cols} FROM rag_chunks WHERE collection = ? AND seq > ? "
                         "ORDER BY seq, id LIMIT ?", (collection_id, since, limit + 1)).fetchall()
        keep, upto = page_cut([r[7] for r in rows], limit)
        if upto is None:
            upto = rows[0][7]
            rows = c.execute(f"SELECT {cols} FROM rag_chunks WHERE collection = ? AND seq = ? "
                             "ORDER BY id", (collection_id, upto)).fetchall()
        else:
            rows = rows[:keep]
            upto = seq if upto == -1 else upto
        removed = [r[0] for r in c.execute(
            "SELECT id FROM rag_removed WHERE collection = ? AND seq > ? AND seq <= ? "
            "ORDER BY seq", (collection_id, since, upto))]
        return ChunkChange(upto, [_chunk(r) for r in rows],
                           decode_vectors([r[6] for r in rows], dimension), removed, reset=reset)

    async def aclose(self) -> None:
        await self._db.close()
