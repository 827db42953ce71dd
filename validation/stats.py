"""Shared statistics of the checks: intervals for proportions and AUCs, association, effective counts.

One home for the figures several checks compute, so each is written (and tested) once:

- ``two_sided_z`` and ``check_confidence``: the normal quantile of a two-sided interval, and the
  check that a confidence level is in (0, 1);
- ``wilson_bounds`` / ``wilson_interval``: the Wilson score interval of a proportion (the privacy
  shares, Anonymeter-style attack rates);
- ``paired_difference_ci``: Newcombe's (1998) hybrid score interval for the difference of two
  paired proportions (the near-copy share);
- ``delong_auc_variance``: the AUC and its nonparametric variance (membership inference);
- ``kish_effective_counts``: a class-balanced rate as binomial-equivalent counts (attribute
  inference's balanced accuracy), so the Wilson/MOVER interval applies to it;
- ``cramers_v`` (one contingency table, by scipy's ``association``) and ``cramers_v_matrix`` (every
  pair of two column sets at once, for the DCR share's correlated subsets).

Pure numpy/scipy on aggregates: nothing here sees a row, only counts and scores.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats.contingency import association

__all__ = [
    "ASSOCIATION_BLOCK_LEVELS",
    "check_confidence",
    "cramers_v",
    "cramers_v_matrix",
    "delong_auc_variance",
    "kish_effective_counts",
    "paired_difference_ci",
    "two_sided_z",
    "wilson_bounds",
    "wilson_interval",
]

# One-hot levels per block of the association's matrix products (memory: rows x this x 4 bytes).
ASSOCIATION_BLOCK_LEVELS = 1024


# --- normal quantiles and confidence levels -----------------------------------------------------


def two_sided_z(confidence: float) -> float:
    """The standard normal quantile ``z`` of a two-sided interval at ``confidence`` (1.96 at 0.95)."""
    return float(norm.ppf(0.5 + confidence / 2.0))


def check_confidence(confidence: float) -> None:
    """Refuse a confidence level outside (0, 1), saying what to pass."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1). Got {confidence}. Use e.g. 0.95.")


# --- proportions -------------------------------------------------------------------------------


