"""Connection limits, through a real server on 127.0.0.1 spoken to with raw sockets: header size
and count (431), slow headers and bodies (408), malformed HTTP (400), all in OpenAI's error JSON;
and what must keep working under them: keep-alive, pipelining, slow-but-moving bodies, long
streams. The limits are made small through config so every case takes well under a second or
two; every socket read is bounded."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

HEADER_BYTES = 4096
MAX_HEADERS = 20
HEADER_TIMEOUT = 0.3
BODY_GAP = 0.3
BODY_TOTAL = 1.0
KEEP_ALIVE = 0.3
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi there"}]}).encode()


@pytest.fixture(scope="module")
def gateway(openai_fake: FakeServer) -> Iterator[GatewayServer]:
    dep = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    config = {"models": {"m": [{"model": "fake/echo"}],
                         "endless": [{"model": "openai/gpt-endless", **dep}]},
              "server": {"max_header_bytes": HEADER_BYTES, "max_headers": MAX_HEADERS,
                         "header_timeout_s": HEADER_TIMEOUT, "body_timeout_s": BODY_GAP,
                         "body_total_timeout_s": BODY_TOTAL, "keep_alive_s": KEEP_ALIVE}}
    with GatewayServer(config) as srv:
        yield srv


def _connect(gateway: GatewayServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset after the answer counts as the close)."""
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def _read_one(sock: socket.socket) -> bytes:
    """One whole response (framed by content-length) on a connection that stays open."""
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw) < _framed_size(raw):
        data = sock.recv(65536)
        assert data, f"closed after {raw!r}"
        raw += data
    return raw


def _framed_size(raw: bytes) -> int:
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(head) + 4


def _parse(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The responses in `raw`, in order (bodies framed by content-length)."""
    responses = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        size = int(headers.get("content-length", "0"))
        responses.append((int(lines[0].split()[1]), headers, rest[:size]))
        raw = rest[size:]
    return responses


def _one_refusal(raw: bytes, status: int, code: str) -> str:
    """`raw` is exactly one refusal in OpenAI's error JSON, announcing the close; its message."""
    [(got, headers, body)] = _parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"].startswith("req_")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    return str(error["message"])


def _post_head(length: int, path: str = "/v1/chat/completions") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {length}\r\n\r\n").encode()


def test_a_header_over_the_byte_limit_gets_a_431_and_is_never_read_whole(
        gateway: GatewayServer) -> None:
    sock = _connect(gateway)
    sent = 0
    chunk = b"a" * 65536
    with sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < 64 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        message = _one_refusal(_read_all(sock), 431, "request_headers_too_large")
    assert sent < 64 << 20  # the server closed long before the header ended
    assert f"{HEADER_BYTES} bytes" in message


def test_ten_thousand_headers_get_a_431(gateway: GatewayServer) -> None:
    with _connect(gateway) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-H: v\r\n" * 10_000 + b"\r\n")
        _one_refusal(_read_all(sock), 431, "request_headers_too_large")


def test_more_header_fields_than_the_limit_get_a_431_even_when_small(
        gateway: GatewayServer) -> None:
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS))  # + Host: one too many
    with _connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        message = _one_refusal(_read_all(sock), 431, "request_headers_too_large")
    assert f"more than {MAX_HEADERS} header fields" in message


def test_headers_at_the_limits_are_served(gateway: GatewayServer) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS - 2))
    pad = b"X-Pad: " + b"p" * (HEADER_BYTES - len(head) - len(fields) - len(b"X-Pad: \r\n\r\n"))
    request = head + fields + pad + b"\r\n\r\n"
    assert len(request) == HEADER_BYTES
    with _connect(gateway) as sock:
        sock.sendall(request)
        [(status, _, body)] = _parse(_read_one(sock))
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_trailers_of_a_chunked_body_get_the_header_byte_limit(gateway: GatewayServer) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n")
    with _connect(gateway) as sock:
        try:
            sock.sendall(head + b"%x\r\n%s\r\n0\r\nX-Trailer: " % (len(CHAT), CHAT))
            for _ in range(64):
                sock.sendall(b"t" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        _one_refusal(_read_all(sock), 431, "request_headers_too_large")


def test_trailers_of_a_chunked_body_get_the_header_field_limit(gateway: GatewayServer) -> None:
    trailers = b"".join(b"X-T%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked"
                     b"\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n" % (len(CHAT), CHAT, trailers))
        message = _one_refusal(_read_all(sock), 431, "request_headers_too_large")
    assert f"more than {MAX_HEADERS} header fields" in message


def test_headers_that_trickle_past_the_timeout_get_a_408(gateway: GatewayServer) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        start = time.monotonic()
        sock.settimeout(0.05)
        raw = b""
        while not raw and time.monotonic() - start < 3:
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # a field every 50 ms: never idle, never done
                raw = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        waited = time.monotonic() - start
        sock.settimeout(2)
        message = _one_refusal(raw + _read_all(sock), 408, "request_timeout")
    assert HEADER_TIMEOUT * 0.8 < waited < HEADER_TIMEOUT + 1.0
    assert "headers" in message


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
        gateway: GatewayServer) -> None:
    with _connect(gateway) as sock:
        start = time.monotonic()
        assert _read_all(sock) == b""  # closed without a word: there was no request
        assert time.monotonic() - start < HEADER_TIMEOUT + 1.0


