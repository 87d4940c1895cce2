"""`VectorIndex`: nearest entries of one context fingerprint, unexpired, above a threshold;
a bounded ring (the oldest go first); the large-index path (sign-bit ranking, then exact
rescoring) finds what the exact path finds."""

from __future__ import annotations

import numpy as np

from gatewise.cache.guard import features
from gatewise.cache.vectors import VectorIndex

F = features("x")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_the_closest_entry_of_the_same_fingerprint_is_found() -> None:
    rng = np.random.default_rng(1)
    v = unit(rng.standard_normal((3, 32)))
    idx = VectorIndex(32, 100)
    idx.add("a", v[0], 7, 1e9, F)
    idx.add("b", v[1], 7, 1e9, F)
    idx.add("other-context", v[2], 8, 1e9, F)
    found = idx.search(v[0], 7, now=0.0, threshold=0.9)
    assert [c.key for c in found] == ["a"] and found[0].similarity > 0.99
    assert idx.search(v[2], 7, now=0.0, threshold=0.9) == []  # another fingerprint's entry


def test_expired_and_discarded_entries_are_never_candidates() -> None:
    v = unit(np.ones((1, 16)))
    idx = VectorIndex(16, 10)
    idx.add("old", v[0], 1, expires=100.0, features=F)
    assert idx.search(v[0], 1, now=99.0, threshold=0.5)
    assert idx.search(v[0], 1, now=100.0, threshold=0.5) == []
    idx.add("kept", v[0], 1, expires=1e9, features=F)
    idx.discard("kept")
    assert idx.search(v[0], 1, now=200.0, threshold=0.5) == []


def test_the_ring_drops_the_oldest_entry_when_full() -> None:
    rng = np.random.default_rng(2)
    v = unit(rng.standard_normal((4, 16)))
    idx = VectorIndex(16, capacity=3)
    for i in range(4):
        idx.add(f"k{i}", v[i], 0, 1e9, F)
    assert len(idx) == 3 and "k0" not in idx and "k3" in idx
    assert idx.search(v[0], 0, now=0.0, threshold=0.99) == []
    assert idx.search(v[3], 0, now=0.0, threshold=0.99)[0].key == "k3"


def test_the_large_index_path_finds_the_near_duplicates_the_exact_path_would() -> None:
    rng = np.random.default_rng(3)
    n, d = 20_000, 384
    base = unit(rng.standard_normal((n, d)))
    idx = VectorIndex(d, n)
    for i in range(n):
        idx.add(f"k{i}", base[i], i % 3, 1e9, F)
    for i in rng.choice(n, 50, replace=False):
        noisy = unit((base[i] + 0.25 * rng.standard_normal(d) / np.sqrt(d))[None, :])[0]
        found = idx.search(noisy, int(i % 3), now=0.0, threshold=0.9)
        assert found and found[0].key == f"k{i}"
