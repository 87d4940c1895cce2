"""uvicorn's httptools protocol with the limits a server facing the open network needs.

uvicorn alone buffers a request's headers without limit (8 connections sending 64 MB headers
took a server from 38 to 578 MB), never times out a connection that is still sending its headers or its
body (uvicorn's keep-alive timer runs only between requests, and not before the first), and
answers malformed HTTP with a plain-text 400. `GatewayHttpProtocol` adds, per connection:

- a byte budget for the request line and headers (`server.max_header_bytes`), counted in
  `data_received` *before* the parser sees the bytes, so memory stays bounded while a giant
  header is still arriving; at most `server.max_headers` header (and trailer) fields. Either
  limit passed: 431. (A pipelined request whose start shares a read with the end of the one
  before is counted from the next read: it may reach twice the budget, never more.) Trailers
  of a chunked body get the same byte budget, counted as bytes fed without body data coming
  out (at most one read, 256 KiB, more);
- `server.header_timeout_s` for a request's headers, from the connection's start (a first
  request) or from the first byte of a later one: 408 (a connection that sent nothing is just
  closed); `server.body_timeout_s` without a byte of a request body, and
  `server.body_total_timeout_s` for the whole body: 408. Time when uvicorn itself stopped
  reading (the app is not reading the body yet) does not count against the client;
- idle keep-alive connections closed after `server.keep_alive_s`: uvicorn's rule, but one
  keep-alive watchdog per connection like the body's, not uvicorn's timer made at the end of
  every response and cancelled by the next request's first bytes (1.6 µs a request);
- malformed HTTP (request line, header, chunked framing) answered with a 400.

Every refusal is OpenAI's error JSON (`gatewise.server.errors`), with `connection: close`,
then the connection is closed. A refusal is written only where it cannot be mistaken for the
answer to another request: when a response (or a request whose answer is still being
computed) is in progress on the connection, the connection is closed without a word. A
request asking to upgrade the connection (websocket, h2c) is answered as plain HTTP, which
RFC 9110 §7.8 allows, and the connection closes after that answer: the parser drops whatever
followed the upgrade request in the same read, so the connection is out of step.

Cost (this runs for every request): while headers are arriving, an integer subtraction per
read; after them, only the body watchdog: a clock read per read of a body, and at most one
timer per connection per `body_timeout_s` (never one per request, never cancelled per
request). A request that arrives whole in one read arms no timer of ours. `on_header` and
`on_body` are uvicorn's own lines with one test or store added, not wrappers, so no call is
added per header or per body chunk. Measured in process: 0.7-1.3 µs per request over
uvicorn's own 13-15 µs (the gateway spends about 150 µs of CPU on a proxied request).

Writing: a response whose length is known goes out in one write, head and body together
(`_Cycle`), not uvicorn's two; a stream's head is still written at once.

Per request, uvicorn's own path is trimmed where it cost without doing anything: its
forwarded-headers middleware (a coroutine and a scan of the headers) runs only in front of a
request that has an `X-Forwarded-For` or `X-Forwarded-Proto` header, trusted as uvicorn trusts
them (`FORWARDED_ALLOW_IPS`, 127.0.0.1 by default); the cycle is made by a positional call,
not by uvicorn's eleven keywords and a class swap; `receive` makes no `Event.wait` coroutine
when the body is already in; one keep-alive watchdog per connection. With the timer, 35k of the
bare proxy's 739k instructions a request (callgrind; a fixed ASGI answer: 142k -> 113k).

Written against uvicorn 0.55's `HttpToolsProtocol`; it replaces uvicorn's `data_received`,
`on_header`, `on_body`, `on_headers_complete`, `on_response_complete`,
`_unset_keepalive_if_required` and its unsupported-upgrade handling, wraps
`on_message_complete`/`connection_made`/`connection_lost`, and replaces
`RequestResponseCycle.__init__`, `receive` and `send`.
`tests/unit/server/test_protocol.py` fails when any of those change upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl, service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from gatewise.config.schema import ServerConfig
from gatewise.errors import (
    GatewayError,
    MalformedRequestError,
    RequestHeadersTooLargeError,
    RequestTimeoutError,
)
from gatewise.server.errors import error_body
from gatewise.types.ids import unique_suffix

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

log = logging.getLogger("gatewise.server")

# The bytes uvicorn's `HEADER_RE` (names) and `HEADER_VALUE_RE` (values) match, both classes of
# one character: a header holds one iff `bytes.translate` deletes something, a table lookup per
# byte, where the regex's class test per byte cost ~1 us a response more (`_Cycle._start`).
_NAME_BAD = bytes(b for b in range(256) if HEADER_RE.fullmatch(bytes([b])))
_VALUE_BAD = bytes(b for b in range(256) if HEADER_VALUE_RE.fullmatch(bytes([b])))


_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})


def _proxied_app(config: Config) -> ASGI3Application:
    """The app behind uvicorn's `ProxyHeadersMiddleware` with the config's trusted addresses,
    as `proxy_headers=True` would have made it; made once per config (it parses the
    addresses), not per connection."""
    app: ASGI3Application | None = config.__dict__.get("_gatewise_proxied")
    if app is None:
        app = ProxyHeadersMiddleware(config.loaded_app, trusted_hosts=config.forwarded_allow_ips)
        config.__dict__["_gatewise_proxied"] = app
    return app


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; httptools re-raises it as the
    `__context__` of an `HttpParserCallbackError`."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class GatewayHttpProtocol(HttpToolsProtocol):
    """See the module docstring. `settings` is set per server by `http_protocol`."""

    settings: ClassVar[ServerConfig] = ServerConfig()

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        s = self.settings
        self.timeout_keep_alive = s.keep_alive_s  # type: ignore[assignment]  # a float is fine
        self._max_header_bytes = s.max_header_bytes
        self._max_headers = s.max_headers
        self._header_timeout = s.header_timeout_s
        self._body_gap = s.body_timeout_s
        self._body_total = s.body_total_timeout_s
        # Between a request's headers and its end the connection is "in the body".
        self._in_body = False
        self._header_room = s.max_header_bytes  # bytes the current header section may still use
        self._header_timer: asyncio.TimerHandle | None = None
        # One body watchdog per connection, not one timer per request: it is armed when a body
        # begins and none is pending, never cancelled when a body ends, and when it fires it
        # judges whichever body is in progress (or stops, between requests).
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_at = 0.0  # loop time of the body's last byte
        self._body_begun = 0.0  # loop time the body began; 0.0: headers just ended, not read yet
        self._body_fed = False  # the last feed gave body data to the app
        self._loose = 0  # body-phase bytes in a row that gave none (chunk lines, trailers)
        # uvicorn puts its forwarded-headers middleware in front of every request (a coroutine
        # and a scan of the headers: 7.6k instructions a request). `build_server` turns it
        # off; the same middleware is put in front of only a request that has such a header.
        self._forwarded = False
        self._proxied = None if config.proxy_headers else _proxied_app(config)
        # The keep-alive watchdog: armed when a response completes and none is pending, never
        # cancelled by the next request; when it fires, the connection is closed if it has
        # been idle (`_idle_at`: loop time of the last response; None while a request is in
        # progress) for `keep_alive_s`, else it re-arms for what is left.
        self._idle_at: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    # Connection lifecycle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never completes its first request's headers, even one that
        # sends nothing at all, is closed after the header timeout.
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # Keep-alive

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when bytes arrive (and when the connection is lost): the
        # connection is no longer idle. The watchdog stays; it judges when it fires.
        self._idle_at = None

    def on_response_complete(self) -> None:
        # uvicorn's `on_response_complete`, with the watchdog where it armed a new timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_at = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_at = now = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(now + self.timeout_keep_alive, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        idle_at = self._idle_at
        if idle_at is None or self.transport.is_closing():
            return  # a request is in progress: the response that ends it arms the watchdog
        due = idle_at + self.timeout_keep_alive
        if self.loop.time() >= due:
            self.timeout_keep_alive_handler()
        else:
            self._idle_timer = self.loop.call_at(due, self._idle_check)

    # Reading

    def data_received(self, data: bytes | memoryview) -> None:
        if self._in_body:
            self._body_at = self.loop.time()
            self._body_fed = False
            self._feed(data)
            if self._in_body:
                if self._body_begun == 0.0:  # the body of a request that began in this read
                    self._body_began()
                if self._body_fed:
                    self._loose = 0
                else:
                    self._loose += len(data)
                    if self._loose > self._max_header_bytes:
                        self._refuse(RequestHeadersTooLargeError(
                            f"request trailers (or chunk lines) over {self._max_header_bytes} "
                            "bytes"))
            return
        size = len(data)
        if size > self._header_room:
            self._feed_past_room(data)
            return
        self._header_room -= size
        self._feed(data)
        if self._in_body:
            if self._body_begun == 0.0 and not self.transport.is_closing():
                self._body_began()
        elif self._header_timer is None and self._header_room < self._max_header_bytes \
                and not self.transport.is_closing():
            # Part of a later request's headers: they now have the header timeout to finish.
            self._header_timer = self.loop.call_later(self._header_timeout,
                                                      self._headers_timed_out)

    def _feed_past_room(self, data: bytes | memoryview) -> None:
        """`data` holds more than the header budget left: the parser gets only the budget; if
        the headers did not end within it, 431, else the rest is read as usual."""
        room = self._header_room
        view = memoryview(data)
        self._header_room = 0
        self._feed(view[:room])
        if self.transport.is_closing():
            return
        if not self._in_body and self._header_room == 0:  # still the same unfinished headers
            self._refuse(RequestHeadersTooLargeError(
                f"request line and headers over {self._max_header_bytes} bytes"))
            return
        self.data_received(view[room:])

    def _feed(self, data: bytes | memoryview) -> None:
        self._idle_at = None  # `_unset_keepalive_if_required`, inline: this runs per read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._ignore_upgrade()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.error)
            else:  # uvicorn could not read the request (e.g. a path that is not ASCII)
                self._refuse(MalformedRequestError("malformed HTTP request"))
        except httptools.HttpParserError as exc:
            # llhttp's reason is a fixed text ("Invalid method encountered"), never input.
            self._refuse(MalformedRequestError(f"malformed HTTP request: {exc}"))

    def _ignore_upgrade(self) -> None:
        cycle = self.cycle
        log.debug("upgrade request answered as plain HTTP; the connection closes after it")
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    # Parser callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's `on_header`, plus the field count of trailers (fields after a chunked body;
        # uvicorn adds them to the request's headers). Headers are counted once, when complete.
        if self._in_body and len(self.headers) >= self._max_headers:
            raise _Refused(RequestHeadersTooLargeError(
                f"more than {self._max_headers} header fields"))
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        elif name in _FORWARDED:
            self._forwarded = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if len(self.headers) > self._max_headers:  # at most ~4,000: the bytes are bounded
            raise _Refused(RequestHeadersTooLargeError(
                f"more than {self._max_headers} header fields"))
        self._begin()
        self._in_body = True
        self._body_begun = 0.0
        self._loose = 0

    def _begin(self) -> None:
        """uvicorn's `on_headers_complete`, with our cycle made by a positional call, and the
        forwarded-headers middleware only in front of a request that has such a header."""
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        root = self.root_path
        scope["path"] = root + path
        scope["raw_path"] = root.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        if self._forwarded:
            self._forwarded = False
            app = self._proxied or app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing = self.cycle
        self.cycle = cycle = _Cycle(
            scope, self.transport, self.flow, self.logger, self.access_logger, self.access_log,
            self.server_state.default_headers, asyncio.Event(), self.expect_100_continue,
            http_version != "1.0" and parser.should_keep_alive(), self.on_response_complete)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, app)
        else:  # pipelined: queued behind the request in progress
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    def on_body(self, body: bytes) -> None:
        # uvicorn's `on_body`, plus the note that body data came out of this feed.
        self._body_fed = True
        if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
            return
        self.cycle.body += body
        if len(self.cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        self.cycle.message_event.set()

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self._in_body = False
        self._header_room = self._max_header_bytes

    # Timers

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self._in_body or self.transport.is_closing():
            return
        cycle = self.cycle
        if self.pipeline or (cycle is not None and not cycle.response_complete):
            # An earlier request is still being answered: judge these headers after it.
            self._header_timer = self.loop.call_later(self._header_timeout,
                                                      self._headers_timed_out)
            return
        began = self._header_room < self._max_header_bytes
        self._refuse(RequestTimeoutError(
            f"request headers not complete within {self._header_timeout:g} s") if began else None)

    def _body_began(self) -> None:
        """A request's headers ended and its body is still to come (the read ended first)."""
        now = self.loop.time()
        self._body_at = self._body_begun = now
        if self._body_timer is None:
            self._body_timer = self.loop.call_at(now + min(self._body_gap, self._body_total),
                                                 self._body_check)

    def _body_check(self) -> None:
        self._body_timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or self._body_begun == 0.0:
            # uvicorn stopped reading (the app has not read yet), or this body just began
            self._body_at = self._body_begun = now
        if now - self._body_begun >= self._body_total:
            self._refuse(RequestTimeoutError(
                f"request body not complete within {self._body_total:g} s"))
        elif now - self._body_at >= self._body_gap:
            self._refuse(RequestTimeoutError(
                f"request body stalled: no data for {self._body_gap:g} s"))
        else:
            self._body_timer = self.loop.call_at(
                min(self._body_at + self._body_gap, self._body_begun + self._body_total),
                self._body_check)

    # Refusing

    def _refuse(self, error: GatewayError | None) -> None:
        """Answers `error` where that answer cannot be taken for another request's, stops the
        request in progress (its app sees a disconnect and writes nothing more), closes."""
        cycle = self.cycle
        if self._in_body:  # `cycle` is this request
            answerable = cycle is not None and not cycle.response_started and not self.pipeline
        else:  # `cycle` is an earlier request, if any
            answerable = not self.pipeline and (cycle is None or cycle.response_complete)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        transport = self.transport
        if error is not None:
            log.debug("refused a request from %s: %s", self.client, error.code)
            if answerable and not transport.is_closing():
                transport.write(self._error_response(error))
        self._cancel_timers()
        transport.close()

    def _error_response(self, error: GatewayError) -> bytes:
        status, _, body = error_body(error, "")
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n"
                    b"x-request-id: req_%s\r\nconnection: close\r\n\r\n"
                    % (len(body), unique_suffix().encode()))
        return b"".join(head) + body


