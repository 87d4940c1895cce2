"""The OpenAPI description of `POST /v1/titles` (`routes/titles.py`): the request schema is
generated from `titles.spec.TitleRequest`, the type that validates the body, so the document
and the checks cannot disagree."""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.titles.spec import CATEGORIES, STYLES, TitleRequest

_REF = "#/components/schemas/{name}"
_USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
          "properties": {k: {"type": "integer", "minimum": 0}
                         for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}
_TITLE_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "object": {"const": "title"},
    "created": {"type": "integer"},
    "model": {"type": "string", "description": "the alias that was asked"},
    "title": {"type": "string", "minLength": 1, "maxLength": 200,
              "description": "one line, no surrounding quotes, no trailing period, at most "
                             "`max_length` characters (cut on a word boundary)"},
    "style": {"enum": list(STYLES)},
    "category": {"anyOf": [{"enum": list(CATEGORIES)}, {"type": "null"}]},
    "cached": {"type": "boolean", "description": "served from the response cache (exact or "
                                                 "semantic): costs nothing"},
    "usage": _USAGE,
    "cost_usd": {"type": ["number", "null"], "description": "USD from the price table; null "
                                                            "when the price is unknown"},
}


def titles_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components([TitleRequest], ref_template=_REF)
    components["Title"] = {"type": "object", "required": list(_TITLE_PROPS),
                           "properties": _TITLE_PROPS}
    components["TitleDelta"] = {"type": "object", "required": ["object", "delta"],
                                "properties": {"object": {"const": "title.delta"},
                                               "delta": {"type": "string", "minLength": 1}}}
    return components


# One server-sent event of a streamed title: a delta, the whole title, an error, `[DONE]`.
_TITLE_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": {"anyOf": [{"$ref": _REF.format(name="TitleDelta")},
                                     {"$ref": _REF.format(name="Title")},
                                     {"$ref": _REF.format(name="Error")}]}}]}},
}


def titles_paths(bearer: list[dict[str, list[str]]], errors: Any, call_errors: tuple[int, ...],
                 cache_headers: list[dict[str, Any]]) -> dict[str, Any]:
    """`errors(*codes)` is `openapi.py`'s helper; `call_errors` every status a call through
    the chain may end with; `cache_headers` the response cache's request controls."""
    cache = {"description": "`hit`, `semantic_hit` (a similar description's title) or `miss`",
             "schema": {"enum": ["hit", "semantic_hit", "miss"]}}
    return {"/v1/titles": {"post": {
        "operationId": "createTitle", "security": bearer,
        "description": "An epic title from a description, run as a chat completion of the "
                       "built-in prompt `title` (same keys, rate limits, budgets, guardrails, "
                       "cache and ledger as chat). `x-gatewise-cache: no-cache` regenerates.",
        "parameters": cache_headers,
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": _REF.format(name="TitleRequest")}}}},
        "responses": {
            "200": {"description": "The title, or with `stream` an SSE stream of "
                                   "`title.delta` events, the `title` object and `[DONE]`",
                    "headers": {"x-gatewise-cache": cache},
                    "content": {"application/json": {"schema": {"$ref": _REF.format(
                        name="Title")}},
                                "text/event-stream": {"schema": _TITLE_EVENT}}},
            **errors(*call_errors)}}}}
