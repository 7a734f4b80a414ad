"""Intervals and tests against ground truth: exact binomial sums, the analytic standard
error of a paired difference, and coverage over simulated data with a known truth."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from torch_impl.measure.stats import accuracy_diff, ratio_interval, relative_halfwidth

# Coverage of a nominal 95% interval over 300 simulated data sets: its binomial standard
# error is 1.3 pp, so 0.90-0.99 leaves ~4 standard errors each side.
COVERAGE_RANGE = (0.90, 0.99)
# Bootstrap half-width against 1.96 analytic standard errors, 2,000 resamples: measured
# within 3%; 10% allowed.
SE_RTOL = 0.10


def test_mcnemar_is_the_exact_two_sided_binomial_test() -> None:
    model = np.array([True] * 3 + [False] * 12 + [True] * 50 + [False] * 35)
    dense = np.array([False] * 3 + [True] * 12 + [True] * 50 + [False] * 35)
    out = accuracy_diff(model, dense)
    expected = 2 * sum(comb(15, k) for k in range(4)) / 2**15
    assert (out.only_model, out.only_reference) == (3, 12)
    assert out.p_value == pytest.approx(expected, rel=1e-12)
    assert out.diff == pytest.approx((3 - 12) / 100)
    same = accuracy_diff(dense, dense)
    assert same.p_value == 1.0 and same.diff == same.lo == same.hi == 0.0


def test_paired_interval_matches_the_analytic_standard_error() -> None:
    rng = np.random.default_rng(1)
    n = 10_000
    dense = rng.random(n) < 0.7
    flip = rng.random(n) < 0.08  # 8% of images change their outcome
    model = dense ^ flip
    out = accuracy_diff(model, dense)
    d = model.astype(float) - dense.astype(float)
    se = d.std() / np.sqrt(n)
    assert out.lo <= out.diff <= out.hi
    assert (out.hi - out.lo) / 2 == pytest.approx(1.96 * se, rel=SE_RTOL)


def test_accuracy_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(2)
    p_only_model, p_only_dense = 0.045, 0.055  # the true difference is -1 pp
    hits, n = 0, 2000
    for seed in range(300):
        cat = rng.choice(4, n, p=[p_only_model, p_only_dense, 0.65, 0.25])  # 2: both right, 3: neither
        out = accuracy_diff(np.isin(cat, (0, 2)), np.isin(cat, (1, 2)), seed=seed)
        hits += out.lo <= p_only_model - p_only_dense <= out.hi
    assert COVERAGE_RANGE[0] <= hits / 300 <= COVERAGE_RANGE[1]


def test_ratio_interval_narrows_with_rounds_and_needs_three() -> None:
    """Its coverage is tests/measure/test_coverage.py's."""
    rng = np.random.default_rng(3)
    widths = {}
    for _ in range(100):
        drift = np.exp(rng.normal(0, 0.3, 20))  # the machine's speed, shared by both in a round
        ref = 2.0 * drift * np.exp(rng.normal(0, 0.05, 20))
        model = 1.0 * drift * np.exp(rng.normal(0, 0.05, 20))
        for n in (5, 20):
            widths.setdefault(n, []).append(relative_halfwidth(*ratio_interval(model[:n], ref[:n])))
    assert np.median(widths[20]) < np.median(widths[5])
    assert np.isnan(ratio_interval([1.0, 1.0], [2.0, 2.0])[1]) and not np.isnan(ratio_interval([1.0] * 3, [2.0] * 3)[1])
    with pytest.raises(ValueError, match="one time per round"):
        ratio_interval([[1.0]], [[2.0]])
