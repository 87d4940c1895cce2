"""Two replicas, one database: each keeps its own in-process index, and a document one of
them ingests (or deletes) is found (or gone) on the other within its `refresh_s`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gatewise.rag.search import Retriever
from gatewise.storage.chunks import Chunk, CollectionRecord, DocumentRecord
from tests.storage.conftest import backend_details
from tests.storage.test_chunk_stores import make_store
from tests.unit.rag.words import DIM, WordEmbedder, embed_now

pytest.importorskip("usearch")

COLLECTION = CollectionRecord("kb1", "kb", "team", "words", DIM, 0.0)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


async def ingest(store: Any, doc: str, texts: list[str]) -> None:
    chunks = [Chunk(f"{doc}#{i}", doc, i, t, len(t.split())) for i, t in enumerate(texts)]
    await store.replace_document(DocumentRecord("kb1", doc, doc, len(chunks), 0, 0.0), chunks,
                                 embed_now(texts))


async def test_replicas_see_each_others_ingestions_within_refresh_s(
        backend: tuple[str, dict[str, Any]]) -> None:
    store_a, store_b = make_store(*backend), make_store(*backend)
    try:
        await store_a.put_collection(COLLECTION)
        a = Retriever(store_a, WordEmbedder(), refresh_s=0.2)
        b = Retriever(store_b, WordEmbedder(), refresh_s=0.2)
        await ingest(store_a, "volcano", ["Mauna Kea is the tallest volcano"])
        assert [h.chunk.document_id for h in await b.search(COLLECTION, "volcano")] == [
            "volcano"]
        await ingest(store_b, "ocean", ["The Pacific ocean is the deepest"])
        hits = await a.search(COLLECTION, "pacific ocean", k=1)  # a looked < 0.2 s ago?
        if not hits or hits[0].chunk.document_id != "ocean":
            await asyncio.sleep(0.25)
            hits = await a.search(COLLECTION, "pacific ocean", k=1)
        assert hits[0].chunk.document_id == "ocean"
        await store_b.delete_document("kb1", "volcano")
        await asyncio.sleep(0.25)
        assert all(h.chunk.document_id != "volcano"
                   for h in await a.search(COLLECTION, "tallest volcano"))
    finally:
        await store_a.aclose()
        await store_b.aclose()
