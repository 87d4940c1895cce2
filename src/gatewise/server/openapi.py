"""The OpenAPI document, generated from the same msgspec types that validate requests, so the
schema and the validation can never disagree. What the types cannot say (rules between fields,
what a tool's JSON schema may hold) comes from `types.validation` beside the checks that
enforce it; every status a route can answer with is listed, so a client generated from this
document sends only what is accepted and expects every answer it gets
(`tests/server/test_schemathesis.py` holds the server to it)."""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise import __version__
from gatewise.server.openapi_admin import admin_openapi
from gatewise.server.openapi_anthropic import anthropic_paths, anthropic_schemas
from gatewise.server.openapi_conversations import SCHEMAS as CONVERSATION_SCHEMAS
from gatewise.server.openapi_conversations import conversation_paths
from gatewise.server.openapi_rag import SCHEMAS as RAG_SCHEMAS
from gatewise.server.openapi_rag import rag_paths
from gatewise.server.openapi_responses import responses_paths, responses_schemas
from gatewise.server.openapi_titles import titles_paths, titles_schemas
from gatewise.server.routes.estimates import ESTIMATE_TYPES, estimate_paths
from gatewise.server.routes.feedback import SCHEMAS as FEEDBACK_SCHEMAS
from gatewise.server.routes.feedback import feedback_paths
from gatewise.server.routes.models import EXPANSIONS
from gatewise.types.completions import UNSUPPORTED_SCHEMAS, Completion, CompletionRequest
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import CHAT_REQUEST_RULES, json_schema_rules

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}}}},
}
# What the non-admin routes answer with on success (`server/routes/models.py`, `health.py`).
_MODEL = {"type": "object", "required": ["id", "object", "created", "owned_by"],
          "properties": {"id": {"type": "string"}, "object": {"const": "model"},
                         "created": {"type": "integer"}, "owned_by": {"type": "string"},
                         "deployments": {
                             "type": "array", "description": "with `expand=deployments`: the "
                             "provider models behind the alias (never a key or base URL)",
                             "items": {"type": "object",
                                       "required": ["id", "model", "provider", "ready"],
                                       "properties": {"id": {"type": "string"},
                                                      "model": {"type": "string"},
                                                      "provider": {"type": "string"},
                                                      "ready": {"type": "boolean"}}}},
                         "served_by": {"type": "string", "description": "an assistant "
                                       "(`assistant/<name>`): the alias that serves it"}}}
# `GET /v1/models?expand=deployments` (`server/routes/models.py`).
_EXPAND = {"name": "expand", "in": "query", "required": False,
           "description": "`deployments`: list the provider models behind each alias",
           "schema": {"enum": list(EXPANSIONS)}}
# One component of the readiness document (`gatewise.observability.health`).
_COMPONENT = {
    "type": "object", "required": ["kind", "status", "latency_ms", "checked_at", "error"],
    "properties": {
        "kind": {"enum": ["provider", "store", "local_model", "quota", "api"]},
        "status": {"enum": ["up", "down", "degraded", "unknown"]},
        "latency_ms": {"type": ["number", "null"]},
        "checked_at": {"type": ["number", "null"], "description": "unix time"},
        "error": {"type": ["string", "null"],
                  "description": "the error's type and HTTP status (never its text), or why a "
                                 "deployment cannot serve as configured"}}}

_API_SCHEMAS: dict[str, Any] = {
    "Model": _MODEL,
    "ModelList": {"type": "object", "required": ["object", "data"],
                  "properties": {"object": {"const": "list"},
                                 "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}},
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Readiness": {"type": "object", "required": ["status"],
                  "description": "With `server.master_key` set, only `status` unless the "
                                 "request carries a key allowed `usage:read` (probes need no "
                                 "key; the components name deployments and stores)",
                  "properties": {
                      "status": {"enum": ["ready", "degraded", "not_ready", "draining"]},
                      "components": {"type": "object", "additionalProperties": _COMPONENT,
                                     "description": "component (a deployment id, `redis`, "
                                     "`postgres`, `sqlite`, `quota:<scope>:<subject>:<period>`"
                                     ", `api`): its last check"},
                      "deployments": {"type": "object", "additionalProperties": {"type": "string"},
                                      "description": "deployment id: `ok`, or why it cannot "
                                                     "serve"},
                      "unserved_aliases": {"type": "array", "items": {"type": "string"}},
                      "reasons": {"type": "array", "items": {"type": "string"}}}},
}
# A streamed legacy completion's events: `text_completion` chunks, an error, `[DONE]`.
_COMPLETION_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": {"anyOf": [{"$ref": "#/components/schemas/Completion"},
                                     {"$ref": "#/components/schemas/Error"}]}}]}},
}
# One server-sent event of a streamed completion (OpenAPI 3.1: `schema` describes each event):
# a chunk, an error that ends the stream (OpenAI's error JSON), or the final `[DONE]`.
_SSE_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": {"anyOf": [{"$ref": "#/components/schemas/ChatCompletionChunk"},
                                     {"$ref": "#/components/schemas/Error"}]}}]}},
}
# Every status a call through the gateway may end with (the tree in `gatewise.errors`):
# 400 invalid request or a guardrail, 401 no or unknown key (or the upstream refused the
# deployment's key), 402 budget spent, 403 the key may not use the model (or the upstream
# refused), 404 no such model, 413 body over `server.max_body_bytes`, 429 a rate limit here or
# upstream, 500 the gateway's configuration is incomplete, 502 the upstream failed, 503 circuit
# open, upstream overloaded or the server shutting down, 504 the upstream timed out.
_CALL_ERRORS = (400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504)


