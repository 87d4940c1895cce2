"""The OpenAPI part for Anthropic's Messages API (`server/routes/messages.py`): request schemas
generated from the msgspec types that validate them (`server/anthropic/inbound.py`), the rules
between fields that a schema can state, and Anthropic-shaped answers and errors."""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.server.anthropic.inbound import CountTokensIn, MessagesRequestIn
from gatewise.server.anthropic.outbound import ERROR_TYPES, STOP_REASONS
from gatewise.types.validation import json_schema_rules

_REF = "#/components/schemas/{name}"
# Every status a Messages call may end with: as chat completions (`openapi._CALL_ERRORS`).
_CALL_ERRORS = (400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504)
_COUNT_ERRORS = (400, 401, 403, 404, 413)
# A forced tool choice needs tools; the rest (a named tool must be one of `tools`, tool names
# are unique, a `tool_result` answers an earlier `tool_use`) is said in words.
_RULES: dict[str, Any] = {
    "description": "Tool names are unique; a `tool_choice` of type `tool` names one of "
                   "`tools`; a `tool_result` answers the id of an earlier `tool_use`.",
    "allOf": [{"if": {"required": ["tool_choice"], "properties": {"tool_choice": {
        "type": "object", "properties": {"type": {"enum": ["any", "tool"]}},
        "required": ["type"]}}},
        "then": {"required": ["tools"], "properties": {"tools": {"type": "array"}}}}],
}
_USAGE = {"type": "object", "required": ["input_tokens", "output_tokens"],
          "properties": {k: {"type": "integer", "minimum": 0} for k in (
              "input_tokens", "output_tokens", "cache_read_input_tokens",
              "cache_creation_input_tokens")}}
_MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence",
                 "usage"],
    "properties": {
        "id": {"type": "string"}, "type": {"const": "message"},
        "role": {"const": "assistant"}, "model": {"type": "string"},
        "content": {"type": "array", "items": {"anyOf": [
            {"type": "object", "required": ["type", "text"],
             "properties": {"type": {"const": "text"}, "text": {"type": "string"}}},
            {"type": "object", "required": ["type", "id", "name", "input"],
             "properties": {"type": {"const": "tool_use"}, "id": {"type": "string"},
                            "name": {"type": "string"}, "input": {"type": "object"}}}]}},
        "stop_reason": {"enum": [*sorted(set(STOP_REASONS.values())), None]},
        "stop_sequence": {"type": ["string", "null"]},
        "usage": _USAGE,
    },
}
_ERROR = {
    "type": "object", "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {"type": "object", "required": ["type", "message"], "properties": {
            "type": {"enum": sorted({*ERROR_TYPES.values(), "api_error"})},
            "message": {"type": "string"}}},
        "request_id": {"type": "string"}},
}
# One server-sent event of a streamed message: Anthropic's sequence, or `error` at the end.
_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["message_start", "content_block_start", "content_block_delta",
                           "content_block_stop", "message_delta", "message_stop", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"}},
}


def anthropic_schemas() -> dict[str, Any]:
    """Components: the two request types (with the tool-schema rules chat uses) and the
    answers; names end in `In` or start with `Anthropic`, apart from the OpenAI ones."""
    _, components = msgspec.json.schema_components([MessagesRequestIn, CountTokensIn],
                                                   ref_template=_REF)
    parameters = json_schema_rules(_REF.format(name="JSONSchema"))["parameters"]
    components["ToolIn"]["properties"]["input_schema"] = parameters
    for name in ("MessagesRequestIn", "CountTokensIn"):
        components[name].update(_RULES)
    components["AnthropicMessage"] = _MESSAGE
    components["AnthropicError"] = _ERROR
    components["AnthropicTokenCount"] = {
        "type": "object", "required": ["input_tokens"],
        "properties": {"input_tokens": {"type": "integer", "minimum": 0}}}
    return components


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "Anthropic-shaped error", "content": {
        "application/json": {"schema": {"$ref": _REF.format(name="AnthropicError")}}}}
        for c in codes}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": _REF.format(name=name)}}}}


def anthropic_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """`x-api-key` is accepted as the key too (Anthropic's SDK sends it); `anthropic-version`
    is accepted and not needed."""
    return {
        "/v1/messages": {"post": {
            "operationId": "createMessage", "security": bearer,
            "description": "Anthropic's Messages API on any configured provider, run as a chat "
                           "call (same keys, limits, guardrails, cache and ledger)",
            "requestBody": _body("MessagesRequestIn"),
            "responses": {
                "200": {"description": "A `message`, or Anthropic's event stream when `stream` "
                                       "is true",
                        "content": {"application/json": {
                            "schema": {"$ref": _REF.format(name="AnthropicMessage")}},
                            "text/event-stream": {"schema": _EVENT}}},
                **_errors(*_CALL_ERRORS)}}},
        "/v1/messages/count_tokens": {"post": {
            "operationId": "countMessageTokens", "security": bearer,
            "description": "Input tokens of a Messages request, counted offline for the "
                           "model's first deployment (nothing is sent)",
            "requestBody": _body("CountTokensIn"),
            "responses": {
                "200": {"description": "The prompt's tokens", "content": {"application/json": {
                    "schema": {"$ref": _REF.format(name="AnthropicTokenCount")}}}},
                **_errors(*_COUNT_ERRORS)}}},
    }
