"""The one place errors become OpenAI error JSON: `{"error": {message, type, param, code}}`
(or Anthropic's error JSON, for the routes that speak Anthropic's Messages API).

Unknown exceptions become a generic 500 with the request id (never a traceback or a message
that might carry a prompt or a key); the full exception goes to the log instead. A
`ConfigError` met while serving is answered without its message (which may name the config
file or a model file): the key path only, the rest in the log. No body carries a server path.

`Retry-After` goes with 429s that know when to come back, and with every `circuit_open` 503:
the time until the breaker's next probe, in whole seconds rounded up (at least 1, also when
the time is unknown), so a client neither comes back before the gateway would try the
deployment again nor waits past it. A fallback chain that ended with a target's breaker open
(an `AllTargetsFailedError` answered as `circuit_open`) says when the first of its targets
may be tried: the soonest probe when every target was refused by its breaker, else 1 s (a
target that failed otherwise may already be back).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import msgspec

from gatewise.errors import (
    AllTargetsFailedError,
    CircuitOpenError,
    ConfigError,
    GatewayError,
    RateLimitedError,
    RateLimitExceeded,
)
from gatewise.server.anthropic.outbound import anthropic_error

log = logging.getLogger("gatewise.server")
_encode = msgspec.json.Encoder().encode


def error_body(exc: BaseException, request_id: str, *, anthropic: bool = False,
               ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """`anthropic`: the route speaks Anthropic's Messages API, so the body takes its shape
    (`{"type": "error", "error": {type, message}}`, the type chosen by status); the status
    and headers are the same either way."""
    status, headers, payload = _error_payload(exc, request_id)
    if anthropic:
        payload = anthropic_error(status, str(payload["error"]["message"]), request_id)
    return status, headers, _encode(payload)


def _error_payload(exc: BaseException,
                   request_id: str) -> tuple[int, list[tuple[bytes, bytes]], dict[str, Any]]:
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(exc, GatewayError):
        status = exc.status
        payload = exc.to_openai()
        if isinstance(exc, ConfigError):
            payload = _config_error(exc, request_id)
        if isinstance(exc, RateLimitedError | RateLimitExceeded) and exc.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
        if isinstance(exc, RateLimitExceeded):
            headers.extend((k.encode(), v.encode()) for k, v in exc.headers.items())
        circuit_wait = _circuit_retry_after(exc)
        if circuit_wait is not None:
            headers.append((b"retry-after", str(circuit_wait).encode()))
    else:
        log.error("unhandled error in request %s", request_id, exc_info=exc)
        status = 500
        payload = {"error": {"message": f"Internal error (request id {request_id})",
                             "type": "api_error", "param": None, "code": "internal_error"}}
    return status, headers, payload


def _config_error(exc: ConfigError, request_id: str) -> dict[str, Any]:
    """A configuration problem met while serving: the operator reads the details (file, key,
    what is wrong) in the log; the client learns only which config key, never a server path
    (messages of config errors may quote the config file's or a model file's location)."""
    log.error("configuration error in request %s: %s", request_id, exc)
    where = f" at '{exc.path}'" if exc.path else ""
    return {"error": {"message": f"the gateway's configuration is incomplete or wrong{where}; "
                                 f"the server log has the details (request id {request_id})",
                      "type": exc.error_type, "param": None, "code": exc.code}}


def _circuit_retry_after(exc: GatewayError) -> int | None:
    """Whole seconds until a probe may go, for a refusal by open breakers; None otherwise."""
    if isinstance(exc, CircuitOpenError):
        wait = exc.retry_after
    elif isinstance(exc, AllTargetsFailedError) and exc.errors \
            and isinstance(exc.errors[-1], CircuitOpenError):
        waits = [e.retry_after if isinstance(e, CircuitOpenError) else None for e in exc.errors]
        wait = None if None in waits else min(w for w in waits if w is not None)
    else:
        return None
    if wait is None or not math.isfinite(wait):
        return 1
    return max(1, math.ceil(wait))


def plain_error(status: int, message: str, code: str, etype: str = "invalid_request_error",
                param: str | None = None) -> bytes:
    return _encode({"error": {"message": message, "type": etype, "param": param, "code": code}})
