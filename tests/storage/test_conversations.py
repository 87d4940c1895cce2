"""The conversation store, one suite over every backend: memory, SQLite, Redis, PostgreSQL.

Conversations are per scope (tenant), keep messages in order whatever the number of writers,
carry a summary and metadata, expire when idle, and go with retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gatewise.storage.conversations_memory import MemoryConversations
from gatewise.storage.conversations_sqlite import SQLiteConversations
from tests.storage.conftest import backend_details

Clock = Callable[[], float]


class Tick:
    """A clock the test moves; `now` starts at 1000."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _make(name: str, d: dict[str, Any], clock: Clock) -> Any:
    if name == "memory":
        return MemoryConversations(clock=clock)
    if name == "sqlite":
        path: Path = d["path"] / "conversations.db"
        return SQLiteConversations(path, clock=clock)
    if name == "redis":
        from gatewise.storage.conversations_redis import RedisConversations

        return RedisConversations(d["url"], prefix=d["prefix"], clock=clock)
    from gatewise.storage.conversations_postgres import PostgresConversations

    return PostgresConversations(d["url"], schema=d["schema"], clock=clock)


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture
def tick() -> Tick:
    return Tick()


@pytest.fixture
async def store(backend: tuple[str, dict[str, Any]], tick: Tick) -> AsyncIterator[Any]:
    s = _make(*backend, tick)
    yield s
    await s.aclose()


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


async def test_messages_keep_their_order_and_their_scope(store: Any) -> None:
    assert await store.append("t1", "c1", [user("a"), assistant("b")]) == 2
    assert await store.append("t1", "c1", [user("c")]) == 3
    await store.append("t2", "c1", [user("other tenant")])
    assert [m["content"] for m in await store.history("t1", "c1")] == ["a", "b", "c"]
    assert [m["content"] for m in await store.history("t1", "c1", start=1)] == ["b", "c"]
    assert [m["content"] for m in await store.history("t1", "c1", limit=1)] == ["c"]
    assert [m["content"] for m in await store.history("t2", "c1")] == ["other tenant"]
    assert await store.history("t3", "c1") == []


async def test_tool_calls_come_back_whole(store: Any) -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_balance", "arguments": "{\"account\": \"ACC-1\"}"}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "{\"balance\": 12.5}"}
    await store.append("t", "c", [user("balance?"), call, result, assistant("12.50")])
    assert await store.history("t", "c") == [user("balance?"), call, result, assistant("12.50")]


async def test_scopes_that_look_alike_never_share_a_conversation(store: Any) -> None:
    await store.append("a:b", "c", [user("one")])
    await store.append("a", "b:c", [user("two")])
    assert [m["content"] for m in await store.history("a:b", "c")] == ["one"]
    assert [m["content"] for m in await store.history("a", "b:c")] == ["two"]


async def test_info_list_summary_and_metadata(store: Any, tick: Tick) -> None:
    assert await store.info("t", "c1") is None
    await store.append("t", "c1", [user("a"), assistant("b")], metadata={"assistant": "bank"})
    tick.now += 10
    await store.append("t", "c2", [user("x")])
    tick.now += 10
    await store.append("t", "c1", [user("c")])
    await store.append("other", "c3", [user("y")])
    info = await store.info("t", "c1")
    assert (info.id, info.scope, info.turns, info.created, info.updated) == ("c1", "t", 3,
                                                                              1000.0, 1020.0)
    assert info.metadata == {"assistant": "bank"} and info.summary is None
    assert [i.id for i in await store.list("t")] == ["c1", "c2"]
    assert [i.id for i in await store.list("t", limit=1)] == ["c1"]
    await store.set_summary("t", "c1", "The user said a and c.", 2)
    info = await store.info("t", "c1")
    assert (info.summary, info.summarised) == ("The user said a and c.", 2)
    await store.set_summary("t", "missing", "nothing", 1)
    assert await store.info("t", "missing") is None


async def test_delete_takes_messages_and_summary(store: Any) -> None:
    await store.append("t", "c", [user("a")])
    await store.set_summary("t", "c", "s", 1)
    await store.append("u", "c", [user("kept")])
    assert await store.delete("t", "c") is True
    assert await store.delete("t", "c") is False
    assert await store.info("t", "c") is None and await store.history("t", "c") == []
    assert [i.id for i in await store.list("t")] == []
    await store.append("t", "c", [user("fresh")])
    info = await store.info("t", "c")
    assert info.turns == 1 and info.summary is None
    assert len(await store.history("u", "c")) == 1


async def test_idle_conversations_expire_and_each_turn_renews(
        backend: tuple[str, dict[str, Any]], tick: Tick) -> None:
    """On the injected clock; Redis expires keys on its own clock, so there the test waits."""
    import time

    real = backend[0] == "redis"
    store = _make(*backend, time.time if real else tick)

    async def wait(seconds: float) -> None:
        if real:
            await asyncio.sleep(seconds)
        else:
            tick.now += seconds

    try:
        await store.append("t", "gone", [user("a")], ttl=1.0)
        await store.append("t", "kept", [user("a")], ttl=1.0)
        await wait(0.6)
        await store.append("t", "kept", [user("b")], ttl=1.0)
        await wait(0.6)
        assert await store.info("t", "gone") is None
        assert await store.history("t", "gone") == []
        assert [i.id for i in await store.list("t")] == ["kept"]
        assert (await store.info("t", "kept")).turns == 2
        await store.append("t", "gone", [user("new")], ttl=1.0)  # a new conversation
        assert [m["content"] for m in await store.history("t", "gone")] == ["new"]
    finally:
        await store.aclose()


async def test_retention_deletes_idle_conversations_in_batches(store: Any, tick: Tick) -> None:
    for i in range(5):
        await store.append("t", f"old{i}", [user("x")])
    tick.now = 5000.0
    await store.append("t", "recent", [user("y")])
    assert await store.delete_before(2000.0, limit=3) == 3
    assert await store.delete_before(2000.0, limit=3) == 2
    assert await store.delete_before(2000.0, limit=3) == 0
    assert [i.id for i in await store.list("t")] == ["recent"]


async def test_concurrent_appends_lose_nothing(store: Any) -> None:
    await asyncio.gather(*(store.append("t", "c", [user(f"u{i}"), assistant(f"a{i}")])
                           for i in range(20)))
    history = await store.history("t", "c")
    assert len(history) == 40 and (await store.info("t", "c")).turns == 40
    for i in range(0, 40, 2):  # every turn stays whole: its answer right after it
        assert history[i]["content"][1:] == history[i + 1]["content"][1:]
