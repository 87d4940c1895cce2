"""The layered prompt-injection detector: normalisation → heuristics, similarity to known
attacks and a local classifier → one score in 0..1 with the reasons behind it.

Layers combine as independent evidence (`1 - prod(1 - s_i)`), each learned layer scaled by how
much it is trusted. Every variant `normalize.variants` produces is scanned and the worst one
wins; when a decoded / de-obfuscated variant is what pushed the score up, the trick is named
(`obfuscation:base64`) and adds a little, since honest callers rarely hide text.

Indirect channels (tool results, retrieved documents) use their own heuristic weights
(instructions addressed to the assistant inside data are the signature) and their own
threshold. The learned model is built from package data at first use, under a lock, then only
read: one detector is safe to share between threads and requests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Literal

from gatewise.guardrails.injection import heuristics
from gatewise.guardrails.injection.classifier import NaiveBayesClassifier
from gatewise.guardrails.injection.corpus import attack_samples, project_samples, select
from gatewise.guardrails.injection.features import windows
from gatewise.guardrails.injection.normalize import variants
from gatewise.guardrails.injection.similarity import AttackIndex

Source = Literal["direct", "indirect"]

DEFAULT_THRESHOLD = 0.5
DEFAULT_INDIRECT_THRESHOLD = 0.5
_CLASSIFIER_WEIGHT = {"direct": 0.85, "indirect": 0.5}
# The classifier's probability only counts above 0.7 (full weight from 0.95): short benign
# imperatives ("keep it under 100 words") sit in 0.3..0.75, the packaged attacks above 0.88.
_CLF_FLOOR, _CLF_SPAN = 0.7, 0.25
_SIMILARITY_WEIGHT = 0.9
_SIM_FLOOR, _SIM_SPAN = 0.25, 0.35  # cosine 0.25 → 0, 0.60 → full weight
_OBFUSCATION_BONUS = 0.1


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    flagged: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InjectionModel:
    """The learned layers, trained on the packaged attacks' train split versus the project's
    benign prompts and hard negatives (train split)."""

    classifier: NaiveBayesClassifier | None
    index: AttackIndex | None
    trained_on: int


def train_model() -> InjectionModel:
    attacks = select(attack_samples(), "train")
    if not attacks:
        return InjectionModel(None, None, 0)
    benign = select(project_samples("benign.txt") + project_samples("hard_negatives.txt"), "train")
    clf = NaiveBayesClassifier.train([s.text.lower() for s in attacks], [s.text.lower() for s in benign])
    return InjectionModel(clf, AttackIndex(attacks), len(attacks) + len(benign))


@cache
def default_model() -> InjectionModel:
    """The model every detector shares: training is deterministic, so one per process is enough
    (built once, then immutable)."""
    return train_model()


class InjectionDetector:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD,
                 indirect_threshold: float = DEFAULT_INDIRECT_THRESHOLD, *,
                 model: InjectionModel | None = None, learned: bool = True) -> None:
        """`learned=False` runs normalisation and heuristics only (no training, no package data)."""
        self.threshold = threshold
        self.indirect_threshold = indirect_threshold
        self._learned = learned
        self._model = model
        self._lock = threading.Lock()

    @property
    def model(self) -> InjectionModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = default_model() if self._learned else InjectionModel(None, None, 0)
        return self._model

    def warm_up(self) -> None:
        """Train now (e.g. at gateway start) instead of on the first request."""
        _ = self.model

    def scan(self, text: str, source: Source = "direct") -> Verdict:
        model = self.model
        indirect = source == "indirect"
        threshold = self.indirect_threshold if indirect else self.threshold
        tricks_by_text: dict[str, list[str]] = {}
        for v in variants(text):
            tricks_by_text.setdefault(v.text, [])
            if v.trick:
                tricks_by_text[v.text].append(v.trick)
        best_score = 0.0
        best_reasons: tuple[str, ...] = ()
        base_score = -1.0
        for i, (variant, tricks) in enumerate(tricks_by_text.items()):
            score, reasons = self._score(variant, indirect, model)
            if i == 0:
                base_score = score
            elif score > base_score + 0.05 or (tricks and score >= threshold):
                score = min(1.0, score + _OBFUSCATION_BONUS)
                reasons = reasons + tuple(f"obfuscation:{t}" for t in tricks)
            if score > best_score:
                best_score, best_reasons = score, reasons
        # Tricks that leave the text unchanged (invisible characters, confusables) ride on the base.
        first_tricks = next(iter(tricks_by_text.values()), [])
        if first_tricks and best_score >= threshold:
            best_reasons = best_reasons + tuple(f"obfuscation:{t}" for t in first_tricks)
            best_score = min(1.0, best_score + _OBFUSCATION_BONUS)
        return Verdict(round(best_score, 4), best_score >= threshold, tuple(dict.fromkeys(best_reasons)))

    def _score(self, text: str, indirect: bool, model: InjectionModel) -> tuple[float, tuple[str, ...]]:
        h, cats = heuristics.match(text, indirect)
        c = s = 0.0
        family: str | None = None
        if model.classifier is not None or model.index is not None:
            for w in windows(text):
                if model.classifier is not None:
                    c = max(c, model.classifier.predict(w))
                if model.index is not None:
                    cos, fam = model.index.nearest(w)
                    if cos > s:
                        s, family = cos, fam
        c_part = _CLASSIFIER_WEIGHT["indirect" if indirect else "direct"] * min(
            1.0, max(0.0, (c - _CLF_FLOOR) / _CLF_SPAN))
        s_part = _SIMILARITY_WEIGHT * min(1.0, max(0.0, (s - _SIM_FLOOR) / _SIM_SPAN))
        score = 1.0 - (1.0 - h) * (1.0 - c_part) * (1.0 - s_part)
        reasons = [f"heuristic:{cat}" for cat in cats]
        if s_part >= 0.3 and family:
            reasons.append(f"similar:{family}")
        if c_part >= 0.4:
            reasons.append("classifier")
        return score, tuple(reasons)
