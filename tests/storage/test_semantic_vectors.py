"""The semantic cache's vectors on every key-value backend (memory, SQLite, Redis over both
clients, PostgreSQL): a replica that never saw a question finds the vector another replica
stored, and invalidating the scope's prefix drops the vectors with the entries."""

from __future__ import annotations

from typing import Any

from gatewise.cache.key import scope_prefix
from gatewise.cache.store import ResponseCache
from tests.storage.test_stores import kv, kv_backend  # noqa: F401  (fixtures)
from tests.unit.cache.test_semantic import cache, lookup, request, store_answer


async def test_replicas_share_vectors_on_every_backend(kv: Any) -> None:  # noqa: F811
    responses = ResponseCache(kv)
    writer, reader = cache(kv), cache(kv)
    await store_answer(writer, responses, request("How do I reset my password?"),
                       scope_prefix("t/team:a") + "k1")
    assert await lookup(reader, responses, request("how can I reset my password")) == \
        scope_prefix("t/team:a") + "k1"
    assert await kv.delete_prefix(scope_prefix("t/team:a")) >= 3  # entry, record, sets
    late = cache(kv)
    assert await lookup(late, responses, request("how can I reset my password")) is None
