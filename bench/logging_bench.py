"""What the structured request line costs, in CPU µs per request.

Two measurements, both with logging set up as `gatewise serve` sets it up
(`configure_logging`: one root handler) but writing to a stream that discards what it is
given (formatting and the handler's lock are counted, terminal or disk I/O is not):

- the line alone: a real finished call (captured from a gateway answering through the
  in-process fake model, with a team, a key, a cache verdict and a guard decision) logged
  the way `TelemetryMiddleware` logs it — level check, `request_fields`, the logger, the
  handler, the formatter — for `no handler` (the request logger below INFO: one level
  check), `text` and `json`;
- end to end: whole `gw.chat()` calls through the fake model with each setting, in
  interleaved rounds, best round kept (a shared VM's neighbours only ever add time); the
  difference to `no handler` is the line's cost seen from the caller (noisier: a call is
  ~100x the line).

Target (issue 14): JSON logs ≤ 10 µs per request (the line alone).

    .venv/bin/python bench/logging_bench.py [--lines 20000] [--calls 1500] [--rounds 5]

Prints one table; exit status 0 when the target is met. Bounded: the defaults take well under
a minute, and each phase stops early past its time cap. Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import sys
import time
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.observability.logs import configure_logging
from gatewise.observability.telemetry import RequestLine, request_fields
from gatewise.pipeline.core import Call, Handler, Identity

TARGET_US = 10.0
PHASE_CAP_S = 20.0
SETTINGS = ("no handler", "text", "json")


class Discard(io.TextIOBase):
    """A text stream that accepts everything and keeps nothing."""

    def write(self, s: str) -> int:
        return len(s)

    def writable(self) -> bool:
        return True


class Capture:
    """A middleware keeping the calls it sees (for a realistic, finished `Call`)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.calls.append(call)
        return await next(call)


def _gateway(capture: Capture | None = None) -> Gateway:
    """With `capture`: a cache and a tool guard, so the captured call has a cache verdict and
    a guard decision. Without: the plain chain (no security-event line beside the request
    line)."""
    data: dict[str, Any] = {
        "models": {"m": [{"model": "fake/echo", "prices": {"input": 0.15, "output": 0.6}}]},
        "storage": {"database": "memory"}}
    if capture is not None:
        data["cache"] = {"enabled": True}
        data["guardrails"] = {"default": {"tools": {"unknown_request_tools": "drop"}}}
    cfg, w = parse_config(data)
    return Gateway(resolve_config(cfg, None, {}, w), middlewares=[capture] if capture else [])


WHO = Identity(team="platform", key_id="key_7f3a", user="user_42")
TOOLS = [{"type": "function", "function": {"name": "unregistered", "parameters": {
    "type": "object"}}}]
MESSAGES = [{"role": "user", "content": "Write a title for: fix the login timeout on mobile"}]


def _configure(setting: str) -> None:
    """As `gatewise serve` sets logging up (`configure_logging`: one root handler), writing
    to a discarding stream; `no handler`: the request logger below INFO."""
    if setting == "no handler":
        configure_logging("warning", "json", stream=Discard())
    else:
        configure_logging("info", "json" if setting == "json" else "text", stream=Discard())


def _line_alone(call: Call, n: int) -> float:
    """µs per request line, the way the middleware emits it."""
    line = RequestLine()
    log = line.log
    deadline = time.monotonic() + PHASE_CAP_S / 6
    done = 0
    start = time.process_time()
    while done < n and time.monotonic() < deadline:
        for _ in range(500):
            if log.isEnabledFor(logging.INFO):
                line.emit(logging.INFO, request_fields(call, 200, 0.0123, None))
        done += 500
    return (time.process_time() - start) / done * 1e6


def _reference(fields: dict[str, Any], n: int) -> float:
    """µs for `json.dumps` of the same fields: how fast this machine is right now (a shared
    VM under load runs everything slower; compare the line's cost with this)."""
    start = time.process_time()
    for _ in range(n):
        json.dumps(fields)
    return (time.process_time() - start) / n * 1e6


async def _round(gw: Gateway, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await gw.chat(model="m", messages=MESSAGES, identity=WHO, tools=TOOLS, max_tokens=64)
    return (time.process_time() - start) / n * 1e6


async def main(lines: int, calls: int, rounds: int) -> int:
    capture = Capture()
    async with _gateway(capture) as gw:
        _configure("no handler")
        await gw.chat(model="m", messages=MESSAGES, identity=WHO, tools=TOOLS, temperature=0)
        await gw.chat(model="m", messages=MESSAGES, identity=WHO, tools=TOOLS, temperature=0)
    call = capture.calls[-1]  # a cache hit with a guard decision, a team, a key, a user
    sample = request_fields(call, 200, 0.0123, None)

    alone: dict[str, float] = {}
    for setting in SETTINGS:  # best of three short runs each
        _configure(setting)
        alone[setting] = min(_line_alone(call, lines) for _ in range(3))
    ref = min(_reference(sample, lines) for _ in range(3))

    e2e: dict[str, list[float]] = {s: [] for s in SETTINGS}
    async with _gateway() as gw:
        _configure("no handler")
        await _round(gw, 200)  # warm-up
        deadline = time.monotonic() + PHASE_CAP_S
        for _ in range(rounds):
            for setting in SETTINGS:
                _configure(setting)
                e2e[setting].append(await _round(gw, calls))
            if time.monotonic() > deadline:
                break
    _configure("no handler")
    best = {s: min(v) for s, v in e2e.items()}

    print(f"request line fields: {', '.join(sample)}")
    print()
    print(f"{'setting':<12} {'line alone µs':>14} {'vs no handler':>14} "
          f"{'gw.chat µs':>11} {'added µs':>9} {'ratio':>7}")
    for s in SETTINGS:
        print(f"{s:<12} {alone[s]:>14.2f} {alone[s] - alone['no handler']:>+14.2f} "
              f"{best[s]:>11.1f} {best[s] - best['no handler']:>+9.1f} "
              f"{best[s] / best['no handler']:>7.3f}")
    cost = alone["json"]
    ok = cost <= TARGET_US
    print()
    print(f"reference: json.dumps of the same {len(sample)} fields takes {ref:.2f} µs here "
          f"(the JSON line costs {cost / ref:.1f}x that)")
    print(f"target: JSON request line ≤ {TARGET_US:.0f} µs per request: {cost:.2f} µs "
          f"({'met' if ok else 'MISSED'}); rounds kept: best of {len(e2e['json'])}")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    sys.exit(asyncio.run(main(a.lines, a.calls, a.rounds)))
