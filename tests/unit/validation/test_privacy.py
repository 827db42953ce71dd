"""Privacy metrics: hand-computable cases, then oracles on the Adult demo table."""

from __future__ import annotations

import datetime as dt
import functools
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

from synthgate.validation.contract import Contract, load_contract, parse_contract
from synthgate.validation.encoding import encode_for_distance
from synthgate.validation.privacy import (
    _near_weights,
    dcr_share,
    dcr_share_subsets,
    distance_checks,
    identical_match_share,
    near_copy_share,
    nndr,
)
from synthgate.validation.results import decide_release
from synthgate.validation.stats import paired_difference_ci

ROOT = Path(__file__).resolve().parents[3]
ADULT = ROOT / "flows" / "demo" / "adult.parquet"
ADULT_CONTRACT = ROOT / "flows" / "demo" / "adult.contract.yaml"


@functools.lru_cache(maxsize=1)
def adult_split(seed: int = 0) -> tuple[Contract, pl.DataFrame, pl.DataFrame]:
    """(contract, train, holdout): the demo table, '?' read as null, split 2/3 : 1/3 (seeded)."""
    contract = load_contract(ADULT_CONTRACT)
    df = pl.read_parquet(ADULT).select(contract.modelled_columns)
    text = [c for c, t in df.schema.items() if t == pl.Utf8]
    df = df.with_columns(
        pl.when(pl.col(c).is_in(contract.missing_values)).then(None).otherwise(pl.col(c)).alias(c) for c in text
    )
    perm = np.random.default_rng(seed).permutation(df.height)
    n_train = df.height * 2 // 3
    return contract, df[np.sort(perm[:n_train])], df[np.sort(perm[n_train:])]


def _contract(columns: dict[str, dict[str, object]], **extra: object) -> Contract:
    return parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}, **extra})


@pytest.fixture
def mixed() -> Contract:
    return _contract(
        {
            "age": {"kind": "integer", "min": 0, "max": 10},
            "color": {"kind": "categorical", "categories": ["red", "blue"], "nullable": True},
            "flag": {"kind": "boolean"},
            "score": {"kind": "continuous", "min": -1.0, "max": 1.0, "nullable": True},
        }
    )


def _mixed_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"age": pl.Int64, "color": pl.Utf8, "flag": pl.Boolean, "score": pl.Float64},
        orient="row",
    )


def _sqdist(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).sum())


# --- encode_for_distance ---------------------------------------------------------------------


def test_encoding_layout_is_fixed_by_the_contract(mixed: Contract) -> None:
    x = encode_for_distance(_mixed_frame([(3, "blue", True, 0.5), (None, None, None, None)]), mixed)
    s = 1 / math.sqrt(2)
    # age: value, null flag | color: red, blue, null, other | flag: F, T, null | score, null flag
    expected = np.array(
        [
            [0.3, 0, 0, s, 0, 0, 0, s, 0, 0.75, 0],
            [0.5, 1, 0, 0, s, 0, 0, 0, s, 0.5, 1],
        ],
        dtype=np.float32,
    )
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)


def test_distance_is_range_scaled_numeric_plus_category_mismatches(mixed: Contract) -> None:
    x = encode_for_distance(
        _mixed_frame([(2, "red", True, 0.0), (5, "red", True, 0.0), (2, "blue", False, 0.0)]),
        mixed,
    )
    assert _sqdist(x[0], x[1]) == pytest.approx(0.3**2, abs=1e-6)  # |Δage| / range = 3 / 10
    assert _sqdist(x[0], x[2]) == pytest.approx(2.0, abs=1e-6)  # two categorical mismatches


def test_null_is_its_own_category_and_a_null_number_is_at_least_one_away(mixed: Contract) -> None:
    x = encode_for_distance(
        _mixed_frame(
            [
                (0, "red", True, None),
                (0, None, True, None),
                (0, "red", True, 1.0),
                (0, "red", True, 0.0),
            ]
        ),
        mixed,
    )
    assert _sqdist(x[0], x[1]) == pytest.approx(1.0, abs=1e-6)  # red vs null
    assert 1.0 - 1e-6 <= _sqdist(x[0], x[2]) <= 1.25 + 1e-6  # null vs the range's end
    assert _sqdist(x[0], x[3]) == pytest.approx(1.0, abs=1e-6)  # null vs the range's middle


def test_datetimes_are_epoch_seconds_scaled_by_the_contract_range() -> None:
    contract = _contract({"t": {"kind": "datetime", "min": "2020-01-01T00:00:00", "max": "2020-01-11T00:00:00"}})
    df = pl.DataFrame({"t": [dt.datetime(2020, 1, 6), dt.datetime(2020, 1, 1, 12)]})
    np.testing.assert_allclose(encode_for_distance(df, contract)[:, 0], [0.5, 0.05], atol=1e-6)


