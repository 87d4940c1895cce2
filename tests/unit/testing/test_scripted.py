"""`ScriptedProvider` plays back answers, tool calls and errors in the order a test wrote them."""

from __future__ import annotations

import asyncio
import json

import pytest

from gatewise.errors import ProviderServerError, RateLimitedError
from gatewise.providers.base import Target
from gatewise.testing import Reply, ScriptedProvider, tool_call
from gatewise.types.requests import ChatRequest
from gatewise.types.validation import chat_request_from_dict

TARGET = Target(provider="fake", wire="fake", model="m")


def _req(text: str = "hi") -> ChatRequest:
    return chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": text}]})


async def test_turns_play_in_order_and_the_last_one_repeats() -> None:
    p = ScriptedProvider([tool_call("balance", {"account": "A1"}), "You have 120 EUR."])
    first = (await p.chat(_req(), TARGET)).choices[0]
    assert first.finish_reason == "tool_calls" and first.message.tool_calls is not None
    fn = first.message.tool_calls[0].function
    assert (fn.name, json.loads(fn.arguments)) == ("balance", {"account": "A1"})
    for _ in range(2):
        again = (await p.chat(_req(), TARGET)).choices[0]
        assert again.message.content == "You have 120 EUR." and again.finish_reason == "stop"
    assert len(p.requests) == 3 and p.calls == ["m"] * 3


async def test_raw_argument_strings_pass_through_so_broken_json_can_be_scripted() -> None:
    p = ScriptedProvider([[("lookup", "{not json")]])
    calls = (await p.chat(_req(), TARGET)).choices[0].message.tool_calls
    assert calls is not None and calls[0].function.arguments == "{not json"


async def test_errors_are_raised_in_turn_and_classes_name_the_called_model() -> None:
    p = ScriptedProvider([ProviderServerError, RateLimitedError("slow down", retry_after=2.0),
                          "recovered"])
    with pytest.raises(ProviderServerError) as info:
        await p.chat(_req(), TARGET)
    assert info.value.model == "m"
    with pytest.raises(RateLimitedError, match="slow down"):
        await p.chat(_req(), TARGET)
    assert (await p.chat(_req(), TARGET)).choices[0].message.content == "recovered"


async def test_a_function_script_answers_from_the_request() -> None:
    p = ScriptedProvider(lambda req: f"echo {len(req.messages)}")
    assert (await p.chat(_req(), TARGET)).choices[0].message.content == "echo 1"


async def test_each_model_can_have_its_own_script() -> None:
    p = ScriptedProvider({"a": "from a", "b": ["b1", "b2"]})
    b = Target(provider="fake", wire="fake", model="b")
    a = Target(provider="fake", wire="fake", model="a")
    answers = [(await p.chat(_req(), t)).choices[0].message.content for t in (b, a, b)]
    assert answers == ["b1", "from a", "b2"] and p.calls == ["b", "a", "b"]


async def test_a_call_cancelled_during_its_delay_is_recorded() -> None:
    p = ScriptedProvider(Reply(content="late", delay_s=5.0))
    task = asyncio.create_task(p.chat(_req(), TARGET))
    while not p.calls:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert p.cancelled == ["m"]


async def test_streams_carry_the_same_turn_word_by_word_then_usage() -> None:
    p = ScriptedProvider(["three little words", tool_call("f", {"x": 1})])
    chunks = [c async for c in p.stream(_req(), TARGET)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "three little words" and chunks[-1].usage == p.usage
    calls = [c async for c in p.stream(_req(), TARGET)]
    args = "".join(tc.function.arguments or "" for c in calls if c.choices
                   for tc in c.choices[0].delta.tool_calls or () if tc.function)
    assert json.loads(args) == {"x": 1}
    assert [c.choices[0].finish_reason for c in calls if c.choices][-1] == "tool_calls"
