"""`SemanticCache` on its own (a table embedder, so similarities are chosen by the test) and
through the library: what is compared (the last user turn, in the same context only), the
threshold per alias, the guard, replicas sharing vectors through one store, expiry, a failing
embedder (a miss, never an error), and a semantic hit's header and ledger mark."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pytest

from gatewise import Gateway
from gatewise.cache.semantic import (
    SemanticCache,
    context_fingerprint,
    embedding_text,
    query_text,
)
from gatewise.cache.store import Entry, ResponseCache
from gatewise.config.loader import parse_config, resolve_config
from gatewise.config.schema import CacheAliasConfig, SemanticCacheConfig
from gatewise.storage.memory import MemoryKV
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion

# Three directions; "near" is at cosine 0.95 from "base", "far" at 0.6.
_BASE = np.array([1.0, 0.0, 0.0], dtype=np.float32)
_NEAR = np.array([0.95, np.sqrt(1 - 0.95**2), 0.0], dtype=np.float32)
_FAR = np.array([0.6, 0.8, 0.0], dtype=np.float32)


class TableEmbedder:
    """Vectors by text, as the cache embeds it (`embedding_text`: no greeting, thanks or
    trailing punctuation); unknown texts point away from everything."""

    name = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = {embedding_text(k): v for k, v in table.items()}
        self.batches: list[list[str]] = []
        self.calls = 0
        self.fail = False

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.batches.append(list(texts))
        if self.fail:
            raise RuntimeError("embedder down")
        return np.stack([self.table.get(t, np.array([0.0, 0.0, 1.0], dtype=np.float32))
                         for t in texts])

    async def aclose(self) -> None:
        return None


TABLE = {"How do I reset my password?": _BASE,
         "how can I reset my password": _NEAR,
         "How do I change my avatar?": _FAR,
         "Reset password for order 1234": _BASE,
         "Reset password for order 1243": _NEAR}


def request(text: str, system: str | None = None, **params: Any) -> ChatRequest:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}]
    return msgspec.convert({"model": "m", "messages": messages, **params}, ChatRequest)


def completion(text: str) -> bytes:
    c = msgspec.convert({"id": "x", "created": 0, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text},
         "finish_reason": "stop"}]}, ChatCompletion)
    return ResponseCache.encode(Entry(completion=c))


def cache(store: MemoryKV | None = None, embedder: TableEmbedder | None = None,
          **aliases: CacheAliasConfig) -> SemanticCache:
    return SemanticCache(SemanticCacheConfig(enabled=True, threshold=0.9, refresh_s=0.0),
                         aliases, embedder or TableEmbedder(TABLE), store=store)


async def store_answer(sem: SemanticCache, responses: ResponseCache, req: ChatRequest,
                       key: str, scope: str = "t/team:a") -> None:
    q = sem.query(scope, "m", req)
    assert q is not None
    await responses.put(key, completion(f"answer to {key}"), 60.0)
    await sem.remember(q, key, 60.0)


async def lookup(sem: SemanticCache, responses: ResponseCache, req: ChatRequest,
                 scope: str = "t/team:a", alias: str = "m") -> str | None:
    q = sem.query(scope, alias, req)
    if q is None:
        return None
    hit = await sem.lookup(q, responses)
    return None if hit is None else hit.key


async def test_a_paraphrase_above_the_threshold_is_served_the_stored_answer() -> None:
    sem, responses = cache(), ResponseCache(MemoryKV())
    await store_answer(sem, responses, request("How do I reset my password?"), "k1")
    assert await lookup(sem, responses, request("how can I reset my password")) == "k1"
    assert await lookup(sem, responses, request("How do I change my avatar?")) is None


async def test_a_threshold_per_alias_overrides_the_default() -> None:
    sem = cache(strict=CacheAliasConfig(semantic_threshold=0.99),
                off=CacheAliasConfig(semantic=False))
    responses = ResponseCache(MemoryKV())
    for alias in ("strict", "off"):
        q = sem.query("t/team:a", alias, request("How do I reset my password?"))
        if q is not None:
            await responses.put(alias, completion("x"), 60.0)
            await sem.remember(q, alias, 60.0)
    assert sem.query("t/team:a", "off", request("anything")) is None
    assert await lookup(sem, responses, request("how can I reset my password"),
                        alias="strict") is None


async def test_the_guard_refuses_a_close_vector_with_another_number() -> None:
    sem, responses = cache(), ResponseCache(MemoryKV())
    await store_answer(sem, responses, request("Reset password for order 1234"), "k1")
    assert await lookup(sem, responses, request("Reset password for order 1243")) is None


async def test_only_the_same_context_tenant_and_turn_kind_are_candidates() -> None:
    sem, responses = cache(), ResponseCache(MemoryKV())
    await store_answer(sem, responses, request("How do I reset my password?", "Be brief."), "k1")
    para = "how can I reset my password"
    assert await lookup(sem, responses, request(para, "Be brief.")) == "k1"
    assert await lookup(sem, responses, request(para, "Be verbose.")) is None
    assert await lookup(sem, responses, request(para, "Be brief.", seed=3)) is None
    assert await lookup(sem, responses, request(para, "Be brief."), scope="t/team:b") is None
    assert await lookup(sem, responses, request(para, "Be brief."), alias="other") is None


def test_what_is_compared_is_the_last_user_turn_and_the_rest_is_context() -> None:
    assert query_text(request("  hello  ")) == "hello"
    tool_turn = msgspec.convert({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "42"}]}, ChatRequest)
    assert query_text(tool_turn) is None
    assert context_fingerprint(request("a")) == context_fingerprint(request("b"))
    assert context_fingerprint(request("a", "sys")) != context_fingerprint(request("a"))
    assert context_fingerprint(request("a", temperature=0)) != context_fingerprint(
        request("a", temperature=0.5))


async def test_replicas_share_vectors_through_the_store() -> None:
    shared = MemoryKV()
    responses = ResponseCache(shared)
    writer, reader = cache(shared), cache(shared)
    assert await lookup(reader, responses, request("how can I reset my password")) is None
    await store_answer(writer, responses, request("How do I reset my password?"), "k1")
    assert await lookup(reader, responses, request("how can I reset my password")) == "k1"


async def test_an_expired_or_invalidated_entry_is_a_miss() -> None:
    sem, kv = cache(), MemoryKV()
    responses = ResponseCache(kv)
    await store_answer(sem, responses, request("How do I reset my password?"), "k1")
    await kv.delete("k1")
    assert await lookup(sem, responses, request("how can I reset my password")) is None


async def test_a_failing_embedder_is_a_miss_not_an_error() -> None:
    embedder = TableEmbedder(TABLE)
    sem, responses = cache(embedder=embedder), ResponseCache(MemoryKV())
    await store_answer(sem, responses, request("How do I reset my password?"), "k1")
    embedder.fail = True
    assert await lookup(sem, responses, request("how can I reset my password")) is None


@pytest.fixture
async def gw() -> Any:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo", "prices": {"input": 1.0, "output": 2.0}}]},
        "storage": {"database": "memory"},
        "cache": {"enabled": True, "semantic": {"enabled": True}}})
    async with Gateway(resolve_config(cfg, None, {}, w)) as g:
        assert g.cache is not None and g.cache.semantic is not None
        g.cache.semantic.embedder = TableEmbedder(TABLE)  # type: ignore[assignment]
        yield g


async def test_a_semantic_hit_through_the_library_costs_nothing_and_is_marked(gw: Any) -> None:
    first = await gw.chat("How do I reset my password?", model="m", temperature=0)
    hit = await gw.chat("how can I reset my password", model="m", temperature=0)
    assert hit.content == first.content  # the stored answer, not an echo of the new text
    assert hit.info.cost_usd == 0.0 and hit.info.attempts == 0
    assert hit.info.usage.prompt_tokens_details.cached_tokens == hit.info.usage.prompt_tokens
    other = await gw.chat("How do I change my avatar?", model="m", temperature=0)
    assert other.info.attempts == 1
    await gw.accounting.ledger.flush()
    rows = await gw.stores.ledger.query()
    assert [r.extra.get("cache") for r in rows] == [None, "semantic", None]


def _gateway(embedder: str) -> Gateway:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo"}], "emb": [{"model": "fake/embed"}]},
        "storage": {"database": "memory"},
        "cache": {"enabled": True, "semantic": {"enabled": True, "embedder": embedder}}})
    return Gateway(resolve_config(cfg, None, {}, w))


async def test_an_embedding_alias_can_be_the_embedder() -> None:
    async with _gateway("emb") as gw:
        first = await gw.chat("What is a vector?", model="m", temperature=0)
        # the same text with other whitespace: another exact key, the same embedded text
        hit = await gw.chat("  What is a vector?\n", model="m", temperature=0)
        assert hit.content == first.content and hit.info.attempts == 0


def test_an_embedder_that_is_neither_local_nor_an_alias_is_a_config_error() -> None:
    from gatewise.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cache\.semantic\.embedder"):
        _gateway("nope")


async def test_a_cold_replica_reads_a_backlog_in_the_background() -> None:
    shared = MemoryKV()
    responses = ResponseCache(shared)
    writer, reader = cache(shared), cache(shared)
    rng = np.random.default_rng(5)
    for i in range(700):
        q = writer.query("t/team:a", "m", request(f"question number {i}"))
        assert q is not None
        v = rng.standard_normal(3).astype(np.float32)
        q.vector = v / np.linalg.norm(v)
        await writer.remember(q, f"k{i}", 60.0)
    await lookup(reader, responses, request("How do I reset my password?"))
    (space,) = reader._spaces.values()
    assert space.index is not None and 0 < len(space.index) < 700  # the lookup did not wait
    await reader._background.drain()
    assert len(space.index) == 700


@pytest.mark.parametrize(("typed", "embedded"), [
    ("Hi, how do I reset my password? Thanks!", "how do I reset my password"),
    ("Hello there! Please cancel my order 1234.", "cancel my order 1234"),
    ("Is it safe? Thank you so much!!", "Is it safe"),
    ("What are the Thanksgiving dates?", "What are the Thanksgiving dates"),
    ("Thanks", "Thanks"),  # nothing but a thanks: kept whole
])
def test_greetings_thanks_and_trailing_punctuation_are_not_embedded(typed: str,
                                                                     embedded: str) -> None:
    assert embedding_text(typed) == embedded


async def test_a_retyped_repeat_lands_on_its_original() -> None:
    sem, responses = cache(), ResponseCache(MemoryKV())
    await store_answer(sem, responses, request("How do I change my avatar?"), "k1")
    assert await lookup(sem, responses, request("Hello! How do I change my avatar? Thank you")) \
        == "k1"


async def test_concurrent_lookups_are_embedded_in_one_batch() -> None:
    embedder = TableEmbedder(TABLE)
    sem, responses = cache(embedder=embedder), ResponseCache(MemoryKV())
    await store_answer(sem, responses, request("How do I reset my password?"), "k1")
    embedder.batches.clear()
    texts = ["how can I reset my password", "How do I change my avatar?",
             "Reset password for order 1234"]
    found = await asyncio.gather(*(lookup(sem, responses, request(t)) for t in texts))
    assert found == ["k1", None, None]  # 1234 is another question (numbers differ)
    assert [len(b) for b in embedder.batches] == [3]
    embedder.fail = True
    assert await lookup(sem, responses, request("how can I reset my password")) is None
    await sem.aclose()
