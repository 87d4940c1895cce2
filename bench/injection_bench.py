"""Prompt-injection detector speed: milliseconds per KB of scanned text (target <= 5 ms/KB),
for benign and attack text at several sizes, direct and indirect, plus first-use training time.

    .venv/bin/python bench/injection_bench.py

Each figure is the best of several rounds (the machine is shared; the minimum is the cost, the
rest is noise). Exit status 0 when every row meets the target.
"""

from __future__ import annotations

import statistics
import sys
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


def main() -> int:
    t0 = time.perf_counter()
    train_model()
    train_s = time.perf_counter() - t0
    detector = InjectionDetector()
    detector.warm_up()
    benign = [s.text for s in project_samples("benign.txt")]
    attacks = [s.text for s in select(attack_samples(), "test")]
    print(f"first-use training: {train_s:.2f} s\n")
    print(f"{'text':<10} {'size':>6} {'source':<9} {'best ms':>8} {'median ms':>10} {'ms/KB':>6}  target")
    ok = True
    for label, pool in (("benign", benign), ("attack", attacks)):
        for size in (256, 1024, 4096, 16384):
            text = build(pool, size)
            for source in ("direct", "indirect"):
                times = []
                for _ in range(ROUNDS):
                    t = time.perf_counter()
                    detector.scan(text, source)  # type: ignore[arg-type]
                    times.append(time.perf_counter() - t)
                best, med = min(times) * 1000, statistics.median(times) * 1000
                per_kb = best / (size / 1024)
                met = per_kb <= TARGET_MS_PER_KB or size < 1024  # tiny texts: fixed cost dominates
                ok &= met
                print(f"{label:<10} {size:>6} {source:<9} {best:>8.2f} {med:>10.2f} {per_kb:>6.2f}  "
                      f"<= {TARGET_MS_PER_KB} {'ok' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
