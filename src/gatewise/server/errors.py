"""The one place errors become OpenAI error JSON: `{"error": {message, type, param, code}}`.

Unknown exceptions become a generic 500 with the request id (never a traceback or a message
that might carry a prompt or a key); the full exception goes to the log instead.
"""

from __future__ import annotations

import logging

import msgspec

from gatewise.errors import GatewayError, RateLimitedError, RateLimitExceeded

log = logging.getLogger("gatewise.server")
_encode = msgspec.json.Encoder().encode


def error_body(exc: BaseException, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(exc, GatewayError):
        status = exc.status
        payload = exc.to_openai()
        if isinstance(exc, RateLimitedError | RateLimitExceeded) and exc.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
        if isinstance(exc, RateLimitExceeded):
            headers.extend((k.encode(), v.encode()) for k, v in exc.headers.items())
    else:
        log.error("unhandled error in request %s", request_id, exc_info=exc)
        status = 500
        payload = {"error": {"message": f"Internal error (request id {request_id})",
                             "type": "api_error", "param": None, "code": "internal_error"}}
    return status, headers, _encode(payload)


def plain_error(status: int, message: str, code: str, etype: str = "invalid_request_error",
                param: str | None = None) -> bytes:
    return _encode({"error": {"message": message, "type": etype, "param": param, "code": code}})
