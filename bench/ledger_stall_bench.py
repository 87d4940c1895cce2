"""The usage ledger's commit stall: how long each PostgreSQL batch commit holds the event loop.

A gateway under load records one usage record per request and commits them every `batch`
(256) records or `flush_s` (0.5 s). Whatever part of that commit runs on the event loop (building
the batch, encoding it, the driver's own work) is time every request in flight waits out: it
shows up in every path's p99, not in its mean. This bench runs the real `UsageLedger` (journal
on disk, `PostgresLedger` on 127.0.0.1:5432/test in a fresh schema dropped afterwards, or
`--store sqlite`, the single-node default) on uvloop,
feeds it records at a steady rate, and reports the thread CPU of each stretch a flush runs on
the loop between two awaits (the stall itself: robust to other load on the machine) and how late
a probe timer ticking every 1 ms fires (loop lag: what a request sees, noise included).

    .venv/bin/python bench/ledger_stall_bench.py [--seconds 4] [--rate 3000]

For a before/after in the same run, alternate it with a base tree on PYTHONPATH
(`PYTHONPATH=/tmp/base/src .venv/bin/python bench/ledger_stall_bench.py`). Prints one line of
figures; standalone, never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Generator
from typing import Any

from gatewise.accounting.journal import Journal
from gatewise.accounting.ledger import UsageLedger
from gatewise.storage.base import UsageRecord
from gatewise.storage.postgres import PostgresLedger
from gatewise.storage.sqlite import SQLiteLedger

PG = os.environ.get("GW_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TICK_S = 0.001  # uvloop's timers have millisecond resolution


def _record(i: int, now: float) -> UsageRecord:
    return UsageRecord(request_id=f"req-{uuid.uuid4().hex}", ts=now, tenant="bench-team",
                       alias="fake", deployment="chat:openai/fake", outcome="success",
                       prompt_tokens=20 + i % 7, completion_tokens=9, cost_usd=0.0000038,
                       latency_ms=1.25, key_id="0123456789ab", team="bench-team",
                       extra={"usage": "counted"} if i % 50 == 0 else {})


async def run(seconds: float, rate: float, backend: str) -> dict[str, float]:
    schema = f"gw_stall_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        store: PostgresLedger | SQLiteLedger = (
            PostgresLedger(PG, schema=schema) if backend == "postgres"
            else SQLiteLedger(f"{tmp}/usage.db"))
        ledger = UsageLedger(store, Journal(tmp), batch=256, flush_s=0.5)
        await store.append([_record(0, time.time())])  # connect and create the table first
        steps: list[float] = []  # thread CPU of each synchronous stretch of a flush
        flushes: list[float] = []  # thread CPU of each flush on the loop, all stretches
        real_flush = ledger.flush

        async def timed_flush() -> int:
            before = len(steps)
            try:
                return await _Stepped(real_flush(), steps)
            finally:
                flushes.append(sum(steps[before:]))

        ledger._flusher._flush = timed_flush  # the bench's own wrapper around the real flush
        ledger.start()
        lags: list[float] = []
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds

        async def probe() -> None:
            while loop.time() < stop:
                t0 = time.perf_counter()
                await asyncio.sleep(TICK_S)
                lags.append(time.perf_counter() - t0 - TICK_S)

        async def feed() -> None:
            i, t0 = 0, loop.time()
            while loop.time() < stop:
                due = int((loop.time() - t0) * rate)
                now = time.time()
                while i < due:
                    ledger.record(_record(i, now))
                    i += 1
                await asyncio.sleep(0.001)

        cpu0 = time.process_time()
        await asyncio.gather(probe(), feed())
        cpu = time.process_time() - cpu0
        await ledger.aclose()
        stored = len(await store.query(tenant="bench-team", limit=10_000_000))
        if backend == "postgres":
            import psycopg

            with contextlib.suppress(psycopg.Error):
                async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await store.aclose()
    lags.sort()
    q = statistics.quantiles(lags, n=1000)
    real = [f for f in flushes if f > 0.00002]
    return {"flushes": len(real),
            "flush_cpu_on_loop_ms_median": statistics.median(real) * 1e3 if real else 0.0,
            "longest_stretch_ms": max(steps, default=0.0) * 1e3,
            "lag_p50_ms": q[499] * 1e3, "lag_p99_ms": q[989] * 1e3,
            "lag_p999_ms": q[998] * 1e3, "lag_max_ms": lags[-1] * 1e3,
            "process_cpu_s": cpu, "stored": stored}


class _Stepped:
    """Drives a coroutine the way the event loop would, timing the thread CPU of each step
    (each stretch it runs on the loop between two awaits): what a request in flight waits
    out, measured without the noise of other processes on a loaded machine."""

    def __init__(self, coro: Any, steps: list[float]) -> None:
        self.coro, self.steps = coro, steps

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            t0 = time.thread_time()
            try:
                got = self.coro.send(value) if error is None else self.coro.throw(error)
            except StopIteration as done:
                self.steps.append(time.thread_time() - t0)
                return done.value
            self.steps.append(time.thread_time() - t0)
            try:
                value, error = (yield got), None
            except BaseException as exc:  # cancellation, handed to the coroutine
                value, error = None, exc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rate", type=float, default=3000.0, help="records per second")
    ap.add_argument("--store", choices=("postgres", "sqlite"), default="postgres",
                    help="the ledger's database (sqlite: a file in a temporary directory)")
    a = ap.parse_args()
    try:
        import uvloop
    except ImportError:
        got = asyncio.run(run(a.seconds, a.rate, a.store))
    else:
        got = uvloop.run(run(a.seconds, a.rate, a.store))
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in got.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
