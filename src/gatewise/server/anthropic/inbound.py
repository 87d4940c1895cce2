"""Anthropic Messages requests → canonical `ChatRequest`.

The body is decoded into Anthropic's own request shape first (so a mistake is reported with
Anthropic's field path, e.g. `messages[1].content[0].source`), then rebuilt in OpenAI's chat
shape and converted through the same types and checks as `/v1/chat/completions`: whatever the
chat edge refuses, this edge refuses too, and the pipeline behind it (governance, guardrails,
cache, ledger) sees an ordinary chat call.

The translation is the inverse of the outgoing adapter's (`providers/anthropic/wire.py`):
`system` becomes system messages; `tool_result` blocks become `tool` messages, placed before
the user's other blocks of that turn, as Anthropic requires them first; `tool_use` blocks
become the assistant's `tool_calls`; images become `image_url` parts (a data: URL for base64).
Thinking blocks of earlier turns are dropped: no canonical field carries them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.providers.anthropic.wire import (
    ImageBlock,
    TextBlock,
    ToolUseBlock,
    URLSource,
)
from gatewise.types.requests import MAX_INT32, ChatRequest, ModelName
from gatewise.types.validation import check_chat_request, check_depth, refused_only_for_whole_float
from gatewise.types.validation import whole_floats_as_ints as _whole

_encode = msgspec.json.Encoder().encode


class _Block(msgspec.Struct, kw_only=True):
    """Blocks are lenient: Anthropic adds fields (`cache_control`, `citations`) over time. Text,
    image and tool_use blocks are the provider adapter's own wire types (just as lenient on
    decoding); only what a client sends but the gateway never does is declared here."""


class ToolResultIn(_Block, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False


class ThinkingIn(_Block, tag="thinking", tag_field="type"):
    thinking: str = ""


class RedactedThinkingIn(_Block, tag="redacted_thinking", tag_field="type"):
    data: str = ""


UserBlock = TextBlock | ImageBlock | ToolResultIn
AssistantBlock = TextBlock | ToolUseBlock | ThinkingIn | RedactedThinkingIn


class UserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag="user",
             tag_field="role"):
    content: str | Annotated[list[UserBlock], msgspec.Meta(min_length=1)]


class AssistantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag="assistant",
                  tag_field="role"):
    content: str | Annotated[list[AssistantBlock], msgspec.Meta(min_length=1)]


MessageIn = UserIn | AssistantIn


class ToolIn(msgspec.Struct, kw_only=True):
    """A client tool. Names follow the canonical rule (OpenAI's), which the upstream needs."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")]
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None


class _Choice(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    disable_parallel_tool_use: bool | None = None


class ChoiceAuto(_Choice, tag="auto"):
    pass


class ChoiceAny(_Choice, tag="any"):
    pass


class ChoiceTool(_Choice, tag="tool"):
    name: str


class ChoiceNone(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag="none",
                 tag_field="type"):
    pass


ToolChoiceIn = ChoiceAuto | ChoiceAny | ChoiceTool | ChoiceNone


class MetadataIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: str | None = None


_Messages = Annotated[list[MessageIn], msgspec.Meta(min_length=1)]
_Tools = Annotated[list[ToolIn], msgspec.Meta(min_length=1, max_length=128)]


class MessagesRequestIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/messages`. Unknown top-level fields are refused, as Anthropic refuses them;
    `top_k`, `thinking` and `service_tier` are accepted and have no canonical equivalent.
    Ranges are Anthropic's where the canonical request allows them (at most 4 stop sequences,
    as OpenAI's `stop`)."""

    model: ModelName
    messages: _Messages
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_INT32)]
    system: str | list[TextBlock] | None = None
    metadata: MetadataIn | None = None
    stop_sequences: Annotated[list[str], msgspec.Meta(max_length=4)] | None = None
    stream: bool = False
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT32)] | None = None
    tools: _Tools | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None


class CountTokensIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/messages/count_tokens`: the request without the generation settings."""

    model: ModelName
    messages: _Messages
    system: str | list[TextBlock] | None = None
    tools: _Tools | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: dict[str, Any] | None = None


_messages_decoder = msgspec.json.Decoder(MessagesRequestIn)
_count_decoder = msgspec.json.Decoder(CountTokensIn)


def _invalid(exc: msgspec.MsgspecError) -> InvalidRequestError:
    """msgspec's message says where (`- at `$.messages[0].role``); kept as the message, and
    the path (without `$.`) as `param`."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidRequestError(f"Invalid JSON body: {text}", code="invalid_json")
    _, sep, where = text.partition(" - at `$")
    param = where.rstrip("`").lstrip(".") if sep else None
    return InvalidRequestError(f"Invalid messages request: {text}", param=param or None)


def _decode(decoder: msgspec.json.Decoder[Any], kind: type[Any], body: bytes,
            max_depth: int) -> Any:
    check_depth(body, max_depth)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if not refused_only_for_whole_float(exc):
            raise _invalid(exc) from None
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    try:
        return msgspec.convert(_whole(msgspec.json.decode(body)), kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def decode_messages_request(body: bytes, *, max_depth: int) -> ChatRequest:
    """The canonical chat request for an Anthropic Messages body; a 400 naming the field."""
    m: MessagesRequestIn = _decode(_messages_decoder, MessagesRequestIn, body, max_depth)
    data = _chat_shape(m.model, m.system, m.messages, m.tools, m.tool_choice)
    data["max_tokens"] = m.max_tokens
    data["stream"] = m.stream
    if m.stream:
        data["stream_options"] = {"include_usage": True}  # message_delta carries the usage
    if m.stop_sequences:
        data["stop"] = m.stop_sequences
    if m.temperature is not None:
        data["temperature"] = m.temperature
    if m.top_p is not None:
        data["top_p"] = m.top_p
    if m.metadata is not None and m.metadata.user_id:
        data["user"] = m.metadata.user_id
    return _to_chat(data, max_depth)


def decode_count_tokens_request(body: bytes, *, max_depth: int) -> ChatRequest:
    """The canonical chat request whose prompt `count_tokens` counts."""
    c: CountTokensIn = _decode(_count_decoder, CountTokensIn, body, max_depth)
    return _to_chat(_chat_shape(c.model, c.system, c.messages, c.tools, c.tool_choice),
                    max_depth)


def _to_chat(data: dict[str, Any], max_depth: int) -> ChatRequest:
    try:
        req = msgspec.convert(data, ChatRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    check_chat_request(req, max_depth=max_depth)
    return req


def _chat_shape(model: str, system: str | list[TextBlock] | None, messages: list[MessageIn],
                tools: list[ToolIn] | None, choice: ToolChoiceIn | None) -> dict[str, Any]:
    if not messages:
        raise InvalidRequestError("messages: at least one message is required", param="messages")
    out: list[dict[str, Any]] = []
    if isinstance(system, str):
        if system:
            out.append({"role": "system", "content": system})
    elif system:
        out.append({"role": "system", "content": "\n\n".join(b.text for b in system)})
    for msg in messages:
        if isinstance(msg, AssistantIn):
            out.append(_assistant(msg))
        else:
            out.extend(_user(msg))
    data: dict[str, Any] = {"model": model, "messages": out}
    if tools:
        data["tools"] = [_tool(t) for t in tools]
    if choice is not None:
        _tool_choice(choice, data)
    return data


def _user(msg: UserIn) -> list[dict[str, Any]]:
    if isinstance(msg.content, str):
        return [{"role": "user", "content": msg.content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in msg.content:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
        else:
            if parts:  # keep the order the client wrote
                out.append({"role": "user", "content": parts})
                parts = []
            text, images = _tool_result(block)
            out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
            parts.extend(images)  # a tool's screenshot goes to the model as the user's image
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool_result(block: ToolResultIn) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(block.content, str):
        text, images = block.content, []
    else:
        text = "\n".join(b.text for b in block.content if isinstance(b, TextBlock))
        images = [_image(b) for b in block.content if isinstance(b, ImageBlock)]
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return text, images


def _assistant(msg: AssistantIn) -> dict[str, Any]:
    if isinstance(msg.content, str):
        return {"role": "assistant", "content": msg.content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            calls.append({"id": block.id, "type": "function", "function": {
                "name": block.name, "arguments": _encode(block.input).decode()}})
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _image(block: ImageBlock) -> dict[str, Any]:
    src = block.source
    url = src.url if isinstance(src, URLSource) else f"data:{src.media_type};base64,{src.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool(t: ToolIn) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name, "parameters": t.input_schema}
    if t.description is not None:
        fn["description"] = t.description
    return {"type": "function", "function": fn}


def _tool_choice(c: ToolChoiceIn, data: dict[str, Any]) -> None:
    if isinstance(c, ChoiceTool):
        data["tool_choice"] = {"type": "function", "function": {"name": c.name}}
    elif isinstance(c, ChoiceNone):
        data["tool_choice"] = "none"
        return
    else:
        data["tool_choice"] = "required" if isinstance(c, ChoiceAny) else "auto"
    if c.disable_parallel_tool_use:
        data["parallel_tool_calls"] = False
