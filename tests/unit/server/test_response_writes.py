"""How the server protocol puts a response on the wire: a response of known length leaves in
one write (head and body together), a stream's head leaves before its first event. Driven in
process through `GatewayHttpProtocol` with a transport that records each write, so the write
boundaries, which a socket peer cannot see reliably, are what is checked."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from gatewise.config.schema import ServerConfig
from gatewise.server.protocol import http_protocol

REQUEST = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"
HEAD_REQUEST = b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """The socket's side of the protocol: every `write` kept as one element."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000),
                "peername": ("127.0.0.1", 50000)}.get(name, default)


async def serve_one(app: Any, request: bytes = REQUEST) -> RecordingTransport:
    """One request through a fresh protocol; returns once the app has finished."""
    config = uvicorn.Config(app, proxy_headers=False, lifespan="off")
    state = ServerState()
    proto = http_protocol(ServerConfig())(config, state, {}, asyncio.get_running_loop())
    wire = RecordingTransport()
    proto.connection_made(wire)
    proto.data_received(request)
    await asyncio.gather(*state.tasks)
    proto.connection_lost(None)
    return wire


async def test_a_response_of_known_length_goes_out_in_one_write() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    wire = await serve_one(app)
    assert len(wire.writes) == 1
    head, _, body = wire.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
    assert body == b'{"ok":true}'


async def test_a_body_sent_in_pieces_carries_the_head_with_its_first_piece() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    wire = await serve_one(app)
    assert len(wire.writes) == 2
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire.writes[0].endswith(b"\r\n\r\nabc") and wire.writes[1] == b"def"


async def test_a_streams_head_is_written_before_its_first_event_arrives() -> None:
    seen_before_first_event: list[list[bytes]] = []
    wire_box: list[RecordingTransport] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0)  # the first event is still being produced
        seen_before_first_event.append(list(wire_box[0].writes))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(app, proxy_headers=False, lifespan="off")
    state = ServerState()
    proto = http_protocol(ServerConfig())(config, state, {}, asyncio.get_running_loop())
    wire = RecordingTransport()
    wire_box.append(wire)
    proto.connection_made(wire)
    proto.data_received(REQUEST)
    await asyncio.gather(*state.tasks)
    proto.connection_lost(None)

    [before] = seen_before_first_event
    assert len(before) == 1 and before[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in before[0]
    assert wire.writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


async def test_a_head_request_gets_the_head_alone() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    wire = await serve_one(app, HEAD_REQUEST)
    assert len(wire.writes) == 1
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire.writes[0].endswith(b"content-length: 11\r\n\r\n")


async def test_a_head_whose_body_never_comes_is_never_written() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})

    wire = await serve_one(app)
    assert wire.writes == [] and wire.closed


async def test_a_header_that_could_split_the_response_is_refused_before_anything_is_written(
) -> None:
    refused: list[str] = []

    def app_with(headers: list[tuple[bytes, bytes]]) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            try:
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", b"2"), *headers]})
            except RuntimeError as exc:
                refused.append(str(exc))
        return app

    for headers in ([(b"x-ok", b"fine"), (b"x-evil\r\nset-cookie", b"a")],
                    [(b"x-ok", b"fine"), (b"x-evil", b"a\r\nset-cookie: b")],
                    [(b"x bad", b"a")]):
        wire = await serve_one(app_with(headers))
        assert b"set-cookie" not in b"".join(wire.writes)
    assert refused == ["Invalid HTTP header name.", "Invalid HTTP header value.",
                       "Invalid HTTP header name."]
    good = await serve_one(app_with([(b"x-ok", b"tab\tis allowed")]))
    assert not refused[3:]
    assert good.writes == []  # head held for the body, which this app never sends
