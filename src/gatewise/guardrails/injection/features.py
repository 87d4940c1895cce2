"""Text features shared by the similarity layer and the classifier: word unigrams and bigrams
plus character 4-grams of canonical text. Plain strings as keys (no hashing): results do not
depend on Python's per-process hash seed, so training is deterministic."""

from __future__ import annotations

import itertools
import re

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # words of any script
WINDOW = 1200  # characters per scanned window; long texts are scanned window by window
_STEP = 1000


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def word_features(text: str) -> set[str]:
    ws = words(text)
    feats = set(ws)
    feats.update(f"{a} {b}" for a, b in itertools.pairwise(ws))
    return feats


def all_features(text: str) -> set[str]:
    feats = word_features(text)
    squeezed = " ".join(words(text))
    feats.update("#" + squeezed[i:i + 4] for i in range(len(squeezed) - 3))
    return feats


def grams(squeezed: str) -> set[str]:
    """The character 4-grams of `squeezed` (words joined by single spaces), without the `#`
    that marks them in `all_features`."""
    return {squeezed[i:i + 4] for i in range(len(squeezed) - 3)}


class WindowFeatures:
    """One window's features, computed once and read by both learned layers: the word set
    (unigrams and bigrams: the similarity layer's vector, half the classifier's features) and
    the character 4-grams (the other half). `all_features(text)` is exactly
    `words | {"#" + g for g in chars}`."""

    __slots__ = ("chars", "words")

    def __init__(self, text: str) -> None:
        ws = words(text)
        feats = set(ws)
        feats.update(f"{a} {b}" for a, b in itertools.pairwise(ws))
        self.words = feats
        self.chars = grams(" ".join(ws))


def windows(text: str) -> list[str]:
    """Overlapping windows, so an instruction buried in a long document is judged on its own
    neighbourhood instead of being diluted by pages of ordinary text."""
    if len(text) <= WINDOW:
        return [text]
    return [text[i:i + WINDOW] for i in range(0, len(text) - (WINDOW - _STEP), _STEP)]
