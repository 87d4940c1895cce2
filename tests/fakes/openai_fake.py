"""A fake OpenAI chat completions / embeddings host. Bodies follow OpenAI's recorded responses
(field for field, `system_fingerprint` and token details included); streams are SSE ending in
`data: [DONE]`, with a usage chunk when `stream_options.include_usage` is set."""

from __future__ import annotations

import asyncio
import json
import time
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
from tests.fakes.faults import fault_response, hold
from tests.fakes.server import FakeServer


def error_body(status: int, message: str) -> dict[str, object]:
    etype = {401: "invalid_request_error", 429: "requests", 404: "invalid_request_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error")
    code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
    if "context_length_exceeded" in message:
        code = "context_length_exceeded"
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for m in body.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            total += count_tokens(c)
        elif isinstance(c, list):
            total += sum(count_tokens(p.get("text", "")) for p in c if isinstance(p, dict))
        total += 3
    return total


def _answer(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None, str]:
    """(content, tool_calls, finish_reason) the fake model 'decides' on."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    last = body.get("messages", [{}])[-1]
    if tools and choice != "none" and last.get("role") != "tool":
        fn = tools[0]["function"]
        if isinstance(choice, dict):
            fn = next(t["function"] for t in tools if t["function"]["name"] == choice["function"]["name"])
        call = {"id": "call_fake0001", "type": "function",
                "function": {"name": fn["name"], "arguments": sample_arguments(fn.get("parameters"))}}
        return None, [call], "tool_calls"
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return json.dumps(sample_for_schema(rf["json_schema"].get("schema"))), None, "stop"
    if rf.get("type") == "json_object":
        return json.dumps({"answer": reply_for(last_user_text(body.get("messages", [])))}), None, "stop"
    text = reply_for(last_user_text(body.get("messages", [])))
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and count_tokens(text) > limit:
        return " ".join(text.split()[:limit]), None, "length"
    return text, None, "stop"


def make_app(srv: FakeServer) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        if not request.headers.get("Authorization", "").startswith("Bearer ") and \
                "api-key" not in request.headers:
            return web.json_response(error_body(401, "You didn't provide an API key."), status=401)
        fault = await fault_response(request, model, error_body)
        if fault is not None and "cut" not in model:
            return fault
        content, tool_calls, finish = _answer(body)
        prompt = _prompt_tokens(body)
        completion = count_tokens(content or "") + (
            sum(count_tokens(c["function"]["arguments"]) for c in tool_calls) if tool_calls else 0)
        created = int(time.time())
        if not body.get("stream"):
            if "hold" in model and not await hold(request, srv.notes):
                return web.Response(status=499)  # nobody is listening any more
            if "cut" in model:
                return web.Response(body=b'{"id":"chatcmpl-x","object":"chat.completion","cho',
                                    content_type="application/json")
            msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                                   "annotations": []}
            if tool_calls:
                msg["tool_calls"] = tool_calls
            return web.json_response({
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
                "created": created, "model": model,
                "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
                "usage": _usage(prompt, completion), "service_tier": "default",
                "system_fingerprint": "fp_fake0001",
            })
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                           "cache-control": "no-cache"})
        await resp.prepare(request)
        if "hold" in model and not await hold(request, srv.notes):
            return resp
        base = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk",
                "created": created, "model": model, "service_tier": "default",
                "system_fingerprint": "fp_fake0001"}
        include_usage = (body.get("stream_options") or {}).get("include_usage")

        async def send(choices: list[dict[str, Any]], usage: Any = None) -> None:
            chunk = dict(base, choices=choices)
            if include_usage:
                chunk["usage"] = usage
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        await send([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                     "logprobs": None, "finish_reason": None}])
        if "endless" in model:  # streams until the client goes away
            try:
                for _ in range(2000):
                    await send([{"index": 0, "delta": {"content": "tick "}, "logprobs": None,
                                 "finish_reason": None}])
                    await asyncio.sleep(0.01)
            except (ConnectionResetError, asyncio.CancelledError):
                srv.notes.append("stream-aborted")
                raise
            srv.notes.append("stream-finished")
            return resp
        if tool_calls:
            call = tool_calls[0]
            await send([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": call["id"],
                         "type": "function", "function": {"name": call["function"]["name"],
                                                          "arguments": ""}}]},
                         "logprobs": None, "finish_reason": None}])
            args = call["function"]["arguments"]
            for i in range(0, len(args), 8):
                await send([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
                    "arguments": args[i:i + 8]}}]}, "logprobs": None, "finish_reason": None}])
        else:
            for n, piece in enumerate(words(content or "")):
                if "cut" in model and n == 2:
                    await resp.write_eof()
                    return resp
                await send([{"index": 0, "delta": {"content": piece}, "logprobs": None,
                             "finish_reason": None}])
                await asyncio.sleep(0)
        await send([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
        if include_usage:
            await send([], _usage(prompt, completion))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        fault = await fault_response(request, body.get("model", ""), error_body)
        if fault is not None:
            return fault
        if "hold" in body.get("model", "") and not await hold(request, srv.notes):
            return web.Response(status=499)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or 8
        data = []
        tokens = 0
        for i, text in enumerate(inputs):
            s = str(text)
            tokens += count_tokens(s)
            vec = [((hash(s) >> (k * 3)) % 1000) / 1000.0 for k in range(dims)]
            data.append({"object": "embedding", "index": i, "embedding": vec})
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def models(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == "Bearer bad-key":
            return web.json_response(error_body(401, "Incorrect API key provided"), status=401)
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}]})

    app = web.Application(client_max_size=32 * 1024 * 1024)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", chat)
        app.router.add_post(f"{prefix}/embeddings", embeddings)
        app.router.add_get(f"{prefix}/models", models)
    # Azure's deployment URLs
    app.router.add_post("/openai/deployments/{dep}/chat/completions", chat)
    app.router.add_post("/openai/deployments/{dep}/embeddings", embeddings)
    app.router.add_get("/openai/models", models)
    return app
