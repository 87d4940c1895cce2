"""Fusing the vector and BM25 candidate lists by reciprocal rank fusion (`fuse`): an empty
list leaves the other in charge, and ties keep the order of first appearance."""

from __future__ import annotations

import pytest

from gatewise.rag.search import fuse

VEC = [(1, 0.91), (2, 0.74), (3, 0.52), (4, 0.33)]


def keys(fused: list[tuple[int, float]]) -> list[int]:
    return [k for k, _ in fused]


def test_an_empty_list_leaves_the_other_order_untouched() -> None:
    for lists in ([VEC, []], [[], VEC]):
        assert keys(fuse(lists)) == [1, 2, 3, 4]


def test_rrf_ties_keep_the_order_of_first_appearance() -> None:
    fused = fuse([[(1, 0.9), (2, 0.8)], [(2, 3.0), (1, 1.0)]])
    assert keys(fused) == [1, 2]
    assert fused[0][1] == pytest.approx(fused[1][1])
