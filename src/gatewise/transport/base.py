"""The transport seam: the only place gatewise does network I/O.

Adapters build an `HttpRequest` and parse what comes back; they never touch a socket. That keeps
them pure (testable from recorded bodies with `ReplayTransport`) and lets one pooled client serve
every provider. Failures surface as `TransportError`s, which the provider client maps into the
`ProviderError` tree with the provider and model named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds. `total` bounds a whole non-streaming call; `read` bounds each gap between bytes
    of a stream (a stall), `connect` the TCP+TLS handshake."""

    total: float | None = 600.0
    connect: float | None = 10.0
    read: float | None = 120.0


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeouts: Timeouts = DEFAULT_TIMEOUTS


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", self.headers.get("Content-Type", ""))


class StreamingHttpResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yields body bytes as they arrive."""
        ...

    async def read(self) -> bytes:
        """The whole (remaining) body; used for error responses."""
        ...

    async def aclose(self) -> None:
        """Releases the connection; a stream closed early drops it rather than reusing it."""
        ...


class Transport(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse: ...

    async def open_stream(self, request: HttpRequest) -> StreamingHttpResponse: ...

    async def aclose(self) -> None: ...


class TransportError(Exception):
    """Network-level failure; never carries request bodies or headers (they hold secrets)."""


class ConnectError(TransportError):
    pass


class ReadTimeout(TransportError):
    pass


class ProtocolError(TransportError):
    """The peer broke HTTP: reset mid-body, truncated chunked encoding, and the like."""
