"""Streaming chunks: OpenAI's `chat.completion.chunk`, the one stream shape every adapter emits."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gatewise.types.responses import Usage


class _Base(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class DeltaFunctionCall(_Base):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_Base):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


class Delta(_Base):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    # OpenAI's `url_citation` annotations (a knowledge-base answer's finishing delta).
    annotations: list[Any] | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: Any = None
    # On the finishing chunk: the stop sequence that ended the answer (`Choice.stop_sequence`).
    stop_sequence: str | msgspec.UnsetType = msgspec.UNSET


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str = ""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    # A knowledge-base answer's last finishing chunk: its citations and retrieval summary
    # (the same fields as `ChatCompletion`'s; unset on every other chunk).
    citations: list[Any] | msgspec.UnsetType | None = msgspec.UNSET
    rag: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
