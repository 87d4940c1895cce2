"""One suite run against every backend of each storage protocol: memory, SQLite, Redis (KV,
counters, windows) and PostgreSQL. Redis and PostgreSQL tests skip without the service
(fail under CI=true); each gets its own key prefix or schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise.storage.base import UsageRecord
from gatewise.storage.memory import (
    MemoryCounters,
    MemoryKV,
    MemoryLedger,
    MemoryWindow,
)
from gatewise.storage.sqlite import (
    SQLiteCounters,
    SQLiteKV,
    SQLiteLedger,
    SQLiteWindow,
)
from tests.storage.conftest import backend_details

ALL = ["memory", "sqlite", "redis", "postgres"]
DATABASES = ["memory", "sqlite", "postgres"]


def _make(kind: str, name: str, d: dict[str, Any], n: int = 0) -> Any:
    """Store `kind` on backend `name`; `n` tells replicas apart (they share state)."""
    if name == "memory":
        return {"kv": MemoryKV, "counters": MemoryCounters, "windows": MemoryWindow,
                "ledger": MemoryLedger}[kind]()
    if name == "sqlite":
        path: Path = d["path"] / f"{kind}.db"
        return {"kv": SQLiteKV, "counters": SQLiteCounters, "windows": SQLiteWindow,
                "ledger": SQLiteLedger}[kind](path)
    if name == "redis":
        from gatewise.storage.redis import RedisCounters, RedisKV, RedisWindow

        cls = {"kv": RedisKV, "counters": RedisCounters, "windows": RedisWindow}[kind]
        return cls(d["url"], prefix=d["prefix"])
    if name == "redis-lean":  # the scripts over the lean RESP client, as the gateway runs them
        from gatewise.storage.redis import RedisCounters, RedisKV, RedisWindow
        from gatewise.storage.resp import RespClient

        lean = {"kv": RedisKV, "counters": RedisCounters, "windows": RedisWindow}[kind]
        return lean(d["url"], prefix=d["prefix"], fast=RespClient(d["url"]), own_fast=True)
    from gatewise.storage import postgres as pg

    cls = {"kv": pg.PostgresKV, "counters": pg.PostgresCounters, "windows": pg.PostgresWindow,
           "ledger": pg.PostgresLedger}[kind]
    return cls(d["url"], schema=d["schema"])


@pytest.fixture(params=[*ALL, "redis-lean"])
def kv_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture(params=[*ALL, "redis-lean"])
def counters_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture(params=[*ALL, "redis-lean"])
def windows_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture(params=DATABASES)
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


async def _store(kind: str, backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    store = _make(kind, *backend)
    yield store
    await store.aclose()


@pytest.fixture
async def kv(kv_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    async for s in _store("kv", kv_backend):
        yield s


@pytest.fixture
async def counters(counters_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    async for s in _store("counters", counters_backend):
        yield s


@pytest.fixture
async def counter_replicas(counters_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[list[Any]]:
    """Two store objects on the same shared state (two replicas; one object for memory)."""
    name, d = counters_backend
    first = _make("counters", name, d)
    stores = [first, first if name == "memory" else _make("counters", name, d, 1)]
    yield stores
    for s in {id(s): s for s in stores}.values():
        await s.aclose()


@pytest.fixture
async def windows(windows_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    async for s in _store("windows", windows_backend):
        yield s


@pytest.fixture
async def ledger(db_backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    async for s in _store("ledger", db_backend):
        yield s


# -- key-value -------------------------------------------------------------------------------

async def test_kv_round_trip_and_delete(kv: Any) -> None:
    await kv.set("tenant:a", b"1")
    assert await kv.get("tenant:a") == b"1"
    await kv.set("tenant:a", b"\x00\xff2")
    assert await kv.get("tenant:a") == b"\x00\xff2"
    assert await kv.delete("tenant:a") is True
    assert await kv.get("tenant:a") is None
    assert await kv.delete("tenant:a") is False


async def test_kv_entries_expire(kv: Any) -> None:
    await kv.set("k", b"v", ttl=0.1)
    await kv.set("forever", b"v")
    assert await kv.get("k") == b"v"
    await asyncio.sleep(0.15)
    assert await kv.get("k") is None
    assert await kv.get("forever") == b"v"


async def test_kv_delete_by_prefix_leaves_other_tenants(kv: Any) -> None:
    for k in ("t1:cache:a", "t1:cache:b", "t1%:cache:c", "t1*:cache:d", "t2:cache:a"):
        await kv.set(k, b"x")
    assert await kv.delete_prefix("t1:cache:") == 2
    assert await kv.get("t2:cache:a") == b"x" and await kv.get("t1%:cache:c") == b"x"
    assert await kv.get("t1*:cache:d") == b"x"
    assert await kv.delete_prefix("t1*:") == 1


async def test_kv_sets_collect_members_once(kv: Any) -> None:
    await kv.add_members("tag:a", ["k1", "k2"], ttl=60)
    await kv.add_members("tag:a", ["k2", "k3"], ttl=60)
    assert sorted(await kv.members("tag:a")) == ["k1", "k2", "k3"]
    assert await kv.members("tag:none") == []
    assert await kv.delete("tag:a") is True
    assert await kv.members("tag:a") == []


async def test_kv_a_set_lives_as_long_as_its_longest_ttl(kv: Any) -> None:
    await kv.add_members("long", ["a"], ttl=60)
    await kv.add_members("long", ["b"], ttl=0.1)   # never shortens the set's life
    await kv.add_members("short", ["a"], ttl=0.1)
    await kv.add_members("forever", ["a"], ttl=0.1)
    await kv.add_members("forever", ["b"])
    await asyncio.sleep(0.2)
    assert sorted(await kv.members("long")) == ["a", "b"]
    assert await kv.members("short") == []
    assert sorted(await kv.members("forever")) == ["a", "b"]
    await kv.add_members("short", ["c"], ttl=60)  # an expired set starts afresh
    assert await kv.members("short") == ["c"]


async def test_kv_fields_add_up(kv: Any) -> None:
    await kv.incr_fields("stats:t1", {"hits": 1, "usd": 0.25})
    await kv.incr_fields("stats:t1", {"hits": 2, "misses": 1})
    assert await kv.fields("stats:t1") == {"hits": 3.0, "usd": 0.25, "misses": 1.0}
    assert await kv.fields("stats:none") == {}


async def test_kv_delete_prefix_takes_sets_and_fields_too(kv: Any) -> None:
    await kv.set("c:1:v", b"x")
    await kv.add_members("c:1:tag", ["c:1:v"])
    await kv.incr_fields("c:1:stats", {"n": 1})
    await kv.set("c:2:v", b"x")
    assert await kv.delete_prefix("c:1:") == 3
    assert await kv.members("c:1:tag") == [] and await kv.fields("c:1:stats") == {}
    assert await kv.get("c:2:v") == b"x"


async def test_kv_purge_removes_what_expired(kv: Any) -> None:
    await kv.set("gone", b"x", ttl=0.1)
    await kv.add_members("gone-set", ["x"], ttl=0.1)
    await kv.set("kept", b"x", ttl=60)
    await asyncio.sleep(0.15)
    purged = await kv.purge_expired()
    assert purged in (0, 2)  # Redis expires keys itself (0); the others purge both
    assert await kv.get("gone") is None and await kv.members("gone-set") == []
    assert await kv.get("kept") == b"x"


async def test_kv_trim_keeps_the_latest_to_expire_under_the_prefix_only(kv: Any) -> None:
    """The shared cache's size cap: values under the prefix beyond `keep` go, soonest to
    expire first (no expiry is latest); sets, counters and other prefixes are not counted."""
    for i in range(6):
        await kv.set(f"c:v1:e{i}", b"x", ttl=100 + i)
    await kv.set("c:v1:forever", b"x")
    await kv.add_members("c:v1:tag", ["e0"], ttl=100)
    await kv.incr_fields("c:v1:stats", {"hits": 1})
    await kv.set("other:e", b"x", ttl=1)
    assert await kv.trim("c:v1:", 3) == 4
    assert [i for i in range(6) if await kv.get(f"c:v1:e{i}") is not None] == [4, 5]
    assert await kv.get("c:v1:forever") == b"x"
    assert await kv.members("c:v1:tag") == ["e0"]
    assert await kv.fields("c:v1:stats") == {"hits": 1}
    assert await kv.get("other:e") == b"x"
    assert await kv.trim("c:v1:", 3) == 0


# -- counters ----------------------------------------------------------------------------------

async def test_reserve_is_all_or_nothing_at_the_limit(counters: Any) -> None:
    r1 = await counters.reserve("budget", 6, limit=10)
    assert r1 is not None
    assert await counters.reserve("budget", 5, limit=10) is None
    assert await counters.value("budget") == 6
    assert await counters.settle(r1, 2) == 2
    r2 = await counters.reserve("budget", 8, limit=10)
    assert r2 is not None and await counters.release(r2) == 2


async def test_settle_and_release_are_idempotent(counters: Any) -> None:
    r = await counters.reserve("b", 5, limit=100)
    assert r is not None
    assert await counters.settle(r, 3) == 3
    assert await counters.settle(r, 3) == 3       # a retried settle changes nothing
    assert await counters.release(r) == 3         # nor does a release after the settle
    r2 = await counters.reserve("b", 4, limit=100)
    assert r2 is not None
    assert await counters.release(r2) == 3
    assert await counters.release(r2) == 3
    assert await counters.value("b") == 3


async def test_settle_may_exceed_the_limit_with_the_real_cost(counters: Any) -> None:
    r = await counters.reserve("b", 5, limit=10)
    assert r is not None and await counters.settle(r, 12.5) == 12.5
    assert await counters.reserve("b", 0.01, limit=10) is None


async def test_a_period_expires_with_its_reservations(counters: Any) -> None:
    r = await counters.reserve("day:1", 4, limit=10, ttl=0.2)
    assert r is not None and await counters.value("day:1") == 4
    await asyncio.sleep(0.3)
    assert await counters.value("day:1") == 0
    assert await counters.settle(r, 1) == 0      # a late settle does not leak into the new period
    assert await counters.value("day:1") == 0
    r2 = await counters.reserve("day:1", 10, limit=10, ttl=0.2)
    assert r2 is not None


async def test_counters_are_independent_per_key(counters: Any) -> None:
    assert await counters.reserve("t1:b", 10, limit=10) is not None
    assert await counters.reserve("t2:b", 10, limit=10) is not None
    assert await counters.value("t1:b") == 10 and await counters.value("nobody") == 0


async def test_64_concurrent_reservations_never_overspend_nor_deny_below_the_cap(
        counter_replicas: list[Any]) -> None:
    a, b = counter_replicas
    got = await asyncio.gather(*((a if i % 2 else b).reserve("k", 1.5, limit=30)
                                 for i in range(64)))
    assert sum(r is not None for r in got) == 20  # 30 / 1.5: exactly the cap, never more
    assert await a.value("k") == 30
    settled = await asyncio.gather(*(b.settle(r, 1.0) for r in got if r is not None))
    assert min(settled) == 20 and await a.value("k") == 20


# -- sliding windows ---------------------------------------------------------------------------

async def test_window_allows_up_to_the_limit_then_denies(windows: Any) -> None:
    results = [await windows.hit("rpm:k1", 1, limit=3, window_s=10) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.used for r in results] == [1, 2, 3, 3]
    assert results[0].reset_s == 0
    # exact backends: ≤ the window; bucketed ones (Redis, PostgreSQL): ≤ window + one bucket
    assert 9.0 < results[3].reset_s <= 10.5 and results[3].limit == 3


async def test_window_counts_token_amounts(windows: Any) -> None:
    assert (await windows.hit("tpm:k", 600, limit=1000, window_s=10)).allowed
    denied = await windows.hit("tpm:k", 500, limit=1000, window_s=10)
    assert not denied.allowed and denied.used == 600 and denied.reset_s > 0
    ok = await windows.hit("tpm:k", 400, limit=1000, window_s=10)
    assert ok.allowed and ok.used == 1000


async def test_window_slides(windows: Any) -> None:
    window = 0.4
    assert (await windows.hit("k", 2, limit=2, window_s=window)).allowed
    denied = await windows.hit("k", 1, limit=2, window_s=window)
    assert not denied.allowed and 0 < denied.reset_s <= window * 1.05 + 0.01
    await asyncio.sleep(denied.reset_s + 0.03)
    assert (await windows.hit("k", 1, limit=2, window_s=window)).allowed


async def test_window_add_counts_unconditionally(windows: Any) -> None:
    assert (await windows.hit("tpm:k", 100, limit=1000, window_s=10)).allowed
    await windows.add("tpm:k", 1500, window_s=10)     # the response used more than estimated
    r = await windows.hit("tpm:k", 1, limit=1000, window_s=10)
    assert not r.allowed and r.used == 1600


async def test_window_keys_are_independent(windows: Any) -> None:
    assert (await windows.hit("t1:rpm", 1, limit=1, window_s=10)).allowed
    assert (await windows.hit("t2:rpm", 1, limit=1, window_s=10)).allowed
    assert not (await windows.hit("t1:rpm", 1, limit=1, window_s=10)).allowed


async def test_64_concurrent_hits_admit_exactly_the_limit(windows: Any) -> None:
    got = await asyncio.gather(*(windows.hit("k", 1, limit=10, window_s=10) for _ in range(64)))
    assert sum(r.allowed for r in got) == 10
    assert max(r.used for r in got) == 10


async def test_hit_many_checks_windows_in_order_and_stops_at_the_first_refusal(
        windows: Any) -> None:
    """A request's RPM and TPM windows in one call, with the outcome of separate hits in turn:
    a window admitted before the refusal keeps its amount (the request counts against RPM even
    when TPM refuses it), and a window after it is neither checked nor counted."""
    ok = await windows.hit_many([("k:rpm", 1, 10), ("k:tpm", 40, 100)], window_s=10)
    assert [(r.allowed, r.used, r.limit) for r in ok] == [(True, 1, 10), (True, 40, 100)]
    refused = await windows.hit_many([("k:rpm", 1, 10), ("k:tpm", 70, 100), ("t:rpm", 1, 5)],
                                     window_s=10)
    assert [(r.allowed, r.used) for r in refused] == [(True, 2), (False, 40)]
    assert refused[1].reset_s > 0
    assert (await windows.hit("k:tpm", 0, 100, window_s=10)).used == 40
    assert (await windows.hit("t:rpm", 0, 5, window_s=10)).used == 0  # never reached


async def test_hit_many_from_two_replicas_at_once_admits_exactly_the_limit(
        windows_backend: tuple[str, dict[str, Any]]) -> None:
    """64 requests over two store objects on the same shared state: the first window lets
    exactly its limit through, and only those count against the second."""
    name, d = windows_backend
    first = _make("windows", name, d)
    replicas = [first, first if name == "memory" else _make("windows", name, d, 1)]
    try:
        got = await asyncio.gather(*(
            replicas[i % 2].hit_many([("team:rpm", 1, 10), ("team:tpm", 5, 10_000)], 10)
            for i in range(64)))
        assert sum(rs[0].allowed for rs in got) == 10
        assert all(len(rs) == 2 for rs in got if rs[0].allowed)
        assert all(len(rs) == 1 for rs in got if not rs[0].allowed)
        assert (await first.hit("team:tpm", 0, 10_000, 10)).used == 50
    finally:
        for s in {id(s): s for s in replicas}.values():
            await s.aclose()


# -- ledger ------------------------------------------------------------------------------------

def _rec(i: int, tenant: str = "t1", **kw: Any) -> UsageRecord:
    return UsageRecord(request_id=f"req_{i}", ts=1000.0 + i, tenant=tenant, alias="a",
                       deployment="a:openai/x", outcome="success", prompt_tokens=i,
                       completion_tokens=2 * i, cost_usd=0.001 * i, extra={"n": i}, **kw)


async def test_ledger_skips_duplicates_and_filters(ledger: Any) -> None:
    assert await ledger.append([_rec(1), _rec(2), _rec(3, "t2")]) == 3
    assert await ledger.append([_rec(2), _rec(4)]) == 1  # a replayed journal double-counts nothing
    rows = await ledger.query(tenant="t1")
    assert [r.request_id for r in rows] == ["req_1", "req_2", "req_4"]
    assert rows[0].extra == {"n": 1} and rows[1].completion_tokens == 4
    assert [r.request_id for r in await ledger.query(since=1002.0, until=1004.0)] == ["req_2", "req_3"]
    assert len(await ledger.query(limit=2)) == 2


async def test_ledger_reads_back_every_field_as_written(ledger: Any) -> None:
    """A batch goes to the database as JSON it takes apart itself: floats keep every digit,
    None stays NULL, text keeps quotes and non-ASCII, `extra` keeps its nesting; a request id
    twice in one batch is stored once."""
    r = UsageRecord(request_id="req_\u00e9\"'x", ts=1733352000.1234567, tenant="t'1",
                    alias="a\\b", deployment="a:openai/x", outcome="success",
                    prompt_tokens=2**40, completion_tokens=7, cached_tokens=3,
                    cost_usd=0.000001234567891, latency_ms=1.25, ttft_ms=None, key_id="k1",
                    team=None, user="ann \u00fc",
                    extra={"cache": "hit", "saved_usd": 1e-9, "tags": ["a", "\u00e9"],
                           "n": {"deep": [1, None]}})
    plain = _rec(9)
    assert await ledger.append([r, plain, _rec(9)]) == 2
    got = {x.request_id: x for x in await ledger.query(limit=10)}
    assert got[r.request_id] == r
    assert got[plain.request_id] == plain


async def test_ledger_filters_by_team_key_and_alias(ledger: Any) -> None:
    await ledger.append([_rec(1, team="red", key_id="k1"), _rec(2, team="blue", key_id="k2"),
                         _rec(3, team="red", key_id="k3", user="ann")])
    assert [r.request_id for r in await ledger.query(team="red")] == ["req_1", "req_3"]
    assert [r.request_id for r in await ledger.query(key_id="k2")] == ["req_2"]
    assert await ledger.query(alias="other") == []
    assert (await ledger.query(key_id="k3"))[0].user == "ann"


async def test_ledger_aggregates_by_group(ledger: Any) -> None:
    day2 = 86400.0 * 2
    records = [_rec(1, team="red", key_id="k1"), _rec(2, team="red", key_id="k2"),
               _rec(3, team="blue", key_id="k3"), _rec(4, key_id="k4")]
    late = _rec(5, team="red", key_id="k1")
    late.ts = day2 + 10
    late.cached_tokens = 7
    await ledger.append([*records, late])

    by_team = {r.group["team"]: r for r in await ledger.aggregate(["team"])}
    assert set(by_team) == {"red", "blue", ""}  # no team groups under ""
    red = by_team["red"]
    assert (red.requests, red.prompt_tokens, red.completion_tokens, red.cached_tokens) == (3, 8, 16, 7)
    assert red.cost_usd == pytest.approx(0.008)

    by_day = await ledger.aggregate(["day", "model"], team="red")
    assert [(r.group, r.requests) for r in by_day] == [
        ({"day": "1970-01-01", "model": "a"}, 2), ({"day": "1970-01-03", "model": "a"}, 1)]
    only = await ledger.aggregate([], key_id="k1", since=1000.0, until=day2)
    assert len(only) == 1 and only[0].requests == 1 and only[0].group == {}
    assert await ledger.aggregate(["outcome"], since=day2 * 10) == []


async def test_ledger_rejects_unknown_groupings(ledger: Any) -> None:
    await ledger.append([_rec(1)])
    with pytest.raises(ValueError, match="unknown usage grouping"):
        await ledger.aggregate(["tenant; DROP TABLE usage"])


async def test_ledger_delete_before_is_bounded_and_oldest_first(ledger: Any) -> None:
    await ledger.append([_rec(i) for i in range(1, 11)])
    assert await ledger.delete_before(1008.0, limit=3) == 3
    assert [r.request_id for r in await ledger.query()][:2] == ["req_4", "req_5"]
    assert await ledger.delete_before(1008.0, limit=100) == 4
    assert [r.request_id for r in await ledger.query()] == ["req_8", "req_9", "req_10"]
    assert await ledger.delete_before(1008.0, limit=100) == 0