# The response cache's request controls (`gatewise.cache.policy`) and what it answers with.
# Read only when the gateway has a response cache (otherwise ignored), so their rules are
# stated in words: there, a value that breaks them is a 400 naming the header.
_CACHE_REQUEST_HEADERS: list[dict[str, Any]] = [
    {"name": "x-gatewise-cache", "in": "header", "required": False,
     "description": "`no-store`: may be served from the cache, the answer is not stored; "
                    "`no-cache`: not served from the cache, the fresh answer is stored; "
                    "`only-if-cached`: a miss is a 504 `cache_miss` and the upstream is not "
                    "asked",
     "schema": {"type": "string", "examples": ["no-store", "no-cache", "only-if-cached"]}},
    {"name": "x-gatewise-cache-ttl", "in": "header", "required": False,
     "description": "seconds (a positive number) the stored answer lives, over the alias's "
                    "and the request type's TTL",
     "schema": {"type": "string", "examples": ["300"]}},
    {"name": "x-gatewise-cache-tags", "in": "header", "required": False,
     "description": "comma-separated tags for invalidation (`DELETE /admin/cache/tags/{tag}`), "
                    "at most 16, each 1-128 letters, digits or _ . : @ + - starting with a "
                    "letter, digit or _ (also `metadata.cache_tags`; "
                    "`metadata.cache_priority`: low | normal | high orders eviction)",
     "schema": {"type": "string", "examples": ["faq,pricing"]}},
]
_CACHE_RESPONSE_HEADERS: dict[str, Any] = {
    "x-gatewise-cache": {
        "description": "`hit` (served from the cache: usage marked cached, cost 0), "
                       "`semantic-hit` (another request's answer, of the same meaning), `miss` "
                       "(asked upstream; stored when it may be) or `bypass` (not cacheable, "
                       "or `no-cache`); absent when the alias has no cache",
        "schema": {"enum": ["hit", "semantic-hit", "miss", "bypass"]}},
    "x-gatewise-cache-key": {
        "description": "the entry's key (`DELETE /admin/cache/keys/{cache_key}`)",
        "schema": {"type": "string"}},
    "x-gatewise-cache-similarity": {
        "description": "on a `semantic-hit`: the cosine similarity between this request's "
                       "last user turn and the one whose answer was served",
        "schema": {"type": "string", "examples": ["0.9431"]}},
    "x-gatewise-rag-hits": {
        "description": "a knowledge-base answer (`metadata.rag` or a RAG alias): chunks "
                       "retrieved (above `min_score`); the body's `citations` and `rag` say "
                       "which the answer cites and what retrieval did",
        "schema": {"type": "string", "examples": ["6"]}},
    "x-gatewise-rag": {
        "description": "a knowledge-base answer: the collection, the sources sent to the "
                       "model and the chunks dropped or flagged as indirect injections",
        "schema": {"type": "string", "examples": [
            "collection=handbook; sources=5; injection_dropped=1; injection_flagged=1"]}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "OpenAI-shaped error",
                     "content": {"application/json": {"schema": _ref("Error")}}} for c in codes}


