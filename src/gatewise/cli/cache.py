"""`gatewise cache stats | invalidate | warm`: the response cache from the command line.

Like the other admin commands, these open the configured stores directly (no server, no
master key). Statistics and invalidation therefore need the cache on a store the server
shares (`cache.store: shared`, or `auto` with Redis): an in-process cache lives in the
server's memory only, and the command says so (use the admin API, `/admin/cache/...`).
Warming runs each request through a gateway built from the same config: its answers land in
the shared store, where the server finds them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from gatewise.cache.invalidation import Reach
from gatewise.cache.stats import totals
from gatewise.cache.store import LRUStore
from gatewise.cache.warm import WarmReport, default_identity, warm
from gatewise.errors import InvalidRequestError
from gatewise.pipeline.core import Identity
from gatewise.security.inputs import CacheEntriesQuery, check_path, parse_query


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("cache", help="the response cache: statistics, invalidation, warming")
    cs = c.add_subparsers(dest="action", required=True)
    s = cs.add_parser("stats", help="hits, misses, hit rate, tokens and USD saved")
    s.add_argument("--config", "-c")
    s.add_argument("--team", help="one team only")
    s.add_argument("--json", action="store_true", help="print JSON")
    i = cs.add_parser("invalidate", help="remove cached answers")
    i.add_argument("--config", "-c")
    what = i.add_mutually_exclusive_group(required=True)
    what.add_argument("--key", help="one entry (the x-gatewise-cache-key response header)")
    what.add_argument("--tag", help="every entry stored with this tag")
    what.add_argument("--prefix", help="every entry whose key starts with this")
    what.add_argument("--alias", help="every entry of the aliases matching this glob")
    what.add_argument("--all", action="store_true", help="every entry (of --team, if given)")
    i.add_argument("--team", help="only this team's entries")
    w = cs.add_parser("warm", help="run a JSONL file of chat requests to fill the cache")
    w.add_argument("file", help="one chat request body per line; optional 'team' or 'key'")
    w.add_argument("--config", "-c")
    w.add_argument("--concurrency", type=int, default=8)
    w.add_argument("--no-progress", action="store_true")


async def run(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway

    gw = Gateway(args.config)
    try:
        cache = gw.cache
        if cache is None:
            print("error: the response cache is off (cache.enabled in the config)",
                  file=sys.stderr)
            return 1
        if args.action == "warm":
            return await _warm(gw, args)
        if isinstance(cache.cache.store, LRUStore):
            print("error: this config keeps the cache in the server's memory; use the admin "
                  "API (GET /admin/cache/stats, DELETE /admin/cache/...), or put the cache on "
                  "a shared store (cache.store: shared, or Redis)", file=sys.stderr)
            return 1
        if args.action == "stats":
            rows = await cache.stats.read(args.team)
            if args.json:
                print(json.dumps({"total": totals(rows).to_json(),
                                  "data": [r.to_json() for r in rows]}, indent=2))
            else:
                _table(rows)
            return 0
        return await _invalidate(cache, args)
    except InvalidRequestError as exc:
        where = f"{exc.param}: " if exc.param else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 2
    finally:
        await gw.aclose()


def _table(rows: list[Any]) -> None:
    head = ("team", "alias", "hits", "semantic", "misses", "bypass", "hit rate", "tokens saved",
            "USD saved")
    lines = [head] + [
        (r.team, r.alias, str(r.hits), str(r.semantic_hits), str(r.misses), str(r.bypasses),
         f"{r.hit_rate:.1%}", str(r.tokens_saved), f"{r.usd_saved:.6f}")
        for r in [*rows, totals(rows)]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


async def _invalidate(cache: Any, args: argparse.Namespace) -> int:
    # The admin API's own checks, so the CLI refuses exactly what the server refuses.
    query: dict[str, str] = {k: v for k, v in (("team", args.team), ("alias", args.alias),
                                               ("prefix", args.prefix)) if v is not None}
    q = parse_query(CacheEntriesQuery, query)
    reach = Reach(q.team)
    inv = cache.invalidation
    if args.key is not None:
        check_path({"cache_key": args.key})
        n = await inv.by_key(args.key, reach)
    elif args.tag is not None:
        check_path({"tag": args.tag})
        n = await inv.by_tag(args.tag, reach)
    elif q.prefix is not None:
        n = await inv.by_prefix(q.prefix, reach)
    else:
        n = await inv.by_alias(q.alias, reach)
    print(f"deleted {n}")
    return 0


def _read(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.readlines()


def _items(lines: list[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            yield n, f"not JSON: {exc}"
            continue
        yield (n, item) if isinstance(item, dict) else (n, "not a JSON object")


class _Bar:
    """A one-line progress bar on stderr (redrawn at most 10 times a second)."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total = max(total, 1)
        self.out = out
        self._last = 0.0

    def __call__(self, r: WarmReport, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * r.done / self.total)
        self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {r.done}/{r.total} "
                       f"stored {r.stored} skipped {r.skipped} failed {r.failed}")
        self.out.flush()


async def _warm(gw: Any, args: argparse.Namespace) -> int:
    if isinstance(gw.cache.cache.store, LRUStore):
        print("warning: the cache is in this process's memory only: warming fills nothing the "
              "server can read (use cache.store: shared, or Redis)", file=sys.stderr)
    lines = await asyncio.to_thread(_read, args.file)
    total = sum(1 for line in lines if line.strip())

    async def identify(item: dict[str, Any]) -> Identity:
        key = item.get("key")
        if key is None:
            return await default_identity(item)
        if not isinstance(key, str):
            raise InvalidRequestError("'key' must be a virtual key", param="key")
        return await gw.security.keys.authenticate(key)  # type: ignore[no-any-return]

    bar = None if args.no_progress else _Bar(total)
    report = await warm(gw, _items(lines), total=total, concurrency=args.concurrency,
                        identify=identify, progress=bar)
    if bar is not None:
        bar(report, force=True)
        sys.stderr.write("\n")
    print(f"stored {report.stored}, skipped {report.skipped}, failed {report.failed} "
          f"(of {report.total})")
    for n, reason in report.errors[:20]:
        print(f"  line {n}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0
