"""Ingestion: loaded documents → chunks → vectors → the collection's store, idempotent and
resumable.

For each document the ingestor computes a `digest`: sha256 over its text, its sections'
locations, its metadata, the chunker's settings and the embedder's name. When the store
already holds the document with that digest, it is `unchanged` and skipped without chunking
or embedding; that is what makes ingestion idempotent and lets a run that crashed midway be
started again and resume where it stopped (every document stored before the crash is
skipped, the one it was writing was either stored whole or not at all, since
`ChunkStore.replace_document` is one transaction). Otherwise the document is chunked (on a
worker thread: chunking is CPU work and the semantic chunker embeds), its chunks embedded in
batches of `batch` texts shared across documents (a model is faster on full batches than on
many small ones), and stored, replacing any older version (`replaced`) or not (`added`).

Chunking the next documents overlaps with embedding the previous batch: one batch is
embedded while the next is being cut, which keeps two cores busy.

A document that fails (its chunker raises, it has no text, the store refuses it, the model
fails on it) is reported as `failed` with the reason and the others go on; when a batch
shared by several documents fails to embed, each is retried alone so that one bad document
does not fail its neighbours. What refuses the whole run: a collection whose vectors came
from another embedder, or vectors whose dimension is not the collection's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gatewise.errors import ConflictError, GatewayError
from gatewise.rag.loaders import LoadFailure
from gatewise.rag.types import Chunk, Chunker, CollectionRecord, DocumentRecord, LoadedDocument

if TYPE_CHECKING:
    from gatewise.embedding.base import AsyncEmbedder, Vectors
    from gatewise.storage.chunks import ChunkStore

__all__ = ["DocumentResult", "IngestProgress", "IngestReport", "Ingestor", "document_digest"]

Status = Literal["added", "replaced", "unchanged", "failed"]


@dataclass(frozen=True, slots=True)
class DocumentResult:
    id: str
    status: Status
    chunks: int = 0
    tokens: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Reported after each document: how far the run is (`total` None when the documents
    come from an iterator of unknown length)."""

    done: int
    total: int | None
    chunks: int
    tokens: int
    last: DocumentResult
    seconds: float


@dataclass(slots=True)
class IngestReport:
    """What a run did, document by document; `chunks` and `tokens` count what was stored."""

    documents: list[DocumentResult] = field(default_factory=list)
    seconds: float = 0.0

    def _ids(self, status: Status) -> list[str]:
        return [d.id for d in self.documents if d.status == status]

    @property
    def added(self) -> list[str]:
        return self._ids("added")

    @property
    def replaced(self) -> list[str]:
        return self._ids("replaced")

    @property
    def unchanged(self) -> list[str]:
        return self._ids("unchanged")

    @property
    def failed(self) -> list[DocumentResult]:
        return [d for d in self.documents if d.status == "failed"]

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.documents if d.status in ("added", "replaced"))

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.documents if d.status in ("added", "replaced"))

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "replaced": self.replaced, "unchanged": self.unchanged,
                "failed": [{"id": d.id, "reason": d.reason} for d in self.failed],
                "chunks": self.chunks, "tokens": self.tokens, "seconds": round(self.seconds, 3)}


