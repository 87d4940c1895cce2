"""`gatewise eval SET.jsonl --model a --model b [--judge M] [--out report.md|report.json]`:
runs an evaluation set against aliases through a gateway built from the config (so
guardrails, routing and accounting apply as for any client), prints a comparison table per
model and per kind, and writes the report (Markdown or JSON by the file's extension).

Items that compare meaning (`similar`) use the local MiniLM embedder (the `semantic` extra),
loaded only when the set has such items.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatewise.quality.eval_set import EvalItem
    from gatewise.quality.evaluate import EvalReport


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("eval", help="run an evaluation set against models and compare them")
    e.add_argument("set", help="JSONL: one {id, kind, input, expected | rubric, ...} per line")
    e.add_argument("--model", "-m", action="append", default=[],
                   help="an alias to evaluate (repeat to compare; default: the default model)")
    e.add_argument("--judge", help="an alias that rates answers against each item's rubric")
    e.add_argument("--out", "-o", help="write the report here (.md or .json)")
    e.add_argument("--limit", type=int, help="only the first N items")
    e.add_argument("--concurrency", type=int, default=4, help="calls in flight (default 4)")
    e.add_argument("--min-score", type=float,
                   help="exit 1 unless the best model's mean score reaches this")
    e.add_argument("--config", "-c")


def run(args: argparse.Namespace) -> int:
    """Reads the set and writes the report here; the calls run in `_evaluate`."""
    from gatewise.quality.eval_set import load_eval_set
    from gatewise.quality.evaluate import render_markdown, render_table

    if args.out and Path(args.out).suffix not in (".md", ".json"):
        print("error: --out must end in .md or .json", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    items = load_eval_set(args.set, limit=args.limit)
    if args.judge is None and any(i.checks.empty for i in items):
        first = next(i for i in items if i.checks.empty)
        print(f"error: {args.set}:{first.line}: item {first.id!r} has only a rubric: give "
              "--judge", file=sys.stderr)
        return 2
    report = asyncio.run(_evaluate(args, items))
    if report is None:
        return 2
    print(render_table(report))
    if args.out:
        out = Path(args.out)
        text = (json.dumps(report.to_json(), indent=2) + "\n" if out.suffix == ".json"
                else render_markdown(report))
        out.write_text(text, encoding="utf-8")
        print(f"report: {out}")
    best = report.best()
    if args.min_score is not None and (best is None or best.mean_score < args.min_score):
        print(f"error: the best mean score is below {args.min_score}", file=sys.stderr)
        return 1
    return 0


async def _evaluate(args: argparse.Namespace, items: list[EvalItem]) -> EvalReport | None:
    from gatewise.gateway import Gateway
    from gatewise.quality.evaluate import run_eval

    gw = Gateway(args.config)
    embedder: Any = None
    try:
        models = args.model or ([gw.router.default_model] if gw.router.default_model else [])
        if not models:
            print("error: give --model (no default_model is configured)", file=sys.stderr)
            return None
        if any(i.checks.similar is not None for i in items):
            from gatewise.embedding.base import ThreadedEmbedder
            from gatewise.embedding.local import (
                EmbedderUnavailableError,
                MiniLMEmbedder,
                check_installed,
            )

            try:
                check_installed()
            except EmbedderUnavailableError as exc:
                print(f"error: items compare meaning ('similar'): {exc}", file=sys.stderr)
                return None
            embedder = ThreadedEmbedder(MiniLMEmbedder())
        return await run_eval(gw, items, models, judge=args.judge, embedder=embedder,
                              concurrency=args.concurrency, set_name=Path(args.set).name,
                              progress=_progress if sys.stderr.isatty() else None)
    finally:
        if embedder is not None:
            await embedder.aclose()
        await gw.aclose()


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
