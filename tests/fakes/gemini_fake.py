"""A fake Google Gemini host (Generative Language API, v1beta) speaking the real wire format.

Bodies follow recorded Gemini responses field for field: `candidates[].content.parts`,
`finishReason` between `content` and `index`, cumulative `usageMetadata` on every stream event,
`modelVersion` and a 23-character `responseId`. Non-stream JSON is pretty-printed and stream
events use Google's `", "`-less separators and CRLF framing, as the real host does. Like the
real host it rejects what Gemini rejects (unknown fields, JSON-schema keys outside its OpenAPI
subset, tool results that do not answer the preceding call turn, Gemini 3 calls replayed
without their thought signature), so adapter mistakes fail here instead of in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from aiohttp import web

from tests.fakes.common import count_tokens, reply_for, sample_arguments, sample_for_schema, words
from tests.fakes.faults import ErrorBody, fault_response
from tests.fakes.server import FakeServer

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED", 529: "UNAVAILABLE"}
BAD_KEY = "bad-key"
_TOP_LEVEL = {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings",
              "generationConfig", "cachedContent"}
_GENERATION = {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "seed",
               "candidateCount", "presencePenalty", "frequencyPenalty", "responseMimeType",
               "responseSchema", "responseJsonSchema", "responseModalities", "thinkingConfig",
               "responseLogprobs", "logprobs", "mediaResolution", "speechConfig"}
_SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "maxItems",
                "minItems", "properties", "required", "minProperties", "maxProperties",
                "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
                "default", "items", "minimum", "maximum"}
_SSE = {"content-type": "text/event-stream", "x-content-type-options": "nosniff"}
_JSON = "application/json"


def error_body(status: int, message: str, *, model: str = "", retry: bool = True,
               reason: str | None = None) -> dict[str, object]:
    """Google's RPC error shape, with the details Gemini attaches for quota and key errors."""
    name = STATUS_NAMES.get(status, "UNKNOWN")
    err: dict[str, Any] = {"code": status, "message": message, "status": name}
    if reason:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
             "domain": "googleapis.com",
             "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": message},
        ]
    elif status == 429:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": model or "gemini-2.5-flash"},
                "quotaValue": "10"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        ]
        if retry:
            err["details"].append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                   "retryDelay": "7s"})
    return {"error": err}


def _fault_body(model: str) -> ErrorBody:
    """The fault catalogue's statuses with the messages Gemini really sends for them."""
    def build(status: int, message: str) -> dict[str, object]:
        if "context length" in message:
            message = ("The input token count (9000) exceeds the maximum number of tokens "
                       "allowed (8192).")
        elif status == 404:
            message = (f"models/{model} is not found for API version v1beta, or is not "
                       "supported for generateContent. Call ListModels to see the list of "
                       "available models and their supported methods.")
        elif status == 429:
            message = ("You exceeded your current quota, please check your plan and billing "
                       "details. For more information on this error, head to: "
                       "https://ai.google.dev/gemini-api/docs/rate-limits.")
        elif status == 401:
            message = ("Request had invalid authentication credentials. Expected OAuth 2 "
                       "access token, login cookie or other valid authentication credential.")
        elif status == 403:
            message = "The caller does not have permission"
        elif status == 500:
            message = ("An internal error has occurred. Please retry or report in "
                       "https://developers.generativeai.google/guide/troubleshooting")
        elif status == 503:
            message = "The model is overloaded. Please try again later."
        return error_body(status, message, model=model, retry="noretry" not in model)
    return build


def _error(status: int, message: str, **kw: Any) -> web.Response:
    return _json(error_body(status, message, **kw), status=status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, indent=2), status=status,
                        content_type=_JSON, charset="UTF-8")


def _auth_failure(request: web.Request) -> web.Response | None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return _error(403, "Method doesn't allow unregistered callers (callers without "
                           "established identity). Please use API Key or other form of API "
                           "consumer identity to call this API.")
    if key == BAD_KEY:
        return _error(400, "API key not valid. Please pass a valid API key.",
                      reason="API_KEY_INVALID")
    return None


def to_json_schema(node: Any) -> Any:
    """Gemini `Schema` back to JSON schema, so the shared samplers can fill it in."""
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("properties", "type")}
    if "type" in node:
        out["type"] = str(node["type"]).lower()
    if "properties" in node:
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
    return out


def _unknown_schema_key(node: Any, where: str) -> str | None:
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        if key not in _SCHEMA_KEYS:
            return f"{where}.{key}"
        subs = value.values() if key == "properties" else value if key == "anyOf" else \
            [value] if key == "items" else []
        for sub in subs:
            bad = _unknown_schema_key(sub, f"{where}.{key}")
            if bad:
                return bad
    return None


