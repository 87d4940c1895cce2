"""Operating the exact cache through the library: tags and priorities on stored answers,
invalidation by key, tag, alias and prefix within the caller's reach, statistics that two
replicas on one store agree on, the maintenance job, and warming from a list of requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.cache.invalidation import Reach
from gatewise.cache.maintenance import CacheMaintenance
from gatewise.cache.stats import CacheStats
from gatewise.cache.warm import warm
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import CacheMissError, ForbiddenError, InvalidRequestError
from gatewise.pipeline.core import Identity
from gatewise.storage.memory import MemoryKV

RED, BLUE = Identity(team="red"), Identity(team="blue")
ONLY = {"mode": "only-if-cached"}


def config(**cache: Any) -> Any:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo", "prices": {"input": 1.0, "output": 2.0}}],
                   "other": [{"model": "fake/echo"}]},
        "storage": {"database": "memory"},
        "cache": {"enabled": True, **cache}})
    return resolve_config(cfg, None, {}, w)


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with Gateway(config()) as g:
        yield g


async def ask(gw: Gateway, text: str, who: Identity = RED, model: str = "m",
              **kw: Any) -> Any:
    return await gw.chat(text, model=model, temperature=0, identity=who, **kw)


async def cached(gw: Gateway, text: str, who: Identity = RED, model: str = "m") -> bool:
    try:
        await ask(gw, text, who, model, cache=ONLY)
    except CacheMissError:
        return False
    return True


async def test_invalidating_a_tag_removes_its_entries_and_only_the_callers_team(
        gw: Gateway) -> None:
    await ask(gw, "faq one", cache={"tags": ["faq"]})
    await ask(gw, "faq two", metadata={"cache_tags": "faq,v2"})
    await ask(gw, "untagged")
    await ask(gw, "faq one", BLUE, cache={"tags": ["faq"]})
    inv = gw.cache.invalidation  # type: ignore[union-attr]
    assert await inv.by_tag("faq", Reach("red")) == 2
    assert not await cached(gw, "faq one") and not await cached(gw, "faq two")
    assert await cached(gw, "untagged") and await cached(gw, "faq one", BLUE)
    assert await inv.by_tag("faq", Reach(None)) == 1  # a global admin reaches every team
    assert not await cached(gw, "faq one", BLUE)


async def test_invalidation_by_key_is_confined_to_the_callers_team(gw: Gateway) -> None:
    from gatewise.cache.key import cache_key, scope_of
    from gatewise.types.validation import chat_request_from_dict

    await ask(gw, "keyed")
    req = chat_request_from_dict({"model": "m", "temperature": 0,
                                  "messages": [{"role": "user", "content": "keyed"}]})
    key = cache_key(scope_of(RED), "m", gw.cache._deployments["m"], req)  # type: ignore[union-attr]
    inv = gw.cache.invalidation  # type: ignore[union-attr]
    with pytest.raises(ForbiddenError):
        await inv.by_key(key, Reach("blue"))
    assert await cached(gw, "keyed")
    assert await inv.by_key(key, Reach("red")) == 1
    assert not await cached(gw, "keyed")
    with pytest.raises(InvalidRequestError):
        await inv.by_prefix("gatewise:", Reach(None))


async def test_invalidation_by_alias_pattern_and_by_team(gw: Gateway) -> None:
    for who in (RED, BLUE):
        await ask(gw, "q", who, "m")
        await ask(gw, "q", who, "other")
    inv = gw.cache.invalidation  # type: ignore[union-attr]
    assert await inv.by_alias("oth*", Reach("red")) == 1
    assert not await cached(gw, "q", RED, "other") and await cached(gw, "q", BLUE, "other")
    assert await inv.by_alias(None, Reach("blue")) == 2
    assert await cached(gw, "q", RED, "m") and not await cached(gw, "q", BLUE, "m")
    assert await inv.by_alias(None, Reach(None)) == 1


async def test_bad_tags_or_priorities_are_400s_that_store_nothing(gw: Gateway) -> None:
    for bad in ({"cache": {"tags": ["has space"]}}, {"cache": {"priority": "urgent"}},
                {"metadata": {"cache_tags": "a" * 200}},
                {"metadata": {"cache_priority": "top"}},
                {"cache": {"tags": [f"t{i}" for i in range(17)]}}):
        with pytest.raises(InvalidRequestError):
            await ask(gw, "bad", **bad)
    assert len(gw.cache.cache.store) == 0  # type: ignore[union-attr,arg-type]
    await gw.accounting.ledger.flush()
    assert await gw.stores.ledger.query() == []  # refused before the chain: no usage record


async def test_a_low_priority_answer_is_evicted_before_normal_ones() -> None:
    async with Gateway(config(max_entries=2)) as gw:
        await ask(gw, "cheap", metadata={"cache_priority": "low"})
        await ask(gw, "kept")
        await ask(gw, "cheap")  # a hit: recently used, but still low priority
        await ask(gw, "newest")
        assert not await cached(gw, "cheap")
        assert await cached(gw, "kept") and await cached(gw, "newest")


async def test_statistics_count_hits_misses_and_savings_per_team_and_alias(
        gw: Gateway) -> None:
    await ask(gw, "s")
    await ask(gw, "s")
    await ask(gw, "s")
    await ask(gw, "s", BLUE)
    await gw.chat("sampled", model="m", temperature=0.7, identity=RED)
    rows = {(r.team, r.alias): r for r in await gw.cache.stats.read()}  # type: ignore[union-attr]
    red = rows[("red", "m")]
    assert (red.hits, red.misses, red.bypasses) == (2, 1, 1)
    assert red.hit_rate == pytest.approx(2 / 3)
    assert red.tokens_saved > 0 and red.usd_saved > 0
    assert rows[("blue", "m")].misses == 1
    assert [r.team for r in await gw.cache.stats.read("blue")] == ["blue"]  # type: ignore[union-attr]
    metrics = gw.metrics.render()
    assert 'gatewise_cache_requests_total{model="m",result="hit"} 2' in metrics
    assert "gatewise_cache_saved_usd_total" in metrics


async def test_two_replicas_on_one_store_report_the_same_totals() -> None:
    store = MemoryKV()
    a, b = CacheStats(store), CacheStats(store)
    a.record("hit", team="red", alias="m", tokens=10, usd=0.5)
    b.record("semantic_hit", team="red", alias="m", tokens=5, usd=0.25)
    b.record("miss", team="red", alias="m")
    await a.flush()  # what b counted reaches the store on b's flush (its job, or a read)
    for stats in (b, a):
        (row,) = await stats.read()
        assert (row.hits, row.semantic_hits, row.misses) == (1, 1, 1)
        assert row.tokens_saved == 15 and row.usd_saved == pytest.approx(0.75)


async def test_the_maintenance_job_purges_expired_entries_on_its_own_schedule() -> None:
    now = [1000.0]
    store = MemoryKV(clock=lambda: now[0])
    await store.set("cache:v1:old", b"x", ttl=5)
    await store.set("cache:v1:new", b"x", ttl=500)
    ticks: list[float] = []

    async def sleep(seconds: float) -> None:
        ticks.append(seconds)
        if len(ticks) > 2:
            await __import__("asyncio").sleep(3600)  # park: the test ends the job
        now[0] += seconds

    job = CacheMaintenance(store, CacheStats(store), interval_s=60, sleep=sleep,
                           clock=lambda: now[0])
    job.start()
    assert job.running
    for _ in range(50):
        await __import__("asyncio").sleep(0)
    assert job.runs == 2 and job.purged == 1 and ticks[:2] == [60, 60]
    assert await store.get("cache:v1:new") == b"x"
    await job.aclose()
    assert not job.running


async def test_the_maintenance_job_reports_size_evictions_and_purges() -> None:
    from gatewise.cache.store import LRUStore
    from gatewise.observability.metrics import GatewayMetrics

    now = [0.0]
    store, metrics = LRUStore(2, clock=lambda: now[0]), GatewayMetrics()
    for k in "abc":
        await store.set(k, b"x", ttl=10)
    job = CacheMaintenance(store, CacheStats(store), metrics=metrics)
    now[0] = 11
    assert await job.run_once() == 2
    text = metrics.render()
    assert 'gatewise_cache_evictions_total{reason="size"} 1' in text
    assert 'gatewise_cache_evictions_total{reason="expired"} 2' in text


async def test_a_shared_store_is_trimmed_to_max_entries_by_the_cleanup_job(
        tmp_path: Any) -> None:
    """SQLite keeps what it is given: the cleanup job holds the entries to `max_entries`,
    the oldest first, and counts them as size evictions."""
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo"}]},
        "storage": {"database": "sqlite", "state_dir": str(tmp_path)},
        "cache": {"enabled": True, "store": "shared", "max_entries": 3}})
    async with Gateway(resolve_config(cfg, None, {}, w)) as gw:
        for i in range(5):
            await ask(gw, f"question {i}")
        assert all([await cached(gw, f"question {i}") for i in range(5)])
        outcome = await gw.maintenance.run_once("cache_cleanup")
        assert outcome == "ok"
        (row,) = [r for r in gw.maintenance.status() if r["job"] == "cache_cleanup"]
        assert row["summary"] == {"purged": 0, "trimmed": 2}
        assert [await cached(gw, f"question {i}") for i in range(5)] == [
            False, False, True, True, True]
        assert 'gatewise_cache_evictions_total{reason="size"} 2' in gw.metrics.render()


async def test_the_gateway_runs_the_cache_job_on_its_maintenance_scheduler() -> None:
    gw = Gateway(config(maintenance_interval_s=3600))
    await gw.start()
    assert gw.cache is not None and gw.maintenance.running
    job = gw.maintenance.jobs["cache_cleanup"]
    # The in-process store is this replica's own: purged here, no lease asked for.
    assert job.interval_s == 3600 and not job.exclusive and job.task is not None
    assert not gw.cache.maintenance.running  # the cache's own loop steps aside
    await gw.aclose()
    assert not gw.maintenance.running and job.task is None


async def test_without_the_scheduler_the_cache_runs_its_own_loop_as_before() -> None:
    cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                           "storage": {"database": "memory"}, "maintenance": {"enabled": False},
                           "cache": {"enabled": True, "maintenance_interval_s": 3600}})
    gw = Gateway(resolve_config(cfg, None, {}, w))
    await gw.start()
    assert gw.cache is not None and gw.cache.maintenance.running
    assert not gw.maintenance.running
    await gw.aclose()
    assert not gw.cache.maintenance.running


async def test_warming_stores_new_answers_skips_cached_ones_and_reports_failures(
        gw: Gateway) -> None:
    await ask(gw, "already")

    def body(text: str, **extra: Any) -> dict[str, Any]:
        return {"model": "m", "temperature": 0,
                "messages": [{"role": "user", "content": text}], **extra}

    items: list[tuple[int, dict[str, Any] | str]] = [
        (1, body("already", team="red")), (2, body("fresh one", team="red")),
        (3, body("fresh two", team="blue")), (4, body("sampled", temperature=0.9)),
        (5, {"model": "m", "messages": "not a list"}), (6, "not JSON")]
    seen: list[int] = []
    report = await warm(gw, items, total=len(items), concurrency=3,
                        progress=lambda r: seen.append(r.done))
    assert (report.stored, report.skipped, report.failed) == (2, 2, 2)
    assert sorted(n for n, _ in report.errors) == [5, 6]
    assert seen[-1] == 6
    assert await cached(gw, "fresh one") and await cached(gw, "fresh two", BLUE)
    assert not await cached(gw, "fresh one", BLUE)  # warmed for its own team only
