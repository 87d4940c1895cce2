"""The knowledge-base API through the real server, on SQLite and on PostgreSQL: collections are
created, listed, shared and deleted; documents are ingested (JSON, a raw file, a form upload),
re-ingested in place, listed, deleted and searched; one team's key never sees another team's
collection (a 404, not a 403) unless it was shared, and a shared team reads but never writes;
every bad input is an OpenAI-shaped error that leaves the collection exactly as it was.

Embeddings come from the fake upstream through an embedding alias (`rag.embedder: emb`), so
the gateway's own embedding path is what ingests; assertions that depend on ranking search
with `mode: bm25`, whose order the fake's arbitrary vectors cannot disturb.
"""

from __future__ import annotations

import os
import re
import select
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fakes.faults import LEAK_SECRETS
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import require_pg

MASTER = "sk-gatewise-test-rag-master"
MAX_UPLOAD = 1_000_000
DOCS = [
    {"id": "animals/kangaroo", "text": "Kangaroos hop on their strong hind legs across the "
     "Australian outback. A joey lives in its mother's pouch.",
     "metadata": {"topic": "animals", "year": 2021}},
    {"id": "space/mars", "text": "Mars is the fourth planet from the Sun. Olympus Mons on Mars "
     "is the tallest volcano in the solar system.", "metadata": {"topic": "space", "year": 2023}},
    {"id": "cooking/risotto", "text": "Risotto is cooked by adding warm broth to arborio rice "
     "a ladle at a time while stirring.", "metadata": {"topic": "food", "year": 2019}},
]


