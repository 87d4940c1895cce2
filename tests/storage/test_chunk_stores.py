"""The knowledge-base store (`ChunkStore`), one suite over memory, SQLite and PostgreSQL.

Collections belong to a team and are seen by it and by the teams they are shared with;
a document's chunks are replaced in one step and never duplicated; deleting removes every
chunk; `changes` tells an index exactly what to add and drop since the sequence it holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gatewise.errors import CollectionNotFoundError, ConflictError, InvalidRequestError
from gatewise.storage.chunks import Chunk, ChunkChange, ChunkStore, CollectionRecord, DocumentRecord
from gatewise.storage.chunks_memory import MemoryChunkStore
from gatewise.storage.chunks_sqlite import SQLiteChunkStore
from tests.storage.conftest import backend_details

DIM = 8


def make_store(name: str, d: dict[str, Any]) -> Any:
    if name == "memory":
        return MemoryChunkStore()
    if name == "sqlite":
        return SQLiteChunkStore(Path(d["path"]) / "rag.db")
    from gatewise.storage.chunks_postgres import PostgresChunkStore

    return PostgresChunkStore(d["url"], schema=d["schema"])


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture
async def store(backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    s = make_store(*backend)
    yield s
    await s.aclose()


def collection(cid: str = "c1", owner: str = "team-a", name: str = "docs",
               shared: tuple[str, ...] = ()) -> CollectionRecord:
    return CollectionRecord(id=cid, name=name, owner=owner, embedder="fake", dimension=DIM,
                            created=1000.0, shared_with=shared, description="d",
                            metadata={"k": "v"})


def vectors(n: int, seed: int = 0) -> Any:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def document(doc_id: str, texts: Sequence[str], cid: str = "c1",
             metadata: dict[str, Any] | None = None) -> tuple[DocumentRecord, list[Chunk]]:
    chunks = [Chunk(f"{doc_id}#{i}", doc_id, i, text, len(text.split()),
                    {"source": doc_id, **(metadata or {})}) for i, text in enumerate(texts)]
    return DocumentRecord(cid, doc_id, f"sha-{doc_id}-{len(texts)}", len(chunks),
                          sum(c.tokens for c in chunks), 1000.0, metadata or {}), chunks


async def put(store: ChunkStore, doc_id: str, texts: Sequence[str], cid: str = "c1",
              seed: int = 0, metadata: dict[str, Any] | None = None) -> None:
    doc, chunks = document(doc_id, texts, cid, metadata)
    await store.replace_document(doc, chunks, vectors(len(chunks), seed))


async def everything(store: ChunkStore, cid: str = "c1") -> ChunkChange:
    return await store.changes(cid, 0)


async def test_collections_are_created_updated_and_found(store: Any) -> None:
    await store.put_collection(collection())
    assert await store.get_collection("c1") == collection()
    assert await store.find_collection("team-a", "docs") == collection()
    assert await store.find_collection("team-b", "docs") is None
    # An update changes sharing and description; the id, owner and embedder stay.
    changed = CollectionRecord("c1", "docs", "team-a", "fake", DIM, 1000.0, ("team-b",),
                               description="new")
    await store.put_collection(changed)
    got = await store.get_collection("c1")
    assert got.shared_with == ("team-b",) and got.description == "new"
    assert got.created == 1000.0 and got.embedder == "fake"


async def test_a_team_cannot_hold_two_collections_of_one_name(store: Any) -> None:
    await store.put_collection(collection("c1"))
    with pytest.raises(ConflictError):
        await store.put_collection(collection("c2"))
    await store.put_collection(collection("c2", owner="team-b"))  # another team may


async def test_a_team_sees_its_own_and_what_is_shared_with_it(store: Any) -> None:
    await store.put_collection(collection("own", "team-a", "own"))
    await store.put_collection(collection("to-a", "team-b", "to-a", shared=("team-a",)))
    await store.put_collection(collection("to-all", "team-c", "to-all", shared=("*",)))
    await store.put_collection(collection("private-b", "team-b", "private"))
    await store.put_collection(collection("to-c", "team-b", "to-c", shared=("team-c",)))
    seen = {c.id for c in await store.list_collections("team-a")}
    assert seen == {"own", "to-a", "to-all"}
    assert {c.id for c in await store.list_collections("team-b")} == {
        "to-a", "private-b", "to-c", "to-all"}
    assert len(await store.list_collections(None)) == 5  # an admin sees every one


async def test_replacing_a_document_swaps_its_chunks_and_never_duplicates(store: Any) -> None:
    await store.put_collection(collection())
    await put(store, "guide", ["one", "two", "three"])
    await put(store, "guide", ["uno", "dos"], seed=1)
    await put(store, "guide", ["uno", "dos"], seed=1)
    change = await everything(store)
    assert sorted(c.text for c in change.added) == ["dos", "uno"]
    assert change.vectors is not None and change.vectors.shape == (2, DIM)
    got = await store.get_document("c1", "guide")
    assert got is not None and got.chunks == 2 and got.digest == "sha-guide-2"
    assert await store.get_chunks("c1", ["guide#2", "guide#1", "guide#0"]) == [
        document("guide", ["uno", "dos"])[1][1], document("guide", ["uno", "dos"])[1][0]]


async def test_a_failed_replacement_leaves_the_old_chunks(store: Any) -> None:
    await store.put_collection(collection())
    await put(store, "guide", ["one", "two"])
    doc, chunks = document("guide", ["a", "b", "c"])
    with pytest.raises(InvalidRequestError):  # three chunks, two vectors
        await store.replace_document(doc, chunks, vectors(2))
    bad = [chunks[0], Chunk("other#0", "other", 0, "x", 1)]
    with pytest.raises(InvalidRequestError):  # a chunk of another document
        await store.replace_document(doc, bad, vectors(2))
    assert sorted(c.text for c in (await everything(store)).added) == ["one", "two"]
    with pytest.raises(CollectionNotFoundError):
        await put(store, "guide", ["x"], cid="missing")


async def test_vectors_come_back_as_stored(store: Any) -> None:
    await store.put_collection(collection())
    await put(store, "d", ["a", "b", "c"], seed=7)
    change = await everything(store)
    order = [int(c.id.split("#")[1]) for c in change.added]
    assert change.vectors is not None and change.vectors.dtype == np.float32
    np.testing.assert_allclose(change.vectors, vectors(3, 7)[order], atol=2e-3)


async def test_deleting_removes_every_chunk(store: Any) -> None:
    await store.put_collection(collection())
    await put(store, "a", ["1", "2", "3"])
    await put(store, "b", ["4"])
    assert await store.delete_document("c1", "a") == 3
    assert await store.delete_document("c1", "a") == 0
    assert await store.get_document("c1", "a") is None
    assert [c.id for c in (await everything(store)).added] == ["b#0"]
    assert await store.delete_collection("c1") == 1
    assert await store.get_collection("c1") is None
    assert await store.get_chunks("c1", ["b#0"]) == []
    assert await store.list_documents("c1") == []


async def test_changes_give_what_an_index_needs_to_catch_up(store: Any) -> None:
    await store.put_collection(collection())
    start = await everything(store)
    assert (start.added, start.removed) == ([], []) and start.seq > 0
    await put(store, "a", ["1", "2"])
    first = await store.changes("c1", start.seq)
    assert sorted(c.id for c in first.added) == ["a#0", "a#1"] and first.seq > start.seq
    await put(store, "a", ["1"])
    await put(store, "b", ["x"])
    await store.delete_document("c1", "b")
    later = await store.changes("c1", first.seq)
    assert [c.id for c in later.added] == ["a#0"]
    assert sorted(later.removed) == ["a#0", "a#1", "b#0"]  # removed first, then added again
    assert (await store.changes("c1", later.seq)).added == []
    assert (await store.changes("c1", later.seq)).seq == later.seq


async def test_changes_page_without_splitting_a_document(store: Any) -> None:
    await store.put_collection(collection())
    for name in "abcd":
        await put(store, name, ["1", "2", "3"])
    since, seen, pages = 0, [], 0
    while True:
        page = await store.changes("c1", since, limit=4)
        pages += 1
        seen.extend(c.id for c in page.added)
        assert len(page.added) % 3 == 0
        if page.seq == since:
            break
        since = page.seq
    assert sorted(seen) == sorted(f"{n}#{i}" for n in "abcd" for i in range(3))
    assert pages >= 4
    big = await store.changes("c1", 0, limit=2)  # one document bigger than a page
    assert len(big.added) == 3


async def test_an_index_from_before_a_recreated_collection_is_told_to_reset(
        store: Any) -> None:
    await store.put_collection(collection())
    await put(store, "a", ["1"])
    held = (await everything(store)).seq
    await store.delete_collection("c1")
    assert (await store.changes("c1", held)).reset  # gone: drop what you hold
    await store.put_collection(collection())
    await put(store, "b", ["2"])
    change = await store.changes("c1", held)
    if change.seq != held:  # a new sequence cannot be confused with the old one
        assert change.reset and [c.id for c in change.added] == ["b#0"]


async def test_documents_page_in_id_order(store: Any) -> None:
    await store.put_collection(collection())
    for name in ["b", "a", "é", "c", "Z"]:
        await put(store, name, ["x"])
    first = await store.list_documents("c1", limit=2)
    rest = await store.list_documents("c1", after=first[-1].id, limit=10)
    assert [d.id for d in first + rest] == ["Z", "a", "b", "c", "é"]


async def test_unicode_survives_and_nul_is_dropped_from_text(store: Any) -> None:
    await store.put_collection(collection())
    text = "naïve café — 東京の天気 🌧\x00 end"
    await put(store, "ünï-コード", [text], metadata={"title": "Ti\x00tle ✓", "n": 3})
    (chunk,) = (await everything(store)).added
    assert chunk.id == "ünï-コード#0"
    assert chunk.text == "naïve café — 東京の天気 🌧 end"
    assert chunk.metadata["title"] == "Title ✓" and chunk.metadata["n"] == 3
    doc, chunks = document("bad\x00id", ["x"])
    with pytest.raises(InvalidRequestError):
        await store.replace_document(doc, chunks, vectors(1))


async def test_an_empty_document_is_recorded_with_no_chunks(store: Any) -> None:
    await store.put_collection(collection())
    doc, _ = document("empty", [])
    await store.replace_document(doc, [], np.zeros((0, DIM), np.float32))
    got = await store.get_document("c1", "empty")
    assert got is not None and got.chunks == 0


def _config(storage: dict[str, Any], rag: dict[str, Any] | None = None) -> Any:
    from gatewise.config.loader import parse_config, resolve_config

    cfg, warnings = parse_config({"models": {"a": [{"model": "openai/gpt-4o", "api_key": "x"}]},
                                  "storage": storage, "rag": rag or {}})
    return resolve_config(cfg, None, {}, warnings)


async def test_the_store_follows_rag_store_and_opens_nothing_until_used(
        tmp_path: Path) -> None:
    from gatewise.storage.chunks_factory import open_chunk_store

    state = tmp_path / "state"
    store = open_chunk_store(_config({"database": "sqlite", "state_dir": str(state)}))
    assert type(store).__name__ == "SQLiteChunkStore" and not state.exists()
    await store.put_collection(collection())
    assert (state / "rag.db").exists()
    await store.aclose()
    memory = open_chunk_store(_config({"database": "sqlite", "state_dir": str(state)},
                                      {"store": "memory"}))
    assert type(memory).__name__ == "MemoryChunkStore"
    pg = open_chunk_store(_config({"database": "postgres", "state_dir": str(state),
                                   "postgres_url": "postgresql://127.0.0.1:1/none"}))
    assert type(pg).__name__ == "PostgresChunkStore"  # not connected: port 1 is never asked
    await pg.aclose()


async def test_concurrent_writers_each_get_their_own_sequence_number(
        backend: tuple[str, dict[str, Any]]) -> None:
    import asyncio

    first = make_store(*backend)
    second = first if backend[0] == "memory" else make_store(*backend)
    try:
        await first.put_collection(collection())
        await asyncio.gather(*(put(s, f"d{i}", ["x", "y"]) for i, s in
                               enumerate([first, second] * 4)))
        seqs, since = [], 0
        while True:
            page = await first.changes("c1", since, limit=2)
            if page.seq == since:
                break
            seqs.append(page.seq)
            since = page.seq
        assert len(seqs) == 8 and seqs == sorted(set(seqs))  # one number per document
        assert len((await everything(first)).added) == 16
    finally:
        await first.aclose()
        if second is not first:
            await second.aclose()
