"""`build_rag`: the gateway's `Knowledge` from the config, costing nothing until used.

A gateway that never touches RAG must not pay for it: this module imports no numpy, usearch,
bm25s or pypdf, opens no store and loads no model. It hands `Knowledge` three factories it
calls on first use: the chunk store (`rag.store`), the embedder (`rag.embedder`: `local` is
all-MiniLM-L6-v2 in process, anything else an embedding alias called through the gateway, so
it is routed, retried, rate-limited and billed like any other call) and the re-ranker
(`rag.rerank_model`, asked through the gateway's runner).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from gatewise.rag.service import Knowledge

if TYPE_CHECKING:
    from gatewise.accounting.tokenizers import Tokenizers
    from gatewise.config.loader import ResolvedConfig
    from gatewise.embedding.alias import EmbeddingsClient
    from gatewise.embedding.base import AsyncEmbedder
    from gatewise.pipeline.runner import Runner
    from gatewise.storage.chunks import ChunkStore

__all__ = ["LOCAL_DIMENSION", "build_rag"]

# all-MiniLM-L6-v2's width, known without loading it (`gatewise.embedding.local.DIMENSION`).
LOCAL_DIMENSION = 384


def build_rag(config: ResolvedConfig, *, embeddings: EmbeddingsClient,
              tokenizers: Tokenizers | None = None, runner: Runner | None = None,
              embedder: AsyncEmbedder | None = None,
              open_store: Callable[[], ChunkStore] | None = None) -> Knowledge:
    """`embeddings` (the gateway) serves an embedding alias; `tokenizers` counts chunk tokens
    with the offline counters budgets use; `runner` (the gateway) asks `rag.rerank_model`.
    `embedder` and `open_store` replace the configured ones (tests, tools)."""
    rag = config.config.rag

    def make_embedder() -> AsyncEmbedder:
        if embedder is not None:
            return embedder
        if rag.embedder == "local":
            from gatewise.embedding import local_embedder

            _runtime_first()
            # Two runs of an ingestion batch at once (one core each); a query runs alone.
            # Chunks are cut to the model's window; `windows` reads whole any text that
            # is not (a query, a chunk from a caller's own chunker).
            return local_embedder(workers=2, windows=True)
        from gatewise.embedding.alias import AliasEmbedder

        return AliasEmbedder(embeddings, rag.embedder, max_tokens=rag.embedder_max_tokens,
                             count=count)

    def make_store() -> ChunkStore:
        if open_store is not None:
            return open_store()
        from gatewise.storage.chunks_factory import open_chunk_store

        return open_chunk_store(config)

    count = None
    if tokenizers is not None:
        tk = tokenizers

        def count(text: str) -> int:
            return tk.encoding("cl100k_base").count(text)

    reranker = None
    if rag.rerank_model and runner is not None:
        from gatewise.rag.rerank import ModelReranker

        reranker = ModelReranker(runner, rag.rerank_model)
    dimension = None
    if embedder is None and rag.embedder == "local":
        dimension = LOCAL_DIMENSION
    return Knowledge(rag, open_store=make_store, make_embedder=make_embedder, count=count,
                     reranker=reranker, dimension=dimension)


def _runtime_first() -> None:
    """Imports ONNX Runtime before anything imports usearch: with usearch 2.26 loaded first,
    importing onnxruntime 1.32 kills the process (a segfault in its native initialisation),
    and which of the two a knowledge base needs first (a search or an ingestion) is up to
    the caller. Costs nothing when it is already imported."""
    if importlib.util.find_spec("onnxruntime") is not None:
        importlib.import_module("onnxruntime")