def test_out_of_domain_category_is_encoded_without_error(mixed: Contract) -> None:
    x = encode_for_distance(_mixed_frame([(0, "green", True, 0.0), (0, "red", True, 0.0)]), mixed)
    assert _sqdist(x[0], x[1]) == pytest.approx(1.0, abs=1e-6)


def test_encoding_rejects_unmodelled_columns_without_quoting_values(mixed: Contract) -> None:
    df = _mixed_frame([(1, "red", True, 0.0)]).with_columns(pl.lit("alice@example.org").alias("email"))
    with pytest.raises(ValueError, match="exactly the contract's modelled columns") as err:
        encode_for_distance(df, mixed)
    assert "alice" not in str(err.value)


# --- identical_match_share -------------------------------------------------------------------


def test_identical_match_share_by_hand(mixed: Contract) -> None:
    train = _mixed_frame([(1, "red", True, 0.0), (2, None, False, None)])
    holdout = _mixed_frame([(3, "blue", True, 0.5), (4, "red", False, 0.5)])
    synthetic = _mixed_frame(
        [
            (1, "red", True, 0.0),  # copies train row 0
            (2, None, False, None),  # copies train row 1 (nulls match nulls)
            (3, "blue", True, 0.5),  # copies holdout row 0
            (9, "red", True, 0.0),  # new
        ]
    )
    r = identical_match_share(synthetic, train, holdout, contract=mixed, seed=0)
    assert r.value == pytest.approx(0.5)
    assert r.details["holdout_share"] == pytest.approx(0.25)
    assert r.threshold == pytest.approx(0.25 + 0.01)
    assert not r.passed
    assert (r.kind, r.direction) == ("privacy", "max")


def test_identical_match_share_subsamples_to_equal_sizes(mixed: Contract) -> None:
    train = _mixed_frame([(i, "red", True, 0.0) for i in range(10)])
    holdout = _mixed_frame([(i, "blue", True, 0.0) for i in range(4)])
    synthetic = train
    r = identical_match_share(synthetic, train, holdout, contract=mixed, seed=3)
    assert r.details["reference_rows_each"] == 4
    assert r.value == pytest.approx(0.4)  # 4 of the 10 copies fall in the 4-row subsample
    assert r.details["train_share_all_rows"] == pytest.approx(1.0)
    again = identical_match_share(synthetic, train, holdout, contract=mixed, seed=3)
    assert again == r


def test_identical_match_share_works_without_a_contract() -> None:
    a = pl.DataFrame({"x": [1, 2]})
    r = identical_match_share(a, a, pl.DataFrame({"x": [3, 4]}), tolerance=0.5)
    assert (r.value, r.details["holdout_share"], r.passed) == (1.0, 0.0, False)


def test_identical_matches_by_chance_on_a_low_entropy_table_are_inconclusive() -> None:
    """Fresh rows of a table of few distinct rows: which rare rows land in the train or the holdout half
    moves the two shares apart by chance. A split where the plain gate fails is ``inconclusive`` (the
    permutation spread covers the excess), not a ``fail``."""
    from synthgate.validation.privacy import _exact_match_excess_null

    rng = np.random.default_rng(5)

    # 3 binary columns and a 0-9 count with a skewed law: ~40 distinct rows, many rare ones
    def draw(n: int) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "a": rng.integers(0, 2, n),
                "b": rng.integers(0, 2, n),
                "c": (rng.random(n) < 0.1).astype(np.int64),
                "k": np.minimum(rng.geometric(0.35, n) - 1, 9),
            }
        )

    outcomes = []
    for _ in range(40):
        train, holdout, fresh = draw(600), draw(600), draw(600)
        r = identical_match_share(fresh, train, holdout, tolerance=0.01, seed=int(rng.integers(1 << 30)))
        lo, hi = r.details["no_leak_excess_95"]
        assert lo < 0 < hi and r.ideal == r.details["holdout_share"]
        outcomes.append(r.outcome)
    assert "pass" in outcomes and "fail" not in outcomes
    assert "inconclusive" in outcomes  # the plain gate would have blocked these
    # (on ~40 distinct rows a copy of the training rows matches the holdout as often: no evidence either;
    # a copy of Adult's stays a fail, test_oracle_copy_of_train_is_blocked)
    # the null's halvings are draws of the same statistic: its spread is centred on 0
    null = _exact_match_excess_null(fresh, train, holdout, np.random.default_rng(0), 400)
    assert abs(null.mean()) < 0.25 * null.std()


# --- dcr_share -------------------------------------------------------------------------------


@pytest.fixture
def one_number() -> Contract:
    return _contract({"x": {"kind": "integer", "min": 0, "max": 10}})


def _x(values: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"x": values}, schema={"x": pl.Int64})


