"""Speed on the paths people run: what gatewise costs per request on each common path, against
the same run's bare proxy and the fake upstream measured directly (issue 15).

Paths: bare proxy; traced (the bare proxy with OpenTelemetry on, sampling ratio 1, spans
exported over OTLP/HTTP to a discarding collector in another process); governed (virtual key
with RPM/TPM limits and a team budget, counters on
Redis 127.0.0.1:6379, ledger on PostgreSQL 127.0.0.1:5432/test in a fresh schema dropped
afterwards); guarded (pattern PII masking + injection check on a ~1 KB prompt); exact-cache hit;
streaming (the anchor's body_stream.json); `/v1/messages` (Anthropic body) translated to the
OpenAI-format upstream. One gatewise server per path, started and stopped here; wrk c=64 for
req/s and CPU ms/request of the server's process tree; hey c=1 for p50 latency (streaming: a
kept-alive curl for time to first byte). Targets (issue 15): bare CPU/req <= 0.10 ms,
traced CPU/req <= 1.2x bare (issue 14), governed CPU/req <= 1.5x bare, guarded >= 200 req/s
per core, streaming TTFB added <= 1 ms p50.

    .venv/bin/python bench/paths_bench.py          # about 3 minutes, hard cap 4
    .venv/bin/python bench/paths_bench.py --only bare,governed --workers 1,2

`--workers 1,2` runs each path once per worker count (`gatewise serve --workers N`; rows
`bare x2`...: CPU is the whole process tree's, parent included); `--only` picks paths.

Standalone: never part of the test run. Exit status: 0 all targets met, 1 one missed, 2 a path
could not be measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import measure
import yaml
from harness import (
    NICE,
    BenchError,
    Lifetime,
    Paths,
    free_port,
    ready,
    run,
    signals_raise,
    spawn,
    tree_cpu_s,
    wait_http,
)
from report import print_rows
from services import UPSTREAM_PORT, Server, start_upstream

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_USERS = ("postgres", "root")
BUDGET_S = 240.0
UP = f"http://127.0.0.1:{UPSTREAM_PORT}"
TEAM = "bench-team"
# A benign ~1 KB prompt with pattern-detectable PII (masked) and nothing an injection check flags.
GUARD_TEXT = (
    "Please summarise the following customer support thread for the weekly report. "
    "The customer, reachable at jane.doe@example.com or +1 415 555 0132, wrote that the invoice "
    "for March was charged twice to the card ending 4242 and asked for a refund. Our agent "
    "confirmed the duplicate charge, opened ticket 88213 and promised a refund within five "
    "business days. The customer then asked whether the annual plan could be moved to the "
    "start of the next quarter, and whether the shipping address (12 Market Street, Springfield) "
    "could be updated for the hardware order. The agent updated the address, explained that plan "
    "changes take effect at the next renewal, and sent a follow-up email to jane.doe@example.com "
    "with the details. Later the customer asked for a copy of the data processing agreement and "
    "for the name of the account manager; both were sent. Summarise in three sentences, keep a "
    "neutral tone, and list any open action items for the support team at the end."
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Result:
    cpu_ms: float | None = None
    rps: float | None = None
    p50_added: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _body(paths: Paths, name: str, model: str) -> str:
    return paths.script(name).read_text().replace("__MODEL__", model).replace("\n", "")


def bodies(paths: Paths) -> dict[str, str]:
    chat = _body(paths, "body.json", "fake")
    guarded = json.loads(chat)
    guarded["messages"][1]["content"] = GUARD_TEXT
    messages = {"model": "fake", "max_tokens": 64, "temperature": 0.2,
                "system": "You are a helpful assistant.",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "Say hello and ask how you can help me today."}]}]}
    return {"chat": chat, "guarded": json.dumps(guarded), "messages": json.dumps(messages),
            "stream": _body(paths, "body_stream.json", "fake-stream")}


def base_config(api_key: str, state: Path) -> dict[str, Any]:
    return {
        "models": {
            "fake": [{"model": "openai/fake", "api_base": f"{UP}/v1", "api_key": "sk-fake",
                      "prices": {"input": 0.1, "output": 0.2}}],
            "fake-stream": [{"model": "openai/fake", "api_base": f"{UP}/stream/v1",
                             "api_key": "sk-fake", "prices": {"input": 0.1, "output": 0.2}}],
        },
        "server": {"master_key": api_key},
        "storage": {"state_dir": str(state)},
        "router": {"retry": {"max_retries": 0}},
    }


def find_pg() -> str | None:
    import psycopg

    for user in PG_USERS:
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return url
    return None


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def clean_redis(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    keys = list(r.scan_iter(match=f"{prefix}*"))
    if keys:
        r.delete(*keys)
    r.close()


def admin(base: str, key: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method="GET" if body is None else "POST",
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        got: dict[str, Any] = json.loads(resp.read())
        return got


PATH_NAMES = ("bare", "traced", "governed", "guarded", "cache hit", "streaming", "messages")
TRACED_MAX_RATIO = 1.20  # issue 14: tracing on at sampling ratio 1, <= +20 % CPU per request


class PathsBench:
    def __init__(self, paths: Paths, duration: float, hey_s: float, ttfb_n: int,
                 workers: tuple[int, ...] = (1,), only: frozenset[str] | None = None) -> None:
        self.paths, self.duration, self.hey_s, self.ttfb_n = paths, duration, hey_s, ttfb_n
        self.workers, self.only = workers, only
        self.n_workers = 1  # of the server being started
        self.key = paths.api_key
        self.bodies = bodies(paths)
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-paths-"))
        self.files: dict[str, Path] = {}
        for name, text in self.bodies.items():
            f = self.tmp / f"body_{name}.json"
            f.write_text(text)
            self.files[name] = f
        self.t0 = time.monotonic()
        self.results: dict[str, Result] = {}
        self.direct: dict[str, float] = {}

    def left(self) -> float:
        return BUDGET_S - (time.monotonic() - self.t0)

    # --- load tools ---------------------------------------------------------------------

    def keep(self, label: str, tool: str, out: str) -> None:
        """The tool's own output, kept beside the table; not its command line, which holds
        the key (harness.run's log would record it)."""
        (self.paths.out / f"paths_{label.replace(' ', '_')}_{tool}.txt").write_text(out)

    def wrk(self, label: str, url: str, body: str, pid: int | None, key: str) -> dict[str, Any]:
        env = dict(os.environ, BODY_FILE=str(self.files[body]), API_KEY=key, MODEL="fake")
        lua = self.paths.script("chat.lua")
        argv = ["nice", "-n", NICE, "wrk", "-t2", "-c64", "--timeout", "30s", "-s", str(lua)]
        run([*argv, "-d1s", url], env, 30)  # warm-up, not recorded
        c0 = tree_cpu_s(pid) if pid else 0.0
        out = run([*argv, f"-d{self.duration:g}s", url], env, self.duration + 30)
        self.keep(label, "wrk", out)
        c1 = tree_cpu_s(pid) if pid else 0.0
        line = next((x for x in out.splitlines() if x.startswith("JSON ")), None)
        if line is None:
            raise BenchError(f"{label}: wrk printed no result")
        got: dict[str, Any] = json.loads(line[5:])
        errs = sum(got[k] for k in ("err_status", "err_timeout", "err_connect", "err_read",
                                    "err_write"))
        if errs:
            raise BenchError(f"{label}: {errs} failed requests under load")
        got["cpu_ms_per_req"] = (c1 - c0) * 1000 / got["requests"] if pid else None
        return got

    def hey_p50(self, label: str, url: str, body: str, key: str) -> float:
        argv = ["nice", "-n", NICE, "hey", "-z", f"{self.hey_s:g}s", "-c", "1", "-m", "POST",
                "-T", "application/json", "-H", f"Authorization: Bearer {key}",
                "-D", str(self.files[body]), url]
        out = run(argv, dict(os.environ), self.hey_s + 30)
        self.keep(label, "hey", out)
        m = re.search(r"50%+ in ([\d.]+) secs", out)
        bad = re.search(r"\[(?!200\])\d+\]\s+\d+ responses", out)
        if not m or bad:
            raise BenchError(f"{label}: hey failed: {out.strip()[-200:]}")
        return float(m.group(1)) * 1000

    def ttfb_p50(self, url: str, model: str) -> float:
        """Kept-alive curl (the master key): time to first byte without connection setup."""
        return float(measure.ttfb_keepalive(self.paths, url, model, self.ttfb_n)["p50_ms"])

    def sanity(self, url: str, body: str, key: str) -> None:
        req = urllib.request.Request(url, data=self.bodies[body].encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 200:
                raise BenchError(f"sanity request to {url}: HTTP {resp.status}")
            resp.read()

    # --- servers ------------------------------------------------------------------------

    def start(self, name: str, cfg: dict[str, Any], life: Lifetime) -> Server:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        path = d / "gatewise.yaml"
        path.write_text(yaml.safe_dump(cfg))
        port = free_port()
        slog = self.paths.out / f"paths_{name.replace(' ', '_')}_server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
        more = ["--workers", str(self.n_workers)] if self.n_workers > 1 else []
        proc = spawn(["nice", "-n", NICE, self.paths.gatewise_bin, "serve", "--config", path,
                      "--host", "127.0.0.1", "--port", str(port), *more], env,
                     slog, life, f"gatewise ({name})")
        base = f"http://127.0.0.1:{port}"
        try:
            ready = wait_http(f"{base}/healthz", 60)
        except BenchError:
            raise BenchError(f"gatewise ({name}) did not start; see {slog}") from None
        return Server(name, proc.pid, base, ready)

    def measure_direct(self) -> None:
        chat = f"{UP}/v1/chat/completions"
        self.direct["p50"] = self.hey_p50("direct", chat, "chat", self.key)
        self.direct["ttfb"] = self.ttfb_p50(f"{UP}/stream/v1/chat/completions", "fake")
        w = self.wrk("direct", chat, "chat", None, self.key)
        self.direct["rps"] = w["rps"]
        log(f"  direct: p50 {self.direct['p50']:.2f} ms, ttfb {self.direct['ttfb']:.2f} ms, "
            f"{w['rps']:.0f} req/s")

    def one(self, name: str, cfg: dict[str, Any], body: str, route: str,
            setup: Callable[[Server], str] | None = None,
            cleanup: Callable[[], None] | None = None,
            check: Callable[[Server], str] | None = None) -> None:
        if self.only is not None and name not in self.only:
            return
        base = name
        for n in self.workers:
            self.n_workers = n
            self._one(base if n == 1 else f"{base} x{n}", cfg, body, route, setup, cleanup,
                      check)

    def _one(self, name: str, cfg: dict[str, Any], body: str, route: str,
             setup: Callable[[Server], str] | None = None,
             cleanup: Callable[[], None] | None = None,
             check: Callable[[Server], str] | None = None) -> None:
        if self.left() < self.duration + self.hey_s + 20:
            self.results[name] = Result(error="skipped: time budget")
            log(f"skip {name}: {self.left():.0f}s left")
            return
        log(f"{name} ...")
        life = Lifetime(log=log)
        try:
            s = self.start(name, cfg, life)
            key = setup(s) if setup else self.key
            url = f"{s.base}{route}"
            self.sanity(url, body, key)
            r = Result()
            w = self.wrk(name, url, body, s.pid, key)
            r.cpu_ms, r.rps = w["cpu_ms_per_req"], w["rps"]
            if body == "stream":
                r.p50_added = self.ttfb_p50(url, "fake-stream") - self.direct["ttfb"]
            else:
                r.p50_added = self.hey_p50(name, url, body, key) - self.direct["p50"]
            if check:
                log(f"  {name}: {check(s)}")
            self.results[name] = r
            log(f"  {name}: {r.cpu_ms:.3f} cpu ms/req, {r.rps:.0f} req/s, "
                f"p50 added {r.p50_added:+.2f} ms")
        except (BenchError, OSError, ValueError) as exc:
            log(f"! {name}: {exc}")
            self.results[name] = Result(error=str(exc)[:70])
        finally:
            life.close()
            if cleanup:
                with contextlib.suppress(Exception):
                    cleanup()

    # --- the paths ----------------------------------------------------------------------

    def run_all(self) -> None:
        k = self.key
        self.one("bare", base_config(k, self.tmp / "bare"), "chat", "/v1/chat/completions")
        self.traced()
        self.governed()
        cfg = base_config(k, self.tmp / "guarded")
        cfg["guardrails"] = {"default": {"pii": {"action": "mask"},
                                         "injection": {"action": "block"}}}
        self.one("guarded", cfg, "guarded", "/v1/chat/completions")
        cfg = base_config(k, self.tmp / "cache")
        cfg["cache"] = {"enabled": True, "cache_nondeterministic": True}
        self.one("cache hit", cfg, "chat", "/v1/chat/completions")
        self.one("streaming", base_config(k, self.tmp / "stream"), "stream",
                 "/v1/chat/completions")
        self.one("messages", base_config(k, self.tmp / "messages"), "messages", "/v1/messages")

    def traced(self) -> None:
        """The bare path with OpenTelemetry on at sampling ratio 1 and the production exporter
        (OTLP/HTTP, encoded and posted by gatewise's worker thread) to a discarding collector
        in a process of its own: what tracing adds to `make bench`'s proxied request."""
        if self.only is not None and "traced" not in self.only:
            return
        from tracing_bench import discarding_collector  # tracing_bench.py's stand-in collector

        cfg = base_config(self.key, self.tmp / "traced")
        with discarding_collector() as endpoint:
            cfg["observability"] = {"tracing": {"enabled": True, "sample_ratio": 1.0,
                                                "endpoint": endpoint}}
            self.one("traced", cfg, "chat", "/v1/chat/completions")

    def governed(self) -> None:
        if self.only is not None and "governed" not in self.only:
            return
        try:
            pg = find_pg()
        except ImportError:
            pg = None
        if pg is None:
            self.results["governed"] = Result(error="PostgreSQL not reachable")
            return
        tag = f"{os.getpid()}_{int(time.time())}"
        schema, prefix = f"gw_paths_{tag}", f"gatewise-paths:{tag}:"
        cfg = base_config(self.key, self.tmp / "governed")
        cfg["storage"].update(database="postgres", postgres_url=pg, postgres_schema=schema,
                              redis_url=REDIS_URL, redis_prefix=prefix, counters="redis")

        def setup(s: Server) -> str:
            admin(s.base, self.key, "/admin/teams", {"id": TEAM})
            admin(s.base, self.key, "/admin/budgets", {"scope": "team", "subject": TEAM,
                                                       "period": "day", "limit_usd": 1e6})
            made = admin(s.base, self.key, "/admin/keys", {
                "name": "bench", "team": TEAM, "rpm": 10_000_000, "tpm": 1_000_000_000})
            return str(made["key"])

        def cleanup() -> None:
            drop_schema(pg, schema)
            clean_redis(prefix)

        def check(s: Server) -> str:
            """The governed path really was governed: the team's ledger and budget moved."""
            time.sleep(1.5)  # a ledger flush (0.5 s by default) and then some
            rows = admin(s.base, self.key, "/admin/usage?group_by=team")["data"]
            n = sum(int(r.get("requests", 0)) for r in rows if r["group"].get("team") == TEAM)
            spent = sum(float(b["spent"]["usd"]) for b in admin(s.base, self.key,
                                                                "/admin/budgets")["data"])
            if n == 0 or spent <= 0:
                raise BenchError(f"governed: nothing reached the ledger ({rows[:1]})")
            return f"ledger holds {n:,} requests for {TEAM}, budget spent ${spent:.4f}"

        self.one("governed", cfg, "chat", "/v1/chat/completions", setup, cleanup, check)

    # --- the table ----------------------------------------------------------------------

    def table(self) -> int:
        bare = self.results.get("bare", Result())
        rows: list[tuple[str, ...]] = []
        status = 0
        names = [n if w == 1 else f"{n} x{w}" for n in PATH_NAMES for w in self.workers
                 if self.only is None or n in self.only]
        for name in names:
            r = self.results.get(name, Result(error="not run"))
            if r.error or r.cpu_ms is None or r.rps is None or r.p50_added is None:
                rows.append((name, "-", "-", "-", "-", "-", f"n/a ({r.error})"))
                status = 2
                continue
            ratio = r.cpu_ms / bare.cpu_ms if bare.cpu_ms else None
            target, ok = "-", None
            if " x" in name:  # more workers: compared with the same path on one worker
                one = self.results.get(name.rsplit(" x", 1)[0], Result())
                rows.append((name, f"{r.cpu_ms:.3f}", f"{r.rps:,.0f}", f"{r.p50_added:+.2f}",
                             "-" if ratio is None else f"{ratio:.2f}x",
                             "req/s vs 1 worker", "-" if not one.rps else
                             f"{r.rps / one.rps:.2f}x"))
                continue
            if name == "bare":
                target, ok = "CPU <= 0.10 ms", r.cpu_ms <= 0.10
            elif name == "traced" and ratio is not None:
                target, ok = f"CPU <= {TRACED_MAX_RATIO:.1f}x bare", ratio <= TRACED_MAX_RATIO
            elif name == "governed" and ratio is not None:
                target, ok = "CPU <= 1.5x bare", ratio <= 1.5
            elif name == "guarded":
                per_core = 1000 / r.cpu_ms if r.cpu_ms else float("inf")
                target, ok = f">= 200 req/s/core ({per_core:,.0f})", per_core >= 200
            elif name == "streaming":
                target, ok = "TTFB added <= 1 ms p50", r.p50_added <= 1.0
            if ok is False:
                status = max(status, 1)
            rows.append((name, f"{r.cpu_ms:.3f}", f"{r.rps:,.0f}", f"{r.p50_added:+.2f}",
                         "-" if ratio is None else f"{ratio:.2f}x", target,
                         "-" if ok is None else "PASS" if ok else "FAIL"))
        head = ("path", "CPU ms/req", "req/s", "p50 added ms", "vs bare", "target", "result")
        print_rows(head, rows)
        print(f"\nsame run: direct to nginx {self.direct.get('rps', 0):,.0f} req/s, hey c=1 p50 "
              f"{self.direct.get('p50', 0):.2f} ms, stream TTFB p50 "
              f"{self.direct.get('ttfb', 0):.2f} ms; wrk c=64 {self.duration:g}s per path; "
              f"streaming p50 = kept-alive TTFB; {time.monotonic() - self.t0:.0f}s in all")
        return status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0, help="wrk seconds per path")
    ap.add_argument("--hey", type=float, default=3.0, help="hey c=1 seconds per path")
    ap.add_argument("--out", type=Path, help="raw output folder (default bench/results/paths-*)")
    ap.add_argument("--workers", default="1",
                    help="comma-separated worker counts to run each path with (e.g. 1,2)")
    ap.add_argument("--only", help=f"comma-separated paths to run, of: {', '.join(PATH_NAMES)}")
    a = ap.parse_args()
    workers = tuple(int(w) for w in a.workers.split(","))
    only = None if not a.only else frozenset(x.strip() for x in a.only.split(","))
    if only is not None and not only <= set(PATH_NAMES):
        print(f"bench: unknown path(s): {', '.join(sorted(only - set(PATH_NAMES)))}",
              file=sys.stderr)
        return 2
    out = a.out or Path(__file__).resolve().parent / "results" / time.strftime(
        "paths-%Y%m%dT%H%M%SZ", time.gmtime())
    paths = ready(out)
    life = Lifetime(log=log)
    b: PathsBench | None = None
    with signals_raise():
        try:
            start_upstream(paths, life)
            b = PathsBench(paths, a.duration, a.hey, 100, workers, only)
            b.measure_direct()
            b.run_all()
        except BenchError as exc:
            log(f"! {exc}")
            return 2
        except KeyboardInterrupt as exc:
            log(f"interrupted ({exc or 'Ctrl-C'}); stopping what was started")
            return 130
        finally:
            life.close()
            if b is not None:
                shutil.rmtree(b.tmp, ignore_errors=True)
    assert b is not None
    return b.table()


if __name__ == "__main__":
    sys.exit(main())
