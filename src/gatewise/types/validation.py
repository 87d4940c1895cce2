"""Decoding and semantic checks for incoming requests: the edge where bad input is stopped.

Nesting depth is checked on the raw body first (`types.depth`), so no decoder or walker after
this point meets more than `server.max_json_depth` levels. Structural errors and ranges come
from msgspec (the `Meta` constraints on the types) with the JSON path of the bad field; the
checks here cover what a schema cannot say (a tool choice naming an undeclared tool, a tool
schema that is not an object schema, the four shapes of an embeddings `input`). Every failure
is an `InvalidRequestError` whose `param` names the field, so the server can answer in
OpenAI's error shape.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.types.depth import MAX_JSON_DEPTH, deep_json_path, json_too_deep, object_too_deep
from gatewise.types.embeddings import MAX_INPUTS, EmbeddingRequest
from gatewise.types.messages import AssistantMessage, ToolMessage, UserMessage, text_of
from gatewise.types.requests import (
    MAX_TOKEN_ID,
    ChatRequest,
    NamedToolChoice,
    ResponseFormatJSONSchema,
)

T = TypeVar("T")

_PATH = re.compile(r" - at (?:`key` in )?`\$\.?(.*)`$")
_ANY_KEY = re.compile(r"\[\.\.\.\]")  # msgspec's "some key of this object"
_WHOLE_FLOAT = re.compile(r"Expected `int[^`]*`, got `float`")
_UNKNOWN = re.compile(r"(?:unknown|missing required) field `([^`]*)`")
_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_chat_decoder = msgspec.json.Decoder(ChatRequest)
_embed_decoder = msgspec.json.Decoder(EmbeddingRequest)


def _invalid(exc: msgspec.MsgspecError, what: str) -> InvalidRequestError:
    text = str(exc)
    m = _PATH.search(text)
    param = _ANY_KEY.sub("", m.group(1)) if m else None
    msg = _PATH.sub("", text)
    unknown = _UNKNOWN.search(msg)
    if unknown:
        param = f"{param}.{unknown.group(1)}" if param else unknown.group(1)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidRequestError(f"Invalid JSON body: {msg}", code="invalid_json")
    where = f" at '{param}'" if param else ""
    return InvalidRequestError(f"Invalid {what}{where}: {msg}", param=param or None)


def _too_deep(limit: int, param: str | None) -> InvalidRequestError:
    where = f" at '{param}'" if param else ""
    return InvalidRequestError(f"JSON nested deeper than {limit} levels{where}", param=param,
                               code="nesting_too_deep")


def check_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """A 400 naming the field when `body` nests deeper than `limit` (see `types.depth`)."""
    if json_too_deep(body, limit):
        raise _too_deep(limit, deep_json_path(body, limit))


def _decode(decoder: msgspec.json.Decoder[T], kind: type[T], body: bytes, what: str,
            limit: int) -> T:
    check_depth(body, limit)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if not refused_only_for_whole_float(exc):
            raise _invalid(exc, what) from None
    except msgspec.MsgspecError as exc:
        raise _invalid(exc, what) from None
    except RecursionError:
        # Only a body that is not JSON can get past `check_depth` this deep.
        raise _too_deep(limit, None) from None
    return _convert(whole_floats_as_ints(msgspec.json.decode(body)), kind, what)


def _convert(data: Any, kind: type[T], what: str) -> T:
    """Python values as `kind`, `2.0` taken for the integer 2 (see `whole_floats_as_ints`)."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        if not refused_only_for_whole_float(exc):
            raise _invalid(exc, what) from None
    except RecursionError:
        raise _too_deep(MAX_JSON_DEPTH, None) from None
    try:
        return msgspec.convert(whole_floats_as_ints(data), kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, what) from None


def _check_free_form_depth(values: list[tuple[str, Any]]) -> None:
    """The library's entry gets Python values, not bytes: the typed fields cannot nest
    deeper than their types, so only the free-form ones (`dict[str, Any]`, `list[Any]`) are
    walked, each held to `MAX_JSON_DEPTH`; typically they are absent and this costs nothing."""
    for param, value in values:
        if value is not None and object_too_deep(value, MAX_JSON_DEPTH):
            raise _too_deep(MAX_JSON_DEPTH, param)


