"""What validating a model's tool call costs, next to just decoding its arguments.

For each case, in the same run and with the same argument strings: `json.loads` of the
arguments alone (the floor any check pays), and `validate_tool_call` (lookup, permission,
decode, the compiled schema check, and an injection hook when given). Cases:

- typical: 4 arguments (string with pattern, enum, number with bounds, optional string);
- nested: an object with an array of 10 line items, each an object with 3 fields;
- rejected: a call with an extra argument, a wrong type and an enum miss (all reported);
- inspected: typical, plus a trivial `inspect_text` hook on every string argument.

Target (issue 5): ≤ 50 µs per typical call.

    .venv/bin/python bench/tools_bench.py [--n 20000]

Prints one table; exit status 0 when the target is met. Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Annotated, Literal

from gatewise.pipeline.core import Identity
from gatewise.tools import ToolRegistry, validate_tool_call
from gatewise.types.messages import FunctionCall, ToolCall

TARGET_US = 50.0


def _registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.add_from_config({"name": "transfer", "permission": "payments:send", "parameters": {
        "type": "object", "properties": {
            "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"},
            "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
            "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
            "memo": {"type": "string", "maxLength": 140}},
        "required": ["iban", "currency", "amount"]}})

    @reg.register
    def order(customer: Annotated[str, "customer id"],
              items: list[dict[str, int]], priority: Literal["low", "high"] = "low") -> str:
        return "ok"

    return reg


def _call(name: str, args: object) -> ToolCall:
    return ToolCall(id="c", type="function",
                    function=FunctionCall(name=name, arguments=json.dumps(args)))


def _time(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    reg = _registry()
    who = Identity(permissions=frozenset({"payments:send"}))
    typical = {"iban": "DE89370400440532013000", "currency": "EUR", "amount": 125.5,
               "memo": "invoice 2024-117"}
    cases: dict[str, tuple[ToolCall, Callable[[str], bool] | None]] = {
        "typical": (_call("transfer", typical), None),
        "nested": (_call("order", {"customer": "C-1", "priority": "high", "items": [
            {"sku": i, "qty": 2, "price": 999} for i in range(10)]}), None),
        "rejected": (_call("transfer", {**typical, "currency": "BTC", "amount": "5",
                                        "to": "x"}), None),
        "inspected": (_call("transfer", typical), lambda s: "ignore previous" in s.lower()),
    }
    print(f"{'case':<10} {'json.loads µs':>14} {'validate µs':>12} {'ratio':>7}")
    ok = True
    for name, (c, hook) in cases.items():
        raw = c.function.arguments
        base = _time(lambda raw=raw: json.loads(raw), n)
        val = _time(lambda c=c, hook=hook: validate_tool_call(c, reg, who, inspect_text=hook), n)
        print(f"{name:<10} {base:>14.2f} {val:>12.2f} {val / base:>6.1f}x")
        if name == "typical" and val > TARGET_US:
            ok = False
    print(f"target: typical ≤ {TARGET_US:.0f} µs per call — {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
