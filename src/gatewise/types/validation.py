"""Decoding and semantic checks for incoming requests: the edge where bad input is stopped.

Structural errors come from msgspec with the JSON path of the bad field; the checks here cover
what a schema cannot say (a tool choice naming an undeclared tool, a tool schema that is not an
object schema). Every failure is an `InvalidRequestError` whose `param` names the field, so the
server can answer in OpenAI's error shape.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.messages import AssistantMessage, ToolMessage
from gatewise.types.requests import ChatRequest, NamedToolChoice, ResponseFormatJSONSchema

T = TypeVar("T")

_PATH = re.compile(r" - at `\$\.?(.*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")
_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_chat_decoder = msgspec.json.Decoder(ChatRequest)
_embed_decoder = msgspec.json.Decoder(EmbeddingRequest)


def _invalid(exc: msgspec.MsgspecError, what: str) -> InvalidRequestError:
    text = str(exc)
    m = _PATH.search(text)
    param = m.group(1) if m else None
    msg = _PATH.sub("", text)
    unknown = _UNKNOWN.search(msg)
    if unknown:
        param = f"{param}.{unknown.group(1)}" if param else unknown.group(1)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidRequestError(f"Invalid JSON body: {msg}", code="invalid_json")
    where = f" at '{param}'" if param else ""
    return InvalidRequestError(f"Invalid {what}{where}: {msg}", param=param or None)


def decode_chat_request(body: bytes) -> ChatRequest:
    try:
        req = _chat_decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc, "chat request") from None
    check_chat_request(req)
    return req


def messages_with_prompt(prompt: str | None,
                         messages: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The library's shorthand: `prompt` is a trailing user message after `messages`."""
    if messages is None:
        if prompt is None:
            raise InvalidRequestError("give a prompt or 'messages'", param="messages")
        return [{"role": "user", "content": prompt}]
    return [*messages, {"role": "user", "content": prompt}] if prompt is not None else messages


def chat_request_from_dict(data: dict[str, Any]) -> ChatRequest:
    """The library's entry: keyword arguments become a validated `ChatRequest`."""
    try:
        req = msgspec.convert(data, ChatRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "chat request") from None
    check_chat_request(req)
    return req


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    try:
        req = _embed_decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc, "embeddings request") from None
    check_embedding_request(req)
    return req


def embedding_request_from_dict(data: dict[str, Any]) -> EmbeddingRequest:
    try:
        req = msgspec.convert(data, EmbeddingRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "embeddings request") from None
    check_embedding_request(req)
    return req


def check_chat_request(req: ChatRequest) -> None:
    if not req.messages:
        raise InvalidRequestError("'messages' must contain at least one message", param="messages")
    declared: set[str] = set()
    if req.tools is not None:
        if not req.tools:
            raise InvalidRequestError("'tools' must not be empty when given", param="tools")
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
        elif isinstance(msg, ToolMessage) and msg.tool_call_id not in known_calls:
            raise InvalidRequestError(
                f"tool message answers tool_call_id '{msg.tool_call_id}', which no earlier "
                "assistant message called",
                param=f"messages[{i}].tool_call_id",
            )
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError("'stream_options' is only allowed with 'stream': true",
                                  param="stream_options")


def check_embedding_request(req: EmbeddingRequest) -> None:
    inp = req.input
    if isinstance(inp, str):
        if not inp:
            raise InvalidRequestError("'input' must not be empty", param="input")
        return
    if not inp:
        raise InvalidRequestError("'input' must not be empty", param="input")
    first = inp[0]
    if isinstance(first, str):
        ok = all(isinstance(x, str) and x for x in inp)
    elif isinstance(first, int):
        ok = all(isinstance(x, int) and not isinstance(x, bool) for x in inp)
    elif isinstance(first, list):
        ok = all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in inp)
    else:
        ok = False
    if not ok:
        raise InvalidRequestError(
            "'input' must be a string, a list of non-empty strings, a list of token ids, "
            "or a list of token-id lists",
            param="input",
        )


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
