"""The in-process store: TTL on an injected clock, least recently used eviction within a
priority, size caps in entries and bytes, tags."""

from __future__ import annotations

import msgspec

from gatewise.cache.store import Entry, LRUStore, ResponseCache
from gatewise.storage.memory import MemoryKV
from gatewise.types.responses import ChatCompletion


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    store = LRUStore(10, clock=clock)
    await store.set("a", b"1", ttl=10)
    await store.set("forever", b"2")
    clock.now += 9.9
    assert await store.get("a") == b"1"
    clock.now += 0.2
    assert await store.get("a") is None
    assert await store.get("forever") == b"2"
    await store.set("b", b"3", ttl=1)
    clock.now += 5
    assert await store.purge_expired() == 1 and len(store) == 1


async def test_the_least_recently_used_entry_goes_first() -> None:
    store = LRUStore(3)
    for k in "abc":
        await store.set(k, k.encode())
    assert await store.get("a") == b"a"  # a is now the most recently used
    await store.set("d", b"d")
    assert await store.get("b") is None
    assert [await store.get(k) for k in "acd"] == [b"a", b"c", b"d"]
    assert store.evictions == 1 and len(store) == 3
    assert await store.delete_prefix("c") == 1 and await store.delete("a")


def entry(text: str) -> Entry:
    c = msgspec.convert({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]},
                        ChatCompletion)
    return Entry(completion=c, cost_usd=0.25, deployment="d1")


async def test_entries_round_trip_and_oversized_ones_are_not_stored() -> None:
    cache = ResponseCache(MemoryKV(), max_entry_bytes=1000)
    assert await cache.put("k", ResponseCache.encode(entry("short")), 60)
    got = await cache.get("k")
    assert got is not None and got.completion.choices[0].message.content == "short"
    assert got.cost_usd == 0.25 and got.deployment == "d1"
    assert not await cache.put("big", ResponseCache.encode(entry("x" * 2000)), 60)
    assert await cache.get("big") is None


async def test_a_broken_store_is_a_miss_not_a_failure() -> None:
    class Broken(MemoryKV):
        async def get(self, key: str) -> bytes | None:
            raise ConnectionError("down")

        async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            raise ConnectionError("down")

    cache = ResponseCache(Broken())
    assert await cache.get("k") is None
    assert not await cache.put("k", b"x", 1)
    raw = MemoryKV()
    await raw.set("cache:v1:junk", b"\xff not msgpack")
    assert await ResponseCache(raw).get("cache:v1:junk") is None


async def test_low_priority_entries_are_evicted_first() -> None:
    store = LRUStore(3)
    await store.set("high", b"h", priority=2)
    await store.set("low", b"l", priority=0)
    await store.set("normal", b"n")
    await store.get("low")  # recently used, but low priority still goes first
    await store.set("new", b"x")
    assert await store.get("low") is None
    await store.set("newer", b"y")  # then the least recently used normal one
    assert await store.get("normal") is None
    assert await store.get("high") == b"h" and len(store) == 3


async def test_the_byte_cap_evicts_until_the_values_fit() -> None:
    store = LRUStore(100, max_bytes=10)
    for k in "abc":
        await store.set(k, b"1234")
    assert await store.get("a") is None and len(store) == 2 and store.size_bytes == 8
    await store.set("b", b"12")  # replacing an entry gives its bytes back
    assert store.size_bytes == 6


async def test_a_tagged_entry_is_indexed_under_its_scope_for_as_long_as_it_lives() -> None:
    from gatewise.cache.key import tag_key

    store = LRUStore(10)
    cache = ResponseCache(store)
    key = "cache:v1:" + "a" * 16 + ":" + "b" * 16 + ":" + "c" * 64
    assert await cache.put(key, ResponseCache.encode(entry("x")), 60, tags=("faq", "v2"),
                           priority="low")
    assert await store.members(tag_key(key, "faq")) == [key]
    assert tag_key(key, "faq").startswith("cache:v1:" + "a" * 16 + ":tag:")
