"""`Runner`: what a feature built on top of the chain needs from the gateway, and nothing more.

Orchestration runs each branch as a call of its own, the tool loop asks the model turn after
turn, and what comes next (RAG answering, memory summarisation, the cache's warming job,
evaluation runs) does the same: a call through the whole chain (guards, routing, retries,
accounting), as if a client had sent it. Taking this protocol rather than `Gateway` keeps those
features below the composition root that builds them: `gateway.py` imports them, never the
other way round, and a test can hand them any object with these two methods.

Two methods, because callers come in two shapes: those that build their own `Call` (a branch
inherits the parent's identity, headers, deadline and request id) and those that speak plain
messages and want the gateway's defaults (the default model, request validation). `Gateway`
satisfies it structurally; mypy checks that where `gateway.py` passes itself as a `Runner`.
"""

from __future__ import annotations

from typing import Any, Protocol

from gatewise.pipeline.core import ANONYMOUS, Call, Identity
from gatewise.pipeline.results import ChatResult


class Runner(Protocol):
    async def run(self, call: Call) -> Any:
        """The chain's answer to a prepared call: a `ChatCompletion`, a `ChunkStream` or an
        `EmbeddingResponse`, by `call.kind`; what the chain learnt is left on `call`."""
        ...

    async def chat(self, prompt: str | None = None, *, model: str | None = None,
                   messages: list[dict[str, Any]] | None = None,
                   identity: Identity = ANONYMOUS, **params: Any) -> ChatResult:
        """One chat completion from plain messages (`prompt` is a trailing user message);
        `model=None` means the configured default model."""
        ...
