"""Fidelity metrics: hand-computable cases, then the independent-marginals oracle on Adult."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from validation.contract import Contract, parse_contract
from validation.fidelity import column_shapes, ml_efficacy, pair_trends

from .test_privacy import adult_split


def _contract(columns: dict[str, dict[str, object]], **extra: object) -> Contract:
    return parse_contract(
        {"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}, **extra}
    )


# --- column_shapes ---------------------------------------------------------------------------


def test_column_shapes_by_hand() -> None:
    contract = _contract(
        {
            "x": {"kind": "integer", "min": 0, "max": 10},
            "c": {"kind": "categorical", "categories": ["a", "b"], "nullable": True},
        }
    )
    real = pl.DataFrame({"x": [1, 2, 3, 4], "c": ["a", "a", "b", None]})
    synthetic = pl.DataFrame({"x": [1, 2, 3, 5], "c": ["a", "b", "b", "b"]})
    r = column_shapes(real, synthetic, contract)
    # x: the CDFs differ by 1/4 on [4, 5) -> 0.75.  c: real a .5 b .25 null .25, synthetic
    # a .25 b .75 -> TV = (.25 + .5 + .25) / 2 = .5 -> 0.5.
    assert r.details["per_column"]["x"] == {"metric": "KS complement", "score": pytest.approx(0.75)}
    assert r.details["per_column"]["c"] == {"metric": "TV complement", "score": pytest.approx(0.5)}
    assert r.value == pytest.approx(0.625)
    assert (r.threshold, r.passed, r.direction) == (0.8, False, "min")
    assert column_shapes(real, real, contract).value == pytest.approx(1.0)


def test_column_shapes_counts_a_different_null_rate() -> None:
    contract = _contract(
        {
            "x": {"kind": "continuous", "min": 0, "max": 10, "nullable": True},
            "b": {"kind": "boolean"},
        }
    )
    real = pl.DataFrame({"x": [1.0, None], "b": [True, False]})
    synthetic = pl.DataFrame({"x": [1.0, 1.0], "b": [True, True]})
    r = column_shapes(real, synthetic, contract)
    assert r.details["per_column"]["x"]["score"] == pytest.approx(0.5)
    assert r.details["per_column"]["b"]["score"] == pytest.approx(0.5)


# --- pair_trends -----------------------------------------------------------------------------


def test_pair_trends_by_hand() -> None:
    contract = _contract(
        {
            "x": {"kind": "integer", "min": 0, "max": 10},
            "y": {"kind": "integer", "min": 0, "max": 10},
            "c": {"kind": "categorical", "categories": ["a", "b"]},
        }
    )
    real = pl.DataFrame({"x": [0, 10], "y": [0, 10], "c": ["a", "b"]})
    synthetic = pl.DataFrame({"x": [0, 10], "y": [10, 0], "c": ["a", "b"]})
    r = pair_trends(real, synthetic, contract)
    # (x, y): rho +1 vs -1 -> 1 - 2/2 = 0.  (x, c): same joint bins -> 1.
    # (y, c): {(bin 0, a), (bin 9, b)} vs {(bin 9, a), (bin 0, b)} -> TV 1 -> 0.
    assert r.value == pytest.approx(1 / 3)
    assert (r.details["correlation_pairs"], r.details["contingency_pairs"]) == (1, 2)
    assert r.details["lowest_pairs"][0]["score"] == pytest.approx(0.0)


def test_pair_trends_pearson_uses_rows_where_both_are_present() -> None:
    contract = _contract(
        {
            "x": {"kind": "integer", "min": 0, "max": 10},
            "y": {"kind": "integer", "min": 0, "max": 10, "nullable": True},
        }
    )
    # Pearson of (1,2,3,4) and (1,3,2,4) is 0.8; the fifth row has no y and is left out.
    real = pl.DataFrame({"x": [1, 2, 3, 4, 5], "y": [1, 3, 2, 4, None]})
    synthetic = pl.DataFrame({"x": [1, 2, 3, 4], "y": [1, 2, 3, 4]})
    r = pair_trends(real, synthetic, contract)
    assert r.value == pytest.approx(1 - abs(0.8 - 1.0) / 2)


def test_pair_trends_reads_an_undefined_correlation_as_zero() -> None:
    contract = _contract(
        {
            "x": {"kind": "integer", "min": 0, "max": 10},
            "y": {"kind": "integer", "min": 0, "max": 10},
        }
    )
    real = pl.DataFrame({"x": [1, 2, 3], "y": [1, 2, 3]})
    constant = pl.DataFrame({"x": [1, 2, 3], "y": [5, 5, 5]})
    assert pair_trends(real, constant, contract).value == pytest.approx(0.5)


# --- ml_efficacy -----------------------------------------------------------------------------


def _separable(n: int, seed: int, classes: list[str]) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(classes), size=n)
    return pl.DataFrame(
        {
            "x": (label * 10 + rng.integers(0, 5, size=n)).astype(np.int64),
            "g": rng.choice(["u", "v"], size=n),
            "y": [classes[i] for i in label],
        }
    )


def _ml_contract(classes: list[str]) -> Contract:
    return _contract(
        {
            "x": {"kind": "integer", "min": 0, "max": 100},
            "g": {"kind": "categorical", "categories": ["u", "v"]},
            "y": {"kind": "categorical", "categories": classes},
        },
        target="y",
    )


def test_ml_efficacy_on_a_separable_target() -> None:
    classes = ["no", "yes"]
    contract = _ml_contract(classes)
    train, synthetic, holdout = (_separable(300, s, classes) for s in (1, 2, 3))
    r = ml_efficacy(train, synthetic, holdout, contract, seed=0)
    assert r is not None
    assert r.details["tstr"]["auc"] == pytest.approx(1.0)
    assert r.details["trtr"]["auc"] == pytest.approx(1.0)
    assert r.gated_value == pytest.approx(1.0)
    assert r.passed
    assert r.details["positive_class"] == "yes"


def test_ml_efficacy_multiclass_uses_macro_one_vs_rest_auc() -> None:
    classes = ["a", "b", "c"]
    contract = _ml_contract(classes)
    train, synthetic, holdout = (_separable(300, s, classes) for s in (1, 2, 3))
    r = ml_efficacy(train, synthetic, holdout, contract, seed=0)
    assert r is not None and r.passed
    assert r.value == pytest.approx(1.0)


def test_ml_efficacy_single_class_synthetic_fails_without_crashing() -> None:
    classes = ["no", "yes"]
    contract = _ml_contract(classes)
    train, holdout = _separable(300, 1, classes), _separable(300, 3, classes)
    synthetic = train.with_columns(pl.lit("no").alias("y"))
    r = ml_efficacy(train, synthetic, holdout, contract, seed=0)
    assert r is not None
    assert r.value == pytest.approx(0.5)
    assert not r.passed
    assert r.details["tstr_model_fitted"] is False


def test_ml_efficacy_without_target_is_none() -> None:
    contract = _contract({"x": {"kind": "integer", "min": 0, "max": 1}})
    frame = pl.DataFrame({"x": [0, 1]})
    assert ml_efficacy(frame, frame, frame, contract, seed=0) is None


# --- oracle: independent marginals on Adult --------------------------------------------------


def test_oracle_independent_marginals() -> None:
    contract, train, holdout = adult_split()
    rng = np.random.default_rng(11)
    # Each column resampled on its own: every marginal kept, every relationship broken.
    marginals = pl.DataFrame(
        {
            c: train[c].gather(rng.integers(0, train.height, size=train.height))
            for c in train.columns
        }
    )
    half = holdout.height // 2
    fresh = holdout[half:]

    shapes = column_shapes(train, marginals, contract)
    assert shapes.value > 0.95 and shapes.passed

    start = time.perf_counter()
    pairs = pair_trends(train, marginals, contract)
    assert time.perf_counter() - start < 10.0  # 105 pairs x 32k rows: vectorised
    pairs_fresh = pair_trends(train, fresh, contract)
    # Independent sampling breaks the relationships: clearly below a fresh real sample, and
    # worst on the pair that is one column written twice.
    assert pairs.value < pairs_fresh.value - 0.05
    assert pairs.details["lowest_pairs"][0]["columns"] == ["education", "education-num"]

    ml = ml_efficacy(train, marginals, holdout, contract, seed=0)
    assert ml is not None
    assert abs(ml.value - 0.5) < 0.06  # TSTR AUC: no signal left
    assert ml.details["trtr"]["auc"] > 0.9
    assert not ml.passed
