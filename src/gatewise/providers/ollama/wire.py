"""Ollama's native wire shapes and the translation between them and the canonical OpenAI ones.

Ollama differs from OpenAI where it matters for translation: sampling settings live in an
`options` object with its own names (`num_predict`, `num_ctx`), images travel as bare base64
beside the text, tool-call arguments are JSON objects rather than strings and carry no ids on
older servers, a tool result names the tool instead of the call, and `stream` defaults to true,
so every body states it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from gatewise.errors import InvalidRequestError
from gatewise.providers.base import Target
from gatewise.providers.common import embedding_base64, now, parse_data_url
from gatewise.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from gatewise.types.ids import new_id
from gatewise.types.messages import (
    AssistantMessage,
    FunctionCall,
    ImagePart,
    TextPart,
    ToolCall,
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
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage

DEFAULT_API_BASE = "http://localhost:11434"

# Canonical sampling fields and the `options` key Ollama reads each from.
_CANONICAL_OPTIONS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# Request fields Ollama's options spell the same way.
_SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
# Deployment params that are top-level request fields rather than model options.
_TOP_LEVEL_PARAMS = frozenset({"keep_alive", "think"})
_FINISH: dict[str, str] = {"stop": "stop", "length": "length"}

_encode = msgspec.json.Encoder().encode
_json_any = msgspec.json.Decoder()


# --- request side ------------------------------------------------------------------------------


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class WireFunctionCall(_Out):
    name: str
    arguments: dict[str, Any]


class WireToolCall(_Out):
    function: WireFunctionCall


class WireMessage(_Out):
    role: str
    content: str
    images: list[str] | UnsetType = UNSET
    tool_calls: list[WireToolCall] | UnsetType = UNSET
    tool_name: str | UnsetType = UNSET


class WireToolFunction(_Out):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET


class WireTool(_Out):
    type: Literal["function"]
    function: WireToolFunction


class WireChatRequest(_Out):
    """Field order follows Ollama's own `api.ChatRequest`."""

    model: str
    messages: list[WireMessage]
    stream: bool
    format: str | dict[str, Any] | UnsetType = UNSET
    keep_alive: str | float | UnsetType = UNSET
    tools: list[WireTool] | UnsetType = UNSET
    options: dict[str, Any] | UnsetType = UNSET
    think: bool | str | UnsetType = UNSET


class WireEmbedRequest(_Out):
    model: str
    input: str | list[str]
    truncate: bool | UnsetType = UNSET
    options: dict[str, Any] | UnsetType = UNSET
    keep_alive: str | float | UnsetType = UNSET
    dimensions: int | UnsetType = UNSET


# --- response side -----------------------------------------------------------------------------


class _In(msgspec.Struct, kw_only=True):
    """Lenient: Ollama adds fields between releases (`thinking`, `remote_model`, `logprobs`)."""


class InFunction(_In):
    name: str = ""
    arguments: dict[str, Any] | str | None = None
    index: int | None = None


class InToolCall(_In):
    function: InFunction
    id: str | None = None  # sent by newer servers only


class InMessage(_In):
    role: str = "assistant"
    content: str | None = None
    thinking: str | None = None
    tool_calls: list[InToolCall] | None = None


class ChatFrame(_In):
    """One `/api/chat` answer: the whole reply, or one NDJSON line of a stream."""

    model: str = ""
    created_at: str = ""
    message: InMessage | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: str | None = None


class EmbedResult(_In):
    model: str = ""
    embeddings: list[list[float]] = []
    prompt_eval_count: int | None = None


# --- addressing --------------------------------------------------------------------------------


def api_url(target: Target, path: str) -> str:
    """`path` is 'chat', 'embed' or 'tags'; the base is the host root, as LiteLLM takes it."""
    base = (target.api_base or DEFAULT_API_BASE).rstrip("/")
    return f"{base}/api/{path}"


def headers_for(target: Target, *, json_body: bool = True, stream: bool = False) -> dict[str, str]:
    h: dict[str, str] = {"accept": "application/x-ndjson" if stream else "application/json"}
    if json_body:
        h["content-type"] = "application/json"
    # A local daemon needs no key; ollama.com and authenticating proxies take a bearer token.
    if target.api_key and target.auth == "bearer":
        h["authorization"] = f"Bearer {target.api_key}"
    if target.headers:
        h.update(target.headers)
    return h


