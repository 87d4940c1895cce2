"""Anthropic Messages API shapes, and the translation between them and the canonical ones.

Outgoing structs are written field for field in the order Anthropic documents them, so encoding
a request is one `msgspec` pass with no intermediate dicts. Incoming structs are lenient (blocks
and events gain fields over time) and default every field, so an error body or an unknown block
type decodes instead of failing halfway through a response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.providers.base import Target
from gatewise.providers.common import parse_data_url
from gatewise.types.messages import (
    AssistantMessage,
    AudioPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    text_of,
)
from gatewise.types.requests import (
    ChatRequest,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
)

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# The synthetic tool that carries structured output: Anthropic has no `response_format`, but a
# forced tool call's `input` is a JSON object that matches the tool's schema.
JSON_TOOL = "json_response"

_decode_json = msgspec.json.Decoder()


# ---- outgoing ---------------------------------------------------------------------------------


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class TextBlock(_Out, tag="text", tag_field="type"):
    text: str


class Base64Source(_Out, tag="base64", tag_field="type"):
    media_type: str
    data: str


class URLSource(_Out, tag="url", tag_field="type"):
    url: str


class ImageBlock(_Out, tag="image", tag_field="type"):
    source: Base64Source | URLSource


class DocumentBlock(_Out, tag="document", tag_field="type"):
    source: Base64Source | URLSource


class ToolUseBlock(_Out, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Out, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str


Block = TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock


class WireMessage(_Out):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class WireTool(_Out):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None


class WireToolChoice(_Out):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class WireMetadata(_Out):
    user_id: str


class MessagesRequest(_Out):
    model: str
    max_tokens: int
    messages: list[WireMessage]
    system: str | list[TextBlock] | None = None
    metadata: WireMetadata | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    tools: list[WireTool] | None = None
    tool_choice: WireToolChoice | None = None


# ---- incoming ---------------------------------------------------------------------------------


class _In(msgspec.Struct, kw_only=True):
    pass


class WireUsage(_In):
    """`None` means "not reported in this frame": `message_delta` repeats only some counts."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class ContentBlock(_In):
    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    input: Any = None


class ErrorInfo(_In):
    type: str = "api_error"
    message: str = ""


class MessageResponse(_In):
    id: str = ""
    type: str = "message"
    role: str = "assistant"
    model: str = ""
    content: list[ContentBlock] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: WireUsage | None = None
    error: ErrorInfo | None = None


class MessageStart(_In, tag="message_start", tag_field="type"):
    message: MessageResponse


class ContentBlockStart(_In, tag="content_block_start", tag_field="type"):
    index: int
    content_block: ContentBlock


class BlockDelta(_In):
    type: str
    text: str = ""
    partial_json: str = ""


class ContentBlockDelta(_In, tag="content_block_delta", tag_field="type"):
    index: int
    delta: BlockDelta


class ContentBlockStop(_In, tag="content_block_stop", tag_field="type"):
    index: int


class MessageDeltaBody(_In):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(_In, tag="message_delta", tag_field="type"):
    delta: MessageDeltaBody
    usage: WireUsage | None = None


class MessageStop(_In, tag="message_stop", tag_field="type"):
    pass


class Ping(_In, tag="ping", tag_field="type"):
    pass


class ErrorEvent(_In, tag="error", tag_field="type"):
    error: ErrorInfo


StreamEvent = (
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta
    | MessageStop | Ping | ErrorEvent
)
STREAM_EVENT_TYPES = frozenset({
    "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "ping", "error",
})


# ---- requests ---------------------------------------------------------------------------------


def messages_url(target: Target, path: str = "messages") -> str:
    """`path` is 'messages' or 'models'; a base ending in /v1 is accepted, as LiteLLM does."""
    base = target.api_base.rstrip("/") or "https://api.anthropic.com"
    if base.endswith("/v1/messages"):
        base = base[: -len("/messages")]
    if not base.endswith("/v1"):
        base += "/v1"
    return f"{base}/{path}"


def headers_for(target: Target, *, json_body: bool = True) -> dict[str, str]:
    h: dict[str, str] = {"accept": "application/json"}
    if json_body:
        h["content-type"] = "application/json"
    h["anthropic-version"] = target.api_version or ANTHROPIC_VERSION
    key = target.api_key
    if key:
        if target.auth == "bearer":
            h["authorization"] = f"Bearer {key}"
        elif target.auth != "none":
            h["x-api-key"] = key
    if target.headers:
        h.update(target.headers)
    return h


@dataclass(slots=True, frozen=True)
class JsonMode:
    """How structured output rides on the synthetic tool. `wrapped`: the schema is not an object
    (tool inputs must be), so it sits under `value` and is unwrapped on the way back."""

    schema: dict[str, Any]
    description: str
    wrapped: bool


def json_mode(req: ChatRequest) -> JsonMode | None:
    rf = req.response_format
    if isinstance(rf, ResponseFormatJSONSchema):
        schema = rf.json_schema.schema or _any_object()
        desc = rf.json_schema.description or f"Reply with the '{rf.json_schema.name}' JSON object."
        if schema.get("type", "object" if "properties" in schema else None) == "object":
            return JsonMode(schema, desc, False)
        wrapper = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
        return JsonMode(wrapper, desc, True)
    if isinstance(rf, ResponseFormatJSONObject):
        return JsonMode(_any_object(), "Reply with a JSON object.", False)
    return None


def _any_object() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": True}


