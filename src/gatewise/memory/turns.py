"""Messages as the conversation store keeps them, and what one request adds to a conversation.

Stored messages are OpenAI message dicts, exactly what a client would send back: user turns,
assistant answers (with their `tool_calls`) and `tool` results. System and developer messages
are not stored: they are the request's instructions (or its assistant's), sent again with
every turn, so a changed instruction applies at once instead of piling up in the history.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.types.messages import DeveloperMessage, Message, SystemMessage
from gatewise.types.responses import ChatCompletion, ResponseMessage


def is_instruction(m: Message) -> bool:
    return isinstance(m, SystemMessage | DeveloperMessage)


def to_dicts(messages: list[Message]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(m) for m in messages]


_messages = msgspec.json.Decoder(list[Message])
_encode = msgspec.json.Encoder().encode


def from_dicts(messages: list[dict[str, Any]]) -> list[Message]:
    """Stored dicts back into typed messages (a dict a store mangled fails loudly here).
    One JSON round trip: an order of magnitude faster than converting message by message."""
    return _messages.decode(_encode(messages))


def answer_of(completion: ChatCompletion) -> dict[str, Any] | None:
    """The first choice as the assistant message the next turn must carry (tool calls
    included); None when there is nothing to keep."""
    if not completion.choices:
        return None
    return message_of(completion.choices[0].message)


def message_of(m: ResponseMessage | None) -> dict[str, Any] | None:
    """An answer's message (or a streamed one, from `StreamRecorder.message`) as stored."""
    if m is None:
        return None
    return _assistant(m.content, [msgspec.to_builtins(tc) for tc in m.tool_calls or ()],
                      m.refusal)


def _assistant(content: str | None, calls: list[dict[str, Any]],
               refusal: str | None) -> dict[str, Any] | None:
    """The message as `to_dicts` would spell it (no null fields), so a client that sends it
    back is recognised as repeating the history."""
    out: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        out["content"] = content
    if calls:
        out["tool_calls"] = calls
    if refusal:
        out["refusal"] = refusal
    return out if len(out) > 1 else None
