"""Maintenance jobs as an operator reaches them: `GET /admin/maintenance` lists what the
answering replica's jobs did, `POST /admin/maintenance/{job}/run` runs one now under its lease,
both for admins only; `gatewise maintenance list | run` does the same from the command line
over the configured stores (a cron job beside the servers)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

MASTER = "sk-gatewise-test-maintenance-master"


def _config(upstream: FakeServer, state: Path) -> dict[str, Any]:
    return {
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": upstream.url + "/v1",
                            "api_key": "sk-up"}]},
        "server": {"master_key": MASTER},
        "storage": {"state_dir": str(state)},
        "cache": {"enabled": True},
    }


def _call(srv: GatewayServer, method: str, path: str, key: str = MASTER) -> httpx.Response:
    return httpx.request(method, srv.url + path, timeout=30,
                         headers={"authorization": f"Bearer {key}"})


@pytest.fixture(scope="module")
def server(openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    with GatewayServer(_config(openai_fake, tmp_path_factory.mktemp("maint"))) as srv:
        yield srv


def test_an_admin_sees_every_job_with_its_interval_and_history(server: GatewayServer) -> None:
    body = _call(server, "GET", "/admin/maintenance").json()
    assert body["object"] == "list" and body["running"] is True and body["holder"]
    jobs = {row["job"]: row for row in body["data"]}
    assert {"cache_cleanup", "retention_purge", "health_report"} <= set(jobs)
    assert all(row["interval_s"] > 0 for row in jobs.values())


def test_a_job_runs_on_demand_and_its_outcome_is_counted(server: GatewayServer) -> None:
    before = {r["job"]: r for r in _call(server, "GET", "/admin/maintenance").json()["data"]}
    r = _call(server, "POST", "/admin/maintenance/cache_cleanup/run")
    assert r.status_code == 200, r.text
    assert r.json()["job"] == "cache_cleanup" and r.json()["outcome"] == "ok"
    after = {r["job"]: r for r in _call(server, "GET", "/admin/maintenance").json()["data"]}
    assert after["cache_cleanup"]["runs"] == before["cache_cleanup"]["runs"] + 1
    assert after["cache_cleanup"]["last_outcome"] == "ok"
    assert after["cache_cleanup"]["last_run"] is not None


def test_an_unknown_or_malformed_job_is_refused_in_the_error_shape(
        server: GatewayServer) -> None:
    missing = _call(server, "POST", "/admin/maintenance/no_such_job/run")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "maintenance_job_not_found"
    hostile = _call(server, "POST", "/admin/maintenance/..%2Fkeys/run")
    assert hostile.status_code in (400, 404)
    assert "error" in hostile.json()


def test_only_admins_may_list_or_run_jobs(server: GatewayServer) -> None:
    r = httpx.post(server.url + "/admin/keys", timeout=30,
                   headers={"authorization": f"Bearer {MASTER}"},
                   json={"name": "ops-viewer", "role": "viewer"})
    viewer = r.json()["key"]
    assert _call(server, "GET", "/admin/maintenance", viewer).status_code == 403
    assert _call(server, "POST", "/admin/maintenance/cache_cleanup/run",
                 viewer).status_code == 403
    assert _call(server, "GET", "/admin/maintenance", "sk-wrong").status_code == 401


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatewise.cli.main", *argv],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_cli_lists_and_runs_jobs_over_the_configured_stores(
        openai_fake: FakeServer, tmp_path: Path) -> None:
    cfg = tmp_path / "gatewise.yaml"
    cfg.write_text(yaml.safe_dump(_config(openai_fake, tmp_path / "state")))
    listed = _cli("maintenance", "list", "--config", str(cfg))
    assert listed.returncode == 0, listed.stderr
    assert "cache_cleanup" in listed.stdout and "retention_purge" in listed.stdout
    ran = _cli("maintenance", "run", "cache_cleanup", "retention_purge", "--json",
               "--config", str(cfg))
    assert ran.returncode == 0, ran.stderr
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(r["job"], r["outcome"]) for r in rows] == [("cache_cleanup", "ok"),
                                                         ("retention_purge", "ok")]
    unknown = _cli("maintenance", "run", "nope", "--config", str(cfg))
    assert unknown.returncode == 2 and "unknown job 'nope'" in unknown.stderr
