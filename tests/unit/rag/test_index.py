"""The per-process index of one collection: vectors (usearch) and BM25 (bm25s plus a delta),
kept in step with the store through `changes`, never reading a stale or half-applied state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gatewise.rag.bm25 import Bm25Index, tokenize
from gatewise.rag.index import CollectionIndex
from gatewise.storage.chunks import Chunk, ChunkChange, CollectionRecord, DocumentRecord
from gatewise.storage.chunks_memory import MemoryChunkStore
from tests.unit.rag.words import DIM, embed_now

pytest.importorskip("usearch")
pytest.importorskip("bm25s")


def chunks(doc: str, texts: Sequence[str], **metadata: object) -> list[Chunk]:
    return [Chunk(f"{doc}#{i}", doc, i, t, len(t.split()), {"source": doc, **metadata})
            for i, t in enumerate(texts)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def store_with(*docs: tuple[str, Sequence[str]]) -> MemoryChunkStore:
    store = MemoryChunkStore()
    await store.put_collection(CollectionRecord("c", "kb", "t", "words", DIM, 0.0))
    for doc, texts in docs:
        await replace(store, doc, texts)
    return store


async def replace(store: MemoryChunkStore, doc: str, texts: Sequence[str]) -> None:
    cs = chunks(doc, texts)
    await store.replace_document(DocumentRecord("c", doc, doc, len(cs), 0, 0.0), cs,
                                 embed_now(texts))


def texts_of(index: CollectionIndex, found: list[tuple[int, float]]) -> list[str]:
    return [index.chunk(k).text for k, _ in found]


def test_tokens_are_casefolded_words_and_cjk_characters_with_bigrams() -> None:
    assert tokenize("The Quick-brown fox_jumps, NAÏVE café!") == [
        "quick", "brown", "fox", "jumps", "naïve", "café"]
    assert tokenize("東京タワー") == ["東", "京", "タ", "ワ", "ー", "東京", "京タ", "タワ", "ワー"]
    assert tokenize("error E1234X in v2") == ["error", "e1234x", "v2"]


def test_hyphenated_codes_are_also_kept_whole() -> None:
    assert tokenize("See E-412 and ISO-8601, not well-known") == [
        "e412", "iso8601", "see", "e", "412", "iso", "8601", "not", "well", "known"]


def test_codes_match_however_they_are_written() -> None:
    texts = ["What the LED colours mean: white is booting, red is an error.",
             "Error E-412 means the satellite lost its backhaul link.",
             "Error E-413 means the firmware image failed to verify."]
    index = CollectionIndex.from_arrays(chunks("d", texts), embed_now(texts))
    assert texts_of(index, index.bm25_search("What does error E-412 mean?", 1)) == [texts[1]]
    assert texts_of(index, index.bm25_search("E412", 1)) == [texts[1]]


def test_bm25_ranks_rare_exact_terms_first() -> None:
    texts = ["the printer shows error E1234X when the tray is empty",
             "error messages are listed in the manual",
             "an error can happen at any time"]
    index = CollectionIndex.from_arrays(chunks("d", texts), embed_now(texts))
    found = index.bm25_search("E1234X error", 3)
    assert texts_of(index, found)[0] == texts[0]
    assert index.bm25_search("nothing matches this", 3) == []


def test_bm25_delta_scores_like_a_rebuilt_index() -> None:
    """Documents added after the last build are found, with scores that match what a full
    rebuild gives (so ranks across the two halves are fair)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    docs = [" ".join(rng.choice(words, size=12)) for _ in range(300)]
    bm = Bm25Index()
    for key, text in enumerate(docs[:250]):
        bm.add(key, text)
    bm.rebuild()
    for key, text in enumerate(docs[250:], 250):
        bm.add(key, text)
    assert len(bm.delta) == 50
    incremental = dict(bm.search("w1 w7 w42", 300))
    bm.rebuild()
    assert not bm.delta
    rebuilt = dict(bm.search("w1 w7 w42", 300))
    assert incremental.keys() == rebuilt.keys()
    for key in range(250, 300):
        if key in rebuilt:
            assert incremental[key] == pytest.approx(rebuilt[key], rel=0.05)


