"""The OpenAPI part for OpenAI's Responses API (`server/routes/responses.py`): the request
schema generated from the msgspec types that validate it (`server/responses/inbound.py`), the
rules between fields that a schema can state (which parts a role's message may hold, a forced
tool choice needs tools, an image needs its URL), the Response object, the stream's events
and the stored-response routes."""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.server.responses.inbound import RESPONSE_ID_PATTERN, ResponsesRequestIn
from gatewise.types.validation import json_schema_rules

_REF = "#/components/schemas/{name}"
# Every status a call may end with, as chat completions (`openapi._CALL_ERRORS`); 404 is
# also an unknown `previous_response_id`.
_CALL_ERRORS = (400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _parts(*names: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "string"},
                      {"type": "array", "items": {"anyOf": [_ref(n) for n in names]}}]}


# Which content parts each role's message may hold (the edge refuses the others).
_ROLE_PARTS: dict[str, Any] = {
    "description": "A user message holds input_text, input_image and input_file parts (or "
                   "output_text); an assistant message output_text and refusal parts; a "
                   "system or developer message text parts only.",
    "allOf": [
        {"if": {"required": ["role"], "properties": {"role": {"const": "user"}}},
         "then": {"properties": {"content": _parts("InputText", "InputImage", "InputFile",
                                                   "OutputText")}}},
        {"if": {"required": ["role"], "properties": {"role": {"const": "assistant"}}},
         "then": {"properties": {"content": _parts("InputText", "OutputText",
                                                   "OutputRefusal")}}},
        {"if": {"required": ["role"], "properties": {"role": {"enum": ["system",
                                                                       "developer"]}}},
         "then": {"properties": {"content": _parts("InputText", "OutputText",
                                                   "OutputRefusal")}}},
    ],
}
_REQUEST_RULES: dict[str, Any] = {
    "description": "Tool names are unique; a `tool_choice` of type `function` names one of "
                   "`tools`; a `function_call_output` answers the `call_id` of an earlier "
                   "`function_call` (of this input or of the previous response's thread); "
                   "`background` must be false; no string (free-form ones included) may "
                   "hold a NUL character (`\\u0000`).",
    "allOf": [
        {"if": {"required": ["tool_choice"], "properties": {"tool_choice": {
            "anyOf": [{"type": "object"}, {"const": "required"}]}}},
         "then": {"required": ["tools"], "properties": {"tools": {"type": "array",
                                                                  "minItems": 1}}}},
        {"properties": {"background": {"enum": [False, None]}}},
    ],
}
_USAGE = {
    "type": ["object", "null"],
    "required": ["input_tokens", "input_tokens_details", "output_tokens",
                 "output_tokens_details", "total_tokens"],
    "properties": {
        "input_tokens": {"type": "integer", "minimum": 0},
        "input_tokens_details": {"type": "object", "required": ["cached_tokens"],
                                 "properties": {"cached_tokens": {"type": "integer"},
                                                "cache_write_tokens": {"type": "integer"}}},
        "output_tokens": {"type": "integer", "minimum": 0},
        "output_tokens_details": {"type": "object", "required": ["reasoning_tokens"],
                                  "properties": {"reasoning_tokens": {"type": "integer"}}},
        "total_tokens": {"type": "integer", "minimum": 0},
        "cost_usd": {"type": "number", "description": "gatewise's price for the call"},
    },
}
_OUTPUT_ITEM = {"anyOf": [
    {"type": "object", "required": ["id", "type", "role", "status", "content"],
     "properties": {"id": {"type": "string"}, "type": {"const": "message"},
                    "role": {"const": "assistant"},
                    "status": {"enum": ["in_progress", "completed", "incomplete"]},
                    "content": {"type": "array", "items": {"anyOf": [
                        {"type": "object", "required": ["type", "text", "annotations"],
                         "properties": {"type": {"const": "output_text"},
                                        "text": {"type": "string"},
                                        "annotations": {"type": "array"}}},
                        {"type": "object", "required": ["type", "refusal"],
                         "properties": {"type": {"const": "refusal"},
                                        "refusal": {"type": "string"}}}]}}}},
    {"type": "object", "required": ["id", "type", "call_id", "name", "arguments"],
     "properties": {"id": {"type": "string"}, "type": {"const": "function_call"},
                    "call_id": {"type": "string"}, "name": {"type": "string"},
                    "arguments": {"type": "string"},
                    "status": {"enum": ["in_progress", "completed", "incomplete"]}}}]}
