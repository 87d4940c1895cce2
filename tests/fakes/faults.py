"""Failures chosen by model name, shared by every fake so each provider is tested the same way.

A model name containing one of these words triggers the fault (e.g. `gpt-fail-429`):

- `fail-401`, `fail-403`, `fail-404`, `fail-400`, `fail-context`, `fail-500`, `fail-503`,
  `fail-529`: that status with the provider's own error body
- `fail-429`: 429 with `retry-after: 7`; `fail-429-noretry`: without the header
- `malformed`: 200 with a body that is not JSON; `wrong-type`: 200 text/html
- `reset`: the connection is closed without any response
- `slow`: the first byte comes after `SLOW_SECONDS`
- `cut`: a stream stops mid-way with no end marker (non-stream: a truncated JSON body)
- `hold` (the OpenAI fake's chat and embeddings): the answer (a stream: its first chunk, after
  the headers) comes after `HOLD_SECONDS`, unless the client closes the connection first; the
  fake notes which happened (`hold` below)
- `fail-leak`: 502 whose error message is what a careless internal service says: its own and
  its neighbours' addresses, a credential, control characters and 10 KB of text (`LEAK_*`)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

SLOW_SECONDS = 1.5
HOLD_SECONDS = 3.0

ErrorBody = Callable[[int, str], dict[str, object]]

# What `fail-leak` puts in its error message; none of it may reach a gateway's client.
LEAK_SECRETS = ("10.20.30.40", "ollama.internal", "11434", "6379", "sk-live-", "/var/lib/",
                "\x1b[", "\x00")
LEAK_MESSAGE = ("backend failure: POST http://10.20.30.40:8080/admin/reload?token=abc refused; "
                "fell back to ollama.internal:11434 and redis://:pw@cache:6379/0 with key "
                "sk-live-7fQ2xR9pL0aZ3mN8bV1cX4kJ6hG5dS2w (see /var/lib/svc/trace.log)\x1b[31m"
                "\x00\r\n" + "stack frame detail " * 540)

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


async def hold(request: web.Request, notes: list[str]) -> bool:
    """Waits up to `HOLD_SECONDS` while the client stays connected. Notes `hold-abandoned`
    (the client closed the connection before the answer; returns False) or `hold-answered`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_SECONDS
    try:
        while loop.time() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                notes.append("hold-abandoned")
                return False
            await asyncio.sleep(0.005)
    except asyncio.CancelledError:  # aiohttp cancels a handler whose client left, if told to
        notes.append("hold-abandoned")
        raise
    notes.append("hold-answered")
    return True


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
    if "fail-leak" in model:
        return web.json_response(error_body(502, LEAK_MESSAGE), status=502)
    for key, (status, msg) in _STATUS.items():
        if key in model:
            return web.json_response(error_body(status, msg), status=status)
    if "malformed" in model:
        return web.Response(body=b'{"id": "x", "choices": [ {oops', content_type="application/json")
    if "wrong-type" in model:
        return web.Response(body=b"<html>Bad Gateway</html>", content_type="text/html")
    return None