@dataclass
class Api:
    """The server and one key to call it with (over one kept-alive connection pool)."""

    url: str
    key: str = MASTER
    client: httpx.Client | None = None

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        if self.client is None:
            return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)
        return self.client.request(method, self.url + path, headers=headers, **kw)

    def as_key(self, key: str) -> Api:
        return Api(self.url, key, self.client)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, openai_fake: FakeServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    base = openai_fake.url + "/v1"
    storage: dict[str, Any] = {"state_dir": str(tmp_path_factory.mktemp("rag"))}
    schema = f"gw_rag_{os.getpid()}_{os.urandom(4).hex()}"
    pg_url = require_pg() if request.param == "postgres" else None
    if pg_url is not None:
        storage.update(database="postgres", postgres_url=pg_url, postgres_schema=schema)
    config = {
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up"}],
            "emb": [{"model": "openai/text-embedding-3-small", "api_base": base,
                     "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": storage,
        "rag": {"embedder": "emb", "max_upload_bytes": MAX_UPLOAD, "chunk_tokens": 64,
                "chunk_overlap": 0},
    }
    try:
        with GatewayServer(config) as srv:
            yield srv
    finally:
        if pg_url is not None:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def api(server: GatewayServer) -> Iterator[Api]:
    with httpx.Client(timeout=60) as client:
        yield Api(server.url, client=client)


def _name() -> str:
    return f"kb-{uuid.uuid4().hex[:10]}"


def _team_key(api: Api, team: str, role: str = "member") -> str:
    api("POST", "/admin/teams", json={"id": team})
    r = api("POST", "/admin/keys", json={"name": f"{team}-{role}", "team": team, "role": role})
    assert r.status_code < 300, r.text
    return str(r.json()["key"])


def _collection(api: Api, **kw: Any) -> str:
    name = kw.pop("name", None) or _name()
    r = api("POST", "/v1/rag/collections", json={"name": name, **kw})
    assert r.status_code == 201, r.text
    return name


def _ingest(api: Api, name: str, docs: Any) -> dict[str, Any]:
    r = api("POST", f"/v1/rag/collections/{name}/documents", json=docs)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _documents(api: Api, name: str) -> dict[str, int]:
    r = api("GET", f"/v1/rag/collections/{name}/documents?limit=1000")
    assert r.status_code == 200, r.text
    return {d["id"]: d["chunks"] for d in r.json()["data"]}


def _search(api: Api, name: str, query: str, **kw: Any) -> list[dict[str, Any]]:
    r = api("POST", f"/v1/rag/collections/{name}/search", json={"query": query, **kw})
    assert r.status_code == 200, r.text
    hits: list[dict[str, Any]] = r.json()["data"]
    return hits


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    err: dict[str, Any] = r.json()["error"]
    assert err["message"] and err["type"]
    if code is not None:
        assert err["code"] == code, err
    return err


# -- collections ---------------------------------------------------------------------------------
def test_a_collection_is_created_listed_read_and_its_name_is_unique_per_team(api: Api) -> None:
    name = _collection(api, description="Field notes", metadata={"owner": "docs-team"})
    listed = api("GET", "/v1/rag/collections").json()
    assert listed["object"] == "list"
    mine = [c for c in listed["data"] if c["name"] == name]
    assert len(mine) == 1 and mine[0]["object"] == "rag.collection"
    one = api("GET", f"/v1/rag/collections/{name}").json()
    assert one["description"] == "Field notes" and one["embedder"] == "alias:emb"
    assert one["dimension"] > 0 and one["chunker"] == "recursive"
    _error(api("POST", "/v1/rag/collections", json={"name": name}), 409, "conflict")


def test_deleting_a_collection_removes_it_with_every_chunk(api: Api) -> None:
    name = _collection(api)
    _ingest(api, name, DOCS)
    r = api("DELETE", f"/v1/rag/collections/{name}")
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["chunks"] >= 3
    _error(api("GET", f"/v1/rag/collections/{name}"), 404, "collection_not_found")
    # The name is free again, and the new collection starts empty.
    _collection(api, name=name)
    assert _documents(api, name) == {}
    assert _search(api, name, "kangaroo", mode="bm25") == []


# -- documents ----------------------------------------------------------------------------------
def test_documents_are_ingested_searched_replaced_in_place_and_deleted(api: Api) -> None:
    name = _collection(api)
    report = _ingest(api, name, DOCS)
    assert report["object"] == "rag.ingestion"
    before = _documents(api, name)
    assert set(before) == {d["id"] for d in DOCS} and all(n >= 1 for n in before.values())

    hits = _search(api, name, "tallest volcano", mode="bm25")
    assert hits[0]["document_id"] == "space/mars" and hits[0]["rank"] == 1
    assert hits[0]["metadata"]["topic"] == "space" and "bm25" in hits[0]["scores"]
    assert "Olympus Mons" in hits[0]["text"]
    hybrid = _search(api, name, "tallest volcano on Mars", k=3)
    assert {h["document_id"] for h in hybrid} <= set(before)
    assert all({"bm25", "vector", "rrf"} & set(h["scores"]) for h in hybrid)

    # The same ids again, unchanged: nothing is added or duplicated.
    _ingest(api, name, DOCS)
    assert _documents(api, name) == before
    # The same id with new text replaces the old chunks (the count stays per document).
    changed = {**DOCS[1], "text": "Mars has two small moons, Phobos and Deimos, which orbit "
                                  "close to the planet."}
    _ingest(api, name, changed)
    after = _documents(api, name)
    assert set(after) == set(before) and after["space/mars"] == before["space/mars"]
    assert _search(api, name, "Olympus volcano", mode="bm25", filters={"topic": "space"}) == []
    assert _search(api, name, "Phobos Deimos", mode="bm25")[0]["document_id"] == "space/mars"

    doc = api("GET", f"/v1/rag/collections/{name}/documents/space/mars").json()
    assert doc["id"] == "space/mars" and doc["chunks"] == after["space/mars"]
    r = api("DELETE", f"/v1/rag/collections/{name}/documents/space%2Fmars")
    assert r.status_code == 200 and r.json()["chunks"] == after["space/mars"]
    _error(api("GET", f"/v1/rag/collections/{name}/documents/space/mars"), 404,
           "document_not_found")
    _error(api("DELETE", f"/v1/rag/collections/{name}/documents/space/mars"), 404)
    assert "space/mars" not in _documents(api, name)
    assert all(h["document_id"] != "space/mars"
               for h in _search(api, name, "Phobos Deimos moons Mars", k=10))


def test_search_filters_by_metadata_and_bounds_k(api: Api) -> None:
    name = _collection(api)
    _ingest(api, name, DOCS)
    recent = _search(api, name, "planet rice legs", k=10, filters={"year": {"$gte": 2020}})
    assert {h["document_id"] for h in recent} == {"animals/kangaroo", "space/mars"}
    food = _search(api, name, "planet rice legs", k=10,
                   filters={"topic": {"$in": ["food"]}})
    assert {h["document_id"] for h in food} == {"cooking/risotto"}
    assert len(_search(api, name, "planet rice legs", k=1)) == 1


def test_documents_page_by_id(api: Api) -> None:
    name = _collection(api)
    _ingest(api, name, [{"id": f"doc-{i:02d}", "text": f"Note number {i} about gardening."}
                        for i in range(5)])
    first = api("GET", f"/v1/rag/collections/{name}/documents?limit=2").json()
    assert [d["id"] for d in first["data"]] == ["doc-00", "doc-01"] and first["has_more"]
    rest = api("GET", f"/v1/rag/collections/{name}/documents?limit=10"
                      f"&after={first['last_id']}").json()
    assert [d["id"] for d in rest["data"]] == ["doc-02", "doc-03", "doc-04"]
    assert rest["has_more"] is False


def test_a_raw_file_and_a_form_upload_are_loaded_by_their_type(api: Api) -> None:
    name = _collection(api)
    filler = b" It checks the disk, the network and the permissions first." * 5
    markdown = (b"# Install\n\nRun the installer." + filler + b"\n\n## Linux\n\n"
                b"Use the tarball on Linux hosts." + filler + b"\n")
    r = api("POST", f"/v1/rag/collections/{name}/documents?filename=guide.md&id=guide",
            content=markdown, headers={"content-type": "text/markdown"})
    assert r.status_code == 200, r.text
    hit = _search(api, name, "tarball", mode="bm25")[0]
    assert hit["document_id"] == "guide" and hit["metadata"]["section"].endswith("Linux")

    r = api("POST", f"/v1/rag/collections/{name}/documents",
            files={"file": ("page.html", b"<html><head><title>Care</title></head><body>"
                            b"<h1>Watering</h1><p>Water ferns twice a week.</p></body></html>",
                            "text/html")},
            data={"id": "care", "metadata": '{"team": "garden"}'})
    assert r.status_code == 200, r.text
    hit = _search(api, name, "ferns", mode="bm25")[0]
    assert hit["document_id"] == "care" and hit["metadata"]["team"] == "garden"
    assert set(_documents(api, name)) == {"guide", "care"}


# -- teams ---------------------------------------------------------------------------------------
def test_a_team_never_sees_another_teams_collection_unless_it_is_shared(api: Api) -> None:
    red_team, blue_team = f"red{uuid.uuid4().hex[:6]}", f"blue{uuid.uuid4().hex[:6]}"
    red, blue = api.as_key(_team_key(api, red_team)), api.as_key(_team_key(api, blue_team))
    name = _collection(red)
    _ingest(red, name, DOCS)
    assert name not in {c["name"] for c in blue("GET", "/v1/rag/collections").json()["data"]}
    for method, path, body in (
            ("GET", "", None), ("GET", "/documents", None),
            ("GET", "/documents/space/mars", None),
            ("POST", "/search", {"query": "Mars"}), ("POST", "/documents", DOCS[0]),
            ("DELETE", "", None), ("PATCH", "", {"shared_with": ["*"]})):
        # 404, exactly as for a collection that does not exist: its name does not leak.
        _error(blue(method, f"/v1/rag/collections/{name}{path}", json=body), 404,
               "collection_not_found")
    for method, path in (("GET", ""), ("POST", "/search")):  # named with its owner, too
        _error(blue(method, f"/v1/rag/collections/{red_team}%2F{name}{path}",
                    json={"query": "Mars"}), 404)
    # Blue may have a collection of the same name; each team reads its own.
    _collection(blue, name=name)
    assert _search(blue, name, "Mars", mode="bm25") == []

    shared = _collection(red)
    _ingest(red, shared, DOCS)
    r = red("PATCH", f"/v1/rag/collections/{shared}", json={"shared_with": [blue_team]})
    assert r.status_code == 200 and r.json()["shared_with"] == [blue_team]
    seen = blue("GET", f"/v1/rag/collections/{shared}").json()
    assert seen["owner"] == red_team
    assert _search(blue, shared, "volcano", mode="bm25")[0]["document_id"] == "space/mars"
    assert _search(blue, f"{red_team}%2F{shared}", "hop", mode="bm25")[0][
        "document_id"] == "animals/kangaroo"
    # ... and reads it only: writing stays with the owner team.
    _error(blue("POST", f"/v1/rag/collections/{shared}/documents", json=DOCS[0]), 403)
    _error(blue("DELETE", f"/v1/rag/collections/{shared}/documents/space/mars"), 403)
    _error(blue("DELETE", f"/v1/rag/collections/{shared}"), 403)
    assert set(_documents(red, shared)) == {d["id"] for d in DOCS}
    # Unshared again: gone for blue.
    red("PATCH", f"/v1/rag/collections/{shared}", json={"shared_with": []})
    _error(blue("GET", f"/v1/rag/collections/{shared}"), 404)


def test_a_key_without_rag_permissions_is_refused(api: Api) -> None:
    team = f"view{uuid.uuid4().hex[:6]}"
    viewer = api.as_key(_team_key(api, team, role="viewer"))
    _error(viewer("GET", "/v1/rag/collections"), 403, "permission_denied")
    _error(viewer("POST", "/v1/rag/collections", json={"name": "x"}), 403)
    _error(api.as_key("sk-gw-not-a-key")("GET", "/v1/rag/collections"), 401)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_documents_are_refused_and_nothing_is_half_ingested(api: Api) -> None:
    name = _collection(api)
    _ingest(api, name, DOCS[:1])
    before = _documents(api, name)
    docs = f"/v1/rag/collections/{name}/documents"
    # An empty document among good ones: 400, and the good ones are not stored either.
    _error(api("POST", docs, json=[DOCS[1], {"id": "blank", "text": "  \n "}]), 400,
           "empty_document")
    _error(api("POST", docs, json=[]), 400)
    _error(api("POST", docs, json={"id": "x"}), 400)
    # A file type no loader reads; a malformed PDF; bytes that are not text.
    _error(api("POST", docs + "?filename=photo.png", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
               headers={"content-type": "image/png"}), 415, "unsupported_document")
    _error(api("POST", docs + "?filename=broken.pdf",
               content=b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\ntrailer garbage",
               headers={"content-type": "application/pdf"}), 415, "unsupported_document")
    _error(api("POST", docs, content=os.urandom(4096),
               headers={"content-type": "application/octet-stream"}), 415)
    _error(api("POST", docs, files={"file": ("a.pdf", b"%PDF-1.4 truncated", "application/pdf")}),
           415)
    _error(api("POST", docs, files={"other": ("a.txt", b"hello", "text/plain")}), 400)
    assert _documents(api, name) == before


def _raw_upload(api: Api, path: str, framing: str, body: Iterator[bytes]) -> tuple[bytes, int]:
    """Sends the request head, then body blocks only while the server has not answered;
    returns (the response's first bytes, body bytes sent). A client like httpx writes the
    whole body before it reads, which would hide whether the server read it all."""
    host, port = api.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    with sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nhost: {host}\r\n"
                     f"authorization: Bearer {api.key}\r\ncontent-type: text/plain\r\n"
                     f"{framing}\r\n\r\n".encode())
        sent = 0
        for block in body:
            if select.select([sock], [], [], 0.05)[0]:
                break  # the answer is there: stop sending
            try:
                sock.sendall(block)
            except OSError:
                break
            sent += len(block)
        answer = b""
        while not _complete(answer):
            got = sock.recv(65536)
            if not got:
                break
            answer += got
    return answer, sent


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head.lower())
    return bool(sep) and length is not None and len(body) >= int(length[1])


