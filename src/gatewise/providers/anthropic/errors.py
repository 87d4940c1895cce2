"""Anthropic's error bodies (`{"type": "error", "error": {"type", "message"}}`) into the tree.

The error `type` is more telling than the HTTP status: an `error` event inside a 200 stream has
no status of its own, and a JSON error answered to a stream request reaches us as a synthetic
502. So a specific type decides the class; the two generic types (`invalid_request_error`,
`api_error`), which Anthropic uses for several statuses, defer to the real status.
"""

from __future__ import annotations

from gatewise.errors import ProviderError
from gatewise.providers.base import Target
from gatewise.providers.common import error_details, map_status
from gatewise.transport.base import HttpResponse

TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    # A billing problem is not fixed by retrying: treat it like a key that may not be used.
    "billing_error": 403,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_GENERIC = frozenset({"invalid_request_error", "api_error"})
# Wordings Anthropic uses for an over-long input that `map_status` does not know.
_CONTEXT_WORDS = ("exceed context limit", "context limit", "prompt is too long")


def status_for(error_type: str | None, status: int) -> int:
    known = TYPE_STATUS.get(error_type or "")
    if known is None or (error_type in _GENERIC and status >= 400 and status != 502):
        return status
    return known


def map_error(resp: HttpResponse, target: Target) -> ProviderError:
    message, etype, _ = error_details(resp.body)
    effective = status_for(etype, resp.status)
    lowered = message.lower()
    kind = "context_length_exceeded" if any(w in lowered for w in _CONTEXT_WORDS) else None
    err = map_status(effective, resp.headers, resp.body, target, kind=kind)
    err.upstream_status = resp.status
    return err
