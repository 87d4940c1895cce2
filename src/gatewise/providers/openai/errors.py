"""OpenAI's error bodies (`{"error": {"message", "type", "code"}}`) into the gatewise tree."""

from __future__ import annotations

from gatewise.errors import ProviderError
from gatewise.providers.base import Target
from gatewise.providers.common import map_status
from gatewise.transport.base import HttpResponse


def map_error(resp: HttpResponse, target: Target) -> ProviderError:
    # OpenAI reports quota exhaustion as 429 `insufficient_quota`: `map_status` makes it a
    # `QuotaExhaustedError`, a rate limit that is never retried on the same deployment.
    # Context-length and content-filter codes are found the same way in the body's code/type.
    return map_status(resp.status, resp.headers, resp.body, target)
