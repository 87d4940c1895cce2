"""`semantic`: break where the meaning moves on. Each section's sentences are embedded (the
`TextEmbedder`, in batches), and a chunk ends between two neighbouring sentences whose cosine
similarity falls in the lowest `percentile` of the document's neighbour similarities, or
where the next sentence would take the chunk over `tokens`. Sections stay hard boundaries.

The embedder is a blocking one on purpose: chunking runs on a worker thread (the ingestor
puts it there), never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatewise.rag.chunkers._build import ChunkBuilder, Piece
from gatewise.rag.chunkers._spans import Count, Span, split_to_fit
from gatewise.rag.chunkers.sentence import sentence_units
from gatewise.rag.types import Chunk, LoadedDocument

if TYPE_CHECKING:
    from gatewise.embedding.base import TextEmbedder

EMBED_BATCH = 64


class SemanticChunker:
    def __init__(self, *, tokens: int, count: Count, embedder: TextEmbedder,
                 percentile: float = 25.0) -> None:
        self.name = "semantic"
        self.tokens = tokens
        self.count = count
        self.embedder = embedder
        self.percentile = percentile
        self.settings = f"semantic:{tokens}:{percentile}:{embedder.name}"

    def chunk(self, document: LoadedDocument) -> list[Chunk]:
        import numpy as np

        b = ChunkBuilder(document, self.count)
        groups: list[tuple[list[Span], list[float]]] = [
            sentence_units(b.tokens, *b.bounds(i), self.tokens) for i in range(len(b.sections))]
        texts = [b.text[a:e] for units, _ in groups for a, e in units]
        if not texts:
            return []
        rows = [self.embedder.embed(texts[i:i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
        vectors = np.concatenate(rows, axis=0)
        sims = np.einsum("ij,ij->i", vectors[:-1], vectors[1:]) if len(texts) > 1 else np.zeros(0)
        # Similarities across a section boundary do not count (the boundary breaks anyway).
        inside: list[float] = []
        offset = 0
        for units, _ in groups:
            inside.extend(float(s) for s in sims[offset:offset + max(0, len(units) - 1)])
            offset += len(units)
        threshold = float(np.percentile(inside, self.percentile)) if inside else -1.0
        pieces: list[Piece] = []
        offset = 0
        for units, counts in groups:
            ends = [u[1] for u in units]
            i = 0
            while i < len(units):
                j, total = i, counts[i]
                while j + 1 < len(units) and float(sims[offset + j]) >= threshold \
                        and total + counts[j + 1] <= self.tokens:
                    j += 1
                    total += counts[j]
                j, tokens = b.tokens.fit(units, ends, i, j, self.tokens, grow=False)
                if tokens > self.tokens:  # a lone sentence the estimate let through
                    pieces.extend(Piece(a, e, t) for (a, e), t in split_to_fit(
                        b.tokens, units[i][0], units[j][1], self.tokens, ("word",), exact=tokens))
                else:
                    pieces.append(Piece(units[i][0], units[j][1], tokens))
                i = j + 1
            offset += len(units)
        return b.make(pieces)
