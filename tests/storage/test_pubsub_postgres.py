"""`PostgresPubSub` on a real PostgreSQL: two replicas (two instances, each with its own pool)
hear each other; a listening backend the server ends is re-listened with `resumed=True`; a
channel name is data, never SQL; NOTIFY's payload limit fails before anything is sent; and
start-up and shutdown stay bounded when the server is away.

Without PostgreSQL these skip, except in CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.postgres import PgDatabase
from gatewise.storage.pubsub_postgres import (
    MAX_PAYLOAD_BYTES,
    ListenHub,
    MessageTooLargeError,
    PostgresPubSub,
)
from tests.fakes.ports import free_port
from tests.storage.test_pubsub import Inbox


@pytest.fixture
def channel() -> str:
    return f"gw-test:pg:{os.getpid()}:{os.urandom(4).hex()}"


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[PostgresPubSub, PostgresPubSub]]:
    a, b = PostgresPubSub(pg_url), PostgresPubSub(pg_url)
    yield a, b
    await a.aclose()
    await b.aclose()


async def _listening_pids(pg_url: str, channel: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        rows = await (await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'gatewise-pubsub' "
            "AND query = %s", (f'LISTEN "{channel}"',))).fetchall()
    return [int(r[0]) for r in rows]


async def test_a_message_published_on_one_replica_reaches_the_other_in_order(
        replicas: tuple[PostgresPubSub, PostgresPubSub], channel: str) -> None:
    a, b = replicas
    inbox = Inbox()
    sub = b.subscribe(channel, inbox)
    await sub.wait_ready()
    for i in range(20):
        await a.publish(channel, f"k key-{i}")
    assert await inbox.wait_for(20) == [f"k key-{i}" for i in range(20)]


async def test_a_listener_the_server_ends_listens_again_and_hears_it_as_a_resumption(
        pg_url: str, replicas: tuple[PostgresPubSub, PostgresPubSub], channel: str) -> None:
    a, b = replicas
    inbox = Inbox()
    connects: list[bool] = []
    errors: list[BaseException] = []
    resumed = asyncio.Event()

    async def on_connect(was_resumed: bool) -> None:
        connects.append(was_resumed)
        if was_resumed:
            resumed.set()

    sub = b.subscribe(channel, inbox, on_connect=on_connect, on_error=errors.append)
    await sub.wait_ready()
    (pid,) = await _listening_pids(pg_url, channel)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    async with asyncio.timeout(5.0):
        await resumed.wait()
    assert connects == [False, True]
    assert errors and isinstance(errors[0], psycopg.OperationalError)
    assert await _listening_pids(pg_url, channel) not in ([], [pid])  # a new session
    await a.publish(channel, "after the gap")
    assert await inbox.wait_for(1) == ["after the gap"]


async def test_a_channel_name_is_data_never_sql(
        pg_url: str, replicas: tuple[PostgresPubSub, PostgresPubSub]) -> None:
    table = f"gw_pubsub_canary_{os.urandom(4).hex()}"
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(f'CREATE TABLE "{table}" (x int)')
        try:
            evil = f'x"; DROP TABLE "{table}"; --'
            a, b = replicas
            inbox = Inbox()
            sub = b.subscribe(evil, inbox)
            await sub.wait_ready()
            await a.publish(evil, "still a message")
            assert await inbox.wait_for(1) == ["still a message"]
            row = await (await conn.execute("SELECT to_regclass(%s)", (f'"{table}"',))).fetchone()
            assert row is not None and row[0] is not None  # the table survived both statements
        finally:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')


async def test_a_payload_notify_cannot_carry_fails_before_anything_is_sent(
        replicas: tuple[PostgresPubSub, PostgresPubSub], channel: str) -> None:
    a, b = replicas
    inbox = Inbox()
    sub = b.subscribe(channel, inbox)
    await sub.wait_ready()
    largest = "é" * (MAX_PAYLOAD_BYTES // 2) + "x"  # counted in bytes, not characters
    assert len(largest.encode()) == MAX_PAYLOAD_BYTES
    with pytest.raises(MessageTooLargeError):
        await a.publish(channel, largest + "x")
    await a.publish(channel, largest)
    assert await inbox.wait_for(1) == [largest]


async def test_channel_names_longer_than_an_identifier_still_meet_and_stay_apart(
        replicas: tuple[PostgresPubSub, PostgresPubSub], channel: str) -> None:
    """LISTEN would truncate a name past 63 bytes and pg_notify refuse it: both sides shorten
    it alike, and two long names with the same first 63 bytes stay two channels."""
    a, b = replicas
    first, second = channel + ":" + "é" * 40 + "1", channel + ":" + "é" * 40 + "2"
    heard_first, heard_second = Inbox(), Inbox()
    for name, inbox in ((first, heard_first), (second, heard_second)):
        await b.subscribe(name, inbox).wait_ready()
    await a.publish(first, "one")
    await a.publish(second, "two")
    assert await heard_first.wait_for(1) == ["one"]
    assert await heard_second.wait_for(1) == ["two"]
    with pytest.raises(ValueError, match="NUL"):
        await a.publish("bad\x00name", "m")


async def test_an_unreachable_server_never_blocks_start_up_and_shutdown_is_bounded(
        channel: str) -> None:
    bus = PostgresPubSub(f"postgresql://127.0.0.1:{free_port()}/test", connect_timeout_s=0.2,
                         op_timeout_s=0.2)
    errors: list[BaseException] = []
    try:
        with pytest.raises(StoreUnavailableError):
            await bus.publish(channel, "lost")
        sub = bus.subscribe(channel, Inbox(), on_error=errors.append)
        async with asyncio.timeout(3.0):
            await sub.wait_ready()  # ready after the first failed try: callers run degraded
        assert errors
    finally:
        started = time.monotonic()
        await bus.aclose()
        assert time.monotonic() - started < 1.0


async def test_closing_a_listening_subscription_is_prompt(
        replicas: tuple[PostgresPubSub, PostgresPubSub], channel: str) -> None:
    a, _ = replicas
    sub = a.subscribe(channel, Inbox())
    await sub.wait_ready()
    await asyncio.sleep(0.05)  # inside its wait for notifications
    started = time.monotonic()
    await a.aclose()
    assert time.monotonic() - started < 0.5


async def test_a_replicas_subscriptions_share_one_session_and_all_resume_when_it_is_lost(
        pg_url: str, channel: str) -> None:
    """The breakers, the near cache and key revocation each subscribe on their own
    `PostgresPubSub` (`Stores.new_pubsub`): on one hub they hold one server connection, not
    three; a lost session resumes every one of them, and each still hears only its channel."""
    name = f"gw-test-hub-{os.urandom(4).hex()}"
    db = PgDatabase(pg_url, min_size=1, max_size=2)
    hub = ListenHub(db, application_name=name)
    buses = [PostgresPubSub(db, hub=hub) for _ in range(3)]
    publisher = PostgresPubSub(pg_url)
    channels = [f"{channel}:{i}" for i in range(3)]
    inboxes = [Inbox() for _ in range(3)]
    resumed = [asyncio.Event() for _ in range(3)]

    def on_connect(i: int) -> Callable[[bool], Awaitable[None]]:
        async def go(was_resumed: bool) -> None:
            if was_resumed:
                resumed[i].set()
        return go

    try:
        subs = [bus.subscribe(ch, inbox, on_connect=on_connect(i))
                for i, (bus, ch, inbox) in enumerate(zip(buses, channels, inboxes, strict=True))]
        for sub in subs:
            await sub.wait_ready()
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            rows = await (await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))).fetchall()
            assert len(rows) == 1
            for i, ch in enumerate(channels):
                await publisher.publish(ch, f"to {i}")
            for i, inbox in enumerate(inboxes):
                assert await inbox.wait_for(1) == [f"to {i}"]
            await conn.execute("SELECT pg_terminate_backend(%s)", (rows[0][0],))
        async with asyncio.timeout(5.0):
            for event in resumed:
                await event.wait()
        for i, ch in enumerate(channels):
            await publisher.publish(ch, f"again {i}")
        for i, inbox in enumerate(inboxes):
            assert await inbox.wait_for(2) == [f"to {i}", f"again {i}"]
        # Closing one bus leaves the others listening on the shared session.
        await buses[0].aclose()
        await publisher.publish(channels[1], "still here")
        assert await inboxes[1].wait_for(3) == ["to 1", "again 1", "still here"]
    finally:
        for bus in buses:
            await bus.aclose()
        await hub.aclose()
        await publisher.aclose()
        await db.close()


async def test_a_subscription_joining_a_waiting_session_listens_at_once(
        pg_url: str, channel: str) -> None:
    """The reader holds the shared session while it waits for notifications; a new LISTEN
    wakes it rather than waiting for its poll to end (5 s here), since whatever is published
    before the LISTEN runs is lost to the new subscriber."""
    db = PgDatabase(pg_url, min_size=1, max_size=2)
    hub = ListenHub(db, poll_s=5.0)
    bus = PostgresPubSub(db, hub=hub)
    try:
        first = bus.subscribe(channel + ":first", Inbox())
        await first.wait_ready()
        await asyncio.sleep(0.1)  # the reader is inside its 5 s wait now
        inbox = Inbox()
        started = time.monotonic()
        late = bus.subscribe(channel + ":late", inbox)
        await late.wait_ready()
        assert time.monotonic() - started < 0.5
        await bus.publish(channel + ":late", "heard")
        assert await inbox.wait_for(1) == ["heard"]
    finally:
        await bus.aclose()
        await hub.aclose()
        await db.close()
