"""The ingestor stores each document's chunks and vectors once: a second run skips what is
unchanged (which is what lets a crashed run resume), a changed document replaces its old
chunks, a bad document fails alone, and vectors never mix embedders."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from gatewise.errors import ConflictError, UnsupportedDocumentError
from gatewise.rag.chunkers import default_counter, make_chunker
from gatewise.rag.ingest import Ingestor, IngestProgress, document_digest
from gatewise.rag.loaders import LoadFailure, load_bytes, load_path, load_paths
from gatewise.rag.types import Chunk, CollectionRecord, LoadedDocument
from gatewise.storage.chunks_memory import MemoryChunkStore
from gatewise.storage.chunks_sqlite import SQLiteChunkStore

FIXTURES = Path(__file__).parent / "fixtures"
COUNT = default_counter()
DIM = 16


class HashEmbedder:
    """A deterministic `AsyncEmbedder`: each text's sha256 spread over `DIM` floats. It can be
    told to fail on texts containing a marker, and records its batch sizes."""

    def __init__(self, name: str = "hash-16", dimension: int = DIM, fail_on: str | None = None):
        self.name = name
        self.dimension = dimension
        self.fail_on = fail_on
        self.batches: list[int] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(len(texts))
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("model exploded")
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:self.dimension], dtype=np.uint8)
                for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimension) + 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    async def aclose(self) -> None:
        return None


def collection(embedder: str = "hash-16", dimension: int = DIM) -> CollectionRecord:
    return CollectionRecord(id="c1", name="docs", owner="red", embedder=embedder,
                            dimension=dimension, created=0.0)


async def make(store=None, embedder=None, tokens: int = 64, batch: int = 8):
    store = store or MemoryChunkStore()
    await store.put_collection(collection())
    ingestor = Ingestor(store, embedder or HashEmbedder(),
                        make_chunker("recursive", tokens=tokens, overlap=0, count=COUNT), batch=batch)
    return store, ingestor


def docs() -> list[LoadedDocument]:
    return [load_path(FIXTURES / name) for name in ("guide.md", "page.html", "manual.pdf",
                                                     "sample.py", "records.jsonl")]


async def test_ingest_stores_every_chunk_with_a_vector_and_a_digest():
    store, ingestor = await make()
    loaded = docs()
    report = await ingestor.ingest(collection(), loaded)
    assert sorted(report.added) == sorted(d.id for d in loaded)
    assert not report.failed and not report.replaced and not report.unchanged
    for doc in loaded:
        record = await store.get_document("c1", doc.id)
        assert record is not None
        assert record.digest == ingestor.digest(doc)
        assert record.metadata["format"] == doc.metadata["format"]
        ids = [f"{doc.id}#{i}" for i in range(record.chunks)]
        chunks = await store.get_chunks("c1", ids)
        assert [c.id for c in chunks] == ids
        assert sum(c.tokens for c in chunks) == record.tokens
    change = await store.changes("c1", 0)
    assert change.vectors is not None and change.vectors.shape == (report.chunks, DIM)
    assert report.tokens > 0 and report.seconds > 0


async def test_a_second_run_skips_unchanged_documents_without_embedding():
    embedder = HashEmbedder()
    _store, ingestor = await make(embedder=embedder)
    await ingestor.ingest(collection(), docs())
    calls = len(embedder.batches)
    again = await ingestor.ingest(collection(), docs())
    assert len(again.unchanged) == 5 and again.chunks == 0
    assert len(embedder.batches) == calls


async def test_a_changed_document_replaces_its_chunks():
    store, ingestor = await make(tokens=16)
    long = load_bytes(b"First version. " * 40, filename="n.txt")
    await ingestor.ingest(collection(), [long])
    old = await store.get_document("c1", "n.txt")
    short = load_bytes(b"Second version, much shorter.", filename="n.txt")
    report = await ingestor.ingest(collection(), [short])
    assert report.replaced == ["n.txt"]
    record = await store.get_document("c1", "n.txt")
    assert record is not None and old is not None and record.chunks == 1 < old.chunks
    change = await store.changes("c1", 0)
    assert [c.text for c in change.added] == ["Second version, much shorter."]


async def test_changing_metadata_or_chunker_settings_changes_the_digest():
    doc = load_bytes(b"same text", filename="a.txt")
    tagged = load_bytes(b"same text", filename="a.txt", metadata={"team": "blue"})
    base = document_digest(doc, chunker="recursive:64", embedder="m")
    assert base == document_digest(doc, chunker="recursive:64", embedder="m")
    assert base != document_digest(tagged, chunker="recursive:64", embedder="m")
    assert base != document_digest(doc, chunker="recursive:128", embedder="m")
    assert base != document_digest(doc, chunker="recursive:64", embedder="other")


async def test_a_crash_midway_resumes_where_it_stopped():
    class Crashing(MemoryChunkStore):
        writes = 0

        async def replace_document(self, document, chunks, vectors):
            if self.writes == 2:
                raise asyncio.CancelledError  # the process dies here
            self.writes += 1
            await super().replace_document(document, chunks, vectors)

    store = Crashing()
    _, ingestor = await make(store=store, batch=1)
    with pytest.raises(asyncio.CancelledError):
        await ingestor.ingest(collection(), docs())
    assert len(await store.list_documents("c1")) == 2
    store.writes = -100
    report = await ingestor.ingest(collection(), docs())
    assert len(report.unchanged) == 2 and len(report.added) == 3


async def test_one_bad_document_fails_alone():
    embedder = HashEmbedder(fail_on="POISON")
    store, ingestor = await make(embedder=embedder, batch=64)
    good = load_bytes(b"A fine document.", filename="good.txt")
    bad = load_bytes(b"This one has POISON in it.", filename="bad.txt")
    failure = LoadFailure("broken.pdf", "the PDF cannot be read", UnsupportedDocumentError("x"))
    report = await ingestor.ingest(collection(), [good, bad, failure])
    assert report.added == ["good.txt"]
    assert {f.id: f.reason for f in report.failed} == {
        "bad.txt": "RuntimeError: model exploded", "broken.pdf": "the PDF cannot be read"}
    assert await store.get_document("c1", "bad.txt") is None


async def test_a_chunker_that_raises_fails_only_its_document():
    class Picky:
        name = "picky"

        def chunk(self, document: LoadedDocument) -> list[Chunk]:
            if document.id == "bad.txt":
                raise ValueError("cannot cut this")
            return make_chunker("fixed", tokens=32, count=COUNT).chunk(document)

    store = MemoryChunkStore()
    await store.put_collection(collection())
    ingestor = Ingestor(store, HashEmbedder(), Picky())
    report = await ingestor.ingest(collection(), [load_bytes(b"bad one", filename="bad.txt"),
                                                  load_bytes(b"good one", filename="ok.txt")])
    assert report.added == ["ok.txt"] and report.failed[0].reason == "ValueError: cannot cut this"


async def test_vectors_of_another_embedder_or_dimension_are_refused():
    store, ingestor = await make()
    with pytest.raises(ConflictError, match="other-model"):
        await ingestor.ingest(collection(embedder="other-model"), docs())
    wrong = Ingestor(store, HashEmbedder(dimension=8), ingestor.chunker)
    with pytest.raises(ConflictError, match="dimension"):
        await wrong.ingest(collection(), docs())
    assert await store.list_documents("c1") == []


async def test_embedding_batches_are_shared_across_documents():
    embedder = HashEmbedder()
    _, ingestor = await make(embedder=embedder, batch=16)
    many = [load_bytes(f"Document number {i}. It is short.".encode(), filename=f"{i}.txt")
            for i in range(40)]
    report = await ingestor.ingest(collection(), many)
    assert len(report.added) == 40
    assert embedder.batches == [16, 16, 8]


async def test_progress_is_reported_per_document_and_async_sources_work():
    seen: list[IngestProgress] = []
    _, ingestor = await make()

    async def source() -> AsyncIterator[LoadedDocument]:
        for d in docs()[:3]:
            yield d

    report = await ingestor.ingest(collection(), source(), progress=seen.append)
    assert [p.done for p in seen] == [1, 2, 3]
    assert seen[-1].chunks == report.chunks and seen[-1].total is None


async def test_lazy_sources_like_load_paths_are_read_off_the_event_loop(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nAlpha.")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe")
    _, ingestor = await make()
    report = await ingestor.ingest(collection(), load_paths([tmp_path]))
    assert len(report.added) == 1 and report.failed[0].id.endswith("b.txt")


async def test_delete_removes_every_chunk():
    store, ingestor = await make()
    await ingestor.ingest(collection(), docs())
    doc_id = docs()[0].id
    record = await store.get_document("c1", doc_id)
    assert record is not None
    assert await ingestor.delete(collection(), doc_id) == record.chunks
    assert await store.get_document("c1", doc_id) is None
    assert await ingestor.delete(collection(), doc_id) == 0


async def test_ingest_on_sqlite_is_idempotent(tmp_path):
    store = SQLiteChunkStore(tmp_path / "rag.db")
    try:
        _, ingestor = await make(store=store)
        first = await ingestor.ingest(collection(), docs())
        second = await ingestor.ingest(collection(), docs())
        assert len(first.added) == 5 and len(second.unchanged) == 5
    finally:
        await store.aclose()


async def test_the_local_minilm_model_ingests_real_documents():
    embedding = pytest.importorskip("gatewise.embedding")
    try:
        embedding.check_installed()
    except embedding.EmbedderUnavailableError:
        pytest.skip("the local model is not installed")
    emb = embedding.local_embedder()
    try:
        store = MemoryChunkStore()
        coll = CollectionRecord(id="m", name="m", owner="", embedder=emb.name, dimension=384, created=0)
        await store.put_collection(coll)
        ingestor = Ingestor(store, emb, make_chunker("recursive", tokens=128, count=COUNT))
        report = await ingestor.ingest(coll, docs())
        assert len(report.added) == 5 and not report.failed
        change = await store.changes("m", 0)
        assert change.vectors is not None
        norms = np.linalg.norm(change.vectors, axis=1)
        assert np.allclose(norms, 1.0, atol=1e-3)
    finally:
        await emb.aclose()
