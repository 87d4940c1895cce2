"""`Gateway`: the library's front door, and what the server and CLI are built on.

One gateway = one validated config, one pooled transport, one provider pool, one middleware
chain and one metrics registry. No module-level state: two gateways in one process are fully
independent.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar

from gatewise.config.loader import Deployment, ResolvedConfig, load_config
from gatewise.errors import GatewayError, InvalidRequestError
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.core import ANONYMOUS, Call, Identity, Middleware, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.router import RouterMiddleware
from gatewise.pipeline.stream import ChunkStream
from gatewise.pipeline.telemetry import TelemetryMiddleware
from gatewise.providers.pool import ProviderPool
from gatewise.results import CallInfo, ChatResult, ChatStream, EmbedResult
from gatewise.routing.router import Router
from gatewise.transport.base import Transport
from gatewise.types.embeddings import EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict

T = TypeVar("T")


class Gateway:
    def __init__(
        self,
        config: ResolvedConfig | str | os.PathLike[str] | None = None,
        *,
        transport: Transport | None = None,
        middlewares: Sequence[Middleware] = (),
        seed: int | None = None,
    ) -> None:
        self.config = config if isinstance(config, ResolvedConfig) else load_config(config)
        self.metrics = GatewayMetrics()
        self.pool = ProviderPool(transport)
        self.router = Router(self.config, seed=seed)
        self._chain = build_chain(
            [TelemetryMiddleware(self.metrics), *middlewares, RouterMiddleware(self.router)],
            ProviderCall(self.pool),
        )
        self._sync: _SyncRunner | None = None

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **kw: Any) -> Gateway:
        return cls(load_config(path), **kw)

    # -- the pipeline entry used by every front end ------------------------------------------
    async def run(self, call: Call) -> Any:
        return await self._chain(call)

    # -- library API -------------------------------------------------------------------------
    def _chat_request(self, prompt: str | None, model: str | None, messages: Any,
                      params: dict[str, Any]) -> ChatRequest:
        if messages is None:
            if prompt is None:
                raise InvalidRequestError("give a prompt or 'messages'", param="messages")
            messages = [{"role": "user", "content": prompt}]
        elif prompt is not None:
            messages = [*messages, {"role": "user", "content": prompt}]
        model = model or self.router.default_model
        if not model:
            raise InvalidRequestError("no model given and no default_model configured",
                                      param="model")
        return chat_request_from_dict({"model": model, "messages": messages, **params})

    async def chat(self, prompt: str | None = None, *, model: str | None = None,
                   messages: list[dict[str, Any]] | None = None,
                   identity: Identity = ANONYMOUS, **params: Any) -> ChatResult:
        """One chat completion. `prompt` is shorthand for a trailing user message."""
        params.pop("stream", None)
        req = self._chat_request(prompt, model, messages, params)
        call = Call("chat", req, identity)
        out = await self.run(call)
        assert isinstance(out, ChatCompletion)
        return ChatResult(out, CallInfo.of(call))

    def chat_sync(self, prompt: str | None = None, **kw: Any) -> ChatResult:
        return self._run_sync(self.chat(prompt, **kw))

    def stream(self, prompt: str | None = None, *, model: str | None = None,
               messages: list[dict[str, Any]] | None = None,
               identity: Identity = ANONYMOUS, **params: Any) -> ChatStream:
        """`async for chunk in gw.stream(...)`; tokens arrive as the model produces them."""
        params["stream"] = True
        req = self._chat_request(prompt, model, messages, params)
        return ChatStream(self._open_stream(req, identity))

    async def _open_stream(self, req: ChatRequest, identity: Identity) -> AsyncIterator[ChunkStream]:
        out = await self.run(Call("chat", req, identity))
        assert isinstance(out, ChunkStream)
        yield out

    async def embed(self, input: str | list[str], *, model: str | None = None,
                    identity: Identity = ANONYMOUS, **params: Any) -> EmbedResult:
        model = model or self.router.default_model
        req = embedding_request_from_dict({"model": model, "input": input, **params})
        call = Call("embed", req, identity)
        out = await self.run(call)
        assert isinstance(out, EmbeddingResponse)
        return EmbedResult(out, CallInfo.of(call))

    def embed_sync(self, input: str | list[str], **kw: Any) -> EmbedResult:
        return self._run_sync(self.embed(input, **kw))

    def models(self) -> list[str]:
        return self.router.aliases()

    def deployments(self) -> list[Deployment]:
        return [d for deps in self.config.aliases.values() for d in deps]

    async def validate_keys(self) -> dict[str, GatewayError | None]:
        """Each deployment's `validate_key` result: None when it works."""
        results: dict[str, GatewayError | None] = {}
        seen: set[str] = set()
        for dep in self.deployments():
            if dep.id in seen:
                continue
            seen.add(dep.id)
            if dep.problem:
                results[dep.id] = GatewayError(dep.problem)
                continue
            try:
                await self.pool.client_for(dep.target).validate_key(dep.target)
                results[dep.id] = None
            except GatewayError as exc:
                results[dep.id] = exc
        return results

    async def warmup(self) -> None:
        """Loads in-process models now instead of on the first request."""
        for dep in self.deployments():
            if dep.problem is None:
                client = self.pool.client_for(dep.target)
                warm = getattr(client, "warmup", None)
                if warm is not None:
                    await warm(dep.target)

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Sync counterpart of `aclose`, for code that only used the `_sync` methods."""
        if self._sync is not None:
            self._sync.submit(self.pool.aclose())
            self._sync.close()
            self._sync = None

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("the _sync methods cannot run inside an event loop; "
                               "await the async method instead")
        if self._sync is None:
            self._sync = _SyncRunner()
        return self._sync.submit(coro)


class _SyncRunner:
    """A private event loop on a daemon thread: sync calls reuse one loop (and so one
    connection pool) instead of paying for a new loop and new connections per call."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="gatewise-sync")
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