_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output",
                 "parallel_tool_calls", "tool_choice", "tools"],
    "properties": {
        "id": {"type": "string"}, "object": {"const": "response"},
        "created_at": {"type": "number"},
        "status": {"enum": ["completed", "incomplete", "in_progress", "failed"]},
        "error": {"type": ["object", "null"]},
        "incomplete_details": {"type": ["object", "null"]},
        "model": {"type": "string"}, "output": {"type": "array", "items": _OUTPUT_ITEM},
        "parallel_tool_calls": {"type": "boolean"},
        "previous_response_id": {"type": ["string", "null"]},
        "store": {"type": "boolean"}, "tools": {"type": "array"},
        "usage": _USAGE, "metadata": {"type": ["object", "null"]},
    },
}
# One server-sent event of a streamed response: OpenAI's sequence, `error` at a failure.
_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {
        "event": {"enum": [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done",
            "response.function_call_arguments.delta", "response.function_call_arguments.done",
            "response.output_item.done", "response.completed", "response.incomplete",
            "response.failed", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"}},
}
_INPUT_ITEMS = {
    "type": "object", "required": ["object", "data", "first_id", "last_id", "has_more"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array",
                                                         "items": {"type": "object"}},
                   "first_id": {"type": ["string", "null"]},
                   "last_id": {"type": ["string", "null"]}, "has_more": {"type": "boolean"}},
}
_DELETED = {"type": "object", "required": ["id", "object", "deleted"],
            "properties": {"id": {"type": "string"}, "object": {"const": "response.deleted"},
                           "deleted": {"const": True}}}


def responses_schemas() -> dict[str, Any]:
    """Components: the request type and its parts (with the tool- and format-schema rules
    chat uses), the Response object and the stored-response answers."""
    _, components = msgspec.json.schema_components([ResponsesRequestIn], ref_template=_REF)
    rules = json_schema_rules(_REF.format(name="JSONSchema"))
    params = components["FunctionTool"]["properties"]
    params["parameters"] = {"anyOf": [rules["parameters"], {"type": "null"}]}
    components["FormatJSONSchema"]["properties"]["schema"] = rules["schema"]
    components["InputImage"]["required"] = ["type", "image_url"]
    components["InputImage"]["properties"]["image_url"] = {"type": "string"}
    components["InputFile"]["anyOf"] = [
        {"required": ["file_data"], "properties": {"file_data": {"type": "string"}}},
        {"required": ["file_id"], "properties": {"file_id": {"type": "string"}}}]
    components["MessageItem"].update(_ROLE_PARTS)
    components["ResponsesRequestIn"].update(_REQUEST_RULES)
    components["ResponseObject"] = _RESPONSE
    components["ResponseInputItemList"] = _INPUT_ITEMS
    components["ResponseDeleted"] = _DELETED
    return components


def responses_paths(bearer: list[dict[str, list[str]]], errors: Any,
                    json_body: Any) -> dict[str, Any]:
    """`errors(*codes)` and `json_body(description, schema)` are `openapi.py`'s helpers."""
    rid = {"name": "response_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": RESPONSE_ID_PATTERN}}
    return {
        "/v1/responses": {"post": {
            "operationId": "createResponse", "security": bearer,
            "description": "OpenAI's Responses API on any configured provider, run as a chat "
                           "call (same keys, limits, guardrails, cache and ledger); stored "
                           "(unless `store` is false) for `previous_response_id`",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("ResponsesRequestIn")}}},
            "responses": {
                "200": {"description": "A Response, or the Responses event stream when "
                                       "`stream` is true",
                        "content": {"application/json": {"schema": _ref("ResponseObject")},
                                    "text/event-stream": {"schema": _EVENT}}},
                **errors(*_CALL_ERRORS)}}},
        "/v1/responses/{response_id}": {
            "get": {"operationId": "retrieveResponse", "security": bearer,
                    "description": "A stored response of the caller's team.",
                    "parameters": [rid],
                    "responses": {"200": json_body("The Response", "ResponseObject"),
                                  **errors(400, 401, 403, 404)}},
            "delete": {"operationId": "deleteResponse", "security": bearer,
                       "description": "Deletes a stored response (its thread and items).",
                       "parameters": [rid],
                       "responses": {"200": json_body("Deleted", "ResponseDeleted"),
                                     **errors(400, 401, 403, 404)}}},
        "/v1/responses/{response_id}/input_items": {"get": {
            "operationId": "listResponseInputItems", "security": bearer,
            "description": "The input items of a stored response, newest first unless "
                           "`order=asc`.",
            "parameters": [
                rid,
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "order", "in": "query", "required": False,
                 "schema": {"enum": ["asc", "desc"]}},
                {"name": "after", "in": "query", "required": False,
                 "schema": {"type": "string"}}],
            "responses": {"200": json_body("Input items", "ResponseInputItemList"),
                          **errors(400, 401, 403, 404)}}},
    }
