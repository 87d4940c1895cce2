"""Does a burst of guarded requests slow the bare path down? (issue 15)

One gatewise server with two aliases on the anchor's nginx upstream: `fake` (no guard) and
`guarded` (pattern PII masking + the injection check, the `paths_bench.py` guarded policy and
~1 KB prompt). First the bare alias alone (hey, one connection), then the same while wrk keeps
`--conns` guarded requests in flight: the bare path's p50/p99 latency both ways and the guarded
req/s; then the guarded path alone at c=64 (as `paths_bench.py` loads it): CPU ms per request.

    .venv/bin/python bench/guard_load.py [--duration 8] [--conns 16] [--offload-chars N]
    PYTHONPATH=/some/other/tree .venv/bin/python bench/guard_load.py   # that tree's gatewise

`--offload-chars` / `--check-threads` set `guardrails.offload_chars` / `check_threads` (omit
them to keep the server's defaults, e.g. for an older tree without the settings). Loopback
only; stops by itself (about 40 s).
Standalone: never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from harness import (
    NICE,
    BenchError,
    Lifetime,
    free_port,
    port_busy,
    ready,
    run,
    set_autogroup,
    signals_raise,
    spawn,
    stop_group,
    tree_cpu_s,
    wait_http,
)
from paths_bench import GUARD_TEXT
from services import UPSTREAM_PORT, start_upstream

UP = f"http://127.0.0.1:{UPSTREAM_PORT}/v1"


def config(key: str, state: Path, offload_chars: int | None,
           check_threads: int | None = None) -> dict[str, Any]:
    model = {"model": "openai/fake", "api_base": UP, "api_key": "sk-fake"}
    guards: dict[str, Any] = {"aliases": {"guarded": {"pii": {"action": "mask"},
                                                      "injection": {"action": "block"}}}}
    if offload_chars is not None:
        guards["offload_chars"] = offload_chars
    if check_threads is not None:
        guards["check_threads"] = check_threads
    return {"models": {"fake": [model], "guarded": [model]}, "server": {"master_key": key},
            "storage": {"state_dir": str(state)}, "router": {"retry": {"max_retries": 0}},
            "guardrails": guards}


def body(model: str, text: str) -> str:
    return json.dumps({"model": model, "max_tokens": 64, "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text}]})


def hey(url: str, body_file: Path, key: str, seconds: float, warm: bool = False) -> dict[str, float]:
    out = run(["nice", "-n", NICE, "hey", "-z", f"{seconds:g}s", "-c", "1", "-m", "POST",
               "-T", "application/json", "-H", f"Authorization: Bearer {key}",
               "-D", str(body_file), url], dict(os.environ), seconds + 30)
    got = {p: float(v) * 1000 for p, v in re.findall(r"(\d+)%+ in ([\d.]+) secs", out)}
    n = re.search(r"\[200\]\s+(\d+) responses", out)
    if warm and n is not None:
        return {}
    if "50" not in got or n is None:
        raise BenchError(f"hey failed: {out.strip()[-600:]}")
    # hey prints no 99th percentile for fewer than 100 responses: the slowest one stands in.
    slowest = re.search(r"resp wait:\s+[\d.]+ secs, [\d.]+ secs, ([\d.]+) secs", out)
    p99 = got.get("99") or (float(slowest.group(1)) * 1000 if slowest else float("nan"))
    return {"p50": got["50"], "p99": p99, "n": float(n.group(1))}


def wrk_json(out: str) -> dict[str, Any]:
    line = next((x for x in out.splitlines() if x.startswith("JSON ")), None)
    if line is None:
        raise BenchError("wrk printed no result")
    got: dict[str, Any] = json.loads(line[5:])
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of guarded load")
    ap.add_argument("--conns", type=int, default=16, help="guarded requests in flight (wrk)")
    ap.add_argument("--offload-chars", type=int, default=None)
    ap.add_argument("--check-threads", type=int, default=None)
    a = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="gw-guard-load-"))
    paths = ready(out)
    key = paths.api_key
    bare_file, guarded_file = out / "bare.json", out / "guarded.json"
    bare_file.write_text(body("fake", "Say hello and ask how you can help me today."))
    guarded_file.write_text(body("guarded", GUARD_TEXT))
    cfg = out / "gatewise.yaml"
    cfg.write_text(yaml.safe_dump(config(key, out / "state", a.offload_chars, a.check_threads)))
    life = Lifetime(log=lambda m: print(m, file=sys.stderr))
    with signals_raise():
        try:
            if not port_busy(UPSTREAM_PORT):  # another run's fake upstream serves as well
                start_upstream(paths, life)
            port = free_port()
            proc = spawn(["nice", "-n", NICE, paths.gatewise_bin, "serve", "--config", cfg,
                          "--host", "127.0.0.1", "--port", str(port)],
                         {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")},
                         out / "server.log", life, "gatewise")
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz", 60)
            url = f"{base}/v1/chat/completions"
            hey(url, guarded_file, key, 1.0, warm=True)  # builds the analyzer, trains the model
            alone = hey(url, bare_file, key, 4.0)
            env = dict(os.environ, BODY_FILE=str(guarded_file), API_KEY=key, MODEL="guarded")
            wrk = subprocess.Popen(
                ["nice", "-n", NICE, "wrk", "-t1", f"-c{a.conns}", "--timeout", "30s", "-s",
                 str(paths.script("chat.lua")), f"-d{a.duration:g}s", url],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            set_autogroup(wrk.pid)
            try:
                time.sleep(1.0)
                c0 = tree_cpu_s(proc.pid)
                loaded = hey(url, bare_file, key, max(1.0, a.duration - 2.5))
                wrk_out, _ = wrk.communicate(timeout=a.duration + 30)
                c1 = tree_cpu_s(proc.pid)
            finally:
                if wrk.poll() is None:
                    stop_group(wrk.pid, grace=2)
            w = wrk_json(wrk_out.decode())
            # The guarded path alone at c=64, as paths_bench.py loads it: CPU per request.
            c2 = tree_cpu_s(proc.pid)
            g = wrk_json(run(["nice", "-n", NICE, "wrk", "-t2", "-c64", "--timeout", "30s", "-s",
                              str(paths.script("chat.lua")), f"-d{a.duration:g}s", url], env,
                             a.duration + 30))
            guarded_cpu = (tree_cpu_s(proc.pid) - c2) * 1000 / max(g["requests"], 1)
        except BenchError as exc:
            print(f"! {exc}", file=sys.stderr)
            return 2
        finally:
            life.close()
    errors = sum(w[k] for k in ("err_status", "err_timeout", "err_connect", "err_read", "err_write"))
    served = w["requests"] * (a.duration - 2.5 - 1.0) / w["duration_s"] + loaded["n"]
    print(f"{'bare path (hey c=1)':<26} {'p50 ms':>7} {'p99 ms':>7}")
    print(f"{'alone':<26} {alone['p50']:>7.2f} {alone['p99']:>7.2f}")
    print(f"{'with guarded load':<26} {loaded['p50']:>7.2f} {loaded['p99']:>7.2f}")
    print(f"\nguarded: {w['rps']:,.0f} req/s at c={a.conns} ({errors} errors); server CPU while "
          f"both ran: {(c1 - c0) * 1000 / max(served, 1):.3f} ms per request (both kinds)")
    print(f"guarded alone, c=64: {g['rps']:,.0f} req/s, {guarded_cpu:.3f} CPU ms per request "
          f"({1000 / guarded_cpu:,.0f} req/s per core)")
    print(f"offload_chars={a.offload_chars if a.offload_chars is not None else 'default'}, "
          f"check_threads={a.check_threads if a.check_threads is not None else 'default'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
