"""What the three `ChunkStore` backends (memory, SQLite, PostgreSQL) share, so that they agree
on every edge: which ids are acceptable, what happens to a NUL character, how vectors are
laid out on disk, who sees a collection, and how a page of `changes` is cut.

- Ids (collection, document, chunk) must be non-empty and free of NUL: an id is a key, and
  quietly changing a key could merge two documents, so a bad one is refused (400).
- Text and metadata strings lose NUL characters: PostgreSQL cannot store them, a NUL carries
  no meaning in prose (it comes from a PDF's or a binary's extraction), and every backend
  drops them so that a chunk reads the same whichever one stored it.
- Vectors are stored as little-endian float16 rows: half the bytes of float32, and a cosine
  between unit vectors moves by less than 1e-3, far below what changes a ranking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gatewise.errors import ConflictError, InvalidRequestError
from gatewise.storage.chunks import Chunk, CollectionRecord, DocumentRecord

if TYPE_CHECKING:
    from gatewise.storage.chunks import Vectors

# Tombstones older than this are pruned on the next write; an index that asks from before
# them is told to start again (`ChunkChange.reset`).
TOMBSTONE_TTL_S = 7 * 24 * 3600.0


def check_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidRequestError(f"'{field}' must be a non-empty string without NUL characters",
                                  param=field)
    return value


def strip_nul(value: Any) -> Any:
    """`value` with NUL characters removed from every string inside it (dicts, lists)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, Mapping):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(strip_nul(v) for v in value)
    return value


def dump_json(value: Mapping[str, Any]) -> str:
    """JSON text for a metadata mapping (ASCII, so any text column takes it)."""
    return json.dumps(strip_nul(dict(value)), separators=(",", ":"), default=str)


def clean_chunk(chunk: Chunk) -> Chunk:
    check_id(chunk.id, "chunk.id")
    return replace(chunk, text=strip_nul(chunk.text), metadata=strip_nul(dict(chunk.metadata)))


def check_collection(collection: CollectionRecord) -> None:
    check_id(collection.id, "collection.id")
    check_id(collection.name, "collection.name")
    if "\x00" in collection.owner:
        raise InvalidRequestError("'collection.owner' must not contain NUL", param="owner")
    if collection.dimension <= 0:
        raise InvalidRequestError("'collection.dimension' must be positive", param="dimension")


def name_taken(name: str) -> ConflictError:
    return ConflictError(f"the team already has a collection named {name!r}", param="name")


def check_replace(document: DocumentRecord, chunks: Sequence[Chunk], vectors: Vectors,
                  dimension: int) -> list[Chunk]:
    """The chunks, cleaned, after checking they belong to `document`, are unique and come with
    one `dimension`-wide vector row each."""
    check_id(document.collection, "collection")
    check_id(document.id, "document.id")
    shape = getattr(vectors, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != len(chunks) or (
            chunks and shape[1] != dimension):
        raise InvalidRequestError(
            f"expected {len(chunks)} vectors of dimension {dimension}, got shape {shape}",
            param="vectors")
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        if chunk.document_id != document.id:
            raise InvalidRequestError(f"chunk {chunk.id!r} belongs to document "
                                      f"{chunk.document_id!r}, not {document.id!r}",
                                      param="chunks")
        if chunk.id in seen:
            raise InvalidRequestError(f"chunk id {chunk.id!r} appears twice", param="chunks")
        seen.add(chunk.id)
        out.append(clean_chunk(chunk))
    return out


def visible(collection: CollectionRecord, team: str | None) -> bool:
    return team is None or collection.owner == team or team in collection.shared_with \
        or "*" in collection.shared_with


def encode_vectors(vectors: Vectors) -> list[bytes]:
    import numpy as np

    rows = np.ascontiguousarray(np.asarray(vectors, dtype="<f2"))
    return [row.tobytes() for row in rows]


def decode_vectors(blobs: Sequence[bytes], dimension: int) -> Vectors:
    import numpy as np

    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    raw = np.frombuffer(b"".join(bytes(b) for b in blobs), dtype="<f2")
    out: Vectors = raw.reshape(len(blobs), dimension).astype(np.float32)
    return out


def first_seq(now: float) -> int:
    """Where a new collection's sequence starts: its creation time in microseconds. A
    collection deleted and made again under the same id so never reuses a number an index
    may hold: an index asking from before the start (`floor`) is told to reset."""
    return int(now * 1_000_000)


def page_cut(seqs: Sequence[int], limit: int) -> tuple[int, int | None]:
    """Where to cut a page of `changes` rows (sorted by sequence; up to `limit + 1` of them
    fetched): `(rows to keep, sequence the page ends at)`. A page never splits one sequence
    number (one document's replacement) across two pages, so an index that applied it is
    consistent; the one case it cannot be kept under `limit` (a single document with more
    chunks than that) returns `(len(seqs), None)`: the caller fetches that whole sequence.
    `(len(seqs), -1)` means everything after `since` fits (the page ends at the current
    sequence)."""
    if len(seqs) <= limit:
        return len(seqs), -1
    boundary = seqs[limit]
    if seqs[0] == boundary:
        return len(seqs), None
    keep = next(i for i, s in enumerate(seqs) if s == boundary)
    return keep, boundary - 1
