"""A fake Ollama host speaking the native API (`/api/chat`, `/api/embed`, `/api/tags`).

Bodies follow what Ollama sends field for field: `created_at` in RFC 3339 with nanoseconds,
`done_reason` before `done`, the duration metrics in nanoseconds, tool-call arguments as JSON
objects, errors as `{"error": "<text>"}`. Streams are `application/x-ndjson`, one partial message
per line, ending with the `"done": true` line that carries the counts. `stream` defaults to true,
as in Ollama.

Two hosts in one server:
- `srv.url` is ollama.com-like: a bearer key is required (missing or `bad-key` answers 401
  `{"error": "unauthorized"}`).
- `srv.url + "/local"` is a local daemon: no key needed.

Faults come from `tests.fakes.faults` by model name, plus one of Ollama's own:
`stream-error` sends two text lines, then `{"error": ...}` instead of the done line (as Ollama
does when the runner dies after the 200 went out).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakes.common import (
    count_tokens,
    last_user_text,
    reply_for,
    sample_arguments,
    sample_for_schema,
    words,
)
from tests.fakes.faults import fault_response
from tests.fakes.server import FakeServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Ollama's own wording for the failures the shared faults stand for.
_OLLAMA_MESSAGES = {
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error_body(status: int, message: str) -> dict[str, object]:
    return {"error": _OLLAMA_MESSAGES.get(status, message)}


def _error_body_for(model: str) -> Callable[[int, str], dict[str, object]]:
    def build(status: int, message: str) -> dict[str, object]:
        if status == 404:
            return {"error": f'model "{model}" not found, try pulling it first'}
        return error_body(status, message)

    return build


def created_at() -> str:
    """RFC 3339 in UTC with nanoseconds, trailing zeros trimmed, as Go's RFC3339Nano writes."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def _metrics(prompt: int, completion: int) -> dict[str, int]:
    return {
        "total_duration": 1_482_737_791,
        "load_duration": 20_337_458,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 142_000_000,
        "eval_count": completion,
        "eval_duration": 1_311_000_000,
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Same counting as the OpenAI fake, so every provider reports the same usage."""
    return sum(count_tokens(_text(m.get("content"))) + 3 for m in body.get("messages", []))


def _authorized(request: web.Request) -> bool:
    auth = request.headers.get("Authorization", "")
    return auth.startswith("Bearer ") and auth != "Bearer bad-key" and len(auth) > 7


def _json(obj: dict[str, Any], status: int = 200) -> web.Response:
    """Compact, as Go's encoder writes it."""
    return web.json_response(obj, status=status,
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


def _unauthorized() -> web.Response:
    return _json({"error": "unauthorized"}, status=401)


def _bad_image(body: dict[str, Any]) -> str | None:
    """Go's own base64 error for an image that is not bare base64 (a whole data: URL, say)."""
    for m in body.get("messages", []):
        for img in m.get("images") or []:
            try:
                base64.b64decode(img, validate=True)
            except (binascii.Error, ValueError):
                bad = next((i for i, ch in enumerate(img) if not (ch.isalnum() or ch in "+/=")), 0)
                return f"illegal base64 data at input byte {bad}"
    return None


def _answer(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str, int]:
    """(content, tool_calls, done_reason, eval_count) the fake model 'decides' on."""
    messages = body.get("messages", [])
    tools = body.get("tools") or []
    last = messages[-1] if messages else {}
    if tools and last.get("role") != "tool":
        fn = tools[0]["function"]
        args = sample_arguments(fn.get("parameters"))
        call = {"id": "call_k2x8f1qd",
                "function": {"index": 0, "name": fn["name"], "arguments": json.loads(args)}}
        return "", [call], "stop", count_tokens(args)
    fmt = body.get("format")
    text = reply_for(last_user_text(messages))
    if isinstance(fmt, dict):
        text = json.dumps(sample_for_schema(fmt))
    elif fmt == "json":
        text = json.dumps({"answer": text})
    limit = (body.get("options") or {}).get("num_predict")
    if limit and limit > 0 and count_tokens(text) > limit:
        return " ".join(text.split()[:limit]), [], "length", limit
    return text, [], "stop", count_tokens(text)


def _embedding(text: str, dims: int) -> list[float]:
    """Deterministic across runs (unlike `hash`), and unit length, as Ollama normalises."""
    seed = zlib.crc32(text.encode())
    raw = [((seed >> (k % 24)) % 1000 + k) / 1000.0 for k in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 8) for x in raw]


def make_app(srv: FakeServer) -> web.Application:
    def authenticated(handler: Handler) -> Handler:
        async def check(request: web.Request) -> web.StreamResponse:
            if not _authorized(request):
                return _unauthorized()
            return await handler(request)

        return check

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        fault = await fault_response(request, model, _error_body_for(model))
        if fault is not None and "cut" not in model:
            return fault
        bad = _bad_image(body)
        if bad is not None:
            return _json({"error": bad}, status=400)
        content, calls, reason, completion = _answer(body)
        prompt = _prompt_tokens(body)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        if not body.get("stream", True):
            if "cut" in model:
                return web.Response(body=b'{"model":"' + model.encode() + b'","created_at":"20',
                                    content_type="application/json")
            return _json({"model": model, "created_at": created_at(),
                          "message": message, "done_reason": reason, "done": True,
                          **_metrics(prompt, completion)})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)

        async def line(obj: dict[str, Any]) -> None:
            await resp.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

        def frame(msg: dict[str, Any]) -> dict[str, Any]:
            return {"model": model, "created_at": created_at(), "message": msg, "done": False}

        if calls:
            await line(frame({"role": "assistant", "content": "", "tool_calls": calls}))
        else:
            for n, piece in enumerate(words(content)):
                if n == 2 and ("cut" in model or "stream-error" in model):
                    if "stream-error" in model:
                        await line({"error": _OLLAMA_MESSAGES[500]})
                    await resp.write_eof()
                    return resp
                await line(frame({"role": "assistant", "content": piece}))
                await asyncio.sleep(0)
        await line({"model": model, "created_at": created_at(),
                    "message": {"role": "assistant", "content": ""}, "done_reason": reason,
                    "done": True, **_metrics(prompt, completion)})
        await resp.write_eof()
        return resp

    async def embed(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        fault = await fault_response(request, model, _error_body_for(model))
        if fault is not None:
            return fault
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or 8
        return _json({
            "model": model,
            "embeddings": [_embedding(str(t), dims) for t in inputs],
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
            "prompt_eval_count": sum(count_tokens(str(t)) for t in inputs),
        })

    async def tags(request: web.Request) -> web.StreamResponse:
        return _json({"models": [{
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": "2025-05-02T11:41:02.393226934Z",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"parent_model": "", "format": "gguf", "family": "llama",
                        "families": ["llama"], "parameter_size": "3.2B",
                        "quantization_level": "Q4_K_M"},
        }]})

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/api/chat", authenticated(chat))
    app.router.add_post("/api/embed", authenticated(embed))
    app.router.add_get("/api/tags", authenticated(tags))
    app.router.add_post("/local/api/chat", chat)
    app.router.add_post("/local/api/embed", embed)
    app.router.add_get("/local/api/tags", tags)
    return app
