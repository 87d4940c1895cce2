"""Answers from a knowledge base through `/v1/chat/completions` with the official `openai` SDK,
on SQLite and on PostgreSQL, with the real local embedding model (all-MiniLM-L6-v2) doing the
embedding: `metadata.rag` names the collection, the upstream receives the retrieved sources,
and the answer comes back with `citations` (`completion.model_extra`) that resolve to chunks
the collection really holds, streamed or not. A collection the key's team cannot see is a 404
before the upstream is asked.

The fake upstream echoes the last user turn, so a question that quotes a source with its
marker gives an answer the citation and groundedness checks can verify deterministically.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import require_pg

pytest.importorskip("onnxruntime")

MASTER = "sk-gatewise-test-rag-sdk-master"
DOCS = [
    {"id": "kangaroo", "text": "Kangaroos hop on their strong hind legs across the outback.",
     "metadata": {"title": "Kangaroos", "topic": "animals"}},
    {"id": "mars", "text": "Olympus Mons on Mars is the tallest volcano in the solar system.",
     "metadata": {"title": "Mars", "topic": "space"}},
    {"id": "risotto", "text": "Risotto is cooked by adding warm broth to arborio rice slowly.",
     "metadata": {"title": "Risotto", "topic": "food"}},
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, openai_fake: FakeServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    base = openai_fake.url + "/v1"
    storage: dict[str, Any] = {"state_dir": str(tmp_path_factory.mktemp("rag-sdk"))}
    schema = f"gw_ragsdk_{os.getpid()}_{os.urandom(4).hex()}"
    pg_url = require_pg() if request.param == "postgres" else None
    if pg_url is not None:
        storage.update(database="postgres", postgres_url=pg_url, postgres_schema=schema)
    config = {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": base,
                            "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "storage": storage,
        "rag": {"embedder": "local", "scan_injection": "off"},
    }
    try:
        with GatewayServer(config) as srv:
            yield srv
    finally:
        if pg_url is not None:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _http(srv: GatewayServer, method: str, path: str, key: str = MASTER,
          **kw: Any) -> httpx.Response:
    return httpx.request(method, srv.url + path, headers={"authorization": f"Bearer {key}"},
                         timeout=120, **kw)


@pytest.fixture(scope="module")
def collection(server: GatewayServer) -> str:
    name = f"kb-{uuid.uuid4().hex[:8]}"
    assert _http(server, "POST", "/v1/rag/collections", json={"name": name}).status_code == 201
    r = _http(server, "POST", f"/v1/rag/collections/{name}/documents", json=DOCS)
    assert r.status_code == 200, r.text
    return name


def _client(srv: GatewayServer, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)


def _chunks(srv: GatewayServer, name: str) -> dict[str, str]:
    """chunk id → text, as search finds them (every document, any query)."""
    r = _http(srv, "POST", f"/v1/rag/collections/{name}/search",
              json={"query": "kangaroo volcano risotto", "k": 50, "mode": "bm25"})
    return {h["chunk_id"]: h["text"] for h in r.json()["data"]}


def _upstream_text(upstream: FakeServer) -> str:
    chats = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    return json.dumps(chats[-1].json()["messages"])


def test_semantic_search_with_the_local_model_finds_a_paraphrase(server: GatewayServer,
                                                                 collection: str) -> None:
    r = _http(server, "POST", f"/v1/rag/collections/{collection}/search",
              json={"query": "which planet has the highest mountain", "k": 1,
                    "mode": "vector"})
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["document_id"] == "mars"


def test_an_answer_cites_chunks_the_collection_holds(server: GatewayServer, collection: str,
                                                     openai_fake: FakeServer) -> None:
    question = "Olympus Mons on Mars is the tallest volcano in the solar system [1]"
    with _client(server) as c:
        completion = c.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": question}],
            metadata={"rag": collection})
    assert "Olympus Mons" in _upstream_text(openai_fake)  # the source reached the model
    extra = completion.model_extra or {}
    citations = extra["citations"]
    assert citations, extra
    held = _chunks(server, collection)
    for cite in citations:
        assert cite["chunk_id"] in held
        assert cite["document_id"] == "mars"
    assert "Olympus Mons" in held[citations[0]["chunk_id"]]


def test_metadata_rag_as_an_object_and_a_streamed_answer(server: GatewayServer,
                                                         collection: str) -> None:
    spec = json.dumps({"collection": collection, "k": 2, "filters": {"topic": "animals"}})
    question = "Kangaroos hop on their strong hind legs across the outback [1]"
    with _client(server) as c:
        stream = c.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": question}],
            metadata={"rag": spec}, stream=True)
        chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "Kangaroos" in text
    cited = [cite for ch in chunks for cite in (ch.model_extra or {}).get("citations") or []]
    assert cited and {cite["document_id"] for cite in cited} == {"kangaroo"}


def test_a_collection_the_team_cannot_see_is_a_404_before_the_upstream(
        server: GatewayServer, collection: str, openai_fake: FakeServer) -> None:
    team = f"other{uuid.uuid4().hex[:6]}"
    _http(server, "POST", "/admin/teams", json={"id": team})
    key = _http(server, "POST", "/admin/keys",
                json={"name": "o", "team": team}).json()["key"]
    before = len(openai_fake.requests)
    with _client(server, key) as c:
        for name in (collection, "no-such-collection"):
            with pytest.raises(openai.NotFoundError) as info:
                c.chat.completions.create(model="gpt", metadata={"rag": name},
                                          messages=[{"role": "user", "content": "Mars?"}])
            assert info.value.code == "collection_not_found"
    assert len(openai_fake.requests) == before