@pytest.mark.parametrize("balance", ["reweight", "subsample"])
def test_dcr_share_by_hand(one_number: Contract, balance: str) -> None:
    # synthetic 1: train 0.1 vs holdout 0.5 -> train; 2: 0.2 vs 0.4 -> train;
    # 5: 0.1 vs 0.1 -> tie (one each side: half); 9: 0.5 vs 0.1 -> holdout.  (1+1+½+0)/4
    r = dcr_share(_x([1, 2, 5, 9]), _x([0, 4]), _x([6, 10]), one_number, seed=0, balance=balance)
    assert r.value == pytest.approx(0.625)
    assert r.details["chance_share"] == pytest.approx(0.5)
    counts = (r.details["closer_to_train"], r.details["closer_to_holdout"], r.details["ties"])
    assert counts == (2, 1, 1)
    assert r.details["median_dcr_train"] == pytest.approx(0.15, abs=1e-6)
    assert r.details["median_dcr_holdout"] == pytest.approx(0.25, abs=1e-6)
    ci = binomtest(3, 4).proportion_ci(confidence_level=0.95, method="wilson")  # 2.5 rounded up
    assert r.ci == pytest.approx((ci.low, ci.high))
    # dcr_share blocks on evidence (lower end past 0.55): 4 rows show none
    assert r.gated_value == r.ci[0]
    assert r.passed
    # ... and the burden of showing that no record was copied is near_copy_share's: 4 rows cannot
    copies = near_copy_share(_x([1, 2, 5, 9]), _x([0, 4]), _x([6, 10]), one_number, seed=0, balance=balance)
    assert not copies.passed and copies.outcome == "inconclusive"


def test_dcr_share_splits_ties_by_neighbour_counts_and_corrects_for_sizes(
    one_number: Contract,
) -> None:
    # 5 is 0.1 from train rows 4 and 6 and from holdout row 4: 2 of 3 tied neighbours are
    # train rows (raw share 2/3). With train twice the holdout, chance is 2/3 too: 0.5.
    r = dcr_share(_x([5]), _x([4, 6]), _x([4]), one_number, seed=0)
    assert r.details["raw_share"] == pytest.approx(2 / 3)
    assert r.details["chance_share"] == pytest.approx(2 / 3)
    assert r.value == pytest.approx(0.5)


def test_dcr_share_is_one_half_for_exchangeable_rows_with_heavy_ties() -> None:
    contract = _contract({"c": {"kind": "categorical", "categories": ["a", "b", "c"]}})
    rng = np.random.default_rng(7)

    def draw(n: int) -> pl.DataFrame:
        return pl.DataFrame({"c": rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])})

    r = dcr_share(draw(300), draw(600), draw(300), contract, seed=0)
    assert r.details["ties"] == 300  # every synthetic row has exact copies on both sides
    assert abs(r.value - 0.5) < 0.05  # seeded; size-corrected share of tied neighbours


def test_dcr_share_caps_the_synthetic_rows(one_number: Contract) -> None:
    synthetic = _x(list(range(11)) * 10)
    r = dcr_share(synthetic, _x([0, 5]), _x([2, 8]), one_number, seed=1, max_synthetic_rows=7)
    assert r.details["synthetic_rows_used"] == 7
    assert r.details["synthetic_rows_total"] == 110
    assert r.details["synthetic_row_cap"] == 7
    again = dcr_share(synthetic, _x([0, 5]), _x([2, 8]), one_number, seed=1, max_synthetic_rows=7)
    assert again == r


def test_dcr_share_rejects_bad_options(one_number: Contract) -> None:
    with pytest.raises(ValueError, match="max_synthetic_rows"):
        dcr_share(_x([1]), _x([1]), _x([1]), one_number, seed=0, max_synthetic_rows=0)
    with pytest.raises(ValueError, match="balance"):
        dcr_share(
            _x([1]),
            _x([1]),
            _x([1]),
            one_number,
            seed=0,
            balance="half",  # type: ignore[arg-type]
        )


# --- near_copy_share -------------------------------------------------------------------------


def test_paired_difference_interval_is_newcombes_method_10() -> None:
    # Newcombe (1998), Statistics in Medicine 17:2635, paired example a=36, b=12, c=2, d=0:
    # difference 0.2, method 10 interval 0.0569 to 0.3404 (published to 4 decimals).
    low, high = paired_difference_ci(36, 12, 2, 0, 0.95)
    assert (low, high) == pytest.approx((0.0569, 0.3404), abs=5e-5)
    # symmetric when the discordant counts are equal; empty discordance gives a zero-centred interval
    low, high = paired_difference_ci(10, 7, 7, 76, 0.95)
    assert low == pytest.approx(-high)
    assert paired_difference_ci(3, 0, 0, 0, 0.95)[0] < 0 < paired_difference_ci(3, 0, 0, 0, 0.95)[1]


