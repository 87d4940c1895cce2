"""The shapes every part of retrieval shares: what a loader reads (`LoadedDocument` of
`Section`s), what a chunker cuts (`Chunk`), what the store keeps per document
(`DocumentRecord`) and per collection (`CollectionRecord`), and what search returns (`Hit`).
The records a store keeps live in `gatewise.storage.chunks` (the storage layer sits below
this one) and are re-exported here.

They are plain frozen dataclasses so that loaders, chunkers, stores, the retriever, the
answer builder, the HTTP routes and the CLI can be written and tested apart: none of them
imports another's module, only this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gatewise.pipeline.core import Identity
from gatewise.storage.chunks import Chunk, CollectionRecord, DocumentRecord, Filters

__all__ = ["Chunk", "Chunker", "CollectionRecord", "DocumentRecord", "Filters", "Hit",
           "LoadedDocument", "Resolver", "Searcher", "Section", "SectionKind", "chunk_id", "section_label"]

# What a section holds: prose is split by sentences and paragraphs, code by syntax.
SectionKind = Literal["prose", "code", "record"]


@dataclass(frozen=True, slots=True)
class Section:
    """One located piece of a document as its loader read it: a Markdown section under its
    headings, a PDF page, an HTML section, a source file's lines, one JSONL record.
    `path` is the heading trail ("Install", "Linux"); lines are 1-based and inclusive."""

    text: str
    kind: SectionKind = "prose"
    path: tuple[str, ...] = ()
    page: int | None = None
    start_line: int | None = None
    end_line: int | None = None
    # Offset of `text` in the document's full text, so a chunk's span is document-relative.
    char_start: int = 0
    # Fields of this section alone (a JSONL record's scalar fields), merged into its chunks'.
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A document after loading, before chunking. `id` is stable (caller-supplied, else the
    source path): ingesting the same id again replaces the document, never duplicates it.
    `metadata` carries source, title, language, format and any user fields."""

    id: str
    sections: tuple[Section, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result. `score` is what ranked it (the fused score, or the re-ranker's);
    `scores` keeps each stage's own (`bm25`, `vector`, `rrf`, `rerank`, `mmr`) so a caller can
    see why it came back."""

    chunk: Chunk
    score: float
    rank: int
    scores: Mapping[str, float] = field(default_factory=dict)


class Searcher(Protocol):
    """What the answer builder needs from retrieval (`gatewise.rag.search.Retriever`)."""

    async def search(self, collection: CollectionRecord, query: str, *, k: int = 8,
                     filters: Filters | None = None, mmr: float | None = None,
                     rerank: bool = False) -> list[Hit]: ...


class Resolver(Protocol):
    """Turns a collection name a caller gave into the record it may read
    (`gatewise.rag.service.Knowledge`): its team's own collection of that name, else one
    shared with its team, else `CollectionNotFoundError` (404). Admins (`identity.team`
    None) see every collection; an `owner/name` form picks another team's shared one."""

    async def resolve(self, identity: Identity, name: str) -> CollectionRecord: ...


class Chunker(Protocol):
    """A chunking strategy. `count` is the offline token counter the budget is measured in."""

    name: str

    def chunk(self, document: LoadedDocument) -> list[Chunk]: ...


def chunk_id(document_id: str, ordinal: int) -> str:
    return f"{document_id}#{ordinal}"


def section_label(path: Sequence[str]) -> str:
    return " > ".join(p for p in path if p)
