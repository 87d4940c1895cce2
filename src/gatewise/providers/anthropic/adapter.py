"""Anthropic Messages API: canonical chat requests out, `chat.completion` shapes back.

Anthropic streams typed content blocks (text, tool_use, thinking) addressed by index, while
OpenAI streams flat deltas with tool calls numbered by their own index; the stream memo keeps
the mapping from one to the other and the usage counts, which arrive split over
`message_start` (input) and `message_delta` (output, cumulative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError, ProviderError
from gatewise.providers.anthropic.errors import TYPE_STATUS, map_error
from gatewise.providers.anthropic.wire import (
    JSON_TOOL,
    STREAM_EVENT_TYPES,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ErrorEvent,
    JsonMode,
    MessageDelta,
    MessageResponse,
    MessageStart,
    MessageStop,
    StreamEvent,
    WireUsage,
    build_body,
    headers_for,
    json_mode,
    messages_url,
)
from gatewise.providers.base import Capabilities, StreamState, Target
from gatewise.providers.common import bad_response, now
from gatewise.transport.base import HttpRequest, HttpResponse
from gatewise.transport.sse import SSEEvent
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.ids import new_id
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import (
    ChatCompletion,
    Choice,
    PromptTokensDetails,
    ResponseMessage,
    Usage,
)
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

_response = msgspec.json.Decoder(MessageResponse)
_event = msgspec.json.Decoder(StreamEvent)
_encode = msgspec.json.Encoder().encode

_MEMO = "anthropic"
_NO_VISION = ("claude-2", "claude-instant")
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

BlockKind = Literal["text", "tool", "json", "skip"]


@dataclass(slots=True)
class _Memo:
    """Per-stream bookkeeping: Anthropic block index → what it is and its OpenAI tool index."""

    mode: JsonMode | None
    blocks: dict[int, tuple[BlockKind, int]] = field(default_factory=dict)
    tools: int = 0
    with_args: set[int] = field(default_factory=set)
    json_parts: list[str] = field(default_factory=list)
    usage: WireUsage = field(default_factory=WireUsage)


class AnthropicAdapter:
    name = "anthropic"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def build_request(self, req: ChatRequest, target: Target) -> HttpRequest:
        body = _encode(build_body(req, target))
        return HttpRequest("POST", messages_url(target), headers_for(target), body,
                           target.timeouts)

    def parse_response(self, resp: HttpResponse, req: ChatRequest,
                       target: Target) -> ChatCompletion:
        try:
            msg = _response.decode(resp.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise bad_response(target, "malformed JSON in anthropic message", resp) from None
        if msg.type == "error" or msg.error is not None:
            raise map_error(HttpResponse(502, resp.headers, resp.body), target)
        if msg.type != "message":
            raise bad_response(target, f"expected a message, got type '{msg.type}'", resp)
        mode = json_mode(req)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in msg.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                if mode is not None and block.name == JSON_TOOL:
                    texts.append(json_text(block.input, mode))
                else:
                    fn = FunctionCall(name=block.name, arguments=arguments_text(block.input))
                    calls.append(ToolCall(id=block.id or new_id("call"), type="function",
                                          function=fn))
        u = msg.usage or WireUsage()
        usage = usage_of(u.input_tokens or 0, u.output_tokens or 0,
                         u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0)
        content = "".join(texts) if texts or not calls else None
        return ChatCompletion(
            id=msg.id or new_id(),
            created=now(),
            model=msg.model or target.model,
            choices=[Choice(
                index=0,
                message=ResponseMessage(content=content, tool_calls=calls or None),
                finish_reason=finish_reason(msg.stop_reason, real_tool_calls=bool(calls)) or "stop",
                stop_sequence=matched_stop(msg.stop_reason, msg.stop_sequence),
            )],
            usage=usage,
        )

    def new_stream_state(self, req: ChatRequest, target: Target) -> StreamState:
        state = StreamState(req, target, id=new_id(), created=now(), model=target.model)
        state.data[_MEMO] = _Memo(json_mode(req))
        return state

    def parse_stream_event(self, event: SSEEvent | bytes,
                           state: StreamState) -> list[ChatCompletionChunk]:
        if isinstance(event, SSEEvent):
            if event.event not in STREAM_EVENT_TYPES and event.event != "message":
                return []  # Anthropic may add event types; unknown ones are skipped by contract
            raw = event.data.encode()
        else:
            raw = event
        ev = _event.decode(raw)
        memo: _Memo = state.data[_MEMO]
        if isinstance(ev, ContentBlockDelta):
            return self._on_delta(ev, memo, state)
        if isinstance(ev, ContentBlockStart):
            return self._on_block_start(ev, memo, state)
        if isinstance(ev, ContentBlockStop):
            return self._on_block_stop(ev, memo, state)
        if isinstance(ev, MessageStart):
            msg = ev.message
            state.id = msg.id or state.id
            state.model = msg.model or state.model
            if msg.usage is not None:
                _merge_usage(memo.usage, msg.usage)
            return [_chunk(state, Delta(role="assistant", content=""))]
        if isinstance(ev, MessageDelta):
            if ev.usage is not None:
                _merge_usage(memo.usage, ev.usage)
            reason = finish_reason(ev.delta.stop_reason, real_tool_calls=memo.tools > 0)
            if reason is None:
                return []
            state.finish_reason = reason
            chunk = _chunk(state, Delta(), reason)
            chunk.choices[0].stop_sequence = matched_stop(ev.delta.stop_reason,
                                                          ev.delta.stop_sequence)
            return [chunk]
        if isinstance(ev, MessageStop):
            state.done = True
            u = memo.usage
            if u.input_tokens is None and u.output_tokens is None:
                return []
            state.usage = usage_of(u.input_tokens or 0, u.output_tokens or 0,
                                   u.cache_read_input_tokens or 0,
                                   u.cache_creation_input_tokens or 0)
            return [ChatCompletionChunk(id=state.id, created=state.created, model=state.model,
                                        choices=[], usage=state.usage)]
        if isinstance(ev, ErrorEvent):
            status = TYPE_STATUS.get(ev.error.type, 500)
            raise map_error(HttpResponse(status, {}, raw), state.target)
        return []  # ping

    def _on_block_start(self, ev: ContentBlockStart, memo: _Memo,
                        state: StreamState) -> list[ChatCompletionChunk]:
        block = ev.content_block
        if block.type == "text":
            memo.blocks[ev.index] = ("text", 0)
            return [_chunk(state, Delta(content=block.text))] if block.text else []
        if block.type != "tool_use":
            memo.blocks[ev.index] = ("skip", 0)  # thinking, redacted_thinking, server tools
            return []
        if memo.mode is not None and block.name == JSON_TOOL:
            memo.blocks[ev.index] = ("json", 0)
            return []
        n = memo.tools
        memo.tools += 1
        memo.blocks[ev.index] = ("tool", n)
        call = DeltaToolCall(index=n, id=block.id or new_id("call"), type="function",
                             function=DeltaFunctionCall(name=block.name, arguments=""))
        return [_chunk(state, Delta(tool_calls=[call]))]

    def _on_delta(self, ev: ContentBlockDelta, memo: _Memo,
                  state: StreamState) -> list[ChatCompletionChunk]:
        kind, n = memo.blocks.get(ev.index, ("skip", 0))
        d = ev.delta
        if d.type == "text_delta" and kind == "text" and d.text:
            return [_chunk(state, Delta(content=d.text))]
        if d.type != "input_json_delta" or not d.partial_json:
            return []  # thinking_delta, signature_delta, citations_delta
        if kind == "tool":
            memo.with_args.add(ev.index)
            call = DeltaToolCall(index=n, function=DeltaFunctionCall(arguments=d.partial_json))
            return [_chunk(state, Delta(tool_calls=[call]))]
        if kind == "json" and memo.mode is not None:
            if memo.mode.wrapped:
                memo.json_parts.append(d.partial_json)
                return []
            return [_chunk(state, Delta(content=d.partial_json))]
        return []

    def _on_block_stop(self, ev: ContentBlockStop, memo: _Memo,
                       state: StreamState) -> list[ChatCompletionChunk]:
        kind, n = memo.blocks.get(ev.index, ("skip", 0))
        if kind == "tool" and ev.index not in memo.with_args:
            # A tool without parameters streams no fragments; OpenAI clients expect "{}".
            call = DeltaToolCall(index=n, function=DeltaFunctionCall(arguments="{}"))
            return [_chunk(state, Delta(tool_calls=[call]))]
        if kind == "json" and memo.mode is not None and memo.mode.wrapped:
            raw = "".join(memo.json_parts) or "{}"
            memo.json_parts.clear()
            value = msgspec.json.decode(raw.encode())
            return [_chunk(state, Delta(content=json_text(value, memo.mode)))]
        return []

    def map_error(self, resp: HttpResponse, target: Target) -> ProviderError:
        return map_error(resp, target)

    def capabilities(self, model: str) -> Capabilities:
        m = model.lower()
        return Capabilities(
            vision=not m.startswith(_NO_VISION),
            context_window=100_000 if m.startswith(_NO_VISION) else 200_000,
        )

    def build_embed_request(self, req: EmbeddingRequest, target: Target) -> HttpRequest:
        raise InvalidRequestError(
            "anthropic has no embeddings API; route embeddings to a provider that has one "
            "(for example openai, gemini or ollama)",
            param="model",
        )

    def parse_embed_response(self, resp: HttpResponse, req: EmbeddingRequest,
                             target: Target) -> EmbeddingResponse:
        raise InvalidRequestError("anthropic has no embeddings API", param="model")

    def build_validate_request(self, target: Target) -> HttpRequest:
        return HttpRequest("GET", messages_url(target, "models"),
                           headers_for(target, json_body=False), None, target.timeouts)


def finish_reason(stop_reason: str | None, *, real_tool_calls: bool) -> str | None:
    """A `tool_use` stop that only called the synthetic JSON tool is a normal answer."""
    if stop_reason is None:
        return None
    reason = FINISH_REASONS.get(stop_reason, "stop")
    if reason == "tool_calls" and not real_tool_calls:
        return "stop"
    return reason


def matched_stop(stop_reason: str | None, stop_sequence: str | None) -> str | msgspec.UnsetType:
    """The stop sequence Anthropic says ended the answer, for `Choice.stop_sequence`."""
    if stop_reason == "stop_sequence" and stop_sequence is not None:
        return stop_sequence
    return msgspec.UNSET


def usage_of(input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int) -> Usage:
    """Anthropic counts cached input apart from `input_tokens`; OpenAI's prompt count has it."""
    prompt = input_tokens + cache_read + cache_creation
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output_tokens,
        total_tokens=prompt + output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cache_read,
                                                  cache_creation_tokens=cache_creation),
    )


def json_text(value: Any, mode: JsonMode) -> str:
    if mode.wrapped and isinstance(value, dict):
        value = value.get("value")
    return arguments_text(value)


def arguments_text(value: Any) -> str:
    return _encode(value if value is not None else {}).decode()


def _merge_usage(into: WireUsage, frame: WireUsage) -> None:
    """Counts are cumulative: a later frame's number replaces an earlier one."""
    if frame.input_tokens is not None:
        into.input_tokens = frame.input_tokens
    if frame.output_tokens is not None:
        into.output_tokens = frame.output_tokens
    if frame.cache_read_input_tokens is not None:
        into.cache_read_input_tokens = frame.cache_read_input_tokens
    if frame.cache_creation_input_tokens is not None:
        into.cache_creation_input_tokens = frame.cache_creation_input_tokens


def _chunk(state: StreamState, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=state.id,
        created=state.created,
        model=state.model,
        choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)],
    )
