"""`gatewise experiments list | report NAME`: A/B experiments from the command line.

Like the other admin commands, the report opens the configured stores directly (no server,
no master key): it reads the quality records the servers wrote to the shared database
(SQLite or PostgreSQL). With `storage.database: memory` the records live in the server's
memory only, and the command says so (use `GET /admin/experiments/{name}/report`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("experiments", help="A/B experiments: list them, report on one")
    es = e.add_subparsers(dest="action", required=True)
    ls = es.add_parser("list", help="the configured experiments and their variants")
    ls.add_argument("--config", "-c")
    r = es.add_parser("report", help="per-variant numbers and significance tests")
    r.add_argument("name", help="the experiment (a key of `experiments:`)")
    r.add_argument("--since", default="7d",
                   help="a duration before now (7d, 12h, 30m, 2w), a date or epoch seconds "
                        "(default 7d)")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.add_argument("--config", "-c")


async def run(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway
    from gatewise.quality.experiment_report import experiment_report, parse_since, render_text

    gw = Gateway(args.config)
    try:
        experiments = gw.config.config.experiments
        if args.action == "list":
            for name, e in experiments.items():
                state = "" if e.enabled else " (disabled)"
                arms = ", ".join(f"{v.name}={v.model or e.alias}"
                                 + (f"+{v.template}" if v.template else "")
                                 + f" w{v.weight:g}" for v in e.variants)
                print(f"{name}{state}: alias {e.alias}, sticky {e.sticky}, "
                      f"metric {e.metric}: {arms}")
            return 0
        exp = experiments.get(args.name)
        if exp is None:
            known = ", ".join(experiments) or "none configured"
            print(f"error: no experiment {args.name!r} ({known})", file=sys.stderr)
            return 1
        if gw.config.config.storage.database == "memory":
            print("error: this config keeps quality records in the server's memory; use the "
                  "admin API (GET /admin/experiments/NAME/report), or a database "
                  "(storage.database: sqlite or postgres)", file=sys.stderr)
            return 1
        since = parse_since(args.since, time.time())
        rep = await experiment_report(gw.quality.store, args.name, exp, since=since)
        if args.json:
            print(json.dumps(rep.to_json(), indent=2))
        else:
            print(render_text(rep))
        return 0
    finally:
        await gw.aclose()
