"""Would a contextual encoder make the injection check generalise? (issue 11; a question, not
a shipped layer.)

The learned layers of `guardrails/injection` score 0.97-0.99 in-sample and 0.15-0.45 on the
newer corpora held out (`bench/injection_eval.py`). The embedding head reads a static word-piece
table distilled from MiniLM (`semantic.py`); this compares it with MiniLM itself, run whole
(`gatewise.embedding.local`, the int8 ONNX model with its attention), under one protocol, so
only the features differ:

- a stratified sample: at most `--per` attacks and `--per` benign texts of each source (seeded),
  each cut to 600 characters;
- per source held out: the same logistic head (`semantic.train_head`) fitted on every other
  source's sample, its threshold at the 97th percentile of those training benign scores;
- recall on the held-out source's attacks, false-positive rate on its benign texts.

The head alone is a weaker detector than the shipped combination (no patterns, no classifier),
so read the two columns against each other, not against the targets.

    .venv/bin/python bench/injection_contextual.py [--per 100] [--seed 7]

Measured (2026-12-05, --per 100, 2,721 texts, 611 KB): mean held-out recall 0.647 static
against 0.651 contextual, mean FPR 0.132 against 0.096; the contextual encoder took 20.7 s on
two workers, about 68 ms of CPU per KB (the check's budget is 5), the table about 1 ms per KB.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

import numpy as np

from gatewise.config.paths import user_cache_dir
from gatewise.embedding.local import MiniLMEmbedder
from gatewise.guardrails.injection.corpus import corpus
from gatewise.guardrails.injection.semantic import StaticEmbedder, train_head

_CHARS = 600
_BENIGN_QUANTILE = 0.97


def _is_benign(family: str, category: str) -> bool:
    return family == "benign" or category.startswith("benign")


def main(per: int, seed: int) -> None:
    rng = random.Random(seed)
    groups = defaultdict(list)
    for s in corpus():
        groups[(s.source, _is_benign(s.family, s.category))].append(s)
    picked = []
    for _key, group in sorted(groups.items(), key=lambda kv: kv[0]):
        rng.shuffle(group)
        picked += group[:per]
    texts = [s.text[:_CHARS] for s in picked]
    y = np.array([0.0 if _is_benign(s.family, s.category) else 1.0 for s in picked])
    src = np.array([s.source for s in picked])
    print(f"{len(texts)} texts, {int(y.sum())} attacks")
    t = time.process_time()
    static = StaticEmbedder.load(user_cache_dir()).embed(texts)
    print(f"static table: {(time.process_time() - t) / len(texts) * 1e3:.2f} ms CPU a text")
    t = time.process_time()
    wall = time.monotonic()
    ctx = np.asarray(MiniLMEmbedder(workers=2).embed(texts), dtype=np.float32)
    print(f"contextual: {time.monotonic() - wall:.1f} s wall, 2 workers")
    print(f"{'held out':24} {'attacks':>7} {'static':>7} {'context':>7} {'benign':>7} "
          f"{'static':>7} {'context':>7}")
    sums: dict[str, list[float]] = defaultdict(list)
    for held in sorted(set(src)):
        test = src == held
        train = ~test
        att, ben = test & (y == 1), test & (y == 0)
        rates: dict[str, dict[str, float | None]] = {}
        for name, x in (("static", static), ("context", ctx)):
            w, b = train_head(x[train], y[train])
            score = x @ w + b
            threshold = np.quantile(score[train & (y == 0)], _BENIGN_QUANTILE)
            rates[name] = {kind: float((score[mask] > threshold).mean()) if mask.any() else None
                           for kind, mask in (("recall", att), ("fpr", ben))}
        cells: list[str] = []
        for kind in ("recall", "fpr"):
            for name in ("static", "context"):
                value = rates[name][kind]
                if value is None:
                    cells.append(f"{'-':>7}")
                else:
                    sums[f"{name} {kind}"].append(value)
                    cells.append(f"{value:7.3f}")
        print(f"{held:24} {int(att.sum()):7d} {cells[0]} {cells[1]} {int(ben.sum()):7d} "
              f"{cells[2]} {cells[3]}")
    print("mean held-out recall: static {:.3f}, contextual {:.3f}; mean FPR: static {:.3f}, "
          "contextual {:.3f}".format(*(float(np.mean(sums[k])) for k in (
              "static recall", "context recall", "static fpr", "context fpr"))))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--per", type=int, default=100, help="texts per source and label")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    main(a.per, a.seed)
