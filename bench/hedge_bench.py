"""Hedged requests against a slow tail: p50/p99 with and without `HedgeMiddleware`.

An in-process provider answers in 5 ms, except 5 % of calls (seeded) that take 200 ms: the
classic tail a hedge is for. Two deployments of one alias share that behaviour independently.
The same seeded request stream runs through the real chain (telemetry → router → [hedge] →
provider call) without hedging and with `hedge_after_s` = 20 ms, at a fixed concurrency.
Also printed: the extra load hedging added, and the hedge middleware's own cost per call on the
fast path (no hedge fired), measured against the same chain without it.

    .venv/bin/python bench/hedge_bench.py            # about 15 s
    .venv/bin/python bench/hedge_bench.py --quick    # about 5 s

Standalone: no network, no other process; never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from gatewise.config.loader import parse_config, resolve_config
from gatewise.observability.metrics import GatewayMetrics
from gatewise.observability.telemetry import TelemetryMiddleware
from gatewise.pipeline.core import Call, Handler, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.providers.base import Capabilities, Target
from gatewise.providers.pool import ProviderPool
from gatewise.resilience.hedge import HedgeMiddleware
from gatewise.routing.middleware import RouterMiddleware
from gatewise.routing.router import Router
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage
from gatewise.types.validation import chat_request_from_dict

FAST_S, SLOW_S, SLOW_SHARE = 0.005, 0.200, 0.05
HEDGE_AFTER_S = 0.020


class TailProvider:
    """Answers after FAST_S, or SLOW_S for a seeded SLOW_SHARE of calls."""

    def __init__(self, seed: int, fast_s: float = FAST_S, slow_share: float = SLOW_SHARE) -> None:
        self.rng = random.Random(seed)
        self.fast_s = fast_s
        self.slow_share = slow_share
        self.calls = 0

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        self.calls += 1
        slow = self.rng.random() < self.slow_share
        delay = SLOW_S if slow else self.fast_s
        if delay:
            await asyncio.sleep(delay)
        return ChatCompletion(choices=[Choice(message=ResponseMessage(content="ok"),
                                              finish_reason="stop")],
                              usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))

    def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def embed(self, req: Any, target: Target) -> Any:
        raise NotImplementedError

    async def validate_key(self, target: Target) -> None:
        return None

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities()

    async def aclose(self) -> None:
        return None


def make_chain(hedge_after: float | None, seed: int, fast_s: float = FAST_S,
               slow_share: float = SLOW_SHARE,
               ) -> tuple[Handler, TailProvider, HedgeMiddleware | None]:
    cfg, w = parse_config({"models": {"m": [{"model": "fake/a"}, {"model": "fake/b"}]}})
    resolved = resolve_config(cfg, None, {}, w)
    router = Router(resolved, seed=seed)
    pool = ProviderPool()
    provider = TailProvider(seed, fast_s, slow_share)
    pool.register("fake", provider)
    hedge = HedgeMiddleware(router, hedge_after, budget_ratio=0.2) if hedge_after else None
    mws: list[Any] = [TelemetryMiddleware(GatewayMetrics()), RouterMiddleware(router),
                      hedge if hedge is not None else passthrough]
    return build_chain(mws, ProviderCall(pool)), provider, hedge


async def passthrough(call: Call, next: Handler) -> Any:
    """The no-hedge chain keeps a layer in the hedge's place, so the difference is the hedge's
    own work, not the cost of one more link in the chain."""
    return await next(call)


REQ = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


async def run_load(chain: Handler, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            t0 = time.perf_counter()
            await chain(Call("chat", REQ))
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def overhead_us(n: int, rounds: int = 7) -> tuple[float, float]:
    """CPU µs per call of the bare chain vs the chain with a hedge that never fires (an
    instant provider with no tail, so the figure is the gateway's own work). Rounds alternate
    between the two and the best of each is kept, so a busy neighbour skews both alike."""
    chains = [make_chain(after, seed=1, fast_s=0.0, slow_share=0.0)[0] for after in (None, 10.0)]
    best = [float("inf"), float("inf")]
    for chain in chains:
        for _ in range(500):
            await chain(Call("chat", REQ))
    for _ in range(rounds):
        for i, chain in enumerate(chains):
            t0 = time.process_time()
            for _ in range(n):
                await chain(Call("chat", REQ))
            best[i] = min(best[i], (time.process_time() - t0) / n * 1e6)
    return best[0], best[1]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    n = args.requests or (1000 if args.quick else 3000)
    print(f"slow tail: {SLOW_SHARE:.0%} of calls take {SLOW_S * 1000:.0f} ms, others "
          f"{FAST_S * 1000:.0f} ms; {n} requests at concurrency {args.concurrency}; "
          f"hedge after {HEDGE_AFTER_S * 1000:.0f} ms\n")
    rows = []
    for label, after in (("no hedging", None), ("hedging", HEDGE_AFTER_S)):
        chain, provider, hedge = make_chain(after, seed=42)
        t0 = time.perf_counter()
        lat = await run_load(chain, n, args.concurrency)
        wall = time.perf_counter() - t0
        extra = (provider.calls - n) / n
        won = hedge.counter.get(("won",)) if hedge else 0
        rows.append((label, pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 99.9),
                     statistics.fmean(lat), extra, won, wall))
    print(f"{'':<12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'mean ms':>9}"
          f"{'extra load':>12}{'hedges won':>12}{'wall s':>8}")
    for label, p50, p90, p99, p999, mean, extra, won, wall in rows:
        print(f"{label:<12}{p50 * 1e3:>9.1f}{p90 * 1e3:>9.1f}{p99 * 1e3:>9.1f}{p999 * 1e3:>10.1f}"
              f"{mean * 1e3:>9.1f}{extra:>11.1%}{won:>12.0f}{wall:>8.1f}")
    base, hedged = rows[0], rows[1]
    print(f"\np99 ratio (hedging / none): {hedged[3] / base[3]:.2f}   "
          f"mean ratio: {hedged[5] / base[5]:.2f}")
    bare, with_hedge = await overhead_us(2000 if args.quick else 5000)
    print(f"fast-path cost: chain {bare:.1f} µs/call, with hedge {with_hedge:.1f} µs/call "
          f"(+{with_hedge - bare:.1f} µs)")
    ok = hedged[3] < base[3] / 2
    print("target: hedging cuts p99 by half or more:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
