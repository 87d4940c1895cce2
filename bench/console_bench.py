"""The web console's targets, measured in Debian's headless Chromium (Playwright, launched by
`executable_path`; nothing is downloaded):

- first load: compressed bytes of every `/console` asset a fresh profile fetches (the
  sign-in page, and a signed-in first page), target ≤ 200 KB;
- time to interactive: `performance.now()` when the sign-in form (or the first page) is
  ready, fresh profile, loopback; target ≤ 1 s;
- the live request log at 100 requests/s: animation-frame gaps, long tasks and the page's
  main-thread CPU (thread time from a Chromium trace, which a busy neighbour does not inflate)
  on the log page while a bounded load runs, next to the same page idle (the baseline, same
  run).

The gateway runs as `gatewise serve` in its own process (the in-process fake model answers),
so the load generator, the server and the browser do not share an interpreter.

    .venv/bin/python bench/console_bench.py [--rate 100] [--seconds 5]

Prints one table; exit status 0 when every target is met, 1 otherwise. Bounded: well under a
minute. Never part of the test run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.console.browser import (
    FRAMES_START_JS,
    FRAMES_STOP_JS,
    Load,
    first_load,
    launch,
    open_page,
    renderer_main_thread,
    sign_in,
)
from tests.fakes.ports import free_port

MASTER = "sk-master-console-bench"
CONFIG = f"""
models:
  echo:
    - model: fake/echo
server:
  master_key: {MASTER}
  warmup: false
health:
  probe_providers: false
observability:
  logging:
    requests: false
"""


def _serve(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    cfg = state / "gatewise.yaml"
    cfg.write_text(CONFIG)
    port = free_port()
    env = {**os.environ, "GATEWISE_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-m", "gatewise.cli.main", "serve", "-c", str(cfg),
                             "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the gateway did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _serve(Path(tmp))
        try:
            r = httpx.post(url + "/admin/keys", json={"name": "bench", "role": "member"},
                           headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
            member = r.json()["key"]
            with sync_playwright() as p:
                browser = launch(p)
                signin = first_load(browser, url, None)
                first = first_load(browser, url, member)
                page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
                sign_in(page, url, MASTER)
                open_page(page, url, "log")
                trace = Path(tmp) / "trace.json"
                categories = ["devtools.timeline", "disabled-by-default-devtools.timeline"]
                page.evaluate(FRAMES_START_JS)
                browser.start_tracing(page=page, path=str(trace), categories=categories)
                page.wait_for_timeout(int(args.seconds * 1000) + 500)
                browser.stop_tracing()
                idle = page.evaluate(FRAMES_STOP_JS)
                idle_work = renderer_main_thread(trace)
                page.evaluate(FRAMES_START_JS)
                browser.start_tracing(page=page, path=str(trace), categories=categories)
                with Load(url, member, "echo", args.rate, args.seconds) as load:
                    pass
                page.wait_for_timeout(500)
                browser.stop_tracing()
                busy = page.evaluate(FRAMES_STOP_JS)
                work = renderer_main_thread(trace)
                seen = int(page.inner_text("#log-seen").split()[0])
                rows = page.locator("#log-rows tr").count()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    rps = load.sent / load.elapsed
    rows_out = [
        ("first load, sign-in page (gzip bytes)", f"{signin['encoded'] / 1024:.1f} KB",
         f"{signin['decoded'] / 1024:.1f} KB uncompressed", "≤ 200 KB",
         signin["encoded"] <= 200 * 1024),
        ("first load, signed-in playground (gzip bytes)", f"{first['encoded'] / 1024:.1f} KB",
         f"{first['decoded'] / 1024:.1f} KB uncompressed", "≤ 200 KB",
         first["encoded"] <= 200 * 1024),
        ("time to interactive, sign-in page", f"{signin['interactive_ms']:.0f} ms",
         f"DOM interactive {signin['dom_interactive_ms']:.0f} ms", "≤ 1000 ms",
         signin["interactive_ms"] <= 1000),
        ("time to interactive, signed-in playground", f"{first['interactive_ms']:.0f} ms",
         f"DOM interactive {first['dom_interactive_ms']:.0f} ms", "≤ 1000 ms",
         first["interactive_ms"] <= 1000),
        (f"live log at {rps:.0f} req/s: frame gap p95", f"{busy['p95']:.1f} ms",
         f"idle p95 {idle['p95']:.1f} ms (ratio {busy['p95'] / max(idle['p95'], 1e-9):.2f})",
         "≤ 50 ms", busy["p95"] <= 50),
        ("live log: frame gap max", f"{busy['max']:.1f} ms", f"idle max {idle['max']:.1f} ms",
         "", True),
        ("live log: page main-thread CPU", f"{work['cpu_ms']:.0f} ms",
         f"idle {idle_work['cpu_ms']:.0f} ms; window {args.seconds + 0.5:.1f} s", "≤ 25 %",
         work["cpu_ms"] <= 0.25 * (args.seconds + 0.5) * 1000),
        ("live log: longest main-thread task (CPU)", f"{work['max_task_cpu_ms']:.1f} ms",
         f"idle {idle_work['max_task_cpu_ms']:.1f} ms; wall {work['max_task_wall_ms']:.0f} ms",
         "≤ 50 ms", work["max_task_cpu_ms"] <= 50),
        ("live log: long tasks (count, total)", f"{busy['long_tasks']}, {busy['long_ms']:.0f} ms",
         f"idle {idle['long_tasks']}, {idle['long_ms']:.0f} ms", "", True),
        ("live log: requests shown / sent", f"{seen} / {load.sent}",
         f"{rows} rows in the DOM (virtualised); {load.failed} failed", "all", seen >= load.sent),
    ]
    print(f"\nconsole bench (load average {load_before:.2f} → {os.getloadavg()[0]:.2f})")
    print(f"{'figure':48} {'value':>16}  {'baseline / detail':44} {'target':>10}  met")
    for name, value, base, target, ok in rows_out:
        print(f"{name:48} {value:>16}  {base:44} {target:>10}  {'yes' if ok else 'NO'}")
    return 0 if all(r[4] for r in rows_out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
