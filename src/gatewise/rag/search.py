"""`Retriever`: hybrid search over a collection (`types.Searcher`).

One search: the query is embedded (by the embedder the collection's vectors came from) while
the collection's per-process index catches up with the store; then

1. candidates: the vector top-N and the BM25 top-N, N = max(4k, 50), each generated *under*
   the filters (the top 4N filtered; when fewer than N pass, an exact pass over the chunks
   the filter admits), so a selective filter never leaves fewer than k hits when k exist;
2. fusion: reciprocal rank fusion, `sum weight / (k + rank)` over the lists a chunk is in
   (ranks, not scores: BM25 and cosine live on different scales). The default is the
   textbook k=60 with equal weights (what keyword-heavy corpora such as manuals, tickets and
   code favour); `Fusion` weights one list up where measurements on the operator's own data
   say so (`rag.fusion`; bench/rag_bench.py prints a sweep). Chosen on some packaged
   datasets and held out on another, no fusion in that bench's grid beat the better single
   list on the held-out one: not fixed ones (RRF, min-max or z-score scores), nor ones that
   adapt without labels (per-query weights from how far each list's top score stands out;
   the vector weight scaled by the share of the query the embedder read). Per query, those
   signals do not say which list is right (on the sets the vectors lead, adding BM25
   raised nDCG@10 in no quartile of any such signal); which list leads is a property of the
   collection, so the default stays the textbook one rather than one fitted to those sets;
3. optional re-ranking of the fused top max(2k, 20) by a `Reranker` (a model call);
4. optional MMR diversity: greedy picks maximising `λ·relevance - (1-λ)·max similarity to
   the chunks already picked` (cosine on the chunk vectors), so near-duplicates give way.

`mode` switches candidate generation to one list (`vector`, `bm25`) for comparisons.
`Hit.scores` keeps `vector` (cosine, for every candidate), `bm25` (when the chunk was a BM25
candidate), `rrf`, and `rerank` / `mmr` when they ran; `Hit.score` is the last stage's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gatewise.errors import ConflictError, InvalidRequestError
from gatewise.rag.filters import Predicate, compile_filters
from gatewise.rag.index import CollectionIndex
from gatewise.rag.types import Hit

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from gatewise.embedding.base import AsyncEmbedder
    from gatewise.storage.chunks import ChunkStore, CollectionRecord, Filters

Mode = Literal["hybrid", "vector", "bm25"]
Reranker = Callable[[str, list[Hit]], Awaitable[list[float]]]
RRF_K = 60
MODES: tuple[Mode, ...] = ("hybrid", "vector", "bm25")


@dataclass(frozen=True, slots=True)
class Fusion:
    """Reciprocal-rank-fusion settings: `k` damps the head of each list; the weights scale
    each list's contribution."""

    k: float = RRF_K
    vector_weight: float = 1.0
    bm25_weight: float = 1.0


DEFAULT_FUSION = Fusion()


def candidates_wanted(k: int) -> int:
    return max(4 * k, 50)


