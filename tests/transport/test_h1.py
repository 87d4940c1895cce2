"""The native HTTP/1.1 transport against raw asyncio servers that send exact bytes: framing,
keep-alive reuse, stale-connection retry, compression, timeouts, and uvloop."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from gatewise.transport.base import (
    ConnectError,
    HttpRequest,
    ProtocolError,
    ReadTimeout,
    Timeouts,
)
from gatewise.transport.h1 import H1Transport, _Conn

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(r, w)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def __aenter__(self) -> str:
        self._srv = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._srv.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self._srv.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


@pytest.fixture
async def h1() -> AsyncIterator[H1Transport]:
    t = H1Transport()
    yield t
    await t.aclose()


def _post(url: str, body: bytes = b"{}", **t: float) -> HttpRequest:
    return HttpRequest("POST", url + "/v1/chat/completions", {"content-type": "application/json"},
                       body, Timeouts(**t) if t else Timeouts())


async def test_keep_alive_reuses_one_connection(h1: H1Transport) -> None:
    seen: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await _read_request(r))
            w.write(_ok(b'{"n":%d}' % len(seen)))

    srv = Server(handler)
    async with srv as url:
        for i in range(1, 6):
            resp = await h1.send(_post(url, b'{"x":1}'))
            assert (resp.status, resp.body) == (200, b'{"n":%d}' % i)
    assert srv.connections == 1
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"content-length: 7\r\n" in seen[0] and seen[0].endswith(b'\r\n\r\n{"x":1}')


async def test_a_pooled_connection_closed_by_the_server_is_retried_once(h1: H1Transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(_ok(b"{}"))
        await w.drain()
        await _read_request(r)  # the next request arrives, and the server hangs up unanswered

    srv = Server(handler)
    async with srv as url:
        assert (await h1.send(_post(url))).status == 200
        assert (await h1.send(_post(url))).status == 200
    assert srv.connections == 2


async def test_chunked_and_gzip_bodies_are_decoded(h1: H1Transport) -> None:
    payload = gzip.compress(b'{"hello": "world"}')

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                b"transfer-encoding: chunked\r\n\r\n")
        for i in range(0, len(payload), 5):
            part = payload[i:i + 5]
            w.write(b"%x\r\n%s\r\n" % (len(part), part))
        w.write(b"0\r\n\r\n")

    async with Server(handler) as url:
        resp = await h1.send(_post(url))
    assert resp.body == b'{"hello": "world"}'


async def test_one_connection_reads_chunked_gzip_and_plain_responses_in_turn(
        h1: H1Transport) -> None:
    """A connection keeps its parser from one response to the next (`_Conn.__init__`)."""
    payload = gzip.compress(b'{"zipped": true}')

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
            await _read_request(r)
            w.write(_ok(b'{"plain": true}'))

    srv = Server(handler)
    async with srv as url:
        for _ in range(2):
            assert (await h1.send(_post(url))).body == b'{"zipped": true}'
            assert (await h1.send(_post(url))).body == b'{"plain": true}'
    assert srv.connections == 1


async def test_a_body_delimited_by_connection_close_is_complete(h1: H1Transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
                b'{"done": true}')
        await w.drain()

    async with Server(handler) as url:
        assert (await h1.send(_post(url))).body == b'{"done": true}'


async def test_truncated_body_is_a_protocol_error(h1: H1Transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial")
        await w.drain()

    async with Server(handler) as url:
        with pytest.raises(ProtocolError):
            await h1.send(_post(url))


async def test_streams_arrive_piece_by_piece_and_a_stall_times_out(h1: H1Transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n")
        for i in range(3):
            msg = b"data: %d\n\n" % i
            w.write(b"%x\r\n%s\r\n" % (len(msg), msg))
            await w.drain()
            await asyncio.sleep(0.01)
        await asyncio.sleep(5)

    async with Server(handler) as url:
        stream = await h1.open_stream(_post(url, read=0.3))
        got: list[bytes] = []
        with pytest.raises(ReadTimeout):
            async for chunk in stream.aiter_bytes():
                got.append(chunk)
        await stream.aclose()
    assert b"".join(got) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert len(got) == 3


async def test_a_cancel_that_races_a_chunk_is_not_lost(h1: H1Transport,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # A client leaves (its request's task is cancelled) in the very loop iteration a chunk
    # arrives. `asyncio.wait_for` on 3.11 would return the chunk and drop the cancellation,
    # and the stream would go on for nobody; the reader must raise CancelledError instead.
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n")
        for i in range(500):
            msg = b"data: %d\n\n" % i
            w.write(b"%x\r\n%s\r\n" % (len(msg), msg))
            await w.drain()
            await asyncio.sleep(0.01)

    got: list[bytes] = []

    async def read(url: str) -> None:
        stream = await h1.open_stream(_post(url, read=5.0))
        try:
            async for chunk in stream.aiter_bytes():
                got.append(chunk)
        finally:
            await stream.aclose()

    on_body = _Conn.on_body
    armed: list[asyncio.Task[None]] = []

    def on_body_then_cancel(conn: _Conn, body: bytes) -> None:
        on_body(conn, body)
        if got and armed:  # after the first chunk: cancel right behind this one's wake-up
            asyncio.get_running_loop().call_soon(armed.pop().cancel)

    monkeypatch.setattr(_Conn, "on_body", on_body_then_cancel)
    async with Server(handler) as url:
        task = asyncio.create_task(read(url))
        armed.append(task)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 2)
    assert task.cancelled() and 1 <= len(got) <= 3


async def test_a_slow_upstream_hits_the_total_timeout(h1: H1Transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        await asyncio.sleep(5)

    async with Server(handler) as url:
        with pytest.raises(ReadTimeout):
            await h1.send(_post(url, total=0.2))


async def test_each_request_keeps_its_own_total_whatever_else_is_in_flight(
        h1: H1Transport) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = await _read_request(r)
        await asyncio.sleep(0.6 if body.endswith(b'"slow"') else 0.0)
        w.write(_ok(b"{}"))

    async with Server(handler) as url:
        patient = asyncio.ensure_future(h1.send(_post(url, b'"slow"', total=5)))
        await asyncio.sleep(0.05)  # the later deadline is the one being watched
        started = asyncio.get_running_loop().time()
        with pytest.raises(ReadTimeout):
            await h1.send(_post(url, b'"slow"', total=0.2))
        assert asyncio.get_running_loop().time() - started < 0.5
        assert (await patient).status == 200
        assert (await h1.send(_post(url, total=0.2))).status == 200  # a timeout spoils nothing


async def test_connection_refused_is_a_connect_error(h1: H1Transport) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(ConnectError, match="cannot connect"):
        await h1.send(_post(f"http://127.0.0.1:{port}"))


def test_works_on_uvloop() -> None:
    async def main() -> bytes:
        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while True:
                await _read_request(r)
                w.write(_ok(b'{"loop": "uv"}'))

        t = H1Transport()
        async with Server(handler) as url:
            bodies = [(await t.send(_post(url))).body for _ in range(3)]
        await t.aclose()
        return bodies[-1]

    assert uvloop.run(main()) == b'{"loop": "uv"}'


def test_a_transport_used_from_one_event_loop_after_another_keeps_no_closed_loop() -> None:
    """A library user may call `asyncio.run` again and again with one transport."""
    h1 = H1Transport()

    async def once(url: str) -> int:
        return (await h1.send(_post(url, total=5))).status

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(_ok(b"{}"))

    async def serve_and_call() -> int:
        async with Server(handler) as url:
            return await once(url)

    for _ in range(3):
        assert asyncio.run(serve_and_call()) == 200
    assert len(h1._deadlines) == 1  # the last loop's; the two before were dropped