def _check_body(body: dict[str, Any], model: str) -> str | None:
    """Gemini's own 400s for malformed requests, so adapter bugs show up against the fake."""
    for key in body:
        if key not in _TOP_LEVEL:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    for key in body.get("generationConfig") or {}:
        if key not in _GENERATION:
            return (f'Invalid JSON payload received. Unknown name "{key}" at '
                    "'generation_config': Cannot find field.")
    schemas = [("generation_config.response_schema",
                (body.get("generationConfig") or {}).get("responseSchema"))]
    for tool in body.get("tools") or []:
        for i, decl in enumerate(tool.get("functionDeclarations") or []):
            schemas.append((f"tools[0].function_declarations[{i}].parameters",
                            decl.get("parameters")))
    for where, schema in schemas:
        bad = _unknown_schema_key(schema, where) if schema is not None else None
        if bad:
            name = bad.rsplit(".", 1)[-1]
            return f"Invalid JSON payload received. Unknown name \"{name}\" at '{bad}': " \
                   "Cannot find field."
    contents = body.get("contents") or []
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    previous: dict[str, Any] | None = None
    for i, turn in enumerate(contents):
        if turn.get("role") not in ("user", "model") or not turn.get("parts"):
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
        calls = [p for p in turn["parts"] if "functionCall" in p]
        if model.startswith("gemini-3") and any("thoughtSignature" not in p for p in calls):
            return ("Function call is missing a thought_signature in functionCall parts. This "
                    "is required for tools to work correctly.")
        answers = [p for p in turn["parts"] if "functionResponse" in p]
        if answers:
            asked = [p["functionCall"]["name"] for p in (previous or {}).get("parts", [])
                     if "functionCall" in p]
            if sorted(asked) != sorted(p["functionResponse"]["name"] for p in answers):
                return ("Please ensure that the number of function response parts is equal to "
                        "the number of function call parts of the function call turn.")
        previous = turn
    return None


def last_user_text(contents: list[dict[str, Any]]) -> str:
    for turn in reversed(contents):
        texts = [p["text"] for p in turn.get("parts", []) if "text" in p]
        if turn.get("role") == "user" and texts:
            return " ".join(texts)
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    turns = [*(body.get("contents") or []), body.get("systemInstruction") or {}]
    return sum(count_tokens(p.get("text", "")) for t in turns for p in t.get("parts", []))


def _answer(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None, str]:
    """(text, function call, finishReason) the fake model 'decides' on."""
    contents = body.get("contents") or []
    decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    calling = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {})
    answered = any("functionResponse" in p for p in contents[-1].get("parts", []))
    if decls and calling.get("mode", "AUTO") != "NONE" and not answered:
        allowed = calling.get("allowedFunctionNames") or [decls[0]["name"]]
        decl = next(d for d in decls if d["name"] == allowed[0])
        args = json.loads(sample_arguments(to_json_schema(decl.get("parameters"))))
        return None, {"name": decl["name"], "args": args}, "STOP"
    config = body.get("generationConfig") or {}
    reply = reply_for(last_user_text(contents))
    if config.get("responseMimeType") == _JSON:
        if "responseSchema" in config:
            return json.dumps(sample_for_schema(to_json_schema(config["responseSchema"]))), None, \
                "STOP"
        if "responseJsonSchema" in config:
            return json.dumps(sample_for_schema(config["responseJsonSchema"])), None, "STOP"
        return json.dumps({"answer": reply}), None, "STOP"
    limit = config.get("maxOutputTokens")
    if limit and count_tokens(reply) > limit:
        return " ".join(reply.split()[:limit]), None, "MAX_TOKENS"
    return reply, None, "STOP"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"promptTokenCount": prompt, "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}


def _response_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(17)).decode().rstrip("=")


def _vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    return [round((seed[k % 32] ^ (k * 37 % 256)) / 128.0 - 1.0, 9) for k in range(dims)]


