"""gatewise's JSON-schema validator next to well-kept libraries: speed and correctness.

Issue 10 asked for one validator, and for a home-grown one only if it beat a library on both
counts. It did not (its two validators passed ~76% of the suite), so `gatewise.types.jsonschema`
wraps `jsonschema_rs`; this bench keeps the wrapper's cost and correctness in view.

Speed: typical tool-argument payloads, each validator built once per schema (as the tool
registry does) and timed per call, best of 5 rounds. Validators:

- `gatewise`: `types.jsonschema.compile_schema(...).problems` (every problem, with paths and
  gatewise's reasons; the depth guard included);
- `jsonschema`: `Draft202012Validator`, `is_valid` for valid payloads, `iter_errors` (every
  problem) for invalid ones; pure Python, but needs `rpds-py` (native) through `referencing`;
- `fastjsonschema`: generated code (draft 7), raises at the first problem; pure Python;
- `jsonschema_rs`: the library itself, `is_valid` only (the first problem decides).

Correctness: the official JSON-Schema-Test-Suite (draft7 and draft2020-12, required tests,
no remote refs), all of it and the subset of keywords tool schemas use. PyPI's `jsonschema`
source distribution ships the suite:

    .venv/bin/pip download jsonschema --no-binary :all: --no-deps -d /tmp/js
    tar xzf /tmp/js/jsonschema-*.tar.gz -C /tmp/js
    .venv/bin/python bench/jsonschema_bench.py --suite /tmp/js/jsonschema-*/json [--n 20000]

Without `--suite` (or `JSON_SCHEMA_TEST_SUITE`) only the speed table is printed. A library
missing from the venv is shown as `n/a`. Never part of the test run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gatewise.types.jsonschema import compile_schema

# name -> build(schema) -> validate(value) -> True when valid
Validate = Callable[[Any], bool]
Build = Callable[[dict[str, Any]], Validate]

TRANSFER = {"type": "object", "properties": {
    "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"},
    "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
    "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
    "memo": {"type": "string", "maxLength": 140}},
    "required": ["iban", "currency", "amount"], "additionalProperties": False}
ORDER = {"type": "object", "properties": {
    "customer": {"type": "string"},
    "items": {"type": "array", "maxItems": 50, "items": {"$ref": "#/$defs/item"}},
    "priority": {"type": "string", "enum": ["low", "high"]}},
    "required": ["customer", "items"], "additionalProperties": False,
    "$defs": {"item": {"type": "object", "properties": {
        "sku": {"type": "string", "minLength": 1}, "qty": {"type": "integer", "minimum": 1},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["sku", "qty"], "additionalProperties": False}}}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
                                            "unit": {"type": "string", "enum": ["c", "f"]}},
           "required": ["city"]}

CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("weather (2 args)", WEATHER, {"city": "Paris", "unit": "c"}),
    ("transfer (4 args)", TRANSFER, {"iban": "DE89370400440532013000", "currency": "EUR",
                                     "amount": 120.5, "memo": "rent"}),
    ("order, 10 items, $ref", ORDER, {"customer": "c-1", "priority": "high", "items": [
        {"sku": f"s{i}", "qty": i + 1, "note": None if i % 2 else "gift"} for i in range(10)]}),
    ("transfer, 3 problems", TRANSFER, {"iban": "nope", "currency": "JPY", "amount": "lots",
                                        "evil": 1}),
]

# Keywords the tool and structured-output schemas gatewise sees are made of.
TOOL_SUBSET = {"additionalProperties", "allOf", "anyOf", "boolean_schema", "const", "defs",
               "enum", "exclusiveMaximum", "exclusiveMinimum", "items", "maxItems", "maxLength",
               "maxProperties", "maximum", "minItems", "minLength", "minProperties", "minimum",
               "multipleOf", "oneOf", "pattern", "properties", "ref", "required", "type",
               "uniqueItems"}


_DIALECT = {"draft7": "http://json-schema.org/draft-07/schema#",
            "draft2020-12": "https://json-schema.org/draft/2020-12/schema"}


def _gatewise(draft: str) -> Build:
    def build(schema: dict[str, Any]) -> Validate:
        if isinstance(schema, dict) and "$schema" not in schema:
            schema = {"$schema": _DIALECT[draft], **schema}  # how a caller names draft 7
        check = compile_schema(schema)
        return lambda v: not check.problems(v)

    return build


def _jsonschema(draft: str) -> Build | None:
    try:
        js = importlib.import_module("jsonschema")
    except ImportError:
        return None
    cls = js.Draft7Validator if draft == "draft7" else js.Draft202012Validator

    def build(schema: dict[str, Any]) -> Validate:
        v = cls(schema)
        # every problem, as the tool checker reports them; `is_valid` is the fast path
        return lambda x: v.is_valid(x) or not list(v.iter_errors(x))

    return build


def _fastjsonschema(draft: str) -> Build | None:
    if draft != "draft7":
        return None  # supports drafts 4, 6 and 7 only
    try:
        fj = importlib.import_module("fastjsonschema")
    except ImportError:
        return None

    def build(schema: dict[str, Any]) -> Validate:
        fn = fj.compile(schema)

        def validate(x: Any) -> bool:
            try:
                fn(x)
            except fj.JsonSchemaException:
                return False
            return True

        return validate

    return build


def _jsonschema_rs(draft: str) -> Build | None:
    try:
        rs = importlib.import_module("jsonschema_rs")
    except ImportError:
        return None
    cls = rs.Draft7Validator if draft == "draft7" else rs.Draft202012Validator

    def build(schema: dict[str, Any]) -> Validate:
        v = cls(schema)
        return lambda x: bool(v.is_valid(x))

    return build


def validators(draft: str) -> dict[str, Build | None]:
    return {"gatewise": _gatewise(draft), "jsonschema": _jsonschema(draft),
            "fastjsonschema": _fastjsonschema(draft), "jsonschema_rs": _jsonschema_rs(draft)}


def _time(fn: Validate, value: Any, n: int, budget_s: float) -> float:
    """Best-of-5 µs per call, each round stopping early at its share of `budget_s`."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        stop = t0 + budget_s / 5
        done = 0
        while done < n:
            for _ in range(100):
                fn(value)
            done += 100
            if time.perf_counter() > stop:
                break
        best = min(best, (time.perf_counter() - t0) / done)
    return best * 1e6


