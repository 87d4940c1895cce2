"""`ChunkStream`: the one streaming result type that flows back through the pipeline.

It records time to first token and the usage chunk on the `Call` as chunks pass, hides the
usage-only chunk from callers who did not ask for it (gatewise always asks upstream, for
accounting), and runs finish callbacks exactly once, whether the stream completes, fails or
is abandoned by a disconnecting client (which also closes the upstream).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from gatewise.pipeline.core import Call
from gatewise.types.stream import ChatCompletionChunk

FinishCallback = Callable[[Call, BaseException | None], None]


class ChunkStream:
    __slots__ = ("_callbacks", "_finished", "_first", "_include_usage", "_source", "call")

    def __init__(self, call: Call, source: AsyncIterator[ChatCompletionChunk],
                 include_usage: bool) -> None:
        self.call = call
        self._source = source
        self._include_usage = include_usage
        self._first: ChatCompletionChunk | None = None
        self._callbacks: list[FinishCallback] = []
        self._finished = False

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

    def on_finish(self, cb: FinishCallback) -> None:
        if self._finished:
            cb(self.call, None)
        else:
            self._callbacks.append(cb)

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._finished:
            raise StopAsyncIteration
        try:
            return await self._next_visible()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise

    async def _next_visible(self) -> ChatCompletionChunk:
        call = self.call
        while True:
            chunk = await self._source.__anext__()
            if chunk.usage is not None:
                call.usage = chunk.usage
            if call.ttft is None and chunk.choices:
                d = chunk.choices[0].delta
                if d.content or d.tool_calls or d.refusal:
                    call.ttft = time.perf_counter() - call.started
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