def test_near_weights_give_real_rows_exactly_the_chance_share_under_ties() -> None:
    # 30% of the real rows sit at distance 0 (heavy ties): the radius is 0 and a row at it counts
    # 0.05 / 0.3 = 1/6, so the real rows' mean weight is exactly 5%.
    real = np.array([0.0] * 30 + [1.0] * 70)
    w, tau, part = _near_weights(real, real, 0.05)
    assert tau == 0.0 and part == pytest.approx(1 / 6)
    assert w.mean() == pytest.approx(0.05)
    # no ties: the radius is the 5% quantile and rows inside it count whole
    real = np.arange(1, 101, dtype=float)
    w, tau, part = _near_weights(np.array([0.5, 5.0, 6.0]), real, 0.05)
    assert tau == 5.0 and part == 1.0 and list(w) == [1.0, 1.0, 0.0]


def test_near_copy_share_by_hand(one_number: Contract) -> None:
    # holdout 6, 10 lie 0.2 and 0.6 from train {0, 4}; train 0, 4 lie 0.6 and 0.2 from holdout
    # {6, 10}: both radii are 0.2, where half the real rows sit, so a row at 0.2 counts 0.05/0.5.
    # synthetic 1: d_train 0.1 (near), d_holdout 0.5; 2: 0.2 (at: 0.1), 0.4; 5: 0.1, 0.1 (near
    # both); 9: 0.5, 0.1 (near holdout). Near train 2.1/4, near holdout 2/4: 0.5 + 0.1/4/2.
    r = near_copy_share(_x([1, 2, 5, 9]), _x([0, 4]), _x([6, 10]), one_number, seed=0)
    assert r.details["radius_train"] == pytest.approx(0.2, abs=1e-6)
    assert r.details["radius_holdout"] == pytest.approx(0.2, abs=1e-6)
    assert r.details["tie_weight_train"] == pytest.approx(0.1)
    assert r.details["near_train_share"] == pytest.approx(2.1 / 4)
    assert r.details["near_holdout_share"] == pytest.approx(2 / 4)
    assert r.value == pytest.approx(0.5 + 0.025 / 2)
    low, high = paired_difference_ci(1.0, 1.1, 1.0, 0.9, 0.95)
    assert r.ci == pytest.approx((0.5 + low / 2, 0.5 + high / 2))
    assert r.gated_value == r.ci[1] and r.threshold == one_number.gates.max_dcr_share
    assert (r.name, r.kind, r.direction, r.ideal) == ("near_copy_share", "privacy", "max", 0.5)
    assert r.outcome == "inconclusive" and r.details["min_rows_to_pass"] > 4


def test_near_copy_share_is_one_half_for_exchangeable_rows_with_heavy_ties() -> None:
    contract = _contract({"c": {"kind": "categorical", "categories": ["a", "b", "c"]}})
    rng = np.random.default_rng(7)

    def draw(n: int) -> pl.DataFrame:
        return pl.DataFrame({"c": rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])})

    r = near_copy_share(draw(300), draw(600), draw(300), contract, seed=0)
    # every row has an exact copy on both sides: all near both, none beyond chance
    assert r.details["near_train_share"] == r.details["near_holdout_share"]
    assert r.value == pytest.approx(0.5) and r.passed


@pytest.mark.statistical
def test_oracle_near_copies_block_where_the_dcr_share_does_not() -> None:
    """10% of the synthetic rows are training rows, the rest fresh real rows: the DCR share sits
    at its threshold without evidence past it (passes), the near-copy share blocks with evidence.
    Fresh rows alone pass both; a copy of train fails both. Measured at seed 0 (train 2x holdout):
    10% copies DCR 0.526 [0.509, 0.543], near copies 0.548 [0.542, 0.555]; fresh rows near copies
    0.5005 [0.496, 0.505]; a copy of train 0.975 [0.971, 0.978]."""
    contract, train, holdout = adult_split()
    tr, ho, fresh = train[:8000], holdout[:4000], holdout[4000:8000]
    mixed = pl.concat([tr[:400], fresh[400:]])
    kw = {"seed": 0, "max_synthetic_rows": 4000}
    copies = near_copy_share(mixed, tr, ho, contract, **kw)
    assert copies.outcome == "fail" and copies.ci[0] > 0.5
    assert abs(copies.details["excess_near_train_share"] - 0.1 * 0.95) < 0.02  # 10% copied, 5% near by chance
    assert dcr_share(mixed, tr, ho, contract, **kw).passed
    clean = near_copy_share(fresh, tr, ho, contract, **kw)
    assert clean.passed and abs(clean.value - 0.5) < 0.01
    assert abs(clean.details["near_train_share"] - 0.05) < 0.015
    assert abs(clean.details["near_holdout_share"] - 0.05) < 0.015
    whole = near_copy_share(tr[:4000], tr, ho, contract, **kw)
    assert whole.value > 0.9 and whole.outcome == "fail"


# --- nndr ------------------------------------------------------------------------------------


@pytest.fixture
def percent() -> Contract:
    return _contract({"x": {"kind": "integer", "min": 0, "max": 100}})


