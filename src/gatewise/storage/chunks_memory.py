"""`MemoryChunkStore`: collections, documents and chunks in this process's memory (tests,
`rag.store: memory` for a throwaway knowledge base). It keeps the same change sequence as
the durable stores, so the per-process index is exercised the same way on it."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gatewise.errors import CollectionNotFoundError
from gatewise.storage.chunks import Chunk, ChunkChange, CollectionRecord, DocumentRecord
from gatewise.storage.chunks_codec import (
    check_collection,
    check_id,
    check_replace,
    first_seq,
    name_taken,
    page_cut,
    strip_nul,
    visible,
)

if TYPE_CHECKING:
    from gatewise.storage.chunks import Vectors


@dataclass
class _Collection:
    record: CollectionRecord
    seq: int = 0
    floor: int = 0
    documents: dict[str, DocumentRecord] = field(default_factory=dict)
    # chunk id -> (chunk, float32 vector row, sequence it was added at)
    chunks: dict[str, tuple[Chunk, Any, int]] = field(default_factory=dict)
    removed: list[tuple[int, str]] = field(default_factory=list)
    # (seq, chunk id) of every addition, in order: `changes` bisects it instead of sorting
    # every chunk (an entry whose chunk was replaced since is skipped).
    added: list[tuple[int, str]] = field(default_factory=list)


class MemoryChunkStore:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._collections: dict[str, _Collection] = {}

    def _get(self, collection_id: str) -> _Collection:
        found = self._collections.get(collection_id)
        if found is None:
            raise CollectionNotFoundError(f"no collection {collection_id!r}", param="collection")
        return found

    async def put_collection(self, collection: CollectionRecord) -> None:
        check_collection(collection)
        collection = replace(collection, description=strip_nul(collection.description),
                             metadata=strip_nul(dict(collection.metadata)))
        for other in self._collections.values():
            if other.record.id != collection.id and (other.record.owner, other.record.name) == (
                    collection.owner, collection.name):
                raise name_taken(collection.name)
        held = self._collections.get(collection.id)
        if held is None:
            start = first_seq(self._clock())
            self._collections[collection.id] = _Collection(collection, start, start)
        else:
            held.record = replace(held.record, name=collection.name,
                                  shared_with=tuple(collection.shared_with),
                                  chunker=collection.chunker, description=collection.description,
                                  metadata=dict(collection.metadata))

    async def get_collection(self, collection_id: str) -> CollectionRecord | None:
        held = self._collections.get(collection_id)
        return held.record if held is not None else None

    async def find_collection(self, owner: str, name: str) -> CollectionRecord | None:
        return next((c.record for c in self._collections.values()
                     if c.record.owner == owner and c.record.name == name), None)

    async def list_collections(self, team: str | None = None) -> list[CollectionRecord]:
        found = [c.record for c in self._collections.values() if visible(c.record, team)]
        return sorted(found, key=lambda r: (r.owner, r.name))

    async def delete_collection(self, collection_id: str) -> int:
        held = self._collections.pop(collection_id, None)
        return len(held.chunks) if held is not None else 0

    async def get_document(self, collection_id: str, document_id: str) -> DocumentRecord | None:
        held = self._collections.get(collection_id)
        return held.documents.get(document_id) if held is not None else None

    async def list_documents(self, collection_id: str, *, after: str = "",
                             limit: int = 100) -> list[DocumentRecord]:
        held = self._collections.get(collection_id)
        if held is None:
            return []
        ids = sorted(i for i in held.documents if i > after)[:max(limit, 0)]
        return [held.documents[i] for i in ids]

    def _drop(self, held: _Collection, document_id: str, seq: int) -> int:
        gone = [cid for cid, (c, _, _) in held.chunks.items() if c.document_id == document_id]
        for cid in gone:
            del held.chunks[cid]
            held.removed.append((seq, cid))
        return len(gone)

    async def replace_document(self, document: DocumentRecord, chunks: Sequence[Chunk],
                               vectors: Vectors) -> None:
        import numpy as np

        held = self._get(document.collection)
        cleaned = check_replace(document, chunks, vectors, held.record.dimension)
        rows = np.asarray(vectors, dtype=np.float32)
        held.seq += 1
        self._drop(held, document.id, held.seq)
        for i in sorted(range(len(cleaned)), key=lambda j: cleaned[j].id):
            chunk = cleaned[i]
            held.chunks[chunk.id] = (chunk, rows[i].copy(), held.seq)
            held.added.append((held.seq, chunk.id))
        held.documents[document.id] = replace(document, metadata=strip_nul(dict(document.metadata)))

    async def delete_document(self, collection_id: str, document_id: str) -> int:
        held = self._collections.get(collection_id)
        if held is None or document_id not in held.documents:
            return 0
        held.seq += 1
        del held.documents[document_id]
        return self._drop(held, document_id, held.seq)

    async def get_chunks(self, collection_id: str, ids: Sequence[str]) -> list[Chunk]:
        held = self._collections.get(collection_id)
        if held is None:
            return []
        return [held.chunks[i][0] for i in ids if i in held.chunks]

    async def changes(self, collection_id: str, since: int, *, limit: int = 10_000) -> ChunkChange:
        import numpy as np

        check_id(collection_id, "collection")
        held = self._collections.get(collection_id)
        if held is None:
            return ChunkChange(0, reset=since > 0)
        reset = since != 0 and not held.floor <= since <= held.seq
        if reset or since < held.floor:
            since = 0
        rows = []
        for seq, cid in held.added[bisect.bisect_right(held.added, (since, "\U0010ffff")):]:
            entry = held.chunks.get(cid)
            if entry is not None and entry[2] == seq:
                rows.append(entry)
                if len(rows) > limit and seq != rows[0][2]:
                    break
        keep, upto = page_cut([e[2] for e in rows[:limit + 1]], limit)
        if upto is None:
            rows = [e for e in rows if e[2] == rows[0][2]]
            upto = rows[0][2]
        else:
            rows = rows[:keep]
            upto = held.seq if upto == -1 else upto
        start = bisect.bisect_right(held.removed, (since, "\U0010ffff"))
        removed = [cid for s, cid in held.removed[start:] if s <= upto]
        dimension = held.record.dimension
        vectors = np.stack([e[1] for e in rows]) if rows else np.zeros((0, dimension), np.float32)
        return ChunkChange(upto, [e[0] for e in rows], vectors.astype(np.float32), removed,
                           reset=reset)

    async def aclose(self) -> None:
        return None
