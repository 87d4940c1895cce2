"""Gemini's Google-RPC error bodies (`{"error": {code, message, status, details}}`) into the
gatewise tree.

Two Gemini habits need more than the HTTP status: a bad API key is answered with `400
INVALID_ARGUMENT` (reason `API_KEY_INVALID`) and a missing one with `403 PERMISSION_DENIED`
("unregistered callers"), both of which are authentication failures; and rate limits say when
to retry in a `RetryInfo.retryDelay` detail rather than a `retry-after` header.
"""

from __future__ import annotations

import re
from typing import Any

from gatewise.errors import AuthenticationError, BadRequestError, ProviderError, RateLimitedError
from gatewise.providers.base import Target
from gatewise.providers.common import decode_json, map_status
from gatewise.transport.base import HttpResponse

_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})
_AUTH_HINTS = ("api key not valid", "api key expired", "unregistered callers",
               "invalid authentication credentials")


def error_object(body: bytes) -> dict[str, Any]:
    data = decode_json(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # some Google front ends wrap the error in a list
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def retry_delay(err: dict[str, Any]) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "19s"`)."""
    for d in err.get("details") or ():
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DELAY.match(str(d.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    return None


def _reasons(err: dict[str, Any]) -> set[str]:
    return {str(d["reason"]) for d in err.get("details") or ()
            if isinstance(d, dict) and "reason" in d}


def map_error(resp: HttpResponse, target: Target) -> ProviderError:
    err = error_object(resp.body)
    message = str(err.get("message") or "")
    lowered = message.lower()
    status = resp.status
    if status in (400, 401, 403) and (
        err.get("status") == "UNAUTHENTICATED" or _reasons(err) & _AUTH_REASONS
        or any(h in lowered for h in _AUTH_HINTS)
    ):
        return AuthenticationError(
            f"{status} {message}".strip(), provider=target.provider, model=target.model,
            upstream_status=status, headers=dict(resp.headers), body=resp.body,
        )
    if status == 400 and ("safety_settings" in lowered or "safetysettings" in lowered):
        # A malformed safety setting is a plain bad request, not a filtered prompt.
        return BadRequestError(
            f"{status} {message}".strip(), provider=target.provider, model=target.model,
            upstream_status=status, headers=dict(resp.headers), body=resp.body,
        )
    exc = map_status(status, resp.headers, resp.body, target, message=message or None)
    if isinstance(exc, RateLimitedError) and exc.retry_after is None:
        exc.retry_after = retry_delay(err)
    return exc
