"""The lean RESP client the budget counters and rate-limit windows run on: replies split at
any byte, pipelined calls answered in order, scripts reloaded after `SCRIPT FLUSH`, the
database chosen by the URL, and a killed connection failing only the calls in flight."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from gatewise.storage.resp import RespClient, RespError, Script, _Incomplete, _parse


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
