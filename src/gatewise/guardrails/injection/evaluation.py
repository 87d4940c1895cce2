"""Recall and false-positive rate of a detector per source, on data the model never saw.

- direct: the held-out split of the packaged attacks (split by content key, deduplicated);
- obfuscated: the same held-out attacks run through every obfuscator in `obfuscate.py`;
- indirect: attacks embedded in tool results and documents (the project's own file);
- benign / hard_negatives / indirect_benign: held-out project prompts that must pass.

Used by `bench/injection_eval.py` (prints the table) and by the test that asserts the targets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gatewise.guardrails.injection.corpus import attack_samples, project_samples, select
from gatewise.guardrails.injection.detector import InjectionDetector, Source
from gatewise.guardrails.injection.obfuscate import OBFUSCATORS

_OBFUSCATED_CHARS = 600  # an encoded payload is a paragraph, not a 4 KB manifesto


@dataclass(frozen=True, slots=True)
class SourceResult:
    source: str
    attack: bool  # True: the rate is recall; False: it is the false-positive rate
    total: int
    flagged: int
    seconds: float
    chars: int
    misses: tuple[str, ...]  # first few texts judged wrongly, for tuning (never logged)

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


def datasets() -> dict[str, tuple[Source, bool, list[str]]]:
    held_out = [s.text for s in select(attack_samples(), "test")]
    obfuscated = [fn(t[:_OBFUSCATED_CHARS]) for t in held_out for fn in OBFUSCATORS.values()]
    return {
        "direct": ("direct", True, held_out),
        "obfuscated": ("direct", True, obfuscated),
        "indirect": ("indirect", True, [s.text for s in project_samples("indirect_attacks.txt")]),
        "benign": ("direct", False, [s.text for s in select(project_samples("benign.txt"), "test")]),
        "hard_negatives": ("direct", False,
                           [s.text for s in select(project_samples("hard_negatives.txt"), "test")]),
        "indirect_benign": ("indirect", False, [s.text for s in project_samples("indirect_benign.txt")]),
    }


def evaluate(detector: InjectionDetector | None = None) -> list[SourceResult]:
    detector = detector or InjectionDetector()
    detector.warm_up()
    results = []
    for name, (source, attack, texts) in datasets().items():
        flagged, misses = 0, []
        t0 = time.perf_counter()
        for text in texts:
            hit = detector.scan(text, source).flagged
            flagged += hit
            if hit != attack:
                misses.append(text)
        elapsed = time.perf_counter() - t0
        results.append(SourceResult(name, attack, len(texts), flagged, elapsed,
                                    sum(len(t) for t in texts), tuple(misses[:20])))
    return results
