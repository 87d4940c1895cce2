"""`CollectionIndex`: one collection's per-process search index, kept in step with the store.

The store is the truth; every replica holds, per collection it has searched, an HNSW vector
index (usearch), a BM25 index (`rag.bm25`) and the chunks themselves (text and metadata, for
filters and for the hits it returns). `refresh` asks the store for `changes(since)` at most
every `refresh_s` seconds, on the search path, so two replicas on one PostgreSQL see each
other's ingestions within about that long, and an idle replica costs the database nothing.

Vectors: unit rows, inner product (= cosine), stored as float16 (`quantization`). Measured
(384 dimensions, clustered vectors): f16 ranks exactly as f32 (recall@10 1.0, scores within
1e-4); i8 builds 1.4x and scans 2x faster but an exact i8 scan finds only 0.86 of the true
top 10 (and usearch's i8 needs the `cos` metric: its inner product is unscaled), so f16 is
the default. Collections below `exact_below` chunks are scanned exhaustively (exact).

Chunk ids map to integer keys that are never reused, so a late BM25 rebuild can tell a
removed document from a live one. Large change pages are applied on a worker thread while
searches wait on the index's lock; a search never reads a half-applied page.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from gatewise.rag.bm25 import Bm25Index, build_base
from gatewise.rag.filters import KeyFilter, Predicate
from gatewise.storage.chunks import Chunk, ChunkChange

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from gatewise.storage.chunks import ChunkStore, Vectors

log = logging.getLogger("gatewise.rag")

Quantization = Literal["f32", "f16", "i8"]
# A page bigger than this is applied on a worker thread (the loop keeps serving).
_THREAD_APPLY = 2_000
# BM25 rebuilds of collections at least this big run on a worker thread.
_THREAD_BUILD = 20_000
# More chunks than this at once go into the next BM25 base, not its delta.
_BULK = 1_000
# How many distinct filters an index remembers the passing chunks of.
_FILTERS_KEPT = 16


class CollectionIndex:
    def __init__(self, dimension: int, *, quantization: Quantization = "f16",
                 exact_below: int = 10_000, connectivity: int = 16, expansion_add: int = 64,
                 expansion_search: int = 128, refresh_s: float = 1.0, page: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dimension = dimension
        self.quantization = quantization
        self.exact_below = exact_below
        self.refresh_s = refresh_s
        self._hnsw = (connectivity, expansion_add, expansion_search)
        self._page = page
        self._clock = clock
        self.seq = 0
        self._polled = -math.inf
        self._loaded = False
        self._lock: asyncio.Lock | None = None
        self._rebuild: Any = None
        self._applying = False
        self._reset()

    def _reset(self) -> None:
        self._next_key = 1
        self._keys: dict[str, int] = {}
        self._chunks: dict[int, Chunk] = {}
        self._vectors: Any = None  # usearch Index, made on first add
        # The same vectors as a float16 matrix (row per key, `_row`): exact scans of a
        # filter's chunks and MMR read rows here in one gather, where usearch's `get` costs
        # ~10 µs per key. Removed rows stay until dead ones outnumber live ones.
        self._matrix: Any = None
        self._row: dict[int, int] = {}
        self._used = 0
        self.bm25 = Bm25Index()
        # Filters (canonical JSON) -> (predicate, keys passing it): see `allowed`.
        self._filtered: dict[str, tuple[Predicate, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._chunks)

    # --- building -----------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, chunks: Sequence[Chunk], vectors: Vectors,
                    **options: Any) -> CollectionIndex:
        """An index over these chunks (one unit vector row each) with no store behind it:
        what a benchmark or a test builds directly."""
        index = cls(int(vectors.shape[1]), **options)
        index.add(chunks, vectors)
        index.bm25.rebuild()
        index._loaded = True
        return index

    def _new_vectors(self) -> Any:
        from usearch.index import Index

        connectivity, expansion_add, expansion_search = self._hnsw
        metric = "cos" if self.quantization == "i8" else "ip"
        return Index(ndim=self.dimension, metric=metric, dtype=self.quantization,
                     connectivity=connectivity, expansion_add=expansion_add,
                     expansion_search=expansion_search)

    def add(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        import numpy as np

        self.remove([c.id for c in chunks if c.id in self._keys])
        if not chunks:
            return
        keys = np.arange(self._next_key, self._next_key + len(chunks), dtype=np.uint64)
        self._next_key += len(chunks)
        if self._vectors is None:
            self._vectors = self._new_vectors()
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        self._vectors.add(keys, rows, threads=2)
        self._store_rows(keys.tolist(), rows)
        bulk = len(chunks) > _BULK
        for key, chunk in zip(keys.tolist(), chunks, strict=True):
            self._keys[chunk.id] = key
            self._chunks[key] = chunk
            self.bm25.add(key, chunk.text, bulk=bulk)
        for predicate, passing in self._filtered.values():
            passing.extend(k for k, c in zip(keys.tolist(), chunks, strict=True)
                           if predicate(c.metadata))

    def remove(self, ids: Sequence[str]) -> None:
        gone = [k for i in ids if (k := self._keys.pop(i, None)) is not None]
        if not gone:
            return
        import numpy as np

        for key in gone:
            del self._chunks[key]
            self.bm25.remove(key)
        self._vectors.remove(np.asarray(gone, dtype=np.uint64))
        for key in gone:
            del self._row[key]
        if self._used - len(self._row) > max(10_000, len(self._row)):
            self._compact()

    def _store_rows(self, keys: list[int], rows: Vectors) -> None:
        import numpy as np

        need = self._used + len(keys)
        if self._matrix is None or need > len(self._matrix):
            grown = np.zeros((max(need, 2 * self._used, 1024), self.dimension), dtype=np.float16)
            if self._matrix is not None:
                grown[:self._used] = self._matrix[:self._used]
            self._matrix = grown
        self._matrix[self._used:need] = rows
        for i, key in enumerate(keys, self._used):
            self._row[key] = i
        self._used = need

    def _compact(self) -> None:
        for _, passing in self._filtered.values():
            passing[:] = [k for k in passing if k in self._chunks]
        keys = list(self._row)
        live = self._matrix[[self._row[k] for k in keys]]
        self._matrix, self._row, self._used = None, {}, 0
        self._store_rows(keys, live)

    def apply(self, change: ChunkChange) -> None:
        """One page of `ChunkStore.changes`: removals first (an id removed and added again
        in the page ends present), then additions."""
        if change.reset:
            self._reset()
        self.remove(change.removed)
        if change.added:
            assert change.vectors is not None
            self.add(change.added, change.vectors)
        self.seq = change.seq

    async def refresh(self, store: ChunkStore, collection_id: str, *,
                      force: bool = False) -> None:
        """Catches up with the store if `refresh_s` has passed since the last look (or
        `force`). Concurrent callers share one look; one that finds a page being applied
        waits for it."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        if not force and self._fresh() and not self._lock.locked():
            return
        async with self._lock:
            if not force and self._fresh():
                return
            loop = asyncio.get_running_loop()
            while True:
                change = await store.changes(collection_id, self.seq, limit=self._page)
                moved = change.reset or change.added or change.removed or change.seq != self.seq
                if len(change.added) + len(change.removed) > _THREAD_APPLY:
                    await self._off_loop(loop, self.apply, change)
                else:
                    self.apply(change)
                if not moved:  # a page may stop short of the head (never mid-document)
                    break
            if self.bm25.stale:  # a bulk catch-up: searches wait for its BM25 base
                await self._off_loop(loop, self.bm25.rebuild)
            self._polled = self._clock()
            self._loaded = True
        self._maybe_rebuild_bm25()

    async def _off_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
                        *args: Any) -> None:
        self._applying = True
        try:
            await loop.run_in_executor(None, fn, *args)
        finally:
            self._applying = False

    async def ready(self) -> None:
        """Returns once no page is being applied on a worker thread. A search that awaited
        something else after `refresh` (the query's embedding) calls this right before it
        reads the index, and then reads it without awaiting anything."""
        while self._applying and self._lock is not None:
            async with self._lock:
                pass

    def _fresh(self) -> bool:
        return self._loaded and self._clock() - self._polled < self.refresh_s

    def _maybe_rebuild_bm25(self) -> None:
        bm25 = self.bm25
        if not bm25.needs_rebuild():
            return
        if len(bm25) < _THREAD_BUILD:
            bm25.rebuild()
            return
        bm25.building = True
        future = asyncio.get_running_loop().run_in_executor(None, build_base, *bm25.snapshot())

        def done(f: asyncio.Future[Any]) -> None:
            bm25.building = False
            if f.cancelled():
                return
            if f.exception() is not None:
                log.warning("BM25 rebuild failed: %s", type(f.exception()).__name__)
                return
            bm25.swap(f.result())

        future.add_done_callback(done)
        self._rebuild = future  # keeps the future referenced until it is done

    # --- searching ----------------------------------------------------------------------

    def chunk(self, key: int) -> Chunk:
        return self._chunks[key]

    def allowed(self, predicate: Predicate | None,
                cache_key: str | None = None) -> KeyFilter | None:
        """The filter for one search. With `cache_key` (the filters, canonical), the keys a
        full scan finds are remembered and kept up to date as chunks are added, so the next
        search with the same filters skips the scan."""
        if predicate is None:
            return None
        if cache_key is None:
            return KeyFilter(self._chunks, predicate)
        held = self._filtered.get(cache_key)
        if held is not None:
            return KeyFilter(self._chunks, predicate, known=held[1])

        def remember(keys: list[int]) -> None:
            if len(self._filtered) >= _FILTERS_KEPT:
                del self._filtered[next(iter(self._filtered))]
            self._filtered[cache_key] = (predicate, keys)

        return KeyFilter(self._chunks, predicate, remember=remember)

    def vector_search(self, query: npt.NDArray[np.float32], n: int,
                      allowed: KeyFilter | None = None) -> list[tuple[int, float]]:
        """Up to `n` (key, cosine), best first, among keys `allowed` passes: HNSW top 4n
        filtered, and when too few pass, an exact scan of the passing chunks' vectors."""
        import numpy as np

        size = len(self._chunks)
        if size == 0 or n <= 0:
            return []
        count = min(n if allowed is None else n * 4, size)
        exact = size <= self.exact_below
        found = self._vectors.search(query, count, exact=exact, threads=1)
        out = [(int(k), 1.0 - float(d)) for k, d in zip(found.keys.tolist(),
                                                       found.distances.tolist(), strict=True)
               if allowed is None or allowed.passes(int(k))]
        if len(out) >= n or count >= size or allowed is None:
            return out[:n]
        keys = allowed.keys()
        if len(keys) == 0:
            return []
        sims = self.vectors(keys.tolist()) @ np.asarray(query, dtype=np.float32).reshape(-1)
        top = np.argsort(-sims, kind="stable")[:n] if len(keys) <= n else \
            np.argpartition(-sims, n)[:n]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(keys[i]), float(sims[i])) for i in top.tolist()]

    def bm25_search(self, query: str, n: int,
                    allowed: KeyFilter | None = None) -> list[tuple[int, float]]:
        return self.bm25.search(query, n, allowed)

    def vectors(self, keys: Sequence[int]) -> npt.NDArray[np.float32]:
        import numpy as np

        if not len(keys):
            return np.zeros((0, self.dimension), dtype=np.float32)
        row = self._row
        out: npt.NDArray[np.float32] = self._matrix[[row[k] for k in keys]].astype(np.float32)
        return out

    def memory_bytes(self) -> dict[str, int]:
        """What the index holds, roughly: the vector index's own count, the BM25 matrix,
        token arrays and the cached chunk texts (strings only: dict and object overhead
        comes on top and is measured by the bench)."""
        vectors = int(self._vectors.memory_usage) if self._vectors is not None else 0
        vectors += int(self._matrix.nbytes) if self._matrix is not None else 0
        base = self.bm25.base
        matrix = 0
        if base is not None:
            scores = base.model.scores
            matrix = sum(int(scores[k].nbytes) for k in ("data", "indices", "indptr"))
        tokens = sum(int(a.nbytes) for a in self.bm25.tokens.values())
        texts = sum(len(c.text) for c in self._chunks.values())
        return {"vectors": vectors, "bm25": matrix + tokens, "texts": texts}
