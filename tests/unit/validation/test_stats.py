"""The shared statistics (validation/stats.py) against their definitions and scipy.

The checks' own tests cover them in use: Newcombe's interval and the all-pairs Cramér's V in
test_privacy.py, the Wilson interval in test_anonymeter.py, DeLong's variance in test_mia.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from scipy.stats.contingency import association

from synthgate.validation.stats import (
    check_confidence,
    cramers_v,
    delong_auc_variance,
    kish_effective_counts,
    two_sided_z,
    wilson_bounds,
)


def test_two_sided_z_and_the_confidence_check() -> None:
    assert two_sided_z(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert two_sided_z(0.9) == pytest.approx(float(norm.ppf(0.95)), abs=1e-15)
    for bad in (0.0, 1.0, 95):
        with pytest.raises(ValueError, match=r"`confidence` must be in \(0, 1\)"):
            check_confidence(bad)


def test_wilson_bounds_equal_scipy_for_whole_counts_and_take_fractions() -> None:
    z = two_sided_z(0.95)
    for k, n in ((0, 10), (3, 4), (50, 100), (99, 100), (7, 7)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_bounds(np.array(k), np.array(n), z)
        assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-12)
    # a fractional count lies between its neighbours, vectorised over arrays
    lo, hi = wilson_bounds(np.array([2.0, 2.5, 3.0]), np.array([4.0, 4.0, 4.0]), z)
    assert lo[0] < lo[1] < lo[2] and hi[0] < hi[1] < hi[2]


def test_kish_counts_of_one_class_are_the_plain_counts_and_shrink_with_imbalance() -> None:
    k, n = kish_effective_counts(np.array([30]), np.array([100]))
    assert (k, n) == pytest.approx((30.0, 100.0), rel=1e-12)
    # two classes of 100 and 10 targets: the rare class's rate is noisy, so fewer effective attacks
    k, n = kish_effective_counts(np.array([50, 5]), np.array([100, 10]))
    assert k / n == pytest.approx(0.5) and n < 110


def test_delong_variance_is_the_placement_variance() -> None:
    rng = np.random.default_rng(8)
    pos, neg = np.round(rng.normal(0.3, 1, 30), 1), np.round(rng.normal(0, 1, 50), 1)  # ties
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc, var = delong_auc_variance(pos, neg)
    assert auc == pytest.approx(psi.mean(), abs=1e-12)
    assert var == pytest.approx(psi.mean(axis=1).var(ddof=1) / 30 + psi.mean(axis=0).var(ddof=1) / 50, abs=1e-12)


def test_cramers_v_is_scipys_on_the_occurring_categories() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        table = rng.integers(0, 40, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6))))
        table[0] += 1  # no empty column
        table[:, 0] += 1  # no empty row
        assert cramers_v(table) == pytest.approx(association(table, method="cramer", correction=False), abs=1e-12)
    # empty rows and columns are categories that do not occur: dropped, not counted in min(r, c)
    padded = np.zeros((4, 5), dtype=np.int64)
    padded[np.ix_([0, 2], [1, 3])] = [[30, 5], [4, 25]]
    assert cramers_v(padded) == pytest.approx(cramers_v(padded[np.ix_([0, 2], [1, 3])]), abs=1e-15)
    assert cramers_v(np.array([[3, 4, 5]])) == 0.0  # one row: nothing to associate
    # 2x2: no Yates continuity correction
    t = np.array([[20, 5], [5, 20]])
    chi2 = sum((o - 12.5) ** 2 / 12.5 for o in t.ravel())
    assert cramers_v(t) == pytest.approx(math.sqrt(chi2 / 50), abs=1e-12)
