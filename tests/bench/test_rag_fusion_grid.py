"""Min-max score fusion (`fuse_scores` in bench/rag_quality.py), the alternative the RAG
bench's held-out grid weighs against reciprocal rank fusion: a list that carries no order
leaves the other in charge, scales do not matter, weights tip the balance, and ties are
broken the same way every time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_rag_quality() -> ModuleType:
    """The bench directory is not a package: load its module by path."""
    path = Path(__file__).resolve().parents[2] / "bench" / "rag_quality.py"
    spec = importlib.util.spec_from_file_location("bench_rag_quality", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuse_scores = _load_rag_quality().fuse_scores

VEC = [(1, 0.91), (2, 0.74), (3, 0.52), (4, 0.33)]
LEX = [(3, 14.2), (5, 9.0), (1, 4.4)]


def keys(fused: list[tuple[int, float]]) -> list[int]:
    return [k for k, _ in fused]


def test_an_empty_list_leaves_the_other_order_untouched() -> None:
    for lists in ([VEC, []], [[], VEC]):
        assert keys(fuse_scores(lists, (1.0, 1.0))) == [1, 2, 3, 4]


def test_a_list_of_equal_scores_carries_no_order_so_the_other_decides() -> None:
    flat = [(9, 2.0), (4, 2.0), (8, 2.0)]
    fused = fuse_scores([flat, LEX], (5.0, 1.0))
    # LEX's order first (its last key scales to 0 like the flat list's, yet LEX ranked it),
    # then the keys only the flat list returned, in its order.
    assert keys(fused) == [3, 5, 1, 9, 4, 8]
    assert all(score == 0.0 for _, score in fused[2:])


def test_score_fusion_ignores_each_lists_scale_and_offset() -> None:
    """BM25 scores are unbounded and cosines live in -1..1: only positions within a list's
    range count, so rescaling a list never changes the fused order."""
    rescaled = [(k, 100.0 + 37.0 * s) for k, s in LEX]
    assert keys(fuse_scores([VEC, LEX], (0.6, 0.4))) == keys(fuse_scores([VEC, rescaled],
                                                                          (0.6, 0.4)))


def test_score_fusion_sums_scaled_scores_by_weight() -> None:
    fused = dict(fuse_scores([VEC, LEX], (0.5, 0.5)))
    # VEC spans 0.33..0.91, LEX 4.4..14.2: key 3 is (0.52-0.33)/0.58 and 1.0.
    assert fused[3] == pytest.approx(0.5 * (0.19 / 0.58) + 0.5 * 1.0)
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert fused[5] == pytest.approx(0.5 * (4.6 / 9.8))
    assert fused[4] == 0.0


def test_weights_tip_the_balance_and_zero_silences_a_list() -> None:
    assert keys(fuse_scores([VEC, LEX], (1.0, 0.0)))[:4] == [1, 2, 3, 4]
    assert keys(fuse_scores([VEC, LEX], (0.0, 1.0)))[:3] == [3, 5, 1]
    assert keys(fuse_scores([VEC, LEX], (0.9, 0.1)))[0] == 1
    assert keys(fuse_scores([VEC, LEX], (0.1, 0.9)))[0] == 3


def test_score_fusion_ties_go_to_the_better_ranked_then_to_first_appearance() -> None:
    a = [(1, 1.0), (2, 0.0)]
    b = [(2, 1.0), (1, 0.0)]
    # 1 and 2 both fuse to 1.0 and both are ranked first somewhere: first appearance wins.
    assert keys(fuse_scores([a, b], (1.0, 1.0))) == [1, 2]
    assert keys(fuse_scores([b, a], (1.0, 1.0))) == [2, 1]
