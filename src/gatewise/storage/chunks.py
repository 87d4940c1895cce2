"""`ChunkStore`: where a knowledge base's collections, documents, chunks and their vectors
persist. SQLite by default (one file under the state directory), PostgreSQL for many replicas.

The store is the source of truth; search runs on per-process indexes (vectors and BM25) that
`gatewise.rag` keeps in step with it through `changes` (a per-collection sequence), unless the
backend searches vectors itself (PostgreSQL with pgvector). Replacing a document is one
transaction: a reader sees the old chunks or the new ones, never a mix, and a crash midway
leaves the old ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # numpy is the `rag` extra's, imported by the backends on first use
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable span. `id` is `f"{document_id}#{ordinal}"`; `metadata` holds the
    document's metadata plus this chunk's location: `section` (the heading path joined with
    " > "), `page`, `start_line`, `end_line`, `char_start`, `char_end`, `language`."""

    id: str
    document_id: str
    ordinal: int
    text: str
    tokens: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """A collection belongs to one team (`owner`; `""` for a collection built from config or
    by an admin without a team) and is visible to it and to the teams in `shared_with`
    (`"*"`: every team). `embedder` names the model its vectors came from: a query is always
    embedded by the same one."""

    id: str
    name: str
    owner: str
    embedder: str
    dimension: int
    created: float
    shared_with: tuple[str, ...] = ()
    chunker: str = "recursive"
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """What the store knows of an ingested document: `digest` (sha256 of its loaded text and
    chunking settings) lets a resumed or repeated ingestion skip a document already stored
    as it is."""

    collection: str
    id: str
    digest: str
    chunks: int
    tokens: int
    updated: float
    metadata: Mapping[str, Any] = field(default_factory=dict)


# Metadata filters: field -> value (equality), or field -> {"$in": [...]}, {"$ne": v},
# {"$gte": v}, {"$lte": v}; fields are chunk metadata keys (document fields included).
Filters = Mapping[str, Any]




@dataclass(frozen=True, slots=True)
class ChunkChange:
    """What changed in a collection after sequence `since`: chunks added (with their
    vectors, rows in order) and chunk ids removed; `seq` is the sequence to ask from next."""

    seq: int
    added: Sequence[Chunk] = ()
    vectors: Vectors | None = None  # (len(added), dimension)
    removed: Sequence[str] = ()
    # True when `since` could not be caught up from (the collection was deleted and made
    # again, or the tombstones after `since` were pruned): the index drops everything it
    # holds, then applies `added`, which then starts from the beginning.
    reset: bool = False


class ChunkStore(Protocol):
    async def put_collection(self, collection: CollectionRecord) -> None:
        """Create or update (sharing, description); the id never changes."""
        ...

    async def get_collection(self, collection_id: str) -> CollectionRecord | None: ...

    async def find_collection(self, owner: str, name: str) -> CollectionRecord | None: ...

    async def list_collections(self, team: str | None = None) -> list[CollectionRecord]:
        """`team` None: every collection (admin); else the team's own and those shared with
        it (or with `*`)."""
        ...

    async def delete_collection(self, collection_id: str) -> int:
        """Removes the collection with every document and chunk; returns chunks removed."""
        ...

    async def get_document(self, collection_id: str, document_id: str) -> DocumentRecord | None: ...

    async def list_documents(self, collection_id: str, *, after: str = "",
                             limit: int = 100) -> list[DocumentRecord]:
        """Ordered by document id, starting after `after` (paging)."""
        ...

    async def replace_document(self, document: DocumentRecord, chunks: Sequence[Chunk],
                               vectors: Vectors) -> None:
        """One transaction: the document's old chunks go, these (one vector row each) come."""
        ...

    async def delete_document(self, collection_id: str, document_id: str) -> int:
        """Chunks removed (0: no such document)."""
        ...

    async def get_chunks(self, collection_id: str, ids: Sequence[str]) -> list[Chunk]:
        """The chunks of these ids that exist, in the order asked."""
        ...

    async def changes(self, collection_id: str, since: int, *, limit: int = 10_000) -> ChunkChange:
        """What a per-process index must apply to catch up from `since` (0: everything)."""
        ...

    async def aclose(self) -> None: ...
