"""Key revocation across replicas through a real Redis (127.0.0.1:6379) pub/sub channel.

Two `KeyManager`s over one shared governance store stand for two gateway replicas. Their key
caches are long (60 s), so a key that stops working on replica B within 100 ms of a change on
replica A can only be the broadcast. Without Redis these tests skip, except under `CI=true`,
where they fail.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from gatewise.errors import UnauthorizedError
from gatewise.security.audit import AuditLog
from gatewise.security.keys import KeyManager, TeamManager
from gatewise.storage.memory_governance import MemoryGovernance


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[KeyManager, KeyManager]]:
    store = MemoryGovernance()
    audit = AuditLog(store)
    channel = f"gatewise-test:keys:{os.getpid()}:{os.urandom(4).hex()}"  # isolated per test
    a = KeyManager(store, audit, cache_s=60.0, channel=channel)
    b = KeyManager(store, audit, cache_s=60.0, channel=channel)
    await a.start_broadcast(redis_url)
    await b.start_broadcast(redis_url)
    yield a, b
    await a.aclose()
    await b.aclose()


async def rejected_within(km: KeyManager, token: str, seconds: float) -> float:
    """Seconds until `token` stops authenticating on `km` (fails the test past `seconds`)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            await km.authenticate(token)
        except UnauthorizedError:
            return time.perf_counter() - t0
        await asyncio.sleep(0.002)
    pytest.fail(f"key still accepted after {seconds * 1000:.0f} ms")


async def test_a_revocation_on_one_replica_takes_effect_on_the_other_within_100ms(
        replicas: tuple[KeyManager, KeyManager]) -> None:
    a, b = replicas
    token, rec = await a.create(name="svc", role="member", actor="master")
    await b.authenticate(token)  # now cached on B for 60 s
    await a.revoke(rec.id, actor="master")
    took = await rejected_within(b, token, 0.1)
    print(f"revocation reached replica B in {took * 1000:.1f} ms")


async def test_an_update_on_one_replica_reshapes_the_identity_on_the_other(
        replicas: tuple[KeyManager, KeyManager]) -> None:
    a, b = replicas
    token, rec = await a.create(name="svc", role="member", models=["m1"], actor="master")
    assert (await b.authenticate(token)).models == ("m1",)
    await a.update(rec.id, actor="master", models=["m2"])
    t0 = time.perf_counter()
    while (await b.authenticate(token)).models != ("m2",):
        assert time.perf_counter() - t0 < 0.1, "update did not reach replica B within 100 ms"
        await asyncio.sleep(0.002)


async def test_a_team_change_on_one_replica_reaches_the_others_cached_keys(
        replicas: tuple[KeyManager, KeyManager]) -> None:
    a, b = replicas
    teams = TeamManager(a.store, a.audit, keys=a)
    await teams.create("ml", models=["gpt-*"], actor="master")
    token, _ = await a.create(name="svc", role="member", team="ml", actor="master")
    assert (await b.authenticate(token)).team_models == ("gpt-*",)
    await teams.update("ml", models=["claude-*"], actor="master")
    t0 = time.perf_counter()
    while (await b.authenticate(token)).team_models != ("claude-*",):
        assert time.perf_counter() - t0 < 0.1, "team change did not reach replica B within 100 ms"
        await asyncio.sleep(0.002)


async def test_an_unreachable_redis_does_not_block_start_up(redis_url: str) -> None:
    store = MemoryGovernance()
    km = KeyManager(store, AuditLog(store))
    t0 = time.perf_counter()
    await km.start_broadcast("redis://127.0.0.1:1/0", ready_timeout_s=2.0)
    assert time.perf_counter() - t0 < 2.5
    token, rec = await km.create(name="x", role="member", actor="master")
    await km.authenticate(token)
    await km.revoke(rec.id, actor="master")  # publishing fails quietly; local revoke still holds
    with pytest.raises(UnauthorizedError):
        await km.authenticate(token)
    await km.aclose()


async def test_a_budget_change_on_one_replica_makes_the_others_reread_budgets(
        replicas: tuple[KeyManager, KeyManager]) -> None:
    a, b = replicas
    heard = asyncio.Event()
    b.on_budgets = heard.set
    await a.budgets_changed()
    await asyncio.wait_for(heard.wait(), 0.5)
