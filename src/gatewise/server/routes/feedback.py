"""`POST /v1/feedback`: a user's rating of one response (`gatewise.quality.feedback` holds the
contract: who may rate what, the score's scale, the comment's limits).

Body: `{"request_id": "...", "score": 0..1 | "up" | "down", "comment": "..."}`; unknown
fields are refused. Answers `{"object": "feedback", "request_id", "score", "sentiment"}`.
The permission is checked before the body is read, so a caller without it learns nothing
from validation; every refusal is OpenAI error JSON and stores nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.errors import ForbiddenError, InvalidRequestError
from gatewise.quality.feedback import (
    COMMENT_FORBIDDEN,
    MAX_COMMENT,
    REQUEST_ID_CHARS,
    WORDS,
    sentiment,
)
from gatewise.server.context import RequestContext
from gatewise.server.http import respond
from gatewise.types.validation import check_depth

PERMISSION = "llm:generate"
FIELDS = frozenset({"request_id", "score", "comment"})
_encode = msgspec.json.Encoder().encode


async def handle_feedback(ctx: RequestContext) -> None:
    if not ctx.identity.can(PERMISSION):
        raise ForbiddenError(f"permission {PERMISSION!r} is required")
    raw = await ctx.read_body()
    check_depth(raw)
    try:
        body = msgspec.json.decode(raw or b"null")
    except msgspec.DecodeError:
        raise InvalidRequestError("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequestError(f"unknown field {unknown[0]!r}", param=unknown[0])
    fb = await ctx.gateway.quality.feedback(ctx.identity, body.get("request_id"),
                                            body.get("score"), body.get("comment"))
    await respond(ctx.send, 200, _encode({"object": "feedback", "request_id": fb.request_id,
                                          "score": fb.score, "sentiment": sentiment(fb.score)}),
                  [(b"x-request-id", ctx.request_id.encode())])


SCHEMAS: dict[str, Any] = {
    "FeedbackRequest": {
        "type": "object", "additionalProperties": False, "required": ["request_id", "score"],
        "properties": {
            "request_id": {"type": "string", "pattern": f"^{REQUEST_ID_CHARS}$",
                           "description": "The rated response's request id (its "
                                          "`x-request-id` header)"},
            "score": {"oneOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                {"type": "string", "enum": sorted(WORDS)}],
                      "description": 'From 0 (bad) to 1 (good); "up" is 1, "down" is 0'},
            "comment": {"type": ["string", "null"], "maxLength": MAX_COMMENT,
                        "pattern": f"^[^{COMMENT_FORBIDDEN[1:-1]}]*$",
                        "description": "Free text; no control characters but tab and "
                                       "newlines"}}},
    "Feedback": {
        "type": "object", "required": ["object", "request_id", "score", "sentiment"],
        "properties": {"object": {"const": "feedback"}, "request_id": {"type": "string"},
                       "score": {"type": "number", "minimum": 0, "maximum": 1},
                       "sentiment": {"enum": ["positive", "neutral", "negative"]}}},
}


def feedback_paths(bearer: list[dict[str, list[str]]], errors: Any,
                   json_body: Any) -> dict[str, Any]:
    """`errors(*codes)` and `json_body(description, schema)` are `openapi.py`'s helpers."""
    return {"/v1/feedback": {"post": {
        "operationId": "createFeedback", "security": bearer,
        "summary": "Rate one of your responses (0..1, up or down) with an optional comment",
        "description": "Only the tenant's own requests, and the key's own unless the caller "
                       "is an administrator; any other request id answers 404. Needs "
                       "`llm:generate`.",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/FeedbackRequest"}}}},
        "responses": {"200": json_body("The feedback was recorded", "Feedback"),
                      **errors(400, 401, 403, 404, 409, 413)}}}}
