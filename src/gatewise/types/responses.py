"""Canonical chat responses: OpenAI's `chat.completion` object, which every adapter produces.

Decoding is lenient (providers add fields over time); encoding always writes the fields
OpenAI's clients expect, `content: null` included.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gatewise.types.messages import ToolCall

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class _Base(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class PromptTokensDetails(_Base):
    cached_tokens: int = 0
    audio_tokens: int = 0
    cache_creation_tokens: int = 0


class CompletionTokensDetails(_Base):
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    # What the request cost in USD (gatewise's price table); OpenAI's clients keep unknown
    # usage fields, so a streaming caller reads it from the usage chunk.
    cost_usd: float | msgspec.UnsetType = msgspec.UNSET

    @property
    def cached_tokens(self) -> int:
        d = self.prompt_tokens_details
        return d.cached_tokens if d else 0

    @property
    def reasoning_tokens(self) -> int:
        d = self.completion_tokens_details
        return d.reasoning_tokens if d else 0


class ResponseMessage(msgspec.Struct, kw_only=True):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    annotations: list[Any] | None = None


class Choice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None
    logprobs: Any = None
    # Which of the caller's stop sequences ended the answer, when the provider says (Anthropic's
    # `stop_sequence`, the embedded model); OpenAI's "stop" cannot tell it from a natural end.
    # Unset (and left out of the JSON) otherwise.
    stop_sequence: str | msgspec.UnsetType = msgspec.UNSET


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str = ""
    object: Literal["chat.completion"] = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    # An answer from a knowledge base (`gatewise.rag`): the sources its markers cite, and what
    # retrieval did (hits, dropped chunks, groundedness). Unset (left out of the JSON)
    # otherwise; OpenAI's clients keep unknown top-level fields (`model_extra`). Lenient
    # items: some upstreams (Perplexity) send their own `citations` as a list of URLs, and
    # LiteLLM sends `citations: null` on every stream chunk.
    citations: list[Any] | msgspec.UnsetType | None = msgspec.UNSET
    rag: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
