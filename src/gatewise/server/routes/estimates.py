"""`POST /v1/tokens/count` and `POST /v1/cost/estimate`: what a chat request would cost,
before sending it.

The body is a chat completion request, exactly as `/v1/chat/completions` takes it (a template
named in its `metadata` is rendered first, as the pipeline would); the answer counts its prompt
tokens per deployment of its `model` with the offline tokenizers, and prices them with the
price table (the completion side: the request's `max_completion_tokens`/`max_tokens`, else
the accounting default). Nothing is sent upstream and nothing is recorded. The caller needs
what a chat call needs: `llm:generate` and access to the model.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.accounting.estimate import CostEstimate, TokenEstimate
from gatewise.server.context import RequestContext
from gatewise.server.http import respond
from gatewise.types.validation import decode_chat_request

_encode = msgspec.json.Encoder().encode
# For the OpenAPI document (`server/openapi.py`).
ESTIMATE_TYPES = (TokenEstimate, CostEstimate)
_ERRORS = (400, 401, 403, 404, 413)


async def _estimate(ctx: RequestContext, *, cost: bool) -> None:
    body = await ctx.read_body()
    req = decode_chat_request(body, max_depth=ctx.gateway.config.config.server.max_json_depth)
    out = await ctx.gateway.estimate(req, identity=ctx.identity, cost=cost)
    await respond(ctx.send, 200, _encode(out), [(b"x-request-id", ctx.request_id.encode())])


async def handle_token_count(ctx: RequestContext) -> None:
    await _estimate(ctx, cost=False)


async def handle_cost_estimate(ctx: RequestContext) -> None:
    await _estimate(ctx, cost=True)


def estimate_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    def op(op_id: str, summary: str, schema: str) -> dict[str, Any]:
        return {"post": {
            "operationId": op_id, "summary": summary, "security": bearer,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
            "responses": {
                "200": {"description": summary, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
                **{str(c): {"description": "OpenAI-shaped error", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                   for c in _ERRORS}}}}

    return {
        "/v1/tokens/count": op("countTokens", "Prompt tokens of a chat request, per deployment "
                               "of its model, counted offline (nothing is sent)",
                               "TokenEstimate"),
        "/v1/cost/estimate": op("estimateCost", "What a chat request may cost, per deployment "
                                "of its model, from the price table (nothing is sent)",
                                "CostEstimate"),
    }
