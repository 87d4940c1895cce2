"""RAG index latency and memory: build a `CollectionIndex` over N synthetic chunks (unit
vectors with low-rank structure, Zipf-distributed word texts of ~80 words) and time searches.

    .venv/bin/python bench/rag_index_bench.py --n 100000 [--quantization f16|i8|f32]
        [--queries 500] [--embed]   # --embed: include a real MiniLM query embedding

Prints build time, memory (RSS growth and the index's own counts, per chunk), search p50/p99
per mode, and the HNSW recall@50 against an exact scan. Latency is what `rag.search.rank`
costs on one core (usearch searches single-threaded); `--embed` adds the local model's
query embedding, the rest of a real search.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np

from gatewise.rag.index import CollectionIndex
from gatewise.rag.search import rank
from gatewise.storage.chunks import Chunk


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def corpus(n: int, dim: int, seed: int = 0) -> tuple[list[Chunk], Any, list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(30_000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    weights /= weights.sum()
    words = rng.choice(len(vocab), size=(n, 80), p=weights)
    texts = [" ".join(vocab[row]) for row in words]
    # Sentence embeddings live near a low-dimensional subspace: rank-48 structure plus
    # noise, so nearest neighbours mean something (uniform noise makes every point nearly
    # equidistant and any recall figure a coin toss among ties).
    basis = rng.normal(size=(48, dim)).astype(np.float32)
    vectors = rng.normal(size=(n, 48)).astype(np.float32) @ basis + 0.5 * rng.normal(
        size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(f"d{i // 10}#{i % 10}", f"d{i // 10}", i % 10, t, 80,
                    {"source": f"d{i // 10}", "year": 2000 + i % 25})
              for i, t in enumerate(texts)]
    return chunks, vectors, texts


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, p))


def line(label: str, wall: list[float], cpu: list[float]) -> str:
    """Wall time is what a caller waits on a busy host; the thread's CPU time is what the
    search costs one core (the same on an idle one)."""
    return (f"search {label}: wall p50 {percentile(wall, 50):.2f} ms, p99 "
            f"{percentile(wall, 99):.2f} ms | cpu p50 {percentile(cpu, 50):.2f} ms, p99 "
            f"{percentile(cpu, 99):.2f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--quantization", default="f16")
    ap.add_argument("--embed", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    chunks, vectors, texts = corpus(args.n, args.dim)
    print(f"corpus: {args.n} chunks in {time.perf_counter() - t0:.1f}s")
    before = rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    index = CollectionIndex(args.dim, quantization=args.quantization)
    index.add(chunks, vectors)
    t_add = time.perf_counter() - t0
    index.bm25.rebuild()
    t_build = time.perf_counter() - t0
    grown = rss_bytes() - before
    del chunks  # the index holds them
    used = index.memory_bytes()
    print(f"build: {t_build:.1f}s wall, {time.process_time() - c0:.1f}s cpu (vectors + "
          f"tokenising {t_add:.1f}s, bm25 {t_build - t_add:.1f}s)")
    print(f"memory: RSS +{grown / 2**20:.0f} MiB = {grown / args.n:.0f} B/chunk; "
          + ", ".join(f"{k} {v / args.n:.0f} B/chunk" for k, v in used.items()))

    rng = np.random.default_rng(1)
    picks = rng.integers(0, args.n, args.queries)
    queries = [" ".join(texts[i].split()[5:9]) for i in picks]
    qvecs = vectors[picks] + 0.05 * rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)

    embedder: Any = None
    if args.embed:
        from gatewise.embedding import local_embedder

        embedder = local_embedder()
        await embedder.embed(["warm up"])
    for mode in ("hybrid", "vector", "bm25"):
        wall, cpu = [], []
        for q, v in zip(queries, qvecs, strict=True):
            t0, c0 = time.perf_counter(), time.thread_time()
            if embedder is not None and mode != "bm25":
                await embedder.embed([q])
            await rank(index, q, v, k=8, mode=mode)  # type: ignore[arg-type]
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        print(line(f"{mode:6}", wall, cpu))
    wall, cpu = [], []
    for q, v in zip(queries[:200], qvecs[:200], strict=True):
        t0, c0 = time.perf_counter(), time.thread_time()
        await rank(index, q, v, k=8, mmr=0.5, predicate=lambda md: md["year"] == 2003,
                   filter_key="year=2003")
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    print(line("hybrid+filter(1/25)+mmr", wall, cpu))
    # HNSW recall against an exact scan over the same f16 vectors.
    for top in (10, 50):
        hits, sample = 0, qvecs[:100]
        for v in sample:
            approx = {k for k, _ in index.vector_search(v, top)}
            exact = index._vectors.search(v, top, exact=True)
            hits += len(approx & set(exact.keys.tolist()))
        print(f"vector recall@{top} vs exact: {hits / (len(sample) * top):.3f}")
    if embedder is not None:
        await embedder.aclose()


if __name__ == "__main__":
    asyncio.run(main())
