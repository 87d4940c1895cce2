"""Failures chosen by model name, shared by every fake so each provider is tested the same way.

A model name containing one of these words triggers the fault (e.g. `gpt-fail-429`):

- `fail-401`, `fail-403`, `fail-404`, `fail-400`, `fail-context`, `fail-500`, `fail-503`,
  `fail-529`: that status with the provider's own error body
- `fail-429`: 429 with `retry-after: 7`; `fail-429-noretry`: without the header
- `malformed`: 200 with a body that is not JSON; `wrong-type`: 200 text/html
- `reset`: the connection is closed without any response
- `slow`: the first byte comes after `SLOW_SECONDS`
- `cut`: a stream stops mid-way with no end marker (non-stream: a truncated JSON body)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

SLOW_SECONDS = 1.5

ErrorBody = Callable[[int, str], dict[str, object]]

_STATUS = {
    "fail-401": (401, "Incorrect API key provided"),
    "fail-403": (403, "You are not allowed to use this model"),
    "fail-404": (404, "The model does not exist"),
    "fail-400": (400, "Invalid parameter: messages"),
    "fail-context": (400, "This model's maximum context length is 8192 tokens. However, your "
                          "messages resulted in 9000 tokens (context_length_exceeded)"),
    "fail-500": (500, "The server had an error while processing your request"),
    "fail-503": (503, "The engine is currently overloaded"),
    "fail-529": (529, "Overloaded"),
}


async def fault_response(request: web.Request, model: str,
                         error_body: ErrorBody) -> web.StreamResponse | None:
    """The fault's response, or None when the model name asks for none."""
    if "reset" in model:
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError
    if "slow" in model:
        await asyncio.sleep(SLOW_SECONDS)
    if "fail-429-noretry" in model:
        return web.json_response(error_body(429, "Rate limit reached"), status=429)
    if "fail-429" in model:
        return web.json_response(error_body(429, "Rate limit reached"), status=429,
                                 headers={"retry-after": "7"})
    for key, (status, msg) in _STATUS.items():
        if key in model:
            return web.json_response(error_body(status, msg), status=status)
    if "malformed" in model:
        return web.Response(body=b'{"id": "x", "choices": [ {oops', content_type="application/json")
    if "wrong-type" in model:
        return web.Response(body=b"<html>Bad Gateway</html>", content_type="text/html")
    return None
