"""A lean pooled HTTP/1.1 client on asyncio protocols and httptools' C parser.

Why not a general-purpose client: on the proxy path the upstream call is most of the gateway's
own CPU, and a general client spends it on features a gateway does not use per request
(cookie jars, redirects, tracing hooks, multidict headers, payload objects). This one writes
each request with a single `transport.write` of pre-joined bytes and parses with httptools,
roughly halving per-request CPU against aiohttp. It keeps what matters: keep-alive pools per
host, TLS, chunked and gzip bodies, connect/total/stall timeouts, streaming with back-pressure
free hand-off, and one transparent retry when a pooled connection turns out to be stale.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from gatewise.transport.base import (
    ConnectError,
    HttpRequest,
    HttpResponse,
    ProtocolError,
    ReadTimeout,
    TransportError,
)
from gatewise.transport.network import Network, Proxy, Route

_Key = tuple[str, str, int]


class _Conn(asyncio.Protocol):
    """One TCP connection; serves one request at a time."""

    __slots__ = (
        "_body",
        "_chunks",
        "_decoder",
        "_done",
        "_headers",
        "_headers_ready",
        "_parser",
        "_waiter",
        "closed",
        "got_bytes",
        "keep_alive",
        "key",
        "lost",
        "status",
        "transport",
    )

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost: asyncio.Future[None] | None = None  # done when the connection is gone
        # One parser for the connection's responses: a response read to its end leaves it
        # ready for the next one, and a connection goes back to the pool only then.
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._chunks: deque[bytes] = deque()
        self._decoder: Any = None
        self._headers_ready: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.got_bytes = False
        self.keep_alive = True

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)
        h = self._headers
        if (self.status and exc is None and "content-length" not in h
                and "chunked" not in h.get("transfer-encoding", "")):
            self.keep_alive = False
            self.on_message_complete()  # a body delimited by the end of the connection
            return
        self._fail(ProtocolError("connection closed by the server before the response ended"))

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        enc = self._headers.get("content-encoding", "")
        if enc in ("gzip", "deflate"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
        fut = self._headers_ready
        if fut is not None and not fut.done():
            fut.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            body = self._decoder.decompress(body)
        self._chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
        fut = self._done
        if fut is not None and not fut.done():
            fut.set_result(None)
        self._wake()

    # -- request side -----------------------------------------------------------------------
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def timed_out(self) -> None:
        """The request's `total` ran out (`H1Transport._expire`): whoever waits for its headers
        or body gets `ReadTimeout`, as the deadline's cancellation used to give them."""
        self._fail(ReadTimeout("request timed out"))

    def _fail(self, exc: TransportError) -> None:
        for fut in (self._headers_ready, self._done, self._waiter):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # whoever awaits it still gets the error; nobody has to

    def start(self, payload: bytes, loop: asyncio.AbstractEventLoop, *,
              whole: bool = False) -> None:
        """Sends a request; `whole`: its caller waits for the whole response only (`ended`),
        not for the headers first."""
        self._reset()
        if not whole:
            self._headers_ready = loop.create_future()
        self._done = loop.create_future()
        assert self.transport is not None
        self.transport.write(payload)

    async def headers(self) -> None:
        assert self._headers_ready is not None
        await self._headers_ready

    async def ended(self) -> None:
        assert self._done is not None
        await self._done

    def body(self) -> bytes:
        """The whole body, once `ended`."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def finished(self) -> bool:
        return self._done is not None and self._done.done() and self._done.exception() is None

    async def next_chunk(self, stall_s: float | None) -> bytes | None:
        """The next body piece; None at the end of the body."""
        while True:
            if self._chunks:
                return self._chunks.popleft()
            done = self._done
            if done is not None and done.done():
                done.result()
                return None
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            # A timer that fails the waiter, not `asyncio.wait_for`: on 3.11 `wait_for` loses a
            # cancellation that races a chunk's arrival, and a client that left would go on
            # streaming (a plain future cannot both complete and be cancelled).
            timer = None if stall_s is None else loop.call_later(stall_s, _stalled, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None

    @property
    def response_headers(self) -> dict[str, str]:
        return self._headers

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _TunnelHandshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: status line and headers, nothing after them (the
    upstream speaks only after our TLS ClientHello)."""

    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self._buf = bytearray()
        self._done = done

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if b"\r\n\r\n" in self._buf and not self._done.done():
            self._done.set_result(bytes(self._buf))
        elif len(self._buf) > 16384 and not self._done.done():
            self._done.set_exception(ProtocolError("proxy answered CONNECT with oversized headers"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_exception(ConnectionResetError("proxy closed the connection"))


async def _tunnel(loop: asyncio.AbstractEventLoop, key: _Key, proxy: Proxy,
                  ctx: ssl.SSLContext, where: str) -> _Conn:
    """CONNECT host:port through the proxy, then TLS to the upstream inside the tunnel."""
    _, host, port = key
    done: asyncio.Future[bytes] = loop.create_future()
    raw, _ = await loop.create_connection(lambda: _TunnelHandshake(done), proxy.host, proxy.port)
    try:
        name = host if host.isascii() else host.encode("idna").decode("ascii")
        authority = f"{name}:{port}" if ":" not in name else f"[{name}]:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy.authorization:
            head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        raw.write((head + "\r\n").encode("latin-1"))
        answer = await done
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        code = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        if not 200 <= code < 300:
            reason = "proxy authentication failed" if code == 407 else \
                f"proxy answered CONNECT with {code or 'garbage'}"
            raise ConnectError(f"cannot connect to {where}: {reason}")
        conn = _Conn(key)
        tls = await loop.start_tls(raw, conn, ctx, server_hostname=host)
        if tls is None:
            raise ConnectError(f"cannot connect to {where}: TLS not started")
        conn.connection_made(tls)
        return conn
    except BaseException:
        raw.close()
        raise


def _stalled(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("stream stalled: no bytes within the read timeout"))


class _Body:
    __slots__ = ("_conn", "_stall")

    def __init__(self, conn: _Conn, stall_s: float | None) -> None:
        self._conn = conn
        self._stall = stall_s

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunk = await self._conn.next_chunk(self._stall)
            if chunk is None:
                raise StopAsyncIteration
            if chunk:
                return chunk


class _Stream:
    """A response whose body is read as it arrives; returns its connection when drained."""

    __slots__ = ("_client", "_conn", "_read_timeout", "headers", "status")

    def __init__(self, client: H1Transport, conn: _Conn, read_timeout: float | None) -> None:
        self._client = client
        self._conn = conn
        self._read_timeout = read_timeout
        self.status: int = conn.status
        self.headers: Mapping[str, str] = conn.response_headers

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        # A plain iterator object, not an async generator: a consumer that stops early (the
        # provider's end marker) leaves nothing for asyncio's generator finaliser to clean up.
        return _Body(self._conn, self._read_timeout)

    async def read(self) -> bytes:
        parts = [c async for c in self.aiter_bytes()]
        return b"".join(parts)

    async def aclose(self) -> None:
        self._client._release(self._conn)


class _Deadlines:
    """The connections of one event loop waiting for a response, with the loop time their
    request's `total` runs out. One timer watches them all, armed for the earliest deadline,
    rather than an `asyncio.timeout` per request: its context manager, task lookup and timer
    were ~4% of the bare proxy path's CPU (issue 15). Every request of a deployment has the
    same `total`, so a new deadline is never the earliest and the timer is not touched per
    request. One per loop: each timer runs on the loop (and thread) of the requests it ends."""

    __slots__ = ("_at", "_loop", "_timer", "conns")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.conns: dict[_Conn, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0

    def add(self, conn: _Conn, deadline: float) -> None:
        self.conns[conn] = deadline
        timer = self._timer
        if timer is None or deadline < self._at:
            if timer is not None:
                timer.cancel()
            self._arm(deadline)

    def _arm(self, at: float) -> None:
        self._at = at
        self._timer = self._loop.call_at(at, self._expire)

    def _expire(self) -> None:
        """Times out every request past its deadline; re-arms for the earliest one left."""
        self._timer = None
        now = self._loop.time() + 0.001  # a timer may fire up to a tick early
        conns = self.conns
        for conn in [c for c, deadline in conns.items() if deadline <= now]:
            del conns[conn]
            conn.timed_out()
        if conns:
            self._arm(min(conns.values()))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class H1Transport:
    def __init__(self, *, limit_per_host: int = 256, keepalive: float = 60.0,
                 network: Network | None = None) -> None:
        self._idle: dict[_Key, deque[_Conn]] = {}
        self._limit = limit_per_host
        self._keepalive = keepalive
        # Proxies and TLS per origin (`transport.network`); the default is direct connections
        # verified against the system trust store.
        self._network = network or Network()
        self._routes: dict[_Key, Route] = {}
        self._origins: dict[str, tuple[_Key, bytes, bytes]] = {}
        # The `total` of the requests waiting for a response, per event loop (`_Deadlines`).
        self._deadlines: dict[asyncio.AbstractEventLoop, _Deadlines] = {}

    # -- connections -------------------------------------------------------------------------
    def _route(self, key: _Key) -> Route:
        route = self._routes.get(key)
        if route is None:
            route = self._network.route(key)
            if len(self._routes) < 1024:
                self._routes[key] = route
        return route

    def _origin(self, url: str) -> tuple[_Key, bytes, bytes]:
        """(pool key, header lines every request to it carries, request target), parsing each
        origin only once. Plain http through a proxy uses the absolute-form target and carries
        `Proxy-Authorization`; https through a proxy is a CONNECT tunnel, so neither."""
        scheme, _, rest = url.partition("://")
        hostport, slash, path = rest.partition("/")
        origin = scheme + "://" + hostport
        cached = self._origins.get(origin)
        if cached is None:
            parts = urlsplit(origin)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            default = port == (443 if parts.scheme == "https" else 80)
            host_header = (host if default else f"{host}:{port}").encode("idna")
            key = (parts.scheme, host, port)
            lines = b"Host: " + host_header + b"\r\n"
            prefix = b""
            proxy = self._route(key).proxy
            if proxy is not None and parts.scheme == "http":
                prefix = b"http://" + host_header
                if proxy.authorization:
                    lines += b"Proxy-Authorization: " + proxy.authorization.encode() + b"\r\n"
            cached = (key, lines, prefix)
            if len(self._origins) < 1024:
                self._origins[origin] = cached
        return cached[0], cached[1], cached[2] + ("/" + path if slash else "/").encode("latin-1")

    async def _connect(self, key: _Key, connect_s: float | None) -> _Conn:
        scheme, host, port = key
        route = self._route(key)
        proxy = route.proxy
        ctx = route.ssl_context
        loop = asyncio.get_running_loop()
        where = f"{scheme}://{host}:{port}"
        if proxy is not None:
            where += f" through proxy {proxy.display}"
        try:
            async with asyncio.timeout(connect_s):  # not `wait_for`, which can lose a cancel
                if proxy is None:
                    _, conn = await loop.create_connection(
                        lambda: _Conn(key), host, port, ssl=ctx,
                        server_hostname=host if ctx else None)
                elif ctx is None:  # plain http: requests go to the proxy in absolute form
                    _, conn = await loop.create_connection(lambda: _Conn(key), proxy.host,
                                                           proxy.port)
                else:
                    conn = await _tunnel(loop, key, proxy, ctx, where)
        except TimeoutError:
            raise ConnectError(f"timed out connecting to {where}") from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS handshake with {where} failed: "
                               f"{exc.reason or type(exc).__name__}") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {where}: "
                               f"{exc.strerror or type(exc).__name__}") from None
        return conn

    def _pooled(self, key: _Key) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def _release(self, conn: _Conn) -> None:
        if conn.closed or not conn.keep_alive or not conn.finished:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, deque())
        if len(idle) >= self._limit:
            conn.close()
            return
        idle.append(conn)

    # -- deadlines ---------------------------------------------------------------------------
    def _watch(self, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        """A new loop's `_Deadlines`; those of closed loops are dropped here (a library user
        may run one `asyncio.run` after another on one transport: no loop is kept past its
        close by a later one)."""
        for old in [lp for lp in self._deadlines if lp.is_closed()]:
            self._deadlines.pop(old).close()
        return self._deadlines.setdefault(loop, _Deadlines(loop))

    async def _connect_by(self, key: _Key, connect_s: float | None,
                          deadline: float | None) -> _Conn:
        """`_connect`, within what is left of the request's `total`."""
        if deadline is None:
            return await self._connect(key, connect_s)
        try:
            async with asyncio.timeout_at(deadline):
                return await self._connect(key, connect_s)
        except TimeoutError:
            raise ReadTimeout("request timed out") from None

    # -- requests ----------------------------------------------------------------------------
    @staticmethod
    def _payload(request: HttpRequest, host_line: bytes, target: bytes) -> bytes:
        body = request.body
        lines = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n", host_line]
        for k, v in request.headers.items():
            lines.append(f"{k}: {v}\r\n".encode("latin-1"))
        if body is not None:
            lines.append(b"content-length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        return b"".join(lines)

    async def _open(self, request: HttpRequest, watch: _Deadlines | None = None,
                    deadline: float | None = None, *, whole: bool = False) -> _Conn:
        """Sends the request and waits for the response headers, on a pooled connection when
        one is idle; `whole`: for the whole response instead (`send`: one wake-up of the
        calling task less when the headers and the body arrive in separate reads, and each
        wake-up resumes every coroutine of the pipeline). A reused connection that dies before
        any byte arrives (the server closed it while idle) is retried once on a fresh one:
        nothing reached the application. `deadline` (loop time, with the loop's `watch`): the
        connection returned stays in `watch` until the caller takes it out."""
        key, host_line, target = self._origin(request.url)
        payload = self._payload(request, host_line, target)
        loop = asyncio.get_running_loop()
        t = request.timeouts
        for attempt in (0, 1):
            conn = self._pooled(key) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect_by(key, t.connect, deadline)
            conn.start(payload, loop, whole=whole)
            if watch is not None and deadline is not None:
                watch.add(conn, deadline)
            try:
                await (conn.ended() if whole else conn.headers())
                if conn.status == 407 and key[0] == "http" and self._route(key).proxy:
                    # The proxy, not the upstream, refused: a connection failure, not an
                    # upstream error status (the message names no credential).
                    conn.close()
                    raise ConnectError(f"cannot connect to http://{key[1]}:{key[2]} through "
                                       "proxy: proxy authentication failed")
                return conn
            except BaseException as exc:
                if watch is not None:
                    watch.conns.pop(conn, None)
                conn.close()
                if isinstance(exc, ProtocolError) and reused and not conn.got_bytes:
                    continue
                raise
        raise ProtocolError("unreachable")

    async def send(self, request: HttpRequest) -> HttpResponse:
        """The whole response, within `timeouts.total` (`ReadTimeout` when it runs out)."""
        total = request.timeouts.total
        if total is None:
            watch = deadline = None
        else:
            loop = asyncio.get_running_loop()
            watch = self._deadlines.get(loop)
            if watch is None:
                watch = self._watch(loop)
            deadline = loop.time() + total
        conn = await self._open(request, watch, deadline, whole=True)
        if watch is not None:
            watch.conns.pop(conn, None)
        body = conn.body()
        status, headers = conn.status, conn.response_headers
        self._release(conn)
        return HttpResponse(status, headers, body)

    async def open_stream(self, request: HttpRequest) -> _Stream:
        t = request.timeouts
        try:
            async with asyncio.timeout(t.read):
                conn = await self._open(request)
        except TimeoutError:
            raise ReadTimeout("no response headers within the read timeout") from None
        return _Stream(self, conn, t.read)

    async def aclose(self) -> None:
        """Closes idle connections and waits (briefly) until they are gone: a TLS connection
        says close_notify first, and a loop closed before that finishes leaks the socket."""
        for loop, watch in list(self._deadlines.items()):
            if not watch.conns:  # a request still in flight keeps its deadline
                watch.close()
                del self._deadlines[loop]
        closing = [conn for idle in self._idle.values() for conn in idle]
        for conn in closing:
            conn.close()
        pending = [c.lost for c in closing if c.lost is not None and not c.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
            for conn in closing:
                if conn.lost is not None and not conn.lost.done() and conn.transport:
                    conn.transport.abort()
        self._idle.clear()
