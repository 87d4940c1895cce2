"""A lean Redis client for the hot-path stores (budget counters, rate-limit windows, and the
key-value store's `get`/`set`, which the response cache runs on every request).

Why not redis-py here: a budgeted request pays two script calls (reserve, settle) and a
rate-limited one a third, and redis-py's asyncio path costs about twice the loopback round
trip per call in Python (connection-pool checkout, command objects, response callbacks). This
client keeps one connection per event loop, pipelines concurrent calls on it (Redis answers in
order, so replies resolve a FIFO of futures) and parses RESP2 straight from the socket
buffer. It speaks only what those stores need: EVALSHA with an EVAL fallback, plus AUTH and
SELECT at connect, plus plain GET/SET. Everything else (pub/sub, scans, TLS, sockets) stays
on redis-py.

Kept over redis-py + hiredis by measurement (`bench/resp_bench.py`, the reserve/settle
EVALSHA round trip, same run, uvloop): about a fifth of redis-py's CPU per call with one
call in flight, a ninth with 64 in flight, a third of its explicit pipelines' (which the
gateway could not use anyway: each request's reservation is its own).

Writes are coalesced: a call appends its encoded command to the connection's outgoing buffer
and the buffer goes out in one `write` at the next turn of the event loop, so the commands
that concurrent requests issue in the same turn (a loaded gateway: every request's rate-limit
hits, reservation and settle) cost one system call, and their replies tend to arrive in one
read. One request alone waits one loop turn more (microseconds). A script call is encoded
from a header cached per (script, arity); a call on an open connection awaits nothing but its
reply (the connection lookup is a dict read, not a coroutine).

A lost connection fails the calls in flight with `ConnectionError` (budgets then fail closed
or open as configured); the next call reconnects.

Every socket this client opens is closed by it. A connection belongs to the event loop that
opened it (its futures and transport live there), so each loop gets its own: a call from a
new loop (a second `asyncio.run`, the sync API's loop thread) first closes the connections of
loops that have ended, and `aclose()` closes every one, on its own loop. A connection whose
AUTH or SELECT fails (or is cancelled) is closed before the error propagates. Dropping one
unclosed, as this client once did on a loop change, leaves its socket to the garbage
collector, which reports it as a `ResourceWarning` in whichever test happens to be running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlparse


class RespError(Exception):
    """An error reply from Redis (`-ERR …`, `-NOSCRIPT …`)."""


class _Incomplete(Exception):
    pass


def _bulk(out: list[bytes], args: Any) -> None:
    for a in args:
        cls = a.__class__
        b = a.encode() if cls is str else a if cls is bytes else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))


def _encode(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    _bulk(out, args)
    return b"".join(out)


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One reply starting at `pos`; raises `_Incomplete` when the buffer ends first."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    nxt = end + 2
    if kind == 36:  # $ bulk string
        n = int(buf[pos + 1:end])
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise _Incomplete
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1:end]), nxt
    if kind == 42:  # * array
        n = int(buf[pos + 1:end])
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = _parse(buf, nxt)
            items.append(item)
        return items, nxt
    if kind == 43:  # + simple string
        return bytes(buf[pos + 1:end]), nxt
    if kind == 45:  # - error
        return RespError(bytes(buf[pos + 1:end]).decode("utf-8", "replace")), nxt
    raise RespError(f"unexpected reply type {bytes(buf[pos:pos + 1])!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buf = bytearray()
        self.lost: BaseException | None = None
        self.loop = asyncio.get_running_loop()
        self.out: list[bytes] = []  # encoded commands waiting for the next `_flush`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes) -> asyncio.Future[Any]:
        """Queues one encoded command; its reply resolves the returned future."""
        fut = self.loop.create_future()
        self.waiting.append(fut)
        out = self.out
        out.append(data)
        if len(out) == 1:
            self.loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        out = self.out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        waiting = self.waiting
        try:
            while pos < len(buf):
                reply, pos = _parse(buf, pos)
                fut = waiting.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except _Incomplete:
            pass
        del buf[:pos]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("Redis closed the connection")
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError("Redis connection lost"))


class Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._heads: dict[tuple[int, int], bytes] = {}

    def encode_call(self, keys: list[str], args: list[Any]) -> bytes:
        """EVALSHA of this script, encoded: the command up to the keys is cached per arity."""
        arity = (len(keys), len(args))
        head = self._heads.get(arity)
        if head is None:
            head = self._heads[arity] = _encode(("EVALSHA", self.sha, len(keys))).replace(
                b"*3\r\n", b"*%d\r\n" % (3 + len(keys) + len(args)), 1)
        out = [head]
        _bulk(out, keys)
        _bulk(out, args)
        return b"".join(out)


class RespClient:
    def __init__(self, url: str, *, connect_timeout_s: float = 2.0) -> None:
        u = urlparse(url)
        if u.scheme != "redis":
            raise ValueError("RespClient speaks plain redis:// only")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        self.db = int(u.path.lstrip("/") or 0)
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        self.connect_timeout_s = connect_timeout_s
        self._conns: dict[asyncio.AbstractEventLoop, _Protocol] = {}
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def _connection(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        proto = self._conns.get(loop)
        if proto is not None and proto.lost is None:
            return proto
        lock = self._locks.get(loop)
        if lock is None:
            for other in [o for o in self._locks if o.is_closed()]:
                self._locks.pop(other, None)
                _close(self._conns.pop(other, None), other)
            lock = self._locks[loop] = asyncio.Lock()
        async with lock:
            proto = self._conns.get(loop)
            if proto is not None and proto.lost is None:
                return proto
            _, fresh = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port), self.connect_timeout_s)
            try:
                if self.password is not None:
                    auth = (self.username, self.password) if self.username else (self.password,)
                    self._check(await self._send(fresh, ("AUTH", *auth)))
                if self.db:
                    self._check(await self._send(fresh, ("SELECT", self.db)))
            except BaseException:
                _close(fresh, loop)
                raise
            self._conns[loop] = fresh
            return fresh

    @staticmethod
    def _check(reply: Any) -> Any:
        if isinstance(reply, RespError):
            raise reply
        return reply

    @staticmethod
    def _send(proto: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        return proto.send(_encode(args))

    async def execute(self, *args: Any) -> Any:
        proto = self._conns.get(asyncio.get_running_loop())
        if proto is None or proto.lost is not None:
            proto = await self._connection()
        reply = await proto.send(_encode(args))
        if reply.__class__ is RespError:
            raise reply
        return reply

    async def run_script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        proto = self._conns.get(asyncio.get_running_loop())
        if proto is None or proto.lost is not None:
            proto = await self._connection()
        reply = await proto.send(script.encode_call(keys, args))
        if reply.__class__ is RespError:
            if not str(reply).startswith("NOSCRIPT"):
                raise reply
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)
        return reply

    async def aclose(self) -> None:
        """Closes every loop's connection; a later call connects again."""
        conns, self._conns, self._locks = self._conns, {}, {}
        for loop, proto in conns.items():
            _close(proto, loop)


def _close(proto: _Protocol | None, loop: asyncio.AbstractEventLoop | None) -> None:
    """Closes a connection from whichever thread and loop we are on.

    On its own loop: the transport's close. On another loop that still runs: the same, handed
    to that loop. On a loop already closed, the transport cannot close itself any more (its
    close schedules a callback on that loop), so the socket it holds is closed here; that is
    asyncio's selector transport (uvloop's has no such attribute and keeps its socket).
    """
    transport = proto.transport if proto is not None else None
    if transport is None or transport.is_closing():
        return
    if loop is None or not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is running:
            transport.close()
        else:
            with contextlib.suppress(RuntimeError):  # it closed meanwhile: nothing runs there
                loop.call_soon_threadsafe(transport.close)
        return
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        sock.close()
        transport._sock = None  # type: ignore[attr-defined]  # so its finaliser sees it closed
