"""The only network I/O in gatewise: a pooled HTTP client, stream decoders, a replay transport."""

from gatewise.transport.base import (
    ConnectError,
    HttpRequest,
    HttpResponse,
    ProtocolError,
    ReadTimeout,
    StreamingHttpResponse,
    Timeouts,
    Transport,
    TransportError,
)
from gatewise.transport.sse import NDJSONDecoder, SSEDecoder, SSEEvent

__all__ = [
    "ConnectError",
    "HttpRequest",
    "HttpResponse",
    "NDJSONDecoder",
    "ProtocolError",
    "ReadTimeout",
    "SSEDecoder",
    "SSEEvent",
    "StreamingHttpResponse",
    "Timeouts",
    "Transport",
    "TransportError",
]
