"""Hybrid retrieval (`Retriever`): BM25 and vectors each find what the other misses, fusion
ranks what both agree on first, filters never starve the result, MMR drops near-duplicates,
a re-ranker reorders when asked, and every hit says why it came back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from gatewise.errors import ConflictError, InvalidRequestError
from gatewise.rag.search import Retriever, fuse, mmr_order
from gatewise.rag.types import Hit
from gatewise.storage.chunks import Chunk, CollectionRecord, DocumentRecord
from gatewise.storage.chunks_memory import MemoryChunkStore
from tests.unit.rag.words import DIM, WordEmbedder, embed_now

pytest.importorskip("usearch")
pytest.importorskip("bm25s")

COLLECTION = CollectionRecord("c", "kb", "team", "words", DIM, 0.0)
DOCS = {
    "printer": "Printer error E1234X means the paper tray is empty",
    "errors": "Error messages and warnings are listed in the appendix",
    "errors2": "Error",
    "garage": "How to repair an automobile engine at home",
    "cooking": "Slow cooking recipes for winter evenings",
    "cats": "Caring for a cat: food, play and sleep",
}


async def retriever(docs: dict[str, str] = DOCS, *, reranker: Any = None,
                    metadata: dict[str, dict[str, Any]] | None = None) -> Retriever:
    store = MemoryChunkStore()
    await store.put_collection(COLLECTION)
    for doc, text in docs.items():
        md = {"source": doc, **(metadata or {}).get(doc, {})}
        chunk = Chunk(f"{doc}#0", doc, 0, text, len(text.split()), md)
        await store.replace_document(DocumentRecord("c", doc, doc, 1, 0, 0.0), [chunk],
                                     embed_now([text]))
    return Retriever(store, WordEmbedder(), reranker=reranker, refresh_s=0.0)


def docs_of(hits: Sequence[Hit]) -> list[str]:
    return [h.chunk.document_id for h in hits]


async def test_bm25_finds_an_exact_code_the_vectors_miss() -> None:
    r = await retriever()
    query = "error E1234X"
    assert docs_of(await r.search(COLLECTION, query, k=1, mode="bm25")) == ["printer"]
    assert docs_of(await r.search(COLLECTION, query, k=1, mode="vector")) == ["errors2"]
    assert "printer" in docs_of(await r.search(COLLECTION, query, k=2))


async def test_vectors_find_a_paraphrase_bm25_misses() -> None:
    r = await retriever()
    query = "fix car motor"  # no word in common with "repair an automobile engine"
    assert "garage" not in docs_of(await r.search(COLLECTION, query, k=3, mode="bm25"))
    assert docs_of(await r.search(COLLECTION, query, k=1, mode="vector")) == ["garage"]
    assert docs_of(await r.search(COLLECTION, query, k=1)) == ["garage"]


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = fuse([[(1, 0.9), (2, 0.8), (3, 0.7)], [(3, 5.0), (1, 4.0)]])
    assert [k for k, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 62)


async def test_hits_carry_every_stage_score_in_rank_order() -> None:
    r = await retriever()
    hits = await r.search(COLLECTION, "printer paper tray error", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = hits[0]
    assert top.chunk.document_id == "printer"
    assert set(top.scores) == {"rrf", "vector", "bm25"} and top.score == top.scores["rrf"]
    assert all("vector" in h.scores for h in hits)


async def test_filters_hold_and_never_starve_the_result() -> None:
    docs = {f"en{i}": f"printer error number {i}" for i in range(60)}
    docs |= {"de1": "Küche und Garten", "de2": "Bergwandern im Sommer"}
    md = {d: {"lang": "de" if d.startswith("de") else "en", "year": i}
          for i, d in enumerate(docs)}
    r = await retriever(docs, metadata=md)
    hits = await r.search(COLLECTION, "printer error", k=5, filters={"lang": "de"})
    assert sorted(docs_of(hits)) == ["de1", "de2"]  # the only two there are
    hits = await r.search(COLLECTION, "printer error", k=5,
                          filters={"lang": {"$ne": "de"}, "year": {"$gte": 10, "$lte": 12}})
    assert sorted(docs_of(hits)) == ["en10", "en11", "en12"]
    hits = await r.search(COLLECTION, "printer", k=4, filters={"source": {"$in": ["en3",
                                                                                    "de2"]}})
    assert sorted(docs_of(hits)) == ["de2", "en3"]
    with pytest.raises(InvalidRequestError) as bad:
        await r.search(COLLECTION, "printer", filters={"lang": {"$like": "d%"}})
    assert bad.value.param == "filters"


async def test_mmr_gives_way_to_a_different_relevant_chunk() -> None:
    docs = {"a": "fast automobile engine repair guide",
            "b": "fast automobile engine repair guide!",
            "c": "fast automobile engine repair guide.",
            "d": "automobile engine repair costs and prices"}
    r = await retriever(docs)
    plain = docs_of(await r.search(COLLECTION, "fast automobile engine repair", k=2))
    assert "d" not in plain
    diverse = await r.search(COLLECTION, "fast automobile engine repair", k=2, mmr=0.3)
    assert docs_of(diverse)[1] == "d"
    assert all("mmr" in h.scores for h in diverse) and diverse[0].score >= diverse[1].score


def test_mmr_with_full_relevance_keeps_the_relevance_order() -> None:
    vectors = embed_now(["a b", "a b", "c d"])
    picks = mmr_order(np.array([3.0, 2.0, 1.0]), vectors, 3, 1.0)
    assert [p for p, _ in picks] == [0, 1, 2]


async def test_a_reranker_reorders_the_fused_candidates() -> None:
    seen: list[int] = []

    async def reverse_alphabet(query: str, hits: list[Hit]) -> list[float]:
        seen.append(len(hits))
        return [float(ord(h.chunk.document_id[0])) for h in hits]

    r = await retriever(reranker=reverse_alphabet)
    hits = await r.search(COLLECTION, "error", k=2, rerank=True)
    assert seen and seen[0] >= 2
    assert hits[0].scores["rerank"] >= hits[1].scores["rerank"]
    assert hits[0].score == hits[0].scores["rerank"]
    assert docs_of(hits) == sorted(docs_of(hits), reverse=True)


async def test_rerank_without_a_reranker_is_refused_naming_it() -> None:
    r = await retriever()
    with pytest.raises(InvalidRequestError) as refused:
        await r.search(COLLECTION, "error", rerank=True)
    assert refused.value.param == "rerank"


async def test_a_collection_of_another_embedder_is_refused() -> None:
    r = await retriever()
    other = CollectionRecord("c", "kb", "team", "minilm", DIM, 0.0)
    with pytest.raises(ConflictError):
        await r.search(other, "error")
    assert await r.search(other, "printer", mode="bm25")  # BM25 needs no embedder


async def test_an_empty_collection_finds_nothing() -> None:
    r = await retriever({})
    assert await r.search(COLLECTION, "anything") == []


async def test_real_minilm_finds_a_paraphrase() -> None:
    pytest.importorskip("onnxruntime")
    try:
        from gatewise.embedding import local_embedder

        embedder = local_embedder()
        await embedder.embed(["probe"])
    except Exception as exc:  # the model package is not installed here
        pytest.skip(f"local embedding model unavailable: {type(exc).__name__}")
    texts = ["The capital of France is Paris.", "Bananas are rich in potassium.",
             "Our office is closed on public holidays."]
    store = MemoryChunkStore()
    record = CollectionRecord("m", "kb", "team", embedder.name, int(embedder.dimension), 0.0)
    await store.put_collection(record)
    cs = [Chunk(f"d#{i}", "d", i, t, 5) for i, t in enumerate(texts)]
    await store.replace_document(DocumentRecord("m", "d", "x", 3, 15, 0.0), cs,
                                 await embedder.embed(texts))
    r = Retriever(store, embedder, refresh_s=0.0)
    hits = await r.search(record, "Which fruit contains a lot of minerals?", k=1, mode="vector")
    assert hits[0].chunk.text == texts[1]
    await embedder.aclose()


async def test_remembered_filters_follow_new_and_removed_chunks() -> None:
    docs = {f"en{i}": f"printer error number {i}" for i in range(80)} | {"de1": "Küche"}
    md = {d: {"lang": "de" if d.startswith("de") else "en"} for d in docs}
    r = await retriever(docs, metadata=md)
    assert docs_of(await r.search(COLLECTION, "printer", k=3, filters={"lang": "de"})) == [
        "de1"]
    text = "Drucker Fehler printer"
    await r.store.replace_document(DocumentRecord("c", "de2", "x", 1, 3, 0.0), [
        Chunk("de2#0", "de2", 0, text, 3, {"lang": "de"})], embed_now([text]))
    await r.store.delete_document("c", "de1")
    assert docs_of(await r.search(COLLECTION, "printer", k=3, filters={"lang": "de"})) == [
        "de2"]


def test_weighted_fusion_lets_one_list_lead() -> None:
    vec = [(1, 0.9), (2, 0.8)]
    lex = [(3, 9.0), (2, 5.0)]
    assert [k for k, _ in fuse([vec, lex])][:1] == [2]  # in both lists: first by default
    leaning = fuse([vec, lex], k=5, weights=(8.0, 1.0))
    assert [k for k, _ in leaning] == [1, 2, 3]
    assert fuse([vec, lex], weights=(1.0, 0.0))[-1] == (3, 0.0)
