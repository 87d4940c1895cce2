"""The significance tests behind experiment reports, against textbook values: Student's t
table, the standard normal table, and the worked Welch example of Wikipedia's "Welch's t-test"
article (its first example: t = -2.46, df = 25.0, p = 0.021)."""

from __future__ import annotations

import math

import pytest

from gatewise.quality.stats import (
    betainc,
    normal_sf_two_sided,
    percentile,
    t_cdf,
    t_sf_two_sided,
    two_proportion_z,
    welch_t,
)

A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


@pytest.mark.parametrize(("t", "df", "p"), [
    (12.706, 1, 0.05), (4.303, 2, 0.05), (2.228, 10, 0.05), (2.042, 30, 0.05),
    (1.812, 10, 0.10), (3.169, 10, 0.01), (2.576, 1e6, 0.01),
])
def test_student_t_two_sided_tails_match_the_table(t: float, df: float, p: float) -> None:
    assert t_sf_two_sided(t, df) == pytest.approx(p, rel=2e-3)
    assert t_sf_two_sided(-t, df) == t_sf_two_sided(t, df)


def test_the_t_cdf_is_symmetric_and_a_cauchy_at_one_degree_of_freedom() -> None:
    assert t_cdf(0.0, 7) == pytest.approx(0.5)
    # df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi.
    for t in (-3.0, -0.5, 0.7, 4.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


def test_the_regularized_incomplete_beta_has_its_closed_forms() -> None:
    # I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b; I_x(1/2, 1/2) = 2/pi asin(sqrt x).
    assert betainc(3.5, 1.0, 0.4) == pytest.approx(0.4 ** 3.5, rel=1e-12)
    assert betainc(1.0, 4.0, 0.3) == pytest.approx(1 - 0.7 ** 4, rel=1e-12)
    assert betainc(0.5, 0.5, 0.25) == pytest.approx(2 / math.pi * math.asin(0.5), rel=1e-12)
    assert (betainc(2, 3, 0.0), betainc(2, 3, 1.0)) == (0.0, 1.0)


def test_welch_matches_the_worked_example() -> None:
    r = welch_t(A2, A1)
    assert r is not None
    assert r.statistic == pytest.approx(-2.46, abs=0.005)
    assert r.df == pytest.approx(25.0, abs=0.05)
    assert r.p_value == pytest.approx(0.021, abs=0.0005)
    assert r.significant
    assert r.difference == pytest.approx(sum(A1) / 15 - sum(A2) / 15)


def test_welch_on_identical_samples_is_not_significant_and_needs_two_per_arm() -> None:
    r = welch_t([0.8, 0.9, 0.7], [0.8, 0.9, 0.7])
    assert r is not None and r.p_value == pytest.approx(1.0) and not r.significant
    assert r.needed_per_arm is None  # no difference: no sample size shows one
    assert welch_t([1.0], [1.0, 2.0]) is None


def test_a_non_significant_difference_says_how_many_samples_would_show_it() -> None:
    r = welch_t([0.70, 0.80, 0.75, 0.72], [0.74, 0.83, 0.78, 0.76])
    assert r is not None and not r.significant
    # (1.96 + 0.84)^2 (s1^2 + s2^2) / d^2, by hand: 7.849 * (0.001892 + 0.001492) / 0.035^2
    # = 21.7, so 22 per arm.
    assert r.needed_per_arm == 22


def test_the_two_proportion_z_test_matches_the_normal_table() -> None:
    # 30/100 against 45/100: pooled p = 0.375, z = 0.15 / sqrt(0.375 * 0.625 * 0.02) = 2.19,
    # and the table's two-sided tail at 2.19 is 2 * (1 - 0.9857) = 0.0286.
    r = two_proportion_z(30, 100, 45, 100)
    assert r is not None
    assert r.statistic == pytest.approx(2.191, abs=0.001)
    assert r.p_value == pytest.approx(0.0286, abs=0.0002)
    assert r.significant and r.difference == pytest.approx(0.15)
    assert normal_sf_two_sided(1.959964) == pytest.approx(0.05, abs=1e-6)


def test_two_proportions_without_variation_or_samples() -> None:
    r = two_proportion_z(0, 50, 0, 50)
    assert r is not None and r.p_value == 1.0 and not r.significant
    assert two_proportion_z(0, 0, 1, 10) is None


def test_percentiles_interpolate_between_ranks() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(xs, 0.5) == 3.0
    assert percentile(xs, 0.95) == pytest.approx(4.8)
    assert percentile([], 0.5) is None
