"""The provider seams.

`WireAdapter` is pure translation between the canonical OpenAI shapes and one wire format: it
builds `HttpRequest`s and parses `HttpResponse`s/stream frames, with no I/O, no environment
reads and no globals. `ProviderClient` is what the pipeline calls to run one attempt against one
deployment: `HttpProviderClient` pairs any adapter with the shared transport, while in-process
engines (llama.cpp, LiteLLM) implement `ProviderClient` directly behind the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gatewise.errors import ProviderError
from gatewise.transport.base import DEFAULT_TIMEOUTS, HttpRequest, HttpResponse, Timeouts
from gatewise.transport.sse import SSEEvent
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk

AuthStyle = Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "none"]


@dataclass(slots=True)
class Target:
    """One resolved deployment: everything an adapter needs to address one model on one host.

    Built once from config at start-up (keys resolved then), never per request. `api_key` is a
    secret: it is excluded from `repr` so it cannot leak through logs or tracebacks.
    """

    provider: str
    wire: str
    model: str
    api_base: str = ""
    api_key: str | None = field(default=None, repr=False)
    auth: AuthStyle = "bearer"
    headers: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None
    url_style: Literal["standard", "azure"] = "standard"
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(slots=True, frozen=True)
class Capabilities:
    chat: bool = True
    streaming: bool = True
    tools: bool = True
    vision: bool = False
    json_schema: bool = True
    embeddings: bool = False
    context_window: int | None = None


@dataclass(slots=True)
class StreamState:
    """What an adapter remembers between frames of one stream."""

    request: ChatRequest
    target: Target
    id: str = ""
    created: int = 0
    model: str = ""
    done: bool = False
    usage: Usage | None = None
    finish_reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class WireAdapter(Protocol):
    name: str
    stream_format: Literal["sse", "ndjson"]

    def build_request(self, req: ChatRequest, target: Target) -> HttpRequest: ...

    def parse_response(self, resp: HttpResponse, req: ChatRequest, target: Target) -> ChatCompletion: ...

    def new_stream_state(self, req: ChatRequest, target: Target) -> StreamState: ...

    def parse_stream_event(
        self, event: SSEEvent | bytes, state: StreamState
    ) -> list[ChatCompletionChunk]:
        """Frames in, canonical chunks out; sets `state.done` at the provider's end marker."""
        ...

    def map_error(self, resp: HttpResponse, target: Target) -> ProviderError: ...

    def capabilities(self, model: str) -> Capabilities: ...

    def build_embed_request(self, req: EmbeddingRequest, target: Target) -> HttpRequest: ...

    def parse_embed_response(
        self, resp: HttpResponse, req: EmbeddingRequest, target: Target
    ) -> EmbeddingResponse: ...

    def build_validate_request(self, target: Target) -> HttpRequest:
        """A cheap authenticated call (usually listing models) that proves a key works."""
        ...


class ProviderClient(Protocol):
    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion: ...

    def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        """Chunks in OpenAI's shape; the last one carries usage (`choices: []`) when known.
        Failures before the first chunk raise from the first `__anext__`."""
        ...

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse: ...

    async def validate_key(self, target: Target) -> None: ...

    def capabilities(self, target: Target) -> Capabilities: ...

    async def aclose(self) -> None: ...
