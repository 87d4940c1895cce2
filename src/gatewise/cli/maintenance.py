"""`gatewise maintenance list | run [JOB...]`: the maintenance jobs from the command line.

`run` builds the gateway from the config (no server) and runs the named jobs (every job with
`--all`) once, each under the same lease the servers' schedulers take, so it is safe to run
from cron or a Kubernetes CronJob beside running replicas: a job another replica is running
reports `skipped`. With `storage.database: memory` the jobs see only this process's state,
which is empty, and the command says so. A running server's own job history is at
`GET /admin/maintenance`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    m = sub.add_parser("maintenance", help="maintenance jobs: list them, run them now")
    ms = m.add_subparsers(dest="action", required=True)
    ls = ms.add_parser("list", help="the jobs this config registers and their intervals")
    ls.add_argument("--config", "-c")
    r = ms.add_parser("run", help="run jobs once now (under their leases); exit 1 on an error")
    r.add_argument("jobs", nargs="*", metavar="JOB", help="job names (see `list`)")
    r.add_argument("--all", action="store_true", help="every registered job")
    r.add_argument("--json", action="store_true", help="one JSON object per job")
    r.add_argument("--config", "-c")


async def run(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway

    gw = Gateway(args.config)
    try:
        scheduler = gw.maintenance
        if args.action == "list":
            for row in scheduler.status():
                lease = "one replica" if row["exclusive"] else "every replica"
                print(f"{row['job']:<20} every {_every(row['interval_s']):<8} ({lease})")
            return 0
        names = list(scheduler.jobs) if args.all else list(args.jobs)
        unknown = [n for n in names if n not in scheduler.jobs]
        if not names or unknown:
            known = ", ".join(scheduler.jobs) or "none"
            what = f"unknown job {unknown[0]!r}" if unknown else "name jobs or pass --all"
            print(f"error: {what} (jobs: {known})", file=sys.stderr)
            return 2
        if gw.config.config.storage.database == "memory":
            print("note: storage.database is memory: the jobs see only this process's (empty) "
                  "state; a server's jobs are at GET /admin/maintenance", file=sys.stderr)
        failed = False
        for name in names:
            outcome = await scheduler.run_once(name)
            summary = next(r["summary"] for r in scheduler.status() if r["job"] == name)
            failed |= outcome == "error"
            if args.json:
                print(json.dumps({"job": name, "outcome": outcome, "summary": summary},
                                 sort_keys=True, default=str))
            else:
                text = " ".join(f"{k}={v}" for k, v in summary.items())
                print(f"{name:<20} {outcome:<8} {text}".rstrip())
        return 1 if failed else 0
    finally:
        await gw.aclose()


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"
