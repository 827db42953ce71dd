"""Fidelity metrics: hand-computable cases, then oracles on Adult (independent marginals)."""

from __future__ import annotations

import math
import time

import numpy as np
import polars as pl
import pytest

from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.fidelity import (
    DEFAULT_MAX_DETECTION_AUC,
    DEFAULT_MIN_THREE_WAY_RATIO,
    column_plot,
    column_shapes,
    detection,
    fidelity_suite,
    log_edges,
    log_labels,
    log_view,
    ml_efficacy,
    pair_trends,
    plot_bin,
    plot_edges,
    three_way_marginals,
    zero_split,
)
from synthgate.validation.results import decide_release


def _contract(columns: dict[str, dict[str, object]], **extra: object) -> Contract:
    return parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}, **extra})


def _independent_marginals(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """Each column resampled on its own: every marginal kept, every relationship broken."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame([frame[c].gather(rng.integers(0, frame.height, n)) for c in frame.columns])


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
    x, c = r.details["per_column"]["x"], r.details["per_column"]["c"]
    assert (x["metric"], x["score"]) == ("KS complement", pytest.approx(0.75))
    assert (c["metric"], c["score"]) == ("TV complement", pytest.approx(0.5))
    assert r.value == pytest.approx(0.625)
    assert (r.threshold, r.passed, r.direction) == (0.8, False, "min")
    assert column_shapes(real, real, contract).value == pytest.approx(1.0)


def test_column_shapes_folds_a_different_null_rate_into_the_score() -> None:
    contract = _contract(
        {
            "x": {"kind": "continuous", "min": 0, "max": 10, "nullable": True},
            "b": {"kind": "boolean"},
        }
    )
    real = pl.DataFrame({"x": [1.0, None], "b": [True, False]})
    synthetic = pl.DataFrame({"x": [1.0, 1.0], "b": [True, True]})
    r = column_shapes(real, synthetic, contract)
    # x: same non-null values, null rates .5 vs 0 -> 1 - |.5 - 0| = 0.5.
    assert r.details["per_column"]["x"]["score"] == pytest.approx(0.5)
    assert r.details["per_column"]["b"]["score"] == pytest.approx(0.5)
    plot = r.details["per_column"]["x"]["plot"]
    # The one real value and the one real null are cells of 1 < 10 rows: both suppressed.
    assert (plot["null_real"], plot["null_synthetic"], plot["suppressed"]) == (0.0, 0.0, 2)
    assert sum(plot["real"]) == 0.0 and sum(plot["synthetic"]) == pytest.approx(1.0)


def test_column_shapes_plot_suppresses_a_small_real_bin() -> None:
    contract = _contract({"x": {"kind": "integer", "min": 0, "max": 19}})
    # 20 values, 20 one-value bins: 12 real rows in bin 2, 3 real rows in bin 15.
    real = pl.DataFrame({"x": [2] * 12 + [15] * 3})
    synthetic = pl.DataFrame({"x": [2] * 5 + [15] * 5})
    plot = column_shapes(real, synthetic, contract).details["per_column"]["x"]["plot"]
    assert set(plot) == {"type", "labels", "real", "synthetic", "null_real", "null_synthetic", "suppressed"}
    assert plot["type"] == "numeric"
    assert len(plot["labels"]) == len(plot["real"]) == len(plot["synthetic"]) == 20
    assert plot["labels"][:3] == ["0", "1", "2"]
    assert plot["suppressed"] == 1
    # The 3-row bin shows 0; the shown real share is over the shown rows (12 of 12), so the
    # hidden rows cannot be read back as 1 - sum(real shares).
    assert plot["real"][15] == 0.0 and plot["real"][2] == pytest.approx(1.0)
    assert sum(plot["real"]) == pytest.approx(1.0)
    # Synthetic shares are kept.
    assert plot["synthetic"][2] == pytest.approx(0.5) and plot["synthetic"][15] == pytest.approx(0.5)
    assert (plot["null_real"], plot["null_synthetic"]) == (0.0, 0.0)


def test_column_shapes_plot_bins_come_from_the_contract() -> None:
    contract = _contract(
        {
            "age": {"kind": "integer", "min": 17, "max": 90},
            "w": {"kind": "continuous", "min": 0, "max": 2_000_000},
            "when": {"kind": "datetime", "min": "2020-01-01", "max": "2020-01-21"},
        }
    )
    real = pl.DataFrame(
        {
            "age": [40] * 10,
            "w": [123_456.0] * 10,
            "when": pl.Series([f"2020-01-0{i}" for i in range(1, 10)] + ["2020-01-09"]).str.to_datetime("%Y-%m-%d"),
        }
    )
    per_column = column_shapes(real, real, contract).details["per_column"]
    age = per_column["age"]["plot"]["labels"]
    # 74 integers, bins of 4 whole values (the last holds the 2 left): integer edges, no "17–20.65"
    assert (age[0], age[1], age[-1], len(age)) == ("17–20", "21–24", "89–90", 19)
    # w starts at 0: its zeros are a bar of their own before the bins (zero_split)
    assert per_column["w"]["plot"]["labels"][:3] == ["0", "0–100000", "100000–200000"]
    when = per_column["when"]["plot"]
    assert when["labels"][:2] == ["2020-01-01–2020-01-02", "2020-01-02–2020-01-03"]
    # 9 rows over days 1-8 (one each) and 2 rows on day 9: every non-empty bin is small.
    assert when["suppressed"] == 9 and sum(when["real"]) == 0.0
    assert sum(when["synthetic"]) == pytest.approx(1.0)


def test_column_shapes_plot_categorical_in_contract_order() -> None:
    contract = _contract({"c": {"kind": "categorical", "categories": ["b", "a", "z"], "nullable": True}})
    real = pl.DataFrame({"c": ["a"] * 20 + ["b"] * 10 + [None] * 10})
    synthetic = pl.DataFrame({"c": ["a", "b", "b", "q"]})  # "q" is outside the domain
    plot = column_shapes(real, synthetic, contract).details["per_column"]["c"]["plot"]
    assert plot["type"] == "categorical"
    assert plot["labels"] == ["b", "a", "z", "(other)"]
    assert plot["real"] == pytest.approx([1 / 3, 2 / 3, 0.0, 0.0])
    assert plot["synthetic"] == pytest.approx([0.5, 0.25, 0.0, 0.25])
    assert (plot["null_real"], plot["null_synthetic"], plot["suppressed"]) == (0.25, 0.0, 0)


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
    assoc = r.details["association"]
    assert set(assoc) == {"columns", "real", "synthetic", "measure"}
    assert assoc["columns"] == ["x", "y", "c"]
    # Real: x, y, c move together (rho 1, V 1); synthetic: rho(x, y) = -1.
    assert np.allclose(assoc["real"], np.ones((3, 3)))
    assert assoc["synthetic"][0][1] == pytest.approx(-1.0)
    assert assoc["synthetic"][1][0] == pytest.approx(-1.0)


def test_pair_trends_association_cramers_v_by_hand() -> None:
    contract = _contract(
        {
            "c": {"kind": "categorical", "categories": ["a", "b"]},
            "d": {"kind": "boolean"},
            "x": {"kind": "integer", "min": 0, "max": 100},
        }
    )
    # (c, d) table [[2, 1], [1, 2]]: chi² = 6 (4 - 1)² / 3⁴ = 2/3, V = sqrt(chi²/6) = 1/3.
    real = pl.DataFrame(
        {
            "c": ["a", "a", "a", "b", "b", "b"],
            "d": [True, True, False, True, False, False],
            "x": [5, 5, 5, 95, 95, 95],  # bins 0 and 9: the same split as c -> V(c, x) = 1
        }
    )
    # Independent (c, d): table [[1, 1], [1, 1]] -> V = 0.
    synthetic = pl.DataFrame({"c": ["a", "a", "b", "b"], "d": [True, False, True, False], "x": [5, 5, 5, 5]})
    r = pair_trends(real, synthetic, contract)
    real_v, syn_v = np.array(r.details["association"]["real"]), np.array(r.details["association"]["synthetic"])
    assert real_v[0, 1] == pytest.approx(1 / 3) and real_v[1, 0] == pytest.approx(1 / 3)
    assert real_v[0, 2] == pytest.approx(1.0)
    assert syn_v[0, 1] == pytest.approx(0.0)
    assert syn_v[0, 2] == pytest.approx(0.0)  # x constant: one category, no association
    assert np.diag(syn_v).tolist() == [1.0, 1.0, 1.0]
    assert "Cramér's V" in r.details["association"]["measure"]


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
    assert r.details["association"]["real"][0][1] == pytest.approx(0.8)


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


# --- three_way_marginals ---------------------------------------------------------------------


def _bool_contract(names: str | list[str]) -> Contract:
    return _contract({n: {"kind": "boolean"} for n in names})


def test_three_way_marginals_by_hand() -> None:
    contract = _bool_contract("abc")
    train = pl.DataFrame({"a": [False, True] * 2, "b": [False, True] * 2, "c": [False, True] * 2})
    holdout = pl.DataFrame({"a": [False, True], "b": [False, True], "c": [False, True]})
    # Train: FFF .5, TTT .5. Synthetic: FFF .5, TTF .5 -> TV .5; holdout equals train -> TV 0.
    synthetic = pl.DataFrame({"a": [False, True], "b": [False, True], "c": [False, False]})
    r = three_way_marginals(train, holdout, synthetic, contract, seed=0)
    assert r.name == "three_way_marginals"
    assert r.value == pytest.approx(0.5)
    assert r.details["ceiling"] == pytest.approx(1.0)
    assert r.details["ratio"] == r.gated_value == pytest.approx(0.5)
    assert (r.threshold, r.passed, r.direction) == (DEFAULT_MIN_THREE_WAY_RATIO, False, "min")
    assert (r.details["triples_compared"], r.details["compared_rows"]) == (1, 2)
    same = three_way_marginals(train, holdout, holdout, contract, seed=0, min_ratio=0.99)
    assert same.value == pytest.approx(1.0) and same.passed


def test_three_way_marginals_ratio_to_a_noisy_ceiling_and_triple_sample() -> None:
    contract = _bool_contract("abcd")
    t, f = True, False
    train = pl.DataFrame({"a": [f, t], "b": [f, t], "c": [f, t], "d": [f, t]})
    # Holdout: one row FFFF, one TTTT with d flipped -> every triple with d has TV .5, the
    # one without d (a, b, c) has TV 0: ceiling 1 - (3 * .5) / 4 = 0.625.
    holdout = pl.DataFrame({"a": [f, t], "b": [f, t], "c": [f, t], "d": [f, f]})
    r = three_way_marginals(train, holdout, holdout, contract, seed=0)
    assert r.details["ceiling"] == pytest.approx(0.625)
    assert r.value == pytest.approx(0.625) and r.details["ratio"] == pytest.approx(1.0)
    assert r.details["triples_total"] == 4
    sampled = three_way_marginals(train, holdout, holdout, contract, seed=0, n_triples=2)
    assert (sampled.details["triples_compared"], sampled.details["triples_total"]) == (2, 4)


def test_three_way_triples_are_drawn_without_listing_them() -> None:
    # A drawn triple is found by its rank; listing C(p, 3) triples would hold gigabytes at 750
    # columns. The ranks give exactly itertools' lexicographic order.
    from itertools import combinations

    from synthgate.validation.fidelity import _combination_at

    for n, k in ((7, 3), (12, 3), (5, 2), (4, 1), (3, 3)):
        assert [_combination_at(i, n, k) for i in range(math.comb(n, k))] == list(combinations(range(n), k))
    assert _combination_at(math.comb(750, 3) - 1, 750, 3) == (747, 748, 749)
    contract = _bool_contract([f"c{i}" for i in range(400)])  # 10.6 million triples
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({f"c{i}": rng.random(30) < 0.5 for i in range(400)})
    r = three_way_marginals(frame, frame, frame, contract, seed=0, n_triples=50)
    assert (r.details["triples_compared"], r.details["triples_total"]) == (50, math.comb(400, 3))
    assert r.details["ratio"] == pytest.approx(1.0)


def test_three_way_marginals_rejects_bad_arguments() -> None:
    contract = _bool_contract("abc")
    frame = pl.DataFrame({"a": [True], "b": [True], "c": [True]})
    with pytest.raises(ValueError, match="n_triples"):
        three_way_marginals(frame, frame, frame, contract, seed=0, n_triples=0)
    with pytest.raises(ValueError, match=r"min_ratio.*\[0, 2\]"):
        three_way_marginals(frame, frame, frame, contract, seed=0, min_ratio=2.5)


def test_three_way_marginals_with_fewer_than_three_columns_passes_with_a_note() -> None:
    contract = _bool_contract("ab")
    frame = pl.DataFrame({"a": [True, False], "b": [True, True]})
    r = three_way_marginals(frame, frame, frame, contract, seed=0)
    assert r.passed and "fewer than three" in r.details["note"]


# --- detection -------------------------------------------------------------------------------


def _toy_rows(n: int, seed: int, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "x": np.clip(rng.normal(50 + shift, 10, n), 0, 100),
            "c": rng.choice(["u", "v", "w"], size=n, p=[0.5, 0.3, 0.2]),
        }
    )


_TOY = {
    "x": {"kind": "continuous", "min": 0, "max": 100},
    "c": {"kind": "categorical", "categories": ["u", "v", "w"]},
}


def test_detection_cannot_tell_a_fresh_sample() -> None:
    contract = _contract(_TOY)
    r = detection(_toy_rows(800, 1), _toy_rows(2400, 2), contract, seed=0)
    assert r.name == "detection_auc"
    assert abs(r.value - 0.5) < 0.06
    assert r.ci is not None and r.ci[0] <= r.value <= r.ci[1]
    assert (r.direction, r.threshold, r.passed) == ("max", DEFAULT_MAX_DETECTION_AUC, True)
    # Balanced: the larger synthetic side is subsampled to the holdout's 800 rows.
    assert r.details["rows_per_side"] == 800 and len(r.details["fold_aucs"]) == 5


def test_detection_tells_an_obviously_different_table() -> None:
    contract = _contract(_TOY)
    r = detection(_toy_rows(800, 1), _toy_rows(800, 2, shift=40.0), contract, seed=0, folds=3)
    assert r.value > 0.99
    assert not r.passed
    assert len(r.details["fold_aucs"]) == 3


def test_detection_rejects_bad_arguments() -> None:
    contract = _contract(_TOY)
    rows = _toy_rows(20, 1)
    with pytest.raises(ValueError, match="folds"):
        detection(rows, rows, contract, seed=0, folds=1)
    with pytest.raises(ValueError, match=r"max_auc.*\[0, 1\]"):
        detection(rows, rows, contract, seed=0, max_auc=1.2)
    with pytest.raises(ValueError, match="at least `folds` = 5 rows"):
        detection(rows[:3], rows, contract, seed=0)


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
    assert r.details["task"] == "classification"
    assert r.details["tstr"]["auc"] == pytest.approx(1.0)
    assert r.details["trtr"]["auc"] == pytest.approx(1.0)
    assert r.details["tstr"]["accuracy"] == pytest.approx(1.0)
    assert r.details["tstr"]["f1"] == pytest.approx(1.0)
    assert r.gated_value == pytest.approx(1.0)
    assert r.passed
    assert (r.details["positive_class"], r.details["f1"]) == ("yes", "positive class")


def test_ml_efficacy_multiclass_uses_macro_one_vs_rest_auc() -> None:
    classes = ["a", "b", "c"]
    contract = _ml_contract(classes)
    train, synthetic, holdout = (_separable(300, s, classes) for s in (1, 2, 3))
    r = ml_efficacy(train, synthetic, holdout, contract, seed=0)
    assert r is not None and r.passed
    assert r.value == pytest.approx(1.0)
    assert r.details["f1"] == "macro"


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


def _linear(n: int, seed: int, noise: float = 1.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    return pl.DataFrame({"x": x, "g": rng.choice(["u", "v"], size=n), "y": 3 * x + rng.normal(0, noise, n)})


_REGRESSION = {
    "x": {"kind": "continuous", "min": 0, "max": 10},
    "g": {"kind": "categorical", "categories": ["u", "v"]},
    "y": {"kind": "continuous", "min": -10, "max": 40},
}


def test_ml_efficacy_regression_on_a_linear_target() -> None:
    contract = _contract(_REGRESSION, target="y")
    train, synthetic, holdout = _linear(300, 1), _linear(300, 2), _linear(300, 3)
    r = ml_efficacy(train, synthetic, holdout, contract, seed=0)
    assert r is not None
    assert (r.details["task"], r.details["gated_metric"]) == ("regression", "r2")
    # Var(3x) = 9 * 100/12 = 75 against noise variance 1: R² close to 75/76 for both.
    assert r.details["trtr"]["r2"] > 0.95 and r.value > 0.95
    assert r.details["tstr"]["mae"] < 1.5
    assert r.gated_value == pytest.approx(r.value / r.details["trtr"]["r2"])
    assert r.passed
    # Synthetic rows whose target ignores x: the ratio collapses and the gate fails.
    broken = synthetic.with_columns(pl.Series("y", np.random.default_rng(4).permutation(synthetic["y"].to_numpy())))
    bad = ml_efficacy(train, broken, holdout, contract, seed=0)
    assert bad is not None and bad.gated_value < 0.2 and not bad.passed


def test_ml_efficacy_regression_fails_clearly_when_real_data_cannot_predict() -> None:
    contract = _contract(_REGRESSION, target="y")
    rng = np.random.default_rng(5)

    def noise(seed: int) -> pl.DataFrame:
        return _linear(300, seed).with_columns(pl.Series("y", rng.normal(15, 5, 300)))

    r = ml_efficacy(noise(1), noise(2), noise(3), contract, seed=0)
    assert r is not None
    assert r.details["trtr"]["r2"] <= 0.0
    assert not r.passed and np.isnan(r.gated_value)
    assert "TRTR R²" in r.details["error"] and "'y'" in r.details["error"]


# --- the suite -------------------------------------------------------------------------------


def test_fidelity_suite_runs_every_check_in_order() -> None:
    with_target = _ml_contract(["no", "yes"])
    train, holdout, synthetic = (_separable(200, s, ["no", "yes"]) for s in (1, 2, 3))
    other_seed = fidelity_suite(train, holdout, synthetic, with_target, seed=1)
    assert [r.name for r in other_seed] == [
        "column_shapes",
        "pair_trends",
        "three_way_marginals",
        "detection_auc",
        "ml_efficacy",
    ]
    no_target = with_target.model_copy(update={"target": None})
    results = fidelity_suite(train, holdout, synthetic, no_target, seed=0, max_detection_auc=0.7)
    assert [r.name for r in results][-1] == "detection_auc"
    assert results[3].threshold == 0.7
    # Per-check seeds are split from the master seed: the same figures with or without the
    # ML-efficacy check, different ones with another master seed.
    first = fidelity_suite(train, holdout, synthetic, with_target, seed=0)
    assert [r.value for r in results] == [r.value for r in first[:4]]
    assert other_seed[3].value != first[3].value  # detection: other subsample, folds, model
    assert other_seed[0].value == first[0].value  # column shapes: not random


# --- oracles on Adult ------------------------------------------------------------------------


def _adult_split(adult: pl.DataFrame, n: int | None, seed: int = 0) -> tuple[pl.DataFrame, ...]:
    """Seeded split of (a sample of) Adult: 2/3 train, then holdout and fresh halves of the rest."""
    perm = np.random.default_rng(seed).permutation(adult.height)[: n or adult.height]
    n_train = len(perm) * 2 // 3
    n_holdout = (len(perm) - n_train) // 2
    return (
        adult[np.sort(perm[:n_train])],
        adult[np.sort(perm[n_train : n_train + n_holdout])],
        adult[np.sort(perm[n_train + n_holdout :])],
    )


@pytest.mark.statistical
def test_oracle_independent_marginals_is_blocked_without_a_target(
    adult: pl.DataFrame, adult_contract: Contract
) -> None:
    # 12,000 rows: 8,000 train, 2,000 holdout, 2,000 fresh. Measured: independent marginals
    # 3-way ratio 0.88 (above the 0.875 gate at this size), detection AUC 0.987 (gate 0.975);
    # a fresh real sample 1.00 and 0.51.
    no_target = adult_contract.model_copy(update={"target": None})
    train, holdout, fresh = _adult_split(adult, 12_000)
    marginals = _independent_marginals(train, train.height, seed=11)

    results = fidelity_suite(train, holdout, marginals, no_target, seed=0)
    by = {r.name: r for r in results}
    assert "ml_efficacy" not in by
    # Marginals are kept and pair trends alone do not catch it ...
    assert by["column_shapes"].passed and by["pair_trends"].passed
    # ... the detector does, and the 3-way marginals sit well below a real sample's.
    assert not by["detection_auc"].passed
    assert by["three_way_marginals"].gated_value < 0.9
    assert not decide_release(results).released

    control = {r.name: r for r in fidelity_suite(train, holdout, fresh, no_target, seed=0)}
    assert control["three_way_marginals"].gated_value > 0.98
    assert abs(control["detection_auc"].value - 0.5) < 0.05
    assert decide_release(list(control.values())).released


@pytest.mark.statistical
def test_oracle_independent_marginals_full_adult(adult: pl.DataFrame, adult_contract: Contract) -> None:
    train, holdout, fresh = _adult_split(adult, None)
    marginals = _independent_marginals(train, train.height, seed=11)

    shapes = column_shapes(train, marginals, adult_contract)
    assert shapes.value > 0.99 and shapes.passed

    start = time.perf_counter()
    pairs = pair_trends(train, marginals, adult_contract)
    assert time.perf_counter() - start < 10.0  # 105 pairs x 32k rows: vectorised
    pairs_fresh = pair_trends(train, fresh, adult_contract)
    # Independent sampling breaks the relationships: clearly below a fresh real sample, and
    # worst on the pair that is one column written twice.
    assert pairs.value < pairs_fresh.value - 0.05
    assert pairs.details["lowest_pairs"][0]["columns"] == ["education", "education-num"]
    assoc = pairs.details["association"]
    i, j = assoc["columns"].index("education"), assoc["columns"].index("education-num")
    assert assoc["real"][i][j] > 0.9 and assoc["synthetic"][i][j] < 0.1

    # At the release scale both structural gates block it on their own (measured: 3-way
    # ratio 0.867, detection AUC 0.989; the project's DP-CTGAN at epsilon 3 scored
    # 0.885-0.909 and 0.948-0.961).
    three_way = three_way_marginals(train, holdout, marginals, adult_contract, seed=0)
    assert not three_way.passed and three_way.details["ceiling"] > 0.95
    detect = detection(holdout, marginals, adult_contract, seed=0)
    assert not detect.passed and detect.ci is not None and detect.ci[0] > 0.98

    ml = ml_efficacy(train, marginals, holdout, adult_contract, seed=0)
    assert ml is not None
    assert abs(ml.value - 0.5) < 0.06  # TSTR AUC: no signal left
    assert ml.details["trtr"]["auc"] > 0.9
    assert not ml.passed


def test_pair_trends_heat_map_of_a_wide_table_shows_its_least_preserved_pairs() -> None:
    # 80 columns: 3,160 pairs scored, the heat maps hold 60 columns, the worst pair's among them.
    from synthgate.validation.fidelity import MAX_HEAT_MAP_COLUMNS

    names = [f"x{i:02d}" for i in range(80)]
    contract = _contract({n: {"kind": "continuous", "min": -4.0, "max": 4.0} for n in names})
    rng = np.random.default_rng(2)
    real = pl.DataFrame({n: rng.normal(0, 1, 300) for n in names})
    real = real.with_columns(pl.col("x00").alias("x79"))  # x79 follows x00 in the real rows only
    synthetic = pl.DataFrame({n: rng.normal(0, 1, 300) for n in names})
    r = pair_trends(real, synthetic, contract)
    assoc = r.details["association"]
    assert r.details["pairs"] == 80 * 79 // 2
    assert MAX_HEAT_MAP_COLUMNS == 60 and len(assoc["columns"]) == 60 and assoc["columns_total"] == 80
    assert r.details["lowest_pairs"][0]["columns"] == ["x00", "x79"]
    assert {"x00", "x79"} <= set(assoc["columns"]) and assoc["columns"] == sorted(assoc["columns"])
    real_v = np.array(assoc["real"])
    i, j = assoc["columns"].index("x00"), assoc["columns"].index("x79")
    assert real_v.shape == (60, 60) and real_v[i, j] == pytest.approx(1.0)
    assert "least preserved" in assoc["selection"]


def test_integer_columns_are_binned_on_integer_edges() -> None:
    """Each bin of an integer column holds whole values, the same number in each (but the last):
    a value on a bin's first edge lands in that bin, the value before it in the bin before."""
    contract = _contract({"n": {"kind": "integer", "min": -3, "max": 60}, "k": {"kind": "integer", "min": 5, "max": 6}})
    edges = plot_edges(contract, "n")
    assert np.array_equal(edges, np.arange(-3, 62, 4, dtype=float))  # 64 values: 16 bins of 4
    values = np.arange(-3, 61, dtype=float)
    bins = plot_bin(values, edges, integer=True)
    assert np.array_equal(np.bincount(bins), [4] * 16)
    real = pl.DataFrame({"n": [0] * 12 + [1] * 12 + [60] * 10, "k": [5] * 20 + [6] * 14})
    plot = column_shapes(real, real, contract).details["per_column"]["n"]["plot"]
    assert plot["labels"][:2] == ["-3–0", "1–4"] and plot["labels"][-1] == "57–60"
    assert plot["real"][0] == pytest.approx(12 / 34) and plot["real"][1] == pytest.approx(12 / 34)
    assert plot["real"][-1] == pytest.approx(10 / 34)
    one = column_shapes(real, real, contract).details["per_column"]["k"]["plot"]
    assert one["labels"] == ["5", "6"] and one["real"] == [pytest.approx(20 / 34), pytest.approx(14 / 34)]


def test_zero_inflated_columns_show_their_zeros_as_a_bar_of_their_own() -> None:
    """A range starting at 0 (money, counts) or a declared special value 0: "0" is the first bar, the
    other values are binned after it (an integer column from 1), so the spike does not hide them."""
    contract = _contract(
        {
            "gain": {"kind": "integer", "min": 0, "max": 99},
            "amount": {"kind": "continuous", "min": 0, "max": 50},
            "delta": {"kind": "integer", "min": -10, "max": 9, "special_values": [0]},
            "age": {"kind": "integer", "min": 17, "max": 36},
        }
    )
    assert [zero_split(contract, c) for c in ("gain", "amount", "delta", "age")] == [True, True, True, False]
    n = 200
    real = pl.DataFrame(
        {
            "gain": [0] * 180 + [1] * 10 + [99] * 10,
            "amount": [0.0] * 150 + [0.5] * 25 + [49.0] * 25,
            "delta": [0] * 100 + [-10] * 50 + [9] * 50,
            "age": [17] * n,
        }
    )
    per_column = column_shapes(real, real, contract).details["per_column"]
    gain = per_column["gain"]["plot"]
    assert gain["labels"][:3] == ["0", "1–5", "6–10"] and gain["labels"][-1] == "96–99" and len(gain["labels"]) == 21
    assert gain["real"][0] == pytest.approx(0.9) and gain["real"][1] == pytest.approx(0.05)
    assert gain["real"][-1] == pytest.approx(0.05)
    amount = per_column["amount"]["plot"]
    assert amount["labels"][:2] == ["0", "0–2.5"] and len(amount["labels"]) == 21
    assert (amount["real"][0], amount["real"][1], amount["real"][-1]) == pytest.approx((0.75, 0.125, 0.125))
    delta = per_column["delta"]["plot"]
    assert delta["labels"][0] == "0" and delta["real"][0] == pytest.approx(0.5)
    assert delta["labels"][1] == "-10" and delta["real"][1] == pytest.approx(0.25)
    assert "0" not in per_column["age"]["plot"]["labels"]


# --- the log view of right-skewed amounts ------------------------------------------------------

_SKEWED = {
    "gain": {"kind": "integer", "min": 0, "max": 99_999},
    "weight": {"kind": "integer", "min": 0, "max": 2_000_000},
    "income": {"kind": "continuous", "min": 0, "max": 1_000_000},
    "price": {"kind": "continuous", "min": 5, "max": 4_999},
    "age": {"kind": "integer", "min": 17, "max": 90},
    "hours": {"kind": "integer", "min": 1, "max": 99},
    "share": {"kind": "continuous", "min": 0, "max": 1},
    "balance": {"kind": "continuous", "min": -1_000, "max": 1_000_000},
    "joined": {"kind": "datetime", "min": "2000-01-01", "max": "2030-01-01"},
    "job": {"kind": "categorical", "categories": ["a", "b"]},
}


def test_log_view_is_decided_from_the_contract_alone() -> None:
    """Non-negative amounts spanning >= 3 decades above max(min, 1) get a log view; ages, hours,
    shares, signed or datetime columns and categories do not. The function sees no row at all."""
    contract = _contract(_SKEWED)
    got = {c: log_view(contract, c) for c in _SKEWED}
    assert got == {
        "gain": True,
        "weight": True,
        "income": True,
        "price": False,  # 5 to 4,999: just under three decades above 5
        "age": False,
        "hours": False,
        "share": False,
        "balance": False,
        "joined": False,
        "job": False,
    }
    assert log_view(_contract({"price": {"kind": "continuous", "min": 5, "max": 5_000}}), "price")
    edges = log_edges(contract, "gain")
    assert edges[0] == 1 and edges[-1] == 100_000 and np.all(np.diff(edges) >= 1)
    assert np.array_equal(edges, np.round(edges)) and len(edges) == 21  # whole-number edges, 20 bins
    labels = log_labels(contract, "gain")  # no "0": zeros are left out of the log view
    assert labels[:4] == ["1", "2", "3–5", "6–9"] and labels[-1] == "56.2k–100k" and len(labels) == 20
    income = log_edges(contract, "income")
    np.testing.assert_allclose(np.diff(np.log10(income)), 0.3)  # 6 decades in 20 equal ratios
    assert log_labels(contract, "income")[:2] == ["<2", "2–3.98"]  # values in (0, 1) count in the first bin
    with pytest.raises(ValueError, match="'age' has no log view"):
        column_plot(pl.Series("age", [20, 30]), pl.Series("age", [20, 30]), contract, "age", log=True)


def test_log_view_spreads_a_right_skewed_amount_that_the_linear_bins_pile_into_one_bar() -> None:
    """A zero-inflated, log-normal amount (median 1,000, top-coded at 99,999): on 20 linear bins over
    [1, 99,999] almost every non-zero row is in the first bar; the log view leaves the zeros out and
    spreads the other values over many bars, each value in the bin its label names."""
    contract = _contract({"gain": _SKEWED["gain"], "age": _SKEWED["age"]})
    rng = np.random.default_rng(11)
    n = 4000
    amount = np.minimum(np.round(np.exp(rng.normal(np.log(1000), 1.0, n))), 99_999).astype(np.int64)
    gain = np.where(rng.random(n) < 0.7, 0, np.maximum(amount, 1))
    real = pl.DataFrame({"gain": gain, "age": rng.integers(17, 91, n)})
    per_column = column_shapes(real, real, contract).details["per_column"]
    assert "plot_log" not in per_column["age"]
    linear, log = per_column["gain"]["plot"], per_column["gain"]["plot_log"]
    assert log["scale"] == "log" and "scale" not in linear and log["labels"] == log_labels(contract, "gain")
    # the rows' own shares are the synthetic side here (the real side hides bins of < 10 rows)
    lin, lg = linear["synthetic"], log["synthetic"]
    assert lin[0] == pytest.approx(float(np.mean(gain == 0)))  # the linear plot's "0" bar
    nonzero = 1 - lin[0]
    assert lin[1] / nonzero > 0.9  # linear: the first bar holds > 90% of the amounts
    assert sum(lg) == pytest.approx(1.0) and "0" not in log["labels"]  # log: shares of the non-zero values
    assert max(lg) < 0.35  # no bar holds more than a third of them
    assert sum(x >= 0.02 for x in lg) >= 5
    counts = np.bincount(
        plot_bin(gain[gain > 0].astype(float), log_edges(contract, "gain"), integer=True, log=True), minlength=20
    )
    np.testing.assert_allclose(lg, counts / counts.sum(), rtol=1e-12)
    shown = [k for k, r in enumerate(log["real"]) if r > 0]
    assert log["suppressed"] > 0 and sum(log["real"]) == pytest.approx(1.0)  # small bins hidden there too
    np.testing.assert_allclose(
        [log["real"][k] for k in shown], [lg[k] / sum(lg[j] for j in shown) for k in shown], rtol=1e-12
    )
    edges = log_edges(contract, "gain")
    bins = plot_bin(np.array([1.0, 999.0, 1000.0, 99_999.0]), edges, integer=True, log=True)
    names = [log["labels"][b] for b in bins]
    assert names == ["1", "562–999", "1k–1.78k", "56.2k–100k"]


# --- holdout references of column shapes and pair trends ---------------------------------------


def test_column_shapes_and_pair_trends_stand_beside_their_holdout_reference(
    adult: pl.DataFrame, adult_contract: Contract
) -> None:
    """The reference is the same measure between train and the holdout (as the 3-way ceiling): with
    a holdout smaller than the synthetic table, all of it; the gated figure is unchanged. Independent
    marginals keep the columns' shapes (about the holdout's own score) but not the pairs (well below)."""
    train, holdout, _ = _adult_split(adult, 6_000)  # 4,000 train, 1,000 holdout
    marginals = _independent_marginals(train, 2_000, seed=5)
    shapes = column_shapes(train, marginals, adult_contract, holdout=holdout, seed=3)
    plain = column_shapes(train, marginals, adult_contract)
    assert shapes.value == plain.value and shapes.passed == plain.passed and "ceiling" not in plain.details
    fresh = column_shapes(train, holdout, adult_contract)
    assert shapes.details["ceiling"] == fresh.value and shapes.details["ceiling_rows"] == holdout.height
    for name, col in shapes.details["per_column"].items():
        assert col["ceiling"] == fresh.details["per_column"][name]["score"], name
    pairs = pair_trends(train, marginals, adult_contract, holdout=holdout, seed=3)
    assert pairs.value == pair_trends(train, marginals, adult_contract).value
    assert pairs.details["ceiling"] == pair_trends(train, holdout, adult_contract).value
    assert all("ceiling" in p for p in pairs.details["lowest_pairs"])
    # measured (this split): shapes 0.982 of a possible 0.978 (2,000 synthetic rows against 1,000
    # holdout rows: a little less noise), pair trends 0.909 of a possible 0.950
    assert abs(shapes.value - shapes.details["ceiling"]) < 0.01
    assert pairs.details["ceiling"] - pairs.value > 0.03


def test_a_holdout_reference_is_size_matched_to_the_synthetic_table(
    adult: pl.DataFrame, adult_contract: Contract
) -> None:
    """A synthetic table smaller than the holdout: the holdout is subsampled (seeded) to its size, as
    three_way_marginals does, so the reference carries the same sampling noise as the figure."""
    from synthgate.validation.encoding import canonical_frame, subsample_rows

    train, holdout, fresh = _adult_split(adult, 6_000)
    small = fresh[:300]
    shapes = column_shapes(train, small, adult_contract, holdout=holdout, seed=8)
    assert shapes.details["ceiling_rows"] == 300
    again = column_shapes(train, small, adult_contract, holdout=holdout, seed=8)
    assert again.details["ceiling"] == shapes.details["ceiling"]  # seeded
    used = subsample_rows(
        canonical_frame(holdout, adult_contract, role="holdout"), 300, np.random.default_rng(np.random.SeedSequence(8))
    )
    assert shapes.details["ceiling"] == column_shapes(train, used, adult_contract).value
    pairs = pair_trends(train, small, adult_contract, holdout=holdout, seed=8)
    assert pairs.details["ceiling_rows"] == 300
    assert pairs.details["ceiling"] == pair_trends(train, used, adult_contract).value


def test_fidelity_suite_adds_the_references_and_keeps_the_other_checks_seeds(
    adult: pl.DataFrame, adult_contract: Contract
) -> None:
    """The references' subsample seed is a fourth child of the master seed: the 3-way, detection and
    ML-efficacy seeds (the first three children) are what they were before it was added."""
    from synthgate.validation.encoding import int_seed

    no_target = adult_contract.model_copy(update={"target": None})
    train, holdout, _ = _adult_split(adult, 3_000)
    synthetic = _independent_marginals(train, 800, seed=2)
    by = {r.name: r for r in fidelity_suite(train, holdout, synthetic, no_target, seed=4)}
    assert {"ceiling", "ceiling_rows"} <= set(by["column_shapes"].details)
    assert {"ceiling", "ceiling_rows"} <= set(by["pair_trends"].details)
    three_seq = np.random.SeedSequence(4).spawn(3)[0]
    alone = three_way_marginals(train, holdout, synthetic, no_target, seed=int_seed(three_seq))
    assert by["three_way_marginals"].value == alone.value
    assert by["three_way_marginals"].details["ceiling"] == alone.details["ceiling"]
