"""What every text embedder offers: `TextEmbedder` (blocking, a batch of texts to an `(n, d)`
float32 array of unit-length rows) and `AsyncEmbedder` (the same, awaitable), so the semantic
cache and few-shot selection compare vectors with a plain dot product whichever model made them.

`ThreadedEmbedder` turns a blocking embedder into an awaitable one by running it on a worker
thread of its own (one thread by default: an ONNX session already uses the cores it is given,
and a second batch waiting its turn costs less than two fighting for the same core).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class TextEmbedder(Protocol):
    """A blocking embedder. `embed` returns one L2-normalised float32 row per text, in order
    (an empty input gives shape `(0, dimension)`)."""

    @property
    def name(self) -> str:
        """The model's id: vectors of different names never share an index."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


@runtime_checkable
class AsyncEmbedder(Protocol):
    """An awaitable embedder with the same contract as `TextEmbedder.embed`."""

    @property
    def name(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> Vectors: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Window:
    """How much text one vector of an embedder can stand for: `tokens` of the model's own
    tokenizer, as `count` counts them (special tokens excluded). A model reads no further
    than its window and drops the rest without a word, so a chunker that budgets in another
    tokenizer (cl100k) must also keep each chunk within this one (`BoundedCount`). `label`
    names the tokenizer and limit in a chunker's settings, so changing either re-chunks."""

    tokens: int
    count: Callable[[str], int]
    label: str


def window_of(embedder: object) -> Window | None:
    """The embedder's `Window`, looking through a `ThreadedEmbedder`; None when it declares
    none (a test double)."""
    found = getattr(embedder, "window", None)
    if isinstance(found, Window):
        return found
    inner = getattr(embedder, "embedder", None)
    return window_of(inner) if inner is not None and inner is not embedder else None


class BoundedCount:
    """A chunk budget's token counter that also honours an embedder's window. A text counts
    as `max(primary, window tokens x budget / window size)` (rounded up), so "at most `budget`"
    holds exactly when the primary count is within the budget *and* the text fits the
    window: every chunker keeps to both with its single budget, unchanged. `primary` stays
    the count a chunk reports as its `tokens`."""

    __slots__ = ("budget", "primary", "window")

    def __init__(self, primary: Callable[[str], int], window: Window, budget: int) -> None:
        self.primary = primary
        self.window = window
        self.budget = budget

    def __call__(self, text: str) -> int:
        own = self.primary(text)
        if own > self.budget:  # over on the primary count already: no second count needed
            return own
        scaled = -(-self.window.count(text) * self.budget // self.window.tokens)  # ceiling
        return max(own, scaled)


def normalise(vectors: npt.NDArray[np.floating] | Sequence[Sequence[float]]) -> Vectors:
    """Rows scaled to unit length (a zero row stays zero), as C-contiguous float32."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: Vectors = np.ascontiguousarray(arr / np.maximum(norms, 1e-12), dtype=np.float32)
    return out


class ThreadedEmbedder:
    """`AsyncEmbedder` over a blocking `TextEmbedder`: each batch runs on this object's own
    worker thread(s), so the event loop never waits on a model."""

    def __init__(self, embedder: TextEmbedder, *, workers: int = 1) -> None:
        self.embedder = embedder
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    @property
    def window(self) -> Window | None:
        return window_of(self.embedder)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gatewise-embed")
        batch = list(texts)
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.embedder.embed, batch)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.embedder, "close", None)
        if close is not None:  # the model's own run threads (`MiniLMEmbedder(workers=2)`)
            close()
