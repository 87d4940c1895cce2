"""Canonical answers → Anthropic Messages responses, stream events and errors.

A stream is re-cut into Anthropic's event sequence: `message_start`, then per content block
`content_block_start` / `content_block_delta`* / `content_block_stop` (text blocks, and one
`tool_use` block per OpenAI tool-call index, whose argument fragments become
`input_json_delta`s), then `message_delta` with the stop reason and the usage (known only at
the end: the gateway always asks upstream for the usage chunk), then `message_stop`.

Stop reasons are the adapter's table read backwards (`providers/anthropic/adapter.py`). A
canonical "stop" is `stop_sequence` when the provider said which of the caller's sequences
ended the answer (`Choice.stop_sequence`: an Anthropic upstream, the embedded model), else
`end_turn`: OpenAI's "stop" cannot tell a matched sequence from a natural end, and guessing
from the text would be wrong whenever the sequence was cut off before it was sent.
Usage follows Anthropic's split: `input_tokens` excludes cached input, which is reported
apart (`cache_read_input_tokens`, `cache_creation_input_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from gatewise.providers.anthropic.adapter import FINISH_REASONS
from gatewise.types.ids import unique_suffix
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder()

# The first Anthropic stop reason for each canonical finish reason, so the two tables agree.
STOP_REASONS = {canonical: anthropic for anthropic, canonical in reversed(FINISH_REASONS.items())}

# Anthropic's error `type` for each HTTP status its API answers with.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               402: "billing_error", 403: "permission_error", 404: "not_found_error",
               413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error(status: int, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message},
            "request_id": request_id}


def message_id(canonical: str) -> str:
    """Anthropic ids start `msg_`; the canonical id's unique tail is kept for tracing."""
    if canonical.startswith("msg_"):
        return canonical
    tail = canonical.rpartition("-")[2]
    return f"msg_{tail or unique_suffix()}"


def stop_reason(finish: str | None, matched: str | msgspec.UnsetType = msgspec.UNSET) -> str | None:
    if finish is None:
        return None
    if finish == "stop" and isinstance(matched, str):
        return "stop_sequence"
    return STOP_REASONS.get(finish, "end_turn")


def usage_body(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.prompt_tokens_details
    read = (details.cached_tokens or 0) if details is not None else 0
    created = (details.cache_creation_tokens or 0) if details is not None else 0
    out = {"input_tokens": max(0, usage.prompt_tokens - read - created),
           "output_tokens": usage.completion_tokens}
    if read or created:
        out["cache_read_input_tokens"] = read
        out["cache_creation_input_tokens"] = created
    return out


def _tool_input(arguments: str) -> Any:
    try:
        value = _decode.decode(arguments.encode() or b"{}")
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message_body(result: ChatCompletion) -> bytes:
    """A whole answer as Anthropic's `message` object."""
    choice = result.choices[0] if result.choices else None
    content: list[dict[str, Any]] = []
    finish: str | None = "stop"
    matched: str | msgspec.UnsetType = msgspec.UNSET
    if choice is not None:
        msg = choice.message
        text = msg.content if isinstance(msg.content, str) else None
        if text:
            content.append({"type": "text", "text": text})
        for call in msg.tool_calls or ():
            content.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                            "input": _tool_input(call.function.arguments)})
        finish, matched = choice.finish_reason, choice.stop_sequence
    reason = stop_reason(finish, matched)
    return _encode({
        "id": message_id(result.id), "type": "message", "role": "assistant",
        "model": result.model, "content": content, "stop_reason": reason,
        "stop_sequence": matched if reason == "stop_sequence" else None,
        "usage": usage_body(result.usage),
    })


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


@dataclass(slots=True)
class StreamTranslator:
    """Canonical chunks in, Anthropic SSE frames out; one per streamed response."""

    model: str
    started: bool = False
    block: int = -1  # index of the open content block, -1 when none is open
    kind: str = ""  # "text" or "tool_use"
    tools: dict[int, int] = field(default_factory=dict)  # OpenAI tool index → block index
    blocks: int = 0
    finish: str | None = None
    matched: str | msgspec.UnsetType = msgspec.UNSET  # the stop sequence, when one ended it
    usage: Usage | None = None

    def start(self, chunk_id: str) -> bytes:
        self.started = True
        message: dict[str, Any] = {"id": message_id(chunk_id), "type": "message", "role": "assistant",
                   "model": self.model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return sse("message_start", {"type": "message_start", "message": message})

    def feed(self, chunk: ChatCompletionChunk) -> bytes:
        out: list[bytes] = []
        if not self.started:
            out.append(self.start(chunk.id))
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                if self.kind != "text":
                    out.append(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": delta.content}))
            for call in delta.tool_calls or ():
                fn = call.function
                if call.index not in self.tools:
                    out.append(self._open("tool_use", {
                        "type": "tool_use", "id": call.id or f"toolu_{unique_suffix()}",
                        "name": (fn.name if fn else None) or "", "input": {}}))
                    self.tools[call.index] = self.block
                elif self.tools[call.index] != self.block:
                    continue  # interleaved fragments of an earlier call: its block is closed
                if fn is not None and fn.arguments:
                    out.append(self._delta({"type": "input_json_delta",
                                            "partial_json": fn.arguments}))
            if choice.finish_reason is not None:
                self.finish = choice.finish_reason
                self.matched = choice.stop_sequence
        return b"".join(out)

    def end(self) -> bytes:
        """`message_delta` (stop reason, usage) and `message_stop`, after closing the block."""
        out = [] if self.started else [self.start("")]
        out.append(self._close())
        reason = stop_reason(self.finish or "stop", self.matched)
        out.append(sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reason,
                      "stop_sequence": self.matched if reason == "stop_sequence" else None},
            "usage": usage_body(self.usage)}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        closed = self._close()
        self.block = self.blocks
        self.blocks += 1
        self.kind = kind
        return closed + sse("content_block_start", {"type": "content_block_start",
                                                    "index": self.block, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                           "delta": delta})

    def _close(self) -> bytes:
        if self.block < 0 or not self.kind:
            return b""
        self.kind = ""
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.block})
