"""One function per kind of measurement; each runs the anchor's own script where there is one
and returns plain numbers (and leaves the script's raw output in the run's results folder)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import BenchError, Paths, run
from services import Server, script_env

BENCH = Path(__file__).resolve().parent


def _anchor_module(paths: Paths, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"anchor_{name}", paths.script(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {name}.py from {paths.anchor}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load(paths: Paths, label: str, url: str, *, conns: int, tool: str, duration: float,
         warmup: float, cpu_pid: int | None, model: str = "fake") -> dict[str, Any]:
    """One closed-loop run of run_load.sh: `wrk` for req/s, `hey` for raw latency; with
    `cpu_pid`, the CPU milliseconds that process tree spent per request."""
    env = script_env(paths, TARGET_URL=url, LABEL=label, CONNS=str(conns), TOOLS=tool,
                     DURATION=f"{duration:g}s", WARMUP=f"{warmup:g}s", MODEL=model)
    if cpu_pid is not None:
        env["GW_PID"] = str(cpu_pid)
    out = run(["bash", paths.script("run_load.sh")], env, timeout=duration + warmup + 60,
              log=paths.out / "load.log")
    if "sanity: HTTP 200" not in out:
        raise BenchError(f"{label}: sanity request failed: {out.splitlines()[:1]}")
    summarize = _anchor_module(paths, "summarize")
    raw = paths.out / f"{label}_c{conns}_{tool}.txt"
    parsed: dict[str, Any] | None = (summarize.parse_wrk if tool == "wrk" else summarize.parse_hey)(
        str(raw))
    if not parsed:
        raise BenchError(f"{label}: no {tool} result in {raw}")
    m = re.search(r"cpu_ms_per_req ([\d.]+)", raw.read_text())
    parsed["cpu_ms_per_req"] = float(m.group(1)) if m else None
    errors = (parsed.get("non200", 0) + parsed.get("errors", 0) if tool == "hey" else
              sum(parsed[k] for k in ("err_status", "err_timeout", "err_connect", "err_read",
                                      "err_write")))
    parsed["failed"] = errors
    if errors:
        raise BenchError(f"{label}: {errors} failed requests under load (see {raw})")
    return parsed


def ttfb(paths: Paths, label: str, url: str, model: str, n: int) -> dict[str, float]:
    """ttfb.sh: n sequential streaming requests with curl, time to first byte percentiles."""
    env = script_env(paths, TARGET_URL=url, LABEL=label, MODEL=model, STREAM="1", N=str(n))
    out = run(["bash", paths.script("ttfb.sh")], env, timeout=30 + n * 0.5,
              log=paths.out / "ttfb.log")
    m = re.search(r"ttfb_ms n=(\d+) mean=([\d.]+) p50=([\d.]+) p90=([\d.]+) p99=([\d.]+)", out)
    bad = re.search(r"non200=(\d+)", out)
    if not m or not bad or int(bad.group(1)) or int(m.group(1)) != n:
        raise BenchError(f"{label}: ttfb.sh failed: {out.strip()[-200:]}")
    return {"n": int(m.group(1)), "mean_ms": float(m.group(2)), "p50_ms": float(m.group(3)),
            "p90_ms": float(m.group(4)), "p99_ms": float(m.group(5))}


def ttfb_keepalive(paths: Paths, url: str, model: str, n: int) -> dict[str, float]:
    """The same streaming request n times on ONE kept-alive curl connection: TTFB without the
    server's per-connection cost, which ttfb.sh (a new connection each time) includes."""
    body = paths.script("body_stream.json").read_text().replace("__MODEL__", model)
    body = body.replace("\n", "")
    argv = ["curl", "-s", "-N", "-o", "/dev/null", "-w", "%{stderr}%{http_code} %{time_starttransfer}\n",
            "-H", f"Authorization: Bearer {paths.api_key}", "-H", "Content-Type: application/json",
            "-d", body, *([url] * n)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30 + n * 0.1)
    rows = [line.split() for line in r.stderr.splitlines() if line.strip()]
    ms = sorted(float(t) * 1000 for code, t in rows if code == "200")
    if len(ms) != n:
        raise BenchError(f"keep-alive ttfb: {n - len(ms)} of {n} requests failed on {url}")
    return {"n": n, "p50_ms": statistics.median(ms), "p90_ms": ms[int(0.9 * (n - 1))]}


def sdk(paths: Paths, python: Path, clients: str, extra: str | None, upstream: Server, *,
        n: int, warmup: int, rounds: int, label: str) -> list[dict[str, Any]]:
    """sdk_overhead.py in `python`'s venv: CPU µs per sequential awaited call, per client."""
    env = script_env(paths, PYTHONPATH=str(BENCH))
    if extra:
        env["EXTRA_CLIENT"] = extra
    argv: list[str | os.PathLike[str]] = [
        python, paths.script("sdk_overhead.py"), "--base-url", f"{upstream.base}/v1",
        "--api-key", paths.api_key, "--clients", clients, "--n", str(n), "--warmup", str(warmup),
        "--rounds", str(rounds)]
    out = run(argv, env, timeout=120 + n * rounds * 0.02, log=paths.out / f"sdk_{label}.log")
    rows = [json.loads(line[5:]) for line in out.splitlines() if line.startswith("JSON ")]
    if not rows:
        raise BenchError(f"sdk_overhead.py ({label}) printed no results")
    return rows


def import_times(python: Path, code: str, runs: int, env: dict[str, str]) -> list[float]:
    """Wall seconds of `python -c code`, each in a fresh process (after one unmeasured run
    that warms the page cache and writes .pyc files)."""
    subprocess.run([str(python), "-c", code], env=env, check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([str(python), "-c", code], env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def import_profile(python: Path, module: str, env: dict[str, str], dest: Path) -> None:
    """`-X importtime` of one import, kept for whoever has to make it faster."""
    r = subprocess.run([str(python), "-X", "importtime", "-c", f"import {module}"], env=env,
                       timeout=120, capture_output=True, text=True)
    dest.write_text(r.stderr)


def bare_rss_mib(python: Path) -> float:
    """RSS of an idle bare interpreter, the floor under any Python server's idle RSS."""
    proc = subprocess.Popen([str(python), "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        pages = int(Path(f"/proc/{proc.pid}/statm").read_text().split()[1])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def local_model(paths: Paths, rounds: int, max_tokens: int, timeout: float) -> dict[str, Any]:
    argv: list[str | os.PathLike[str]] = [
        paths.python, BENCH / "local_model.py", "--rounds", str(rounds), "--max-tokens",
        str(max_tokens)]
    out = run(argv, dict(os.environ), timeout=timeout, log=paths.out / "local_model.log")
    lines = [line for line in out.splitlines() if line.startswith("JSON ")]
    if not lines:
        raise BenchError("local_model.py printed no result")
    res: dict[str, Any] = json.loads(lines[-1][5:])
    return res


def median(xs: list[float]) -> float:
    return statistics.median(xs)
