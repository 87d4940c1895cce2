"""The OpenAPI document admits exactly the chat and embeddings requests the server accepts:
each body below is judged by the document (a JSON Schema validator over `/openapi.json`'s
components) and by the server's decoder, and the two answers must be the same.

The ranges come from the same msgspec annotations on both sides; what is checked here is the
part written twice: the rules between fields (`CHAT_REQUEST_RULES`), the JSON-schema checks
on tool parameters and response formats (`json_schema_rules`) and the four shapes of an
embeddings `input` (`INPUT_SHAPES`). The three rules JSON Schema cannot state (unique tool
names, a named `tool_choice` among `tools`, tool messages answering earlier calls) are left
out on purpose: the document only describes them.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from gatewise.errors import InvalidRequestError
from gatewise.server.openapi import build_openapi
from gatewise.types.validation import decode_chat_request, decode_embedding_request

DOC = build_openapi()
USER = [{"role": "user", "content": "hi"}]


def _validator(component: str) -> Any:
    return jsonschema_rs.validator_for({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{component}", "components": DOC["components"]})


CHAT = _validator("ChatRequest")
EMBED = _validator("EmbeddingRequest")


def _server_accepts(decode: Any, body: dict[str, Any]) -> bool:
    try:
        decode(json.dumps(body).encode())
    except InvalidRequestError:
        return False
    return True


def _tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "t", "parameters": parameters}}


def _format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "f", "schema": schema}}


CHAT_CASES: list[dict[str, Any]] = [
    {},
    {"max_tokens": 1}, {"max_tokens": 2**31 - 1}, {"max_tokens": 2**31}, {"max_tokens": 0},
    {"max_tokens": 7.0}, {"max_tokens": 7.5}, {"seed": -(2**63)}, {"seed": 2**63},
    {"logit_bias": {"0": -100, "9999999": 100}}, {"logit_bias": {"10000000": 1}},
    {"logit_bias": {"01": 1}}, {"logit_bias": {"5": 100.5}},
    {"stop": "x"}, {"stop": ["a", "b", "c", "d"]}, {"stop": ["a", "b", "c", "d", "e"]},
    {"metadata": {"k": "v" * 512}}, {"metadata": {"k": "v" * 513}},
    {"stream": True, "stream_options": {"include_usage": True}},
    {"stream_options": {"include_usage": True}}, {"stream": False, "stream_options": {}},
    {"stream_options": None},
    {"tool_choice": "required"}, {"tool_choice": "required", "tools": [_tool(None)]},
    {"tool_choice": "auto"}, {"tool_choice": "none"}, {"tool_choice": None},
    {"tool_choice": {"type": "function", "function": {"name": "t"}}},
    {"tool_choice": {"type": "function", "function": {"name": "t"}}, "tools": [_tool({})]},
    {"tools": []}, {"tools": [_tool(None)]}, {"tools": [_tool({})]},
    {"tools": [_tool({"type": "object"})]}, {"tools": [_tool({"type": "string"})]},
    {"tools": [_tool({"type": None})]}, {"tools": [_tool({"type": ["object"]})]},
    {"tools": [_tool({"properties": {"a": {"type": "strng"}}})]},
    {"tools": [_tool({"properties": {"a": {"type": ["string", "null"]}}})]},
    {"tools": [_tool({"properties": {"a": {"type": ["string", 5]}}})]},
    {"tools": [_tool({"properties": {"a": True, "b": False}})]},
    {"tools": [_tool({"properties": {"a": 5}})]}, {"tools": [_tool({"properties": None})]},
    {"tools": [_tool({"properties": []})]}, {"tools": [_tool({"required": ["a", 1]})]},
    {"tools": [_tool({"required": "a"})]}, {"tools": [_tool({"required": None})]},
    {"tools": [_tool({"properties": {"l": {"type": "array", "items": {"type": "int"}}}})]},
    {"tools": [_tool({"properties": {"l": {"items": None}}})]},
    {"tools": [_tool({"properties": {"l": {"items": 3}}})]},
    {"tools": [_tool({"anyOf": [{"type": "object"}, True]})]},
    {"tools": [_tool({"anyOf": {"type": "object"}})]}, {"tools": [_tool({"oneOf": [7]})]},
    {"tools": [_tool({"allOf": None})]},
    {"tools": [_tool({"$defs": {"x": {"type": "bogus"}}})]},
    {"tools": [_tool({"$defs": "not an object"})]},
    {"tools": [_tool({"definitions": {"x": {"type": "number"}}})]},
    {"tools": [_tool({"enum": "a"})]}, {"tools": [_tool({"enum": ["a"]})]},
    {"tools": [_tool({"properties": {"a": {"properties": {"b": {"enum": 1}}}}})]},
    {"response_format": _format({"type": "array", "items": {"type": "string"}})},
    {"response_format": _format({"type": "wrong"})}, {"response_format": _format(None)},
    {"response_format": _format({})}, {"response_format": _format([])},
    {"response_format": _format({"properties": {"a": {"anyOf": [{"type": "nul"}]}}})},
]


@pytest.mark.parametrize("extra", CHAT_CASES, ids=lambda e: json.dumps(e)[:60])
def test_the_document_and_the_server_agree_on_chat_requests(extra: dict[str, Any]) -> None:
    body = {"model": "m", "messages": USER, **extra}
    assert CHAT.is_valid(body) is _server_accepts(decode_chat_request, body)


@pytest.mark.parametrize("value", [
    "x", "", ["a", "b"], ["a", ""], [], ["x"] * 2048, ["x"] * 2049, [1, 2], [0, 9_999_999],
    [10_000_000], [-1], [1.0, 2.0], [1.5], [True], [[1], [2, 3]], [[1], []], [[]], [[-1]],
    [[1.0]], [[1]] * 2049, ["a", 1], [1, "a"], [[1], "a"], [["a"]], [None], {"a": 1}, 5, None,
])
def test_the_document_and_the_server_agree_on_embeddings_inputs(value: Any) -> None:
    body = {"model": "e", "input": value}
    assert EMBED.is_valid(body) is _server_accepts(decode_embedding_request, body)


def test_the_document_is_generated_once_and_is_plain_json() -> None:
    assert json.loads(json.dumps(DOC)) == DOC
    assert DOC["components"]["schemas"]["ChatRequest"]["allOf"]
