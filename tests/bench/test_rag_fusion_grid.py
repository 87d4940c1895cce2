"""Min-max and z-score fusion (`fuse_scores`, `fuse_zscores` in bench/rag_quality.py), the
alternatives the RAG bench's held-out grid weighs against reciprocal rank fusion, and
`top_z`, the label-free confidence its adaptive settings weigh each list by: a list that
carries no order leaves the other in charge, scales do not matter, weights tip the balance,
and ties are broken the same way every time."""

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


_rq = _load_rag_quality()
fuse_scores = _rq.fuse_scores
fuse_zscores = _rq.fuse_zscores
top_z = _rq.top_z

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


def test_top_z_is_how_far_the_head_stands_out_whatever_the_scale() -> None:
    sure = [(1, 0.95), (2, 0.40), (3, 0.38), (4, 0.36)]
    unsure = [(1, 0.52), (2, 0.50), (3, 0.49), (4, 0.47)]
    assert top_z(sure) > top_z(unsure) > 0
    assert top_z([(k, 3.0 + 40.0 * s) for k, s in sure]) == pytest.approx(top_z(sure))


def test_top_z_of_a_list_with_nothing_to_judge_by_is_zero() -> None:
    assert top_z([]) == 0.0
    assert top_z([(1, 7.0)]) == 0.0
    assert top_z([(1, 2.0), (2, 2.0)]) == 0.0


def test_z_fusion_ignores_each_lists_scale_and_offset() -> None:
    rescaled = [(k, 100.0 + 37.0 * s) for k, s in LEX]
    assert keys(fuse_zscores([VEC, LEX], (0.6, 0.4))) == keys(fuse_zscores([VEC, rescaled],
                                                                            (0.6, 0.4)))


def test_z_fusion_gives_a_key_a_list_missed_that_lists_lowest_z() -> None:
    fused = dict(fuse_zscores([VEC, LEX], (0.5, 0.5)))
    vz, lz = _z(VEC), _z(LEX)
    assert fused[3] == pytest.approx(0.5 * vz[3] + 0.5 * lz[3])
    assert fused[2] == pytest.approx(0.5 * vz[2] + 0.5 * min(lz.values()))
    assert fused[5] == pytest.approx(0.5 * min(vz.values()) + 0.5 * lz[5])


def test_z_fusion_a_flat_list_or_a_zero_weight_leaves_the_other_in_charge() -> None:
    flat = [(9, 2.0), (3, 2.0)]
    # LEX's order, its last key ahead of the keys only the flat list returned.
    assert keys(fuse_zscores([flat, LEX], (5.0, 1.0))) == [3, 5, 1, 9]
    assert keys(fuse_zscores([VEC, LEX], (1.0, 0.0)))[:4] == [1, 2, 3, 4]
    for lists in ([VEC, []], [[], VEC]):
        assert keys(fuse_zscores(lists, (1.0, 1.0))) == [1, 2, 3, 4]


def test_z_fusion_ties_keep_the_order_of_first_appearance() -> None:
    a = [(1, 1.0), (2, 0.0)]
    b = [(2, 1.0), (1, 0.0)]
    assert keys(fuse_zscores([a, b], (1.0, 1.0))) == [1, 2]
    assert keys(fuse_zscores([b, a], (1.0, 1.0))) == [2, 1]


def _z(ranked: list[tuple[int, float]]) -> dict[int, float]:
    scores = [s for _, s in ranked]
    mu = sum(scores) / len(scores)
    sd = (sum((s - mu) ** 2 for s in scores) / len(scores)) ** 0.5
    return {k: (s - mu) / sd for k, s in ranked}
