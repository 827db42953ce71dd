"""Fidelity checks: how closely the synthetic table follows the real one.

The scores follow the definitions of SDMetrics' QualityReport (Column Shapes and Column Pair
Trends), with one difference: numeric columns are binned over the *contract's* range, never
a range read from the private rows. ML efficacy trains a gradient-boosted classifier on
synthetic rows (TSTR) and on real rows (TRTR) and tests both on the holdout.

Like the privacy checks, these read private rows outside the DP guarantee; their results
carry aggregates only (scores, accuracies, counts), never a value from a row.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from validation.contract import NUMERIC_KINDS, CategoricalColumn, Contract
from validation.privacy import (
    _bounds,
    _discrete_codes,
    _n_discrete_slots,
    _numeric_values,
    _prepare,
)
from validation.results import MetricResult

__all__ = ["column_shapes", "ml_efficacy", "pair_trends"]

# Numeric columns are cut into this many equal-width bins over the contract range for
# contingency tables (SDMetrics' default count).
N_BINS = 10
# HistGradientBoosting's native categorical support takes at most 255 categories (max_bins).
_MAX_NATIVE_CATEGORIES = 255

COLUMN_SHAPES_DESCRIPTION = (
    "How closely each column's distribution matches the real one (1 = identical), averaged "
    "over the columns."
)
PAIR_TRENDS_DESCRIPTION = (
    "How well relationships between pairs of columns (correlations and cross-tabulations) "
    "are preserved (1 = identical), averaged over all pairs."
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


# --- column shapes ---------------------------------------------------------------------------


def _ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - KS statistic; a null is a value below every number (so null rates count too)."""
    r = np.where(np.isnan(real), -np.inf, real)
    s = np.where(np.isnan(synthetic), -np.inf, synthetic)
    return 1.0 - float(ks_2samp(r, s).statistic)


def column_shapes(real: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract) -> MetricResult:
    """Mean per-column similarity of the marginal distributions.

    Numeric columns (continuous, integer, datetime): KS complement ``1 - D`` with ``D`` the
    two-sample Kolmogorov–Smirnov statistic (scipy ``ks_2samp``); nulls count as a value
    below all numbers, so a different null rate lowers the score. Categorical and boolean
    columns: TV complement ``1 - ½ Σ |p_c - q_c|`` over the category frequencies, null being
    its own category (values outside the contract's domain, which schema validation refuses,
    share one 'other' category). Gate: mean ``>= contract.gates.min_column_shapes``.

    Args:
        real: real rows (usually train), exactly ``contract.modelled_columns``.
        synthetic: synthetic rows, same columns.
        contract: the data contract.
    """
    r = _prepare(real, contract, role="real")
    s = _prepare(synthetic, contract, role="synthetic")
    per_column: dict[str, dict[str, Any]] = {}
    for name in contract.modelled_columns:
        if _is_numeric(contract, name):
            score = _ks_complement(_numeric_values(r[name]), _numeric_values(s[name]))
            metric = "KS complement"
        else:
            size = _n_discrete_slots(contract, name)
            cr = _discrete_codes(r[name], contract, name)
            cs = _discrete_codes(s[name], contract, name)
            score = 1.0 - _tv_distance(cr, cs, size)
            metric = "TV complement"
        per_column[name] = {"metric": metric, "score": score}
    value = float(np.mean([v["score"] for v in per_column.values()]))
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
        },
    )


# --- column pair trends ----------------------------------------------------------------------


