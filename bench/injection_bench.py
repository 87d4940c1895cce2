"""Prompt-injection detector speed: milliseconds per KB of scanned text (target <= 5 ms/KB),
for benign and attack text at several sizes, direct and indirect, plus first-use training time.

    .venv/bin/python bench/injection_bench.py [--startup | --first-use] [--semantic | --auto]

Each figure is the best of several rounds (the machine is shared; the minimum is the cost, the
rest is noise); CPU time per scan is printed beside wall time (steadier on a loaded machine).
Exit status 0 when every row meets the target.

`--startup` measures process start to first scan in fresh interpreters instead: once with an
empty model cache (`GATEWISE_CACHE_DIR` in a temporary directory: train, then store; the cost
every process paid before the cache) and then, alternating, with the cache that run filled (read
it back) and with the cache disabled again, wall and CPU seconds of each child.

`--semantic` scans with the embedding head on every channel (`semantic: true`), `--auto` with
the gateway's default (`semantic: "auto"`: the head on direct text only, once it is built).
`--first-use` measures what the head's first use on a machine costs a process with
`semantic: "auto"`: from start to the first scan (which must not wait for the head) and to the
head being ready (distilling the MiniLM table, fitting the head), with an empty cache, then
with the cache that run filled; and the same with `semantic: true`, whose first scan waits.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from gatewise.guardrails.injection import InjectionDetector
from gatewise.guardrails.injection.corpus import attack_samples, project_samples, select
from gatewise.guardrails.injection.detector import train_model

TARGET_MS_PER_KB = 5.0
ROUNDS = 5


def build(texts: list[str], size: int) -> str:
    out, i = "", 0
    while len(out) < size:
        out += texts[i % len(texts)] + "\n"
        i += 1
    return out[:size]


_FIRST_SCAN = ("import time; t = time.perf_counter(); "
               "from gatewise.guardrails.injection import InjectionDetector; "
               "v = InjectionDetector().scan('hello, could you summarise this report?'); "
               "print(f'{time.perf_counter() - t:.2f}', v.flagged)")


def _child(cache: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh interpreter from start to its first scan."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", _FIRST_SCAN], check=True, capture_output=True,
                   env={**os.environ, "GATEWISE_CACHE_DIR": cache})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _fresh_cache() -> str:
    """An empty model cache holding only the distilled MiniLM table (shared, so the figures are
    about the model cache alone: distilling the table is a once-per-machine cost)."""
    from gatewise.config.paths import user_cache_dir

    path = tempfile.mkdtemp(prefix="gatewise-bench-")
    for table in user_cache_dir().glob("minilm-static-*.npy"):
        shutil.copy(table, path)
    return path


_FIRST_USE = ("import sys, time; t = time.perf_counter(); "
              "from gatewise.guardrails.injection import InjectionDetector; "
              "d = InjectionDetector(semantic=True if sys.argv[1] == 'true' else 'auto'); "
              "v = d.scan('hello, could you summarise this report?'); first = time.perf_counter() - t; "
              "ready = d.head_ready(); print(f'{first:.2f} {time.perf_counter() - t:.2f} {ready}')")


def first_use() -> int:
    """Start to first scan and to the head being ready, with an empty cache (no MiniLM table,
    no model) and then with the cache that run filled, for `semantic: "auto"` and `true`."""
    print(f"{'setting':<8} {'cache':<22} {'first scan s':>12} {'head ready s':>12} {'CPU s':>7}  head")
    for setting in ("auto", "true"):
        cache = tempfile.mkdtemp(prefix="gatewise-bench-")
        for label in ("empty (distils, trains)", "filled (reads)"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, "-c", _FIRST_USE, setting], check=True,
                                 capture_output=True, text=True,
                                 env={**os.environ, "GATEWISE_CACHE_DIR": cache}).stdout.split()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"{setting:<8} {label:<22} {float(out[0]):>12.2f} {float(out[1]):>12.2f} {cpu:>7.2f}  "
                  f"{out[2]}")
        shutil.rmtree(cache, ignore_errors=True)
    return 0


def startup(rounds: int = 1) -> int:
    """Process start to first scan: with no model cache (train + store), then alternating runs
    that read the cache the first run filled and runs that train again."""
    print(f"{'run':<28} {'wall s':>7} {'CPU s':>7}")
    warm = _fresh_cache()
    runs = [("no model cache (trains)", warm)]
    for _ in range(rounds):
        runs += [("model cache filled (reads)", warm), ("no model cache (trains)", _fresh_cache())]
    for label, cache in runs:
        wall, cpu = _child(cache)
        print(f"{label:<28} {wall:>7.2f} {cpu:>7.2f}")
    for cache in dict.fromkeys(c for _, c in runs):
        shutil.rmtree(cache, ignore_errors=True)
    return 0


def main() -> int:
    if "--startup" in sys.argv:
        return startup()
    if "--first-use" in sys.argv:
        return first_use()
    semantic = "--semantic" in sys.argv or "--auto" in sys.argv  # with the embedding head
    t0 = time.perf_counter()
    train_model(semantic=semantic)
    train_s = time.perf_counter() - t0
    detector = InjectionDetector(semantic="auto" if "--auto" in sys.argv else semantic)
    detector.warm_up()
    if "--auto" in sys.argv and not detector.head_ready():
        print("embedding head not installed: scanning without it")
    benign = [s.text for s in project_samples("benign.txt")]
    attacks = [s.text for s in select(attack_samples(), "test")]
    print(f"first-use training{' (with the embedding head)' if semantic else ''}: {train_s:.2f} s\n")
    print(f"{'text':<10} {'size':>6} {'source':<9} {'best ms':>8} {'median ms':>10} {'CPU ms':>7} "
          f"{'ms/KB':>6}  target (CPU ms per KB)")
    ok = True
    for label, pool in (("benign", benign), ("attack", attacks)):
        for size in (256, 1024, 4096, 16384):
            text = build(pool, size)
            for source in ("direct", "indirect"):
                times, cpus = [], []
                for _ in range(ROUNDS):
                    t, c = time.perf_counter(), time.thread_time()
                    detector.scan(text, source)  # type: ignore[arg-type]
                    times.append(time.perf_counter() - t)
                    cpus.append(time.thread_time() - c)
                best, med = min(times) * 1000, statistics.median(times) * 1000
                cpu = min(cpus) * 1000
                per_kb = cpu / (size / 1024)
                met = per_kb <= TARGET_MS_PER_KB or size < 1024  # tiny texts: fixed cost dominates
                ok &= met
                print(f"{label:<10} {size:>6} {source:<9} {best:>8.2f} {med:>10.2f} {cpu:>7.2f} "
                      f"{per_kb:>6.2f}  <= {TARGET_MS_PER_KB} {'ok' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