# --- chat requests -----------------------------------------------------------------------------


def chat_body(req: ChatRequest, target: Target) -> bytes:
    top: dict[str, Any] = {k: v for k, v in target.params.items() if k in _TOP_LEVEL_PARAMS}
    options = options_for(req, target)
    body = WireChatRequest(
        model=target.model,
        messages=messages_for(req),
        stream=req.stream,
        format=format_for(req),
        keep_alive=top.get("keep_alive", UNSET),
        tools=tools_for(req),
        options=options if options else UNSET,
        think=top.get("think", UNSET),
    )
    return _encode(body)


def options_for(req: ChatRequest, target: Target) -> dict[str, Any]:
    """Deployment params are defaults (Ollama option names pass through as they are); what the
    caller set on the request wins."""
    opts: dict[str, Any] = {}
    for key, value in target.params.items():
        if key in _TOP_LEVEL_PARAMS or value is None:
            continue
        opts[_CANONICAL_OPTIONS.get(key, key)] = value
    for name in _SAMPLING:
        value = getattr(req, name)
        if value is not None:
            opts[name] = value
    if req.output_limit is not None:
        opts["num_predict"] = req.output_limit
    if req.stop is not None:
        opts["stop"] = req.stop
    stop = opts.get("stop")
    if isinstance(stop, str):
        opts["stop"] = [stop]
    return opts


def format_for(req: ChatRequest) -> str | dict[str, Any] | UnsetType:
    rf = req.response_format
    if isinstance(rf, ResponseFormatJSONObject):
        return "json"
    if isinstance(rf, ResponseFormatJSONSchema):
        return rf.json_schema.schema or "json"
    return UNSET


def tools_for(req: ChatRequest) -> list[WireTool] | UnsetType:
    """Ollama has no `tool_choice`: 'none' withholds the tools and a named choice offers only
    that tool, which is the closest the model can be steered."""
    choice = req.tool_choice
    if not req.tools or choice == "none":
        return UNSET
    tools = req.tools
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t.function.name == choice.function.name]
    return [
        WireTool(
            type="function",
            function=WireToolFunction(
                name=t.function.name,
                description=t.function.description if t.function.description else UNSET,
                parameters=t.function.parameters if t.function.parameters is not None else UNSET,
            ),
        )
        for t in tools
    ]


def messages_for(req: ChatRequest) -> list[WireMessage]:
    names: dict[str, str] = {}  # tool_call_id -> function name, for the tool results
    out: list[WireMessage] = []
    for i, m in enumerate(req.messages):
        if isinstance(m, UserMessage):
            out.append(_user_message(m, i))
        elif isinstance(m, AssistantMessage):
            calls: list[WireToolCall] | UnsetType = UNSET
            if m.tool_calls:
                calls = []
                for j, call in enumerate(m.tool_calls):
                    names[call.id] = call.function.name
                    args = _arguments_object(call.function.arguments,
                                             f"messages[{i}].tool_calls[{j}].function.arguments")
                    calls.append(WireToolCall(function=WireFunctionCall(
                        name=call.function.name, arguments=args)))
            out.append(WireMessage(role="assistant", content=text_of(m.content), tool_calls=calls))
        elif isinstance(m, ToolMessage):
            out.append(WireMessage(role="tool", content=text_of(m.content),
                                   tool_name=names.get(m.tool_call_id, UNSET)))
        else:  # system and developer instructions are both Ollama's system role
            out.append(WireMessage(role="system", content=text_of(m.content)))
    return out


