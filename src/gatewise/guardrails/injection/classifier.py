"""A small local classifier: Bernoulli naive Bayes log-count ratios over word and character
features, averaged per text (shrunk towards neutral when a text has few known features) and
squashed through a logistic curve fitted on the training set.

Why naive Bayes: it trains in one pass (well under a second in pure Python on the packaged
corpus), is deterministic, and averaging the per-feature log ratios keeps long jailbreak
prompts and short benign questions on the same scale. No weights ship with the package: the
model is rebuilt from package data, and `model_cache` keeps the result in the user cache
(JSON, keyed by the training data) so a process start reads it instead of retraining.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from gatewise.guardrails.injection.features import WINDOW, WindowFeatures, all_features

_ALPHA = 1.0
_MIN_DF = 2  # a feature seen in one training text only is noise, not evidence
_TRAIN_CHARS = WINDOW
# Evidence shrinkage: the mean log ratio is taken as if `_PRIOR_FEATURES` neutral features were
# seen too, so a turn of one or two words ("hi", "no, that's all") cannot score like a jailbreak
# on the strength of a single n-gram; long texts are barely affected.
_PRIOR_FEATURES = 24.0


def training_features(text: str) -> set[str]:
    """What a lower-cased training text contributes: the features of its first window."""
    return all_features(text[:_TRAIN_CHARS])


class NaiveBayesClassifier:
    __slots__ = ("_bias", "_char_weights", "_scale", "_weights", "_word_weights")

    def __init__(self, weights: dict[str, float], scale: float, bias: float) -> None:
        self._weights = weights
        self._scale = scale
        self._bias = bias
        # The same weights split by kind, the 4-grams without their `#`, so a window's
        # features are looked up as two set intersections instead of one string per 4-gram.
        self._word_weights = {f: w for f, w in weights.items() if not f.startswith("#")}
        self._char_weights = {f[1:]: w for f, w in weights.items() if f.startswith("#")}

    @property
    def weights(self) -> dict[str, float]:
        """The per-feature log-count ratios (what `model_cache` stores)."""
        return self._weights

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def bias(self) -> float:
        return self._bias

    @classmethod
    def train(cls, attacks: Iterable[str], benign: Iterable[str]) -> NaiveBayesClassifier:
        return cls.train_features([training_features(t) for t in attacks],
                                  [training_features(t) for t in benign])

    @classmethod
    def train_features(cls, pos_docs: list[set[str]], neg_docs: list[set[str]]) -> NaiveBayesClassifier:
        """`train` on texts whose `training_features` are already extracted: the floor's
        calibration trains one classifier per held-out source on the same texts."""
        pos: Counter[str] = Counter()
        neg: Counter[str] = Counter()
        for d in pos_docs:
            pos.update(d)
        for d in neg_docs:
            neg.update(d)
        n_pos, n_neg = max(len(pos_docs), 1), max(len(neg_docs), 1)
        weights: dict[str, float] = {}
        for f in sorted(pos.keys() | neg.keys()):
            p, n = pos[f], neg[f]
            if p + n < _MIN_DF:
                continue
            p_rate = (p + _ALPHA) / (n_pos + 2 * _ALPHA)
            n_rate = (n + _ALPHA) / (n_neg + 2 * _ALPHA)
            weights[f] = math.log(p_rate / n_rate)
        model = cls(weights, 1.0, 0.0)
        model._calibrate([model.raw(d) for d in pos_docs], [model.raw(d) for d in neg_docs])
        return model

    def raw(self, feats: set[str]) -> float:
        w = self._weights
        hits = [w[f] for f in feats if f in w]
        return sum(hits) / (len(hits) + _PRIOR_FEATURES)

    def _calibrate(self, pos: list[float], neg: list[float]) -> None:
        """1-D logistic regression (Platt scaling) on the raw scores, by plain gradient descent,
        classes weighted equally."""
        w_pos, w_neg = 0.5 / max(len(pos), 1), 0.5 / max(len(neg), 1)
        data = [(x, 1.0, w_pos) for x in pos] + [(x, 0.0, w_neg) for x in neg]
        a, b = 1.0, 0.0
        for _ in range(300):
            ga = gb = 0.0
            for x, y, wt in data:
                p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, a * x + b))))
                ga += wt * (p - y) * x
                gb += wt * (p - y)
            a -= 2.0 * ga
            b -= 2.0 * gb
        self._scale, self._bias = a, b

    def predict(self, text: str) -> float:
        """Probability that canonical `text` (one window) is an injection."""
        return self.predict_features(WindowFeatures(text))

    def predict_features(self, feats: WindowFeatures) -> float:
        """`predict` on features already extracted (`raw` over `all_features`, same sum)."""
        ww, cw = self._word_weights, self._char_weights
        known_words = feats.words & ww.keys()
        known_chars = feats.chars & cw.keys()
        total = sum(map(ww.__getitem__, known_words)) + sum(map(cw.__getitem__, known_chars))
        raw = total / (len(known_words) + len(known_chars) + _PRIOR_FEATURES)
        z = self._scale * raw + self._bias
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