class _Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle, except that the head of a response with a
    `content-length` is written together with its body: one `write`, one TCP segment, where
    uvicorn makes two (a system call and a segment each, on both ends: the largest part of a
    small answer's kernel time). A streamed response (no `content-length`) still has its head
    written at once, so a stream's headers never wait for its first event.

    `send` is uvicorn 0.55's `RequestResponseCycle.send` (fingerprinted in
    `tests/unit/server/test_protocol.py`) with the head held: nothing else differs. A held head
    whose body never comes is never written; uvicorn then closes the connection (the app
    returned without completing its response), which is what the client saw before, less a
    head that promised a body."""

    _held: bytes | None = None

    def __init__(self, scope: Any, transport: asyncio.Transport, flow: FlowControl,
                 logger: logging.Logger, access_logger: logging.Logger, access_log: bool,
                 default_headers: list[tuple[bytes, bytes]], message_event: asyncio.Event,
                 expect_100_continue: bool, keep_alive: bool,
                 on_response: Callable[..., None]) -> None:
        # uvicorn's `__init__` (fingerprinted), called positionally: eleven keywords cost
        # more than the assignments.
        self.scope = scope
        self.transport = transport
        self.flow = flow
        self.logger = logger
        self.access_logger = access_logger
        self.access_log = access_log
        self.default_headers = default_headers
        self.message_event = message_event
        self.on_response = on_response
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue
        self.body = bytearray()
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0

    async def receive(self) -> Any:
        # uvicorn's `receive` (fingerprinted), except that it waits on the event only when the
        # event is not set yet: a request whose body is all in makes no `Event.wait` coroutine.
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            event = self.message_event
            if not event.is_set():
                await event.wait()
            event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        message = {"type": "http.request", "body": bytes(self.body), "more_body": self.more_body}
        self.body = bytearray()
        return message

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError("Expected ASGI message 'http.response.start', but got "
                                   f"'{message['type']}'.")
            self._start(message)
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError("Expected ASGI message 'http.response.body', but got "
                                   f"'{message['type']}'.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            held, self._held = self._held, None
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
                if held is not None:
                    self.transport.write(held)
            elif self.chunked_encoding:
                content = [held] if held is not None else []
                if body:
                    content += [b"%x\r\n" % len(body), body, b"\r\n"]
                if not more_body:
                    content.append(b"0\r\n\r\n")
                self.transport.write(b"".join(content))
            else:
                num_bytes = len(body)
                if num_bytes > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= num_bytes
                self.transport.write(body if held is None else held + body)
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after "
                               "response already completed.")

    def _start(self, message: Any) -> None:
        """The status line and headers, checked and framed as uvicorn does; held when a body
        of known length follows, written now otherwise."""
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        headers = self.default_headers + list(message.get("headers", []))
        if self.access_log:
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope),
                                    self.scope["method"],
                                    get_path_with_query_string(self.scope),
                                    self.scope["http_version"], status_code)
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        # Both patterns are one-character classes: a match in the joined names (values) is a
        # match in one of them. Two checks a response instead of two searches a header.
        names = b"".join([n for n, _ in headers])
        if len(names.translate(None, _NAME_BAD)) != len(names):
            raise RuntimeError("Invalid HTTP header name.")
        values = b"".join([v for _, v in headers])
        if len(values.translate(None, _VALUE_BAD)) != len(values):
            raise RuntimeError("Invalid HTTP header value.")
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" \
                and status_code not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        if self.chunked_encoding is False:
            self._held = b"".join(content)
        else:
            self.transport.write(b"".join(content))


def http_protocol(settings: ServerConfig) -> type[GatewayHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to these settings."""
    return type("GatewayHttpProtocol", (GatewayHttpProtocol,), {"settings": settings})
