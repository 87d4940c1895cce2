"""LiteLLM's exceptions → the gatewise error tree, so callers never catch a LiteLLM type.

LiteLLM's classes subclass the `openai` SDK's and are not always what they say: a 403 arrives
as `BadRequestError` with `status_code=403`, a dropped connection as `InternalServerError`
caused by the SDK's `APIConnectionError`, a garbled body as `InternalServerError` caused by a
`JSONDecodeError`. So the few classes that carry meaning a status cannot (timeout, context
window, content policy, connection) are checked first, and everything else goes through the
same status → error mapping every HTTP adapter uses, with the upstream's headers (for
`retry-after`) and error body (for the context-length/content-filter hints).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from gatewise.errors import (
    ContentFilteredError,
    ContextLengthExceededError,
    GatewayError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    RateLimitedError,
)
from gatewise.providers.base import Target
from gatewise.providers.common import map_status, parse_retry_after

# "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached" → the last part.
_CLASS_PREFIX = re.compile(r"^(?:litellm\.)?[A-Za-z]*(?:Error|Exception|Timeout):\s*")
_PROVIDER_PREFIX = re.compile(r"^[A-Za-z_]*Exception\s*-\s*")

# When an exception carries no usable status_code, its class still says what it means.
_CLASS_STATUS: tuple[tuple[str, int], ...] = (
    ("AuthenticationError", 401),
    ("PermissionDeniedError", 403),
    ("NotFoundError", 404),
    ("UnprocessableEntityError", 422),
    ("BadRequestError", 400),
    ("RateLimitError", 429),
    ("ServiceUnavailableError", 503),
    ("BadGatewayError", 502),
    ("InternalServerError", 500),
)


def clean_message(text: str) -> str:
    prev = None
    while prev != text:
        prev = text
        text = _CLASS_PREFIX.sub("", text, count=1)
    return _PROVIDER_PREFIX.sub("", text, count=1).strip() or "(no message)"


def _is(lib: Any, exc: BaseException, name: str) -> bool:
    cls = getattr(lib, name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cur = exc.__cause__ or exc.__context__
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def _headers_of(exc: BaseException) -> dict[str, str]:
    raw = getattr(exc, "litellm_response_headers", None)
    if raw is None:
        try:
            raw = getattr(getattr(exc, "response", None), "headers", None)
        except Exception:  # the SDK's `response` property raises on exceptions without one
            raw = None
    items = getattr(raw, "items", None)
    if items is None:
        return {}
    try:
        return {str(k).lower(): str(v) for k, v in items()}
    except Exception:
        return {}


def _body_of(exc: BaseException) -> bytes:
    body = getattr(exc, "body", None)
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    try:
        return msgspec.json.encode(body)
    except (TypeError, msgspec.EncodeError):
        return b""


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 100 <= status <= 599:
        return status
    names = {c.__name__ for c in type(exc).__mro__}
    return next((s for name, s in _CLASS_STATUS if name in names), None)


def map_exception(lib: Any, exc: Exception, target: Target) -> GatewayError:
    """The gatewise error for anything `litellm.acompletion`/`aembedding` raised."""
    if isinstance(exc, GatewayError):
        return exc
    message = clean_message(str(getattr(exc, "message", None) or exc))
    status = _status_of(exc)
    headers = _headers_of(exc)
    body = _body_of(exc)
    kw: dict[str, Any] = {"provider": target.provider, "model": target.model,
                          "upstream_status": status, "headers": headers, "body": body or None}
    summary = f"{status} {message}" if status else message
    causes = _causes(exc)
    if _is(lib, exc, "Timeout"):
        return ProviderTimeoutError(summary, **kw)
    if _is(lib, exc, "ContextWindowExceededError"):
        return ContextLengthExceededError(summary, **kw)
    if _is(lib, exc, "ContentPolicyViolationError"):
        return ContentFilteredError(summary, **kw)
    if _is(lib, exc, "APIConnectionError") or (
            status in (None, 500) and any(type(c).__name__ == "APIConnectionError" for c in causes)):
        return ProviderConnectionError(message, **kw)
    if _is(lib, exc, "RateLimitError"):
        return RateLimitedError(summary, retry_after=parse_retry_after(headers), **kw)
    if status in (None, 500) and any(isinstance(c, json.JSONDecodeError) for c in causes):
        return ProviderResponseError(f"malformed response: {message}", **kw)
    if status in (None, 500) and "ended before a finish_reason" in message:
        # Newer LiteLLM releases detect a cut stream themselves and call it a 500.
        return ProviderResponseError(f"stream cut short: {message}", **kw)
    if status is not None:
        return map_status(status, headers, body, target, message=message)
    return ProviderError(f"{type(exc).__name__}: {message}", **kw)