def document_digest(document: LoadedDocument, *, chunker: str, embedder: str) -> str:
    """sha256 of everything that decides a document's stored chunks and vectors."""
    h = hashlib.sha256()
    for section in document.sections:
        h.update(json.dumps([section.kind, section.path, section.page, section.start_line,
                             section.end_line, section.metadata], sort_keys=True,
                            default=str).encode())
        h.update(section.text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    h.update(json.dumps(document.metadata, sort_keys=True, default=str).encode())
    h.update(f"\x00{chunker}\x00{embedder}".encode())
    return h.hexdigest()


@dataclass(slots=True)
class _Pending:
    document: LoadedDocument
    digest: str
    chunks: list[Chunk]
    replacing: bool


def _reason(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:500]


class Ingestor:
    def __init__(self, store: ChunkStore, embedder: AsyncEmbedder, chunker: Chunker, *,
                 batch: int = 64) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.batch = max(1, batch)

    @property
    def settings(self) -> str:
        return str(getattr(self.chunker, "settings", self.chunker.name))

    def digest(self, document: LoadedDocument) -> str:
        return document_digest(document, chunker=self.settings, embedder=self.embedder.name)

    async def ingest(self, collection: CollectionRecord,
                     documents: Iterable[LoadedDocument | LoadFailure]
                     | AsyncIterable[LoadedDocument | LoadFailure], *,
                     progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        if collection.embedder != self.embedder.name:
            raise ConflictError(
                f"collection {collection.name!r} holds vectors of {collection.embedder!r}; "
                f"this ingestion embeds with {self.embedder.name!r}", param="collection")
        started = time.perf_counter()
        report = IngestReport()
        total = len(documents) if isinstance(documents, list | tuple) else None
        stored = [0, 0]  # chunks, tokens

        def record(result: DocumentResult) -> None:
            report.documents.append(result)
            if result.status in ("added", "replaced"):
                stored[0] += result.chunks
                stored[1] += result.tokens
            if progress is not None:
                progress(IngestProgress(len(report.documents), total, stored[0], stored[1],
                                        result, time.perf_counter() - started))

        pending: list[_Pending] = []
        inflight: asyncio.Task[None] | None = None
        try:
            async for item in _aiter(documents):
                if isinstance(item, LoadFailure):
                    record(DocumentResult(item.id, "failed", reason=item.reason))
                    continue
                prepared = await self._prepare(collection, item, record)
                if prepared is None:
                    continue
                pending.append(prepared)
                if sum(len(p.chunks) for p in pending) >= self.batch:
                    if inflight is not None:
                        await inflight
                    inflight = asyncio.create_task(self._store_all(collection, pending, record))
                    pending = []
            if inflight is not None:
                await inflight
                inflight = None
            if pending:
                await self._store_all(collection, pending, record)
        finally:
            if inflight is not None and not inflight.done():
                inflight.cancel()
        report.seconds = time.perf_counter() - started
        return report

    async def delete(self, collection: CollectionRecord, document_id: str) -> int:
        """Removes a document and every chunk of it; the number of chunks removed (0: the
        collection had no such document)."""
        return await self.store.delete_document(collection.id, document_id)

    async def _prepare(self, collection: CollectionRecord, document: LoadedDocument,
                       record: Callable[[DocumentResult], None]) -> _Pending | None:
        """The document chunked, or None when it is unchanged or failed (already recorded)."""
        try:
            digest = self.digest(document)
            existing = await self.store.get_document(collection.id, document.id)
            if existing is not None and existing.digest == digest:
                record(DocumentResult(document.id, "unchanged", existing.chunks, existing.tokens))
                return None
            chunks = await asyncio.to_thread(self.chunker.chunk, document)
        except Exception as exc:
            record(DocumentResult(document.id, "failed", reason=_reason(exc)))
            return None
        if not chunks:
            record(DocumentResult(document.id, "failed", reason="the document has no text to index"))
            return None
        return _Pending(document, digest, chunks, existing is not None)

    async def _embed(self, collection: CollectionRecord, texts: list[str]) -> Vectors:
        import numpy as np

        rows = [await self.embedder.embed(texts[i:i + self.batch])
                for i in range(0, len(texts), self.batch)]
        vectors: Vectors = np.ascontiguousarray(np.concatenate(rows, axis=0), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the embedder returned {vectors.shape} for {len(texts)} texts")
        if vectors.shape[1] != collection.dimension:
            raise ConflictError(
                f"collection {collection.name!r} has {collection.dimension}-dimensional vectors; "
                f"{self.embedder.name!r} returned {vectors.shape[1]}", param="collection")
        return vectors

    async def _store_all(self, collection: CollectionRecord, batch: list[_Pending],
                         record: Callable[[DocumentResult], None]) -> None:
        texts = [c.text for p in batch for c in p.chunks]
        try:
            vectors = await self._embed(collection, texts)
        except ConflictError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                record(DocumentResult(batch[0].document.id, "failed", reason=_reason(exc)))
                return
            for one in batch:
                await self._store_all(collection, [one], record)
            return
        offset = 0
        for p in batch:
            rows = vectors[offset:offset + len(p.chunks)]
            offset += len(p.chunks)
            tokens = sum(c.tokens for c in p.chunks)
            doc = DocumentRecord(collection=collection.id, id=p.document.id, digest=p.digest,
                                 chunks=len(p.chunks), tokens=tokens, updated=time.time(),
                                 metadata=dict(p.document.metadata))
            try:
                await self.store.replace_document(doc, p.chunks, rows)
            except Exception as exc:
                record(DocumentResult(p.document.id, "failed", reason=_reason(exc)))
                continue
            record(DocumentResult(p.document.id, "replaced" if p.replacing else "added",
                                  len(p.chunks), tokens))


async def _aiter(items: Iterable[LoadedDocument | LoadFailure]
                 | AsyncIterable[LoadedDocument | LoadFailure]
                 ) -> AsyncIterator[LoadedDocument | LoadFailure]:
    """The items, asynchronously; a lazy iterator (`load_paths` reads and parses files) is
    advanced on a worker thread so the event loop never waits on a disk or a PDF."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    elif isinstance(items, list | tuple):
        for item in items:
            yield item
    else:
        iterator = iter(items)
        while True:
            step = await asyncio.to_thread(_step, iterator)
            if step is None:
                return
            yield step[0]


def _step(iterator: Iterator[LoadedDocument | LoadFailure]) -> tuple[LoadedDocument | LoadFailure] | None:
    for item in iterator:
        return (item,)
    return None
