"""What the quality stage adds to every request, in CPU µs per call.

Gateways answer the same chat through the in-process fake model (so only gatewise's own work
is measured), in interleaved rounds, best round kept (a shared VM's neighbours only ever add
time). `process_time` covers every thread, and each round ends with the recorder's flush, so
the SQLite writer thread's share of the batched quality rows is counted:

- off: `quality.enabled: false` (no stage in the chain), measured twice (`off`, `off again`)
  so the table shows what noise looks like;
- on: the default (validity, groundedness, toxicity; rows batched into `quality.db`);
- on, json+ctx: on, with a request that makes every cheap score apply (a JSON-schema answer
  checked against its schema, supplied context for groundedness, toxicity);
- on, judge 0: on with `judge_sample_rate: 0` explicitly (the default; same as `on`).

    .venv/bin/python bench/quality_bench.py [--calls 1500] [--rounds 5]

Prints one table. Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config

PLAIN = [{"role": "user", "content": "Write a title for: fix the login timeout on mobile"}]
RICH = [{"role": "system", "name": "context",
         "content": "The login timeout on mobile is 30 seconds. Users on slow networks are "
                    "logged out before the token refresh completes."},
        {"role": "user", "content": "Write a title for: fix the login timeout on mobile"}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "title", "schema": {
    "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}}}


def _gateway(state: str, quality: dict[str, Any]) -> Gateway:
    cfg, warnings = parse_config({
        "models": {"m": [{"model": "fake/echo", "prices": {"input": 0.15, "output": 0.6}}]},
        "storage": {"state_dir": state, "counters": "memory"}, "quality": quality})
    return Gateway(resolve_config(cfg, None, {}, warnings))


async def _round(gw: Gateway, n: int, stream: bool, rich: bool) -> float:
    messages = RICH if rich else PLAIN
    extra: dict[str, Any] = {"response_format": SCHEMA} if rich else {}
    start = time.process_time()
    for _ in range(n):
        if stream:
            async for _c in gw.stream(model="m", messages=messages, max_tokens=64, **extra):
                pass
        else:
            await gw.chat(model="m", messages=messages, max_tokens=64, temperature=0.2, **extra)
    await gw.quality.flush()
    return (time.process_time() - start) / n * 1e6


async def main(calls: int, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        gws = {"off": (_gateway(f"{tmp}/a", {"enabled": False}), False),
               "off again": (_gateway(f"{tmp}/b", {"enabled": False}), False),
               "on": (_gateway(f"{tmp}/c", {}), False),
               "on, judge 0": (_gateway(f"{tmp}/d", {"judge_sample_rate": 0.0}), False),
               "off, json+ctx": (_gateway(f"{tmp}/e", {"enabled": False}), True),
               "on, json+ctx": (_gateway(f"{tmp}/f", {}), True)}
        results: dict[str, dict[str, float]] = {}
        for stream in (False, True):
            kind = "stream" if stream else "chat"
            for gw, rich in gws.values():  # warm up: tokenizer, price cache, schema, files
                await _round(gw, 200, stream, rich)
            best = {k: float("inf") for k in gws}
            for r in range(rounds):
                order = list(gws.items())
                order = order[r % len(order):] + order[:r % len(order)]  # rotate who goes first
                for name, (gw, rich) in order:
                    best[name] = min(best[name], await _round(gw, calls, stream, rich))
            results[kind] = best
        rows = 0
        for gw, _ in gws.values():
            rows += len(await gw.quality.store.query(_all()))
        for gw, _ in gws.values():
            await gw.aclose()
    if rows == 0:
        print("no quality rows were written: the 'on' rows measured nothing")
        return 2
    print(f"{'request':<7} {'configuration':<14} {'CPU µs/call':>12} {'added µs':>9}")
    for kind, best in results.items():
        for name, us in best.items():
            base = best["off, json+ctx" if "json" in name else "off"]
            print(f"{kind:<7} {name:<14} {us:>12.1f} {us - base:>+9.1f}")
    return 0


def _all() -> Any:
    from gatewise.storage.quality import QualityFilter

    return QualityFilter()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    t0 = time.monotonic()
    status = asyncio.run(main(a.calls, a.rounds))
    print(f"({time.monotonic() - t0:.0f} s)")
    sys.exit(status)
