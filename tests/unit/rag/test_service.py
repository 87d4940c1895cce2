"""`Knowledge`, the facade: which collection a name means for a caller, who may change it,
config collections created on first use, uploads loaded before anything is stored, and
nothing opened or loaded until the first call that needs it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from gatewise.config.schema import RagCollectionConfig, RagConfig
from gatewise.errors import (
    CollectionNotFoundError,
    ConflictError,
    DocumentNotFoundError,
    EmptyDocumentError,
    ForbiddenError,
    InvalidRequestError,
    UnsupportedDocumentError,
)
from gatewise.pipeline.core import ANONYMOUS, Identity
from gatewise.rag.service import Knowledge, Upload, check_filters
from gatewise.security.rbac import permissions_for
from gatewise.storage.chunks_memory import MemoryChunkStore

DIM = 64


class BagOfWords:
    """A deterministic embedder: each word lights one of 64 dimensions."""

    name = "test:bow"
    dimension = DIM

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> Any:
        self.calls += 1
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out / norms

    async def aclose(self) -> None:
        return None


def member(team: str | None, role: str = "member") -> Identity:
    return Identity(tenant=team or "t", team=team, key_id=f"k-{team}", role=role,
                    permissions=permissions_for(role))


RED, BLUE, GREEN = member("red"), member("blue"), member("green")


def knowledge(**rag: Any) -> tuple[Knowledge, MemoryChunkStore, BagOfWords, list[int]]:
    store, emb, opened = MemoryChunkStore(), BagOfWords(), []

    def open_store() -> MemoryChunkStore:
        opened.append(1)
        return store

    kb = Knowledge(RagConfig(**rag), open_store=open_store, make_embedder=lambda: emb)
    return kb, store, emb, opened


async def test_nothing_is_opened_or_embedded_before_first_use() -> None:
    kb, _, emb, opened = knowledge()
    assert opened == [] and emb.calls == 0
    await kb.aclose()
    assert opened == []


async def test_a_name_means_the_teams_own_collection_first_then_one_shared_with_it() -> None:
    kb, *_ = knowledge()
    own_red = await kb.create_collection(RED, "docs")
    own_blue = await kb.create_collection(BLUE, "docs", shared_with=["red"])
    only_blue = await kb.create_collection(BLUE, "handbook", shared_with=["red"])
    assert (await kb.resolve(RED, "docs")).id == own_red.id
    assert (await kb.resolve(BLUE, "docs")).id == own_blue.id
    assert (await kb.resolve(RED, "blue/docs")).id == own_blue.id  # owner/name: explicit
    assert (await kb.resolve(RED, "handbook")).id == only_blue.id
    with pytest.raises(CollectionNotFoundError):
        await kb.resolve(GREEN, "docs")
    with pytest.raises(CollectionNotFoundError):
        await kb.resolve(GREEN, "blue/handbook")
    with pytest.raises(CollectionNotFoundError):
        await kb.resolve(RED, "nope")
    names = {(c.owner, c.name) for c in await kb.list_collections(RED)}
    assert names == {("red", "docs"), ("blue", "docs"), ("blue", "handbook")}
    assert await kb.list_collections(GREEN) == []
    # Admins see everything; a plain name two teams use must be qualified.
    assert len(await kb.list_collections(ANONYMOUS)) == 3
    assert (await kb.resolve(ANONYMOUS, "handbook")).id == only_blue.id
    with pytest.raises(InvalidRequestError, match="owner/name"):
        await kb.resolve(ANONYMOUS, "docs")


async def test_shared_with_everyone_reaches_every_team_but_writes_stay_with_the_owner() -> None:
    kb, *_ = knowledge()
    await kb.create_collection(RED, "public", shared_with=["*"])
    assert (await kb.resolve(GREEN, "public")).owner == "red"
    with pytest.raises(ForbiddenError):
        await kb.ingest(GREEN, "public", Upload(b"hello world", filename="a.txt"))
    with pytest.raises(ForbiddenError):
        await kb.share(GREEN, "public", shared_with=[])
    with pytest.raises(ForbiddenError):
        await kb.delete_collection(GREEN, "public")
    await kb.share(RED, "public", shared_with=[])
    with pytest.raises(CollectionNotFoundError):
        await kb.resolve(GREEN, "public")


async def test_create_refuses_a_duplicate_a_bad_name_and_a_teamless_non_admin() -> None:
    kb, *_ = knowledge()
    made = await kb.create_collection(RED, "kb")
    assert made.embedder == "test:bow" and made.dimension == DIM and made.owner == "red"
    with pytest.raises(ConflictError):
        await kb.create_collection(RED, "kb")
    await kb.create_collection(BLUE, "kb")  # another team may use the name
    with pytest.raises(InvalidRequestError):
        await kb.create_collection(RED, "has space")
    with pytest.raises(ForbiddenError, match="no team"):
        await kb.create_collection(member(None), "kb2")
    with pytest.raises(ForbiddenError):
        await kb.create_collection(RED, "kb3", team="blue")
    assert (await kb.create_collection(ANONYMOUS, "kb3", team="blue")).owner == "blue"
    with pytest.raises(ForbiddenError, match="rag:write"):
        await kb.create_collection(member("red", "viewer"), "kb4")


async def test_config_collections_exist_on_first_use_as_configured() -> None:
    kb, store, *_ = knowledge(collections={
        "handbook": RagCollectionConfig(team="red", shared_with=["blue"], description="HR"),
        "global": RagCollectionConfig(shared_with=["*"])})
    found = await kb.resolve(BLUE, "handbook")
    assert found.owner == "red" and found.description == "HR"
    assert (await kb.resolve(GREEN, "global")).owner == ""
    # The config wins over a change made since: it is declared again on the next start.
    await kb.share(RED, "handbook", shared_with=[])
    again = Knowledge(kb.config, open_store=lambda: store, make_embedder=BagOfWords)
    assert (await again.resolve(BLUE, "handbook")).shared_with == ("blue",)


async def test_a_bad_upload_refuses_the_whole_batch_and_stores_nothing() -> None:
    kb, store, *_ = knowledge()
    record = await kb.create_collection(RED, "kb")
    good = Upload(b"Kangaroos hop.", filename="k.txt", id="k")
    with pytest.raises(EmptyDocumentError):
        await kb.ingest(RED, "kb", [good, Upload(b"   ", filename="e.txt")])
    with pytest.raises(UnsupportedDocumentError):
        await kb.ingest(RED, "kb", [good, Upload(b"%PDF-1.4 broken", filename="x.pdf")])
    assert await store.list_documents(record.id) == []


async def test_ingest_search_and_delete_through_the_facade() -> None:
    kb, *_ = knowledge(chunk_tokens=32, chunk_overlap=0)
    await kb.create_collection(RED, "kb", shared_with=["blue"])
    await kb.ingest(RED, "kb", [
        Upload(b"Kangaroos hop on strong hind legs.", filename="k.txt", id="k",
               metadata={"topic": "animals"}),
        Upload(b"Olympus Mons is the tallest volcano on Mars.", filename="m.txt", id="m",
               metadata={"topic": "space"})])
    hits = await kb.search(BLUE, "kb", "tallest volcano", k=2)
    assert hits[0].chunk.document_id == "m" and hits[0].rank == 1
    only = await kb.search(BLUE, "kb", "volcano", filters={"topic": "animals"})
    assert {h.chunk.document_id for h in only} == {"k"}
    assert [d.id for d in await kb.list_documents(BLUE, "kb")] == ["k", "m"]
    assert (await kb.get_document(BLUE, "kb", "m")).chunks >= 1
    assert await kb.delete_document(RED, "kb", "m") >= 1
    with pytest.raises(DocumentNotFoundError):
        await kb.get_document(RED, "kb", "m")
    with pytest.raises(DocumentNotFoundError):
        await kb.delete_document(RED, "kb", "m")
    assert all(h.chunk.document_id != "m" for h in await kb.search(RED, "kb", "volcano"))
    assert await kb.delete_collection(RED, "kb") >= 1
    with pytest.raises(CollectionNotFoundError):
        await kb.search(RED, "kb", "volcano")
    await kb.aclose()


@pytest.mark.parametrize("filters", [
    {"year": {"$regex": "x"}}, {"tags": {"$in": "a"}}, {"$or": []}, {"a": {"b": 1}},
    {"a": {}}, {"a": [1, 2]}, {"a": {"$gte": True}}, {"a": float("nan")}, "topic=x",
])
def test_malformed_filters_are_a_400_naming_them(filters: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_filters(filters)
    assert (info.value.param or "").startswith("filters")


def test_well_formed_filters_pass() -> None:
    ok = {"topic": "space", "year": {"$gte": 2020, "$lte": 2024},
          "lang": {"$in": ["en", "de"]}, "draft": {"$ne": True}, "page": None}
    assert check_filters(ok) is ok


async def test_files_the_loaders_could_not_read_are_reported_beside_the_stored_ones() -> None:
    from gatewise.rag.loaders import LoadFailure

    kb, *_ = knowledge()
    await kb.create_collection(RED, "kb")
    bad = LoadFailure("x.pdf", "malformed PDF", UnsupportedDocumentError("malformed PDF"))
    report = await kb.ingest(RED, "kb", [bad, Upload(b"Kangaroos hop.", filename="k.txt")])
    assert report.added == ["k.txt"]
    assert [(f.id, f.reason) for f in report.failed] == [("x.pdf", "malformed PDF")]
