"""OpenAI's error bodies (`{"error": {"message", "type", "code"}}`) into the gatewise tree."""

from __future__ import annotations

from gatewise.errors import ProviderError
from gatewise.providers.base import Target
from gatewise.providers.common import map_status
from gatewise.transport.base import HttpResponse


def map_error(resp: HttpResponse, target: Target) -> ProviderError:
    # OpenAI reports quota exhaustion as 429 `insufficient_quota`; it is not retryable, but it
    # still reaches callers as a rate-limit class so clients back off. Context-length and
    # content-filter codes are found by `map_status` in the body's code/type.
    return map_status(resp.status, resp.headers, resp.body, target)
