"""Routing decision cost: what choosing an alias and a deployment adds to every request.

1. Decision time per strategy with 1, 4 and 16 deployments behind the alias: needs of the
   request + alias resolution + `choose` (config problems, capabilities, breaker hook,
   cool-downs, strategy), on a tracker holding realistic state. Targets: ≤ 50 µs for the
   rule, weighted and latency strategies.
2. The same with 8 routing rules (the last one matches) and with a tools request, which makes
   the router consult (cached) capabilities.
3. The complexity scorer on 1 KB and 8 KB prompts (target ≤ 1 ms), and `model: auto` end to
   end (scoring + choice).
4. Per-call cost of `RouterMiddleware` + `TrackingMiddleware` around a terminal that answers
   at once, minus the terminal alone.

    .venv/bin/python bench/routing_bench.py            # about 10-20 s
    .venv/bin/python bench/routing_bench.py --quick    # a few seconds

Prints one table; exit status 0 when every target is met, 1 otherwise. Standalone: no network,
never part of the test run. Times are the best of several repeats (a shared 2-core VM's
neighbours only ever add time), in microseconds per decision.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.pipeline.core import Call, build_chain
from gatewise.providers.base import Capabilities
from gatewise.providers.deployment import Deployment
from gatewise.routing.complexity import ComplexityScorer
from gatewise.routing.middleware import RouterMiddleware
from gatewise.routing.router import Router
from gatewise.routing.tracking import TrackingMiddleware
from gatewise.types.validation import chat_request_from_dict

TARGET_DECISION_US = 50.0
TARGET_SCORER_US = 1000.0
STRATEGIES = ("weighted", "least_in_flight", "latency", "cost", "usage")
SIZES = (1, 4, 16)
ROWS: list[tuple[str, str, str, str]] = []
MISSED: list[str] = []

PROMPT = ("Our Java service crashes with a NullPointerException in CartService.total. Explain "
          "the root cause, propose a fix, then write a JUnit test that reproduces it. ")
CODE = "```python\ndef merge(a, b):\n    out = []\n    for x in a:\n        out.append(x)\n```\n"


def _config(n: int, strategy: str, rules: int = 0) -> ResolvedConfig:
    deps = [{"model": f"openai/model-{i}", "api_key": "k", "id": f"d{i}", "weight": 1 + i % 3,
             "rpm": 10_000, "tpm": 10_000_000, "prices": {"input": 0.1 * (i + 1), "output": 1.0}}
            for i in range(n)]
    models: dict[str, Any] = {"m": deps, "other": deps, "small": deps[:1], "large": deps}
    router: dict[str, Any] = {"strategy": strategy,
                              "complexity": {"small": "small", "medium": "m", "large": "large"}}
    if rules:
        router["rules"] = [{"alias": "other", "metadata": {"tier": f"t{i}"}} for i in range(rules)]
    cfg, warnings = parse_config({"models": models, "router": router})
    return resolve_config(cfg, None, {}, warnings)


def _router(n: int, strategy: str, rules: int = 0) -> Router:
    r = Router(_config(n, strategy, rules), seed=1,
               capabilities=lambda d: Capabilities(tools=True, context_window=128_000),
               available=lambda d: True)
    t = r.tracker
    for i in range(n):  # realistic state: some history, some load, a little error
        for k in range(20):
            s = t.started(f"d{i}")
            t.succeeded(s, 0.1 + 0.01 * ((i * 7 + k) % 13), tokens=500)
        for _ in range(i % 3):
            t.started(f"d{i}")
    return r


def _call(model: str = "m", content: str = "What is the capital of France?",
          **extra: Any) -> Call:
    req = chat_request_from_dict({"model": model, "messages": [{"role": "user", "content": content}],
                                  **extra})
    return Call("chat", req, request_headers=[(b"content-type", b"application/json")])


def _per_op_us(fn: Callable[[], object], iterations: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - t0) / iterations)
    return best * 1e6


def _decide(r: Router, make: Callable[[], Call], prebuilt: int = 0) -> Callable[[], Deployment]:
    """One routing decision per run; with `prebuilt`, requests are decoded beforehand (decoding
    is the server's cost, not routing's) and reused round-robin."""
    if prebuilt:
        make = itertools.cycle([make() for _ in range(prebuilt)]).__next__

    def run() -> Deployment:
        call = make()
        call.alias = call.request.model
        needs = r.needs(call)
        r.resolve(call, needs)
        return r.choose(r.candidates(call.alias), needs)
    return run


def row(name: str, case: str, us: float, target: float | None = None) -> None:
    verdict = ""
    if target is not None:
        ok = us <= target
        verdict = f"{'ok' if ok else 'MISSED'} (≤ {target:g})"
        if not ok:
            MISSED.append(f"{name} {case}")
    ROWS.append((name, case, f"{us:8.2f}", verdict))


def bench_strategies(it: int, rep: int) -> None:
    for strategy in STRATEGIES:
        target = TARGET_DECISION_US if strategy in ("weighted", "latency") else None
        for n in SIZES:
            r = _router(n, strategy)
            row(f"strategy {strategy}", f"{n:2d} deployments",
                _per_op_us(_decide(r, _call, prebuilt=64), it, rep), target)


def bench_rules_and_caps(it: int, rep: int) -> None:
    for n in SIZES:
        r = _router(n, "weighted", rules=8)
        row("rule (8 rules, last matches)", f"{n:2d} deployments",
            _per_op_us(_decide(r, lambda: _call(metadata={"tier": "t7"}), 64), it, rep),
            TARGET_DECISION_US)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    for n in SIZES:
        r = _router(n, "latency")
        row("latency + tools (capabilities)", f"{n:2d} deployments",
            _per_op_us(_decide(r, lambda: _call(tools=tools), 64), it, rep), TARGET_DECISION_US)
    for n in SIZES:
        r = _router(n, "latency")
        row("request decode + decision", f"{n:2d} deployments",
            _per_op_us(_decide(r, _call), it, rep))


def bench_complexity(it: int, rep: int) -> None:
    scorer = ComplexityScorer()
    for size in (1024, 8192):
        text = ((PROMPT + CODE) * (size // len(PROMPT + CODE) + 1))[:size]
        row("complexity scorer", f"{size // 1024} KB prompt",
            _per_op_us(lambda: scorer.score_text(text), max(50, it // 20), rep),  # noqa: B023
            TARGET_SCORER_US)
    r = _router(4, "latency")
    row("model=auto (score + choose)", "short prompt",
        _per_op_us(_decide(r, lambda: _call("auto", "thanks, that's great"), 64), it, rep))
    row("model=auto (score + choose)", "1 KB prompt",
        _per_op_us(_decide(r, lambda: _call("auto", (PROMPT * 8)[:1024]), 64), it, rep))


def bench_middleware(it: int, rep: int) -> None:
    async def terminal(call: Call) -> str:
        return "ok"

    r = _router(4, "latency")
    chain = build_chain([RouterMiddleware(r), TrackingMiddleware(r.tracker)], terminal)
    calls = [_call() for _ in range(it)]

    async def measure(handler: Callable[[Call], Any]) -> float:
        best = float("inf")
        for _ in range(rep):
            t0 = time.perf_counter()
            for c in calls:
                c.alias = "m"
                await handler(c)
            best = min(best, (time.perf_counter() - t0) / it)
        return best * 1e6

    async def both() -> tuple[float, float]:
        return await measure(chain), await measure(terminal)

    with_mw, bare = asyncio.run(both())
    row("Router+Tracking middleware", "4 deployments, per call", with_mw - bare)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    it, rep = (500, 3) if args.quick else (3000, 5)
    t0 = time.perf_counter()
    bench_strategies(it, rep)
    bench_rules_and_caps(it, rep)
    bench_complexity(it, rep)
    bench_middleware(it, rep)
    load = os.getloadavg()[0]
    print(f"routing bench  ({'quick' if args.quick else 'full'}, {time.perf_counter() - t0:.1f} s, "
          f"load {load:.2f}, Python {sys.version.split()[0]})\n")
    w = max(len(r[0]) for r in ROWS)
    c = max(len(r[1]) for r in ROWS)
    print(f"{'what':<{w}}  {'case':<{c}}  {'µs':>8}  target")
    print(f"{'-' * w}  {'-' * c}  {'-' * 8}  ------")
    for name, case, us, verdict in ROWS:
        print(f"{name:<{w}}  {case:<{c}}  {us}  {verdict}")
    if MISSED:
        print(f"\nmissed: {', '.join(MISSED)}")
        return 1
    print("\nevery target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
