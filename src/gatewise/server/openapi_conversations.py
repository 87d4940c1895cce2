"""The OpenAPI description of `/v1/conversations` (`routes/conversations.py`)."""

from __future__ import annotations

from typing import Any

_MESSAGE = {"type": "object", "description": "An OpenAI chat message as stored (the masked "
            "form when a PII policy masks)", "required": ["role"],
            "properties": {"role": {"enum": ["user", "assistant", "tool"]}}}
_INFO_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "object": {"const": "conversation"},
    "created": {"type": "number"}, "updated": {"type": "number"},
    "messages": {"type": "integer", "minimum": 0,
                 "description": "How many messages are stored"},
    "summarised": {"type": "integer", "minimum": 0,
                   "description": "How many of the oldest messages the summary stands for "
                                  "in prompts (they stay stored)"},
    "metadata": {"type": "object"},
}
SCHEMAS: dict[str, Any] = {
    "ConversationInfo": {"type": "object", "properties": _INFO_PROPS,
                         "required": list(_INFO_PROPS)},
    "ConversationList": {"type": "object", "required": ["object", "data"], "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/ConversationInfo"}}}},
    "Conversation": {"type": "object", "required": [*_INFO_PROPS, "summary", "data"],
                     "properties": {**_INFO_PROPS,
                                    "summary": {"type": ["string", "null"]},
                                    "data": {"type": "array", "items": _MESSAGE}}},
    "ConversationDeleted": {"type": "object", "required": ["id", "object", "deleted"],
                            "properties": {"id": {"type": "string"},
                                           "object": {"const": "conversation.deleted"},
                                           "deleted": {"const": True}}},
}


def conversation_paths(bearer: list[dict[str, list[str]]],
                       errors: Any, json_body: Any) -> dict[str, Any]:
    """`errors(*codes)` and `json_body(description, schema)` are `openapi.py`'s helpers."""
    conv_id = {"name": "conversation_id", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 512}}
    return {
        "/v1/conversations": {"get": {
            "operationId": "listConversations", "security": bearer,
            "description": "The caller's team's conversations, most recently updated first.",
            "parameters": [{"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": json_body("Conversations", "ConversationList"),
                          **errors(400, 401, 403)}}},
        "/v1/conversations/{conversation_id}": {
            "get": {"operationId": "retrieveConversation", "security": bearer,
                    "description": "Every stored message, oldest first, and the summary.",
                    "parameters": [conv_id],
                    "responses": {"200": json_body("One conversation", "Conversation"),
                                  **errors(400, 401, 403, 404)}},
            "delete": {"operationId": "deleteConversation", "security": bearer,
                       "description": "Deletes its messages, summary and PII vault entries.",
                       "parameters": [conv_id],
                       "responses": {"200": json_body("Deleted", "ConversationDeleted"),
                                     **errors(400, 401, 403, 404)}}},
    }
