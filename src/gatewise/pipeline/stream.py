"""`ChunkStream`: the one streaming result type that flows back through the pipeline.

It records time to first token and the usage chunk on the `Call` as chunks pass, hides the
usage-only chunk from callers who did not ask for it (gatewise always asks upstream, for
accounting), and runs finish callbacks exactly once, whether the stream completes, fails or
is abandoned by a disconnecting client (which also closes the upstream).

`replay_completion` / `stream_completion` turn an answer that is already whole (a stale copy, an
escalation, an orchestration's result, a cache hit) into the same stream a provider would have
sent, so every producer of ready answers streams them one way.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from gatewise.pipeline.core import Call
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

FinishCallback = Callable[[Call, BaseException | None], None]
UsageCallback = Callable[[Call, ChatCompletionChunk], None]
CompleteCallback = Callable[[Call], Awaitable[None]]


class ChunkTransform(Protocol):
    """Rewrites a stream on its way out (PII unmasking, tool-call checks): each chunk in gives
    zero or more chunks out, so a transform may hold text back (a placeholder split across
    chunks) and release it later; `finish` releases what is still held when the source ends.
    Raising fails the stream like an upstream error would."""

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]: ...

    def finish(self) -> list[ChatCompletionChunk]: ...


class ChunkStream:
    __slots__ = ("_callbacks", "_completions", "_drained", "_finished", "_first",
                 "_include_usage", "_observers", "_pending", "_source", "_transforms",
                 "_usage_cbs", "call", "text_parts")

    def __init__(self, call: Call, source: AsyncIterator[ChatCompletionChunk],
                 include_usage: bool) -> None:
        self.call = call
        self._source = source
        self._include_usage = include_usage
        self._first: ChatCompletionChunk | None = None
        self._callbacks: list[FinishCallback] = []
        self._completions: list[CompleteCallback] = []
        self._usage_cbs: list[UsageCallback] = []
        self._transforms: list[ChunkTransform] = []
        self._observers: list[Callable[[ChatCompletionChunk], None]] = []
        self._pending: deque[ChatCompletionChunk] = deque()
        self._drained = False
        self._finished = False
        # Completion text as it passed, kept only once `collect_text()` asked for it (to count
        # tokens when a provider's stream carries no usage).
        self.text_parts: list[str] | None = None

    def collect_text(self) -> None:
        if self.text_parts is None:
            first = self._first
            d = first.choices[0].delta if first is not None and first.choices else None
            self.text_parts = [d.content] if d is not None and d.content else []

    def add_transform(self, transform: ChunkTransform) -> None:
        """Applied to every chunk the caller has not seen yet, the prefetched one included;
        transforms added later run after earlier ones (outer middleware add theirs last)."""
        self._transforms.append(transform)

    def observe(self, cb: Callable[[ChatCompletionChunk], None]) -> None:
        """Shows `cb` every chunk as it comes from the source, the prefetched one included,
        before any transform: for read-only watchers (tracing), which unlike a transform
        keep the stream on its fast path."""
        if self._first is not None:
            cb(self._first)
        self._observers.append(cb)

    def on_usage(self, cb: UsageCallback) -> None:
        """Runs when the usage chunk passes, before the caller sees it (cost is added there)."""
        self._usage_cbs.append(cb)

    async def prefetch(self) -> None:
        """Waits for the first chunk, so failures before the first byte raise here."""
        try:
            self._first = await self._next_visible()
        except StopAsyncIteration:
            self._first = None
            self._finish(None)
        except BaseException as exc:
            self._finish(exc)
            raise

    def on_complete(self, cb: CompleteCallback) -> None:
        """Awaited once the source ended cleanly, before the caller sees the end of the
        stream (conversation memory stores the answer there, so the client's next turn,
        on any replica, finds it). Not run for a failed or abandoned stream."""
        self._completions.append(cb)

    def on_finish(self, cb: FinishCallback) -> None:
        if self._finished:
            cb(self.call, None)
        else:
            self._callbacks.append(cb)

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if not self._transforms:
            first = self._first
            if first is not None:
                self._first = None
                return first
            if self._finished:
                raise StopAsyncIteration
            return await self._pull()
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._drained:
                raise StopAsyncIteration
            chunk = self._first
            if chunk is not None:
                self._first = None
            elif self._finished:
                self._drained = True
                self._release(None)
                continue
            else:
                try:
                    chunk = await self._pull()
                except StopAsyncIteration:
                    self._drained = True
                    self._release(None)
                    continue
            self._release(chunk)

    async def _pull(self) -> ChatCompletionChunk:
        try:
            return await self._next_visible()
        except StopAsyncIteration:
            for complete in self._completions:
                await complete(self.call)
            self._finish(None)
            raise
        except asyncio.CancelledError:
            # The consumer was cancelled mid-read (the client left): an abandoned stream,
            # recorded as one (499), not as the gateway's own failure.
            self._finish(_Cancelled())
            raise
        except BaseException as exc:
            self._finish(exc)
            raise

    def _release(self, chunk: ChatCompletionChunk | None) -> None:
        """Runs `chunk` (or, at the end, every transform's `finish`) through the transforms."""
        try:
            batch = [chunk] if chunk is not None else []
            for t in self._transforms:
                out: list[ChatCompletionChunk] = []
                for c in batch:
                    out.extend(t.apply(c))
                if chunk is None:
                    out.extend(t.finish())
                batch = out
        except BaseException as exc:
            self._drained = True
            self._finish(exc)
            raise
        self._pending.extend(batch)

    async def _next_visible(self) -> ChatCompletionChunk:
        call = self.call
        while True:
            chunk = await self._source.__anext__()
            if chunk.usage is not None:
                call.usage = chunk.usage
                for ucb in self._usage_cbs:
                    ucb(call, chunk)
            if chunk.choices:
                d = chunk.choices[0].delta
                if call.ttft is None and (d.content or d.tool_calls or d.refusal):
                    call.ttft = time.perf_counter() - call.started
                parts = self.text_parts
                if parts is not None and d.content:
                    parts.append(d.content)
            for ob in self._observers:
                ob(chunk)
            if not chunk.choices and chunk.usage is not None and not self._include_usage:
                continue
            if chunk.usage is not None and not self._include_usage:
                chunk.usage = None
            return chunk

    async def aclose(self) -> None:
        """Abandons the stream (client gone): closes the upstream and records a cancel."""
        if not self._finished:
            closer = getattr(self._source, "aclose", None)
            try:
                if closer is not None:
                    await closer()
            finally:
                self._finish(_Cancelled())

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self.call.ended = time.perf_counter()
        if self.call.ttft is None and error is None:
            self.call.ttft = self.call.ended - self.call.started
        for cb in self._callbacks:
            cb(self.call, error)
        self._callbacks.clear()


class _Cancelled(Exception):
    """Marks a stream its consumer abandoned."""


Cancelled = _Cancelled


async def replay_completion(c: ChatCompletion, *, usage: bool = True
                            ) -> AsyncIterator[ChatCompletionChunk]:
    """A finished completion as OpenAI stream chunks, choice by choice: one delta carrying the
    role, content, refusal and tool calls, then the finish chunk; last, if `usage` and the
    completion has one, the usage chunk (`choices: []`). `ChunkStream` records that usage on
    the call and hides the chunk from callers who did not ask for it; `usage=False` leaves the
    call's usage untouched."""
    created = c.created or int(time.time())
    for ch in c.choices:
        m = ch.message
        calls = [DeltaToolCall(index=i, id=t.id, type="function",
                               function=DeltaFunctionCall(name=t.function.name,
                                                          arguments=t.function.arguments))
                 for i, t in enumerate(m.tool_calls or ())] or None
        delta = Delta(role="assistant", content=m.content, refusal=m.refusal, tool_calls=calls)
        yield ChatCompletionChunk(id=c.id, created=created, model=c.model,
                                  choices=[ChunkChoice(index=ch.index, delta=delta)])
        yield ChatCompletionChunk(id=c.id, created=created, model=c.model,
                                  choices=[ChunkChoice(index=ch.index, delta=Delta(),
                                                       finish_reason=ch.finish_reason or "stop",
                                                       stop_sequence=ch.stop_sequence)])
    if usage and c.usage is not None:
        yield ChatCompletionChunk(id=c.id, created=created, model=c.model, choices=[],
                                  usage=c.usage)


async def stream_completion(call: Call, completion: ChatCompletion, *, usage: bool = True
                            ) -> ChunkStream:
    """`completion` replayed as the call's `ChunkStream`, first chunk already fetched (as the
    chain's streams are); `usage` as for `replay_completion`."""
    include = call.chat_request.wants_usage_in_stream
    stream = ChunkStream(call, replay_completion(completion, usage=usage), include)
    await stream.prefetch()
    return stream
