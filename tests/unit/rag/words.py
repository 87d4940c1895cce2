"""A deterministic stand-in for a sentence embedder: hashed bag-of-words vectors.

Like a real small model it knows *meaning* a little (a handful of synonyms share a
dimension: "car" is "automobile") and *codes* not at all (a token with a digit carries no
signal), which is exactly where BM25 and vectors differ and fusion pays."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

DIM = 64
SYNONYMS = {"car": "automobile", "auto": "automobile", "fix": "repair", "mend": "repair",
            "motor": "engine", "quick": "fast", "rapid": "fast", "feline": "cat",
            "kitten": "cat", "purchase": "buy"}
_WORD = re.compile(r"[^\W_]+")


def _slot(word: str) -> tuple[int, float]:
    digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % DIM, 1.0 if digest[4] & 1 else -1.0


def word_vector(text: str) -> np.ndarray:
    vec = np.zeros(DIM, dtype=np.float32)
    for word in _WORD.findall(text.casefold()):
        if any(ch.isdigit() for ch in word):
            continue
        slot, sign = _slot(SYNONYMS.get(word, word))
        vec[slot] += sign
    norm = float(np.linalg.norm(vec))
    if norm == 0:
        vec[0] = 1.0
        return vec
    return vec / norm


class WordEmbedder:
    name = "words"
    dimension = DIM

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([word_vector(t) for t in texts])

    async def aclose(self) -> None:
        return None


def embed_now(texts: Sequence[str]) -> np.ndarray:
    return np.stack([word_vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
