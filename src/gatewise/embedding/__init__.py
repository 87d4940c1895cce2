"""Text embeddings for the features that compare meaning (the semantic cache, few-shot
example selection).

Stable API:

- `TextEmbedder` (blocking) and `AsyncEmbedder` (awaitable) protocols: `embed(texts)` returns
  an `(n, d)` float32 numpy array of L2-normalised rows, so cosine similarity is `a @ b.T`.
- `MiniLMEmbedder()`: the local default, all-MiniLM-L6-v2 int8 on ONNX Runtime (no torch, no
  download; the `semantic` extra installs it). Loads on first use.
- `ThreadedEmbedder(embedder)`: the awaitable form of a blocking embedder (worker thread).
- `AliasEmbedder(gateway, alias)`: a configured embedding alias through the gateway.
- `local_embedder()`: `ThreadedEmbedder(MiniLMEmbedder())`, the usual awaitable default.
- `Window`, `window_of(embedder)`, `BoundedCount`: how much text one vector reads, in the
  model's own tokens, and a chunk counter that keeps chunks within it.

numpy, onnxruntime and tokenizers are imported only here and on first use, never by
`import gatewise`.
"""

from __future__ import annotations

from gatewise.embedding.alias import AliasEmbedder, EmbeddingsClient
from gatewise.embedding.base import (
    AsyncEmbedder,
    BoundedCount,
    TextEmbedder,
    ThreadedEmbedder,
    Vectors,
    Window,
    normalise,
    window_of,
)
from gatewise.embedding.local import EmbedderUnavailableError, MiniLMEmbedder, check_installed

__all__ = ["AliasEmbedder", "AsyncEmbedder", "BoundedCount", "EmbedderUnavailableError",
           "EmbeddingsClient", "MiniLMEmbedder", "TextEmbedder", "ThreadedEmbedder", "Vectors",
           "Window", "check_installed", "local_embedder", "normalise", "window_of"]


def local_embedder(*, threads: int = 1, workers: int = 1, windows: bool = False) -> ThreadedEmbedder:
    """The local model, awaitable: what the cache and few-shot selection use by default.
    `workers`: runs of one large batch at once (ingestion); a single text always runs alone.
    `windows`: a text over the model's window is read whole, in windows (RAG)."""
    return ThreadedEmbedder(MiniLMEmbedder(threads=threads, workers=workers, windows=windows))