def test_nndr_by_hand(percent: Contract) -> None:
    # Train ratios d1/d2: 2 -> 2/8 = 0.25; 20 -> 10/10 = 1; 55 -> 25/45 = 5/9.
    # Holdout ratios: 2 -> 48/58 = 24/29; 20 -> 30/40 = 0.75; 55 -> 5/5 = 1.
    r = nndr(_x([2, 20, 55]), _x([0, 10, 30]), _x([50, 60, 100]), percent, seed=0)
    train_sorted = [0.25, 5 / 9, 1.0]
    p5 = 0.25 + 0.1 * (5 / 9 - 0.25)  # linear interpolation at rank 0.05 * (3 - 1)
    assert r.value == pytest.approx(p5, abs=1e-5)
    assert r.value == pytest.approx(np.percentile(train_sorted, 5), abs=1e-5)
    assert r.details["train_p5"] == r.value
    assert r.details["train_median"] == pytest.approx(5 / 9, abs=1e-5)
    assert r.details["holdout_median"] == pytest.approx(24 / 29, abs=1e-5)
    holdout_p5 = 0.75 + 0.1 * (24 / 29 - 0.75)
    assert r.details["holdout_p5"] == pytest.approx(holdout_p5, abs=1e-5)
    assert r.details["share_train_below_holdout_p5"] == pytest.approx(2 / 3)  # 0.25 and 5/9
    assert (r.details["synthetic_rows_used"], r.details["reference_rows_each"]) == (3, 3)
    assert (r.threshold, r.passed, r.kind, r.is_gate) == (None, True, "privacy", False)
    assert r.description


def test_nndr_exact_copy_is_zero_and_zero_over_zero_is_one(percent: Contract) -> None:
    # 0 sits on two identical train rows (0/0 -> 1); 40 copies a unique train row (0/10 -> 0).
    # Against the holdout: 0 -> 10/20 = 0.5; 40 -> 20/30 = 2/3.
    r = nndr(_x([0, 40]), _x([0, 0, 40, 50]), _x([10, 20, 70, 90]), percent, seed=0)
    assert r.details["train_median"] == pytest.approx(0.5, abs=1e-6)  # mean of 0 and 1
    assert r.value == pytest.approx(0.05, abs=1e-6)  # 5th percentile of {0, 1}
    assert r.details["holdout_median"] == pytest.approx((0.5 + 2 / 3) / 2, abs=1e-5)
    assert (r.details["exact_copies_train"], r.details["exact_copies_holdout"]) == (2, 0)


def test_nndr_subsamples_the_larger_reference(percent: Contract) -> None:
    train = _x(list(range(0, 100, 10)))
    r = nndr(_x([5, 33, 71]), train, _x([1, 2, 3, 4]), percent, seed=2)
    assert r.details["reference_rows_each"] == 4
    assert nndr(_x([5, 33, 71]), train, _x([1, 2, 3, 4]), percent, seed=2) == r
    with pytest.raises(ValueError, match="at least 2 rows"):
        nndr(_x([5]), train, _x([1]), percent, seed=0)


# --- dcr_share_subsets -----------------------------------------------------------------------


def test_worst_subset_by_hand() -> None:
    contract = _contract({"x": {"kind": "integer", "min": 0, "max": 10}, "y": {"kind": "integer", "min": 0, "max": 10}})

    def xy(rows: list[tuple[int, int]]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema={"x": pl.Int64, "y": pl.Int64}, orient="row")

    synthetic, train, holdout = xy([(0, 10)]), xy([(0, 0), (4, 4)]), xy([(6, 6), (10, 10)])
    # All columns: train (4, 4) and holdout (6, 6) are both sqrt(0.4² + 0.6²) away: a tie, ½.
    full = dcr_share(synthetic, train, holdout, contract, seed=0)
    assert full.value == pytest.approx(0.5)
    # x alone copies train (0 vs 0.6: closer to train); y alone copies holdout (0.6 vs 0).
    r = dcr_share_subsets(synthetic, train, holdout, contract, seed=0, n_random=2, n_correlated=0)
    assert r.details["subset_size"] == 1
    by_columns = {tuple(s["columns"]): s["share"] for s in r.details["subsets"]}
    assert by_columns == {("x",): 1.0, ("y",): 0.0}
    assert r.details["worst_columns"] == ["x"]
    # the gate's interval is simultaneous over the 2 subsets (Bonferroni: 97.5% each); it blocks on
    # evidence, and one row is none (near_copy_share carries the burden of proof over whole rows)
    ci = binomtest(1, 1).proportion_ci(confidence_level=0.975, method="wilson")
    assert r.value == 1.0
    assert r.ci == pytest.approx((ci.low, ci.high))
    x_subset = next(sub for sub in r.details["subsets"] if sub["columns"] == ["x"])
    assert x_subset["ci"] == pytest.approx(list(binomtest(1, 1).proportion_ci(confidence_level=0.95, method="wilson")))
    assert r.gated_value == r.ci[0]
    assert r.threshold == contract.gates.max_dcr_share
    assert r.passed
    assert (r.name, r.kind, r.direction) == ("dcr_share_worst_subset", "privacy", "max")


