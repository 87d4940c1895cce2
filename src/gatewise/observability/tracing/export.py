"""`OtlpHttpSink`: finished spans queued as they end, encoded (`otlp.py`) and posted to an
OTLP/HTTP collector (`application/x-protobuf`) in batches, from one worker thread.

A finished span is queued as it is (a deque append, well under a microsecond, on the event
loop); the worker encodes a whole batch at a time. Encoding each span as it ended, between a
request's other work, cost the event loop about 18 µs of CPU a request (two spans); the same
encoding in one tight loop over a batch costs the worker about 10 (its caches and code stay
hot): measured per thread with the chat of `bench/tracing_bench.py`. The worker wakes when a
batch is full or every `delay_s` and posts up to `batch` spans a request over one kept-alive connection; a
collector that answers 408/429/502/503/504 or cannot be reached is retried with backoff for
up to `timeout_s`, then that batch is dropped and counted (`dropped`), as is a span arriving
at a full queue or one whose attributes cannot be encoded: tracing never holds up or fails a
request. The SDK's defaults otherwise (batch 512, 5 s, 10 s timeout,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else
http://localhost:4318/v1/traces), but a queue of 8192 spans rather than 2048: a burst of a few
thousand requests a second outran 2048 while one post waited on a busy collector. A queued
span is its object and attributes, about 1.7 KB (so up to 14 MB when full; encoded bytes
took a third of that, but cost the event loop their encoding).
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gatewise.observability.tracing.otlp import OtlpEncoder

if TYPE_CHECKING:
    from gatewise.observability.tracing.recorder import RecordedSpan

_log = logging.getLogger("gatewise.tracing")
_RETRY_STATUS = frozenset({408, 429, 502, 503, 504})
DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"


def default_endpoint(env: Mapping[str, str]) -> str:
    """The endpoint the OpenTelemetry environment variables name, as the SDK reads them."""
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else DEFAULT_ENDPOINT


class HttpPoster:
    """POSTs request bodies to one URL over a kept-alive connection (reopened on error).
    Used by the worker thread only.

    Plain `http` (a collector beside the gateway, the usual) is written and read on the
    socket here: the request's head is made once (only its Content-Length changes), and the
    answer's status line and headers are split by hand, its body read by Content-Length or
    chunks, or to the end when neither. `http.client` spent about 540,000 instructions a
    post doing the same (header checks, its `email` header parser): a small batch posted by
    the 5 s timer cost as much as encoding a few hundred spans. `https` goes through
    `http.client` (TLS costs far more than that anyway)."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_s: float) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {endpoint!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {**headers, "Content-Type": "application/x-protobuf",
                         "User-Agent": "gatewise-otlp"}
        for k, v in self._headers.items():  # (http.client refuses these too)
            if any(c in k + v for c in "\r\n\0") or not k or ":" in k:
                raise ValueError(f"invalid OTLP export header: {k!r}")
        host = parts.netloc.rpartition("@")[2]
        lines = [f"POST {self._path} HTTP/1.1", f"Host: {host}",
                 *(f"{k}: {v}" for k, v in self._headers.items()), "Content-Length: "]
        self._head = "\r\n".join(lines).encode("latin-1")
        self._timeout = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None
        self._buf = b""  # what the collector sent past the last answer read

    def post(self, body: bytes) -> int:
        """The collector's HTTP status; raises OSError/HTTPException when it cannot be reached."""
        if self._https:
            return self._post_tls(body)
        try:
            sock = self._sock
            if sock is None:
                sock = self._sock = socket.create_connection(
                    (self._host, self._port or 80), timeout=self._timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._buf = b""
            sock.sendall(self._head + b"%d\r\n\r\n" % len(body))
            sock.sendall(body)
            status, close = self._answer(sock)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.close()
            if isinstance(exc, ValueError):  # a malformed answer
                raise http.client.HTTPException(str(exc)) from exc
            raise
        if close:
            self.close()
        return status

    def _answer(self, sock: socket.socket) -> tuple[int, bool]:
        """The answer's status and whether the collector closes the connection after it;
        its body is read and dropped."""
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise http.client.LineTooLong("the collector's answer headers")
            buf += _recv(sock)
        head, buf = buf[:end].decode("latin-1"), buf[end + 4:]
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/") or not rest[:3].isdigit():
            raise http.client.BadStatusLine(status_line)
        status = int(rest[:3])
        fields: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        close = version != "HTTP/1.1" or fields.get("connection", "").lower() == "close"
        if "chunked" in fields.get("transfer-encoding", "").lower():
            buf = _skip_chunks(sock, buf)
        elif "content-length" in fields:
            n = int(fields["content-length"])
            if not 0 <= n <= _MAX_BODY:
                raise http.client.HTTPException(f"the collector's answer body: {n} bytes")
            while len(buf) < n:
                buf += _recv(sock)
            buf = buf[n:]
        elif status not in (204, 304):  # no length: the body runs to the connection's end
            read = 0
            while data := sock.recv(65536):
                read += len(data)
                if read > _MAX_BODY:
                    raise http.client.HTTPException("the collector's answer body is too long")
            buf, close = b"", True
        self._buf = buf
        return status, close

    def _post_tls(self, body: bytes) -> int:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self._host, self._port,
                                                     timeout=self._timeout)
        try:
            self._conn.request("POST", self._path, body, self._headers)
            resp = self._conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if resp.will_close:
            self.close()
        return resp.status

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_MAX_HEAD = 65536  # an answer's status line and headers, at most
# An answer's body, at most: a collector's is empty or a few bytes (an OTLP partial-success
# message); one that sends more is read no further, so it cannot hold the worker thread.
_MAX_BODY = 1 << 20


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise http.client.RemoteDisconnected("the collector closed the connection")
    return data


