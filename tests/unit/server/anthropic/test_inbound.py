"""Anthropic Messages bodies become canonical chat requests, checked by the chat edge's rules;
a mistake is a 400 that names the field in Anthropic's request."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gatewise.errors import InvalidRequestError
from gatewise.server.anthropic.inbound import (
    decode_count_tokens_request,
    decode_messages_request,
)
from gatewise.types.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage

TOOL = {"name": "f", "input_schema": {"type": "object", "properties": {}}}


def _decode(**body: Any) -> Any:
    body = {"model": "m", "max_tokens": 16, **body}
    return decode_messages_request(json.dumps(body).encode(), max_depth=64)


def test_tool_results_come_first_and_the_users_other_blocks_follow_in_order() -> None:
    req = _decode(tools=[TOOL], messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": [1]}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [
                {"type": "text", "text": "boom"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
            {"type": "text", "text": "and?"}]}])
    kinds = [type(m) for m in req.messages]
    assert kinds == [UserMessage, AssistantMessage, ToolMessage, UserMessage]
    assistant, tool, user = req.messages[1], req.messages[2], req.messages[3]
    assert assistant.content == "Calling."  # the thinking block is dropped
    assert assistant.tool_calls[0].function.arguments == '{"x":[1]}'
    assert tool.tool_call_id == "t1" and tool.content == "Error: boom"
    # the tool's image, then the user's text
    assert [type(p).__name__ for p in user.content] == ["ImagePart", "TextPart"]


def test_system_blocks_settings_and_tool_choice_map_to_their_chat_fields() -> None:
    req = _decode(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
                  messages=[{"role": "user", "content": "hi"}], stop_sequences=["X"],
                  temperature=0.2, top_p=0.9, top_k=5, metadata={"user_id": "u1"},
                  tools=[TOOL], tool_choice={"type": "any", "disable_parallel_tool_use": True},
                  stream=True)
    assert isinstance(req.messages[0], SystemMessage) and req.messages[0].content == "A\n\nB"
    assert (req.stop, req.temperature, req.top_p, req.user) == (["X"], 0.2, 0.9, "u1")
    assert req.tool_choice == "required" and req.parallel_tool_calls is False
    assert req.stream and req.stream_options is not None and req.stream_options.include_usage
    assert req.max_tokens == 16


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "none"}, "none"),
])
def test_plain_tool_choices(choice: dict[str, Any], expected: str) -> None:
    req = _decode(messages=[{"role": "user", "content": "hi"}], tools=[TOOL], tool_choice=choice)
    assert req.tool_choice == expected


def test_a_named_tool_choice_must_name_a_declared_tool() -> None:
    with pytest.raises(InvalidRequestError, match="tool_choice names 'g'"):
        _decode(messages=[{"role": "user", "content": "hi"}], tools=[TOOL],
                tool_choice={"type": "tool", "name": "g"})


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    ({"messages": [{"role": "assistant", "content": [
        {"type": "tool_result", "tool_use_id": "t"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": ["a"] * 5},
     "stop_sequences"),
    ({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"name": "web_search", "type": "web_search_20250305"}]}, "tools[0]"),
])
def test_bad_fields_are_named(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _decode(**body)
    assert info.value.param is not None and info.value.param.startswith(param)


def test_a_body_that_is_not_json_is_invalid_json() -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_messages_request(b"{nope", max_depth=64)
    assert info.value.code == "invalid_json"


def test_count_tokens_takes_the_request_without_max_tokens() -> None:
    body = msgspec.json.encode({"model": "m", "system": "s",
                                "messages": [{"role": "user", "content": "hi"}]})
    req = decode_count_tokens_request(body, max_depth=64)
    assert [type(m) for m in req.messages] == [SystemMessage, UserMessage]
    with pytest.raises(InvalidRequestError):
        decode_count_tokens_request(msgspec.json.encode(
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            max_depth=64)