def speed_table(n: int, budget_s: float) -> None:
    builds = validators("draft7")
    builds["gatewise"] = _gatewise("draft2020-12")
    builds["jsonschema"] = _jsonschema("draft2020-12")
    builds["jsonschema_rs"] = _jsonschema_rs("draft2020-12")
    names = list(builds)
    print(f"\nSpeed: µs per call (best of 5), ratio to gatewise; n ≤ {n}")
    print(f"{'case':24}" + "".join(f"{name:>24}" for name in names))
    for label, schema, value in CASES:
        row = []
        base = None
        for name in names:
            build = builds[name]
            if build is None:
                row.append("n/a")
                continue
            try:
                fn = build(schema)
            except Exception as exc:  # a library that cannot compile the schema
                row.append(f"error {type(exc).__name__}")
                continue
            us = _time(fn, value, n, budget_s)
            base = us if base is None else base
            row.append(f"{us:7.2f} ({us / base:5.1f}x)")
        print(f"{label:24}" + "".join(f"{cell:>24}" for cell in row))
    print("(gatewise and jsonschema report every problem of an invalid payload; "
          "fastjsonschema and jsonschema_rs stop at the first)")


def _suite_cases(root: Path, draft: str) -> Iterator[tuple[str, dict[str, Any] | bool, Any, bool]]:
    """(file stem, schema, data, valid) for every required test without a remote ref."""
    for path in sorted((root / "tests" / draft).glob("*.json")):
        if path.stem.startswith("refRemote"):
            continue
        for group in json.loads(path.read_text()):
            if "localhost:1234" in json.dumps(group["schema"]):
                continue  # would need the suite's remote-ref server
            for test in group["tests"]:
                yield path.stem, group["schema"], test["data"], test["valid"]


def correctness_table(root: Path, budget_s: float) -> None:
    print("\nCorrectness on the official JSON-Schema-Test-Suite (required tests, no remote "
          "refs): passed / total")
    print(f"{'validator':24}" + "".join(f"{h:>22}" for h in (
        "draft7 all", "draft7 tool subset", "2020-12 all", "2020-12 tool subset")))
    rows: dict[str, list[str]] = {}
    for draft in ("draft7", "draft2020-12"):
        for name, build in validators(draft).items():
            cells = rows.setdefault(name, [])
            if build is None:
                cells += ["n/a", "n/a"]
                continue
            # read afresh for each validator: fastjsonschema changes the schemas it compiles
            cases = list(_suite_cases(root, draft))
            ok = total = sub_ok = sub_total = 0
            deadline = time.perf_counter() + budget_s
            for stem, schema, data, valid in cases:
                if time.perf_counter() > deadline:
                    break
                try:
                    got = build(schema)(data)  # type: ignore[arg-type]  # boolean roots too
                except Exception:  # cannot compile or crashed: counted as a failure
                    got = not valid
                hit = got == valid
                ok += hit
                total += 1
                if stem in TOOL_SUBSET:
                    sub_ok += hit
                    sub_total += 1
            cells += [f"{ok}/{total} {100 * ok / max(total, 1):4.1f}%",
                      f"{sub_ok}/{sub_total} {100 * sub_ok / max(sub_total, 1):4.1f}%"]
    for name, cells in rows.items():
        print(f"{name:24}" + "".join(f"{c:>22}" for c in cells))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="calls per round, at most")
    ap.add_argument("--suite", default=os.environ.get("JSON_SCHEMA_TEST_SUITE"),
                    help="the JSON-Schema-Test-Suite folder (holding tests/draft7 ...)")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per timing / draft")
    args = ap.parse_args()
    speed_table(args.n, args.budget)
    if args.suite:
        correctness_table(Path(args.suite), args.budget * 15)
    else:
        print("\n(no --suite: correctness not measured; see the module docstring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
