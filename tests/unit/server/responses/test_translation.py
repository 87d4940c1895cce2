"""Responses bodies become canonical chat requests (checked by the chat edge's rules), and
canonical answers and chunks become Response objects and the Responses event sequence."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gatewise.errors import InvalidRequestError
from gatewise.server.responses.inbound import decode_responses_request, to_chat_request
from gatewise.server.responses.outbound import (
    StreamTranslator,
    envelope,
    input_items,
    response_from_completion,
    thread_message,
)
from gatewise.types.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage
from gatewise.types.requests import ResponseFormatJSONObject
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk

TOOL = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


def _parse(**body: Any) -> Any:
    return decode_responses_request(json.dumps({"model": "m", **body}).encode(), max_depth=64)


def _chunk(**delta: Any) -> ChatCompletionChunk:
    finish = delta.pop("finish", None)
    return msgspec.convert({"id": "c", "model": "up-model", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}, ChatCompletionChunk)


def _events(frames: bytes) -> list[dict[str, Any]]:
    out = []
    for block in frames.decode().split("\n\n"):
        if block:
            kind, data = block.split("\n")
            event = json.loads(data.removeprefix("data: "))
            assert kind == f"event: {event['type']}"
            out.append(event)
    return out


def test_items_become_chat_turns_in_order() -> None:
    parsed = _parse(instructions="Be brief.", tools=[TOOL], input=[
        {"role": "user", "content": "go"},  # an easy message: no "type"
        {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
         "content": [{"type": "output_text", "text": "Calling.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [
            {"type": "input_text", "text": "two"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]}])
    req = to_chat_request(parsed, [], max_depth=64)
    assert [type(m) for m in req.messages] == [SystemMessage, UserMessage, AssistantMessage,
                                               ToolMessage, ToolMessage, UserMessage]
    calls = req.messages[2].tool_calls  # type: ignore[union-attr]
    assert req.messages[2].content == "Calling." and [c.id for c in calls] == ["c1", "c2"]
    assert req.messages[4].content == "two"


def test_a_previous_thread_goes_between_the_instructions_and_the_input() -> None:
    parsed = _parse(instructions="Sys.", input="again", max_output_tokens=9,
                    text={"format": {"type": "json_object"}}, reasoning={"effort": "low"})
    thread = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}]
    req = to_chat_request(parsed, thread, max_depth=64)
    assert [m.content for m in req.messages] == ["Sys.", "first", "ok", "again"]
    assert req.max_tokens == 9 and req.reasoning_effort == "low"
    assert isinstance(req.response_format, ResponseFormatJSONObject)


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].type"),
    ({"input": [{"role": "assistant", "content": [
        {"type": "input_image", "image_url": "https://x/y.png"}]}]}, "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]},
     "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0]"),
    ({"input": "x", "tool_choice": {"type": "function", "name": "g"}, "tools": [TOOL]},
     "tool_choice.function.name"),
])
def test_what_chat_cannot_carry_is_a_400_naming_the_field(body: dict[str, Any],
                                                           param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        to_chat_request(_parse(**body), [], max_depth=64)
    assert info.value.param == param


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    body = b'{"model": "m", "input": "a \\\\u0000 b"}'
    parsed = decode_responses_request(body, max_depth=64)
    assert parsed.messages == [{"role": "user", "content": "a \\u0000 b"}]
    with pytest.raises(InvalidRequestError):
        decode_responses_request(b'{"model": "m", "input": "a \\\\\\u0000"}', max_depth=64)


def test_a_whole_answer_is_a_response_with_items_and_usage() -> None:
    parsed = _parse(input="x", tools=[TOOL])
    result = msgspec.convert({"id": "c", "model": "up", "choices": [{"index": 0,
        "finish_reason": "length", "message": {"role": "assistant", "content": "partial",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                  "prompt_tokens_details": {"cached_tokens": 2}}}, ChatCompletion)
    out = response_from_completion(envelope(parsed, "resp_1", 1), result)
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [o["type"] for o in out["output"]] == ["message", "function_call"]
    assert out["output"][1]["call_id"] == "call_1" and out["model"] == "up"
    assert out["usage"]["input_tokens_details"]["cached_tokens"] == 2
    assert out["usage"]["total_tokens"] == 7
    assert thread_message(out["output"]) == {"role": "assistant", "content": "partial",
                                             "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]}
    assert input_items(parsed.body.input)[0]["content"] == [{"type": "input_text", "text": "x"}]


def test_a_stream_is_cut_into_sequential_items_with_numbered_events() -> None:
    out = StreamTranslator(envelope(_parse(input="x"), "resp_1", 1))
    frames = out.feed(_chunk(content="Hi "))
    frames += out.feed(_chunk(content="there", refusal=None))
    frames += out.feed(_chunk(tool_calls=[{"index": 0, "id": "a", "function": {
        "name": "f", "arguments": '{"k"'}}]))
    frames += out.feed(_chunk(tool_calls=[{"index": 1, "id": "b", "function": {
        "name": "g", "arguments": "{}"}}]))
    # A late fragment of the first call (an upstream that interleaves): still its delta.
    frames += out.feed(_chunk(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]))
    frames += out.feed(_chunk(finish="tool_calls"))
    frames += out.end()
    events = _events(frames)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:6] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added",
                         "response.output_text.delta", "response.output_text.delta"]
    assert kinds.count("response.output_item.added") == 3
    assert kinds.count("response.output_item.done") == 3
    assert kinds[-1] == "response.completed"
    final = events[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["message", "function_call", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Hi there"
    assert final["output"][1]["arguments"] == '{"k": 1}' and final["output"][2]["call_id"] == "b"
    assert out.final == final and final["model"] == "up-model"


def test_an_empty_stream_is_an_empty_message_and_a_failure_is_response_failed() -> None:
    out = StreamTranslator(envelope(_parse(input="x"), "resp_1", 1))
    events = _events(out.feed(_chunk(content="")) + out.end())
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""
    failing = StreamTranslator(envelope(_parse(input="x"), "resp_2", 1))
    failing.feed(_chunk(content="half"))
    events = _events(failing.fail({"message": "upstream went away", "code": "upstream_error"}))
    assert [e["type"] for e in events] == ["error", "response.failed"]
    assert events[1]["response"]["status"] == "failed"
    assert events[1]["response"]["error"] == {"code": "server_error",
                                              "message": "upstream went away"}


def test_usage_in_the_stream_reaches_the_final_response() -> None:
    out = StreamTranslator(envelope(_parse(input="x"), "resp_1", 1))
    out.feed(_chunk(content="a", finish="stop"))
    usage = ChatCompletionChunk(choices=[], usage=Usage(prompt_tokens=2, completion_tokens=1,
                                                        total_tokens=3))
    out.feed(usage)
    final = _events(out.end())[-1]["response"]
    assert final["usage"]["input_tokens"] == 2 and final["usage"]["output_tokens"] == 1
