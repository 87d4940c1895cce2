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


def windows(text: str) -> list[str]:
    """Overlapping windows, so an instruction buried in a long document is judged on its own
    neighbourhood instead of being diluted by pages of ordinary text."""
    if len(text) <= WINDOW:
        return [text]
    return [text[i:i + WINDOW] for i in range(0, len(text) - (WINDOW - _STEP), _STEP)]
