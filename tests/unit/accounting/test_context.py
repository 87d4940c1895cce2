"""Context-window fitting: what is kept, what goes first, and when a request cannot fit."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gatewise.accounting.context import fit_messages
from gatewise.accounting.tokenizers import Tokenizers
from gatewise.errors import InvalidRequestError
from gatewise.types.messages import Message
from gatewise.types.validation import chat_request_from_dict


@pytest.fixture(scope="module")
def tokenizers() -> Tokenizers:
    return Tokenizers()


def _messages(raw: list[dict[str, Any]]) -> list[Message]:
    return list(chat_request_from_dict({"model": "m", "messages": raw}).messages)


def _counter(tokenizers: Tokenizers) -> Any:
    req = chat_request_from_dict({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    enc = tokenizers.encoding("o200k_base")

    def count(ms: list[Message]) -> int:
        return tokenizers.count_messages(msgspec.structs.replace(req, messages=ms), enc)

    return count


def _texts(ms: list[Message]) -> list[str]:
    out = []
    for m in ms:
        content = getattr(m, "content", None)
        out.append(content if isinstance(content, str) else f"<{type(m).__name__}>")
    return out


def _call(call_id: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]}


LONG = "word " * 200  # ~200 tokens


def test_a_conversation_that_fits_is_returned_unchanged(tokenizers: Tokenizers) -> None:
    ms = _messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert fit_messages(ms, _counter(tokenizers), context_window=1000, reserve_output=100) == ms


def test_oldest_turns_go_first_and_system_messages_and_the_last_user_turn_stay(
        tokenizers: Tokenizers) -> None:
    count = _counter(tokenizers)
    ms = _messages([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1 " + LONG}, {"role": "assistant", "content": "a1 " + LONG},
        {"role": "user", "content": "u2 " + LONG}, {"role": "assistant", "content": "a2 " + LONG},
        {"role": "developer", "content": "dev"},
        {"role": "user", "content": "u3"},
    ])
    fitted = fit_messages(ms, count, context_window=800, reserve_output=200)
    assert _texts(fitted) == ["sys", "u2 " + LONG, "a2 " + LONG, "dev", "u3"]
    assert count(ms) > 600 >= count(fitted)
    assert _texts(ms)[1].startswith("u1")  # the caller's list is not modified


def test_whole_turns_are_dropped_so_history_still_starts_with_a_user_message(tokenizers: Tokenizers) -> None:
    ms = _messages([
        {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1 " + LONG},
        {"role": "user", "content": "u2"},
    ])
    fitted = fit_messages(ms, _counter(tokenizers), context_window=150, reserve_output=100)
    assert _texts(fitted) == ["u2"]


def test_a_tool_call_stays_with_its_results(tokenizers: Tokenizers) -> None:
    ms = _messages([
        {"role": "user", "content": "question"},
        _call("c1"), {"role": "tool", "tool_call_id": "c1", "content": "old result " + LONG},
        _call("c2"), {"role": "tool", "tool_call_id": "c2", "content": "new result"},
    ])
    fitted = fit_messages(ms, _counter(tokenizers), context_window=200, reserve_output=100)
    # The first round goes whole (call and result); the latest round is what the model answers.
    assert _texts(fitted) == ["question", "<AssistantMessage>", "new result"]
    assert [getattr(m, "tool_call_id", None) for m in fitted] == [None, None, "c2"]
    assert fitted[1].tool_calls[0].id == "c2"  # type: ignore[union-attr]


def test_too_long_even_at_the_minimum_is_context_length_exceeded(tokenizers: Tokenizers) -> None:
    ms = _messages([{"role": "system", "content": "sys " + LONG}, {"role": "user", "content": "u " + LONG}])
    with pytest.raises(InvalidRequestError) as err:
        fit_messages(ms, _counter(tokenizers), context_window=300, reserve_output=100)
    assert err.value.code == "context_length_exceeded"
    assert err.value.param == "messages"
    assert err.value.status == 400
    assert "word" not in err.value.message  # never echoes the prompt


def test_a_non_additive_count_is_still_respected() -> None:
    ms = _messages([{"role": "user", "content": f"u{i}"} for i in range(6)])

    def count(batch: list[Message]) -> int:  # each message costs more the longer the list
        return len(batch) ** 2

    fitted = fit_messages(ms, count, context_window=10, reserve_output=0)
    assert _texts(fitted) == ["u3", "u4", "u5"]
