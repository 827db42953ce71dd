"""Fidelity checks: how closely the synthetic table follows the real one.

Five checks, from single columns up to whole rows:

- ``column_shapes``: each column's distribution (KS / total-variation complements, null
  rates folded in), with a histogram per column for the report;
- ``pair_trends``: every pair of columns (correlation / contingency similarity), with an
  association matrix (Pearson ρ / Cramér's V) for the report's heat maps;
- ``three_way_marginals``: total variation over 3-way marginals of binned column triples,
  against the real data's own sampling noise (train against holdout);
- ``detection``: how well a classifier tells holdout rows from synthetic rows (ROC AUC);
- ``ml_efficacy``: train on synthetic, test on the holdout (TSTR) against train on real
  (TRTR), for a classification or a regression target.

``fidelity_suite`` runs them all. Column shapes and pair trends follow the definitions of
SDMetrics' QualityReport, with one difference: numeric columns are binned over the
*contract's* range, never a range read from the private rows. The 3-way marginals and the
detection check follow the ideas of mostlyai-qa (sampled column triples; a real-vs-synthetic
classifier), written afresh here.

Like the privacy checks, these read private rows outside the DP guarantee; their results
carry aggregates only (scores, shares, counts, column names, contract labels), never a value
from a row. Histogram bins use the contract's bounds and categories, and a bin holding 1–9
real rows is shown as empty (small-cell suppression).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from itertools import combinations, pairwise
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy.stats import ks_2samp
from scipy.stats import t as student_t
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from synthgate.validation.contract import (
    NUMERIC_KINDS,
    BooleanColumn,
    CategoricalColumn,
    ContinuousColumn,
    Contract,
    DatetimeColumn,
    IntegerColumn,
)
from synthgate.validation.encoding import (
    canonical_frame,
    discrete_codes,
    int_seed,
    n_discrete_slots,
    numeric_bounds,
    numeric_values,
    subsample_rows,
)
from synthgate.validation.results import MetricResult
from synthgate.validation.stats import check_confidence, cramers_v

__all__ = [
    "DEFAULT_DETECTION_MAX_ROWS",
    "DEFAULT_MAX_DETECTION_AUC",
    "DEFAULT_MIN_THREE_WAY_RATIO",
    "column_shapes",
    "detection",
    "fidelity_suite",
    "ml_efficacy",
    "pair_trends",
    "three_way_marginals",
]

# Numeric columns are cut into this many equal-width bins over the contract range for
# contingency tables (SDMetrics' default count).
N_BINS = 10
# Histogram bins per numeric column in the report's plots.
PLOT_BINS = 20
# A plot bin with fewer real rows than this (but at least one) is shown as empty.
MIN_PLOT_CELL = 10
# A non-negative numeric column whose contract range reaches this many decades above its log
# view's first edge (max(min, 1)) also gets a log view in the report (``log_view``).
LOG_VIEW_DECADES = 3
# HistGradientBoosting's native categorical support takes at most 255 categories (max_bins).
_MAX_NATIVE_CATEGORIES = 255

# Release-gate defaults of the 3-way and detection checks, chosen from measurements on Adult
# (benchmarks/fidelity_suite.py; benchmarks/results/fidelity_suite.json): each sits between
# independent marginals (3-way ratio 0.862-0.867, detection AUC 0.989-0.991) and the
# project's DP-CTGAN at epsilon 3 (0.885-0.909 and 0.948-0.961, two training seeds), so the
# former is blocked and the latter passes, with about 0.01 to either side.
DEFAULT_MIN_THREE_WAY_RATIO = 0.875
DEFAULT_MAX_DETECTION_AUC = 0.975
# 3-way marginals: at most this many column triples (a seeded sample beyond it).
DEFAULT_N_TRIPLES = 1000
# Columns of the pair-trends heat maps (details["association"]); a wider table shows the columns of
# its least preserved pairs.
MAX_HEAT_MAP_COLUMNS = 60
# Detection: at most this many rows per side (holdout and synthetic, each).
DEFAULT_DETECTION_MAX_ROWS = 10_000
# Detection classifier: boosting iterations (with early stopping on a 10% validation split).
DETECTION_MAX_ITER = 100
# OpenMP threads of the gradient-boosting models. One: these models are small, and on a
# shared, oversubscribed machine OpenMP's multi-threading collapses (measured on 2 cores at
# load 6: detection on 10k rows per side took 7 s single-threaded, 238 s with 2 threads).
MODEL_THREADS = 1

COLUMN_SHAPES_DESCRIPTION = (
    "How closely each column's distribution matches the real one (1 = identical), averaged over the columns."
)
PAIR_TRENDS_DESCRIPTION = (
    "How well relationships between pairs of columns (correlations and cross-tabulations) "
    "are preserved (1 = identical), averaged over all pairs."
)
THREE_WAY_DESCRIPTION = (
    "How well combinations of three columns are preserved (1 = identical), relative to how "
    "well a fresh sample of real records preserves them (ratio 1 = as well as real data)."
)
DETECTION_DESCRIPTION = (
    "How well a classifier tells synthetic records from unseen real ones (ROC AUC); "
    "0.5 means it cannot tell them apart, 1 means it always can."
)
ML_EFFICACY_DESCRIPTION = (
    "How well a model trained on the synthetic data predicts the target on unseen real "
    "records, relative to a model trained on the real data (1 = just as well)."
)


def _is_numeric(contract: Contract, name: str) -> bool:
    return contract.columns[name].kind in NUMERIC_KINDS


def _tv_distance(a: np.ndarray, b: np.ndarray, size: int) -> float:
    """Total variation between the empirical distributions of two code arrays."""
    p = np.bincount(a, minlength=size) / len(a)
    q = np.bincount(b, minlength=size) / len(b)
    return 0.5 * float(np.abs(p - q).sum())


def _check_threshold(name: str, value: float, hi: float, hint: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= hi):
        raise ValueError(f"`{name}` must be a number in [0, {hi:g}]. Got {value!r}. {hint}")
    return v


# --- column shapes ---------------------------------------------------------------------------


def _ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - KS statistic; a null is a value below every number (so null rates count too)."""
    r = np.where(np.isnan(real), -np.inf, real)
    s = np.where(np.isnan(synthetic), -np.inf, synthetic)
    # Only the statistic is used: the asymptotic method skips the exact p-value's cost.
    return 1.0 - float(ks_2samp(r, s, method="asymp").statistic)