def _user_message(m: UserMessage, i: int) -> WireMessage:
    if isinstance(m.content, str):
        return WireMessage(role="user", content=m.content)
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(m.content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            param = f"messages[{i}].content[{j}].image_url.url"
            images.append(image_data(part.image_url.url, param))
        else:
            raise InvalidRequestError(f"ollama does not accept '{part.__struct_config__.tag}' "
                                      "content parts", param=f"messages[{i}].content[{j}]")
    return WireMessage(role="user", content="\n".join(texts), images=images if images else UNSET)


def image_data(url: str, param: str) -> str:
    """The base64 payload of a `data:` URL; Ollama cannot fetch remote images itself, and the
    adapter does no I/O, so anything else is the caller's to inline."""
    parsed = parse_data_url(url)
    if parsed is None:
        raise InvalidRequestError("ollama takes images only as base64 'data:' URLs", param=param)
    return parsed[1]


def _arguments_object(arguments: str, param: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = _json_any.decode(arguments)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError("tool-call arguments must be a JSON object", param=param)
    return value


# --- chat responses ----------------------------------------------------------------------------


def completion_from(frame: ChatFrame, target: Target) -> ChatCompletion:
    msg = frame.message or InMessage()
    calls = tool_calls_from(msg.tool_calls) if msg.tool_calls else None
    content = msg.content or ""  # `thinking` is the model's scratchpad, never the answer
    return ChatCompletion(
        id=new_id(),
        created=created_from(frame.created_at),
        model=frame.model or target.model,
        choices=[Choice(
            index=0,
            message=ResponseMessage(content=content if content or not calls else None,
                                    tool_calls=calls),
            finish_reason=finish_reason_for(frame.done_reason, bool(calls)),
        )],
        usage=usage_from(frame),
    )


def tool_calls_from(calls: list[InToolCall]) -> list[ToolCall]:
    return [
        ToolCall(
            id=c.id or new_id("call"),
            type="function",
            function=FunctionCall(name=c.function.name,
                                  arguments=arguments_json(c.function.arguments)),
        )
        for c in calls
    ]


def arguments_json(arguments: dict[str, Any] | str | None) -> str:
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return _encode(arguments).decode()


def finish_reason_for(done_reason: str | None, has_tool_calls: bool) -> str:
    """Ollama says 'stop' after a tool call; OpenAI's clients wait for 'tool_calls'."""
    if has_tool_calls:
        return "tool_calls"
    return _FINISH.get(done_reason or "stop", "stop")


def usage_from(frame: ChatFrame) -> Usage | None:
    if frame.prompt_eval_count is None and frame.eval_count is None:
        return None
    prompt = frame.prompt_eval_count or 0
    completion = frame.eval_count or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)


def created_from(created_at: str) -> int:
    """Unix seconds from Ollama's RFC 3339 timestamp (nanoseconds and any offset allowed)."""
    if created_at:
        try:
            return int(datetime.fromisoformat(created_at).timestamp())
        except ValueError:
            pass
    return now()


# --- embeddings --------------------------------------------------------------------------------


def embed_body(req: EmbeddingRequest, target: Target) -> bytes:
    if isinstance(req.input, list) and not all(isinstance(x, str) for x in req.input):
        raise InvalidRequestError("ollama embeds text only, not token ids", param="input")
    top = {k: v for k, v in target.params.items() if k in _TOP_LEVEL_PARAMS}
    # Only Ollama's own option names apply here; sampling defaults are for chat deployments.
    options = {k: v for k, v in target.params.items()
               if k not in _TOP_LEVEL_PARAMS and k not in _CANONICAL_OPTIONS
               and k != "truncate" and v is not None}
    truncate = target.params.get("truncate")
    return _encode(WireEmbedRequest(
        model=target.model,
        input=req.input,
        truncate=truncate if isinstance(truncate, bool) else UNSET,
        options=options if options else UNSET,
        keep_alive=top.get("keep_alive", UNSET),
        dimensions=req.dimensions if req.dimensions is not None else UNSET,
    ))


def embedding_response_from(result: EmbedResult, req: EmbeddingRequest,
                            target: Target) -> EmbeddingResponse:
    as_base64 = req.encoding_format == "base64"
    data = [
        Embedding(index=i, embedding=embedding_base64(vec) if as_base64 else vec)
        for i, vec in enumerate(result.embeddings)
    ]
    tokens = result.prompt_eval_count or 0
    return EmbeddingResponse(data=data, model=result.model or target.model,
                             usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