def _binned_codes(frame: pl.DataFrame, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    """Every column as small integer codes, and the number of codes per column.

    Numeric: ``N_BINS`` equal-width bins over the contract range (values outside it land in
    the end bins), null in bin ``N_BINS``. Discrete: the contract codes of ``_discrete_codes``.
    """
    names = contract.modelled_columns
    codes = np.empty((frame.height, len(names)), dtype=np.int64)
    sizes = np.empty(len(names), dtype=np.int64)
    for j, name in enumerate(names):
        if _is_numeric(contract, name):
            lo, hi = _bounds(contract, name)
            x = (_numeric_values(frame[name]) - lo) / (hi - lo)
            null = np.isnan(x)
            b = np.clip(np.floor(np.where(null, 0.0, x) * N_BINS), 0, N_BINS - 1)
            codes[:, j] = np.where(null, N_BINS, b)
            sizes[j] = N_BINS + 1
        else:
            codes[:, j] = _discrete_codes(frame[name], contract, name)
            sizes[j] = _n_discrete_slots(contract, name)
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
        lo, hi = _bounds(contract, name)
        cols.append((_numeric_values(frame[name]) - lo) / (hi - lo))
    return np.column_stack(cols) if cols else np.empty((frame.height, 0))


def pair_trends(real: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract) -> MetricResult:
    """Mean similarity of the relationships between every pair of columns.

    Numeric–numeric pairs: correlation similarity ``1 - |ρ_real - ρ_syn| / 2`` with Pearson's
    ρ over the rows where both values are present (an undefined ρ counts as 0). Pairs with a
    categorical or boolean column: contingency similarity ``1 - TV`` of the joint frequency
    table, numerics cut into 10 equal-width bins over the contract range and null its own
    bin/category. Gate: mean over all pairs ``>= contract.gates.min_pair_trends``.

    Args:
        real: real rows (usually train), exactly ``contract.modelled_columns``.
        synthetic: synthetic rows, same columns.
        contract: the data contract.
    """
    r = _prepare(real, contract, role="real")
    s = _prepare(synthetic, contract, role="synthetic")
    names = contract.modelled_columns
    numeric = [n for n in names if _is_numeric(contract, n)]
    rho_r = _pairwise_pearson(_scaled_numeric(r, contract, numeric))
    rho_s = _pairwise_pearson(_scaled_numeric(s, contract, numeric))
    corr_sim = 1.0 - np.abs(rho_r - rho_s) / 2.0
    num_index = {n: i for i, n in enumerate(numeric)}
    codes_r, sizes = _binned_codes(r, contract)
    codes_s, _ = _binned_codes(s, contract)

    scores: list[float] = []
    pairs: list[tuple[str, str]] = []
    correlation_scores: list[float] = []
    contingency_scores: list[float] = []
    for a, b in combinations(range(len(names)), 2):
        na, nb = names[a], names[b]
        if na in num_index and nb in num_index:
            score = float(corr_sim[num_index[na], num_index[nb]])
            correlation_scores.append(score)
        else:
            joint_r = codes_r[:, a] * sizes[b] + codes_r[:, b]
            joint_s = codes_s[:, a] * sizes[b] + codes_s[:, b]
            score = 1.0 - _tv_distance(joint_r, joint_s, int(sizes[a] * sizes[b]))
            contingency_scores.append(score)
        scores.append(score)
        pairs.append((na, nb))

    threshold = contract.gates.min_pair_trends
    details: dict[str, Any] = {
        "pairs": len(scores),
        "correlation_pairs": len(correlation_scores),
        "contingency_pairs": len(contingency_scores),
        "mean_correlation_similarity": (
            float(np.mean(correlation_scores)) if correlation_scores else None
        ),
        "mean_contingency_similarity": (
            float(np.mean(contingency_scores)) if contingency_scores else None
        ),
        "numeric_bins": N_BINS,
        # The pairs whose relationship is worst preserved: where to look first.
        "lowest_pairs": [
            {"columns": list(pairs[i]), "score": scores[i]}
            for i in np.argsort(scores, kind="stable")[:5]
        ],
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
                codes = _discrete_codes(frame[name], contract, name).astype(np.float64)
                codes[codes >= len(col.categories)] = np.nan
                data[name] = codes
        else:
            data[name] = _numeric_values(frame[name].cast(pl.Float64))
    return pd.DataFrame(data)


def _labels(frame: pl.DataFrame, contract: Contract, target: str) -> np.ndarray:
    """Target as class indices in the contract's order; -1 for null or out-of-domain."""
    codes = _discrete_codes(frame[target], contract, target)
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


def ml_efficacy(
    train: pl.DataFrame,
    synthetic: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
) -> MetricResult | None:
    """Train-on-synthetic / test-on-real AUC, against train-on-real, both tested on holdout.

    A scikit-learn ``HistGradientBoostingClassifier(categorical_features='from_dtype',
    random_state=seed)`` predicts the contract's target from every other modelled column
    (categoricals as pandas Categorical over the contract's categories). Binary targets: the
    positive class is the last category of the contract (``True`` for a boolean); AUC is the
    ROC AUC, accuracy and F1 use threshold 0.5. More classes: one-vs-rest macro AUC, macro F1.
    Rows with a null target are dropped. A synthetic table with a single target class gets
    AUC 0.5 (no model can be trained) and fails the gate.

    ``value`` is the TSTR AUC; the gate is ``TSTR AUC / TRTR AUC >=
    contract.gates.min_tstr_ratio``. Returns None when the contract has no target, or no
    modelled column besides it.

    Args:
        train: real training rows (the TRTR reference).
        synthetic: synthetic rows (TSTR).
        holdout: real rows never seen by the generator (test set for both).
        contract: the data contract (target, categories, gate threshold).
        seed: random_state of both classifiers.
    """
    target = contract.target
    if target is None:
        return None
    tr = _prepare(train, contract, role="train")
    sy = _prepare(synthetic, contract, role="synthetic")
    ho = _prepare(holdout, contract, role="holdout")
    col = contract.columns[target]
    n_classes = _n_classes(contract, target)
    features = [c for c in contract.modelled_columns if c != target]
    if not features:
        return None
    threshold = contract.gates.min_tstr_ratio

    y_test = _labels(ho, contract, target)
    keep_test = y_test >= 0
    y_test = y_test[keep_test]
    common: dict[str, Any] = {
        "target": target,
        "classes": n_classes,
        "model": "HistGradientBoostingClassifier(categorical_features='from_dtype')",
        "holdout_rows_scored": int(keep_test.sum()),
    }
    if len(np.unique(y_test)) < 2:
        return MetricResult(
            name="ml_efficacy",
            value=float("nan"),
            threshold=threshold,
            passed=False,
            direction="min",
            gated_value=float("nan"),
            kind="fidelity",
            description=ML_EFFICACY_DESCRIPTION,
            details={
                **common,
                "error": "the holdout has fewer than two target classes: AUC is undefined. "
                "Use a larger or stratified holdout.",
            },
        )
    x_test = _features(ho.filter(pl.Series(keep_test)), contract, features)

    results: dict[str, dict[str, float]] = {}
    fitted: dict[str, bool] = {}
    rows: dict[str, int] = {}
    for label, frame in (("tstr", sy), ("trtr", tr)):
        y = _labels(frame, contract, target)
        keep = y >= 0
        x = _features(frame.filter(pl.Series(keep)), contract, features)
        proba, fitted[label] = _fit_predict(x, y[keep], x_test, n_classes, seed)
        results[label] = _scores(y_test, proba)
        rows[label] = int(keep.sum())

    tstr_auc, trtr_auc = results["tstr"]["auc"], results["trtr"]["auc"]
    ratio = tstr_auc / trtr_auc if trtr_auc > 0 else 0.0
    return MetricResult(
        name="ml_efficacy",
        value=tstr_auc,
        threshold=threshold,
        passed=ratio >= threshold,
        direction="min",
        gated_value=ratio,
        kind="fidelity",
        description=ML_EFFICACY_DESCRIPTION,
        details={
            **common,
            "tstr": results["tstr"],
            "trtr": results["trtr"],
            "ratio": ratio,
            "tstr_model_fitted": fitted["tstr"],
            "trtr_model_fitted": fitted["trtr"],
            "synthetic_rows_used": rows["tstr"],
            "train_rows_used": rows["trtr"],
            "positive_class": (
                str(col.categories[-1]) if isinstance(col, CategoricalColumn) else "True"
            )
            if n_classes == 2
            else None,
        },
    )
