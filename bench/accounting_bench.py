"""What accounting and governance add to every request, in CPU per call.

Three gateways answer the same chat through the in-process fake model (so only gatewise's
own work is measured), in interleaved rounds:

- baseline: `accounting.enabled: false` (no ledger, no cost, no budgets);
- ledger: the default — cost from the price table, one usage record per request written to
  the write-ahead journal and flushed to SQLite in batches;
- governed: a virtual key's identity with a team, a per-key RPM/TPM limit and a team budget,
  so access control, the sliding windows and a reserve/settle per request run too (memory
  counters: the store round trip is what `budget_bench.py` measures).

Target (issue 4): the ledger and accounting add ≤ 0.1 ms CPU per request.

    .venv/bin/python bench/accounting_bench.py [--calls 3000]

Prints one table; exit status 0 when the target is met. Never part of the test run.
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
from gatewise.pipeline.core import Identity

TARGET_US = 100.0


def _gateway(state: str, *, enabled: bool, budgets: bool = False) -> Gateway:
    data: dict[str, Any] = {
        "models": {"m": [{"model": "fake/echo", "prices": {"input": 0.15, "output": 0.6}}]},
        "storage": {"state_dir": state, "counters": "memory"},
        "accounting": {"enabled": enabled},
    }
    if budgets:
        data["accounting"]["budgets"] = [{"scope": "team", "subject": "*", "period": "month",
                                          "limit_usd": 1e9}]
    cfg, warnings = parse_config(data)
    return Gateway(resolve_config(cfg, None, {}, warnings))


async def _round(gw: Gateway, n: int, identity: Identity) -> float:
    messages = [{"role": "user", "content": "Write a title for: fix the login timeout on mobile"}]
    start = time.process_time()
    for _ in range(n):
        await gw.chat(model="m", messages=messages, identity=identity, max_tokens=64)
    return (time.process_time() - start) / n * 1e6


async def main(calls: int, rounds: int) -> int:
    ident = Identity(tenant="t1", key_id="k1", team="t1", role="member",
                     permissions=frozenset({"llm:generate"}), rpm=10**9, tpm=10**12)
    with tempfile.TemporaryDirectory() as tmp:
        gws = {"baseline": _gateway(f"{tmp}/a", enabled=False),
               "ledger": _gateway(f"{tmp}/b", enabled=True),
               "governed": _gateway(f"{tmp}/c", enabled=True, budgets=True)}
        idents = {"baseline": Identity(), "ledger": Identity(), "governed": ident}
        for name, gw in gws.items():  # warm up: journal, SQLite, tokenizer, price cache
            await _round(gw, 200, idents[name])
        best: dict[str, float] = {k: float("inf") for k in gws}
        for _ in range(rounds):
            for name, gw in gws.items():
                best[name] = min(best[name], await _round(gw, calls, idents[name]))
        for gw in gws.values():
            await gw.aclose()
    base = best["baseline"]
    print(f"{'configuration':<12} {'CPU µs/call':>12} {'added µs':>10} {'ratio':>7}  target")
    missed = False
    for name, us in best.items():
        added = us - base
        ok = name == "baseline" or added <= TARGET_US
        missed |= not ok
        target = "-" if name == "baseline" else f"≤ {TARGET_US:.0f} µs {'PASS' if ok else 'FAIL'}"
        print(f"{name:<12} {us:>12.1f} {added:>10.1f} {us / base:>6.2f}x  {target}")
    return 1 if missed else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    sys.exit(asyncio.run(main(a.calls, a.rounds)))
