"""Responses API requests → canonical `ChatRequest`.

The body is decoded into the Responses request shape first (so a mistake names the
Responses field, e.g. `input[2].call_id`), then rebuilt in chat's shape and converted through
the same types and checks as `/v1/chat/completions`: whatever the chat edge refuses, this edge
refuses too, and the pipeline behind it (governance, guardrails, cache, ledger) sees an
ordinary chat call.

The translation:
- `instructions` becomes a leading system message; it is not carried over to a response that
  continues this one (OpenAI's rule), so it is never stored with the thread;
- `input` as a string is one user message; as items: `message` items become messages of
  their role (`input_text` / `input_image` / `input_file` parts become chat's text, image and
  file parts; an assistant's `output_text` and `refusal` become its content and refusal),
  `function_call` items become the assistant's `tool_calls` (consecutive calls, and calls
  right after an assistant message of the same input, are one assistant turn, as chat wants
  parallel calls), `function_call_output` items become `tool` messages. Other item types
  (`reasoning`, `item_reference`, hosted tools' calls) are refused: gatewise never outputs
  them, so a client that chains gatewise's own output never sends them back;
- tools of type `function`, `tool_choice`, `text.format` (→ `response_format`),
  `max_output_tokens` (→ `max_tokens`), `reasoning.effort` and the sampling settings map
  one to one.

The rules between fields are chat's (`check_chat_request`), so their 400s name the chat
request's field: a `function_call_output` that answers no earlier call is
`messages[i].tool_call_id`, counted over the previous response's thread and this input.

Messages, like OpenAI's easy input messages, may leave out `"type": "message"`. A body with an
escaped NUL character (`\\u0000`) is refused: no store keeps one (PostgreSQL text cannot) and
no model needs one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.types.requests import MAX_INT32, ChatRequest, ModelName
from gatewise.types.validation import check_chat_request, check_depth, refused_only_for_whole_float
from gatewise.types.validation import whole_floats_as_ints as _whole

# An escaped NUL: `\u0000` after an even number of backslashes (`\\u0000` is text).
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
RESPONSE_ID_PATTERN = r"^resp_[A-Za-z0-9_\-]{1,120}$"
_Text = Annotated[str, msgspec.Meta(max_length=10_485_760)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _Lenient(msgspec.Struct, kw_only=True):
    """Items and parts tolerate fields OpenAI adds to what a client echoes back (`status`,
    `annotations`, `logprobs`, `phase`): the SDK sends a previous response's output as is."""


class InputText(_Lenient, tag="input_text", tag_field="type"):
    text: _Text


class InputImage(_Lenient, tag="input_image", tag_field="type"):
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] = "auto"


class InputFile(_Lenient, tag="input_file", tag_field="type"):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class OutputText(_Lenient, tag="output_text", tag_field="type"):
    text: _Text


class OutputRefusal(_Lenient, tag="refusal", tag_field="type"):
    refusal: _Text


ContentPart = InputText | InputImage | InputFile | OutputText | OutputRefusal
ToolOutputPart = InputText | InputImage | InputFile


class MessageItem(_Lenient, tag="message", tag_field="type"):
    role: Literal["user", "assistant", "system", "developer"]
    content: _Text | list[ContentPart]
    id: str | None = None


class FunctionCallItem(_Lenient, tag="function_call", tag_field="type"):
    call_id: _Id
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")]
    arguments: _Text
    id: str | None = None


class FunctionCallOutputItem(_Lenient, tag="function_call_output", tag_field="type"):
    call_id: _Id
    output: _Text | list[ToolOutputPart]
    id: str | None = None


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class FunctionTool(_Strict, tag="function", tag_field="type"):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")]
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class ToolChoiceFunction(_Strict, tag="function", tag_field="type"):
    name: str


class FormatText(_Strict, tag="text", tag_field="type"):
    pass


class FormatJSONObject(_Strict, tag="json_object", tag_field="type"):
    pass


class FormatJSONSchema(_Strict, tag="json_schema", tag_field="type"):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_\-]{1,64}$")]
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Strict):
    format: FormatText | FormatJSONObject | FormatJSONSchema | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(_Strict):
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptionsIn(_Strict):
    include_obfuscation: bool | None = None


# OpenAI: at most 16 pairs, keys up to 64 characters, values up to 512 (as chat's).
_Metadata = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=512)]],
    msgspec.Meta(max_length=16)]


