"""The innermost step: one attempt against the chosen deployment's provider client."""

from __future__ import annotations

import time
from typing import Any

from gatewise.pipeline.core import Call
from gatewise.pipeline.steps import report_attempt, report_attempt_failed
from gatewise.pipeline.stream import ChunkStream
from gatewise.providers.pool import ProviderPool
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import Usage


class ProviderCall:
    def __init__(self, pool: ProviderPool) -> None:
        self.pool = pool

    async def __call__(self, call: Call) -> Any:
        dep = call.deployment
        assert dep is not None, "the router runs before the provider call"
        target = dep.target
        client = self.pool.client_for(target)
        call.attempts += 1
        if call.listener is not None:  # someone watches the timeline (`pipeline.steps`)
            report_attempt(call, call.attempts)
        req = call.request
        t0 = time.perf_counter()
        try:  # free unless it raises (3.11's zero-cost `try`): no extra frame per attempt
            if isinstance(req, EmbeddingRequest):
                emb = await client.embed(req, target)
                call.upstream_s += time.perf_counter() - t0
                call.usage = Usage(prompt_tokens=emb.usage.prompt_tokens,
                                   total_tokens=emb.usage.total_tokens)
                return emb
            assert isinstance(req, ChatRequest)
            if req.stream:
                stream = ChunkStream(call, client.stream(req, target), req.wants_usage_in_stream)
                await stream.prefetch()
                call.upstream_s += time.perf_counter() - t0
                return stream
            out = await client.chat(req, target)
            call.upstream_s += time.perf_counter() - t0
            call.usage = out.usage
            return out
        except Exception as exc:
            if call.listener is not None:
                report_attempt_failed(call, exc)
            raise
