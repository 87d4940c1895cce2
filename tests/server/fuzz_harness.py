"""Schemathesis over the OpenAPI document the server itself serves, shared by the suite
(`test_schemathesis.py`, small and derandomised) and `bench/fuzz_api.py` (longer runs).

The real app runs in process under uvicorn on 127.0.0.1 (`GatewayServer`), with the in-process
`fake/...` provider behind its aliases, so every request is answered in microseconds and no
network leaves the machine. The schemathesis CLI runs as a child process against it, with
every check (`--checks all`: server errors, status codes, content types, headers, response
bodies, positive and negative data, unsupported methods and `Allow`, auth, stateful links) in
every phase, and writes a JSON report; `FuzzRun.problems` is what the run found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MASTER = "sk-master-fuzz"
# Aliases the hooks steer generated bodies to, each on an in-process fake deployment.
MODELS = {"chat": "fake/echo", "tools": "fake/tools", "embed": "fake/echo"}


def fuzz_config(state_dir: Path, *, postgres_url: str | None = None,
                postgres_schema: str | None = None) -> dict[str, Any]:
    """A gateway with a master key, fake deployments and SQLite state under `state_dir`, or
    PostgreSQL state in `postgres_schema` when `postgres_url` is given."""
    storage: dict[str, Any] = {"state_dir": str(state_dir)}
    if postgres_url is not None:
        storage.update(database="postgres", postgres_url=postgres_url,
                       postgres_schema=postgres_schema or "gatewise_fuzz")
    return {
        "models": {alias: [{"model": model}] for alias, model in MODELS.items()},
        # So `/v1/titles` (whose `model` is optional) reaches a model, not a 404.
        "default_model": "chat",
        "server": {"master_key": MASTER, "warmup": False},
        "storage": storage,
    }


@dataclass
class FuzzRun:
    report: dict[str, Any]
    output: str
    returncode: int

    @property
    def cases(self) -> int:
        return int(self.report.get("test_cases", {}).get("generated", 0))

    @property
    def problems(self) -> list[str]:
        """Failures, errors and an incomplete run, one line each; empty when all is well."""
        return self.problems_in(lambda operation: True)

    def problems_in(self, wanted: Callable[[str], bool]) -> list[str]:
        """`problems`, failures counted only on the operations `wanted` picks (by their name,
        e.g. `POST /v1/chat/completions`, or `Stateful tests`)."""
        out = []
        for f in self.report.get("failures", []):
            ops = [op for op in f["operations"] if wanted(op)]
            if ops:
                out.append(f"{f['code']} {f['title']}: {', '.join(ops)}")
        out += [f"error: {e}" for e in self.report.get("errors", [])]
        if not self.report.get("complete", False):
            out.append(f"incomplete run: {self.report.get('stop_reason')}")
        return out

    def explain(self, problems: list[str] | None = None) -> str:
        """The problems and the tail of the CLI's own report (which has a curl line per case)."""
        lines = self.problems if problems is None else problems
        return "\n".join([*lines, "--- schemathesis output (tail) ---", self.output[-12000:]])


def run_schemathesis(url: str, report_dir: Path, *, key: str | None = MASTER,
                     max_examples: int = 10, phases: str = "examples,coverage,fuzzing,stateful",
                     max_time_s: int | None = None, timeout_s: float = 600,
                     deterministic: bool = True, seed: int = 1) -> FuzzRun:
    """One `schemathesis run` over `url`/openapi.json; `key=None` sends no credentials."""
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "report.json"
    args = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
            "--checks", "all", "--phases", phases, "--max-examples", str(max_examples),
            "--workers", "1", "--no-color", "--report", "json",
            "--report-json-path", str(report), "--request-timeout", "30"]
    args += (["--generation-deterministic"] if deterministic
             else ["--seed", str(seed), "--generation-database", "none"])
    if max_time_s is not None:
        args += ["--max-time", str(max_time_s)]
    if key is not None:
        args += ["--header", f"Authorization: Bearer {key}"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.server.fuzz_hooks",
           "GATEWISE_FUZZ_MODELS": ",".join(MODELS),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "NO_COLOR": "1"}
    proc = subprocess.run(args, cwd=report_dir, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    data = json.loads(report.read_text()) if report.exists() else {
        "complete": False, "stop_reason": f"no report (exit {proc.returncode})"}
    return FuzzRun(data, proc.stdout + proc.stderr, proc.returncode)
