"""The significance tests an experiment report needs, with nothing but `math`.

Welch's t-test compares two means without assuming equal variances (latency, cost and
quality scores rarely have them); its p-value comes from Student's t distribution, whose CDF
is the regularized incomplete beta function, evaluated by the continued fraction of Numerical
Recipes §6.4 (converges in a few dozen terms for any df and t). Error rates are compared
with the pooled two-proportion z-test, whose p-value is the normal tail (`math.erfc`).

A sample-size hint says how many samples per arm would detect the observed difference with
80 % power at the 0.05 level (the normal approximation), so "not significant" comes with
"and this is how far away it is". A SciPy dependency for two formulas was not worth it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
_Z_ALPHA = 1.959963984540054  # two-sided 0.05
_Z_POWER = 0.8416212335729143  # 80 % power
_EPS = 3e-16
_TINY = 1e-300


@dataclass(frozen=True, slots=True)
class TestResult:
    """A comparison of a variant against the control."""

    test: str  # "welch_t" | "two_proportion_z"
    statistic: float
    p_value: float
    df: float | None  # Welch's degrees of freedom; None for the z-test
    difference: float  # variant minus control
    significant: bool  # p < ALPHA
    # Samples per arm for 80 % power at ALPHA on the observed difference (None: no difference
    # was observed, or there is too little data to estimate the spread).
    needed_per_arm: int | None


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t)."""
    tail = t_sf_two_sided(t, df) / 2.0
    return 1.0 - tail if t > 0 else tail


def normal_sf_two_sided(z: float) -> float:
    """P(|Z| >= |z|) for the standard normal."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def mean_var(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and the unbiased sample variance (0 with fewer than two values)."""
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = math.fsum(xs) / n
    if n < 2:
        return m, 0.0
    return m, math.fsum((x - m) ** 2 for x in xs) / (n - 1)


def _needed(spread: float, diff: float) -> int | None:
    if diff == 0 or not math.isfinite(diff) or not math.isfinite(spread) or spread <= 0:
        return None
    return math.ceil((_Z_ALPHA + _Z_POWER) ** 2 * spread / (diff * diff))


def welch_t(control: Sequence[float], variant: Sequence[float]) -> TestResult | None:
    """Welch's unequal-variance t-test; None with fewer than two samples in either arm."""
    n1, n2 = len(control), len(variant)
    if n1 < 2 or n2 < 2:
        return None
    m1, v1 = mean_var(control)
    m2, v2 = mean_var(variant)
    diff = m2 - m1
    se1, se2 = v1 / n1, v2 / n2
    se2_total = se1 + se2
    if se2_total == 0:  # both arms constant: identical means are no evidence, different ones are
        p = 1.0 if diff == 0 else 0.0
        return TestResult("welch_t", 0.0 if diff == 0 else math.copysign(math.inf, diff), p,
                          float(n1 + n2 - 2), diff, p < ALPHA, None)
    t = diff / math.sqrt(se2_total)
    df = se2_total ** 2 / ((se1 * se1) / (n1 - 1) + (se2 * se2) / (n2 - 1))
    p = t_sf_two_sided(t, df)
    return TestResult("welch_t", t, p, df, diff, p < ALPHA, _needed(v1 + v2, diff))


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> TestResult | None:
    """Pooled two-proportion z-test of x2/n2 against x1/n1; None when an arm is empty."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    diff = p2 - p1
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var == 0:  # both arms all-success or all-failure: no difference to test
        return TestResult("two_proportion_z", 0.0, 1.0, None, diff, False, None)
    z = diff / math.sqrt(var)
    p = normal_sf_two_sided(z)
    return TestResult("two_proportion_z", z, p, None, diff, p < ALPHA,
                      _needed(p1 * (1 - p1) + p2 * (1 - p2), diff))


def percentile(sorted_xs: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    n = len(sorted_xs)
    if n == 0:
        return None
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)
