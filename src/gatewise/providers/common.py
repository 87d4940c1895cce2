"""Helpers every adapter shares: status → error class mapping, retry-after, data URLs, bodies.

Adapters decide what a provider's body means (its error codes, its context-length wording);
this module decides what an HTTP status means, once, for all of them.
"""

from __future__ import annotations

import base64
import email.utils
import re
import struct
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderOverloadedError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
)
from gatewise.providers.base import Target
from gatewise.transport.base import HttpResponse

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "context window",
    "prompt is too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "input token count",
    "string_above_max_length",
)
_FILTER_HINTS = ("content_filter", "content management policy", "safety", "content_policy")

T = TypeVar("T")
_json_any = msgspec.json.Decoder()
_DATA_URL = re.compile(r"^data:([^;,]+)?(?:;[^,;]*)*;base64,(.+)$", re.DOTALL)


def parse_data_url(url: str) -> tuple[str | None, str] | None:
    """(media type or None, base64 payload) of a `data:...;base64,` URL; None for other URLs.
    Adapters inline images and files from these, since they never fetch anything themselves."""
    m = _DATA_URL.match(url)
    return (m.group(1), m.group(2)) if m else None


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: the vector as little-endian float32s, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` (seconds or HTTP date)."""
    ms = _header(headers, "retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is None:
        v = headers.get(name.title())
    return v


def decode_json(body: bytes) -> Any:
    try:
        return _json_any.decode(body)
    except msgspec.DecodeError:
        return None


def error_details(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, type, code) from the error body shapes providers use."""
    data = decode_json(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini sometimes wraps the error in a list
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or ""
            etype = err.get("type") or err.get("status")
            code = err.get("code")
            return str(msg), (str(etype) if etype else None), (str(code) if code else None)
        if isinstance(err, str):
            return err, None, None
    text = body[:200].decode("utf-8", "replace").strip()
    return text or "(empty body)", None, None


def map_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    target: Target,
    *,
    message: str | None = None,
    kind: str | None = None,
) -> ProviderError:
    """The error class for an upstream failure, from its status and (hints in) its body."""
    msg, etype, code = error_details(body)
    if message is not None:
        msg = message
    text = f"{msg} {etype or ''} {code or ''} {kind or ''}".lower()
    kw: dict[str, Any] = {
        "provider": target.provider,
        "model": target.model,
        "upstream_status": status,
        "headers": dict(headers),
        "body": body,
    }
    summary = f"{status} {msg}".strip()
    if status == 429:
        limited = QuotaExhaustedError if "insufficient_quota" in text else RateLimitedError
        return limited(summary, retry_after=parse_retry_after(headers), **kw)
    if status in (400, 413, 422):
        if any(h in text for h in _CONTEXT_HINTS):
            return ContextLengthExceededError(summary, **kw)
        if any(h in text for h in _FILTER_HINTS):
            return ContentFilteredError(summary, **kw)
        return BadRequestError(summary, **kw)
    if status == 401:
        return AuthenticationError(summary, **kw)
    if status == 403:
        return PermissionDeniedError(summary, **kw)
    if status == 404:
        return ModelNotFoundError(summary, **kw)
    if status in (408, 504):
        return ProviderTimeoutError(summary, **kw)
    if status in (503, 529) or "overloaded" in text:
        return ProviderOverloadedError(summary, **kw)
    if status >= 500:
        return ProviderServerError(summary, **kw)
    return ProviderResponseError(f"unexpected status {summary}", **kw)


def now() -> int:
    return int(time.time())


def bad_response(target: Target, what: str, resp: HttpResponse | None = None) -> ProviderResponseError:
    return ProviderResponseError(
        what,
        provider=target.provider,
        model=target.model,
        upstream_status=resp.status if resp else None,
        body=resp.body if resp else None,
    )


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes, target: Target, problem: str,
                resp: HttpResponse | None = None) -> T:
    """`decoder.decode(body)`, with malformed JSON reported as the upstream's fault (`problem`
    is the message, e.g. "malformed JSON in chat completion")."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError:
        raise bad_response(target, problem, resp) from None
