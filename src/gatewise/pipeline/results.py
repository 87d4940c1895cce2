"""What the library returns: the OpenAI-shaped response plus what gatewise measured.

Every result carries real usage (from the provider or the local model's tokenizer), time to
first token, total latency and the deployment that served it. Non-streaming calls cannot see
a first token before the whole answer arrives, so their `ttft_s` equals `latency_s`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.types.embeddings import EmbeddingResponse
from gatewise.types.messages import ToolCall
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk


@dataclass(slots=True)
class CallInfo:
    request_id: str
    deployment: str | None
    provider: str | None
    model: str | None
    usage: Usage | None
    ttft_s: float | None
    latency_s: float | None
    attempts: int
    # USD from the price table (0 for in-process models; None when the price is unknown).
    cost_usd: float | None = None

    @classmethod
    def of(cls, call: Call) -> CallInfo:
        dep = call.deployment
        return cls(
            request_id=call.request_id,
            deployment=dep.id if dep else None,
            provider=dep.target.provider if dep else None,
            model=dep.target.model if dep else None,
            usage=call.usage,
            ttft_s=call.ttft,
            latency_s=call.latency,
            attempts=call.attempts,
            cost_usd=call.cost_usd,
        )


@dataclass(slots=True)
class ChatResult:
    completion: ChatCompletion
    info: CallInfo

    @property
    def content(self) -> str | None:
        return self.completion.choices[0].message.content if self.completion.choices else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        if not self.completion.choices:
            return []
        return self.completion.choices[0].message.tool_calls or []

    @property
    def finish_reason(self) -> str | None:
        return self.completion.choices[0].finish_reason if self.completion.choices else None

    @property
    def usage(self) -> Usage | None:
        return self.completion.usage

    @property
    def citations(self) -> list[dict[str, Any]]:
        """A knowledge-base answer's sources (`Gateway.answer`, `metadata.rag`); else []."""
        c = self.completion.citations
        return [x for x in c if isinstance(x, dict)] if isinstance(c, list) else []

    @property
    def deployment(self) -> str | None:
        return self.info.deployment

    @property
    def ttft_s(self) -> float | None:
        return self.info.ttft_s

    @property
    def latency_s(self) -> float | None:
        return self.info.latency_s


@dataclass(slots=True)
class EmbedResult:
    response: EmbeddingResponse
    info: CallInfo

    @property
    def vectors(self) -> list[list[float]]:
        return [d.embedding for d in self.response.data if isinstance(d.embedding, list)]


class ChatStream:
    """`async for chunk in gw.stream(...)`: OpenAI chunks; `.info` is complete after the end."""

    def __init__(self, opener: AsyncIterator[ChunkStream]) -> None:
        self._opener = opener
        self._stream: ChunkStream | None = None
        self.text = ""

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if self._stream is None:
            self._stream = await self._opener.__anext__()
        chunk = await self._stream.__anext__()
        if chunk.choices and chunk.choices[0].delta.content:
            self.text += chunk.choices[0].delta.content
        return chunk

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    @property
    def info(self) -> CallInfo | None:
        return CallInfo.of(self._stream.call) if self._stream is not None else None