def test_removed_documents_never_come_back() -> None:
    texts = ["alpha beta", "alpha gamma", "delta"]
    index = CollectionIndex.from_arrays(chunks("d", texts), embed_now(texts))
    index.remove(["d#0"])
    assert "alpha beta" not in texts_of(index, index.bm25_search("alpha", 5))
    assert "alpha beta" not in texts_of(index, index.vector_search(embed_now(["alpha beta"])[0],
                                                                   5))
    assert len(index) == 2


def test_filtered_vector_search_widens_until_enough_match() -> None:
    """Three chunks of 400 pass the filter and they are the least similar to the query:
    they still come back (HNSW over-fetch, widened, exhaustive at the end)."""
    near = [f"solar panel efficiency report {i}" for i in range(397)]
    far = ["medieval castle architecture", "baroque music history", "deep sea fishing"]
    cs = chunks("near", near, lang="en") + chunks("far", far, lang="de")
    index = CollectionIndex.from_arrays(cs, embed_now(near + far), exact_below=0)
    allowed = index.allowed(lambda md: md.get("lang") == "de")
    found = index.vector_search(embed_now(["solar panel efficiency"])[0], 3, allowed)
    assert sorted(texts_of(index, found)) == sorted(far)
    assert len(index.vector_search(embed_now(["solar"])[0], 10, allowed)) == 3


async def test_refresh_follows_the_store_and_polls_at_most_every_refresh_s() -> None:
    store = await store_with(("a", ["apples are red", "bananas are yellow"]))
    clock = Clock()
    index = CollectionIndex(DIM, refresh_s=1.0, clock=clock)
    await index.refresh(store, "c")
    assert len(index) == 2
    await replace(store, "a", ["cherries are dark red"])
    await index.refresh(store, "c")
    assert len(index) == 2  # within refresh_s: the last look stands
    clock.now = 1.5
    await index.refresh(store, "c")
    assert [index.chunk(k).text for k, _ in index.bm25_search("red", 5)] == [
        "cherries are dark red"]
    await store.delete_document("c", "a")
    await index.refresh(store, "c", force=True)
    assert len(index) == 0 and index.bm25_search("red", 5) == []


async def test_a_recreated_collection_resets_the_index() -> None:
    store = await store_with(("a", ["old text"]))
    index = CollectionIndex(DIM, refresh_s=0.0)
    await index.refresh(store, "c")
    await store.delete_collection("c")
    await index.refresh(store, "c")
    assert len(index) == 0


async def test_large_catch_up_is_paged_and_rebuilds_bm25() -> None:
    store = await store_with()
    for d in range(30):
        await replace(store, f"doc{d}", [f"topic{d} part {i} shared words" for i in range(50)])
    index = CollectionIndex(DIM, refresh_s=0.0, page=400)
    await index.refresh(store, "c")
    assert len(index) == 1500
    assert index.bm25.base is not None and len(index.bm25.delta) < 1000
    top = index.bm25_search("topic7", 50)
    assert {index.chunk(k).document_id for k, _ in top} == {"doc7"} and len(top) == 50


def test_apply_removes_before_adding() -> None:
    index = CollectionIndex(DIM)
    first = chunks("d", ["one"])
    index.apply(ChunkChange(1, first, embed_now(["one"])))
    index.apply(ChunkChange(2, first, embed_now(["one"]), removed=["d#0"]))
    assert len(index) == 1 and index.seq == 2


def test_memory_is_reported() -> None:
    texts = [f"chunk number {i} about things" for i in range(100)]
    index = CollectionIndex.from_arrays(chunks("d", texts), embed_now(texts))
    used = index.memory_bytes()
    assert used["vectors"] > 100 * DIM and used["bm25"] > 0 and used["texts"] > 0


def test_vector_rows_survive_compaction() -> None:
    texts = [f"note about {chr(97 + i % 26) * (1 + i // 26)} things" for i in range(50)]
    index = CollectionIndex.from_arrays(chunks("d", texts), embed_now(texts))
    index.remove([f"d#{i}" for i in range(40)])
    index._compact()
    keys = [k for k, _ in index.vector_search(embed_now([texts[45]])[0], 10)]
    assert index.chunk(keys[0]).text == texts[45] and len(keys) == 10
    got = index.vectors(keys)
    want = embed_now([index.chunk(k).text for k in keys])
    np.testing.assert_allclose(got, want, atol=2e-3)
