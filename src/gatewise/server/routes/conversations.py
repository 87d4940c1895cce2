"""`/v1/conversations`: the caller's team's conversations (kept by conversation memory).

- `GET /v1/conversations?limit=N`: most recently updated first, without their messages;
- `GET /v1/conversations/{id}`: one conversation and every stored message, oldest first
  (its summary too, when older turns were summarised);
- `DELETE /v1/conversations/{id}`: its messages, summary and PII vault entries.

Scoped to the caller's team: another team's id is a 404 like one that never existed. Needs
the permission to generate (`llm:generate`), which is how conversations come to exist.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.errors import ForbiddenError, InvalidRequestError
from gatewise.server.context import RequestContext
from gatewise.server.http import respond
from gatewise.server.routes.admin.common import query_params
from gatewise.storage.base import ConversationInfo

_encode = msgspec.json.Encoder().encode
PERMISSION = "llm:generate"
MAX_ID = 512


def _check(ctx: RequestContext, conversation: str | None = None) -> None:
    if not ctx.identity.can(PERMISSION):
        raise ForbiddenError(f"permission {PERMISSION!r} is required")
    if conversation is not None and not 0 < len(conversation) <= MAX_ID:
        raise InvalidRequestError(f"a conversation id has 1 to {MAX_ID} characters",
                                  param="conversation")


def _summary(info: ConversationInfo) -> dict[str, Any]:
    return {"id": info.id, "object": "conversation", "created": info.created,
            "updated": info.updated, "messages": info.turns,
            "summarised": info.summarised, "metadata": info.metadata}


async def _send(ctx: RequestContext, data: Any) -> None:
    await respond(ctx.send, 200, _encode(data), [(b"x-request-id", ctx.request_id.encode())])


async def handle_list(ctx: RequestContext) -> None:
    _check(ctx)
    raw = query_params(ctx).get("limit", "100")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:
        raise InvalidRequestError("limit must be an integer from 1 to 1000", param="limit")
    found = await ctx.gateway.conversations.list(identity=ctx.identity, limit=int(raw))
    await _send(ctx, {"object": "list", "data": [_summary(i) for i in found]})


async def handle_get(ctx: RequestContext, conversation: str) -> None:
    _check(ctx, conversation)
    conv = await ctx.gateway.conversations.get(conversation, identity=ctx.identity)
    await _send(ctx, {**_summary(conv.info), "summary": conv.info.summary,
                      "data": conv.messages})


async def handle_delete(ctx: RequestContext, conversation: str) -> None:
    _check(ctx, conversation)
    await ctx.gateway.conversations.delete(conversation, identity=ctx.identity)
    await _send(ctx, {"id": conversation, "object": "conversation.deleted", "deleted": True})
