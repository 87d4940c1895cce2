"""Conversation memory from the library: `gw.chat(..., conversation=)` keeps the conversation,
`gw.conversations` lists, reads and deletes it, scoped to the caller's tenant; older turns are
summarised (never splitting a tool call from its result) when the window is outgrown."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ConversationNotFoundError, InvalidRequestError
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.types.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage


class Capture:
    """Records the messages each call sends on (it runs after memory in the chain)."""

    def __init__(self) -> None:
        self.sent: list[list[dict[str, Any]]] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.sent.append([msgspec.to_builtins(m) for m in call.chat_request.messages])
        return await next(call)


def _gateway(capture: Capture, **extra: Any) -> Gateway:
    cfg, w = parse_config({
        "models": {"echo": [{"model": "fake/echo"}], "tools": [{"model": "fake/tools"}],
                   "tiny": [{"model": "fake/echo", "prices": {"context_window": 120}}],
                   "summariser": [{"model": "fake/echo"}],
                   "broken": [{"model": "fake/fail-500"}]},
        "default_model": "echo",
        "router": {"retry": {"max_retries": 0}},
        "storage": {"database": "memory"},
        **extra})
    return Gateway(resolve_config(cfg, None, {}, w), middlewares=[capture])


async def test_a_conversation_continues_from_the_new_turn_alone() -> None:
    cap = Capture()
    async with _gateway(cap) as gw:
        first = await gw.chat("My name is Ada.", conversation="c1")
        await gw.chat("What is my name?", conversation="c1")
        conv = await gw.conversations.get("c1")
        listed = await gw.conversations.list()
    assert cap.sent[-1] == [{"role": "user", "content": "My name is Ada."},
                            {"role": "assistant", "content": first.content},
                            {"role": "user", "content": "What is my name?"}]
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.info.turns == 4 and [i.id for i in listed] == ["c1"]


async def test_a_streamed_turn_is_kept_when_the_stream_ends() -> None:
    cap = Capture()
    async with _gateway(cap) as gw:
        s = gw.stream("Stream one.", conversation="c2")
        async for _ in s:
            pass
        await gw.chat("Next.", conversation="c2")
    assert cap.sent[-1][1] == {"role": "assistant", "content": s.text}


async def test_conversations_are_scoped_to_the_tenant() -> None:
    red, blue = Identity(tenant="red", team="red"), Identity(tenant="blue", team="blue")
    cap = Capture()
    async with _gateway(cap) as gw:
        await gw.chat("red secret", conversation="shared-id", identity=red)
        await gw.chat("blue here", conversation="shared-id", identity=blue)
        assert cap.sent[-1] == [{"role": "user", "content": "blue here"}]
        with pytest.raises(ConversationNotFoundError):
            await gw.conversations.get("shared-id")  # the default tenant has none
        assert len((await gw.conversations.get("shared-id", identity=red)).messages) == 2
        await gw.conversations.delete("shared-id", identity=blue)
        with pytest.raises(ConversationNotFoundError):
            await gw.conversations.delete("shared-id", identity=blue)
        assert len((await gw.conversations.get("shared-id", identity=red)).messages) == 2


async def test_a_failed_call_stores_nothing() -> None:
    async with _gateway(Capture()) as gw:
        with pytest.raises(InvalidRequestError):
            await gw.chat("x", conversation="c3", temperature=7)
        with pytest.raises(Exception):  # noqa: B017 - any upstream failure
            await gw.chat("x", model="broken", conversation="c3")
        with pytest.raises(InvalidRequestError, match="no earlier assistant message"):
            await gw.chat(messages=[{"role": "tool", "tool_call_id": "call_x",
                                     "content": "orphan"}], conversation="c3")
        with pytest.raises(ConversationNotFoundError):
            await gw.conversations.get("c3")


async def test_a_turn_may_be_only_the_results_of_stored_tool_calls() -> None:
    weather = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    cap = Capture()
    async with _gateway(cap) as gw:
        asked = await gw.chat("Weather in Oslo?", model="tools", tools=[weather],
                              conversation="w")
        call = asked.tool_calls[0]
        done = await gw.chat(model="tools", tools=[weather], conversation="w", messages=[
            {"role": "tool", "tool_call_id": call.id, "content": "-3 C, snow"}])
        conv = await gw.conversations.get("w")
    assert done.content == "Tool said: -3 C, snow"
    assert [m["role"] for m in cap.sent[-1]] == ["user", "assistant", "tool"]
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[1]["tool_calls"][0]["id"] == call.id


async def test_a_client_that_echoes_the_tool_call_is_not_duplicated() -> None:
    weather = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    cap = Capture()
    async with _gateway(cap) as gw:
        asked = await gw.chat("Weather in Oslo?", model="tools", tools=[weather],
                              conversation="echo-call")
        call = asked.tool_calls[0]
        echoed = {"role": "assistant", "tool_calls": [msgspec.to_builtins(call)]}
        await gw.chat(model="tools", tools=[weather], conversation="echo-call", messages=[
            echoed, {"role": "tool", "tool_call_id": call.id, "content": "-3 C"}])
        conv = await gw.conversations.get("echo-call")
    assert [m["role"] for m in cap.sent[-1]] == ["user", "assistant", "tool"]
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "tool", "assistant"]


def _fits(gw: Gateway, messages: list[dict[str, Any]], alias: str = "tiny") -> bool:
    from gatewise.types.validation import chat_request_from_dict

    req = chat_request_from_dict({"model": alias, "messages": messages, "max_tokens": 20})
    budget = gw.conversations.windows.budget(req, alias)
    assert budget is not None
    return budget.count(list(req.messages)) <= budget.available


async def test_older_turns_are_summarised_and_the_prompt_fits_the_window() -> None:
    cap = Capture()
    tool_round = [
        {"role": "user", "content": "What is the balance of account ACC-7?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "balance", "arguments": "{\"account\": \"ACC-7\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"balance\": 120.5}"},
        {"role": "assistant", "content": "The balance is 120.50."}]
    async with _gateway(cap, memory={"summary_model": "summariser",
                                     "summary_max_tokens": 24}) as gw:
        await gw.conversations.store.append("default", "long", tool_round)
        for i in range(12):
            await gw.chat(f"Turn {i}: please remember the number {i * 7} for me.",
                          model="tiny", conversation="long", max_tokens=20)
            assert _fits(gw, cap.sent[-1]), f"turn {i} overflowed the window"
        info = await gw.conversations.store.info("default", "long")
        conv = await gw.conversations.get("long")
    assert info is not None and info.summary and info.summarised >= 4
    assert len(conv.messages) == 4 + 24  # every message is kept; prompts use the summary
    prompt = cap.sent[-1]
    assert prompt[0]["role"] == "system" and prompt[0]["content"].startswith("Summary of")
    assert prompt[-1]["content"].startswith("Turn 11")
    # The summary replaced whole turns: what follows it starts with a user message, and a
    # tool result is never left without its call.
    assert prompt[1]["role"] == "user"
    calls = {c["id"] for m in prompt for c in m.get("tool_calls") or ()}
    assert all(m["tool_call_id"] in calls for m in prompt if m["role"] == "tool")


async def test_the_summary_is_reused_not_recomputed_every_turn() -> None:
    cap = Capture()
    async with _gateway(cap, memory={"summary_model": "summariser",
                                     "summary_max_tokens": 24}) as gw:
        for i in range(10):
            await gw.chat(f"Turn {i}: a message with several words in it.", model="tiny",
                          conversation="reuse", max_tokens=20)
        summaries = [m for m in cap.sent if m[0]["role"] == "system" and
                     "summarise conversations" in m[0]["content"]]
    assert 0 < len(summaries) < 10


def test_typed_messages_round_trip() -> None:
    from gatewise.memory.turns import from_dicts, to_dicts

    msgs = [SystemMessage(content="s"), UserMessage(content="u"),
            AssistantMessage(content=None, tool_calls=None), ToolMessage(content="t",
                                                                         tool_call_id="c")]
    assert from_dicts(to_dicts(msgs)) == msgs


async def test_a_failing_summary_model_does_not_fail_the_turn() -> None:
    cap = Capture()
    async with _gateway(cap, memory={"summary_model": "broken"}) as gw:
        for i in range(10):
            r = await gw.chat(f"Turn {i}: a message with several words in it.", model="tiny",
                              conversation="nosum", max_tokens=20)
            assert r.content
            assert _fits(gw, cap.sent[-1])
        info = await gw.conversations.store.info("default", "nosum")
    assert info is not None and info.summary is None and info.summarised == 0
    assert info.turns == 20
