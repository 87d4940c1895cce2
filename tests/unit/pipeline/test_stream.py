"""ChunkStream: first-byte failures raise before anything is sent; finish runs exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gatewise.errors import ProviderServerError
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import Cancelled, ChunkStream
from gatewise.types import ChatCompletionChunk, ChunkChoice, Delta, Usage
from gatewise.types.validation import chat_request_from_dict


def _call() -> Call:
    return Call("chat", chat_request_from_dict(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}))


def _chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(content=text))])


async def test_failure_before_first_chunk_raises_from_prefetch() -> None:
    async def broken() -> AsyncIterator[ChatCompletionChunk]:
        raise ProviderServerError("boom")
        yield _chunk("never")

    finished: list[BaseException | None] = []
    s = ChunkStream(_call(), broken(), include_usage=False)
    s.on_finish(lambda c, e: finished.append(e))
    with pytest.raises(ProviderServerError):
        await s.prefetch()
    assert len(finished) == 1 and isinstance(finished[0], ProviderServerError)


async def test_usage_chunk_is_recorded_but_hidden_unless_asked() -> None:
    async def src() -> AsyncIterator[ChatCompletionChunk]:
        yield _chunk("a")
        yield ChatCompletionChunk(choices=[], usage=Usage(prompt_tokens=1, completion_tokens=1,
                                                          total_tokens=2))

    call = _call()
    s = ChunkStream(call, src(), include_usage=False)
    await s.prefetch()
    got = [c async for c in s]
    assert len(got) == 1 and call.usage is not None and call.usage.total_tokens == 2
    assert call.ttft is not None and call.ended is not None


async def test_abandoning_a_stream_closes_the_source_and_records_a_cancel() -> None:
    closed = []

    async def src() -> AsyncIterator[ChatCompletionChunk]:
        try:
            while True:
                yield _chunk("tick")
        finally:
            closed.append(True)

    finished: list[BaseException | None] = []
    s = ChunkStream(_call(), src(), include_usage=False)
    s.on_finish(lambda c, e: finished.append(e))
    await s.prefetch()
    await s.__anext__()
    await s.__anext__()
    await s.aclose()
    await s.aclose()
    assert closed == [True]
    assert len(finished) == 1 and isinstance(finished[0], Cancelled)


async def test_a_reader_cancelled_mid_read_is_recorded_as_an_abandoned_stream() -> None:
    """The server cancels the task reading the stream when the client leaves: that is a
    cancel (499 in logs and metrics), not the gateway failing with CancelledError (500)."""
    import asyncio

    waiting = asyncio.Event()

    async def src() -> AsyncIterator[ChatCompletionChunk]:
        yield _chunk("first")
        waiting.set()
        await asyncio.sleep(3600)
        yield _chunk("never")

    finished: list[BaseException | None] = []
    s = ChunkStream(_call(), src(), include_usage=False)
    s.on_finish(lambda c, e: finished.append(e))
    await s.prefetch()
    await s.__anext__()
    reader = asyncio.ensure_future(s.__anext__())
    await waiting.wait()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await s.aclose()
    assert len(finished) == 1 and isinstance(finished[0], Cancelled)


async def test_an_observer_sees_every_chunk_from_the_prefetched_one_on_and_changes_none() -> None:
    async def src() -> AsyncIterator[ChatCompletionChunk]:
        for text in ("a", "b", "c"):
            yield _chunk(text)

    s = ChunkStream(_call(), src(), include_usage=False)
    await s.prefetch()  # as a provider call does before the stream is handed back
    seen: list[str] = []
    s.observe(lambda c: seen.append(c.choices[0].delta.content or ""))
    got = [c.choices[0].delta.content async for c in s]
    assert got == seen == ["a", "b", "c"]