def _skip_chunks(sock: socket.socket, buf: bytes) -> bytes:
    """Reads past a chunked body and its trailers; returns what follows them."""
    total = 0
    while True:
        while (i := buf.find(b"\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise http.client.LineTooLong("a chunk size line")
            buf += _recv(sock)
        size = int(buf[:i].split(b";")[0], 16)
        total += size
        if total > _MAX_BODY:
            raise http.client.HTTPException("the collector's answer body is too long")
        buf = buf[i + 2:]
        if size == 0:
            break
        while len(buf) < size + 2:
            buf += _recv(sock)
        buf = buf[size + 2:]
    while True:  # trailers, up to the empty line
        while (i := buf.find(b"\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise http.client.LineTooLong("the collector's answer trailers")
            buf += _recv(sock)
        line, buf = buf[:i], buf[i + 2:]
        if not line:
            return buf


class OtlpHttpSink:
    """The `otlp_http` exporter: a bounded queue and the worker thread draining it."""

    def __init__(self, encoder: OtlpEncoder, post: Callable[[bytes], int], *,
                 queue: int = 8192, batch: int = 512, delay_s: float = 5.0,
                 timeout_s: float = 10.0, sleep: Callable[[float], object] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self._encoder = encoder
        self._post = post
        self._queue: deque[RecordedSpan] = deque()
        self._max = queue
        self._batch = batch
        self._delay = delay_s
        self._timeout = timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # backoff, cut short by shutdown
        self._on_close = on_close
        self._lock = threading.Lock()  # one export at a time (worker, force_flush)
        self.exported = 0
        self.dropped = 0
        self._worker = threading.Thread(target=self._run, name="gatewise-otlp", daemon=True)
        self._worker.start()

    # -- on the event loop ---------------------------------------------------------------------
    def on_end(self, span: RecordedSpan) -> None:
        q = self._queue
        if len(q) >= self._max:
            self.dropped += 1
            return
        q.append(span)  # ended: its attributes no longer change
        if len(q) == self._batch:
            self._wake.set()

    # -- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            full = self._wake.wait(self._delay)
            self._wake.clear()  # before draining: a batch filling meanwhile wakes us again
            if not self._stop.is_set():
                # Woken by a full batch: whole batches only (a trickle of small posts costs
                # more per span); on the timer, everything queued.
                self._export(full_only=full)

    def _export(self, full_only: bool) -> None:
        with self._lock:
            q = self._queue
            while q and (not full_only or len(q) >= self._batch):
                entries = self._encode([q.popleft() for _ in range(min(self._batch, len(q)))])
                if not entries:
                    continue
                if self._send(self._encoder.request(entries)):
                    self.exported += len(entries)
                else:
                    self.dropped += len(entries)

    def _encode(self, spans: list[RecordedSpan]) -> list[bytes]:
        """The batch's spans as `ScopeSpans` entries; a span that cannot be encoded (a bad
        attribute value) is dropped alone."""
        try:
            return self._encoder.entries(spans)
        except Exception:
            pass
        entry = self._encoder.entry
        entries: list[bytes] = []
        for s in spans:
            try:
                entries.append(entry(s))
            except Exception:
                _log.exception("could not encode a span")
                self.dropped += 1
        return entries

    def _send(self, body: bytes) -> bool:
        deadline = time.monotonic() + self._timeout
        delay = 0.5
        while True:
            why: object
            try:
                status = self._post(body)
            except (OSError, http.client.HTTPException) as exc:
                why = type(exc).__name__
            else:
                if 200 <= status < 300:
                    return True
                why = f"HTTP {status}"
                if status not in _RETRY_STATUS:
                    break
            if self._stop.is_set() or time.monotonic() + delay > deadline:
                break
            self._sleep(delay)
            delay *= 2
        _log.warning("OTLP trace export failed (%s): spans dropped", why)
        return False

    # -- lifetime (blocking: off the event loop) ----------------------------------------------
    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        """Exports everything queued now."""
        self._export(full_only=False)
        return not self._queue

    def shutdown(self) -> None:
        """Stops the worker and exports what is left (once), one try per batch: a collector
        that is down must not hold up the gateway's close by a retry timeout."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._worker.join(self._timeout + 5)
        try:
            self._export(full_only=False)
        finally:
            if self._on_close is not None:
                self._on_close()


def otlp_http_sink(endpoint: str, headers: Mapping[str, str],
                   resource: Mapping[str, object], scope: str) -> OtlpHttpSink:
    """The production exporter: batches of `resource`'s spans posted to `endpoint`."""
    poster = HttpPoster(endpoint, headers, timeout_s=10.0)
    return OtlpHttpSink(OtlpEncoder(resource, scope), poster.post, on_close=poster.close)