def fuse(lists: Sequence[Sequence[tuple[int, float]]], *, k: float = RRF_K,
         weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked (key, score) lists: (key, fused score), best first;
    ties keep the order of first appearance."""
    fused: dict[int, float] = {}
    for n, ranked in enumerate(lists):
        weight = weights[n] if weights is not None else 1.0
        for rank, (key, _) in enumerate(ranked, 1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda e: -e[1])


def mmr_order(relevance: npt.NDArray[np.float64], vectors: npt.NDArray[np.float32],
              k: int, lam: float) -> list[tuple[int, float]]:
    """Greedy maximal marginal relevance: (position, MMR score) of up to `k` picks, in
    order. `relevance` is scaled to 0..1 first, so λ weighs comparable quantities."""
    import numpy as np

    n = len(relevance)
    if n == 0:
        return []
    low, high = float(relevance.min()), float(relevance.max())
    rel = (relevance - low) / (high - low) if high > low else np.ones(n)
    # One matrix-vector product per pick, never `vectors @ vectors.T`: a small matrix
    # product goes to multi-threaded BLAS, which costs ~50 ms on a busy two-core host.
    redundancy = np.full(n, -np.inf)
    chosen = np.zeros(n, dtype=bool)
    out: list[tuple[int, float]] = []
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        score = lam * rel - (1 - lam) * penalty
        score[chosen] = -np.inf
        pick = int(np.argmax(score))
        out.append((pick, float(score[pick])))
        chosen[pick] = True
        redundancy = np.maximum(redundancy, vectors @ vectors[pick])
    return out


async def rank(index: CollectionIndex, query: str, query_vector: npt.NDArray[np.float32] | None,
               *, k: int, predicate: Predicate | None = None, mmr: float | None = None,
               reranker: Reranker | None = None, mode: Mode = "hybrid",
               filter_key: str | None = None, fusion: Fusion = DEFAULT_FUSION) -> list[Hit]:
    """The ranked hits for a query over an index already in step (what `Retriever.search`
    does after embedding and refreshing; a benchmark calls it directly)."""
    import numpy as np

    n = candidates_wanted(k)
    allowed = index.allowed(predicate, filter_key)
    vec = index.vector_search(query_vector, n, allowed) \
        if mode != "bm25" and query_vector is not None else []
    lex = index.bm25_search(query, n, allowed) if mode != "vector" else []
    lists = {"hybrid": [vec, lex], "vector": [vec], "bm25": [lex]}[mode]
    fused = fuse(lists, k=fusion.k, weights=(fusion.vector_weight, fusion.bm25_weight)
                 if mode == "hybrid" else None)
    if not fused:
        return []
    pool = fused if reranker is not None or mmr is not None else fused[:k]
    keys = [key for key, _ in pool]
    cos = dict(vec)
    bm = dict(lex)
    need_vectors = mmr is not None or (query_vector is not None and any(
        key not in cos for key in keys))
    vectors = index.vectors(keys) if need_vectors else None
    if query_vector is not None and vectors is not None:
        sims = vectors @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        for key, sim in zip(keys, sims.tolist(), strict=True):
            cos.setdefault(key, float(sim))
    hits: list[Hit] = []
    primary = {"hybrid": None, "vector": cos, "bm25": bm}[mode]
    for key, rrf in pool:
        scores: dict[str, float] = {"rrf": rrf}
        if key in cos:
            scores["vector"] = cos[key]
        if key in bm:
            scores["bm25"] = bm[key]
        score = rrf if primary is None else primary[key]
        hits.append(Hit(index.chunk(key), score, 0, scores))
    if reranker is not None:
        top = max(2 * k, 20)
        head, positions = hits[:top], list(range(min(top, len(hits))))
        given = await reranker(query, head)
        if len(given) != len(head):
            raise ValueError(f"the re-ranker gave {len(given)} scores for {len(head)} hits")
        order = sorted(positions, key=lambda i: -float(given[i]))
        hits = [Hit(head[i].chunk, float(given[i]), 0, {**head[i].scores,
                                                          "rerank": float(given[i])})
                for i in order]
        if vectors is not None:
            vectors = vectors[order]
    if mmr is not None:
        assert vectors is not None
        relevance = np.asarray([h.score for h in hits], dtype=np.float64)
        picks = mmr_order(relevance, vectors[:len(hits)], k, mmr)
        hits = [Hit(hits[i].chunk, s, 0, {**hits[i].scores, "mmr": s}) for i, s in picks]
    return [Hit(h.chunk, h.score, r, h.scores) for r, h in enumerate(hits[:k], 1)]


class Retriever:
    """`types.Searcher` over a `ChunkStore`. One `CollectionIndex` per collection searched,
    held by this object (per process), refreshed from the store at most every `refresh_s`."""

    def __init__(self, store: ChunkStore, embedder: AsyncEmbedder, *,
                 reranker: Reranker | None = None, mode: Mode = "hybrid",
                 refresh_s: float = 1.0, index_options: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 fusion: Fusion = DEFAULT_FUSION) -> None:
        self.store = store
        self.fusion = fusion
        self.embedder = embedder
        self.reranker = reranker
        self.mode = mode
        self.refresh_s = refresh_s
        self._options = dict(index_options or {})
        self._clock = clock
        self._indexes: dict[str, CollectionIndex] = {}

    def index(self, collection: CollectionRecord) -> CollectionIndex:
        found = self._indexes.get(collection.id)
        if found is None or found.dimension != collection.dimension:
            found = CollectionIndex(collection.dimension, refresh_s=self.refresh_s,
                                    clock=self._clock, **self._options)
            self._indexes[collection.id] = found
        return found

    def forget(self, collection_id: str) -> None:
        """Drops a collection's index (it was deleted): memory goes back at once."""
        self._indexes.pop(collection_id, None)

    async def search(self, collection: CollectionRecord, query: str, *, k: int = 8,
                     filters: Filters | None = None, mmr: float | None = None,
                     rerank: bool = False, mode: Mode | None = None) -> list[Hit]:
        mode = mode or self.mode
        if mode not in MODES:
            raise InvalidRequestError("mode is hybrid, vector or bm25", param="mode")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidRequestError("k must be a positive integer", param="k")
        if mmr is not None and not 0.0 <= mmr <= 1.0:
            raise InvalidRequestError("mmr is from 0 (diversity) to 1 (relevance)", param="mmr")
        if rerank and self.reranker is None:
            raise InvalidRequestError("re-ranking is not configured (rag.rerank_model)",
                                      param="rerank")
        predicate = compile_filters(filters)
        index = self.index(collection)
        if mode == "bm25":
            await index.refresh(self.store, collection.id)
            query_vector = None
        else:
            if self.embedder.name != collection.embedder:
                raise ConflictError(
                    f"collection {collection.name!r} was embedded by {collection.embedder!r}; "
                    f"this gateway's embedder is {self.embedder.name!r}: re-ingest it",
                    param="collection")
            embedded, _ = await asyncio.gather(self.embedder.embed([query]),
                                               index.refresh(self.store, collection.id))
            await index.ready()  # nothing awaited from here to the last read of the index
            query_vector = embedded[0]
            if query_vector.shape[0] != collection.dimension:
                raise ConflictError(f"the query embedding has {query_vector.shape[0]} "
                                    f"dimensions, the collection {collection.dimension}",
                                    param="collection")
        return await rank(index, query, query_vector, k=k, predicate=predicate, mmr=mmr,
                          reranker=self.reranker if rerank else None, mode=mode,
                          fusion=self.fusion,
                          filter_key=_canonical(filters) if predicate is not None else None)


def _canonical(filters: Filters | None) -> str:
    return json.dumps(filters, sort_keys=True, separators=(",", ":"), default=repr)
