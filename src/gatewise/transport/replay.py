"""A transport for tests that answers from a function instead of the network.

Adapters are pure, so contract tests drive them through this with recorded wire bodies and
assert on the exact requests they built (`.requests`), with sockets blocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gatewise.transport.base import HttpRequest, HttpResponse, TransportError


@dataclass
class Recorded:
    """A canned answer: a status, headers and either a body or the chunks of a stream."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    chunks: Sequence[bytes] | None = None
    error: TransportError | None = None
    error_after_chunks: TransportError | None = None


class _ReplayStream:
    def __init__(self, rec: Recorded) -> None:
        self._rec = rec
        self.status = rec.status
        self.headers = rec.headers
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        chunks = self._rec.chunks if self._rec.chunks is not None else [self._rec.body]
        for c in chunks:
            yield c
        if self._rec.error_after_chunks is not None:
            raise self._rec.error_after_chunks

    async def read(self) -> bytes:
        if self._rec.chunks is not None:
            return b"".join(self._rec.chunks)
        return self._rec.body

    async def aclose(self) -> None:
        self.closed = True


class ReplayTransport:
    def __init__(self, handler: Callable[[HttpRequest], Recorded] | Recorded) -> None:
        self._handler = handler
        self.requests: list[HttpRequest] = []

    def _answer(self, request: HttpRequest) -> Recorded:
        self.requests.append(request)
        rec = self._handler(request) if callable(self._handler) else self._handler
        if rec.error is not None:
            raise rec.error
        return rec

    async def send(self, request: HttpRequest) -> HttpResponse:
        rec = self._answer(request)
        body = b"".join(rec.chunks) if rec.chunks is not None else rec.body
        if rec.error_after_chunks is not None:
            raise rec.error_after_chunks
        return HttpResponse(rec.status, rec.headers, body)

    async def open_stream(self, request: HttpRequest) -> _ReplayStream:
        return _ReplayStream(self._answer(request))

    async def aclose(self) -> None:
        return None