def test_subsets_find_columns_copied_from_train() -> None:
    # a and b (b follows a) are copied together from training rows; c..f are fresh draws.
    cats = ["p", "q", "r", "s"]
    contract = _contract(
        {
            **{c: {"kind": "continuous", "min": 0.0, "max": 1.0} for c in "abcd"},
            **{c: {"kind": "categorical", "categories": cats} for c in "ef"},
        }
    )
    rng = np.random.default_rng(11)

    def draw(n: int) -> pl.DataFrame:
        a = rng.random(n)
        return pl.DataFrame(
            {
                "a": a,
                "b": np.clip(a + rng.normal(0, 0.05, n), 0, 1),
                "c": rng.random(n),
                "d": rng.random(n),
                "e": rng.choice(cats, n),
                "f": rng.choice(cats, n),
            }
        )

    train, holdout, fresh = draw(300), draw(300), draw(300)
    synthetic = fresh.with_columns(train.select("a", "b")[rng.permutation(300)])
    full = dcr_share(synthetic, train, holdout, contract, seed=0)
    r = dcr_share_subsets(synthetic, train, holdout, contract, seed=0)
    assert r.details["subset_size"] == 2  # a third of 6 columns
    assert r.details["worst_columns"] == ["a", "b"]
    assert r.details["worst_kind"] == "correlated"  # b follows a in the synthetic table too
    assert r.value > 0.95 and not r.passed
    assert 0.4 < full.value < 0.65  # over all columns the copies hardly show
    kinds = [s["kind"] for s in r.details["subsets"]]
    assert kinds.count("correlated") == 3 and kinds.count("random") == 3
    subsets = {tuple(s["columns"]) for s in r.details["subsets"]}
    assert len(subsets) == 6  # all distinct
    for s in r.details["subsets"]:  # names and aggregates only
        assert set(s["columns"]) <= set(contract.modelled_columns)
        assert s["ci"][0] <= s["share"] <= s["ci"][1]
    assert max(s["simultaneous_ci"][0] for s in r.details["subsets"]) == r.gated_value


def test_correlated_subsets_follow_the_synthetic_table() -> None:
    # c and d go together in the real tables, a and b in the synthetic one: the correlated
    # subset is read off the synthetic table, never off the private rows.
    contract = _contract({c: {"kind": "continuous", "min": 0.0, "max": 1.0} for c in "abcd"})
    rng = np.random.default_rng(3)

    def draw(n: int, together: str) -> pl.DataFrame:
        cols = {c: rng.random(n) for c in "abcd"}
        cols[together[1]] = cols[together[0]]
        return pl.DataFrame(cols)

    real, holdout, synthetic = draw(200, "cd"), draw(200, "cd"), draw(200, "ab")
    r = dcr_share_subsets(synthetic, real, holdout, contract, seed=0, n_random=0, n_correlated=1, subset_size=2)
    [subset] = r.details["subsets"]
    assert (subset["kind"], subset["columns"]) == ("correlated", ["a", "b"])
    assert subset["mean_association"] == pytest.approx(1.0)  # b equals a: V = 1 on decile bins