def build_body(req: ChatRequest, target: Target) -> MessagesRequest:
    if req.n is not None and req.n > 1:
        raise InvalidRequestError("anthropic returns one candidate per request; 'n' must be 1",
                                  param="n")
    params = target.params
    system, messages = _messages(req)
    limit = req.output_limit or params.get("max_tokens") or DEFAULT_MAX_TOKENS
    temperature = req.temperature if req.temperature is not None else params.get("temperature")
    stop = req.stop if req.stop is not None else params.get("stop")
    user = req.user or req.safety_identifier
    tools, choice = _tools(req)
    return MessagesRequest(
        model=target.model,
        max_tokens=int(limit),
        system=system,
        messages=messages,
        metadata=WireMetadata(user_id=user) if user else None,
        stop_sequences=[stop] if isinstance(stop, str) else (list(stop) if stop else None),
        stream=req.stream,
        temperature=None if temperature is None else min(1.0, max(0.0, float(temperature))),
        top_p=req.top_p if req.top_p is not None else params.get("top_p"),
        tools=tools,
        tool_choice=choice,
    )


def _tools(req: ChatRequest) -> tuple[list[WireTool] | None, WireToolChoice | None]:
    tools = [
        WireTool(name=t.function.name, description=t.function.description,
                 input_schema=t.function.parameters or {"type": "object", "properties": {}})
        for t in req.tools or ()
    ]
    mode = json_mode(req)
    if mode is not None:
        tools.append(WireTool(name=JSON_TOOL, description=mode.description,
                              input_schema=mode.schema))
    if not tools:
        return None, None
    no_parallel = True if req.parallel_tool_calls is False else None
    choice = req.tool_choice
    if mode is not None and (not req.tools or choice == "none"):
        # Structured output only: force the synthetic tool so the answer is always the object.
        return [tools[-1]], WireToolChoice(type="tool", name=JSON_TOOL)
    if isinstance(choice, NamedToolChoice):
        return tools, WireToolChoice(type="tool", name=choice.function.name,
                                     disable_parallel_tool_use=no_parallel)
    if choice == "none":
        return tools, WireToolChoice(type="none")
    if choice == "required":
        return tools, WireToolChoice(type="any", disable_parallel_tool_use=no_parallel)
    if choice == "auto" or no_parallel:
        return tools, WireToolChoice(type="auto", disable_parallel_tool_use=no_parallel)
    return tools, None


def _messages(req: ChatRequest) -> tuple[str | list[TextBlock] | None, list[WireMessage]]:
    """System text lifted out; turns merged so roles alternate as Anthropic requires."""
    system: list[str] = []
    turns: list[tuple[Literal["user", "assistant"], list[Block]]] = []
    for i, msg in enumerate(req.messages):
        role: Literal["user", "assistant"]
        if isinstance(msg, SystemMessage | DeveloperMessage):
            parts = [msg.content] if isinstance(msg.content, str) else [p.text for p in msg.content]
            system.extend(p for p in parts if p)
            continue
        if isinstance(msg, UserMessage):
            role, blocks = "user", _user_blocks(msg, i)
        elif isinstance(msg, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(msg, i)
        elif isinstance(msg, ToolMessage):
            role = "user"
            blocks = [ToolResultBlock(tool_use_id=msg.tool_call_id, content=text_of(msg.content))]
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    out = [
        WireMessage(role=role, content=blocks[0].text
                    if len(blocks) == 1 and isinstance(blocks[0], TextBlock) else blocks)
        for role, blocks in turns
    ]
    if not system:
        return None, out
    if len(system) == 1:
        return system[0], out
    return [TextBlock(text=t) for t in system], out


def _user_blocks(msg: UserMessage, i: int) -> list[Block]:
    if isinstance(msg.content, str):
        return [TextBlock(text=msg.content)] if msg.content else []
    blocks: list[Block] = []
    for j, part in enumerate(msg.content):
        where = f"messages[{i}].content[{j}]"
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(TextBlock(text=part.text))
        elif isinstance(part, ImagePart):
            blocks.append(ImageBlock(source=_source(part.image_url.url, f"{where}.image_url.url")))
        elif isinstance(part, FilePart):
            data = part.file.file_data
            if not data:
                raise InvalidRequestError("anthropic needs file parts inline as a data: URL "
                                          "(file ids are OpenAI's)", param=f"{where}.file")
            blocks.append(DocumentBlock(source=_source(data, f"{where}.file.file_data")))
        elif isinstance(part, AudioPart):
            raise InvalidRequestError("anthropic does not accept audio input", param=where)
    return blocks


def _source(url: str, param: str) -> Base64Source | URLSource:
    if url.startswith(("http://", "https://")):
        return URLSource(url=url)
    parsed = parse_data_url(url)
    if parsed is None or parsed[0] is None:
        raise InvalidRequestError("expected an http(s) URL or a base64 data: URL", param=param)
    return Base64Source(media_type=parsed[0], data=parsed[1])


def _assistant_blocks(msg: AssistantMessage, i: int) -> list[Block]:
    text = text_of(msg.content)
    blocks: list[Block] = [TextBlock(text=text)] if text else []
    for j, call in enumerate(msg.tool_calls or ()):
        raw = call.function.arguments.strip() or "{}"
        try:
            args = _decode_json.decode(raw)
        except msgspec.DecodeError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequestError(
                "tool call arguments must be a JSON object for anthropic",
                param=f"messages[{i}].tool_calls[{j}].function.arguments",
            )
        blocks.append(ToolUseBlock(id=call.id, name=call.function.name, input=args))
    return blocks