def refused_only_for_whole_float(exc: msgspec.ValidationError) -> bool:
    """Whether msgspec refused an integer field for a float (`5.0`, which JSON Schema counts
    as an integer): then decoding again through `whole_floats_as_ints` may succeed."""
    return _WHOLE_FLOAT.search(str(exc)) is not None


def whole_floats_as_ints(value: Any) -> Any:
    """`value` with every float that is a whole number as an int. JSON does not tell `2` from
    `2.0` (JSON Schema calls both integers, so a client generated from the document may send
    either, and Python's `json.dumps(2.0)` does), but msgspec's strict `int` takes only the
    first. Taken only after a decode failed on it, so the hot path never pays; the depth is
    already bounded at the edge."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: whole_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [whole_floats_as_ints(v) for v in value]
    return value


def decode_typed(decoder: msgspec.json.Decoder[T], kind: type[T], body: bytes, what: str, *,
                 max_depth: int = MAX_JSON_DEPTH) -> T:
    """`body` as `kind` through the same edge checks as a chat request (depth first, `2.0`
    taken as 2, a 400 naming the field): for request types that live beside their own route
    (`types.completions`)."""
    return _decode(decoder, kind, body, what, max_depth)


def decode_chat_request(body: bytes, *, max_depth: int = MAX_JSON_DEPTH,
                        continues: bool = False) -> ChatRequest:
    """`continues`: the request names a stored conversation (a header said so; its
    `metadata.conversation` says so too), see `check_chat_request`."""
    req = _decode(_chat_decoder, ChatRequest, body, "chat request", max_depth)
    check_chat_request(req, max_depth=max_depth, continues=continues)
    return req


def messages_with_prompt(prompt: str | None,
                         messages: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The library's shorthand: `prompt` is a trailing user message after `messages`."""
    if messages is None:
        if prompt is None:
            raise InvalidRequestError("give a prompt or 'messages'", param="messages")
        return [{"role": "user", "content": prompt}]
    return [*messages, {"role": "user", "content": prompt}] if prompt is not None else messages


def chat_request_from_dict(data: dict[str, Any], *, continues: bool = False) -> ChatRequest:
    """The library's entry: keyword arguments become a validated `ChatRequest`
    (`continues`: as for `decode_chat_request`)."""
    req = _convert(data, ChatRequest, "chat request")
    rf = req.response_format
    _check_free_form_depth([
        ("prediction", req.prediction), ("audio", req.audio),
        ("web_search_options", req.web_search_options),
        *((f"tools[{i}].function.parameters", t.function.parameters)
          for i, t in enumerate(req.tools or ())),
        ("response_format.json_schema.schema",
         rf.json_schema.schema if isinstance(rf, ResponseFormatJSONSchema) else None)])
    check_chat_request(req, continues=continues)
    return req


def _names_conversation(req: ChatRequest) -> bool:
    return bool(req.metadata and req.metadata.get("conversation"))


