"""Publish→receive latency of the cross-replica broadcast (issue 12): PostgreSQL LISTEN/NOTIFY
(`PostgresPubSub`) next to Redis pub/sub (`RedisPubSub`), same run, both on 127.0.0.1.

Two instances per backend, as two replicas would be: one publishes, the other's subscription
hears. One message in flight at a time (the message carries its send time), so each figure is
the latency an invalidation takes to land, not a throughput. Messages are near-cache shaped
(`k <key>`, about 100 bytes). Before this change a replica on PostgreSQL without Redis had no
broadcast at all: another replica's near copy lived on for up to `cache.near_ttl_s`.

    .venv/bin/python bench/pubsub_bench.py            # 200 messages per backend, a few seconds
    .venv/bin/python bench/pubsub_bench.py -n 1000 --only postgres

Standalone: never part of the test run. A backend that is not reachable is reported, not
measured; exit status 2 when none was.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

from report import print_rows

from gatewise.storage.base import PubSub

PG_URL = os.environ.get("GW_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WARMUP = 20


def _pair(backend: str) -> tuple[PubSub, PubSub]:
    if backend == "postgres":
        from gatewise.storage.pubsub_postgres import PostgresPubSub

        return PostgresPubSub(PG_URL), PostgresPubSub(PG_URL)
    from gatewise.storage.pubsub import RedisPubSub

    return RedisPubSub(REDIS_URL), RedisPubSub(REDIS_URL)


async def measure(backend: str, n: int) -> list[float]:
    """Latencies in ms of `n` messages, one in flight at a time, after `WARMUP` unmeasured."""
    pub, sub_side = _pair(backend)
    channel = f"gw-bench:pubsub:{os.getpid()}"
    arrived: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

    def on_message(message: str) -> None:
        *_, seq, sent = message.split()
        arrived.put_nowait((int(seq), time.perf_counter_ns() - int(sent)))

    sub = sub_side.subscribe(channel, on_message)
    try:
        async with asyncio.timeout(5.0):
            await sub.wait_ready()
        key = "gatewise:cache:default/team:red:gpt:" + "a" * 64
        out: list[float] = []
        for i in range(WARMUP + n):
            await pub.publish(channel, f"k {key} {i} {time.perf_counter_ns()}")
            async with asyncio.timeout(5.0):
                seq, took = await arrived.get()
            assert seq == i, (seq, i)
            if i >= WARMUP:
                out.append(took / 1e6)
        return out
    finally:
        await sub.aclose()
        await pub.aclose()
        await sub_side.aclose()


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="messages per backend (default 200)")
    ap.add_argument("--only", choices=("postgres", "redis"))
    args = ap.parse_args(argv)
    rows: list[tuple[str, ...]] = []
    measured = 0
    for backend in ("postgres", "redis"):
        if args.only and backend != args.only:
            continue
        try:
            async with asyncio.timeout(60.0):
                ms = await measure(backend, args.n)
        except Exception as exc:  # unreachable backend: say so, measure the other
            rows.append((backend, "-", "-", "-", "-", f"not measured: {type(exc).__name__}"))
            continue
        measured += 1
        rows.append((backend, str(len(ms)), f"{statistics.median(ms):.3f}",
                     f"{_pct(ms, 99):.3f}", f"{max(ms):.3f}", ""))
    head: tuple[str, ...] = ("backend", "messages", "p50 ms", "p99 ms", "max ms", "note")
    print_rows(head, rows)
    return 0 if measured else 2


if __name__ == "__main__":
    result: Any = asyncio.run(main(sys.argv[1:]))
    sys.exit(result)
