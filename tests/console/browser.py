"""Driving the web console in Debian's Chromium through Playwright (shared by the browser tests
and `bench/console_bench.py`): the launch (an `executable_path`, never a downloaded browser),
sign-in, the console's page list (read from `pages.js`, so a new page is visited without
touching the tests), and the in-page measurements (asset bytes, time to interactive, frame
gaps and long tasks)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.server.console.assets import STATIC

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).with_name("artifacts")
AXE = Path(__file__).with_name("vendor") / "axe.min.js"


def console_pages() -> list[tuple[str, str, str]]:
    """(id, title, permission) of every nav entry, in order, from the one list in pages.js."""
    text = (STATIC / "pages.js").read_text()
    return re.findall(r'\{ id: "([a-z0-9-]+)", title: "([^"]+)", needs: "([a-z:*]+)" \}', text)


def require_chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    return path


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=require_chromium(), args=ARGS)


def sign_in(page: Any, url: str, key: str) -> None:
    """Through the form, as a person would."""
    page.goto(url + "/console")
    page.fill("#signin-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#nav-list a")
    page.wait_for_selector("#page[data-ready]")


def open_page(page: Any, url: str, page_id: str) -> None:
    """Visits `#/<id>` and waits until the page module has rendered."""
    page.evaluate("() => { delete document.getElementById('page').dataset.ready; }")
    target = f"{url}/console#/{page_id}"
    if page.url == target:
        page.reload()  # the same address: no hashchange would re-render it
    else:
        page.goto(target)
    page.wait_for_selector(f"#page[data-page='{page_id}'][data-ready]")


def watch_errors(page: Any) -> list[str]:
    """Console errors, uncaught exceptions and CSP violations, as they happen."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(f"console.{m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(f"pageerror: {e}"))
    return seen


FIRST_LOAD_JS = """() => {
  const entries = [performance.getEntriesByType('navigation')[0],
                   ...performance.getEntriesByType('resource')];
  const assets = entries.filter(e => new URL(e.name).pathname.startsWith('/console'));
  const nav = performance.getEntriesByType('navigation')[0];
  return {
    encoded: assets.reduce((n, e) => n + e.encodedBodySize, 0),
    decoded: assets.reduce((n, e) => n + e.decodedBodySize, 0),
    files: assets.map(e => new URL(e.name).pathname),
    dom_interactive_ms: nav.domInteractive,
    load_ms: nav.loadEventEnd,
    // app.js marks the moment the sign-in form or the first page is ready for input.
    interactive_ms: (performance.getEntriesByName('gw:interactive')[0] || {startTime: -1}).startTime,
  };
}"""

def first_load(browser: Any, url: str, key: str | None, rounds: int = 3) -> dict[str, Any]:
    """`/console` in a fresh profile (nothing cached), signed in first through the API when a
    key is given: the assets' bytes and the time to interactive, best of `rounds` (a shared
    machine's neighbours only ever add time)."""
    best: dict[str, Any] | None = None
    for _ in range(rounds):
        context = browser.new_context()
        page = context.new_page()
        try:
            if key is not None:
                r = context.request.post(url + "/console/session", data={"key": key})
                assert r.status == 201, r.text()
            page.goto(url + "/console")
            page.wait_for_selector("#signin:not([hidden]), #page[data-ready]")
            stats: dict[str, Any] = page.evaluate(FIRST_LOAD_JS)
        finally:
            context.close()
        if best is None or 0 < stats["interactive_ms"] < best["interactive_ms"]:
            best = stats
    assert best is not None
    return best


FRAMES_START_JS = """() => {
  const g = window.__gw = { gaps: [], long: [], last: performance.now(), on: true };
  const obs = new PerformanceObserver(
    list => { for (const e of list.getEntries()) g.long.push(e.duration); });
  obs.observe({ type: 'longtask', buffered: false });
  g.obs = obs;
  const tick = (t) => {
    if (!g.on) return;
    g.gaps.push(t - g.last); g.last = t; requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""

FRAMES_STOP_JS = """() => {
  const g = window.__gw; g.on = false; g.obs.disconnect();
  const gaps = g.gaps.slice(1).sort((a, b) => a - b);
  const q = p => gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(p * gaps.length))] : 0;
  return { frames: gaps.length, p50: q(0.5), p95: q(0.95), max: gaps.length ? gaps[gaps.length - 1] : 0,
           long_tasks: g.long.length, long_ms: g.long.reduce((a, b) => a + b, 0) };
}"""


def renderer_main_thread(trace: Path) -> dict[str, float]:
    """The page's main-thread work in a Chromium trace (`browser.start_tracing`): task count,
    CPU ms in total and of the longest task, by thread time (`tdur`), which a loaded machine
    does not inflate the way it inflates wall time."""
    data = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    main = {(e["pid"], e["tid"]) for e in events
            if e.get("ph") == "M" and e.get("name") == "thread_name"
            and e.get("args", {}).get("name") == "CrRendererMain"}
    cpu = [e.get("tdur", 0) / 1000 for e in events
           if e.get("ph") == "X" and e.get("name") == "RunTask" and (e["pid"], e["tid"]) in main]
    wall = [e.get("dur", 0) / 1000 for e in events
            if e.get("ph") == "X" and e.get("name") == "RunTask" and (e["pid"], e["tid"]) in main]
    return {"tasks": len(cpu), "cpu_ms": round(sum(cpu), 1),
            "max_task_cpu_ms": round(max(cpu, default=0.0), 1),
            "max_task_wall_ms": round(max(wall, default=0.0), 1)}


class Load:
    """Chat requests at a steady rate from a background thread, for a bounded time."""

    def __init__(self, url: str, key: str, model: str, rate: float, seconds: float) -> None:
        self.url, self.key, self.model = url, key, model
        self.rate, self.seconds = rate, seconds
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = {"model": self.model, "messages": [{"role": "user", "content": "load"}]}
        headers = {"authorization": f"Bearer {self.key}"}
        start = time.perf_counter()
        n = int(self.rate * self.seconds)
        with httpx.Client(base_url=self.url, timeout=30, headers=headers) as client:
            for i in range(n):
                delay = start + i / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                r = client.post("/v1/chat/completions", json=body)
                self.sent += 1
                if r.status_code != 200:
                    self.failed += 1
        self.elapsed = time.perf_counter() - start

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(self.seconds * 4 + 30)