def _trim(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def zero_split(contract: Contract, name: str) -> bool:
    """Whether a numeric column's plot shows its zeros as a bar of their own ("0") before the bins of
    the other values: a zero-inflated amount (money, counts), known from the contract alone (public):
    its range starts at 0, or it lists 0 in ``special_values``. One tall bar at the bottom bin would
    otherwise dwarf every other bin of such a column (Adult's capital-gain: 0 in 9 rows of 10)."""
    col = contract.columns[name]
    if not isinstance(col, (IntegerColumn, ContinuousColumn)) or not col.min <= 0 <= col.max:
        return False
    return float(col.min) == 0.0 or 0.0 in [float(v) for v in (col.special_values or [])]


def plot_edges(contract: Contract, name: str) -> np.ndarray:
    """Edges of a numeric column's plot bins over the contract's public range.

    ``PLOT_BINS`` equal-width bins over [min, max]; an integer column gets bins on integer edges
    instead: each bin holds a whole number of values (``width = ceil((max - min + 1) / PLOT_BINS)``),
    bin ``k`` the integers ``[min + k·width, min + (k + 1)·width)``, so no bin splits a value and no
    two bins hold a different number of values (the last may reach past ``max``). At most
    ``PLOT_BINS`` bins; from the contract alone (public).
    """
    col = contract.columns[name]
    if isinstance(col, IntegerColumn):
        # with its zeros split out (``zero_split``), a column starting at 0 is binned from 1
        start = 1 if zero_split(contract, name) and int(col.min) == 0 else int(col.min)
        values = int(col.max) - start + 1
        width = max(1, -(-values // PLOT_BINS))
        bins = -(-values // width)
        return float(start) + width * np.arange(bins + 1, dtype=float)
    lo, hi = numeric_bounds(contract, name)
    return np.linspace(lo, hi, PLOT_BINS + 1)


def plot_bin(values: np.ndarray, edges: np.ndarray, *, integer: bool, log: bool = False) -> np.ndarray:
    """The plot bin of each value (``plot_edges``, or ``log_edges`` with ``log``: bins of unequal
    width, each ``[edges[k], edges[k + 1])``); values outside the range go to the end bins."""
    bins = len(edges) - 1
    if log:
        return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1).astype(np.int64)
    lo, hi = float(edges[0]), float(edges[-1])
    # integer bins: exact integer arithmetic on the width; otherwise the share of [lo, hi]
    pos = (values - lo) / float(edges[1] - edges[0]) if integer else (values - lo) / (hi - lo) * bins
    return np.clip(np.floor(pos), 0, bins - 1).astype(np.int64)


def edge_labels(contract: Contract, name: str, edges: np.ndarray) -> list[str]:
    """``"lo–hi"`` labels of histogram bins; numbers compact, datetimes as dates (UTC); an integer
    column's bins (``plot_edges``) as the integers they hold: ``"20–24"``, or ``"20"`` for one."""
    step = float(edges[1] - edges[0])
    col = contract.columns[name]
    if isinstance(col, IntegerColumn):
        first = [int(e) for e in edges[:-1]]
        last = [min(int(e) - 1, int(col.max)) for e in edges[1:]]
        return [str(a) if a == b else f"{a}–{b}" for a, b in zip(first, last, strict=True)]
    if isinstance(col, DatetimeColumn):
        fmt = "%Y-%m-%d" if step >= 86_400 else "%Y-%m-%d %H:%M"
        text = [dt.datetime.fromtimestamp(float(e), tz=dt.UTC).strftime(fmt) for e in edges]
    else:
        # Two significant digits of the bin width: 17–20.65 for a width of 3.65.
        decimals = min(10, max(0, 2 - math.floor(math.log10(step))))
        text = [_trim(f"{float(e) + 0.0:.{decimals}f}") for e in edges]
    return [f"{a}–{b}" for a, b in pairwise(text)]


def plot_labels(contract: Contract, name: str) -> list[str]:
    """Labels of a numeric column's plot bars: ``"0"`` first when its zeros are split out, then the bins."""
    return (["0"] if zero_split(contract, name) else []) + edge_labels(contract, name, plot_edges(contract, name))


def _bounds(contract: Contract, name: str) -> tuple[float, float] | None:
    """An integer or continuous column's contract bounds as floats; None for any other kind."""
    col = contract.columns[name]
    if not isinstance(col, (IntegerColumn, ContinuousColumn)):
        return None
    return float(col.min), float(col.max)


def _log_start(contract: Contract, name: str) -> float:
    """The first edge of a column's log view: its lower bound, or 1 when that is below 1."""
    bounds = _bounds(contract, name)
    return max(bounds[0], 1.0) if bounds is not None else 1.0


def log_view(contract: Contract, name: str) -> bool:
    """Whether a numeric column's report also draws it on log-width bins (``log_edges``).

    A money or count column is often right-skewed: most values are small, a few are many times
    larger (Adult's capital-gain runs to 99,999; fnlwgt to 2 million), so on 20 equal-width bins
    over the contract range nearly every row sits in the first bar. The log view's bars each span
    the same ratio of values instead, so every magnitude gets bars of its own. Decided from the
    contract alone (public, like ``zero_split``): an integer or continuous column with a lower
    bound >= 0 whose upper bound is at least ``LOG_VIEW_DECADES`` decades above max(lower bound, 1).
    A share in [0, 1], an age in [17, 90] or hours in [1, 99] get none.
    """
    bounds = _bounds(contract, name)
    if bounds is None or bounds[0] < 0:
        return False
    return bounds[1] >= _log_start(contract, name) * 10.0**LOG_VIEW_DECADES


def log_edges(contract: Contract, name: str) -> np.ndarray:
    """Edges of a column's log-view bins (``log_view``): ``PLOT_BINS`` bins whose edges grow by one
    ratio from max(lower bound, 1) to the upper bound. An integer column's edges are whole numbers
    (repeats dropped, so its first bins may hold one value each) and its last edge is max + 1, so
    bin ``k`` holds the integers ``[edges[k], edges[k + 1])``. Values below the first edge (a
    continuous column's values in (0, 1)) count in the first bin. Zeros are left out of the log
    view (a log axis has no 0; the column's plot shows them as its ``"0"`` bar), so a zero-inflated
    amount's spike does not flatten its other values there either. From the contract alone (public).
    """
    bounds = _bounds(contract, name)
    if bounds is None:
        raise ValueError(f"column {name!r} is not an integer or continuous column: it has no log view.")
    start, stop = _log_start(contract, name), bounds[1]
    if isinstance(contract.columns[name], IntegerColumn):
        edges = np.unique(np.round(np.geomspace(start, stop + 1.0, PLOT_BINS + 1)))
        edges[-1] = stop + 1.0
        return edges
    return np.geomspace(start, stop, PLOT_BINS + 1)


def _compact(value: float) -> str:
    """A bin edge in at most three significant digits: 0.5, 18, 562, 5.62k, 100k, 2M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def log_labels(contract: Contract, name: str) -> list[str]:
    """Labels of a column's log-view bars (``"1"``, ``"3–5"``, ``"5.62k–10k"``; ``"<1.41"`` for a first
    bin that also holds the values below 1). No ``"0"``: zeros are left out of the log view."""
    col = contract.columns[name]
    edges = log_edges(contract, name)
    if isinstance(col, IntegerColumn):
        first = [int(e) for e in edges[:-1]]
        last = [int(e) - 1 for e in edges[1:]]
        labels = [_compact(a) if a == b else f"{_compact(a)}–{_compact(b)}" for a, b in zip(first, last, strict=True)]
    else:
        labels = [f"{_compact(a)}–{_compact(b)}" for a, b in pairwise(edges.tolist())]
        bounds = _bounds(contract, name)
        if bounds is not None and bounds[0] < edges[0]:
            labels[0] = f"<{_compact(edges[1])}"
    return labels


def column_plot(
    real: pl.Series, synthetic: pl.Series, contract: Contract, name: str, *, log: bool = False
) -> dict[str, Any]:
    """Histogram of one column for the report, over the contract's bins or categories.

    Shares are over non-null rows. Small-cell suppression: a bin (or the null cell) holding
    1 to ``MIN_PLOT_CELL - 1`` real rows shows a real share of 0 and is counted in
    ``suppressed``; the other real shares are then over the rows of the shown bins, so the
    hidden rows cannot be read back as ``1 - sum(shares)``. Synthetic shares are kept.
    With ``log`` (a numeric column with a ``log_view`` only), over the log-view bins
    (``log_edges``), marked ``"scale": "log"``; its zeros are left out (shares over the non-null,
    non-zero rows).
    """
    if log and not log_view(contract, name):
        raise ValueError(
            f"column {name!r} has no log view: it needs an integer or continuous kind, a lower bound >= 0 and "
            f"an upper bound at least {LOG_VIEW_DECADES} decades above max(lower bound, 1) (see log_view)."
        )
    if _is_numeric(contract, name):
        edges = log_edges(contract, name) if log else plot_edges(contract, name)
        labels = log_labels(contract, name) if log else plot_labels(contract, name)
        integer = isinstance(contract.columns[name], IntegerColumn)
        split = zero_split(contract, name)

        def counts(series: pl.Series) -> tuple[np.ndarray, int]:
            x = numeric_values(series)
            null = np.isnan(x)
            values = x[~null]
            zero = values == 0 if split else np.zeros(values.shape, dtype=bool)
            # Values outside the contract range (refused by schema validation) go to end bins.
            b = np.bincount(plot_bin(values[~zero], edges, integer=integer, log=log), minlength=len(edges) - 1)
            # the log view leaves the zeros out; the linear plot gives them the first bar
            return (np.concatenate([[int(zero.sum())], b]) if split and not log else b), int(null.sum())

        plot_type = "numeric"
    else:
        col = contract.columns[name]
        categories = list(col.categories) if isinstance(col, CategoricalColumn) else ["False", "True"]
        k = len(categories)
        null_code = n_discrete_slots(contract, name) - (1 if isinstance(col, BooleanColumn) else 2)

        def counts(series: pl.Series) -> tuple[np.ndarray, int]:
            codes = discrete_codes(series, contract, name)
            null = codes == null_code
            # Codes: categories 0..k-1, null k, (categorical) out-of-domain k+1 -> slot k.
            c = np.where(codes > null_code, k, codes)[~null]
            return np.bincount(c, minlength=k + 1), int(null.sum())

        plot_type = "categorical"
        labels = categories

    real_counts, real_null = counts(real)
    syn_counts, syn_null = counts(synthetic)
    if plot_type == "categorical":
        if real_counts[-1] == 0 and syn_counts[-1] == 0:
            real_counts, syn_counts = real_counts[:-1], syn_counts[:-1]
        else:
            labels = labels + ["(other)"]

    small = (real_counts > 0) & (real_counts < MIN_PLOT_CELL)
    shown = np.where(small, 0, real_counts)
    null_small = 0 < real_null < MIN_PLOT_CELL
    shown_total = int(shown.sum())
    syn_total = int(syn_counts.sum())
    plot = {
        "type": plot_type,
        "labels": [str(x) for x in labels],
        "real": [float(c) / shown_total if shown_total else 0.0 for c in shown],
        "synthetic": [float(c) / syn_total if syn_total else 0.0 for c in syn_counts],
        "null_real": 0.0 if null_small else real_null / len(real),
        "null_synthetic": syn_null / len(synthetic),
        "suppressed": int(small.sum()) + int(null_small),
    }
    if log:
        plot["scale"] = "log"
    return plot


def _reference_sample(
    holdout: pl.DataFrame, synthetic_rows: int, contract: Contract, seed: int
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The holdout rows a fidelity figure's holdout reference is measured on, as the 3-way check
    draws them: subsampled (seeded, without replacement) to at most the synthetic table's size, so
    the reference carries at least the sampling noise of the figure beside it. With its details."""
    ho = canonical_frame(holdout, contract, role="holdout")
    m = min(ho.height, synthetic_rows)
    used = subsample_rows(ho, m, np.random.default_rng(np.random.SeedSequence(seed)))
    return used, {
        "ceiling_rows": used.height,
        "ceiling_measure": "the same measure between the training rows and real holdout rows the model never saw "
        "(subsampled to at most the synthetic table's size): what a fresh real sample of that size scores",
    }


def column_shapes(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    holdout: pl.DataFrame | None = None,
    seed: int = 0,
) -> MetricResult:
    """Mean per-column similarity of the marginal distributions.

    Numeric columns (continuous, integer; datetimes as epoch seconds): KS complement
    ``1 - D`` with ``D`` the two-sample Kolmogorov–Smirnov statistic (scipy ``ks_2samp``).
    Categorical and boolean columns: TV complement ``1 - ½ Σ |p_c - q_c|`` over the category
    frequencies (values outside the contract's domain, which schema validation refuses, share
    one 'other' category).

    Missing values are *folded into* each column's score: null is a value of its own (below
    every number for KS, its own category for TV), so a column's score is at most its
    missing-value similarity ``1 - |null_rate_real - null_rate_syn|`` and equals the plain
    KS/TV complement when neither side has nulls. The two null rates are shown beside the
    score in the column's plot.

    ``details["per_column"][col]`` holds ``metric``, ``score``, ``plot`` and, for a column with a
    ``log_view``, ``plot_log`` (the same rows' non-zero values over log-width bins). ``plot`` is a histogram for
    the report, ``{"type": "numeric"|"categorical", "labels", "real", "synthetic",
    "null_real", "null_synthetic", "suppressed"}``. Numeric columns: 20 equal-width bins over
    the contract's [min, max]; categorical: the contract's categories in order (plus
    "(other)" when a value lies outside them); boolean: "False", "True". Shares are over
    non-null rows; a bin (or the null cell) with 1–9 real rows gets real share 0 and counts
    in ``suppressed``, and the remaining real shares are over the shown rows.

    Gate: mean ``>= contract.gates.min_column_shapes``.

    With ``holdout``, the holdout reference, computed as ``three_way_marginals`` computes its
    ceiling: the same score between ``real`` and the holdout (subsampled, seeded by ``seed``, to
    at most the synthetic table's size), ``details["ceiling"]`` (mean) and each column's
    ``ceiling``: what real rows the model never saw reach ("0.93 of a possible 0.98"). Not gated.

    Args:
        real: real rows (usually train), exactly ``contract.modelled_columns``.
        synthetic: synthetic rows, same columns.
        contract: the data contract.
        holdout: real rows the generator never saw, for the reference; None: no reference.
        seed: seeds the holdout's subsample.
    """
    r = canonical_frame(real, contract, role="real")
    s = canonical_frame(synthetic, contract, role="synthetic")
    ho, reference = _reference_sample(holdout, s.height, contract, seed) if holdout is not None else (None, {})

    def similarity(name: str, other: pl.DataFrame) -> float:
        if _is_numeric(contract, name):
            return _ks_complement(numeric_values(r[name]), numeric_values(other[name]))
        size = n_discrete_slots(contract, name)
        cr = discrete_codes(r[name], contract, name)
        return 1.0 - _tv_distance(cr, discrete_codes(other[name], contract, name), size)

    per_column: dict[str, dict[str, Any]] = {}
    for name in contract.modelled_columns:
        per_column[name] = {
            "metric": "KS complement" if _is_numeric(contract, name) else "TV complement",
            "score": similarity(name, s),
            "plot": column_plot(r[name], s[name], contract, name),
        }
        if ho is not None:
            per_column[name]["ceiling"] = similarity(name, ho)
        if log_view(contract, name):
            per_column[name]["plot_log"] = column_plot(r[name], s[name], contract, name, log=True)
    value = float(np.mean([v["score"] for v in per_column.values()]))
    if ho is not None:
        reference["ceiling"] = float(np.mean([v["ceiling"] for v in per_column.values()]))
    threshold = contract.gates.min_column_shapes
    return MetricResult(
        name="column_shapes",
        value=value,
        threshold=threshold,
        passed=value >= threshold,
        direction="min",
        kind="fidelity",
        description=COLUMN_SHAPES_DESCRIPTION,
        details={
            "per_column": per_column,
            "real_rows": r.height,
            "synthetic_rows": s.height,
            "missing_values": "folded into each column's score (null is a value of its own)",
            "plot_bins": PLOT_BINS,
            "plot_min_cell": MIN_PLOT_CELL,
            **reference,
        },
    )


# --- column pair trends ----------------------------------------------------------------------


def _binned_codes(frame: pl.DataFrame, contract: Contract, bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Every column as small integer codes, and the number of codes per column.

    Numeric: ``bins`` equal-width bins over the contract range (values outside it land in
    the end bins), null in bin ``bins``. Discrete: the contract codes of ``discrete_codes``.
    """
    names = contract.modelled_columns
    codes = np.empty((frame.height, len(names)), dtype=np.int64)
    sizes = np.empty(len(names), dtype=np.int64)
    for j, name in enumerate(names):
        if _is_numeric(contract, name):
            lo, hi = numeric_bounds(contract, name)
            x = (numeric_values(frame[name]) - lo) / (hi - lo)
            null = np.isnan(x)
            b = np.clip(np.floor(np.where(null, 0.0, x) * bins), 0, bins - 1)
            codes[:, j] = np.where(null, bins, b)
            sizes[j] = bins + 1
        else:
            codes[:, j] = discrete_codes(frame[name], contract, name)
            sizes[j] = n_discrete_slots(contract, name)
    return codes, sizes


def _pairwise_pearson(x: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column pair over the rows where both are present.

    ``x`` is (rows, columns) with NaN for null, already scaled to about [0, 1] (so the sums
    below do not cancel). An undefined correlation (a constant column, fewer than two
    common rows) is read as 0: no linear association.
    """
    m = (~np.isnan(x)).astype(np.float64)
    v = np.nan_to_num(x, nan=0.0)
    n = m.T @ m
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = v.T @ m  # sx[i, j]: sum of column i over rows where i and j are present
        sxx = (v * v).T @ m
        sxy = v.T @ v
        mean_i = sx / n
        mean_j = sx.T / n
        cov = sxy / n - mean_i * mean_j
        var_i = sxx / n - mean_i**2
        var_j = sxx.T / n - mean_j**2
        denom = np.sqrt(var_i * var_j)
        rho = np.where((n >= 2) & (var_i > 1e-12) & (var_j > 1e-12), cov / denom, 0.0)
    return np.clip(np.nan_to_num(rho, nan=0.0), -1.0, 1.0)


def _scaled_numeric(frame: pl.DataFrame, contract: Contract, names: list[str]) -> np.ndarray:
    cols = []
    for name in names:
        lo, hi = numeric_bounds(contract, name)
        cols.append((numeric_values(frame[name]) - lo) / (hi - lo))
    return np.column_stack(cols) if cols else np.empty((frame.height, 0))


def _cramers_v(a: np.ndarray, b: np.ndarray, size_a: int, size_b: int) -> float:
    """Cramér's V (``validation.stats.cramers_v``: no bias correction) of two code arrays."""
    return cramers_v(np.bincount(a * size_b + b, minlength=size_a * size_b).reshape(size_a, size_b))


def _association(
    codes: np.ndarray, sizes: np.ndarray, rho: np.ndarray, names: list[str], num_index: dict[str, int]
) -> list[list[float]]:
    p = len(names)
    out = np.eye(p)
    for a, b in combinations(range(p), 2):
        na, nb = names[a], names[b]
        if na in num_index and nb in num_index:
            v = float(rho[num_index[na], num_index[nb]])
        else:
            v = _cramers_v(codes[:, a], codes[:, b], int(sizes[a]), int(sizes[b]))
        out[a, b] = out[b, a] = v
    return out.tolist()


def _heat_map_columns(names: list[str], pairs: list[tuple[str, str]], scores: list[float]) -> list[str]:
    """Every column, or on a wider table the ``MAX_HEAT_MAP_COLUMNS`` met first going through the
    pairs from the least preserved, in contract order."""
    if len(names) <= MAX_HEAT_MAP_COLUMNS:
        return list(names)
    keep: set[str] = set()
    for i in np.argsort(scores, kind="stable"):
        for c in pairs[i]:
            if len(keep) < MAX_HEAT_MAP_COLUMNS:
                keep.add(c)
        if len(keep) == MAX_HEAT_MAP_COLUMNS:
            break
    return [n for n in names if n in keep]


def _association_details(
    codes_r: np.ndarray,
    codes_s: np.ndarray,
    sizes: np.ndarray,
    rho_r: np.ndarray,
    rho_s: np.ndarray,
    names: list[str],
    num_index: dict[str, int],
    pairs: list[tuple[str, str]],
    scores: list[float],
) -> dict[str, Any]:
    """The heat maps' matrices, on at most ``MAX_HEAT_MAP_COLUMNS`` columns: a p x p matrix of a wide
    table is unreadable, costs p² Cramér's V and is carried through every task that takes the results."""
    shown = _heat_map_columns(list(names), pairs, scores)
    idx = [names.index(n) for n in shown]
    sub_num = {n: num_index[n] for n in shown if n in num_index}
    out: dict[str, Any] = {
        "columns": shown,
        "real": _association(codes_r[:, idx], sizes[idx], rho_r, shown, sub_num),
        "synthetic": _association(codes_s[:, idx], sizes[idx], rho_s, shown, sub_num),
        "measure": "Pearson correlation for numeric-numeric pairs; Cramér's V "
        f"(bias-uncorrected, numerics in {N_BINS} equal-width contract bins, null its own "
        "category) for the others; diagonal 1",
    }
    if len(shown) < len(names):
        out["columns_total"] = len(names)
        out["selection"] = (
            f"the {len(shown)} columns met first going through the pairs from the least "
            f"preserved (of {len(names)}), in contract order"
        )
    return out


def pair_trends(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    holdout: pl.DataFrame | None = None,
    seed: int = 0,
) -> MetricResult:
    """Mean similarity of the relationships between every pair of columns.

    Numeric–numeric pairs: correlation similarity ``1 - |ρ_real - ρ_syn| / 2`` with Pearson's
    ρ on the values (not Spearman), over the rows where both values are present (an undefined
    ρ counts as 0). Pairs with a categorical or boolean column: contingency similarity
    ``1 - TV`` of the joint frequency table, numerics cut into 10 equal-width bins over the
    contract range and null its own bin/category. Gate: mean over all pairs
    ``>= contract.gates.min_pair_trends``.

    ``details["association"]`` is ``{"columns", "real", "synthetic", "measure"}`` for the
    report's heat maps: entry (i, j) is Pearson's ρ for two numeric columns and Cramér's V
    (bias-uncorrected; numerics in the same 10 contract bins, null its own category)
    otherwise; the diagonal is 1. A table of more than ``MAX_HEAT_MAP_COLUMNS`` (60) columns
    shows the 60 met first going through the pairs from the least preserved
    (``details["association"]["selection"]``); the score is over every pair.

    With ``holdout``, the holdout reference, computed as ``three_way_marginals`` computes its
    ceiling: the same mean between ``real`` and the holdout (subsampled, seeded by ``seed``, to
    at most the synthetic table's size), ``details["ceiling"]``, and each of the lowest pairs'
    ``ceiling``. Not gated.

    Args:
        real: real rows (usually train), exactly ``contract.modelled_columns``.
        synthetic: synthetic rows, same columns.
        contract: the data contract.
        holdout: real rows the generator never saw, for the reference; None: no reference.
        seed: seeds the holdout's subsample.
    """
    r = canonical_frame(real, contract, role="real")
    s = canonical_frame(synthetic, contract, role="synthetic")
    names = contract.modelled_columns
    numeric = [n for n in names if _is_numeric(contract, n)]
    rho_r = _pairwise_pearson(_scaled_numeric(r, contract, numeric))
    rho_s = _pairwise_pearson(_scaled_numeric(s, contract, numeric))
    num_index = {n: i for i, n in enumerate(numeric)}
    codes_r, sizes = _binned_codes(r, contract)
    codes_s, _ = _binned_codes(s, contract)

    def pair_scores(rho_x: np.ndarray, codes_x: np.ndarray) -> tuple[list[float], list[bool]]:
        """Each pair's similarity between ``real`` and another table, and whether it is a correlation."""
        corr_sim = 1.0 - np.abs(rho_r - rho_x) / 2.0
        out: list[float] = []
        is_corr: list[bool] = []
        for a, b in combinations(range(len(names)), 2):
            na, nb = names[a], names[b]
            if na in num_index and nb in num_index:
                out.append(float(corr_sim[num_index[na], num_index[nb]]))
                is_corr.append(True)
            else:
                joint_r = codes_r[:, a] * sizes[b] + codes_r[:, b]
                joint_x = codes_x[:, a] * sizes[b] + codes_x[:, b]
                out.append(1.0 - _tv_distance(joint_r, joint_x, int(sizes[a] * sizes[b])))
                is_corr.append(False)
        return out, is_corr

    scores, is_corr = pair_scores(rho_s, codes_s)
    pairs = [(names[a], names[b]) for a, b in combinations(range(len(names)), 2)]
    correlation_scores = [x for x, c in zip(scores, is_corr, strict=True) if c]
    contingency_scores = [x for x, c in zip(scores, is_corr, strict=True) if not c]
    ceilings: list[float] | None = None
    reference: dict[str, Any] = {}
    if holdout is not None:
        ho, reference = _reference_sample(holdout, s.height, contract, seed)
        ceilings, _ = pair_scores(
            _pairwise_pearson(_scaled_numeric(ho, contract, numeric)), _binned_codes(ho, contract)[0]
        )
        reference["ceiling"] = float(np.mean(ceilings)) if ceilings else 1.0

    threshold = contract.gates.min_pair_trends
    details: dict[str, Any] = {
        "pairs": len(scores),
        "correlation_pairs": len(correlation_scores),
        "contingency_pairs": len(contingency_scores),
        "mean_correlation_similarity": (float(np.mean(correlation_scores)) if correlation_scores else None),
        "mean_contingency_similarity": (float(np.mean(contingency_scores)) if contingency_scores else None),
        "correlation": "Pearson",
        "numeric_bins": N_BINS,
        # The pairs whose relationship is worst preserved: where to look first.
        "lowest_pairs": [
            {"columns": list(pairs[i]), "score": scores[i]} | ({"ceiling": ceilings[i]} if ceilings is not None else {})
            for i in np.argsort(scores, kind="stable")[:5]
        ],
        "association": _association_details(codes_r, codes_s, sizes, rho_r, rho_s, names, num_index, pairs, scores),
        **reference,
    }
    if not scores:
        details["note"] = "fewer than two modelled columns: no pair to compare"
        value = 1.0
    else:
        value = float(np.mean(scores))
    return MetricResult(
        name="pair_trends",
        value=value,
        threshold=threshold,
        passed=value >= threshold,
        direction="min",
        kind="fidelity",
        description=PAIR_TRENDS_DESCRIPTION,
        details=details,
    )


# --- three-way marginals ---------------------------------------------------------------------


def _lumped_codes(
    train: pl.DataFrame, others: list[pl.DataFrame], contract: Contract, bins: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Codes for 3-way tables: numerics in ``bins`` contract bins (+ null); a categorical
    column keeps its ``bins`` most frequent train categories (ties: contract order) and
    lumps the rest, out-of-domain values included, into one cell (+ null). The choice of
    categories stays inside this function; nothing about it is reported."""
    tr, sizes = _binned_codes(train, contract, bins)
    rest = [_binned_codes(f, contract, bins)[0] for f in others]
    for j, name in enumerate(contract.modelled_columns):
        col = contract.columns[name]
        if not isinstance(col, CategoricalColumn) or len(col.categories) <= bins:
            continue
        k = len(col.categories)
        freq = np.bincount(tr[:, j], minlength=k + 2)[:k]
        keep = np.argsort(-freq, kind="stable")[:bins]
        remap = np.full(k + 2, bins, dtype=np.int64)  # lumped cell
        remap[keep] = np.arange(bins)
        remap[k] = bins + 1  # null
        tr[:, j] = remap[tr[:, j]]
        for c in rest:
            c[:, j] = remap[c[:, j]]
        sizes[j] = bins + 2
    return tr, rest, sizes


def _combination_at(rank: int, n: int, k: int) -> tuple[int, ...]:
    """The ``rank``-th (from 0) ``k``-combination of ``range(n)`` in lexicographic order, as
    ``list(itertools.combinations(range(n), k))[rank]`` without listing them."""
    out: list[int] = []
    first = 0
    for left in range(k, 0, -1):
        while True:
            count = math.comb(n - 1 - first, left - 1)  # combinations that start with ``first``
            if rank < count:
                break
            rank -= count
            first += 1
        out.append(first)
        first += 1
    return tuple(out)


def _joint_codes(codes: np.ndarray, sizes: np.ndarray, triple: tuple[int, int, int]) -> np.ndarray:
    """One code per row for the cell of a column triple's joint table."""
    a, b, c = triple
    return (codes[:, a] * sizes[b] + codes[:, b]) * sizes[c] + codes[:, c]


def three_way_marginals(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    n_triples: int = DEFAULT_N_TRIPLES,
    bins: int = N_BINS,
    min_ratio: float = DEFAULT_MIN_THREE_WAY_RATIO,
) -> MetricResult:
    """Similarity of 3-way marginals, against the real data's own sampling noise.

    Every column is binned (numerics: ``bins`` equal-width bins over the contract range;
    categoricals: the ``bins`` most frequent train categories, the rest lumped together;
    null its own cell). For each column triple the total variation distance between the
    train and synthetic joint frequency tables is computed, and averaged over triples: all
    triples, or a seeded sample of ``n_triples`` when there are more.

    Sampling noise alone makes two samples' tables differ, more so for small samples and
    many cells, so the same distance is measured between train and the holdout (real rows
    the generator never saw): the *ceiling*. Sizes are matched: the synthetic table and the
    holdout are both subsampled (seeded, without replacement) to the smaller of their sizes,
    so both distances carry the same noise.

    ``value`` is the similarity ``1 - TV_synthetic``; ``details["ceiling"]`` is
    ``1 - TV_holdout`` and the gate compares ``ratio = value / ceiling >= min_ratio``
    (``gated_value``). On Adult (32.5k train rows, 8k or 16k rows compared): a fresh real
    sample scores 1.00, a copy of train with 25% (50%) of its cells re-drawn from their
    column's marginal 0.95 (0.91), the project's DP-CTGAN at ε = 3 0.885–0.909 and
    independent marginals 0.862–0.867. The default 0.875 blocks the last and lets the
    DP-CTGAN pass, with about 0.01 either side. The ratio of a poor table rises towards 1 as
    the tables shrink (the ceiling falls with the noise): independent marginals score 0.88
    at 8k train rows and 0.91 at 2k, so on small tables this gate is weaker.

    Args:
        train: real training rows (the reference).
        holdout: real rows the generator never saw (the ceiling).
        synthetic: synthetic rows.
        contract: the data contract.
        seed: seeds the subsamples and the triple sample.
        n_triples: at most this many triples are compared.
        bins: bins per numeric column and categories kept per categorical column.
        min_ratio: gate threshold on ``value / ceiling``.
    """
    if isinstance(n_triples, bool) or not isinstance(n_triples, int) or n_triples < 1:
        raise ValueError(f"`n_triples` must be a positive int. Got {n_triples!r}. The default is {DEFAULT_N_TRIPLES}.")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"`bins` must be an int >= 2. Got {bins!r}. The default is {N_BINS}.")
    min_ratio = _check_threshold("min_ratio", min_ratio, 2.0, f"The default is {DEFAULT_MIN_THREE_WAY_RATIO}.")
    tr = canonical_frame(train, contract, role="train")
    ho = canonical_frame(holdout, contract, role="holdout")
    sy = canonical_frame(synthetic, contract, role="synthetic")
    names = contract.modelled_columns
    sample_seq, triple_seq = np.random.SeedSequence(seed).spawn(2)
    m = min(ho.height, sy.height)
    rng = np.random.default_rng(sample_seq)
    ho_used = subsample_rows(ho, m, rng)
    sy_used = subsample_rows(sy, m, rng)
    codes_t, (codes_h, codes_s), sizes = _lumped_codes(tr, [ho_used, sy_used], contract, bins)

    # The triples are ranked in lexicographic order and only the ones drawn are built: listing all
    # C(p, 3) would hold 70 million tuples (gigabytes) for a 750-column table.
    total_triples = math.comb(len(names), 3)
    if total_triples > n_triples:
        pick = np.random.default_rng(triple_seq).choice(total_triples, n_triples, replace=False)
        triples = [_combination_at(int(i), len(names), 3) for i in np.sort(pick)]
    else:
        triples = list(combinations(range(len(names)), 3))

    common: dict[str, Any] = {
        "triples_compared": len(triples),
        "triples_total": total_triples,
        "bins": bins,
        "train_rows": tr.height,
        "compared_rows": m,
        "size_matching": "synthetic and holdout both subsampled to the smaller of the two",
    }
    if not triples:
        return MetricResult(
            name="three_way_marginals",
            value=1.0,
            threshold=min_ratio,
            passed=True,
            direction="min",
            gated_value=1.0,
            kind="fidelity",
            description=THREE_WAY_DESCRIPTION,
            details={
                **common,
                "ceiling": 1.0,
                "ratio": 1.0,
                "note": "fewer than three modelled columns: no triple to compare",
            },
        )

    tv_syn = np.empty(len(triples))
    tv_ho = np.empty(len(triples))
    for i, triple in enumerate(triples):
        size = int(np.prod(sizes[list(triple)]))
        p = np.bincount(_joint_codes(codes_t, sizes, triple), minlength=size) / codes_t.shape[0]
        h = np.bincount(_joint_codes(codes_h, sizes, triple), minlength=size) / m
        s = np.bincount(_joint_codes(codes_s, sizes, triple), minlength=size) / m
        tv_syn[i] = 0.5 * np.abs(p - s).sum()
        tv_ho[i] = 0.5 * np.abs(p - h).sum()

    value = 1.0 - float(tv_syn.mean())
    ceiling = 1.0 - float(tv_ho.mean())
    ratio = value / ceiling if ceiling > 0 else 0.0
    worst = np.argsort(tv_ho - tv_syn, kind="stable")[:5]  # largest excess over the noise
    return MetricResult(
        name="three_way_marginals",
        value=value,
        threshold=min_ratio,
        passed=ratio >= min_ratio,
        direction="min",
        gated_value=ratio,
        kind="fidelity",
        description=THREE_WAY_DESCRIPTION,
        details={
            **common,
            "ceiling": ceiling,
            "ratio": ratio,
            "mean_tv_synthetic": float(tv_syn.mean()),
            "mean_tv_holdout": float(tv_ho.mean()),
            "lowest_triples": [
                {
                    "columns": [names[j] for j in triples[i]],
                    "similarity": 1.0 - float(tv_syn[i]),
                    "ceiling": 1.0 - float(tv_ho[i]),
                }
                for i in worst
            ],
        },
    )


# --- detection -------------------------------------------------------------------------------


def detection(
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    folds: int = 5,
    max_rows: int = DEFAULT_DETECTION_MAX_ROWS,
    max_auc: float = DEFAULT_MAX_DETECTION_AUC,
    confidence: float = 0.95,
) -> MetricResult:
    """How well a classifier tells real holdout rows from synthetic rows.

    Classes are balanced: both sides are subsampled (seeded) to ``n = min(holdout rows,
    synthetic rows, max_rows)`` rows. A scikit-learn ``HistGradientBoostingClassifier(
    categorical_features='from_dtype', max_iter=100, early_stopping=True)`` (categoricals as
    pandas Categorical over the contract's categories, as in ``ml_efficacy``) is
    cross-validated with stratified ``folds``-fold splits; each fold's ROC AUC is computed
    on its held-out rows.

    ``value`` is the mean fold AUC (0.5: indistinguishable; 1: always told apart). ``ci`` is
    a Student-t interval across the folds, ``mean ± t_{folds-1} · sd / sqrt(folds)``, clipped
    to [0, 1] (folds share training rows, so read it as indicative). The gate compares the
    mean: ``value <= max_auc``. On Adult (8k–10k rows per side) a fresh real sample scores
    0.49–0.50, a copy of train with 10% (25%, 50%) of its cells re-drawn from their column's
    marginal 0.62 (0.81, 0.95), the project's DP-CTGAN at ε = 3 0.948–0.961 and independent
    marginals 0.989–0.991: the detector is a strong one, and a DP synthesizer is easy to
    tell. The default 0.975 blocks independent marginals and lets the DP-CTGAN pass, with
    about 0.015 either side. With fewer rows the detector learns less: independent marginals
    score 0.98 with 1,000–2,000 rows per side and 0.95 with 500.

    Args:
        holdout: real rows the generator never saw.
        synthetic: synthetic rows.
        contract: the data contract.
        seed: seeds the subsamples, the fold split and the classifier.
        folds: number of cross-validation folds (>= 2).
        max_rows: at most this many rows per side.
        max_auc: gate threshold on the mean AUC.
        confidence: level of the interval.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"`folds` must be an int >= 2. Got {folds!r}. The default is 5.")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < folds:
        raise ValueError(
            f"`max_rows` must be an int >= folds ({folds}). Got {max_rows!r}. The default is "
            f"{DEFAULT_DETECTION_MAX_ROWS}."
        )
    max_auc = _check_threshold("max_auc", max_auc, 1.0, f"The default is {DEFAULT_MAX_DETECTION_AUC}.")
    check_confidence(confidence)
    ho = canonical_frame(holdout, contract, role="holdout")
    sy = canonical_frame(synthetic, contract, role="synthetic")
    n = min(ho.height, sy.height, max_rows)
    if n < folds:
        raise ValueError(
            f"detection needs at least `folds` = {folds} rows on each side; got {ho.height} "
            f"holdout and {sy.height} synthetic rows. Pass more rows or fewer folds."
        )
    sample_seq, split_seq, model_seq = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(sample_seq)
    rows = pl.concat([subsample_rows(ho, n, rng), subsample_rows(sy, n, rng)], how="vertical")
    x = _features(rows, contract, contract.modelled_columns)
    y = np.repeat([0, 1], n)

    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int_seed(split_seq))
    model_seed = int_seed(model_seq)
    aucs: list[float] = []
    iterations: list[int] = []
    for fit_idx, test_idx in split.split(np.zeros(len(y)), y):
        model = HistGradientBoostingClassifier(
            categorical_features="from_dtype",
            max_iter=DETECTION_MAX_ITER,
            early_stopping=True,
            random_state=model_seed,
        )
        with threadpool_limits(limits=MODEL_THREADS, user_api="openmp"):
            model.fit(x.iloc[fit_idx], y[fit_idx])
            score = model.predict_proba(x.iloc[test_idx])[:, 1]
        aucs.append(float(roc_auc_score(y[test_idx], score)))
        iterations.append(int(model.n_iter_))

    value = float(np.mean(aucs))
    sd = float(np.std(aucs, ddof=1))
    half = float(student_t.ppf(0.5 + confidence / 2, folds - 1)) * sd / math.sqrt(folds)
    ci = (max(0.0, value - half), min(1.0, value + half))
    return MetricResult(
        name="detection_auc",
        value=value,
        threshold=max_auc,
        passed=value <= max_auc,
        direction="max",
        ci=ci,
        gated_value=value,
        kind="fidelity",
        description=DETECTION_DESCRIPTION,
        details={
            "fold_aucs": aucs,
            "folds": folds,
            "rows_per_side": n,
            "holdout_rows_total": ho.height,
            "synthetic_rows_total": sy.height,
            "max_rows_per_side": max_rows,
            "model": "HistGradientBoostingClassifier(categorical_features='from_dtype', "
            f"max_iter={DETECTION_MAX_ITER}, early_stopping=True)",
            "boosting_iterations": iterations,
            "ci_method": f"Student-t {confidence:.0%} interval across the {folds} fold AUCs",
            "gate": "mean fold AUC <= max_auc",
        },
    )


# --- ML efficacy -----------------------------------------------------------------------------


def _features(frame: pl.DataFrame, contract: Contract, names: list[str]) -> pd.DataFrame:
    """pandas features: numerics as float (NaN = null), categoricals as pandas Categorical
    with the contract's categories (so every frame gets the same codes), booleans as 0/1."""
    data: dict[str, Any] = {}
    for name in names:
        col = contract.columns[name]
        if isinstance(col, CategoricalColumn):
            values = frame[name].to_list()
            if len(col.categories) <= _MAX_NATIVE_CATEGORIES:
                data[name] = pd.Categorical(values, categories=col.categories)
            else:
                # Too many categories for native support: contract codes as ordinal numbers.
                codes = discrete_codes(frame[name], contract, name).astype(np.float64)
                codes[codes >= len(col.categories)] = np.nan
                data[name] = codes
        else:
            data[name] = numeric_values(frame[name].cast(pl.Float64))
    return pd.DataFrame(data)


def _is_regression(contract: Contract, target: str) -> bool:
    return contract.columns[target].kind in ("continuous", "integer")


def _labels(frame: pl.DataFrame, contract: Contract, target: str) -> np.ndarray:
    """Target as class indices in the contract's order; -1 for null or out-of-domain."""
    codes = discrete_codes(frame[target], contract, target)
    return np.where(codes < _n_classes(contract, target), codes, -1)


def _n_classes(contract: Contract, target: str) -> int:
    col = contract.columns[target]
    return len(col.categories) if isinstance(col, CategoricalColumn) else 2


def _fit_predict(
    x_fit: pd.DataFrame, y_fit: np.ndarray, x_test: pd.DataFrame, n_classes: int, seed: int
) -> tuple[np.ndarray, bool]:
    """Class probabilities (test rows x n_classes) and whether a model could be fitted.

    With a single class in ``y_fit`` no classifier can be trained: predict that class with
    certainty (AUC 0.5) instead of failing.
    """
    present = np.unique(y_fit)
    proba = np.zeros((len(x_test), n_classes))
    if len(present) < 2:
        if len(present) == 1:
            proba[:, present[0]] = 1.0
        else:
            proba[:] = 1.0 / n_classes
        return proba, False
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    with threadpool_limits(limits=MODEL_THREADS, user_api="openmp"):
        model.fit(x_fit, y_fit)
        proba[:, model.classes_.astype(np.int64)] = model.predict_proba(x_test)
    return proba, True


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC on the holdout; binary: positive = last class, threshold 0.5."""
    n_classes = proba.shape[1]
    if n_classes == 2:
        pred = (proba[:, 1] >= 0.5).astype(np.int64)
        auc = float(roc_auc_score(y, proba[:, 1]))
        f1 = float(f1_score(y, pred, pos_label=1, zero_division=0))
    else:
        pred = proba.argmax(axis=1)
        # One-vs-rest macro AUC over the classes present in the holdout.
        present = [c for c in range(n_classes) if 0 < (y == c).sum() < len(y)]
        auc = float(np.mean([roc_auc_score(y == c, proba[:, c]) for c in present]))
        f1 = float(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0))
    return {"accuracy": float(accuracy_score(y, pred)), "f1": f1, "auc": auc}


def _fit_predict_regression(
    x_fit: pd.DataFrame, y_fit: np.ndarray, x_test: pd.DataFrame, fallback: float, seed: int
) -> tuple[np.ndarray, bool]:
    """Predictions for the test rows and whether a model could be fitted (>= 2 rows)."""
    if len(y_fit) < 2:
        return np.full(len(x_test), fallback), False
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
    with threadpool_limits(limits=MODEL_THREADS, user_api="openmp"):
        model.fit(x_fit, y_fit)
        return model.predict(x_test), True


def _ml_failure(
    threshold: float, common: dict[str, Any], error: str, value: float = float("nan"), **extra: Any
) -> MetricResult:
    return MetricResult(
        name="ml_efficacy",
        value=value,
        threshold=threshold,
        passed=False,
        direction="min",
        gated_value=float("nan"),
        kind="fidelity",
        description=ML_EFFICACY_DESCRIPTION,
        details={**common, **extra, "error": error},
    )


def _tstr_trtr(results: dict[str, dict[str, float]], fitted: dict[str, bool], rows: dict[str, int]) -> dict[str, Any]:
    """The details both ML-efficacy tasks report about their two models."""
    return {
        "tstr": results["tstr"],
        "trtr": results["trtr"],
        "tstr_model_fitted": fitted["tstr"],
        "trtr_model_fitted": fitted["trtr"],
        "synthetic_rows_used": rows["tstr"],
        "train_rows_used": rows["trtr"],
    }


def _ml_result(value: float, ratio: float, threshold: float, details: dict[str, Any]) -> MetricResult:
    """ML efficacy gated on the TSTR / TRTR ratio."""
    return MetricResult(
        name="ml_efficacy",
        value=value,
        threshold=threshold,
        passed=ratio >= threshold,
        direction="min",
        gated_value=ratio,
        kind="fidelity",
        description=ML_EFFICACY_DESCRIPTION,
        details=details,
    )


def _regression_target(target: str) -> Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray]]:
    """A frame's numeric target and its non-null mask."""

    def target_of(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        y = numeric_values(frame[target])
        return y, ~np.isnan(y)

    return target_of


def _class_target(contract: Contract, target: str) -> Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray]]:
    """A frame's class codes and its non-null mask (code -1 is null)."""

    def target_of(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        y = _labels(frame, contract, target)
        return y, y >= 0

    return target_of


def _train_on_both(
    tr: pl.DataFrame,
    sy: pl.DataFrame,
    contract: Contract,
    features: list[str],
    target_of: Callable[[pl.DataFrame], tuple[np.ndarray, np.ndarray]],
    fit_score: Callable[[pd.DataFrame, np.ndarray], tuple[dict[str, float], bool]],
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Train on the synthetic rows (TSTR) and on the real training rows (TRTR), rows with a null
    target left out, and score each on the same holdout (``fit_score`` holds it): the scores per
    side and the details both kinds of task report (``_tstr_trtr``)."""
    results: dict[str, dict[str, float]] = {}
    fitted: dict[str, bool] = {}
    rows: dict[str, int] = {}
    for label, frame in (("tstr", sy), ("trtr", tr)):
        y, keep = target_of(frame)
        x = _features(frame.filter(pl.Series(keep)), contract, features)
        results[label], fitted[label] = fit_score(x, y[keep])
        rows[label] = int(keep.sum())
    return results, _tstr_trtr(results, fitted, rows)


def _ml_regression(
    tr: pl.DataFrame,
    sy: pl.DataFrame,
    ho: pl.DataFrame,
    contract: Contract,
    target: str,
    features: list[str],
    seed: int,
) -> MetricResult:
    threshold = contract.gates.min_tstr_ratio
    lo, hi = numeric_bounds(contract, target)
    y_test = numeric_values(ho[target])
    keep_test = ~np.isnan(y_test)
    y_test = y_test[keep_test]
    common: dict[str, Any] = {
        "task": "regression",
        "target": target,
        "model": "HistGradientBoostingRegressor(categorical_features='from_dtype')",
        "holdout_rows_scored": int(keep_test.sum()),
        "gated_metric": "r2",
    }
    if len(y_test) < 2 or float(np.var(y_test)) == 0.0:
        return _ml_failure(
            threshold,
            common,
            "the holdout has fewer than two rows with a target, or a constant target: R² is "
            "undefined. Use a larger holdout, or a target that varies.",
        )
    x_test = _features(ho.filter(pl.Series(keep_test)), contract, features)

    def fit_score(x: pd.DataFrame, y: np.ndarray) -> tuple[dict[str, float], bool]:
        # Without rows to learn from, predict the middle of the contract range (public).
        pred, fitted = _fit_predict_regression(x, y, x_test, (lo + hi) / 2, seed)
        return {"r2": float(r2_score(y_test, pred)), "mae": float(mean_absolute_error(y_test, pred))}, fitted

    results, extra = _train_on_both(tr, sy, contract, features, _regression_target(target), fit_score)
    tstr, trtr = results["tstr"]["r2"], results["trtr"]["r2"]
    if trtr <= 0.0:
        return _ml_failure(
            threshold,
            common,
            f"TRTR R² = {trtr:.3g} <= 0: a model trained on the real rows predicts the "
            f"target {target!r} no better than its mean, so the TSTR/TRTR ratio is "
            "meaningless. Choose a target the other columns predict, or remove the target.",
            value=tstr,
            ratio=None,
            **extra,
        )
    ratio = tstr / trtr
    return _ml_result(tstr, ratio, threshold, {**common, **extra, "ratio": ratio})


def ml_efficacy(
    train: pl.DataFrame,
    synthetic: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
) -> MetricResult | None:
    """Train-on-synthetic against train-on-real, both tested on the holdout.

    Features: every modelled column but the target (categoricals as pandas Categorical over
    the contract's categories, native categorical support). Rows with a null target are
    dropped. ``details["task"]`` says which of the two kinds ran:

    - Classification (categorical or boolean target): ``HistGradientBoostingClassifier(
      categorical_features='from_dtype', random_state=seed)``; accuracy, F1 and ROC AUC for
      TSTR and TRTR. Binary: the positive class is the contract's last category (``True``
      for a boolean); F1 is the positive class's F1, accuracy and F1 at threshold 0.5. More
      classes: one-vs-rest macro AUC, macro F1. ``value`` is the TSTR AUC, the gate
      ``TSTR AUC / TRTR AUC >= contract.gates.min_tstr_ratio``. A synthetic table with a
      single target class gets AUC 0.5 (no model can be trained) and fails the gate.
    - Regression (continuous or integer target): ``HistGradientBoostingRegressor`` with the
      same settings; R² and mean absolute error. ``value`` is the TSTR R², the gate
      ``TSTR R² / TRTR R² >= min_tstr_ratio``. When the TRTR R² is <= 0 the ratio means
      nothing: the result fails and ``details["error"]`` says why.

    Returns None when the contract has no target, or no modelled column besides it.

    Args:
        train: real training rows (the TRTR reference).
        synthetic: synthetic rows (TSTR).
        holdout: real rows never seen by the generator (test set for both).
        contract: the data contract (target, categories, gate threshold).
        seed: random_state of both models.
    """
    target = contract.target
    if target is None:
        return None
    tr = canonical_frame(train, contract, role="train")
    sy = canonical_frame(synthetic, contract, role="synthetic")
    ho = canonical_frame(holdout, contract, role="holdout")
    features = [c for c in contract.modelled_columns if c != target]
    if not features:
        return None
    if _is_regression(contract, target):
        return _ml_regression(tr, sy, ho, contract, target, features, seed)

    col = contract.columns[target]
    n_classes = _n_classes(contract, target)
    threshold = contract.gates.min_tstr_ratio
    y_test = _labels(ho, contract, target)
    keep_test = y_test >= 0
    y_test = y_test[keep_test]
    common: dict[str, Any] = {
        "task": "classification",
        "target": target,
        "classes": n_classes,
        "model": "HistGradientBoostingClassifier(categorical_features='from_dtype')",
        "holdout_rows_scored": int(keep_test.sum()),
        "gated_metric": "auc",
        "f1": "positive class" if n_classes == 2 else "macro",
    }
    if len(np.unique(y_test)) < 2:
        return _ml_failure(
            threshold,
            common,
            "the holdout has fewer than two target classes: AUC is undefined. Use a larger or stratified holdout.",
        )
    x_test = _features(ho.filter(pl.Series(keep_test)), contract, features)

    def fit_score(x: pd.DataFrame, y: np.ndarray) -> tuple[dict[str, float], bool]:
        proba, fitted = _fit_predict(x, y, x_test, n_classes, seed)
        return _scores(y_test, proba), fitted

    results, extra = _train_on_both(tr, sy, contract, features, _class_target(contract, target), fit_score)
    tstr_auc, trtr_auc = results["tstr"]["auc"], results["trtr"]["auc"]
    ratio = tstr_auc / trtr_auc if trtr_auc > 0 else 0.0
    positive = (str(col.categories[-1]) if isinstance(col, CategoricalColumn) else "True") if n_classes == 2 else None
    details = {**common, **extra, "ratio": ratio, "positive_class": positive}
    return _ml_result(tstr_auc, ratio, threshold, details)


# --- the suite -------------------------------------------------------------------------------


def fidelity_suite(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    min_three_way_ratio: float = DEFAULT_MIN_THREE_WAY_RATIO,
    max_detection_auc: float = DEFAULT_MAX_DETECTION_AUC,
    detection_max_rows: int = DEFAULT_DETECTION_MAX_ROWS,
) -> list[MetricResult]:
    """Every fidelity check: column shapes, pair trends, 3-way marginals, detection AUC and,
    when the contract has a target, ML efficacy — in that order.

    Column shapes and pair trends compare the synthetic table with train, beside the holdout's
    score on the same measure (their reference, not gated); 3-way marginals compare it with
    train against the holdout's ceiling; detection tells holdout rows from
    synthetic ones; ML efficacy trains on synthetic (and on train) and tests on the holdout.
    Thresholds for column shapes, pair trends and the TSTR ratio come from
    ``contract.gates``; the 3-way and detection thresholds are the keyword arguments. The
    seeded checks get independent seeds split from ``seed`` (``numpy.random.SeedSequence(
    seed).spawn(4)``: 3-way, detection, ML efficacy, the holdout references' subsample).

    Args:
        train: real training rows.
        holdout: real rows the generator never saw.
        synthetic: synthetic rows.
        contract: the data contract.
        seed: master seed.
        min_three_way_ratio: gate of ``three_way_marginals`` (ratio to the holdout ceiling).
        max_detection_auc: gate of ``detection`` (mean cross-validated AUC).
        detection_max_rows: rows per side used by ``detection``.
    """
    # a fourth child for the holdout references' subsample: the first three stay what they were
    three_seq, detect_seq, ml_seq, reference_seq = np.random.SeedSequence(seed).spawn(4)
    reference_seed = int_seed(reference_seq)
    results = [
        column_shapes(train, synthetic, contract, holdout=holdout, seed=reference_seed),
        pair_trends(train, synthetic, contract, holdout=holdout, seed=reference_seed),
        three_way_marginals(
            train, holdout, synthetic, contract, seed=int_seed(three_seq), min_ratio=min_three_way_ratio
        ),
        detection(
            holdout,
            synthetic,
            contract,
            seed=int_seed(detect_seq),
            max_rows=detection_max_rows,
            max_auc=max_detection_auc,
        ),
    ]
    ml = ml_efficacy(train, synthetic, holdout, contract, seed=int_seed(ml_seq))
    if ml is not None:
        results.append(ml)
    return results
