"""`PostgresChunkStore`: a knowledge base shared by every replica on PostgreSQL.

Same tables as the SQLite store, in the configured schema: `rag_collections` (with the
change sequence `seq` and `seq_floor`), `rag_documents`, `rag_chunks` (vectors as float16
`bytea`) and `rag_removed` (tombstones). A write takes the next sequence number with
`UPDATE … SET seq = seq + 1 RETURNING seq`, whose row lock it holds to commit, so writers to
one collection commit in sequence order and a reader never sees number 7 before 6: an index
that caught up to 6 misses nothing. `changes` reads in one REPEATABLE READ snapshot.

Each replica searches its own in-process index kept in step through `changes`. This server
build ships no `vector` extension (pgvector), so SQL-side vector search is not implemented;
`has_pgvector` reports whether the server could offer it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
from gatewise.storage.postgres import PgDatabase, _PgStore

if TYPE_CHECKING:
    from gatewise.storage.chunks import Vectors

_COLLECTION = ("id, name, owner, embedder, dimension, created, shared_with, chunker, "
               "description, metadata")
_DOCUMENT = "collection, id, digest, chunks, tokens, updated, metadata"
_CHUNK = "id, document_id, ordinal, text, tokens, metadata"


def _collection(row: Sequence[Any]) -> CollectionRecord:
    import json

    return CollectionRecord(row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6]),
                            row[7], row[8], json.loads(row[9]))


def _document(row: Sequence[Any]) -> DocumentRecord:
    import json

    return DocumentRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


def _chunk(row: Sequence[Any]) -> Chunk:
    import json

    return Chunk(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))


class PostgresChunkStore(_PgStore):
    _name = "rag"
    _ddl = """