def test_an_upload_over_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    name = _collection(api)
    path = f"/v1/rag/collections/{name}/documents?filename=big.txt"
    hundred_mb = 100 * 1024 * 1024

    def blocks(framed: bool) -> Iterator[bytes]:
        block = b"a" * (256 * 1024)
        for _ in range(hundred_mb // len(block)):
            yield b"40000\r\n" + block + b"\r\n" if framed else block

    # 100 MB declared: refused on the header, before a byte of the body is read.
    answer, sent = _raw_upload(api, path, f"content-length: {hundred_mb}", blocks(False))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent < 4 * MAX_UPLOAD, sent
    # 100 MB streamed without a length: cut soon after it passes `rag.max_upload_bytes`.
    answer, sent = _raw_upload(api, path, "transfer-encoding: chunked", blocks(True))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"rag.max_upload_bytes" in answer
    assert sent < 8 * MAX_UPLOAD, sent
    # And through an ordinary client, which sends everything first: the same clean 413.
    _error(api("POST", path, content=b"a" * (MAX_UPLOAD + 1),
               headers={"content-type": "text/plain"}), 413, "request_too_large")
    assert _documents(api, name) == {}


def test_unknown_collections_and_bad_searches_are_clear_errors(api: Api) -> None:
    _error(api("GET", "/v1/rag/collections/no-such-kb"), 404, "collection_not_found")
    _error(api("POST", "/v1/rag/collections/no-such-kb/search", json={"query": "x"}), 404)
    _error(api("POST", "/v1/rag/collections/no-such-kb/documents", json=DOCS[0]), 404)
    _error(api("POST", "/v1/rag/collections", json={"name": "bad name!"}), 400)
    _error(api("POST", "/v1/rag/collections", json={"name": "ok", "chunker": "nope"}), 400)
    name = _collection(api)
    _ingest(api, name, DOCS)
    search = f"/v1/rag/collections/{name}/search"
    for body in ({"query": "   "}, {"query": "x", "k": 0}, {"query": "x", "k": 101},
                 {"query": "x", "filters": {"year": {"$regex": "20.*"}}},
                 {"query": "x", "filters": {"topic": {"$in": "food"}}},
                 {"query": "x", "filters": {"$or": []}},
                 {"query": "x", "mode": "psychic"}, {"query": "x", "mmr": 2}):
        _error(api("POST", search, json=body), 400)
    r = api("POST", search, json={"query": "x", "rerank": True})
    _error(r, 400)  # no `rag.rerank_model` configured
    assert api("PUT", f"/v1/rag/collections/{name}").status_code == 405


def test_the_api_is_in_the_openapi_document(api: Api) -> None:
    doc = httpx.get(api.url + "/openapi.json", timeout=30).json()
    paths = doc["paths"]
    assert set(paths["/v1/rag/collections"]) == {"get", "post"}
    assert set(paths["/v1/rag/collections/{collection}"]) == {"get", "patch", "delete"}
    assert set(paths["/v1/rag/collections/{collection}/documents"]) == {"get", "post"}
    assert set(paths["/v1/rag/collections/{collection}/documents/{document_id}"]) == {
        "get", "delete"}
    search = paths["/v1/rag/collections/{collection}/search"]["post"]
    assert search["x-permission"] == "rag:read" and "404" in search["responses"]
    ingest = paths["/v1/rag/collections/{collection}/documents"]["post"]
    assert {"413", "415"} <= set(ingest["responses"])
    assert "multipart/form-data" in ingest["requestBody"]["content"]
    assert "RagSearchIn" in doc["components"]["schemas"]


def test_when_no_document_can_be_embedded_the_upload_fails_and_leaks_nothing(
        openai_fake: FakeServer, tmp_path: Any) -> None:
    """The collection is made while the embedding alias works; then the alias's upstream
    fails with an error that names internal hosts and echoes a credential."""

    def config(model: str) -> dict[str, Any]:
        return {"models": {"emb": [{"model": f"openai/{model}", "api_base": openai_fake.url
                                    + "/v1", "api_key": "sk-up"}]},
                "server": {"master_key": MASTER},
                "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
                "storage": {"state_dir": str(tmp_path)}, "rag": {"embedder": "emb"}}

    with GatewayServer(config("text-embedding-3-small")) as srv:
        _collection(Api(srv.url), name="kb")
    with GatewayServer(config("embed-fail-leak")) as srv:
        api = Api(srv.url)
        r = api("POST", "/v1/rag/collections/kb/documents", json=DOCS)
        err = _error(r, 502, "ingestion_failed")
        assert "no document was stored (3 failed)" in err["message"]
        for secret in LEAK_SECRETS:
            assert secret not in r.text
        assert _documents(api, "kb") == {}