def _add_request_rules(components: dict[str, Any]) -> None:
    """The checks `types.validation` makes beyond the types' annotations (rules between
    fields; what a tool's or a response format's JSON schema may contain), so the document
    admits exactly the chat requests the server accepts."""
    rules = json_schema_rules(_ref("JSONSchema")["$ref"])
    components["JSONSchema"] = rules["node"]
    for owner, field, rule in (("FunctionDefinition", "parameters", rules["parameters"]),
                               ("JSONSchemaSpec", "schema", rules["schema"])):
        prop = components[owner]["properties"][field]
        components[owner]["properties"][field] = {
            "anyOf": [rule, {"type": "null"}],
            **{k: v for k, v in prop.items() if k != "anyOf"}}
    components["ChatRequest"].update(CHAT_REQUEST_RULES)


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _api_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The OpenAI-compatible API and the operational endpoints: each with every status its
    route can answer (a secured one 401 without a valid key); a method a path does not take
    is a 405 with `Allow` (`server/app.py`)."""
    return {
        "/v1/chat/completions": {"post": {
            "operationId": "createChatCompletion", "security": bearer,
            "parameters": _CACHE_REQUEST_HEADERS,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("ChatRequest")}}},
            "responses": {
                "200": {"description": "A completion, or an SSE stream of chunks ending in "
                                       "`data: [DONE]` when `stream` is true",
                        "headers": _CACHE_RESPONSE_HEADERS,
                        "content": {"application/json": {"schema": _ref("ChatCompletion")},
                                    "text/event-stream": {"schema": _SSE_EVENT}}},
                **_errors(*_CALL_ERRORS),
                "504": {"description": "The upstream timed out, or `x-gatewise-cache: "
                                       "only-if-cached` found no cached answer (code "
                                       "`cache_miss`; the upstream was not asked)",
                        "content": {"application/json": {"schema": _ref("Error")}}}}}},
        "/v1/completions": {"post": {
            "operationId": "createCompletion", "security": bearer,
            "description": "OpenAI's legacy text completions, run as a chat call with the "
                           "prompt as one user message (same keys, limits, guardrails, cache "
                           "and ledger); `max_tokens` defaults to 16 as OpenAI's does",
            "parameters": _CACHE_REQUEST_HEADERS,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("CompletionRequest")}}},
            "responses": {
                "200": {"description": "A `text_completion`, or an SSE stream of them ending "
                                       "in `data: [DONE]` when `stream` is true",
                        "headers": _CACHE_RESPONSE_HEADERS,
                        "content": {"application/json": {"schema": _ref("Completion")},
                                    "text/event-stream": {"schema": _COMPLETION_EVENT}}},
                **_errors(*_CALL_ERRORS)}}},
        "/v1/embeddings": {"post": {
            "operationId": "createEmbedding", "security": bearer,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("EmbeddingRequest")}}},
            "responses": {"200": _json("Embeddings", "EmbeddingResponse"),
                          **_errors(*_CALL_ERRORS)}}},
        "/v1/models": {"get": {
            "operationId": "listModels", "security": bearer, "parameters": [_EXPAND],
            "responses": {"200": _json("The aliases this gateway serves that the key may "
                                       "use", "ModelList"),
                          **_errors(400, 401)}}},
        "/v1/models/{model}": {"get": {
            "operationId": "retrieveModel", "security": bearer,
            "parameters": [{"name": "model", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1}}, _EXPAND],
            "responses": {"200": _json("One alias", "Model"), **_errors(400, 401, 404)}}},
        "/healthz": {"get": {"operationId": "health",
                             "responses": {"200": _json("The process is alive", "Health")}}},
        "/readyz": {"get": {"operationId": "ready", "responses": {
            "200": _json("Warmed up, and some deployment can serve", "Readiness"),
            "503": _json("Warming up, draining for shutdown, or no usable deployment",
                         "Readiness")}}},
        "/metrics": {"get": {
            "operationId": "metrics", "security": bearer,
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_errors(401)}}},
        "/openapi.json": {"get": {
            "operationId": "openapi",
            "responses": {"200": {"description": "This document", "content": {
                "application/json": {"schema": {"type": "object"}}}}}}},
    }


def build_openapi() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    _, components = msgspec.json.schema_components(
        [ChatRequest, ChatCompletion, ChatCompletionChunk, EmbeddingRequest, EmbeddingResponse,
         CompletionRequest, Completion, *ESTIMATE_TYPES],
        ref_template="#/components/schemas/{name}",
    )
    for field, rule in UNSUPPORTED_SCHEMAS.items():
        components["CompletionRequest"]["properties"][field] = rule
    components["Error"] = _ERROR
    components.update(_API_SCHEMAS)
    components.update(CONVERSATION_SCHEMAS)
    components.update(FEEDBACK_SCHEMAS)
    components.update(RAG_SCHEMAS)
    components.update(titles_schemas())
    components.update(anthropic_schemas())
    components.update(responses_schemas())
    _add_request_rules(components)
    admin_paths, admin_components = admin_openapi(bearer)
    for name, schema in admin_components.items():
        # A type both share (a prompt's `ResponseFormat`) keeps the API's version, which
        # carries the request rules added above.
        components.setdefault(name, schema)
    return {
        "openapi": "3.1.0",
        "info": {"title": "gatewise", "version": __version__,
                 "description": "OpenAI-compatible LLM gateway."},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            **_api_paths(bearer),
            **conversation_paths(bearer, _errors, _json),
            **rag_paths(bearer, _errors, _json),
            **titles_paths(bearer, _errors, _CALL_ERRORS, _CACHE_REQUEST_HEADERS),
            **estimate_paths(bearer),
            **feedback_paths(bearer, _errors, _json),
            **anthropic_paths(bearer),
            **responses_paths(bearer, _errors, _json),
            **admin_paths,
        },
    }
