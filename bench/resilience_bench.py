"""Resilience costs and behaviour: what retries and breakers add, and what they save.

1. Per-request overhead of `RetryMiddleware` + `BreakerMiddleware` on the success path, in
   µs: the same calls through `[Retry, Breaker] → terminal` minus `terminal` alone (memory
   breakers; and Redis-shared breakers when Redis is up at 127.0.0.1:6379).
2. `available()` cost (the router calls it for every candidate of every request): memory
   breakers closed/open, and the Redis board's local view.
3. After a breaker opens, where the next requests go: the real chain
   `Fallback → Router → Retry → Breaker → ProviderCall` on in-process `fake/` providers,
   alias `primary` (always 500) falling back to `backup`. Counted: attempts on the broken
   deployment before it opened, and after (should be 0); with Redis, the same when the
   breaker was opened by another replica (a second board on the same prefix).
4. Retry amplification in a sustained outage: upstream attempts per request with the budget.

    .venv/bin/python bench/resilience_bench.py            # about 10-20 s
    .venv/bin/python bench/resilience_bench.py --quick    # about 5 s

Standalone: no network except the optional local Redis; never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import time
from typing import Any

from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.config.schema import BreakerConfig, RouterConfig
from gatewise.errors import GatewayError
from gatewise.pipeline.core import Call, Handler, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.providers.pool import ProviderPool
from gatewise.resilience.breaker import Breakers, MemoryBreakers
from gatewise.resilience.breaker_middleware import BreakerMiddleware
from gatewise.resilience.fallback import FallbackMiddleware
from gatewise.resilience.retry_middleware import RetryMiddleware
from gatewise.routing.middleware import RouterMiddleware
from gatewise.routing.router import Router
from gatewise.types.validation import chat_request_from_dict

REDIS_URL = "redis://127.0.0.1:6379/0"
ROWS: list[tuple[str, str, str]] = []


def row(name: str, value: str, note: str = "") -> None:
    ROWS.append((name, value, note))
    print(f"  {name:<62} {value:>12}  {note}", flush=True)


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.3) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def resolved(config: dict[str, Any]) -> ResolvedConfig:
    cfg, warnings = parse_config(config)
    return resolve_config(cfg, None, {}, warnings)


# -- 1. overhead on the success path --------------------------------------------------------------

async def overhead(n: int, breakers: Breakers, label: str, model: str) -> None:
    """The terminal yields to the loop once, like any real upstream call, so the loop's own
    bookkeeping (e.g. cancelled timers) is paid as in production."""
    rc = RouterConfig()
    res = resolved({"models": {"chat": [{"model": model, "api_base": "http://127.0.0.1:9",
                                         "api_key": "sk-x"}]}})
    dep = res.aliases["chat"][0]
    req = chat_request_from_dict({"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    marker = object()

    async def terminal(call: Call) -> object:
        await asyncio.sleep(0)
        return marker

    bare: Handler = terminal
    retry_only = build_chain([RetryMiddleware(rc)], terminal)
    both = build_chain([RetryMiddleware(rc, available=breakers.available),
                        BreakerMiddleware(breakers)], terminal)

    async def run(handler: Handler) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            call = Call("chat", req, request_id="r")
            call.deployment = dep
            await handler(call)
        return (time.perf_counter() - t0) / n * 1e6

    for h in (bare, retry_only, both):  # warm up
        await run(h)
    base: list[float] = []
    r: list[float] = []
    rb: list[float] = []
    for _ in range(5):  # interleaved rounds, medians: the machine is shared
        base.append(await run(bare))
        r.append(await run(retry_only))
        rb.append(await run(both))
    b0, r0, rb0 = sorted(base)[2], sorted(r)[2], sorted(rb)[2]
    row(f"overhead: Retry, {label}", f"{r0 - b0:.2f} µs", f"baseline {b0:.2f} µs")
    row(f"overhead: Retry + Breaker, {label}", f"{rb0 - b0:.2f} µs")


def available_cost(n: int, breakers: Breakers, dep_id: str, label: str) -> None:
    avail = breakers.available
    t0 = time.perf_counter()
    for _ in range(n):
        avail(dep_id)
    t1 = time.perf_counter()
    for _ in range(n):
        pass
    t2 = time.perf_counter()
    row(f"available() {label}", f"{((t1 - t0) - (t2 - t1)) / n * 1e9:.0f} ns")


# -- 3. after the breaker opens ------------------------------------------------------------------

class CountAttempts:
    """Innermost: counts attempts that reached the provider, per deployment."""

    def __init__(self) -> None:
        self.by_dep: dict[str, int] = {}

    async def __call__(self, call: Call, next: Handler) -> Any:
        assert call.deployment is not None
        d = call.deployment.id
        self.by_dep[d] = self.by_dep.get(d, 0) + 1
        return await next(call)


async def after_open(requests: int, breakers: Breakers, label: str,
                     opener: Breakers | None = None) -> None:
    res = resolved({
        "models": {"primary": [{"model": "fake/fail-500"}], "backup": [{"model": "fake/echo"}]},
        "router": {"fallbacks": {"primary": ["backup"]},
                   "retry": {"max_retries": 2, "base_delay_s": 0.0005, "max_delay_s": 0.002},
                   "breaker": {"failure_threshold": 5, "open_s": 60.0}},
    })
    rc = res.config.router
    broken = res.aliases["primary"][0].id
    count = CountAttempts()
    pool = ProviderPool(None)
    router = Router(res, seed=1, available=lambda d: breakers.available(d.id))
    chain = build_chain([FallbackMiddleware(rc), RouterMiddleware(router),
                         RetryMiddleware(rc, available=breakers.available, rng=random.Random(1)),
                         BreakerMiddleware(breakers), count], ProviderCall(pool))
    req = chat_request_from_dict({"model": "primary",
                                  "messages": [{"role": "user", "content": "x"}]})
    served: dict[str, int] = {}
    before = 0
    if opener is not None:  # another replica saw the failures and opened it
        for _ in range(5):
            await opener.record_failure(broken, "ProviderServerError")
        t0 = time.perf_counter()
        for _ in range(4000):  # poll the synchronous view, as the router would
            if not breakers.available(broken):
                break
            await asyncio.sleep(0.0005)
        row(f"open seen by the other replica after ({label})",
            f"{(time.perf_counter() - t0) * 1000:.1f} ms", "pub/sub")
    opened_at: int | None = None
    for i in range(requests):
        call = Call("chat", req)
        try:
            await chain(call)
            key = call.deployment.id if call.deployment else "?"
        except GatewayError as exc:
            key = type(exc).__name__
        served[key] = served.get(key, 0) + 1
        if opened_at is None and not breakers.available(broken):
            opened_at = i
            before = count.by_dep.get(broken, 0)
    after = count.by_dep.get(broken, 0) - before
    row(f"attempts on broken deployment before it opened ({label})", str(before),
        f"opened during request #{(opened_at or 0) + 1}")
    row(f"attempts on broken deployment after it opened ({label})", str(after),
        f"of {requests - (opened_at or 0) - 1} later requests")
    row(f"requests served by the fallback ({label})", str(served.get(res.aliases['backup'][0].id, 0)),
        f"of {requests}; errors: {sum(v for k, v in served.items() if 'Error' in k)}")
    await pool.aclose()


# -- 4. amplification in an outage --------------------------------------------------------------

async def amplification(requests: int) -> None:
    res = resolved({"models": {"down": [{"model": "fake/fail-500"}]},
                    "router": {"retry": {"max_retries": 2, "base_delay_s": 0.0,
                                         "max_delay_s": 0.0}}})
    rc = res.config.router
    count = CountAttempts()
    pool = ProviderPool(None)
    chain = build_chain([RouterMiddleware(Router(res, seed=1)), RetryMiddleware(rc), count],
                        ProviderCall(pool))
    req = chat_request_from_dict({"model": "down", "messages": [{"role": "user", "content": "x"}]})
    for _ in range(requests):
        with contextlib.suppress(GatewayError):
            await chain(Call("chat", req))
    sent = sum(count.by_dep.values())
    row("outage: upstream attempts per request (max_retries=2, budget 20 %)",
        f"{sent / requests:.3f}", f"{sent} attempts for {requests} requests; no budget: 3.000")
    await pool.aclose()


async def main(quick: bool) -> None:
    n = 3_000 if quick else 10_000
    print("resilience bench (µs = microseconds per request; medians of 5 interleaved rounds; "
          f"loop: {type(asyncio.get_running_loop()).__module__})")
    mem = MemoryBreakers(BreakerConfig())
    await overhead(n, mem, "memory breakers, HTTP deployment", "openai/gpt-4o-mini")
    await overhead(n, mem, "memory breakers, in-process (deadline timer)", "fake/echo")
    rb = None
    if redis_up():
        from gatewise.resilience.breaker_redis import RedisBreakers

        prefix = f"gatewise-bench:{os.getpid()}:"
        rb = RedisBreakers(BreakerConfig(store="redis"), REDIS_URL, prefix=prefix)
        async with asyncio.timeout(5):
            await rb.wait_ready()
        await overhead(n, rb, "redis breakers, HTTP deployment", "openai/gpt-4o-mini")
    else:
        row("overhead with redis breakers", "n/a", "no Redis at 127.0.0.1:6379")

    opened = MemoryBreakers(BreakerConfig(failure_threshold=1))
    await opened.record_failure("d", "ProviderServerError")
    available_cost(n * 20, mem, "d", "memory, closed")
    available_cost(n * 20, opened, "d", "memory, open")
    if rb is not None:
        await rb.record_failure("d-open", "ProviderServerError")
        available_cost(n * 20, rb, "d", "redis view, closed")
        t0 = time.perf_counter()
        for _ in range(200):
            await rb.record_failure("d-timing", "ProviderServerError")
        row("redis record_failure (one Lua round trip, failure path only)",
            f"{(time.perf_counter() - t0) / 200 * 1e6:.0f} µs")

    await after_open(100, MemoryBreakers(BreakerConfig(failure_threshold=5, open_s=60.0)),
                     "memory")
    if rb is not None:
        from gatewise.resilience.breaker_redis import RedisBreakers

        cfg = BreakerConfig(store="redis", failure_threshold=5, open_s=60.0)
        p2 = f"gatewise-bench:{os.getpid()}:shared:"
        a, b = RedisBreakers(cfg, REDIS_URL, prefix=p2), RedisBreakers(cfg, REDIS_URL, prefix=p2)
        async with asyncio.timeout(5):
            await a.wait_ready()
            await b.wait_ready()
        await after_open(100, b, "redis, opened by another replica", opener=a)
        await a.aclose()
        await b.aclose()
        await rb.aclose()
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"gatewise-bench:{os.getpid()}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    await amplification(300 if quick else 1000)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--uvloop", action="store_true", help="the loop `gatewise serve` uses")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.uvloop:
        import uvloop

        uvloop.run(main(args.quick))
    else:
        asyncio.run(main(args.quick))
    print(f"done in {time.perf_counter() - t0:.1f} s")
