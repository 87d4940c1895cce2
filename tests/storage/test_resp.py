"""The lean RESP client the budget counters and rate-limit windows run on: replies split at
any byte, pipelined calls answered in order, scripts reloaded after `SCRIPT FLUSH`, the
database chosen by the URL, a killed connection failing only the calls in flight, and every
socket it opens closed by it (across event loops, and when AUTH is refused)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from gatewise.storage.resp import RespClient, RespError, Script, _Incomplete, _parse, _Protocol


def test_replies_parse_whole_and_split_at_every_byte() -> None:
    wire = (b":42\r\n$5\r\nhello\r\n$-1\r\n+OK\r\n-NOSCRIPT No matching script\r\n"
            b"*3\r\n:1\r\n$3\r\n0.5\r\n*1\r\n:-7\r\n")
    expected = [42, b"hello", None, b"OK", "NOSCRIPT No matching script",
                [1, b"0.5", [-7]]]

    def parse_all(buf: bytearray) -> tuple[list[object], int]:
        out: list[object] = []
        pos = 0
        try:
            while pos < len(buf):
                reply, pos = _parse(buf, pos)
                out.append(str(reply) if isinstance(reply, RespError) else reply)
        except _Incomplete:
            pass
        return out, pos

    assert parse_all(bytearray(wire)) == (expected, len(wire))
    for cut in range(len(wire)):
        head, _ = parse_all(bytearray(wire[:cut]))
        assert head == expected[:len(head)]


async def test_pipelined_calls_resolve_in_order(redis_url: str) -> None:
    c = RespClient(redis_url)
    key = f"gw-resp-{uuid.uuid4().hex}"
    try:
        got = await asyncio.gather(*(c.execute("INCRBY", key, i) for i in range(1, 51)))
        assert sorted(got) == got and got[-1] == sum(range(1, 51))
    finally:
        await c.execute("DEL", key)
        await c.aclose()


async def test_a_flushed_script_is_sent_again_in_full(redis_url: str) -> None:
    c = RespClient(redis_url)
    script = Script(f"return {{KEYS[1], ARGV[1], '{uuid.uuid4().hex}'}}")
    try:
        assert (await c.run_script(script, ["k"], ["v"]))[:2] == [b"k", b"v"]
        await c.execute("SCRIPT", "FLUSH")
        assert (await c.run_script(script, ["k2"], [3]))[:2] == [b"k2", b"3"]
        with pytest.raises(RespError, match="ERR"):
            await c.execute("NOT-A-COMMAND")
    finally:
        await c.aclose()


async def test_the_url_selects_the_database(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    c = RespClient(f"{base}/3")
    other = aioredis.Redis.from_url(f"{base}/3")
    key = f"gw-resp-db-{uuid.uuid4().hex}"
    try:
        await c.execute("SET", key, "x")
        assert await other.get(key) == b"x"
    finally:
        await other.delete(key)
        await other.aclose()
        await c.aclose()


async def test_a_killed_connection_fails_in_flight_calls_and_the_next_call_reconnects(
        redis_url: str) -> None:
    c = RespClient(redis_url)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        victim = await c.execute("CLIENT", "ID")
        slow = asyncio.ensure_future(c.execute("BLPOP", f"gw-none-{uuid.uuid4().hex}", 5))
        await asyncio.sleep(0.05)
        await admin.execute_command("CLIENT", "KILL", "ID", victim)
        with pytest.raises(ConnectionError):
            await slow
        assert await c.execute("PING") == b"PONG"
    finally:
        await admin.aclose()
        await c.aclose()


@pytest.fixture
def transports(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.BaseTransport]:
    """Every transport a RespClient opens during the test."""
    made: list[asyncio.BaseTransport] = []
    original = _Protocol.connection_made

    def spy(self: _Protocol, transport: asyncio.BaseTransport) -> None:
        made.append(transport)
        original(self, transport)

    monkeypatch.setattr(_Protocol, "connection_made", spy)
    return made


def _closed(transport: asyncio.BaseTransport) -> bool:
    return transport.is_closing() or transport.get_extra_info("socket").fileno() == -1


def test_a_second_event_loop_gets_its_own_connection_and_the_ended_loops_one_is_closed(
        redis_url: str, transports: list[asyncio.BaseTransport]) -> None:
    c = RespClient(redis_url)
    assert asyncio.run(c.execute("PING")) == b"PONG"  # that loop ends without an aclose
    first = transports[0]
    assert not _closed(first)

    async def second() -> None:
        assert await c.execute("PING") == b"PONG"
        assert _closed(first)  # once a socket the garbage collector would have reported
        await c.aclose()

    asyncio.run(second())
    assert len(transports) == 2 and all(_closed(t) for t in transports)


def test_aclose_closes_the_connection_of_a_loop_that_has_ended(
        redis_url: str, transports: list[asyncio.BaseTransport]) -> None:
    c = RespClient(redis_url)
    asyncio.run(c.execute("PING"))
    asyncio.run(c.aclose())
    assert len(transports) == 1 and _closed(transports[0])


async def test_a_refused_auth_closes_its_connection(
        redis_url: str, transports: list[asyncio.BaseTransport]) -> None:
    c = RespClient(redis_url.replace("redis://", "redis://:not-the-password@", 1))
    with pytest.raises(RespError):
        await c.execute("PING")
    assert len(transports) == 1 and _closed(transports[0])
    await c.aclose()


async def test_calls_made_in_one_loop_turn_go_out_in_one_write(redis_url: str) -> None:
    """Write coalescing: 40 concurrent reservations cost one system call, not 40, and each
    still gets its own reply, in order."""
    c = RespClient(redis_url)
    key = f"gw-resp-{uuid.uuid4().hex}"
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    try:
        assert await c.run_script(script, [key], [1]) == 1  # connected, script cached
        proto = next(iter(c._conns.values()))
        assert proto.transport is not None
        writes: list[bytes] = []
        real = proto.transport.write

        def spy(data: bytes | bytearray | memoryview) -> None:
            writes.append(bytes(data))
            real(data)

        proto.transport.write = spy  # type: ignore[method-assign]
        got = await asyncio.gather(*(c.run_script(script, [key], [1]) for _ in range(40)))
        assert got == list(range(2, 42))
        assert len(writes) == 1 and writes[0].count(b"EVALSHA") == 40
    finally:
        await c.execute("DEL", key)
        await c.aclose()