def make_app(srv: FakeServer) -> web.Application:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        if method not in ("generateContent", "streamGenerateContent", "embedContent",
                          "batchEmbedContents"):
            return _error(404, f"Method not found: {method}")
        denied = _auth_failure(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid JSON payload received. Unexpected token.")
        fault = await fault_response(request, model, _fault_body(model))
        if fault is not None and "cut" not in model:
            return fault
        if method in ("embedContent", "batchEmbedContents"):
            return embed(model, method, body)
        problem = _check_body(body, model)
        if problem:
            return _error(400, problem)
        if method == "generateContent":
            return generate(model, body)
        return await stream(request, model, body)

    def generate(model: str, body: dict[str, Any]) -> web.Response:
        if "cut" in model:
            return web.Response(body=b'{\n  "candidates": [\n    {\n      "content": {\n  ',
                                content_type=_JSON)
        text, call, finish = _answer(body)
        n = (body.get("generationConfig") or {}).get("candidateCount", 1)
        completion = count_tokens(json.dumps(call["args"]) if call else text or "")
        return _json({
            "candidates": [_candidate(text, call, finish, i) for i in range(n)],
            "usageMetadata": _usage(_prompt_tokens(body), completion * n),
            "modelVersion": model,
            "responseId": _response_id(),
        })

    def _candidate(text: str | None, call: dict[str, Any] | None, finish: str | None,
                   index: int) -> dict[str, Any]:
        if call is not None:
            parts = [{"functionCall": call, "thoughtSignature": base64.b64encode(
                hashlib.sha256(call["name"].encode()).digest() + os.urandom(24)).decode()}]
        else:
            parts = [{"text": text or ""}]
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            cand["finishReason"] = finish
        cand["index"] = index
        if call is not None and finish is not None:
            cand["finishMessage"] = "Model generated function call(s)."
        return cand

    async def stream(request: web.Request, model: str, body: dict[str, Any]) -> web.StreamResponse:
        text, call, finish = _answer(body)
        n = (body.get("generationConfig") or {}).get("candidateCount", 1)
        prompt, rid = _prompt_tokens(body), _response_id()
        events: list[dict[str, Any]] = []
        if call is not None:
            pieces: list[tuple[str | None, dict[str, Any] | None]] = [(None, call)]
            total = count_tokens(json.dumps(call["args"]))
        else:
            pieces = [(p, None) for p in words(text or "")]
            total = count_tokens(text or "")
        so_far = ""
        for k, (piece, c) in enumerate(pieces):
            so_far += piece or ""
            last = k == len(pieces) - 1
            done = count_tokens(so_far) if c is None else total
            events.append({
                "candidates": [_candidate(piece, c, finish if last else None, i)
                               for i in range(n)],
                "usageMetadata": _usage(prompt, done * n),
                "modelVersion": model, "responseId": rid,
            })
        if request.query.get("alt") != "sse":  # without alt=sse Gemini streams a JSON array
            return _json(events)
        resp = web.StreamResponse(headers=_SSE)
        await resp.prepare(request)
        cut_at = min(2, len(events) - 1) if "cut" in model else len(events)
        for event in events[:cut_at]:
            line = json.dumps(event, separators=(",", ": "), ensure_ascii=False)
            await resp.write(b"data: " + line.encode() + b"\r\n\r\n")
        await resp.write_eof()
        return resp

    def embed(model: str, method: str, body: dict[str, Any]) -> web.Response:
        items = body.get("requests") if method == "batchEmbedContents" else [body]
        if not items:
            return _error(400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
        vectors = []
        for i, item in enumerate(items):
            if item.get("model", f"models/{model}") != f"models/{model}":
                return _error(400, f"Model in request {i} does not match the model in the "
                                   "batch request.")
            parts = (item.get("content") or {}).get("parts") or []
            if not parts:
                return _error(400, "* EmbedContentRequest.content: contents is not specified\n")
            dims = item.get("outputDimensionality") or (3072 if "gemini-embedding" in model
                                                        else 768)
            text = " ".join(p.get("text", "") for p in parts)
            vectors.append({"values": _vector(text, dims)})
        if method == "embedContent":
            return _json({"embedding": vectors[0]})
        return _json({"embeddings": vectors})

    async def list_models(request: web.Request) -> web.Response:
        denied = _auth_failure(request)
        if denied is not None:
            return denied
        return _json({"models": [
            {"name": "models/gemini-2.5-flash", "version": "001",
             "displayName": "Gemini 2.5 Flash",
             "description": "Stable version of Gemini 2.5 Flash, our mid-size multimodal model "
                            "that supports up to 1 million tokens, released in June of 2025.",
             "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
             "supportedGenerationMethods": ["generateContent", "countTokens",
                                            "createCachedContent", "batchGenerateContent"],
             "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True},
            {"name": "models/gemini-embedding-001", "version": "001",
             "displayName": "Gemini Embedding 001",
             "description": "Obtain a distributed representation of a text.",
             "inputTokenLimit": 2048, "outputTokenLimit": 1,
             "supportedGenerationMethods": ["embedContent", "countTextTokens", "countTokens",
                                            "asyncBatchEmbedContent"]},
        ]})

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_get("/v1beta/models", list_models)
    app.router.add_post("/v1beta/models/{target}", dispatch)
    return app
