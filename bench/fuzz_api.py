"""The long schemathesis run over the served OpenAPI document (issue 9's acceptance run): the
suite's `tests/server/test_schemathesis.py`, with many more examples, a random seed (printed,
so a finding can be replayed with `--seed`), both state backends, with the master key and
without any key.

    .venv/bin/python bench/fuzz_api.py                       # ~5-10 min: 100 examples
    .venv/bin/python bench/fuzz_api.py --examples 30 --quick # ~2 min: SQLite with a key only
    .venv/bin/python bench/fuzz_api.py --seed 1234 --backends postgres

Each run serves the real app in process on 127.0.0.1 (fake in-process deployments, no
network beyond the local PostgreSQL) and stops by itself: a run ends when its examples are
done (or at `--max-time`), and is killed after 30 minutes whatever happens. Prints one row
per run and the failures with their curl reproductions; exit status 1 when any run found
something. Logs and JSON reports go to `--out`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_RUN_CAP_S = 1800  # a run that has not finished by then is stopped
sys.path.insert(0, str(ROOT))  # the harness lives with the tests it serves

from tests.fakes.gateway import GatewayServer  # noqa: E402
from tests.fakes.services import find_pg_url  # noqa: E402
from tests.server.fuzz_harness import MASTER, FuzzRun, fuzz_config, run_schemathesis  # noqa: E402


def _one(backend: str, keyed: bool, args: argparse.Namespace, out: Path) -> tuple[FuzzRun, float]:
    state = Path(tempfile.mkdtemp(prefix=f"gw-fuzz-{backend}-"))
    os.environ.setdefault("GATEWISE_STATE_DIR", str(state))
    pg_url = find_pg_url() if backend == "postgres" else None
    if backend == "postgres" and pg_url is None:
        raise SystemExit("PostgreSQL is not reachable at 127.0.0.1:5432 (db test, trust auth)")
    schema = f"gw_fuzz_bench_{os.getpid()}"
    name = f"{backend}-{'key' if keyed else 'nokey'}"
    started = time.monotonic()
    try:
        with GatewayServer(fuzz_config(state, postgres_url=pg_url, postgres_schema=schema)) as srv:
            run = run_schemathesis(srv.url, out / name, key=MASTER if keyed else None,
                                   max_examples=args.examples, deterministic=False,
                                   seed=args.seed, max_time_s=args.max_time,
                                   timeout_s=(args.max_time or _RUN_CAP_S) + 120)
    finally:
        if pg_url is not None:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    (out / name / "output.txt").write_text(run.output)
    return run, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--max-time", type=int, default=None,
                        help="seconds per run, spent repeating fuzzing and stateful tests "
                             f"(default: stop when the examples are done, at most {_RUN_CAP_S})")
    parser.add_argument("--quick", action="store_true", help="only the first backend, with a key")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.seed = args.seed if args.seed is not None else random.randrange(1, 2**31)
    out = args.out or Path(tempfile.mkdtemp(prefix="gw-fuzz-api-"))
    out.mkdir(parents=True, exist_ok=True)
    backends = args.backends.split(",")[:1] if args.quick else args.backends.split(",")
    runs = [(b, k) for b in backends for k in ((True,) if args.quick else (True, False))]
    print(f"seed {args.seed}, {args.examples} examples per operation, reports in {out}")
    print(f"{'run':<16}{'cases':>8}{'seconds':>9}  problems")
    found = False
    for backend, keyed in runs:
        run, seconds = _one(backend, keyed, args, out)
        name = f"{backend}-{'key' if keyed else 'nokey'}"
        print(f"{name:<16}{run.cases:>8}{seconds:>9.1f}  {len(run.problems)}")
        for line in run.problems:
            print(f"    {line}")
        if run.problems:
            found = True
            print(run.explain()[-6000:])
    print("replay a finding with:  .venv/bin/python bench/fuzz_api.py "
          f"--seed {args.seed} --examples {args.examples}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