class ResponsesRequestIn(_Strict):
    """`POST /v1/responses`. Unknown top-level fields are refused, as OpenAI refuses them.
    `include`, `truncation`, `max_tool_calls` and `reasoning.summary` are accepted and have no
    canonical equivalent; `background: true` is refused (responses are answered in the
    request). Ranges are chat's."""

    model: ModelName
    input: _Text | Annotated[list[InputItem], msgspec.Meta(min_length=1, max_length=4096)]
    instructions: _Text | None = None
    tools: Annotated[list[FunctionTool], msgspec.Meta(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_INT32)] | None = None
    metadata: _Metadata | None = None
    user: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    store: bool = True
    previous_response_id: Annotated[str, msgspec.Meta(pattern=RESPONSE_ID_PATTERN)] | None = None
    stream: bool = False
    stream_options: StreamOptionsIn | None = None
    reasoning: ReasoningConfig | None = None
    include: Annotated[list[Annotated[str, msgspec.Meta(max_length=128)]],
                       msgspec.Meta(max_length=16)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    max_tool_calls: Annotated[int, msgspec.Meta(ge=1, le=MAX_INT32)] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    prompt_cache_key: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    safety_identifier: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    background: bool | None = None


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A validated Responses request: the body, and its `input` as chat messages (the new
    turn only; a previous response's thread goes in front of it, see `to_chat_request`)."""

    body: ResponsesRequestIn
    messages: list[dict[str, Any]]


def _invalid(exc: msgspec.MsgspecError) -> InvalidRequestError:
    """msgspec's message says where (`- at `$.input[0].role``); kept as the message, and the
    path (without `$.`) as `param`."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidRequestError(f"Invalid JSON body: {text}", code="invalid_json")
    _, sep, where = text.partition(" - at `$")
    param = where.rstrip("`").lstrip(".") if sep else None
    return InvalidRequestError(f"Invalid responses request: {text}", param=param or None)


def _convert(raw: Any) -> ResponsesRequestIn:
    try:
        return msgspec.convert(raw, ResponsesRequestIn)
    except msgspec.ValidationError as exc:
        if not refused_only_for_whole_float(exc):
            raise _invalid(exc) from None
    try:
        return msgspec.convert(_whole(raw), ResponsesRequestIn)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def decode_responses_request(body: bytes, *, max_depth: int) -> ParsedRequest:
    """The validated request and its input as chat messages; a 400 naming the field."""
    if b"\\u0000" in body and _NUL.search(body):  # the substring test is ~free; the regex is not
        raise InvalidRequestError("NUL characters (\\u0000) are not allowed in a request",
                                  code="invalid_characters")
    check_depth(body, max_depth)
    try:
        raw = msgspec.json.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    if not isinstance(raw, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    items = raw.get("input")
    if isinstance(items, list):
        for item in items:  # an easy input message: `{"role": ..., "content": ...}`
            if isinstance(item, dict) and "type" not in item and "role" in item:
                item["type"] = "message"
    req = _convert(raw)
    if req.background:
        raise InvalidRequestError("background responses are not supported; leave "
                                  "'background' unset or false", param="background")
    return ParsedRequest(req, input_messages(req.input))


def input_messages(inp: str | list[InputItem]) -> list[dict[str, Any]]:
    """`input` as chat messages, in order (see the module docstring)."""
    if isinstance(inp, str):
        return [{"role": "user", "content": inp}]
    out: list[dict[str, Any]] = []
    open_assistant = False  # the last message is an assistant turn built from this input
    for i, item in enumerate(inp):
        if isinstance(item, MessageItem):
            out.extend(_message(item, i))
            open_assistant = item.role == "assistant"
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            if open_assistant:
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
                open_assistant = True
        elif isinstance(item, FunctionCallOutputItem):
            out.extend(_tool_output(item, i))
            open_assistant = False
    return out


def _text_of(parts: list[ContentPart], i: int, role: str) -> str:
    texts: list[str] = []
    for j, part in enumerate(parts):
        if isinstance(part, InputText | OutputText):
            texts.append(part.text)
        elif not isinstance(part, OutputRefusal):
            raise InvalidRequestError(f"a {role} message holds text only",
                                      param=f"input[{i}].content[{j}]")
    return "".join(texts)


def _message(item: MessageItem, i: int) -> list[dict[str, Any]]:
    role = item.role
    if isinstance(item.content, str):
        return [{"role": role, "content": item.content}]
    if role == "assistant":
        msg: dict[str, Any] = {"role": role, "content": _text_of(item.content, i, role)}
        refusal = "".join(p.refusal for p in item.content if isinstance(p, OutputRefusal))
        if refusal:
            msg["refusal"] = refusal
        return [msg]
    if role != "user":
        return [{"role": role, "content": _text_of(item.content, i, role)}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(item.content):
        if isinstance(part, InputText | OutputText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, InputImage | InputFile):
            parts.append(_media(part, f"input[{i}].content[{j}]"))
        else:
            raise InvalidRequestError("a user message cannot hold a refusal",
                                      param=f"input[{i}].content[{j}]")
    return [{"role": role, "content": parts}]


def _media(part: InputImage | InputFile, param: str) -> dict[str, Any]:
    if isinstance(part, InputImage):
        if part.image_url is None:
            raise InvalidRequestError("an input_image needs an 'image_url' (a URL or a data: "
                                      "URL); file ids are not served", param=param)
        return {"type": "image_url", "image_url": {"url": part.image_url,
                                                   "detail": part.detail}}
    file: dict[str, Any] = {}
    if part.file_data is not None:
        file["file_data"] = part.file_data
    if part.file_id is not None:
        file["file_id"] = part.file_id
    if part.filename is not None:
        file["filename"] = part.filename
    if not file.keys() & {"file_data", "file_id"}:
        raise InvalidRequestError("an input_file needs 'file_data' or 'file_id'", param=param)
    return {"type": "file", "file": file}


def _tool_output(item: FunctionCallOutputItem, i: int) -> list[dict[str, Any]]:
    if isinstance(item.output, str):
        return [{"role": "tool", "tool_call_id": item.call_id, "content": item.output}]
    text = "".join(p.text for p in item.output if isinstance(p, InputText))
    media = [_media(p, f"input[{i}].output[{j}]") for j, p in enumerate(item.output)
             if not isinstance(p, InputText)]
    out: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": item.call_id, "content": text}]
    if media:  # a tool's screenshot goes to the model as the user's image
        out.append({"role": "user", "content": media})
    return out


def to_chat_request(parsed: ParsedRequest, thread: list[dict[str, Any]], *,
                    max_depth: int) -> ChatRequest:
    """The chat request: instructions, the previous response's `thread` (stored chat messages,
    oldest first), then this request's input."""
    r = parsed.body
    messages: list[dict[str, Any]] = []
    if r.instructions:
        messages.append({"role": "system", "content": r.instructions})
    messages += thread
    messages += parsed.messages
    data: dict[str, Any] = {"model": r.model, "messages": messages, "stream": r.stream}
    if r.stream:
        data["stream_options"] = {"include_usage": True}  # response.completed carries usage
    if r.tools:
        data["tools"] = [_tool(t) for t in r.tools]
    if isinstance(r.tool_choice, ToolChoiceFunction):
        data["tool_choice"] = {"type": "function", "function": {"name": r.tool_choice.name}}
    elif r.tool_choice is not None:
        data["tool_choice"] = r.tool_choice
    fmt = r.text.format if r.text is not None else None
    if isinstance(fmt, FormatJSONSchema):
        spec: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
        if fmt.description is not None:
            spec["description"] = fmt.description
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        data["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif isinstance(fmt, FormatJSONObject):
        data["response_format"] = {"type": "json_object"}
    if r.text is not None and r.text.verbosity is not None:
        data["verbosity"] = r.text.verbosity
    if r.reasoning is not None and r.reasoning.effort is not None:
        data["reasoning_effort"] = r.reasoning.effort
    for src, dst in (("parallel_tool_calls", "parallel_tool_calls"),
                     ("temperature", "temperature"), ("top_p", "top_p"),
                     ("max_output_tokens", "max_tokens"), ("metadata", "metadata"),
                     ("user", "user"), ("service_tier", "service_tier"),
                     ("prompt_cache_key", "prompt_cache_key"),
                     ("safety_identifier", "safety_identifier")):
        value = getattr(r, src)
        if value is not None:
            data[dst] = value
    try:
        req = msgspec.convert(data, ChatRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    check_chat_request(req, max_depth=max_depth)
    return req


def _tool(t: FunctionTool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.parameters is not None:
        fn["parameters"] = t.parameters
    if t.description is not None:
        fn["description"] = t.description
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}
