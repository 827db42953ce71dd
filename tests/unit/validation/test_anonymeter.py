"""Anonymeter-style risks: the risk formula and its interval, hand-counted attacks, oracles."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

from synthgate.validation.anonymeter import (
    MIN_CLASS_TARGETS,
    NUMERIC_SECRET_BINS,
    _Columns,
    _match_counts,
    _multivariate_predicates,
    _nearest_rows,
    _numeric_secret_classes,
    _power_floor,
    _result,
    _secret_bins,
    _strata,
    anonymeter_checks,
    attack_risk,
    balanced_attack_risk,
    inference_risk,
    linkability_risk,
    singling_out_risk,
)
from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.stats import wilson_interval


def _contract(columns: dict[str, dict[str, object]], **extra: object) -> Contract:
    return parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}, **extra})


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


# --- rates, risk and interval ----------------------------------------------------------------


def test_wilson_interval_matches_scipy() -> None:
    for k, n in ((0, 10), (3, 10), (60, 100), (500, 500)):
        assert wilson_interval(k, n) == pytest.approx(_wilson(k, n), abs=1e-12)


def test_risk_and_its_interval_on_given_counts() -> None:
    est = attack_risk(60, 100, 20, 100)
    p, c = 0.6, 0.2
    assert est.main_rate == p and est.control_rate == c
    assert est.risk == pytest.approx((0.6 - 0.2) / (1 - 0.2))  # 0.5
    (p_lo, p_hi), (c_lo, c_hi) = _wilson(60, 100), _wilson(20, 100)
    assert est.main_ci == pytest.approx((p_lo, p_hi)) and est.control_ci == pytest.approx((c_lo, c_hi))
    # Each rate's distance to its Wilson bound, in the direction that moves the risk, times
    # the partial derivative (1 / (1 - c) for p, (1 - p) / (1 - c)² for c), in quadrature.
    hi = 0.5 + math.hypot((p_hi - p) / (1 - c), (c - c_lo) * (1 - p) / (1 - c) ** 2)
    lo = 0.5 - math.hypot((p - p_lo) / (1 - c), (c_hi - c) * (1 - p) / (1 - c) ** 2)
    assert est.ci == pytest.approx((lo, hi))
    assert lo < 0.5 < hi and not est.control_saturated


def test_interval_at_equal_rates_is_newcombes_difference_interval_scaled() -> None:
    est = attack_risk(30, 100, 30, 100)
    (lo1, hi1), (lo2, hi2) = _wilson(30, 100), _wilson(30, 100)
    assert est.risk == 0.0
    # Newcombe's hybrid score interval for p1 - p2, divided by 1 - c = 0.7.
    assert est.ci[1] == pytest.approx(math.hypot(hi1 - 0.3, 0.3 - lo2) / 0.7)
    assert est.ci[0] == pytest.approx(-math.hypot(0.3 - lo1, hi2 - 0.3) / 0.7)


def test_a_perfect_main_attack_has_risk_one_and_a_tight_interval() -> None:
    est = attack_risk(500, 500, 100, 500)
    p_lo, _ = _wilson(500, 500)
    assert est.risk == 1.0 and est.ci[1] == pytest.approx(1.0)
    assert est.ci[0] == pytest.approx(1 - (1 - p_lo) / 0.8)  # the control term vanishes at p = 1


def test_saturated_control_cannot_be_bounded() -> None:
    est = attack_risk(50, 50, 50, 50)
    assert est.control_saturated and est.risk == 0.0 and est.ci == (0.0, 1.0)


def test_interval_covers_the_true_risk_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    n, p, c = 200, 0.4, 0.25
    true = (p - c) / (1 - c)
    covered = 0
    reps = 1000
    for k1, k2 in zip(rng.binomial(n, p, reps), rng.binomial(n, c, reps), strict=True):
        lo, hi = attack_risk(int(k1), n, int(k2), n).ci
        covered += lo <= true <= hi
    assert 0.93 <= covered / reps <= 0.97


def test_risk_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="successes=7, attacks=5"):
        attack_risk(7, 5, 1, 5)
    with pytest.raises(ValueError, match="confidence"):
        attack_risk(1, 5, 1, 5, confidence=95)


# --- singling out ----------------------------------------------------------------------------


@pytest.fixture
def age_color() -> Contract:
    return _contract(
        {
            "age": {"kind": "integer", "min": 0, "max": 100, "nullable": True},
            "color": {"kind": "categorical", "categories": ["red", "blue", "green"]},
        }
    )


def _ac(ages: list[int | None], colors: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"age": ages, "color": colors}, schema={"age": pl.Int64, "color": pl.Utf8})


def test_univariate_singling_out_by_hand(age_color: Contract) -> None:
    # Predicates from the synthetic table: age is null (one null), age <= 10 (unique min),
    # age >= 40 (unique max), age == 10, age == 30, age == 40 (values seen once),
    # color == green (seen once). 20, red and blue repeat, so they single out nobody.
    syn = _ac([10, 20, 20, 30, 40, None], ["red", "red", "blue", "blue", "green", "red"])
    # train: null 1, <=10 1 (null excluded), >=40 3, ==10 1, ==30 1, ==40 1, green 1 -> 6 of 7
    train = _ac([10, 30, 40, 55, 60, None], ["green", "red", "red", "blue", "blue", "red"])
    # control: null 2, <=10 1, >=40 2, ==10 1, ==30 0, ==40 0, green 1 -> 3 of 7
    control = _ac([None, None, 10, 20, 60, 70], ["blue", "blue", "green", "red", "red", "red"])
    r = singling_out_risk(train, control, syn, age_color, mode="univariate", seed=0)
    d = r.details
    assert r.name == "singling_out_risk_univariate"
    assert (d["n_attacks"], d["n_successes"], d["n_control_successes"]) == (7, 6, 3)
    assert d["predicates_available"] == 7 and "only 7 predicates" in d["n_attacks_capped"]
    assert r.value == pytest.approx((6 / 7 - 3 / 7) / (1 - 3 / 7))  # 0.75
    est = attack_risk(6, 7, 3, 7)
    assert r.ci == pytest.approx((max(est.ci[0], 0.0), min(est.ci[1], 1.0)))
    assert r.gated_value == r.ci[1] and r.passed == (r.ci[1] <= 0.10)
    assert r.kind == "privacy" and r.direction == "max" and r.threshold == 0.10


def test_multivariate_singling_out_by_hand() -> None:
    contract = _contract(
        {
            "a": {"kind": "categorical", "categories": ["x", "y"]},
            "b": {"kind": "categorical", "categories": ["u", "v"]},
        }
    )

    def frame(rows: list[str]) -> pl.DataFrame:
        return pl.DataFrame({"a": [r[0] for r in rows], "b": [r[1] for r in rows]})

    # No single value is rare, so every predicate needs both columns, in either order:
    # x&v, y&u, y&v. The twice-seen row xu singles out nobody and is dropped.
    syn = frame(["xu", "xu", "xv", "yu", "yv"])
    train = frame(["xv", "yu", "yu", "xu"])  # x&v 1, y&u 2, y&v 0 -> 1 success
    control = frame(["xv", "yv", "xu", "xu"])  # x&v 1, y&u 0, y&v 1 -> 2 successes
    for seed in (0, 1, 2):
        r = singling_out_risk(train, control, syn, contract, seed=seed)
        d = r.details
        assert r.name == "singling_out_risk_multivariate"
        assert (d["n_attacks"], d["n_successes"], d["n_control_successes"]) == (3, 1, 2)
        assert d["mean_predicate_columns"] == 2.0 and d["synthetic_rows_tried"] == 5
        assert d["risk_raw"] == pytest.approx((1 / 3 - 2 / 3) / (1 - 2 / 3)) and r.value == 0.0


def test_multivariate_numeric_conditions_point_to_the_tail() -> None:
    contract = _contract({"n": {"kind": "integer", "min": 0, "max": 100}})
    syn = pl.DataFrame({"n": [10, 20, 30, 40, 50]})
    # Median 30: rows at or above it give n >= v, below it n <= v. Only n >= 50 and n <= 10
    # match one synthetic row.
    train = pl.DataFrame({"n": [5, 60, 35, 45]})  # <= 10: 1, >= 50: 1 -> 2
    control = pl.DataFrame({"n": [5, 8, 55, 70]})  # <= 10: 2, >= 50: 2 -> 0
    r = singling_out_risk(train, control, syn, contract, seed=3)
    d = r.details
    assert (d["n_attacks"], d["n_successes"], d["n_control_successes"]) == (2, 2, 0)
    assert r.value == 1.0


def test_singling_out_compares_equal_sized_sets(age_color: Contract) -> None:
    syn = _ac([1, 2, 3], ["red", "blue", "green"])
    train = _ac(list(range(10, 40)), ["red"] * 30)
    control = _ac(list(range(50, 60)), ["blue"] * 10)
    r = singling_out_risk(train, control, syn, age_color, mode="univariate", seed=0)
    assert r.details["evaluated_rows_each"] == 10
    assert r.details["train_rows"] == 30 and r.details["control_rows"] == 10


def test_a_synthetic_table_of_twins_gives_the_attacker_nothing(age_color: Contract) -> None:
    twins = _ac([7, 7], ["red", "red"])
    train = _ac([7, 8], ["red", "blue"])
    for mode in ("univariate", "multivariate"):
        r = singling_out_risk(train, train, twins, age_color, mode=mode, seed=0)  # type: ignore[arg-type]
        assert r.details["n_attacks"] == 0 and r.passed and r.value == 0.0 and r.ci == (0.0, 0.0)


def test_vectorised_match_counts_equal_a_row_by_row_count() -> None:
    contract = _contract(
        {
            "n": {"kind": "integer", "min": 0, "max": 5, "nullable": True},
            "f": {"kind": "continuous", "min": 0.0, "max": 1.0},
            "c": {"kind": "categorical", "categories": ["p", "q", "r"], "nullable": True},
        }
    )
    rng = np.random.default_rng(1)
    n_rows = 60
    n_col = rng.integers(0, 6, n_rows).astype(float)
    n_col[rng.random(n_rows) < 0.2] = np.nan
    c_col = rng.choice(np.array(["p", "q", "r", None], dtype=object), n_rows)
    df = pl.DataFrame(
        {
            "n": pl.Series([None if np.isnan(v) else int(v) for v in n_col], dtype=pl.Int64),
            "f": np.round(rng.random(n_rows), 1),
            "c": pl.Series(list(c_col), dtype=pl.Utf8),
        }
    )
    table = _Columns(df, contract)
    k, depth = 300, 3
    cols = np.stack([rng.permutation(3) for _ in range(k)])
    src = rng.integers(0, n_rows, k)
    vals = table.x[cols, src[:, None]]
    ops = rng.integers(0, 3, (k, depth))  # ==, <=, >=
    ops = np.where(np.isnan(vals), 3, ops)  # is null
    lengths = rng.integers(1, depth + 1, k)
    counts = _match_counts(table, (cols, vals, ops, lengths), cap=10**6)
    for i in range(k):
        mask = np.ones(n_rows, dtype=bool)
        for s in range(lengths[i]):
            x, v = table.x[cols[i, s]], vals[i, s]
            cond = {0: x == v, 1: x <= v, 2: x >= v, 3: np.isnan(x)}[int(ops[i, s])]
            mask &= cond
        assert counts[i] == mask.sum()


def test_multivariate_predicates_single_out_their_row_with_a_shortest_prefix(
    adult_small: pl.DataFrame, adult_contract: Contract
) -> None:
    table = _Columns(adult_small.select(adult_contract.modelled_columns), adult_contract)
    (cols, vals, ops, lengths), _ = _multivariate_predicates(table, 200, np.random.default_rng(0))
    assert len(lengths) == 200
    assert (_match_counts(table, (cols, vals, ops, lengths)) == 1).all()
    shorter = lengths - 1
    has_shorter = shorter > 0
    sub = (cols[has_shorter], vals[has_shorter], ops[has_shorter], shorter[has_shorter])
    assert (_match_counts(table, sub) >= 2).all()


# --- linkability -----------------------------------------------------------------------------


@pytest.fixture
def two_numbers() -> Contract:
    return _contract({"a": {"kind": "integer", "min": 0, "max": 100}, "b": {"kind": "integer", "min": 0, "max": 100}})


def _ab(rows: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"a": pl.Int64, "b": pl.Int64}, orient="row")


TRAIN_AB = [(0, 0), (10, 50), (20, 100), (30, 25)]
# Nearest synthetic row on a | on b: (0,0) | (20,100) -> no; (10,50) | (10,50) -> yes;
# (30,25) | (0,0) -> no; (20,100) | (30,25) -> no.
CONTROL_AB = [(1, 99), (11, 49), (29, 1), (19, 26)]


def test_linkability_by_hand(two_numbers: Contract) -> None:
    train, control = _ab(TRAIN_AB), _ab(CONTROL_AB)
    r = linkability_risk(train, control, train, two_numbers, seed=0)  # synthetic = train
    d = r.details
    assert r.name == "linkability_risk"
    assert (d["columns_a"], d["columns_b"]) == (["a"], ["b"])  # alternating split
    assert (d["n_attacks"], d["n_successes"], d["n_control_successes"]) == (4, 4, 1)
    assert r.value == pytest.approx(1.0) and not r.passed
    assert "capped at 4" in d["n_attacks_capped"]


def test_linkability_more_neighbours_link_more_by_chance(two_numbers: Contract) -> None:
    train, control = _ab(TRAIN_AB), _ab(CONTROL_AB)
    # Two neighbours: (1,99) -> {(0,0),(10,50)} and {(20,100),(10,50)} share (10,50), etc.
    r = linkability_risk(train, control, train, two_numbers, n_neighbors=2, seed=0)
    assert r.details["n_control_successes"] == 4 and r.details["n_successes"] == 4
    # Every control target links by chance: the test has no room left to measure a risk.
    assert r.details["control_saturated"] and r.ci == (0.0, 1.0) and not r.passed


def test_nearest_rows_break_ties_at_random_and_match_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((50, 3))
    query = rng.random((40, 3))
    expected = np.argsort(((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1), axis=1)[:, :3]
    np.testing.assert_array_equal(_nearest_rows(query, ref, 3, rng), expected)
    twins = np.array([[0.0], [1.0], [1.0]])
    picks = np.concatenate(
        [_nearest_rows(np.array([[0.9]] * 10), twins, 1, np.random.default_rng(s))[:, 0] for s in range(40)]
    )
    assert set(picks) == {1, 2} and 0.35 < (picks == 1).mean() < 0.65


def test_few_columns_draw_predicates_from_samples_as_large_as_the_attacked_sets() -> None:
    """Two categorical columns with 2,000 combinations: in 4,000 synthetic rows about e^-2 of the
    rows are unique, in a sample of 2,000 (the attacked sets' size) about e^-1. The predicates come
    from two such samples; fresh rows still pass, a copy of train is still caught."""
    cats_a, cats_b = [f"a{i}" for i in range(40)], [f"b{i}" for i in range(50)]
    contract = _contract(
        {"a": {"kind": "categorical", "categories": cats_a}, "b": {"kind": "categorical", "categories": cats_b}}
    )
    rng = np.random.default_rng(12)

    def rows(n: int) -> pl.DataFrame:
        return pl.DataFrame({"a": rng.choice(cats_a, n), "b": rng.choice(cats_b, n)})

    train, control, fresh = rows(4000), rows(2000), rows(4000)
    whole = _multivariate_predicates(_Columns(fresh, contract), 2000, np.random.default_rng(0))[0]
    r = singling_out_risk(train, control, fresh, contract, mode="multivariate", n_attacks=2000, seed=3)
    assert "2 disjoint seeded samples of 2000" in r.details["predicates_from"]
    assert r.details["n_attacks"] > 2 * len(whole[3])
    assert r.passed and r.power_floor < 0.1
    # a copy of train is blocked with evidence (interval above 0); weaker than on a wide table,
    # since here most combinations recur among the 4,000 training rows
    copied = singling_out_risk(train, control, train, contract, mode="multivariate", n_attacks=2000, seed=3)
    assert not copied.passed and copied.ci[0] > 0.0 and copied.outcome == "fail"


# --- inference -------------------------------------------------------------------------------


def test_inference_by_hand_categorical_secret() -> None:
    contract = _contract(
        {
            "a": {"kind": "integer", "min": 0, "max": 100},
            "s": {"kind": "categorical", "categories": ["yes", "no"]},
        }
    )
    train = pl.DataFrame({"a": [0, 10, 20, 30], "s": ["yes", "no", "no", "yes"]})
    # Nearest synthetic (= train) row on a: 10 ("no"), 20 ("no"), 30 ("yes"), 0 ("yes").
    control = pl.DataFrame({"a": [12, 18, 28, 2], "s": ["no", "yes", "no", "no"]})
    r = inference_risk(train, control, train, contract, secret="s", seed=0)
    d = r.details
    assert r.name == "inference_risk[s]" and d["aux_columns"] == ["a"] and d["secret"] == "s"
    assert (d["n_successes"], d["n_control_successes"]) == (4, 1)
    assert r.value == pytest.approx(1.0)


def test_inference_numeric_secret_is_judged_by_the_synthetic_deciles() -> None:
    contract = _contract(
        {
            "a": {"kind": "integer", "min": 0, "max": 100},
            "s": {"kind": "continuous", "min": 0.0, "max": 200.0, "nullable": True},
        }
    )
    # 20 distinct synthetic values 0, 10, ..., 190 and a null: deciles at 19, 38, ..., 171
    syn = pl.DataFrame({"a": list(range(21)), "s": [10.0 * i for i in range(20)] + [None]})
    points, edges = _secret_bins(syn["s"].cast(pl.Float64).to_numpy())
    assert points.size == 0 and NUMERIC_SECRET_BINS == 10
    assert edges == pytest.approx([19.0 * k for k in range(1, 10)])
    # Nearest synthetic rows on a: a=0 → 0.0, a=5 → 50.0, a=20 → null
    train = pl.DataFrame(
        {"a": [0, 5, 20], "s": [18.0, 39.0, None]}
    )  # same bin as 0 (<19): yes; 39 vs 50: both in [38, 57): yes; null = null: yes
    control = pl.DataFrame({"a": [0, 5, 20], "s": [20.0, 37.0, 50.0]})  # 20 vs 0: no; 37 vs 50: no; 50 vs null: no
    r = inference_risk(train, control, syn, contract, secret="s", seed=0)
    assert (r.details["n_successes"], r.details["n_control_successes"]) == (3, 0)
    assert r.details["strata"] == 1  # three rows: too few for a stratum per class
    assert "quantile bins" in r.details["success"]


def test_a_spike_in_a_numeric_secret_is_a_class_of_its_own() -> None:
    values = np.array([0.0] * 50 + list(np.linspace(1.0, 100.0, 50)) + [np.nan] * 3)
    points, edges = _secret_bins(values)
    assert points.tolist() == [0.0] and edges.size == 9
    classes = _numeric_secret_classes(np.array([0.0, 0.5, 100.0, np.nan]), points, edges)
    # 0 is the spike; 0.5 sits in the lowest bin with the small positive values, not with 0
    assert classes[0] == edges.size + 1 and classes[1] == 0 and classes[2] == edges.size
    assert classes[3] == edges.size + 2  # null after the spikes


def test_strata_keep_every_row_and_pool_the_rare_classes() -> None:
    m = MIN_CLASS_TARGETS
    main = np.array([0] * (3 * m) + [1] * (2 * m) + [2] * 5 + [3] * 5)
    ctrl = np.array([0] * (3 * m) + [1] * m + [2] * 5 + [3] * 4)
    s_main, s_ctrl = _strata(main, ctrl)
    # classes 2 and 3 are too rare on their own and as a pool: they join the largest stratum (0)
    assert set(s_main.tolist()) == {0, 1} and (s_main[main >= 2] == 0).all() and (s_ctrl[ctrl >= 2] == 0).all()
    half = [2] * (m // 2) + [3] * (m // 2 + 1)  # each rare alone, a stratum together
    pooled_main, pooled_ctrl = _strata(np.r_[[0] * (3 * m), [1] * (2 * m), half], np.r_[[0] * (3 * m), [1] * m, half])
    assert set(pooled_main.tolist()) == {0, 1, 4} and set(pooled_ctrl.tolist()) == {0, 1, 4}
    tiny_main, _ = _strata(np.array([0, 1, 1]), np.array([1, 0]))
    assert set(tiny_main.tolist()) == {2}  # nothing reaches the minimum: one stratum (plain accuracy)


def test_balanced_risk_with_one_class_is_the_plain_risk() -> None:
    one = balanced_attack_risk(np.array([60]), np.array([20]), np.array([100]))
    plain = attack_risk(60, 100, 20, 100)
    assert one == plain and one.effective is None


def test_balanced_risk_sees_a_leak_of_the_rare_value() -> None:
    # 5,000 common and 300 rare targets per side; the main attack gets every rare one right,
    # the control 5% of them; both guess the common value right 95% of the time
    est = balanced_attack_risk(np.array([4750, 300]), np.array([4750, 15]), np.array([5000, 300]))
    assert est.main_rate == pytest.approx((0.95 + 1.0) / 2) and est.control_rate == pytest.approx((0.95 + 0.05) / 2)
    assert est.risk == pytest.approx((0.975 - 0.5) / 0.5) and est.ci[0] > 0.8
    plain = attack_risk(5050, 5300, 4765, 5300)
    assert plain.risk < 0.6  # plain accuracy sees about half of it


def test_a_rare_secret_without_a_leak_passes_where_plain_accuracy_cannot() -> None:
    """5% positive secret, independent of the one other column, 6,000 rows per side: plain accuracy
    of the nearest-row guess is ~0.905 for anyone, its risk interval at these sizes is wider than
    the 0.10 gate (power floor > 0.10); the balanced rate leaves room 1 - c ~ 0.5 and passes."""
    rng = np.random.default_rng(7)
    contract = _contract({"a": {"kind": "continuous", "min": 0.0, "max": 1.0}, "s": {"kind": "boolean"}})

    def rows(n: int) -> pl.DataFrame:
        return pl.DataFrame({"a": rng.random(n), "s": rng.random(n) < 0.05})

    train, control, fresh = rows(6000), rows(6000), rows(6000)
    r = inference_risk(train, control, fresh, contract, secret="s", seed=1, n_attacks=10_000, max_risk=0.10)
    assert r.details["strata"] == 2 and r.passed and r.power_floor < 0.10
    plain = attack_risk(5430, 6000, 5430, 6000)  # the same no-leak outcome as plain accuracy
    assert _power_floor(plain, max_risk=0.10, confidence=0.95)[0] > 0.10


def test_inference_with_a_constant_secret_cannot_pass() -> None:
    contract = _contract({"a": {"kind": "integer", "min": 0, "max": 9}, "s": {"kind": "boolean"}})
    df = pl.DataFrame({"a": list(range(10)), "s": [True] * 10})
    r = inference_risk(df, df, df, contract, secret="s", seed=0)
    assert r.details["control_saturated"] and r.value == 0.0 and r.ci == (0.0, 1.0)
    assert not r.passed and "cannot be bounded" in r.details["note"]


# --- errors ----------------------------------------------------------------------------------


def test_unknown_secret_and_bad_arguments_say_what_to_fix(two_numbers: Contract) -> None:
    df = _ab(TRAIN_AB)
    with pytest.raises(ValueError, match=r"`secret` 'salary' is not a modelled column.*\['a', 'b'\]"):
        inference_risk(df, df, df, two_numbers, secret="salary", seed=0)
    with pytest.raises(ValueError, match="includes the secret 'a'"):
        inference_risk(df, df, df, two_numbers, secret="a", aux_columns=["a", "b"], seed=0)
    with pytest.raises(ValueError, match=r"`n_attacks` must be an integer >= 1\. Got 0"):
        singling_out_risk(df, df, df, two_numbers, n_attacks=0, seed=0)
    with pytest.raises(ValueError, match=r"`n_attacks` must be an integer >= 1\. Got -3"):
        anonymeter_checks(df, df, df, two_numbers, seed=0, n_attacks=-3)
    with pytest.raises(ValueError, match=r"\['a'\] are in both lists"):
        linkability_risk(df, df, df, two_numbers, aux_columns=(["a"], ["a", "b"]), seed=0)
    with pytest.raises(ValueError, match=r"not modelled: \['zip'\]"):
        linkability_risk(df, df, df, two_numbers, aux_columns=(["a"], ["zip"]), seed=0)
    with pytest.raises(ValueError, match="`n_neighbors` must be between 1 and the synthetic rows"):
        linkability_risk(df, df, df, two_numbers, n_neighbors=0, seed=0)
    with pytest.raises(ValueError, match="`mode` must be 'univariate' or 'multivariate'"):
        singling_out_risk(df, df, df, two_numbers, mode="bivariate", seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`control` must hold exactly the contract's modelled columns"):
        linkability_risk(df, df.drop("b"), df, two_numbers, seed=0)


def test_details_hold_no_value_of_any_row() -> None:
    contract = _contract(
        {
            "city": {"kind": "categorical", "categories": ["Aberdeen", "Zanzibar", "Quito"]},
            "job": {"kind": "categorical", "categories": ["Welder", "Juggler"]},
        }
    )
    df = pl.DataFrame({"city": ["Aberdeen", "Zanzibar", "Quito", "Quito"], "job": ["Welder"] * 3 + ["Juggler"]})
    contract = contract.model_copy(update={"target": "job"})
    for r in anonymeter_checks(df, df, df, contract, seed=0):
        text = repr(r.to_dict())
        assert not any(v in text for v in ("Aberdeen", "Zanzibar", "Quito", "Welder", "Juggler"))


# --- all checks, oracles on Adult ------------------------------------------------------------


def test_anonymeter_checks_runs_every_attack_with_contract_settings(two_numbers: Contract) -> None:
    contract = _contract(
        {"a": {"kind": "integer", "min": 0, "max": 100}, "b": {"kind": "integer", "min": 0, "max": 100}},
        evaluation={"secret_columns": ["a", "b"], "anonymeter_attacks": 50, "inference_attacks": 60},
        gates={"max_anonymeter_risk": 0.2},
    )
    train, control = _ab(TRAIN_AB * 3), _ab(CONTROL_AB)
    results = anonymeter_checks(train, control, train, contract, seed=0)
    assert [r.name for r in results] == [
        "singling_out_risk_univariate",
        "singling_out_risk_multivariate",
        "linkability_risk",
        "inference_risk[a]",
        "inference_risk[b]",
    ]
    for r in results:
        assert r.threshold == 0.2 and r.kind == "privacy" and r.direction == "max"
        expected = 60 if r.name.startswith("inference_risk") else 50
        assert r.details["n_attacks_requested"] == expected and r.description
    assert "capped at 4" in results[2].details["n_attacks_capped"]  # control has 4 rows
    again = anonymeter_checks(train, control, train, contract, seed=0)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in results]


def test_copy_of_train_is_caught_by_every_attack(adult_small: pl.DataFrame, adult_contract: Contract) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    train, control = df[:600], df[600:]  # equal sizes: predicates are tried on all of train
    results = {r.name: r for r in anonymeter_checks(train, control, train, adult_contract, seed=0)}
    for name in ("singling_out_risk_univariate", "singling_out_risk_multivariate"):
        # Unique in the synthetic copy means unique in train.
        assert results[name].details["main_success_rate"] == 1.0
        assert results[name].ci[0] > 0.5, name
    inference = results["inference_risk[income]"]
    assert inference.details["main_success_rate"] >= 0.99 and inference.ci[0] > 0.8
    assert results["linkability_risk"].ci[0] > 0.2
    assert not any(r.passed for r in results.values())


def test_fresh_sample_risks_are_near_zero(adult: pl.DataFrame, adult_contract: Contract) -> None:
    df = adult.select(adult_contract.modelled_columns)
    perm = np.random.default_rng(0).permutation(df.height)
    train, control, fresh = df[perm[:3000]], df[perm[3000:4500]], df[perm[4500:6000]]
    results = anonymeter_checks(train, control, fresh, adult_contract, seed=0, n_attacks=500)
    assert len(results) == 4
    for r in results:
        lo, hi = r.details["risk_ci_raw"]
        assert lo <= 0.0 <= hi, r.name  # the interval covers 0
    for r in results[:3]:
        assert abs(r.details["risk_raw"]) < 0.05, r.name
    # With predictable secrets (income: ~78% guessed right either way) 500 attacks leave a
    # wide interval; the singling-out and linkability gates pass.
    assert all(r.passed for r in results[:3])


@pytest.mark.statistical
def test_full_size_adult_copy_fails_every_gate(adult: pl.DataFrame, adult_contract: Contract) -> None:
    """The size the pipeline runs at: train 2/3, control 1/3 of Adult, 16k synthetic rows."""
    df = adult.select(adult_contract.modelled_columns)
    perm = np.random.default_rng(0).permutation(df.height)
    n_train = df.height * 2 // 3
    train, control = df[np.sort(perm[:n_train])], df[np.sort(perm[n_train:])]
    copied = train.sample(16_000, seed=1)  # half the training rows, verbatim
    results = anonymeter_checks(train, control, copied, adult_contract, seed=0)
    # the contract's evaluation settings: anonymeter_attacks targets for singling out and
    # linkability, inference_attacks for attribute inference, shared by the secret's strata
    # (income: two) and each stratum capped by its rows
    ev = adult_contract.evaluation
    assert [r.details["n_attacks"] for r in results[:3]] == [ev.anonymeter_attacks] * 3
    inference = results[3].details
    assert inference["n_attacks_requested"] == ev.inference_attacks and inference["strata"] == 2
    # each side attacks up to its quota per stratum, capped by its own rows of the stratum
    quota = ev.inference_attacks // 2
    rich_train, rich_control = ((side["income"] == ">50K").sum() for side in (train, control))  # the rarer class
    assert inference["n_attacks"] == quota + min(quota, rich_train)
    assert inference["n_control_attacks"] == quota + min(quota, rich_control) < inference["n_attacks"]
    assert not any(r.passed for r in results)


def test_more_main_targets_narrow_the_balanced_interval_at_the_same_rates() -> None:
    """Train is the larger side: attacking twice as many of its targets per class (same per-class
    rates) keeps the risk and narrows its interval; one class reduces to the plain risk."""
    equal = balanced_attack_risk(np.array([270, 150]), np.array([270, 150]), np.array([300, 300]))
    more = balanced_attack_risk(
        np.array([540, 300]), np.array([270, 150]), np.array([600, 600]), control_targets=np.array([300, 300])
    )
    assert more.risk == pytest.approx(equal.risk, abs=1e-12) and more.control_rate == pytest.approx(equal.control_rate)
    assert more.ci[1] < equal.ci[1] - 0.01 and more.ci[0] > equal.ci[0] + 0.01
    assert (more.n_main, more.n_control) == (1200, 600)
    one = balanced_attack_risk(np.array([90]), np.array([40]), np.array([200]), control_targets=np.array([100]))
    assert one == attack_risk(90, 200, 40, 100)
    with pytest.raises(ValueError, match="as many classes on both sides"):
        balanced_attack_risk(np.array([1, 1]), np.array([1]), np.array([2, 2]), control_targets=np.array([2]))


def test_power_floor_keeps_the_main_to_control_ratio_and_its_row_advice_holds() -> None:
    """No leak with twice the main attacks: the floor is the bound observed, lower than with equal
    sides, and the advised control size (main kept at twice) clears the gate."""
    est = attack_risk(1800, 2000, 900, 1000)
    floor, need = _power_floor(est, max_risk=0.10, confidence=0.95)
    assert floor == pytest.approx(est.ci[1], abs=1e-9)
    assert floor < _power_floor(attack_risk(900, 1000, 900, 1000), max_risk=0.10, confidence=0.95)[0]
    assert need is not None and need > 1000
    at_need = attack_risk(int(0.9 * 2 * need), 2 * need, int(0.9 * need), need)
    assert at_need.ci[1] <= 0.10 + 1e-3
    below = attack_risk(int(0.9 * 2 * (need - 200)), 2 * (need - 200), int(0.9 * (need - 200)), need - 200)
    assert below.ci[1] > 0.10  # and it is the smallest such size, to within the rounding


def test_a_row_limited_risk_is_inconclusive_and_its_note_names_the_size_that_would_do() -> None:
    """No leak (same rates, 23%) at 150 control attacks with twice the main: the bound is past 0.10 only
    for want of attacks; the result says inconclusive, and its note gives min_rows_to_pass."""
    est = attack_risk(70, 300, 35, 150)
    r = _result("singling_out_risk_multivariate", "", est, max_risk=0.10, confidence=0.95, details={})
    need = r.details["min_rows_to_pass"]
    assert r.outcome == "inconclusive" and need > 150
    assert (
        "limited by rows, not evidence of a leak" in r.details["note"]
        and f"about {need:,} control attacks" in r.details["note"]
    )
    predictable = _result(
        "inference_risk[s]", "", attack_risk(900, 1000, 900, 1000), max_risk=0.10, confidence=0.95, details={}
    )
    assert predictable.outcome == "inconclusive"
    assert (
        f"about {predictable.details['min_rows_to_pass']:,}" in predictable.details["note"]
        and "90%" in predictable.details["note"]
    )


def test_a_row_limited_singling_out_names_rows_per_side() -> None:
    """Predicates capped by the rows (150 from a 464-row table): the size that would do is in rows
    per side, the control attacks needed scaled by rows per predicate."""
    est = attack_risk(70, 300, 35, 150)
    details = {"train_rows": 930, "control_rows": 464, "n_attacks_capped": "only 150 predicates"}
    in_attacks = _result("s", "", est, max_risk=0.10, confidence=0.95, details=details)
    in_rows = _result("s", "", est, max_risk=0.10, confidence=0.95, details=details, per_rows=True)
    attacks, rows = in_attacks.details["min_rows_to_pass"], in_rows.details["min_rows_to_pass"]
    assert rows == math.ceil(attacks * 464 / 150) and "rows per side" in in_rows.details["note"]
    assert in_rows.outcome == in_attacks.outcome == "inconclusive" and in_rows.ci == in_attacks.ci


def test_an_interval_holding_no_leak_and_the_gate_names_the_rows_for_95pct_power() -> None:
    """The floor is under the gate (a no-leak table passes more often than not) but this interval
    holds both 0 and the gate: inconclusive, and the note gives the size at which a no-leak table
    would pass 95% of the time; at that size the no-leak floor is the gate times z / (z + z_0.95)."""
    est = attack_risk(160, 600, 70, 300)  # main a little ahead of control by chance
    r = _result("s", "", est, max_risk=0.10, confidence=0.95, details={})
    assert r.outcome == "inconclusive" and r.power_floor < 0.10 < r.ci[1] and r.ci[0] == 0.0
    need = r.details["rows_for_95pct_power"]
    assert need > 300 and 0.5 < r.details["no_leak_pass_chance"] < 0.95
    assert f"about {need:,} control attacks" in r.details["note"]
    c = est.control_rate
    at = attack_risk(round(c * 2 * need), 2 * need, round(c * need), need)
    assert at.ci[1] <= 0.10 * 1.959964 / (1.959964 + 1.644854) + 2e-3
