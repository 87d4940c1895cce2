"""Ollama's error bodies (`{"error": "<text>"}`, no codes or types) into the gatewise tree.

With no codes to go by, the wording decides what the status alone cannot: a model that was
never pulled is reported as 404 by `/api/chat` but as 400 or 500 by some older endpoints, and an
error written into a stream after its 200 has no status at all.
"""

from __future__ import annotations

import re

from gatewise.errors import ModelNotFoundError, ProviderError
from gatewise.providers.base import Target
from gatewise.providers.common import error_details, map_status
from gatewise.transport.base import HttpResponse

_MODEL_NOT_FOUND = re.compile(r"model ['\"][^'\"]*['\"] not found|try pulling it first")
_CONTEXT = ("context length", "context window", "maximum context")


def map_error(resp: HttpResponse, target: Target) -> ProviderError:
    message, _, _ = error_details(resp.body)
    if resp.status in (400, 404, 500) and _MODEL_NOT_FOUND.search(message.lower()):
        return ModelNotFoundError(
            f"{resp.status} {message}",
            provider=target.provider,
            model=target.model,
            upstream_status=resp.status,
            headers=dict(resp.headers),
            body=resp.body,
        )
    return map_status(resp.status, resp.headers, resp.body, target)


def map_body_error(message: str, body: bytes, target: Target) -> ProviderError:
    """An `{"error": ...}` object that arrived with status 200 (a stream line, or a body after
    the headers were sent): the message picks the status it would have had."""
    low = message.lower()
    if _MODEL_NOT_FOUND.search(low):
        status = 404
    elif any(h in low for h in _CONTEXT):
        status = 400
    else:
        status = 500
    err = map_status(status, {}, body, target)
    err.upstream_status = 200
    return err
