"""Budget counters: the cost of one reserve + settle (what every request pays) per backend.

Sequential, one request in flight: each iteration reserves a worst case on one budget key and
settles it to the real amount, timing the reserve, the settle and the pair. Memory is the
floor; SQLite (a temp file), Redis (127.0.0.1:6379, own key prefix, cleaned up) and
PostgreSQL (127.0.0.1:5432 db `test`, own schema, dropped) are measured when reachable.
Target: Redis reserve + settle ≤ 0.3 ms p99 (two round trips, one Lua script call each), on
the lean RESP client the gateway uses; redis-py's script path is shown for comparison.

    .venv/bin/python bench/budget_bench.py              # 5,000 iterations per backend
    .venv/bin/python bench/budget_bench.py -n 1000 --uvloop

Standalone: never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gatewise.storage.memory import MemoryCounters
from gatewise.storage.sqlite import SQLiteCounters

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
TARGET_REDIS_P99_MS = 0.3


def _up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _measure(store: Any, n: int, warmup: int) -> dict[str, float]:
    reserve_ms: list[float] = []
    settle_ms: list[float] = []
    pair_ms: list[float] = []
    clock = time.perf_counter
    for i in range(warmup + n):
        t0 = clock()
        r = await store.reserve("tenant:budget:key:k1:month", 0.05, limit=1e12, ttl=86400)
        t1 = clock()
        assert r is not None
        await store.settle(r, 0.01)
        t2 = clock()
        if i >= warmup:
            reserve_ms.append((t1 - t0) * 1e3)
            settle_ms.append((t2 - t1) * 1e3)
            pair_ms.append((t2 - t0) * 1e3)
    ops = reserve_ms + settle_ms
    return {"op_p50": statistics.median(ops), "op_p99": _pct(ops, 0.99),
            "pair_p50": statistics.median(pair_ms), "pair_p99": _pct(pair_ms, 0.99),
            "reserve_p99": _pct(reserve_ms, 0.99), "settle_p99": _pct(settle_ms, 0.99)}


async def _with_postgres(run: Callable[[Any], Awaitable[dict[str, float]]]) -> dict[str, float] | None:
    if not _up("127.0.0.1", 5432):
        return None
    import psycopg

    from gatewise.storage.postgres import PostgresCounters

    url = None
    for candidate in PG_URLS:
        try:
            async with await psycopg.AsyncConnection.connect(candidate, connect_timeout=2):
                url = candidate
                break
        except psycopg.Error:
            continue
    if url is None:
        return None
    schema = f"gw_bench_{os.getpid()}"
    store = PostgresCounters(url, schema=schema)
    try:
        return await run(store)
    finally:
        await store.aclose()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _with_redis(run: Callable[[Any], Awaitable[dict[str, float]]],
                      lean: bool) -> dict[str, float] | None:
    if not _up("127.0.0.1", 6379):
        return None
    import redis.asyncio as aioredis

    from gatewise.storage.redis import RedisCounters
    from gatewise.storage.resp import RespClient

    prefix = f"gatewise-bench:{os.getpid()}:"
    store = RedisCounters(REDIS_URL, prefix=prefix, fast=RespClient(REDIS_URL) if lean else None,
                          own_fast=lean)
    try:
        return await run(store)
    finally:
        await store.aclose()
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def main(n: int, warmup: int) -> int:
    results: dict[str, dict[str, float] | None] = {}

    async def run(store: Any) -> dict[str, float]:
        return await _measure(store, n, warmup)

    mem = MemoryCounters()
    results["memory"] = await run(mem)
    with tempfile.TemporaryDirectory() as tmp:
        sq = SQLiteCounters(Path(tmp) / "counters.db")
        results["sqlite"] = await run(sq)
        await sq.aclose()
    # What the gateway runs (the lean RESP client), and redis-py's script path for comparison.
    results["redis"] = await _with_redis(run, lean=True)
    results["redis-py"] = await _with_redis(run, lean=False)
    results["postgres"] = await _with_postgres(run)

    base = results["memory"]
    assert base is not None
    print(f"\nreserve + settle, sequential, {n:,} iterations per backend (after {warmup} warm-up)")
    print(f"{'backend':<10} {'op p50 ms':>10} {'op p99 ms':>10} {'pair p50 ms':>12} "
          f"{'pair p99 ms':>12} {'p50 vs memory':>14}")
    for name, r in results.items():
        if r is None:
            print(f"{name:<10} {'n/a (service not reachable)':>60}")
            continue
        ratio = r["pair_p50"] / base["pair_p50"] if base["pair_p50"] else float("nan")
        print(f"{name:<10} {r['op_p50']:>10.3f} {r['op_p99']:>10.3f} {r['pair_p50']:>12.3f} "
              f"{r['pair_p99']:>12.3f} {ratio:>13.0f}x")
    redis = results["redis"]
    if redis is None:
        print("\nRedis target: not measured")
        return 2
    ok = redis["pair_p99"] <= TARGET_REDIS_P99_MS
    print(f"\nRedis reserve+settle p99 {redis['pair_p99']:.3f} ms (each round trip: reserve "
          f"{redis['reserve_p99']:.3f}, settle {redis['settle_p99']:.3f}); target <= "
          f"{TARGET_REDIS_P99_MS} ms for the pair: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="iterations per backend")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop if installed")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        sys.exit(uvloop.run(main(args.n, args.warmup)))  # what `gatewise serve` runs on
    sys.exit(asyncio.run(main(args.n, args.warmup)))