def wilson_bounds(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (vectorised; n > 0).

    ``k`` may be fractional (a share with ties split, binomial-equivalent counts): scipy's
    ``binomtest(k, n).proportion_ci(method="wilson")`` gives the same interval for whole ``k``
    but takes neither fractions nor arrays.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z2 = z * z
    centre = (k + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * np.sqrt(np.maximum(k * (n - k) / n, 0.0) + z2 / 4.0)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a success rate ``successes / trials``."""
    check_confidence(confidence)
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1. Got successes={successes}, trials={trials}.")
    lo, hi = wilson_bounds(np.array(successes), np.array(trials), two_sided_z(confidence))
    return float(lo), float(hi)


def paired_difference_ci(a: float, b: float, c: float, d: float, confidence: float) -> tuple[float, float]:
    """Interval for ``p1 - p2`` of two paired proportions: Newcombe's (1998) method 10, the
    hybrid score interval built from each proportion's Wilson interval and the correlation
    ``phi`` of the pairs (``a`` both, ``b`` the first only, ``c`` the second only, ``d`` neither;
    ``ad - bc`` continuity-corrected by n/2 as Newcombe does). Counts may be fractional.

    scipy has no paired-proportion interval (``statsmodels`` is not a dependency)."""
    n = a + b + c + d
    z = two_sided_z(confidence)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = (float(v) for v in wilson_bounds(np.array(a + b), np.array(n), z))
    l2, u2 = (float(v) for v in wilson_bounds(np.array(a + c), np.array(n), z))
    den = (a + b) * (c + d) * (a + c) * (b + d)
    num = a * d - b * c
    num = max(num - n / 2, 0.0) if num > 0 else num
    phi = num / math.sqrt(den) if den > 0 else 0.0
    delta = p1 - p2
    low = delta - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = delta + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(-1.0, low), min(1.0, high)


def kish_effective_counts(hits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """``(k_eff, n_eff)``: a class-balanced success rate as binomial-equivalent counts.

    ``targets[k]`` attacks on class ``k``, ``hits[k]`` of them right; the rate is the unweighted
    mean of the per-class rates. Its variance is ``sum_k p_k (1 - p_k) / n_k / K^2`` with
    ``p_k = (hits + 1/2) / (n_k + 1)`` (so that a class guessed always or never still has
    spread); ``n_eff = P (1 - P) / Var`` (Kish's effective sample size, ``P`` the mean of the
    ``p_k``) and ``k_eff = rate x n_eff``, so a binomial interval can be put on the rate.
    """
    k = targets.size
    rate = float(np.mean(hits / targets))
    smooth = (hits + 0.5) / (targets + 1.0)
    var = float(np.sum(smooth * (1.0 - smooth) / targets)) / k**2
    centre = float(np.mean(smooth))
    n_eff = centre * (1.0 - centre) / var
    return rate * n_eff, n_eff


# --- ROC AUC -------------------------------------------------------------------------------------


def delong_auc_variance(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """(AUC, variance of the AUC) by DeLong, DeLong & Clarke-Pearson (1988), with mid-ranks.

    Each member's placement is the share of non-members it outscores (ties count half), each
    non-member's the share of members that outscore it; the AUC is their mean and its
    variance is ``var(member placements)/m + var(non-member placements)/n``. The placements
    come from ranks (Sun & Xu, 2014), so this is O((m + n) log(m + n)). Neither scipy nor
    scikit-learn has an AUC variance.
    """
    m, n = pos.size, neg.size
    combined = rankdata(np.concatenate([pos, neg]))
    v_pos = (combined[:m] - rankdata(pos)) / n
    v_neg = 1.0 - (combined[m:] - rankdata(neg)) / m
    auc = float(v_pos.mean())
    var = float(v_pos.var(ddof=1) / m + v_neg.var(ddof=1) / n)
    return auc, var


# --- association -----------------------------------------------------------------------------------


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V (no bias correction) of a contingency table of counts: scipy's
    ``association(method="cramer", correction=False)``, ``sqrt(χ² / (n (min(r, c) - 1)))``.

    ``r`` and ``c`` count the categories that occur (empty rows and columns are dropped first);
    with fewer than two on either side there is no association to measure and V is 0 (scipy
    would divide by zero).
    """
    table = np.asarray(table)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 0.0
    return float(min(1.0, association(table.astype(np.int64), method="cramer", correction=False)))


def _one_hot_counts(codes: list[np.ndarray], levels: list[int]) -> np.ndarray:
    """float32 0/1 matrix (rows x sum(levels)): each column's codes one-hot, side by side."""
    n = len(codes[0])
    out = np.zeros((n, sum(levels)), dtype=np.float32)
    start = 0
    for c, k in zip(codes, levels, strict=True):
        out[np.arange(n), start + c] = 1.0
        start += k
    return out


def _level_blocks(levels: list[int], indices: list[int]) -> list[list[int]]:
    """``indices`` cut into consecutive blocks of at most ``ASSOCIATION_BLOCK_LEVELS`` levels
    (a column with more levels is a block of its own)."""
    blocks: list[list[int]] = [[]]
    total = 0
    for j in indices:
        if blocks[-1] and total + levels[j] > ASSOCIATION_BLOCK_LEVELS:
            blocks.append([])
            total = 0
        blocks[-1].append(j)
        total += levels[j]
    return [b for b in blocks if b]


def cramers_v_matrix(codes: list[np.ndarray], levels: list[int], rows: list[int], cols: list[int]) -> np.ndarray:
    """Cramér's V (no bias correction, as scipy's ``association(method="cramer")``) of every
    column in ``rows`` with every column in ``cols``: a ``(len(rows), len(cols))`` array, 0 where
    a column holds a single level. Every level of a column occurs (codes 0..L-1 are dense).

    Not scipy's ``association``: it takes one table per call (about 1.4 ms each, measured on a
    shared machine, against 0.06 ms for the arithmetic), and the correlated subsets measure up
    to 256²/2 pairs. All contingency tables of two blocks of columns come from one product of
    their one-hot matrices (counts, exact in float32 below 2^24 rows); with row sums ``r`` and
    column sums ``c``, ``V² = (Σ O² / (r c) - 1) / (min(R, C) - 1)`` (χ² without continuity
    correction over ``n (min(R, C) - 1)``); a test checks it against scipy. Memory: two one-hot
    blocks of rows x at most ``ASSOCIATION_BLOCK_LEVELS`` levels and their product; work:
    rows x (levels of ``rows``) x (levels of ``cols``).
    """
    out = np.zeros((len(rows), len(cols)))
    pos_r = {j: i for i, j in enumerate(rows)}
    pos_c = {j: i for i, j in enumerate(cols)}
    for block_a in _level_blocks(levels, rows):
        xa = _one_hot_counts([codes[j] for j in block_a], [levels[j] for j in block_a])
        ra = xa.sum(axis=0, dtype=np.float64)
        starts_a = np.cumsum([0] + [levels[j] for j in block_a[:-1]])
        for block_b in _level_blocks(levels, cols):
            xb = _one_hot_counts([codes[j] for j in block_b], [levels[j] for j in block_b])
            cb = xb.sum(axis=0, dtype=np.float64)
            starts_b = np.cumsum([0] + [levels[j] for j in block_b[:-1]])
            observed = (xa.T @ xb).astype(np.float64)
            terms = observed * observed / np.outer(ra, cb)
            sums = np.add.reduceat(np.add.reduceat(terms, starts_a, axis=0), starts_b, axis=1)
            k = np.minimum.outer([levels[j] for j in block_a], [levels[j] for j in block_b])
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.sqrt(np.clip((sums - 1.0) / (k - 1), 0.0, 1.0))
            v[k < 2] = 0.0
            out[np.ix_([pos_r[j] for j in block_a], [pos_c[j] for j in block_b])] = v
    return out
