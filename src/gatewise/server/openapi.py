"""The OpenAPI document, generated from the same msgspec types that validate requests, so the
schema and the validation can never disagree."""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise import __version__
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "OpenAI-shaped error",
                     "content": {"application/json": {"schema": _ref("Error")}}} for c in codes}


def _admin_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The admin API, from the same route table the server dispatches on."""
    from gatewise.server.routes.admin import ADMIN_ROUTES

    paths: dict[str, Any] = {}
    for method, template, permission, handler in ADMIN_ROUTES:
        params = [{"name": seg[1:-1], "in": "path", "required": True,
                   "schema": {"type": "string"}}
                  for seg in template.split("/") if seg.startswith("{")]
        doc = (handler.__doc__ or "").strip()
        op: dict[str, Any] = {
            "operationId": handler.__name__.replace("_", " ").title().replace(" ", ""),
            "summary": doc or handler.__name__.replace("_", " "),
            "tags": ["admin"], "security": bearer, "x-permission": permission,
            "responses": {"200": {"description": "OK (JSON; `format=csv` on usage)"},
                          "201": {"description": "Created"},
                          **_errors(400, 401, 403, 404)}}
        if params:
            op["parameters"] = params
        if method in ("POST", "PATCH"):
            op["requestBody"] = {"required": False, "content": {
                "application/json": {"schema": {"type": "object"}}}}
        paths.setdefault(template, {})[method.lower()] = op
    return paths


def build_openapi() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [ChatRequest, ChatCompletion, ChatCompletionChunk, EmbeddingRequest, EmbeddingResponse],
        ref_template="#/components/schemas/{name}",
    )
    components["Error"] = _ERROR
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "gatewise", "version": __version__,
                 "description": "OpenAI-compatible LLM gateway."},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/v1/chat/completions": {"post": {
                "operationId": "createChatCompletion", "security": bearer,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("ChatRequest")}}},
                "responses": {
                    "200": {"description": "A completion, or an SSE stream of chunks ending in "
                                           "`data: [DONE]` when `stream` is true",
                            "content": {"application/json": {"schema": _ref("ChatCompletion")},
                                        "text/event-stream": {
                                            "schema": _ref("ChatCompletionChunk")}}},
                    **_errors(400, 401, 404, 413, 429, 500, 502, 503, 504)}}},
            "/v1/embeddings": {"post": {
                "operationId": "createEmbedding", "security": bearer,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("EmbeddingRequest")}}},
                "responses": {"200": {"description": "Embeddings", "content": {
                    "application/json": {"schema": _ref("EmbeddingResponse")}}},
                    **_errors(400, 401, 404, 413, 429, 500, 502)}}},
            "/v1/models": {"get": {"operationId": "listModels", "security": bearer,
                                   "responses": {"200": {"description": "Model aliases"},
                                                 **_errors(401)}}},
            "/v1/models/{model}": {"get": {
                "operationId": "retrieveModel", "security": bearer,
                "parameters": [{"name": "model", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "One model"}, **_errors(401, 404)}}},
            "/healthz": {"get": {"operationId": "health",
                                 "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {"get": {"operationId": "ready",
                                "responses": {"200": {"description": "Ready"},
                                              "503": {"description": "Not ready"}}}},
            "/metrics": {"get": {"operationId": "metrics", "security": bearer,
                                 "responses": {"200": {"description": "Prometheus text"}}}},
            **_admin_paths(bearer),
        },
    }
