"""The `PubSub` contract, run over every backend: in process (memory), a real Redis and a real
PostgreSQL (LISTEN/NOTIFY; its own behaviour is in `test_pubsub_postgres.py`).

Without Redis or PostgreSQL their parameter skips, except in CI (`CI=true`), where it fails. Each test
uses a channel of its own, so runs in parallel never hear each other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from gatewise.storage.base import PubSub, StoreUnavailableError
from gatewise.storage.pubsub import MemoryPubSub
from tests.fakes.ports import free_port


@pytest.fixture(params=["memory", "redis", "postgres"])
async def pubsub(request: pytest.FixtureRequest) -> AsyncIterator[PubSub]:
    if request.param == "memory":
        bus: PubSub = MemoryPubSub()
    elif request.param == "postgres":
        from gatewise.storage.pubsub_postgres import PostgresPubSub

        bus = PostgresPubSub(request.getfixturevalue("pg_url"))
    else:
        from gatewise.storage.pubsub import RedisPubSub

        bus = RedisPubSub(request.getfixturevalue("redis_url"))
    yield bus
    await bus.aclose()


@pytest.fixture
def channel() -> str:
    return f"gatewise-test:pubsub:{os.getpid()}:{os.urandom(4).hex()}"


class Inbox:
    """Collects messages and lets a test wait for the n-th one (never for a fixed time)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, n: int, within_s: float = 2.0) -> list[str]:
        async with asyncio.timeout(within_s):
            while len(self.messages) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.messages


async def test_a_message_reaches_every_subscriber_of_its_channel(pubsub: PubSub,
                                                                 channel: str) -> None:
    first, second, elsewhere = Inbox(), Inbox(), Inbox()
    subs = [pubsub.subscribe(channel, first), pubsub.subscribe(channel, second),
            pubsub.subscribe(channel + ":other", elsewhere)]
    for sub in subs:
        await sub.wait_ready()
    await pubsub.publish(channel, "revoked:k1")
    await pubsub.publish(channel, "team:t")
    assert await first.wait_for(2) == ["revoked:k1", "team:t"]
    assert await second.wait_for(2) == ["revoked:k1", "team:t"]
    assert elsewhere.messages == []


async def test_a_subscriber_hears_on_connect_once_ready_and_not_as_a_resumption(
        pubsub: PubSub, channel: str) -> None:
    connects: list[bool] = []

    async def on_connect(resumed: bool) -> None:
        connects.append(resumed)

    sub = pubsub.subscribe(channel, Inbox(), on_connect=on_connect)
    async with asyncio.timeout(2.0):
        await sub.wait_ready()
    assert connects == [False]


async def test_a_closed_subscription_hears_nothing_more(pubsub: PubSub, channel: str) -> None:
    kept, closed = Inbox(), Inbox()
    kept_sub, closed_sub = pubsub.subscribe(channel, kept), pubsub.subscribe(channel, closed)
    await kept_sub.wait_ready()
    await closed_sub.wait_ready()
    await closed_sub.aclose()
    await pubsub.publish(channel, "after")
    await kept.wait_for(1)  # delivered to the open one, so the closed one had its chance
    assert closed.messages == []


async def test_an_unreachable_redis_is_one_error_type_and_never_blocks_start_up(
        channel: str) -> None:
    from gatewise.storage.pubsub import RedisPubSub

    bus = RedisPubSub(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=0.2)
    errors: list[BaseException] = []
    try:
        with pytest.raises(StoreUnavailableError):
            await bus.publish(channel, "lost")
        sub = bus.subscribe(channel, Inbox(), on_error=errors.append)
        async with asyncio.timeout(2.0):
            await sub.wait_ready()  # ready after the first failed try: callers run degraded
        assert errors
    finally:
        async with asyncio.timeout(3.0):
            await bus.aclose()


async def test_a_lost_connection_is_reported_as_a_resumption_and_ticks_resync(
        redis_url: str, channel: str) -> None:
    """After a drop the subscriber is told `resumed=True` (it may have missed messages), and
    `on_tick` runs while connected: the two ways a cache stays true over Redis pub/sub."""
    from gatewise.storage.pubsub import RedisPubSub

    bus = RedisPubSub(redis_url)
    connects: list[bool] = []
    ticks = asyncio.Event()
    reconnected = asyncio.Event()

    async def on_connect(resumed: bool) -> None:
        connects.append(resumed)
        if resumed:
            reconnected.set()

    async def on_tick() -> None:
        ticks.set()
        if len(connects) == 1:
            raise StoreUnavailableError("simulated drop")

    try:
        sub = bus.subscribe(channel, Inbox(), on_connect=on_connect, tick_s=0.01, on_tick=on_tick)
        async with asyncio.timeout(5.0):
            await sub.wait_ready()
            await ticks.wait()
            await reconnected.wait()
        assert connects == [False, True]
    finally:
        await bus.aclose()