CREATE TABLE IF NOT EXISTS {s}.rag_collections (id text PRIMARY KEY, owner text NOT NULL,
  name text NOT NULL, embedder text NOT NULL, dimension int NOT NULL, created float8 NOT NULL,
  shared_with text[] NOT NULL, chunker text NOT NULL, description text NOT NULL,
  metadata text NOT NULL, seq bigint NOT NULL, seq_floor bigint NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS rag_collections_name ON {s}.rag_collections (owner, name);
CREATE TABLE IF NOT EXISTS {s}.rag_documents (collection text NOT NULL, id text NOT NULL,
  digest text NOT NULL, chunks int NOT NULL, tokens int NOT NULL, updated float8 NOT NULL,
  metadata text NOT NULL, PRIMARY KEY (collection, id));
CREATE TABLE IF NOT EXISTS {s}.rag_chunks (collection text NOT NULL, id text NOT NULL,
  document_id text NOT NULL, ordinal int NOT NULL, text text NOT NULL, tokens int NOT NULL,
  metadata text NOT NULL, vector bytea NOT NULL, seq bigint NOT NULL,
  PRIMARY KEY (collection, id));
CREATE INDEX IF NOT EXISTS rag_chunks_seq ON {s}.rag_chunks (collection, seq);
CREATE INDEX IF NOT EXISTS rag_chunks_document ON {s}.rag_chunks (collection, document_id);
CREATE TABLE IF NOT EXISTS {s}.rag_removed (collection text NOT NULL, id text NOT NULL,
  seq bigint NOT NULL, ts float8 NOT NULL);
CREATE INDEX IF NOT EXISTS rag_removed_seq ON {s}.rag_removed (collection, seq);
"""

    def __init__(self, db: PgDatabase | str, *, schema: str = "gatewise",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(db, schema=schema)
        self._clock = clock

    async def has_pgvector(self) -> bool:
        """Whether the server could load pgvector (`pg_available_extensions`)."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            return await cur.fetchone() is not None

    async def put_collection(self, collection: CollectionRecord) -> None:
        from psycopg.errors import UniqueViolation

        check_collection(collection)
        start = first_seq(self._clock())
        try:
            await self._put_collection(collection, start)
        except UniqueViolation:  # another replica took the name between our check and insert
            raise name_taken(collection.name) from None

    async def _put_collection(self, collection: CollectionRecord, start: int) -> None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                f"SELECT id FROM {self._s}.rag_collections WHERE owner = %s AND name = %s",
                (collection.owner, collection.name))
            row = await cur.fetchone()
            if row is not None and row[0] != collection.id:
                raise name_taken(collection.name)
            await conn.execute(
                f"INSERT INTO {self._s}.rag_collections (id, owner, name, embedder, dimension, "
                "created, shared_with, chunker, description, metadata, seq, seq_floor) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET "
                "name = excluded.name, shared_with = excluded.shared_with, "
                "chunker = excluded.chunker, description = excluded.description, "
                "metadata = excluded.metadata",
                (collection.id, collection.owner, collection.name, collection.embedder,
                 collection.dimension, collection.created, list(collection.shared_with),
                 collection.chunker, strip_nul(collection.description),
                 dump_json(collection.metadata), start, start))

    async def _one(self, sql: str, args: Sequence[Any]) -> Any:
        async with self._conn() as conn:
            return await (await conn.execute(sql, args)).fetchone()

    async def get_collection(self, collection_id: str) -> CollectionRecord | None:
        row = await self._one(f"SELECT {_COLLECTION} FROM {self._s}.rag_collections "
                              "WHERE id = %s", (collection_id,))
        return _collection(row) if row is not None else None

    async def find_collection(self, owner: str, name: str) -> CollectionRecord | None:
        row = await self._one(f"SELECT {_COLLECTION} FROM {self._s}.rag_collections "
                              "WHERE owner = %s AND name = %s", (owner, name))
        return _collection(row) if row is not None else None

    async def list_collections(self, team: str | None = None) -> list[CollectionRecord]:
        where, args = ("", ()) if team is None else (
            " WHERE owner = %s OR %s = ANY(shared_with) OR '*' = ANY(shared_with)", (team, team))
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_COLLECTION} FROM {self._s}.rag_collections"
                                     f"{where} ORDER BY owner, name", args)
            return [_collection(r) for r in await cur.fetchall()]

    async def delete_collection(self, collection_id: str) -> int:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(f"DELETE FROM {self._s}.rag_chunks WHERE collection = %s",
                                     (collection_id,))
            n = cur.rowcount
            for table in ("rag_removed", "rag_documents"):
                await conn.execute(f"DELETE FROM {self._s}.{table} WHERE collection = %s",
                                   (collection_id,))
            await conn.execute(f"DELETE FROM {self._s}.rag_collections WHERE id = %s",
                               (collection_id,))
        return max(int(n), 0)

    async def get_document(self, collection_id: str, document_id: str) -> DocumentRecord | None:
        row = await self._one(f"SELECT {_DOCUMENT} FROM {self._s}.rag_documents WHERE "
                              "collection = %s AND id = %s", (collection_id, document_id))
        return _document(row) if row is not None else None

    async def list_documents(self, collection_id: str, *, after: str = "",
                             limit: int = 100) -> list[DocumentRecord]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_DOCUMENT} FROM {self._s}.rag_documents WHERE collection = %s AND "
                "id COLLATE \"C\" > %s ORDER BY id COLLATE \"C\" LIMIT %s",
                (collection_id, after, max(limit, 0)))
            return [_document(r) for r in await cur.fetchall()]

    async def _bump(self, conn: Any, collection_id: str) -> int:
        cur = await conn.execute(f"UPDATE {self._s}.rag_collections SET seq = seq + 1 "
                                 "WHERE id = %s RETURNING seq", (collection_id,))
        row = await cur.fetchone()
        if row is None:
            raise CollectionNotFoundError(f"no collection {collection_id!r}", param="collection")
        return int(row[0])

    async def _drop(self, conn: Any, collection_id: str, document_id: str, seq: int) -> int:
        now = self._clock()
        s = self._s
        await conn.execute(f"INSERT INTO {s}.rag_removed (collection, id, seq, ts) SELECT "
                           f"collection, id, %s, %s FROM {s}.rag_chunks WHERE collection = %s "
                           "AND document_id = %s", (seq, now, collection_id, document_id))
        cur = await conn.execute(f"DELETE FROM {s}.rag_chunks WHERE collection = %s AND "
                                 "document_id = %s", (collection_id, document_id))
        n = int(cur.rowcount)
        cur = await conn.execute(f"WITH gone AS (DELETE FROM {s}.rag_removed WHERE "
                                 "collection = %s AND ts < %s RETURNING seq) SELECT max(seq) "
                                 "FROM gone", (collection_id, now - TOMBSTONE_TTL_S))
        pruned = (await cur.fetchone())[0]
        if pruned is not None:
            await conn.execute(f"UPDATE {s}.rag_collections SET seq_floor = greatest(seq_floor, "
                               "%s) WHERE id = %s", (pruned, collection_id))
        return n

    async def replace_document(self, document: DocumentRecord, chunks: Sequence[Chunk],
                               vectors: Vectors) -> None:
        collection = await self.get_collection(check_id(document.collection, "collection"))
        if collection is None:
            raise CollectionNotFoundError(f"no collection {document.collection!r}",
                                          param="collection")
        cleaned = check_replace(document, chunks, vectors, collection.dimension)
        blobs = encode_vectors(vectors)
        cid, s = document.collection, self._s
        async with self._conn() as conn, conn.transaction():
            seq = await self._bump(conn, cid)
            await self._drop(conn, cid, document.id, seq)
            async with conn.cursor() as cur, cur.copy(
                    f"COPY {s}.rag_chunks (collection, id, document_id, ordinal, text, tokens, "
                    "metadata, vector, seq) FROM STDIN") as copy:
                for ch, blob in zip(cleaned, blobs, strict=True):
                    await copy.write_row((cid, ch.id, ch.document_id, ch.ordinal, ch.text,
                                          ch.tokens, dump_json(ch.metadata), blob, seq))
            await conn.execute(
                f"INSERT INTO {s}.rag_documents (collection, id, digest, chunks, tokens, "
                "updated, metadata) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (collection, id) "
                "DO UPDATE SET digest = excluded.digest, chunks = excluded.chunks, "
                "tokens = excluded.tokens, updated = excluded.updated, "
                "metadata = excluded.metadata",
                (cid, document.id, document.digest, document.chunks, document.tokens,
                 document.updated, dump_json(document.metadata)))

    async def delete_document(self, collection_id: str, document_id: str) -> int:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(f"DELETE FROM {self._s}.rag_documents WHERE "
                                     "collection = %s AND id = %s", (collection_id, document_id))
            if not cur.rowcount:
                return 0
            return await self._drop(conn, collection_id, document_id,
                                    await self._bump(conn, collection_id))

    async def get_chunks(self, collection_id: str, ids: Sequence[str]) -> list[Chunk]:
        if not ids:
            return []
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_CHUNK} FROM {self._s}.rag_chunks WHERE "
                                     "collection = %s AND id = ANY(%s)",
                                     (collection_id, list(ids)))
            found = {r[0]: _chunk(r) for r in await cur.fetchall()}
        return [found[i] for i in ids if i in found]

    async def changes(self, collection_id: str, since: int, *, limit: int = 10_000) -> ChunkChange:
        check_id(collection_id, "collection")
        s = self._s
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            head = await self._one_in(conn, f"SELECT seq, seq_floor, dimension FROM "
                                            f"{s}.rag_collections WHERE id = %s",
                                      (collection_id,))
            if head is None:
                return ChunkChange(0, reset=since > 0)
            seq, floor, dimension = head
            reset = since != 0 and not floor <= since <= seq
            if reset:
                since = 0
            cols = f"{_CHUNK}, vector, seq"
            cur = await conn.execute(
                f"SELECT {cols} FROM {s}.rag_chunks WHERE collection = %s AND seq > %s "
                "ORDER BY seq, id LIMIT %s", (collection_id, since, limit + 1))
            rows = await cur.fetchall()
            keep, upto = page_cut([r[7] for r in rows], limit)
            if upto is None:
                upto = rows[0][7]
                cur = await conn.execute(
                    f"SELECT {cols} FROM {s}.rag_chunks WHERE collection = %s AND seq = %s "
                    "ORDER BY id", (collection_id, upto))
                rows = await cur.fetchall()
            else:
                rows = rows[:keep]
                upto = seq if upto == -1 else upto
            cur = await conn.execute(
                f"SELECT id FROM {s}.rag_removed WHERE collection = %s AND seq > %s AND "
                "seq <= %s ORDER BY seq", (collection_id, since, upto))
            removed = [r[0] for r in await cur.fetchall()]
        return ChunkChange(int(upto), [_chunk(r) for r in rows],
                           decode_vectors([r[6] for r in rows], dimension), removed, reset=reset)

    @staticmethod
    async def _one_in(conn: Any, sql: str, args: Sequence[Any]) -> Any:
        return await (await conn.execute(sql, args)).fetchone()