def test_cramers_v_of_all_pairs_equals_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The association of the correlated subsets is computed for blocks of columns at once (one
    # matrix product of one-hot counts); it must equal scipy's Cramér's V pair by pair, also
    # when the blocks are cut small and a column alone overflows one.
    from itertools import combinations

    from scipy.stats.contingency import association

    import synthgate.validation.stats as stats

    rng = np.random.default_rng(4)
    n, base = 400, rng.integers(0, 12, 400)
    codes = []
    for k in (1, 2, 3, 10, 40, 2, 7, 1):  # 1: a constant column (V = 0 with every other)
        c = (base * 5 + rng.integers(0, 3, n)) % k
        codes.append(np.unique(c, return_inverse=True)[1].ravel())
    levels = [int(c.max()) + 1 for c in codes]
    p = len(codes)
    want = np.zeros((p, p))
    for a, b in combinations(range(p), 2):
        if min(levels[a], levels[b]) > 1:
            table = np.bincount(codes[a] * levels[b] + codes[b], minlength=levels[a] * levels[b])
            want[a, b] = want[b, a] = association(table.reshape(levels[a], levels[b]), method="cramer")
    for block_levels in (1024, 7):  # 7: blocks of a few columns; the 36-level column alone
        monkeypatch.setattr(stats, "ASSOCIATION_BLOCK_LEVELS", block_levels)
        got = stats.cramers_v_matrix(codes, levels, list(range(p)), list(range(p)))
        np.fill_diagonal(got, 0.0)
        np.testing.assert_allclose(got, want, atol=1e-12)
        rows = stats.cramers_v_matrix(codes, levels, [4, 1], list(range(p)))  # rows x columns
        np.testing.assert_allclose(rows[:, [0, 2, 3]], want[[4, 1]][:, [0, 2, 3]], atol=1e-12)


def test_correlated_subsets_on_a_wide_table_measure_a_capped_number_of_pairs() -> None:
    # 300 columns: 44,850 pairs. The anchors come from every pair of 256 seeded candidates, each
    # anchor's partners from all columns; a block of 30 columns copied together from training
    # rows (each a noisy copy of one hidden column) is still the worst subset.
    p, block = 300, 30
    contract = _contract({f"x{i}": {"kind": "continuous", "min": -4.0, "max": 4.0} for i in range(p)})
    rng = np.random.default_rng(21)

    def draw(n: int, hidden: np.ndarray | None = None) -> pl.DataFrame:
        x = np.clip(rng.normal(0, 1, (n, p)), -4, 4)
        if hidden is not None:
            x[:, :block] = np.clip(hidden[:, None] + rng.normal(0, 0.1, (n, block)), -4, 4)
        return pl.DataFrame({f"x{i}": x[:, i] for i in range(p)})

    train, holdout = draw(120, rng.normal(0, 1, 120)), draw(120, rng.normal(0, 1, 120))
    synthetic = draw(120)
    synthetic = synthetic.with_columns(train.select(f"x{i}" for i in range(block)))  # copied block
    r = dcr_share_subsets(synthetic, train, holdout, contract, seed=0, n_random=1, n_correlated=3, subset_size=block)
    scope = r.details["association_scope"]
    assert scope["capped"] and scope["candidate_columns"] == 256 and scope["columns"] == p
    assert scope["pairs_total"] == p * (p - 1) // 2
    assert scope["pairs_measured"] <= 256 * 255 // 2 + 3 * (p - 1) < scope["pairs_total"]
    assert "256 seeded candidate columns (of 300)" in r.details["association"]
    correlated = [s for s in r.details["subsets"] if s["kind"] == "correlated"]
    assert len(correlated) == 3 and len({tuple(s["columns"]) for s in correlated}) == 3
    # the strongest anchor is in the block and takes the block as its partners
    assert set(correlated[0]["columns"]) == {f"x{i}" for i in range(block)}
    assert correlated[0]["mean_association"] > 0.5 > correlated[1]["mean_association"]
    assert r.details["worst_kind"] == "correlated" and r.details["worst_columns"] == correlated[0]["columns"]
    assert r.value > 0.9 and not r.passed
    # the same call again: the candidates are a seeded draw
    again = dcr_share_subsets(
        synthetic, train, holdout, contract, seed=0, n_random=1, n_correlated=3, subset_size=block
    )
    assert again.details["subsets"] == r.details["subsets"]


def test_a_subset_scores_like_the_table_cut_to_its_columns() -> None:
    # Subsets search distinct rows with multiplicities; with heavy ties that must give the
    # same share as dcr_share on a table holding only the subset's columns.
    c_cats, d_cats = ["a", "b", "c"], ["x", "y"]
    both = _contract(
        {
            "c": {"kind": "categorical", "categories": c_cats},
            "d": {"kind": "categorical", "categories": d_cats},
        }
    )
    rng = np.random.default_rng(5)

    def draw(n: int) -> pl.DataFrame:
        return pl.DataFrame({"c": rng.choice(c_cats, n, p=[0.6, 0.3, 0.1]), "d": rng.choice(d_cats, n)})

    synthetic, train, holdout = draw(200), draw(400), draw(200)
    r = dcr_share_subsets(synthetic, train, holdout, both, seed=0, n_random=2, n_correlated=0)
    for subset in r.details["subsets"]:
        [name] = subset["columns"]
        alone = _contract({name: both.columns[name].model_dump()})
        cut = [t.select(name) for t in (synthetic, train, holdout)]
        expected = dcr_share(*cut, alone, seed=0)
        assert subset["share"] == pytest.approx(expected.value, abs=1e-12)
        assert subset["ci"] == pytest.approx(list(expected.ci), abs=1e-12)
        assert subset["ties"] == expected.details["ties"] == 200


def test_subsets_of_a_single_column_table_are_the_column(one_number: Contract) -> None:
    args = (_x([1, 2, 5, 9]), _x([0, 4]), _x([6, 10]), one_number)
    r = dcr_share_subsets(*args, seed=0)
    assert [s["kind"] for s in r.details["subsets"]] == ["all"]
    assert r.value == pytest.approx(dcr_share(*args, seed=0).value)  # 0.625, as by hand


def test_subset_options_are_checked(mixed: Contract) -> None:
    df = _mixed_frame([(1, "red", True, 0.0), (2, "blue", False, 0.5)])
    with pytest.raises(ValueError, match=r"subset_size.*from 1 to 3"):
        dcr_share_subsets(df, df, df, mixed, seed=0, subset_size=4)
    with pytest.raises(ValueError, match="at least 1"):
        dcr_share_subsets(df, df, df, mixed, seed=0, n_random=0, n_correlated=0)
    with pytest.raises(ValueError, match="n_random"):
        dcr_share_subsets(df, df, df, mixed, seed=0, n_random=-1)
    with pytest.raises(ValueError, match="threshold"):
        dcr_share_subsets(df, df, df, mixed, seed=0, threshold=1.5)
    with pytest.raises(ValueError, match="max_synthetic_rows"):
        dcr_share_subsets(df, df, df, mixed, seed=0, max_synthetic_rows=0)


# --- distance_checks -------------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["reweight", "subsample"])
def test_distance_checks_match_the_single_checks(balance: str) -> None:
    contract, train, holdout = adult_split()
    tr, ho, syn = train[:900], holdout[:400], holdout[400:1000]
    kw = {"seed": 5, "balance": balance}
    dcr, copies, ratio, worst = distance_checks(
        syn, tr, ho, contract, max_synthetic_rows=500, subset_max_synthetic_rows=300, **kw
    )
    assert [r.name for r in (dcr, copies, ratio, worst)] == [
        "dcr_share",
        "near_copy_share",
        "nndr",
        "dcr_share_worst_subset",
    ]
    assert dcr == dcr_share(syn, tr, ho, contract, max_synthetic_rows=500, **kw)
    assert copies == near_copy_share(syn, tr, ho, contract, max_synthetic_rows=500, **kw)
    assert ratio == nndr(syn, tr, ho, contract, seed=5, max_synthetic_rows=500)
    assert worst == dcr_share_subsets(syn, tr, ho, contract, max_synthetic_rows=300, **kw)
    assert dcr.details["synthetic_rows_used"] == ratio.details["synthetic_rows_used"] == 500
    assert worst.details["synthetic_rows_used"] == 300
    assert ratio.details["reference_rows_each"] == 400
    expected_refs = (900, 400) if balance == "reweight" else (400, 400)
    assert (dcr.details["train_reference_rows"], dcr.details["holdout_reference_rows"]) == expected_refs
    # Fresh real rows: nothing stands out, whatever the columns (too few rows to pass a gate).
    assert abs(dcr.value - 0.5) < 0.05
    assert dcr.ci[0] < 0.5 < dcr.ci[1]
    assert worst.ci[0] < 0.5
    assert abs(ratio.details["share_train_below_holdout_p5"] - 0.05) < 0.04


def test_distance_checks_score_every_synthetic_row_by_default(one_number: Contract) -> None:
    synthetic = _x(list(range(11)) * 3)
    dcr, _, ratio, _ = distance_checks(synthetic, _x([0, 5, 9]), _x([2, 8]), one_number, seed=0)
    assert dcr.details["synthetic_rows_used"] == ratio.details["synthetic_rows_used"] == 33
    assert dcr.details["synthetic_row_cap"] is None
    alone = dcr_share(synthetic, _x([0, 5, 9]), _x([2, 8]), one_number, seed=0, max_synthetic_rows=None)
    assert dcr == alone


# --- oracles on Adult ------------------------------------------------------------------------


def test_oracle_copy_of_train_is_blocked() -> None:
    contract, train, holdout = adult_split()
    dcr = dcr_share(train, train, holdout, contract, seed=0, max_synthetic_rows=4000)
    identical = identical_match_share(train, train, holdout, contract=contract, seed=0)
    assert dcr.value > 0.9
    assert not dcr.passed
    assert not identical.passed
    assert identical.outcome == "fail"  # far past the no-leak spread of the excess
    assert identical.value > 0.4  # about half of train lies in the holdout-sized subsample
    decision = decide_release([dcr, identical])
    assert not decision.released
    assert any(r.startswith("dcr_share") for r in decision.reasons)
    assert any(r.startswith("identical_match_share") for r in decision.reasons)


def test_oracle_copy_of_train_is_diluted_but_blocked_with_subsampling() -> None:
    contract, train, holdout = adult_split()
    dcr = dcr_share(train, train, holdout, contract, seed=0, max_synthetic_rows=4000, balance="subsample")
    assert 0.7 < dcr.value < 0.8  # half the copies fall outside the holdout-sized subsample
    assert not dcr.passed


def test_oracle_fresh_real_sample_passes() -> None:
    contract, train, holdout = adult_split()
    half = holdout.height // 2
    plays_holdout, plays_synthetic = holdout[:half], holdout[half:]
    rng = np.random.default_rng(1)
    train_same_size = train[np.sort(rng.choice(train.height, size=half, replace=False))]
    for reference in (train_same_size, train):  # equal sizes, and 4x larger train
        dcr = dcr_share(plays_synthetic, reference, plays_holdout, contract, seed=0, max_synthetic_rows=4000)
        assert dcr.passed, dcr
        assert abs(dcr.value - 0.5) < 0.03
    identical = identical_match_share(plays_synthetic, train_same_size, plays_holdout, contract=contract, seed=0)
    assert identical.passed
    assert decide_release([dcr, identical]).released