def test_a_body_that_stalls_gets_a_408(gateway: GatewayServer) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_post_head(len(CHAT)) + CHAT[:10])
        start = time.monotonic()
        message = _one_refusal(_read_all(sock), 408, "request_timeout")
        waited = time.monotonic() - start
    assert "stalled" in message
    assert BODY_GAP * 0.8 < waited < BODY_GAP + 1.0


def test_a_body_that_keeps_trickling_gets_a_408_at_the_total_bound(gateway: GatewayServer) -> None:
    body = b" " * 1000 + CHAT
    with _connect(gateway) as sock:
        sock.sendall(_post_head(len(body)))
        start = time.monotonic()
        sock.settimeout(0.1)
        raw = b""
        for byte in body:  # one byte per 100 ms: never stalled, never done
            try:
                sock.sendall(bytes([byte]))
                raw = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if raw or time.monotonic() - start > 3:
                break
        waited = time.monotonic() - start
        sock.settimeout(2)
        message = _one_refusal(raw + _read_all(sock), 408, "request_timeout")
    assert "not complete within" in message
    assert BODY_TOTAL * 0.8 < waited < BODY_TOTAL + 1.0


def test_a_body_with_pauses_shorter_than_the_timeout_is_served(gateway: GatewayServer) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_post_head(len(CHAT)))
        for part in (CHAT[:10], CHAT[10:30], CHAT[30:]):  # 3 pauses of 2/3 the gap each
            time.sleep(BODY_GAP * 2 / 3)
            sock.sendall(part)
        [(status, _, body)] = _parse(_read_one(sock))
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello! You said: hi there"


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"GARBAGE\r\n\r\n", id="request line"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n", id="header value"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", id="header name"),
    pytest.param(b"GET /h\xffz HTTP/1.1\r\nHost: x\r\n\r\n", id="non-ascii path"),
    pytest.param(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"transfer-encoding: chunked\r\n\r\nzz\r\n", id="chunk size"),
    pytest.param(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n"
                 b"content-length: 6\r\n\r\nhello!", id="two content-lengths"),
])
def test_malformed_http_gets_a_400_in_openai_shape(gateway: GatewayServer,
                                                   request_bytes: bytes) -> None:
    with _connect(gateway) as sock:
        sock.sendall(request_bytes)
        message = _one_refusal(_read_all(sock), 400, "invalid_http")
    assert message.startswith("malformed HTTP request")


def test_an_upgrade_request_is_answered_as_plain_http_then_closed(gateway: GatewayServer) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        [(status, headers, body)] = _parse(_read_all(sock))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert headers["connection"] == "close"


def test_keep_alive_serves_requests_in_turn_and_pipelined_then_closes_when_idle(
        gateway: GatewayServer) -> None:
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(gateway) as sock:
        for _ in range(3):
            sock.sendall(get)
            [(status, _, _)] = _parse(_read_one(sock))
            assert status == 200
        sock.sendall(get + _post_head(len(CHAT)) + CHAT + get)  # pipelined in one write
        start = time.monotonic()
        raw = _read_all(sock)  # ends when the idle connection is closed
        idle = time.monotonic() - start
    assert [status for status, _, _ in _parse(raw)] == [200, 200, 200]
    assert idle < KEEP_ALIVE + 1.0


def test_an_idle_connection_closes_keep_alive_after_its_last_response_not_its_first(
        gateway: GatewayServer) -> None:
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(gateway) as sock:
        for _ in range(3):  # each request comes after 0.6 of the keep-alive: 1.8 in all
            sock.sendall(get)
            [(status, _, _)] = _parse(_read_one(sock))
            assert status == 200
            time.sleep(KEEP_ALIVE * 0.6)
        sock.sendall(get)
        [(status, _, _)] = _parse(_read_one(sock))  # still open, long past the first deadline
        last = time.monotonic()
        assert status == 200 and _read_all(sock) == b""  # then closed when idle
        idle = time.monotonic() - last
    assert KEEP_ALIVE * 0.9 <= idle < KEEP_ALIVE + 1.0


def test_a_long_stream_is_not_cut_by_the_connection_timers(gateway: GatewayServer) -> None:
    body = json.dumps({"model": "endless", "stream": True,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    lasting = max(HEADER_TIMEOUT, BODY_GAP, BODY_TOTAL, KEEP_ALIVE) + 0.3  # past every timer
    with _connect(gateway) as sock:
        sock.sendall(_post_head(len(body)) + body)
        start = time.monotonic()
        raw = b""
        while time.monotonic() - start < lasting:
            data = sock.recv(65536)
            assert data, "the stream was cut"
            raw += data
        recent = sock.recv(65536)
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"tick" in recent and b"error" not in raw + recent