def decode_embedding_request(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> EmbeddingRequest:
    req = _decode(_embed_decoder, EmbeddingRequest, body, "embeddings request", max_depth)
    check_embedding_request(req)
    return req


def embedding_request_from_dict(data: dict[str, Any]) -> EmbeddingRequest:
    req = _convert(data, EmbeddingRequest, "embeddings request")
    _check_free_form_depth([("input", req.input)])
    check_embedding_request(req)
    return req


def check_chat_request(req: ChatRequest, *, max_depth: int = MAX_JSON_DEPTH,
                       continues: bool = False) -> None:
    """Rules between fields, and the depth of strings that adapters parse as JSON. (An empty
    `messages` or `tools` is refused by the types' `Meta(min_length=1)`.)

    A request that continues a stored conversation (`continues`, or `metadata.conversation`)
    may open with tool results for calls the stored history made: conversation memory
    checks them once the history is in front."""
    continues = continues or _names_conversation(req)
    declared: set[str] = set()
    if req.tools is not None:
        for i, tool in enumerate(req.tools):
            name = tool.function.name
            if name in declared:
                raise InvalidRequestError(
                    f"duplicate tool name '{name}'", param=f"tools[{i}].function.name"
                )
            declared.add(name)
            if tool.function.parameters is not None:
                check_json_schema(tool.function.parameters, f"tools[{i}].function.parameters",
                                  require_object=True)
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice) and choice.function.name not in declared:
        raise InvalidRequestError(
            f"tool_choice names '{choice.function.name}', which is not in 'tools'",
            param="tool_choice.function.name",
        )
    if choice == "required" and not declared:
        raise InvalidRequestError("tool_choice 'required' needs 'tools'", param="tool_choice")
    rf = req.response_format
    if isinstance(rf, ResponseFormatJSONSchema) and rf.json_schema.schema is not None:
        check_json_schema(rf.json_schema.schema, "response_format.json_schema.schema")
    known_calls: set[str] = set()
    for i, msg in enumerate(req.messages):
        if isinstance(msg, AssistantMessage) and msg.tool_calls:
            known_calls.update(c.id for c in msg.tool_calls)
            for j, call in enumerate(msg.tool_calls):
                _check_json_text(call.function.arguments, max_depth,
                                 f"messages[{i}].tool_calls[{j}].function.arguments")
        elif isinstance(msg, ToolMessage):
            leading = continues and not any(isinstance(m, AssistantMessage | UserMessage)
                                            for m in req.messages[:i])
            if msg.tool_call_id not in known_calls and not leading:
                raise InvalidRequestError(
                    f"tool message answers tool_call_id '{msg.tool_call_id}', which no earlier "
                    "assistant message called",
                    param=f"messages[{i}].tool_call_id",
                )
            _check_json_text(text_of(msg.content), max_depth, f"messages[{i}].content")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError("'stream_options' is only allowed with 'stream': true",
                                  param="stream_options")


def _check_json_text(text: str, limit: int, param: str) -> None:
    """Tool-call arguments and tool results are JSON inside a string, which adapters and the
    PII guardrail parse: they get the body's depth limit too. (`count` first: almost free.)"""
    if text.count("[") + text.count("{") > limit and json_too_deep(text.encode(), limit):
        raise _too_deep(limit, param)


def _is_token(x: object) -> bool:
    return type(x) is int and 0 <= x <= MAX_TOKEN_ID


def _input_list_ok(inp: list[Any]) -> bool:
    first = inp[0]
    if isinstance(first, str):
        return all(isinstance(x, str) and x for x in inp)
    if isinstance(first, list):
        return all(isinstance(x, list) and x and all(_is_token(t) for t in x) for x in inp)
    return all(_is_token(x) for x in inp)


def check_embedding_request(req: EmbeddingRequest) -> None:
    """`input` has one of the four shapes of `embeddings.INPUT_SHAPES` (the document's)."""
    inp = req.input
    if isinstance(inp, str):
        if not inp:
            raise InvalidRequestError("'input' must not be empty", param="input")
        return
    if not inp:
        raise InvalidRequestError("'input' must not be empty", param="input")
    if len(inp) > MAX_INPUTS:
        raise InvalidRequestError(f"'input' may have at most {MAX_INPUTS} items", param="input")
    if not _input_list_ok(inp):
        whole = whole_floats_as_ints(inp)  # token ids spelled `5.0` are still integers
        if not isinstance(inp[0], str) and _input_list_ok(whole):
            req.input = whole
            return
        raise InvalidRequestError(
            "'input' must be a string, a list of non-empty strings, a list of token ids "
            f"(0 to {MAX_TOKEN_ID}), or a list of non-empty token-id lists",
            param="input",
        )


# -- the same rules for the OpenAPI document ------------------------------------------------
# What the checks in this module enforce that the types' annotations cannot say, as JSON
# Schema: `gatewise.server.openapi` adds them to the generated document, so a client built
# from it does not send what is refused here (and the unit tests hold both to the same
# answers). Three rules have no JSON Schema spelling and are only described: tool names are
# unique, a named `tool_choice` names one of `tools`, and a tool message answers a
# `tool_call_id` that an earlier assistant message called.

