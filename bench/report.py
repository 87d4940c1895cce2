"""The one table a run prints, and the JSON it saves: each figure with gatewise's value, the
baseline measured in the same run, LiteLLM's value, the target and pass/fail."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    target: float
    higher_is_better: bool = False
    digits: int = 3

    def target_text(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {self.target:,g}"

    def passes(self, value: float) -> bool:
        cmp: Callable[[float, float], bool] = operator.ge if self.higher_is_better else operator.le
        return cmp(value, self.target)


FIGURES = (
    Figure("cpu_per_req", "CPU per proxied request, c=64 (ms, process tree)", 0.5),
    Figure("throughput", "Throughput, c=64, one process (req/s)", 1500, True, 0),
    Figure("added_p50", "Added latency p50, c=1 (ms, hey)", 1.0, digits=2),
    Figure("ttfb_added", "Streaming TTFB added, fake-stream (ms, p50)", 1.0, digits=2),
    Figure("library", "Library: gw.chat() CPU over its raw HTTP client (ms/call)", 0.1),
    Figure("import", "python -c 'import gatewise' wall (s, median)", 0.3),
    Figure("idle_rss", "Idle RSS, LiteLLM config, no local model (MB)", 100, digits=1),
    Figure("local", "Local model overhead over raw llama.cpp (%)", 2.0, digits=2),
)


@dataclass
class Row:
    """`gatewise`/`litellm` are in the figure's unit; `baseline` is text with its own unit,
    because a baseline is sometimes a different quantity (raw generation time under a %)."""

    gatewise: float | None = None
    baseline: str = "-"
    litellm: float | None = None
    litellm_note: str = "n/a"
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def print_rows(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A plain left-aligned table for the benches that compare their own columns (one path per
    row, one client per row) rather than the run's fixed figures."""
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*head))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(fmt.format(*row))


def _num(v: float | None, digits: int) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def render(rows: dict[str, Row]) -> str:
    header = ("figure", "gatewise", "baseline (same run)", "LiteLLM", "target", "result")
    lines: list[tuple[str, ...]] = []
    for f in FIGURES:
        r = rows.get(f.key) or Row(error="not run")
        if r.gatewise is not None:
            result = "PASS" if f.passes(r.gatewise) else "FAIL"
        else:
            result = f"n/a ({r.error})" if r.error else "n/a"
        lite = _num(r.litellm, f.digits) if r.litellm is not None else r.litellm_note
        lines.append((f.title, _num(r.gatewise, f.digits), r.baseline, lite, f.target_text(),
                      result))
    widths = [max(len(x[i]) for x in (header, *lines)) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths, strict=True)):
            out.append(c.rjust(w) if i in (1, 3) else c.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep, *(fmt(x) for x in lines)])


def verdict(rows: dict[str, Row]) -> tuple[int, int, int]:
    """(passed, failed, not measured)."""
    passed = failed = missing = 0
    for f in FIGURES:
        r = rows.get(f.key)
        if r is None or r.gatewise is None:
            missing += 1
        elif f.passes(r.gatewise):
            passed += 1
        else:
            failed += 1
    return passed, failed, missing


def save(path: Path, meta: dict[str, Any], rows: dict[str, Row], raw: dict[str, Any]) -> None:
    figures = []
    for f in FIGURES:
        r = rows.get(f.key) or Row(error="not run")
        figures.append({**asdict(f), **asdict(r),
                        "pass": None if r.gatewise is None else f.passes(r.gatewise)})
    path.write_text(json.dumps({**meta, "figures": figures, "raw": raw}, indent=2, default=str))
