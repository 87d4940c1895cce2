"""The budget reservation round trip on our lean RESP client (`storage/resp.py`) against
redis-py's asyncio client with the hiredis parser, same run, same Redis (issue 15).

What is sent is what `storage/redis.py` sends for a budgeted request: EVALSHA of the reserve
script, then EVALSHA of the settle script, on one counter key (own prefix, deleted afterwards).
Two shapes:

- single: one request in flight, reserve then settle, again and again (the latency a request
  pays when the gateway is idle);
- pipelined: 64 requests in flight at once (a loaded gateway): ours pipelines them on its one
  connection as they come; redis-py runs them concurrently on its connection pool (its asyncio
  client has no implicit pipelining) and, as a second figure, batched in explicit
  `pipeline(transaction=False)` calls of 64 (which the gateway could not use: each request's
  reserve happens when that request arrives).

µs per op is wall time / round trips; CPU µs per op is this process's CPU time (user + sys) /
round trips, i.e. the client's cost, the event loop's included (Redis's own CPU is elsewhere).
Each figure is the median of `--rounds` alternating rounds (ours, theirs, ours, ...), so a
noisy neighbour hits both alike.

    .venv/bin/python bench/resp_bench.py             # about 20 s
    .venv/bin/python bench/resp_bench.py -n 2000 --rounds 3 --uvloop

Standalone: never part of the test run. Exit status 2 when Redis is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from report import print_rows

from gatewise.storage.redis import _RESERVE, _SETTLE  # the scripts the store runs
from gatewise.storage.resp import RespClient, Script

REDIS_URL = "redis://127.0.0.1:6379/0"
CONCURRENCY = 64
# A clear win: at least this much cheaper in CPU per op in every shape (else: no switch).
CLEAR_WIN = 0.8

Op = Callable[[str], Awaitable[None]]


def _up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _args(amount: float, limit: float, rid: str) -> list[Any]:
    return [repr(float(amount)), repr(float(limit)), 86_400_000, rid]


class Ours:
    name = "ours (storage/resp.py)"

    def __init__(self) -> None:
        self.client = RespClient(REDIS_URL)
        self.reserve, self.settle = Script(_RESERVE), Script(_SETTLE)

    async def pair(self, key: str) -> None:
        rid = uuid.uuid4().hex
        got = await self.client.run_script(self.reserve, [key], _args(0.05, 1e12, rid))
        assert got is not None
        await self.client.run_script(self.settle, [key], [rid, "0.04"])

    async def batch(self, key: str, n: int) -> None:  # the same as concurrent, for ours
        await asyncio.gather(*(self.pair(key) for _ in range(n)))

    async def aclose(self) -> None:
        await self.client.aclose()


class RedisPy:
    name = "redis-py + hiredis"

    def __init__(self) -> None:
        import redis.asyncio as aioredis
        from redis.utils import HIREDIS_AVAILABLE

        if not HIREDIS_AVAILABLE:
            raise SystemExit("hiredis is not installed: the comparison would not be fair")
        self.client = aioredis.Redis.from_url(REDIS_URL, max_connections=CONCURRENCY + 8)
        self.reserve = self.client.register_script(_RESERVE)
        self.settle = self.client.register_script(_SETTLE)

    async def pair(self, key: str) -> None:
        rid = uuid.uuid4().hex
        got = await self.reserve(keys=[key], args=_args(0.05, 1e12, rid))
        assert got is not None
        await self.settle(keys=[key], args=[rid, "0.04"])

    async def batch(self, key: str, n: int) -> None:
        """Explicit pipelines: n reserves in one, then the n settles in another."""
        rids = [uuid.uuid4().hex for _ in range(n)]
        async with self.client.pipeline(transaction=False) as pipe:
            for rid in rids:
                await self.reserve(keys=[key], args=_args(0.05, 1e12, rid), client=pipe)
            await pipe.execute()
        async with self.client.pipeline(transaction=False) as pipe:
            for rid in rids:
                await self.settle(keys=[key], args=[rid, "0.04"], client=pipe)
            await pipe.execute()

    async def aclose(self) -> None:
        await self.client.aclose()


async def _single(side: Any, key: str, n: int) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        await side.pair(key)
    return time.perf_counter() - w0, time.process_time() - c0


async def _concurrent(side: Any, key: str, n: int) -> tuple[float, float]:
    per = max(1, n // CONCURRENCY)

    async def lane() -> None:
        for _ in range(per):
            await side.pair(key)

    w0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return time.perf_counter() - w0, time.process_time() - c0


async def _batched(side: Any, key: str, n: int) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(max(1, n // CONCURRENCY)):
        await side.batch(key, CONCURRENCY)
    return time.perf_counter() - w0, time.process_time() - c0


SHAPES: dict[str, Callable[[Any, str, int], Awaitable[tuple[float, float]]]] = {
    "single (1 in flight)": _single,
    f"concurrent ({CONCURRENCY} in flight)": _concurrent,
    f"explicit pipeline (batches of {CONCURRENCY})": _batched,
}


async def bench(n: int, rounds: int) -> int:
    prefix = f"gatewise-bench:resp:{os.getpid()}:"
    key = prefix + "c:budget:team:t:day:0:usd"
    sides = [Ours(), RedisPy()]
    # Round trips per measured call of a shape: single and concurrent run n pairs (2n round
    # trips; concurrent rounds n down to a multiple of 64); batched runs n pairs too.
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for side in sides:  # warm-up: connections, script cache, code paths
            await _single(side, key, 200)
            await _concurrent(side, key, 4 * CONCURRENCY)
            await _batched(side, key, 2 * CONCURRENCY)
        for r in range(rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for shape, fn in SHAPES.items():
                for side in order:
                    wall, cpu = await fn(side, key, n)
                    ops = 2 * (n if shape.startswith("single") else
                               max(1, n // CONCURRENCY) * CONCURRENCY)
                    results.setdefault((shape, side.name), []).append(
                        (wall * 1e6 / ops, cpu * 1e6 / ops))
    finally:
        for side in sides:
            await side.aclose()
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        r.delete(key)
        r.close()

    head = ("shape", "client", "µs/op", "CPU µs/op", "CPU vs redis-py")
    rows: list[tuple[str, ...]] = []
    ours_wins = True
    for shape in SHAPES:
        theirs_cpu = statistics.median(c for _, c in results[(shape, RedisPy.name)])
        for side in sides:
            got = results[(shape, side.name)]
            wall = statistics.median(w for w, _ in got)
            cpu = statistics.median(c for _, c in got)
            rows.append((shape, side.name, f"{wall:.1f}", f"{cpu:.1f}",
                         f"{cpu / theirs_cpu:.2f}x"))
            if side.name == Ours.name and cpu > CLEAR_WIN * theirs_cpu:
                ours_wins = False
    print_rows(head, rows)
    print(f"\nop = one EVALSHA round trip (reserve or settle); {n} reserve+settle pairs per "
          f"shape and client, median of {rounds} alternating rounds; "
          f"loop: {type(asyncio.get_running_loop()).__module__}")
    verdict = ("ours clearly wins (CPU <= {:.0%} of redis-py's in every shape): keep it"
               if ours_wins else "ours does not clearly win in every shape")
    print(verdict.format(CLEAR_WIN))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=3000, help="reserve+settle pairs per measurement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop (as the server does)")
    a = ap.parse_args()
    if not _up():
        print("resp_bench: Redis 127.0.0.1:6379 is not reachable", file=sys.stderr)
        return 2
    if a.uvloop:
        import uvloop

        return uvloop.run(bench(a.n, a.rounds))
    return asyncio.run(bench(a.n, a.rounds))


if __name__ == "__main__":
    sys.exit(main())
