"""Key revocation across replicas through a real Redis (127.0.0.1:6379) pub/sub channel.

Two `KeyManager`s over one shared governance store stand for two gateway replicas. Their key
caches are long (60 s), so a key that stops working on replica B as soon as B has handled the
broadcast (and long before its cache could expire) can only be the broadcast. The tests wait
for that event, never for a guessed time: replica B's `PubSub` is wrapped by a `Witness` that
says which messages B has handled. Without Redis these tests skip, except under `CI=true`,
where they fail.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gatewise.errors import UnauthorizedError
from gatewise.security.audit import AuditLog
from gatewise.security.keys import KeyManager
from gatewise.security.teams import TeamManager
from gatewise.storage.base import PubSub, Subscription
from gatewise.storage.memory_governance import MemoryGovernance
from gatewise.storage.pubsub import RedisPubSub

HEARD_WITHIN_S = 5.0  # a safety net, far below the 60 s cache: only the broadcast is this fast


class Witness:
    """A `PubSub` that passes everything through and records each message its subscriber has
    finished handling, so a test can wait for exactly that."""

    def __init__(self, inner: PubSub) -> None:
        self.inner = inner
        self.handled: list[str] = []
        self._changed = asyncio.Event()

    async def publish(self, channel: str, message: str) -> None:
        await self.inner.publish(channel, message)

    def subscribe(self, channel: str, on_message: Callable[[str], None],
                  **options: Any) -> Subscription:
        def handle(message: str) -> None:
            on_message(message)
            self.handled.append(message)
            self._changed.set()

        return self.inner.subscribe(channel, handle, **options)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def heard(self, message: str, times: int = 1) -> float:
        """Waits until `message` has been handled `times` times; returns the seconds waited."""
        t0 = time.perf_counter()
        async with asyncio.timeout(HEARD_WITHIN_S):
            while self.handled.count(message) < times:
                self._changed.clear()
                await self._changed.wait()
        return time.perf_counter() - t0


@pytest.fixture
async def witness(redis_url: str) -> AsyncIterator[Witness]:
    w = Witness(RedisPubSub(redis_url))
    yield w
    await w.aclose()


@pytest.fixture
async def replicas(redis_url: str,
                   witness: Witness) -> AsyncIterator[tuple[KeyManager, KeyManager]]:
    """Replica A connects from a URL (as the gateway does), replica B through the witness."""
    store = MemoryGovernance()
    audit = AuditLog(store)
    channel = f"gatewise-test:keys:{os.getpid()}:{os.urandom(4).hex()}"  # isolated per test
    a = KeyManager(store, audit, cache_s=60.0, channel=channel)
    b = KeyManager(store, audit, cache_s=60.0, channel=channel)
    await a.start_broadcast(redis_url)
    await b.start_broadcast(pubsub=witness)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_a_revocation_on_one_replica_takes_effect_on_the_other_once_broadcast(
        replicas: tuple[KeyManager, KeyManager], witness: Witness) -> None:
    a, b = replicas
    token, rec = await a.create(name="svc", role="member", actor="master")
    await b.authenticate(token)  # now cached on B for 60 s
    await a.revoke(rec.id, actor="master")
    took = await witness.heard(rec.id)
    with pytest.raises(UnauthorizedError):
        await b.authenticate(token)
    print(f"revocation reached replica B in {took * 1000:.1f} ms")


async def test_an_update_on_one_replica_reshapes_the_identity_on_the_other(
        replicas: tuple[KeyManager, KeyManager], witness: Witness) -> None:
    a, b = replicas
    token, rec = await a.create(name="svc", role="member", models=["m1"], actor="master")
    assert (await b.authenticate(token)).models == ("m1",)
    before = witness.handled.count(rec.id)
    await a.update(rec.id, actor="master", models=["m2"])
    await witness.heard(rec.id, times=before + 1)
    assert (await b.authenticate(token)).models == ("m2",)


async def test_a_team_change_on_one_replica_reaches_the_others_cached_keys(
        replicas: tuple[KeyManager, KeyManager], witness: Witness) -> None:
    a, b = replicas
    teams = TeamManager(a.store, a.audit, keys=a)
    await teams.create("ml", models=["gpt-*"], actor="master")
    token, _ = await a.create(name="svc", role="member", team="ml", actor="master")
    assert (await b.authenticate(token)).team_models == ("gpt-*",)
    before = witness.handled.count("team:ml")
    await teams.update("ml", models=["claude-*"], actor="master")
    await witness.heard("team:ml", times=before + 1)
    assert (await b.authenticate(token)).team_models == ("claude-*",)


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
