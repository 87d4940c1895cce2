"""Schemathesis over the document the server serves (issue 9's acceptance test): every route,
SQLite and PostgreSQL state, authenticated as the master key and without any key, ends with 0
server errors and 0 mismatches between what the document says and what the server does.

Every check runs in every phase (`fuzz_harness.py`): server errors, documented status codes,
content types and headers, response bodies (SSE events included), schema-valid requests
accepted and schema-violating ones refused, undocumented methods answered 405 with `Allow`,
auth honoured, stateful links between admin routes. Generation is derandomised, so a run is
the same on every machine; a few examples per operation keep a run near 85 s on an idle
2-core machine (most of it the coverage phase's boundary cases, ~14,000 a run), and the two
keyed runs go side by side.
`bench/fuzz_api.py` runs the long, randomised version.

The OpenAI-compatible routes and the admin API are judged apart, so a failure says whose it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.services import require_pg
from tests.server.fuzz_harness import MASTER, FuzzRun, fuzz_config, run_schemathesis

EXAMPLES = 10  # per operation and phase; ~85 s a run on an idle 2-core machine


def _is_admin(operation: str) -> bool:
    # Stateful sequences chain the admin routes (keys, teams, budgets, credentials).
    return operation.startswith(("GET /admin", "POST /admin", "PATCH /admin", "DELETE /admin",
                                 "PUT /admin")) or operation == "Stateful tests"


@pytest.fixture(scope="module")
def keyed_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FuzzRun]]:
    """Both keyed runs at once, one gateway each: schemathesis's case generation is most of
    a run's time and each run is its own process, so two of them take the wall time of one
    on two cores (about 90 s instead of 170)."""
    schema = f"gw_fuzz_{os.getpid()}_{os.urandom(4).hex()}"
    pg_url = require_pg()
    states = {name: tmp_path_factory.mktemp(f"fuzz-{name}") for name in ("sqlite", "postgres")}
    runs: dict[str, FuzzRun] = {}
    try:
        with GatewayServer(fuzz_config(states["sqlite"])) as lite, \
                GatewayServer(fuzz_config(states["postgres"], postgres_url=pg_url,
                                          postgres_schema=schema)) as pg:
            with ThreadPoolExecutor(2) as pool:
                futures = {name: pool.submit(run_schemathesis, srv.url,
                                             states[name] / "report", max_examples=EXAMPLES)
                           for name, srv in (("sqlite", lite), ("postgres", pg))}
                runs = {name: f.result() for name, f in futures.items()}
            yield runs
    finally:
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def keyed_run(request: pytest.FixtureRequest, keyed_runs: dict[str, FuzzRun]) -> FuzzRun:
    return keyed_runs[request.param]


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with GatewayServer(fuzz_config(tmp_path_factory.mktemp("fuzz-nokey"))) as srv:
        yield srv


def test_the_openai_api_matches_its_document(keyed_run: FuzzRun) -> None:
    problems = keyed_run.problems_in(lambda op: not _is_admin(op))
    assert not problems, keyed_run.explain(problems)
    assert keyed_run.cases > 500  # it did run


def test_the_admin_api_matches_its_document(keyed_run: FuzzRun) -> None:
    problems = keyed_run.problems_in(_is_admin)
    assert not problems, keyed_run.explain(problems)


def test_without_a_key_the_document_still_holds(sqlite_server: GatewayServer,
                                                tmp_path: Path) -> None:
    # The keyed runs already walk the coverage phase's ~2,500 boundary cases; without a key
    # every answer is the same 401, so random cases per operation are enough here.
    run = run_schemathesis(sqlite_server.url, tmp_path, key=None, max_examples=5,
                           phases="fuzzing")
    assert not run.problems, run.explain()
    assert run.cases > 100


def test_without_a_key_every_route_but_the_public_ones_is_a_documented_401(
        sqlite_server: GatewayServer) -> None:
    doc: dict[str, Any] = httpx.get(sqlite_server.url + "/openapi.json", timeout=30).json()
    public = set()
    for template, ops in doc["paths"].items():
        path = template.replace("{", "").replace("}", "")  # any value: auth comes first
        for method, op in ops.items():
            r = httpx.request(method.upper(), sqlite_server.url + path, timeout=30,
                              json={} if method in ("post", "patch") else None)
            if not op.get("security"):
                public.add(template)
                assert r.status_code == 200, (method, template, r.status_code)
                continue
            assert r.status_code == 401, (method, template, r.status_code, r.text[:200])
            assert "401" in op["responses"], (method, template)
            assert r.json()["error"]["type"]
    assert public == {"/healthz", "/readyz", "/openapi.json"}
    with_key = httpx.get(sqlite_server.url + "/metrics", timeout=30,
                         headers={"authorization": f"Bearer {MASTER}"})
    assert with_key.status_code == 200