CHAT_REQUEST_RULES: dict[str, Any] = {
    "description": "Tool names are unique; a named `tool_choice` must name one of `tools`; a "
                   "`tool` message must answer a `tool_call_id` that an earlier assistant "
                   "message called.",
    "allOf": [
        {"if": {"required": ["stream_options"],
                "properties": {"stream_options": {"type": "object"}}},
         "then": {"required": ["stream"], "properties": {"stream": {"const": True}}}},
        {"if": {"required": ["tool_choice"], "properties": {"tool_choice": {
            "anyOf": [{"type": "object"}, {"const": "required"}]}}},
         "then": {"required": ["tools"], "properties": {"tools": {"type": "array"}}}},
    ],
}


def json_schema_rules(ref: str) -> dict[str, dict[str, Any]]:
    """`check_json_schema` as JSON Schema, `ref` pointing at where the document puts "node":
    "node" (any schema node, recursively), "parameters" (a tool's, an object schema) and
    "schema" (a `response_format`'s)."""
    node = {"$ref": ref}
    nodes = {"anyOf": [{"type": "null"}, {"type": "array", "items": node}]}
    type_names = sorted(_JSON_TYPES)
    return {
        "node": {
            "type": ["object", "boolean"],
            "properties": {
                "type": {"anyOf": [{"type": "null"}, {"enum": type_names},
                                   {"type": "array", "items": {"enum": type_names}}]},
                "properties": {"type": ["object", "null"], "additionalProperties": node},
                "required": {"anyOf": [{"type": "null"},
                                       {"type": "array", "items": {"type": "string"}}]},
                "items": {"anyOf": [{"type": "null"}, node]},
                "anyOf": nodes, "oneOf": nodes, "allOf": nodes,
                "$defs": {"additionalProperties": node},
                "definitions": {"additionalProperties": node},
                "enum": {"type": ["array", "null"]},
            },
        },
        "parameters": {"type": "object", "allOf": [node],
                       "properties": {"type": {"const": "object"}}},
        "schema": {"type": "object", "allOf": [node]},
    }


def check_json_schema(schema: Any, param: str, *, require_object: bool = False) -> None:
    """A structural check of a JSON schema: enough to refuse what no provider would accept."""
    if not isinstance(schema, dict):
        raise InvalidRequestError("a JSON schema must be an object", param=param)
    if require_object and schema and schema.get("type", "object") != "object":
        raise InvalidRequestError("tool parameters must be a JSON schema of type 'object'",
                                  param=f"{param}.type")
    _check_node(schema, param)


def _check_node(node: Any, param: str) -> None:
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise InvalidRequestError("a JSON schema node must be an object or a boolean", param=param)
    t = node.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        bad = [x for x in types if not isinstance(x, str) or x not in _JSON_TYPES]
        if bad:
            raise InvalidRequestError(f"unknown JSON schema type {bad[0]!r}", param=f"{param}.type")
    props = node.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise InvalidRequestError("'properties' must be an object", param=f"{param}.properties")
        for key, sub in props.items():
            _check_node(sub, f"{param}.properties.{key}")
    req = node.get("required")
    if req is not None and not (isinstance(req, list) and all(isinstance(x, str) for x in req)):
        raise InvalidRequestError("'required' must be a list of strings", param=f"{param}.required")
    items = node.get("items")
    if items is not None:
        _check_node(items, f"{param}.items")
    for key in ("anyOf", "oneOf", "allOf"):
        subs = node.get(key)
        if subs is not None:
            if not isinstance(subs, list):
                raise InvalidRequestError(f"'{key}' must be a list", param=f"{param}.{key}")
            for j, sub in enumerate(subs):
                _check_node(sub, f"{param}.{key}[{j}]")
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            for name, sub in defs.items():
                _check_node(sub, f"{param}.{key}.{name}")
    enum = node.get("enum")
    if enum is not None and not isinstance(enum, list):
        raise InvalidRequestError("'enum' must be a list", param=f"{param}.enum")
