"""The near cache in front of a shared store: entries kept a short while and never past their
own expiry, bounded in count, dropped on every replica by an invalidation (pub/sub), and a
store read that raced an invalidation never kept."""

from __future__ import annotations

import msgspec

from gatewise.cache.invalidation import Invalidator, Reach
from gatewise.cache.key import alias_prefix, scope_prefix
from gatewise.cache.near import NearCache
from gatewise.cache.store import Entry, ResponseCache
from gatewise.storage.memory import MemoryKV
from gatewise.storage.pubsub import MemoryPubSub
from gatewise.types.responses import ChatCompletion


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def encoded(text: str, expires_at: float = 0.0) -> bytes:
    c = msgspec.convert({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]},
                        ChatCompletion)
    return ResponseCache.encode(Entry(completion=c, expires_at=expires_at))


def content(entry: Entry | None) -> str | None:
    return None if entry is None else entry.completion.choices[0].message.content


class CountingKV(MemoryKV):
    """The shared store, counting reads (a near hit makes none)."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(*(() if clock is None else (clock,)))
        self.reads = 0

    async def get(self, key: str) -> bytes | None:
        self.reads += 1
        return await super().get(key)


KEY = alias_prefix("default/team:red", "gpt") + "a" * 64
OTHER_TEAM = alias_prefix("default/team:blue", "gpt") + "a" * 64


async def test_a_read_entry_is_served_from_process_until_the_near_ttl() -> None:
    clock, store = Clock(), CountingKV()
    cache = ResponseCache(store, near=NearCache(2.0, clock=clock))
    await store.set(KEY, encoded("far"))
    assert content(await cache.get(KEY)) == "far" and store.reads == 1
    await store.delete(KEY)  # behind the cache's back: the near copy still serves
    clock.now += 1.9
    assert content(await cache.get(KEY)) == "far" and store.reads == 1
    clock.now += 0.2
    assert await cache.get(KEY) is None and store.reads == 2


async def test_a_near_copy_never_outlives_the_entry() -> None:
    clock = Clock()
    store = CountingKV(clock)
    cache = ResponseCache(store, near=NearCache(2.0, clock=clock))
    await store.set(KEY, encoded("short-lived", expires_at=clock.now + 0.5), ttl=0.5)
    assert content(await cache.get(KEY)) == "short-lived"
    clock.now += 0.6
    assert await cache.get(KEY) is None
    assert store.reads == 2  # the near copy went with the entry's own expiry
    await cache.put(OTHER_TEAM, encoded("written"), ttl=0.3)  # a write is kept for its TTL
    clock.now += 0.4
    await store.delete(OTHER_TEAM)
    assert await cache.get(OTHER_TEAM) is None


async def test_the_near_cache_is_bounded_least_recently_used_first() -> None:
    near = NearCache(60.0, max_entries=2, clock=Clock())
    for k in "abc":
        near.keep(k, k.encode())
    assert near.get("a") is None and near.get("b") == b"b" and len(near) == 2
    near.keep("d", b"d")  # b was used last: c goes
    assert near.get("c") is None and near.get("b") == b"b"


async def test_a_read_that_raced_an_invalidation_is_not_kept() -> None:
    near = NearCache(60.0, clock=Clock())
    before = near.generation
    near.drop_keys(["elsewhere"])  # arrives while the store read is in flight
    near.keep(KEY, b"old", generation=before)
    assert near.get(KEY) is None
    near.keep(KEY, b"new", generation=near.generation)
    assert near.get(KEY) == b"new"


async def test_invalidations_reach_every_replica_and_stay_in_scope() -> None:
    shared, bus = MemoryKV(), MemoryPubSub()
    replicas = []
    for _ in range(2):
        near = NearCache(60.0, pubsub=bus, channel="t:cache")
        near.start()
        replicas.append((ResponseCache(shared, near=near),
                         Invalidator(shared, ["gpt"], near=near)))
    (a, inv_a), (b, _) = replicas
    await a.put(KEY, encoded("red"), 60, tags=["faq"])
    await a.put(OTHER_TEAM, encoded("blue"), 60, tags=["faq"])
    await inv_a.remember("default/team:red", "gpt")
    await inv_a.remember("default/team:blue", "gpt")
    for cache in (a, b):
        assert content(await cache.get(KEY)) == "red"
        assert content(await cache.get(OTHER_TEAM)) == "blue"
    assert b.near is not None and len(b.near) == 2
    assert await inv_a.by_key(KEY, Reach("red")) == 1
    assert await b.get(KEY) is None  # B's near copy went with the broadcast
    assert content(await b.get(OTHER_TEAM)) == "blue"  # another team's entry stays

    await a.put(KEY, encoded("red again"), 60, tags=["faq"])
    assert content(await b.get(KEY)) == "red again"
    assert await inv_a.by_tag("faq", Reach("red")) == 1
    assert await b.get(KEY) is None and content(await b.get(OTHER_TEAM)) == "blue"

    assert await inv_a.by_prefix(scope_prefix("default/team:blue"), Reach(None)) >= 1
    assert await b.get(OTHER_TEAM) is None
    for cache, _ in replicas:
        await cache.aclose()


async def test_after_pubsub_reconnects_everything_near_is_dropped() -> None:
    near = NearCache(60.0, pubsub=MemoryPubSub())
    near.keep(KEY, b"x")
    await near._on_connect(False)
    assert near.get(KEY) == b"x"
    await near._on_connect(True)  # messages may have been lost while away
    assert near.get(KEY) is None
    near.keep(KEY, b"y")
    near._on_message("from a newer version")
    assert near.get(KEY) is None


async def test_every_broadcast_fits_the_smallest_backend_message_and_still_reaches_all() -> None:
    """PostgreSQL NOTIFY carries under 8000 bytes: a long key list goes out as several
    messages that each stand alone, and a prefix too long for one message makes every
    replica drop everything (more than needed, never less)."""
    bus = MemoryPubSub()
    heard: list[str] = []
    bus.subscribe("t:cache", heard.append)
    a, b = NearCache(60.0, pubsub=bus, channel="t:cache"), NearCache(60.0, pubsub=bus,
                                                                     channel="t:cache")
    b.start()
    keys = [alias_prefix("default/team:red", "gpt") + f"{i:064x}" for i in range(200)]
    kept = alias_prefix("default/team:red", "gpt") + "f" * 64
    for key in [*keys, kept]:
        b.keep(key, b"v")
    await a.invalidate_keys(keys)
    assert len(heard) > 1 and all(len(m.encode()) <= 7999 for m in heard)
    assert all(b.get(key) is None for key in keys) and b.get(kept) == b"v"

    heard.clear()
    await a.invalidate_prefix("x" * 8000)
    assert heard == ["c"] and b.get(kept) is None
    await b.aclose()
