"""gatewise benchmark: what the gateway adds on top of a ~0.1 ms upstream, side by side with the
same run's baselines (direct to nginx, a raw pooled aiohttp client, a bare interpreter, raw
llama.cpp) and with LiteLLM when its venv exists. Prints one table; saves raw results as JSON.

    .venv/bin/python bench/run.py            # full, about 6 minutes (hard cap 9:30)
    .venv/bin/python bench/run.py --quick    # about 2 minutes

All traffic stays on 127.0.0.1. Every server the run starts (nginx, gatewise, LiteLLM) is stopped
on the way out, whatever happens. Exit status: 0 all targets met, 1 a target missed, 2 a figure
could not be measured. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import measure
from harness import (
    REPO,
    BenchError,
    Lifetime,
    Paths,
    ready,
    signals_raise,
    tree_rss_mib,
)
from report import Row, render, save, verdict
from services import Server, start_gatewise, start_litellm, start_upstream


@dataclass(frozen=True)
class Profile:
    rounds: int  # alternating load and ttfb rounds (direct, gatewise); LiteLLM gets one
    duration: float  # seconds per wrk / hey run
    warmup: float
    ttfb_n: int
    sdk_n: int
    sdk_warmup: int
    sdk_pairs: int  # rounds of (raw transport, raw aiohttp, gatewise) processes, rotated
    import_runs: int
    local_rounds: int
    local_tokens: int
    budget_s: float


FULL = Profile(rounds=2, duration=10, warmup=2, ttfb_n=200, sdk_n=2000, sdk_warmup=200,
               sdk_pairs=3, import_runs=9, local_rounds=16, local_tokens=32, budget_s=570)
QUICK = Profile(rounds=1, duration=4, warmup=1, ttfb_n=80, sdk_n=1000, sdk_warmup=100,
                sdk_pairs=1, import_runs=5, local_rounds=6, local_tokens=32, budget_s=170)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, paths: Paths, p: Profile, use_litellm: bool, use_local: bool) -> None:
        self.paths, self.p = paths, p
        self.use_litellm = use_litellm and paths.has_litellm
        self.use_local = use_local
        self.rows: dict[str, Row] = {}
        self.raw: dict[str, Any] = {}
        self.t0 = time.monotonic()
        self.lite_note = "n/a" if paths.has_litellm else "n/a (no venv)"

    def left(self) -> float:
        return self.p.budget_s - (time.monotonic() - self.t0)

    def stage(self, name: str, keys: tuple[str, ...], cost: float, fn: Callable[[], None]) -> bool:
        """Runs one stage if the time budget allows; a failure marks its figures, not the run."""
        if self.left() < cost:
            log(f"skip {name}: {self.left():.0f}s left, needs ~{cost:.0f}s")
            for k in keys:
                self.rows.setdefault(k, Row(error="skipped: time budget"))
            return False
        log(f"{name} ...")
        t = time.monotonic()
        try:
            fn()
        except BenchError as exc:
            log(f"! {name}: {exc}")
            for k in keys:
                row = self.rows.setdefault(k, Row())
                if row.gatewise is None:
                    row.error = str(exc)[:60]
            self.raw.setdefault("errors", []).append(f"{name}: {exc}")
        log(f"{name} done in {time.monotonic() - t:.0f}s")
        return True

    def each(self, srv: dict[str, Server], one: Callable[[str, Server, int], None]) -> None:
        """Rounds alternate the targets, so drift on a shared machine hits all of them."""
        for r in range(self.p.rounds):
            for name, s in srv.items():
                one(name, s, r + 1)

    # --- gatewise and its baselines --------------------------------------------------------

    def imports(self) -> None:
        py, runs = self.paths.python, self.p.import_runs
        env = dict(os.environ)
        bare = measure.import_times(py, "pass", runs, env)
        gw = measure.import_times(py, "import gatewise", runs, env)
        measure.import_profile(py, "gatewise", env, self.paths.out / "importtime_gatewise.txt")
        row = Row(gatewise=measure.median(gw), baseline=f"bare {measure.median(bare):.3f}",
                  litellm_note=self.lite_note)
        self.raw["import"] = {"bare_s": bare, "gatewise_s": gw}
        if self.use_litellm:
            lpy = self.paths.litellm_venv / "bin" / "python"
            lenv = {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            lite = measure.import_times(lpy, "import litellm", max(3, runs // 3), lenv)
            row.litellm = measure.median(lite)
            self.raw["import"]["litellm_s"] = lite
        self.rows["import"] = row

    def servers(self, life: Lifetime) -> dict[str, Server]:
        bare = measure.bare_rss_mib(self.paths.python)
        up = start_upstream(self.paths, life)
        gw = start_gatewise(self.paths, life)
        time.sleep(1.5)
        rss = tree_rss_mib(gw.pid)
        self.rows["idle_rss"] = Row(gatewise=rss, baseline=f"bare {bare:.1f}",
                                    litellm_note=self.lite_note)
        self.raw["idle_rss"] = {"bare_mib": bare, "gatewise_mib": rss,
                                "gatewise_ready_s": gw.ready_s}
        return {"direct": up, "gatewise": gw}

    def load_one(self, name: str, s: Server, rnd: int) -> None:
        p, lbl = self.p, f"{name}_r{rnd}"
        h = measure.load(self.paths, lbl, s.chat_url, conns=1, tool="hey", duration=p.duration,
                         warmup=p.warmup, cpu_pid=s.pid)
        w = measure.load(self.paths, lbl, s.chat_url, conns=64, tool="wrk", duration=p.duration,
                         warmup=p.warmup, cpu_pid=s.pid)
        self.raw.setdefault("load", []).append({"target": name, "round": rnd, "hey_c1": h,
                                                "wrk_c64": w})
        log(f"  {lbl}: c1 p50 {h['p50_ms']:.1f} ms | c64 {w['rps']:.0f} req/s, "
            f"{w['cpu_ms_per_req']} cpu ms/req")

    def ttfb_one(self, name: str, s: Server, rnd: int) -> None:
        url = f"{s.base}/stream/v1/chat/completions" if name == "direct" else s.chat_url
        model = "fake" if name == "direct" else "fake-stream"
        got = measure.ttfb(self.paths, f"{name}_stream_r{rnd}", url, model, self.p.ttfb_n)
        ka = measure.ttfb_keepalive(self.paths, url, model, self.p.ttfb_n)
        self.raw.setdefault("ttfb", {}).setdefault(name, []).append(got)
        self.raw.setdefault("ttfb_keepalive", {}).setdefault(name, []).append(ka)

    def library(self, upstream: Server) -> None:
        p, py = self.p, self.paths.python
        clients = ["transport", "aiohttp", "gatewise"]
        runs: list[dict[str, float]] = []
        for i in range(p.sdk_pairs):
            got: dict[str, float] = {}
            for who in clients[i % 3:] + clients[:i % 3]:  # rotate who goes first
                rows = measure.sdk(self.paths, py, "extra", f"sdk_clients:{who}_client", upstream,
                                   n=p.sdk_n, warmup=p.sdk_warmup, rounds=1, label=f"{who}_{i}")
                got[who] = rows[-1]["cpu_us_per_call"]
            runs.append(got)
        cpu = {c: measure.median([x[c] for x in runs]) for c in clients}
        row = Row(gatewise=(cpu["gatewise"] - cpu["transport"]) / 1000,
                  baseline=f"raw transport {cpu['transport'] / 1000:.3f}, "
                           f"aiohttp {cpu['aiohttp'] / 1000:.3f}",
                  litellm_note=self.lite_note)
        self.raw["library"] = {"cpu_us_per_call": runs, "median": cpu}
        self.rows["library"] = row
        if self.use_litellm:
            lpy = self.paths.litellm_venv / "bin" / "python"
            try:
                rows = measure.sdk(self.paths, lpy, "extra,litellm", "sdk_clients:aiohttp_client",
                                   upstream, n=p.sdk_n, warmup=p.sdk_warmup, rounds=2,
                                   label="litellm")
            except BenchError as exc:
                self.litellm_failed(exc)
                return
            lcpu = {c: measure.median([x["cpu_us_per_call"] for x in rows if x["client"] == c])
                    for c in ("extra", "litellm")}
            row.litellm = (lcpu["litellm"] - lcpu["extra"]) / 1000  # over aiohttp, its venv
            self.raw["library"]["litellm_venv_cpu_us_per_call"] = rows

    # --- LiteLLM, in a phase of its own so it never shares the machine with gatewise's runs ---

    def litellm_failed(self, exc: BenchError) -> None:
        """LiteLLM is a reference, not the subject: its failure costs only its column."""
        log(f"! LiteLLM: {exc}")
        self.lite_note = "n/a (failed)"
        self.raw.setdefault("errors", []).append(f"litellm: {exc}")

    def litellm_proxy(self) -> None:
        life = Lifetime(log=log)
        try:
            s = start_litellm(self.paths, life)
            time.sleep(2)
            self.raw["idle_rss"]["litellm_mib"] = tree_rss_mib(s.pid)
            self.raw["idle_rss"]["litellm_ready_s"] = s.ready_s
            self.load_one("litellm", s, 1)
            self.ttfb_one("litellm", s, 1)
        except BenchError as exc:
            self.litellm_failed(exc)
        finally:
            life.close()

    # --- the table -----------------------------------------------------------------------

    def summarize(self) -> None:
        """Rows from every run so far: medians over rounds, LiteLLM where it was measured."""
        runs = self.raw.get("load", [])

        def med(name: str, tool: str, key: str) -> float | None:
            xs = [x[tool][key] for x in runs if x["target"] == name and x[tool][key] is not None]
            return measure.median(xs) if xs else None

        note = self.lite_note
        if med("gatewise", "wrk_c64", "rps") is not None:
            d50 = med("direct", "hey_c1", "p50_ms") or 0.0
            g50, l50 = med("gatewise", "hey_c1", "p50_ms"), med("litellm", "hey_c1", "p50_ms")
            self.rows["cpu_per_req"] = Row(
                gatewise=med("gatewise", "wrk_c64", "cpu_ms_per_req"),
                baseline=f"nginx {med('direct', 'wrk_c64', 'cpu_ms_per_req') or 0:.3f}",
                litellm=med("litellm", "wrk_c64", "cpu_ms_per_req"), litellm_note=note)
            self.rows["throughput"] = Row(
                gatewise=med("gatewise", "wrk_c64", "rps"),
                baseline=f"direct {med('direct', 'wrk_c64', 'rps') or 0:,.0f}",
                litellm=med("litellm", "wrk_c64", "rps"), litellm_note=note)
            self.rows["added_p50"] = Row(
                gatewise=None if g50 is None else g50 - d50, baseline=f"direct {d50:.2f}",
                litellm=None if l50 is None else l50 - d50, litellm_note=note)
        t = {k: measure.median([x["p50_ms"] for x in v]) for k, v in self.raw.get("ttfb", {}).items()}
        if "gatewise" in t and "direct" in t:
            self.rows["ttfb_added"] = Row(
                gatewise=t["gatewise"] - t["direct"], baseline=f"direct {t['direct']:.2f}",
                litellm=t["litellm"] - t["direct"] if "litellm" in t else None, litellm_note=note)
        rss = self.raw.get("idle_rss", {})
        if "idle_rss" in self.rows:
            self.rows["idle_rss"].litellm = rss.get("litellm_mib")
            self.rows["idle_rss"].litellm_note = note
        for key in ("import", "library"):
            if key in self.rows:
                self.rows[key].litellm_note = note

    def local(self) -> None:
        res = measure.local_model(self.paths, self.p.local_rounds, self.p.local_tokens,
                                  timeout=max(60.0, self.left() - 5))
        self.raw["local"] = res
        if "overhead_pct" not in res:
            raise BenchError("no round generated the same number of tokens on both sides")
        q1, q3 = res["ratio_quartiles"]
        self.rows["local"] = Row(
            gatewise=res["overhead_pct"],
            baseline=f"llama.cpp {res['raw_median_s']:.2f} s/{res['tokens']} tok "
                     f"(IQR {(q1 - 1) * 100:+.0f}..{(q3 - 1) * 100:+.0f} %)",
            litellm_note="n/a")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 2 minutes instead of about 6")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even if its venv exists")
    ap.add_argument("--no-local", action="store_true", help="skip the local model figure")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results/<time>)")
    a = ap.parse_args()
    prof = QUICK if a.quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = a.out or REPO / "bench" / "results" / f"{stamp}{'-quick' if a.quick else ''}"
    paths = ready(out)
    b = Bench(paths, prof, not a.no_litellm, not a.no_local)
    life = Lifetime(log=log)
    meta: dict[str, Any] = {
        "mode": "quick" if a.quick else "full", "started_utc": stamp, "profile": prof.__dict__,
        "host": {"nproc": os.cpu_count(), "python": platform.python_version(),
                 "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]},
        "anchor": str(paths.anchor), "litellm": b.use_litellm,
    }
    log(f"results -> {out}  (LiteLLM: {'yes' if b.use_litellm else b.lite_note})")
    with signals_raise():
        try:
            b.stage("import time", ("import",), 15, b.imports)
            srv: dict[str, Server] = {}

            def start() -> None:
                srv.update(b.servers(life))

            b.stage("servers + idle RSS", ("idle_rss",), 30, start)
            if "gatewise" in srv:
                cost = prof.rounds * 2 * 2 * (prof.duration + prof.warmup + 1)
                b.stage("load (hey c=1, wrk c=64)", ("cpu_per_req", "throughput", "added_p50"),
                        cost, lambda: b.each(srv, b.load_one))
                b.stage("streaming ttfb", ("ttfb_added",), prof.rounds * 2 * prof.ttfb_n * 0.03,
                        lambda: b.each(srv, b.ttfb_one))
                b.stage("library mode", ("library",), 12 * prof.sdk_pairs + 25,
                        lambda: b.library(srv["direct"]))
                if b.use_litellm and not b.stage(
                        "LiteLLM proxy", (), 2 * (prof.duration + prof.warmup + 1) + 40,
                        b.litellm_proxy):
                    b.lite_note = "n/a (time)"
            b.summarize()
            life.close()  # the local model figure runs on a quiet machine
            if b.use_local:
                b.stage("local model", ("local",), 10 + prof.local_rounds * prof.local_tokens * 0.08,
                        b.local)
            else:
                b.rows["local"] = Row(error="--no-local")
        except KeyboardInterrupt as exc:
            log(f"interrupted ({exc or 'Ctrl-C'}); stopping what was started")
            life.close()
            return 130
        finally:
            life.close()
    meta["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    meta["elapsed_s"] = round(time.monotonic() - b.t0, 1)
    save(out / "results.json", meta, b.rows, b.raw)
    print(render(b.rows))
    passed, failed, missing = verdict(b.rows)
    print(f"\n{passed} passed, {failed} failed, {missing} not measured in {meta['elapsed_s']:.0f}s "
          f"({meta['mode']}); load average {' '.join(meta['host']['loadavg_before'])} before, "
          f"{' '.join(meta['loadavg_after'])} after")
    print(f"raw results: {out / 'results.json'} (and the tools' own output beside it)")
    return 2 if missing else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
