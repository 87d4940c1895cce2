"""Canonical answers and streams in Anthropic's shapes: ids, stop reasons, usage with cached
input apart, and the event sequence re-cut from OpenAI-style chunks."""

from __future__ import annotations

import json
from typing import Any

from gatewise.server.anthropic.outbound import (
    StreamTranslator,
    anthropic_error,
    message_body,
    stop_reason,
    usage_body,
)
from gatewise.types.messages import FunctionCall, ToolCall
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


def _events(frames: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in frames.decode().split("\n\n"):
        if frame:
            event, data = frame.split("\n")
            out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def _chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(id="chatcmpl-abc", created=1, model="m",
                               choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)])


def test_stop_reasons_are_the_adapters_table_read_backwards() -> None:
    assert [stop_reason(r) for r in ("stop", "length", "tool_calls", "content_filter")] == [
        "end_turn", "max_tokens", "tool_use", "refusal"]
    assert stop_reason(None) is None


def test_cached_input_is_reported_apart_from_input_tokens() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=7, total_tokens=107,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=60,
                                                            cache_creation_tokens=10))
    assert usage_body(usage) == {"input_tokens": 30, "output_tokens": 7,
                                 "cache_read_input_tokens": 60,
                                 "cache_creation_input_tokens": 10}


def test_a_completion_with_text_and_a_tool_call_is_one_message() -> None:
    call = ToolCall(id="call_1", type="function",
                    function=FunctionCall(name="f", arguments='{"a": 1}'))
    done = ChatCompletion(id="chatcmpl-xyz", created=1, model="gpt-4o-mini", choices=[
        Choice(index=0, message=ResponseMessage(content="Let me look.", tool_calls=[call]),
               finish_reason="tool_calls")],
        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7))
    body = json.loads(message_body(done))
    assert body["id"] == "msg_xyz" and body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": "Let me look."},
                               {"type": "tool_use", "id": "call_1", "name": "f",
                                "input": {"a": 1}}]
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_a_stream_of_text_then_two_tool_calls_becomes_three_blocks() -> None:
    out = StreamTranslator(model="alias")
    frames = b"".join([
        out.feed(_chunk(Delta(role="assistant", content=""))),
        out.feed(_chunk(Delta(content="Hi"))),
        out.feed(_chunk(Delta(content="!"))),
        out.feed(_chunk(Delta(tool_calls=[DeltaToolCall(
            index=0, id="c0", type="function",
            function=DeltaFunctionCall(name="f", arguments='{"a"'))]))),
        out.feed(_chunk(Delta(tool_calls=[DeltaToolCall(
            index=0, function=DeltaFunctionCall(arguments=": 1}"))]))),
        out.feed(_chunk(Delta(tool_calls=[DeltaToolCall(
            index=1, id="c1", type="function", function=DeltaFunctionCall(name="g"))]))),
        out.feed(_chunk(Delta(), "tool_calls")),
        out.feed(ChatCompletionChunk(id="chatcmpl-abc", created=1, model="m", choices=[],
                                     usage=Usage(prompt_tokens=5, completion_tokens=9,
                                                 total_tokens=14))),
        out.end(),
    ])
    events = _events(frames)
    assert [e for e, _ in events] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_stop",
        "message_delta", "message_stop"]
    assert events[0][1]["message"]["id"] == "msg_abc"
    assert events[0][1]["message"]["model"] == "alias"
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "c0", "name": "f",
                                             "input": {}}
    assert [events[i][1]["delta"]["partial_json"] for i in (6, 7)] == ['{"a"', ": 1}"]
    assert events[9][1]["index"] == 2
    assert events[-2][1] == {"type": "message_delta",
                             "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 5, "output_tokens": 9}}


def test_an_empty_stream_still_opens_and_closes_the_message() -> None:
    events = _events(StreamTranslator(model="m").end())
    assert [e for e, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["delta"]["stop_reason"] == "end_turn"


def test_errors_take_anthropics_type_for_their_status() -> None:
    assert anthropic_error(404, "no such model", "req_1") == {
        "type": "error", "error": {"type": "not_found_error", "message": "no such model"},
        "request_id": "req_1"}
    assert anthropic_error(529, "x", "r")["error"]["type"] == "overloaded_error"
    assert anthropic_error(502, "x", "r")["error"]["type"] == "api_error"
    assert anthropic_error(409, "x", "r")["error"]["type"] == "invalid_request_error"
