"""The lease store, one suite over every backend: memory, SQLite, Redis, PostgreSQL.

A lease has one holder at a time; the holder may renew it, nobody else may take it until it
expires or is released, and only the holder can release it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.storage.factory import open_stores
from gatewise.storage.leases import LeaseStore, MemoryLeases
from gatewise.storage.leases_sqlite import SQLiteLeases
from tests.storage.conftest import backend_details

TTL = 0.3  # long enough for a slow CI step, short enough to wait out


def _make(name: str, d: dict[str, Any]) -> Any:
    if name == "memory":
        return MemoryLeases()
    if name == "sqlite":
        return SQLiteLeases(Path(d["path"]) / "leases.db")
    if name == "redis":
        from gatewise.storage.leases_redis import RedisLeases

        return RedisLeases(d["url"], prefix=d["prefix"])
    from gatewise.storage.leases_postgres import PostgresLeases

    return PostgresLeases(d["url"], schema=d["schema"])


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture
async def leases(backend: tuple[str, dict[str, Any]]) -> AsyncIterator[LeaseStore]:
    s = _make(*backend)
    yield s
    await s.aclose()


async def test_one_holder_at_a_time_and_the_holder_may_renew(leases: LeaseStore) -> None:
    assert await leases.acquire("maintenance:job", "a", 30)
    assert not await leases.acquire("maintenance:job", "b", 30)
    assert await leases.acquire("maintenance:job", "a", 30)  # renewal
    assert await leases.holder("maintenance:job") == "a"
    assert await leases.acquire("maintenance:other", "b", 30)  # names are independent
    assert await leases.holder("maintenance:free") is None


async def test_only_the_holder_releases_and_then_anyone_may_take_it(leases: LeaseStore) -> None:
    assert await leases.acquire("l", "a", 30)
    assert not await leases.release("l", "b")
    assert await leases.holder("l") == "a"
    assert await leases.release("l", "a")
    assert await leases.holder("l") is None
    assert not await leases.release("l", "a")  # nothing left to release
    assert await leases.acquire("l", "b", 30)


async def test_an_expired_lease_goes_to_the_next_caller(leases: LeaseStore) -> None:
    assert await leases.acquire("l", "a", TTL)
    assert not await leases.acquire("l", "b", TTL)
    await asyncio.sleep(TTL + 0.15)
    assert await leases.holder("l") is None
    assert await leases.acquire("l", "b", 30)
    # The old holder cannot renew, nor release, what is now someone else's.
    assert not await leases.acquire("l", "a", 30)
    assert not await leases.release("l", "a")
    assert await leases.holder("l") == "b"


async def test_renewing_extends_the_lease(leases: LeaseStore) -> None:
    assert await leases.acquire("l", "a", TTL)
    await asyncio.sleep(TTL * 0.6)
    assert await leases.acquire("l", "a", TTL)
    await asyncio.sleep(TTL * 0.6)  # past the first TTL, within the renewed one
    assert not await leases.acquire("l", "b", TTL)


async def test_racing_callers_get_exactly_one_lease(
        backend: tuple[str, dict[str, Any]]) -> None:
    """Separate clients (as replicas have) racing for one free lease: one wins."""
    stores = [_make(*backend) for _ in range(2)] if backend[0] != "memory" else [MemoryLeases()]
    try:
        for round_ in range(5):
            name = f"race-{round_}"
            got = await asyncio.gather(*(stores[i % len(stores)].acquire(name, f"h{i}", 30)
                                         for i in range(8)))
            assert sum(got) == 1
    finally:
        for s in stores:
            await s.aclose()


async def test_the_store_answers_the_health_checks_ping(leases: Any) -> None:
    await leases.ping()


_CHOICES = {
    "memory": ({"database": "memory"}, "MemoryLeases", set()),
    "sqlite": ({"database": "sqlite"}, "SQLiteLeases", {"sqlite"}),
    "postgres": ({"database": "postgres"}, "PostgresLeases", {"postgres"}),
    "redis": ({"database": "sqlite"}, "RedisLeases", {"sqlite", "redis"}),
}


@pytest.fixture(params=list(_CHOICES))
def choice(request: pytest.FixtureRequest,
           tmp_path: Path) -> tuple[dict[str, Any], str | None, str, set[str]]:
    """(storage section, PostgreSQL schema, the lease store expected, the probes expected);
    a sync fixture, so the service fixtures can still be set up."""
    storage, kind, probes = _CHOICES[request.param]
    storage = {**storage, "state_dir": str(tmp_path)}
    schema = None
    if request.param == "redis":
        storage["redis_url"] = request.getfixturevalue("redis_url")
    if request.param == "postgres":
        storage["postgres_url"] = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("pg_schema")  # dropped afterwards
    return storage, schema, kind, probes


async def test_leases_are_chosen_like_the_other_stores(
        choice: tuple[dict[str, Any], str | None, str, set[str]]) -> None:
    storage, schema, kind, probes = choice
    cfg, w = parse_config({"storage": storage})
    stores = open_stores(resolve_config(cfg, None, {}, w), pg_schema=schema)
    try:
        assert type(stores.leases).__name__ == kind
        assert set(stores.probes) == probes
        for ping in stores.probes.values():
            await ping()
    finally:
        await stores.aclose()
