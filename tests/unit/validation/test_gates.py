"""Gates: the budget and contract gates, and run_checks end to end on small frames."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.gates import budget_result, contract_public_result, run_checks
from synthgate.validation.results import decide_release

from .test_privacy import adult_split

COLUMNS = {
    "age": {"kind": "integer", "min": 17, "max": 90},
    "hours": {"kind": "continuous", "min": 1.0, "max": 99.0, "nullable": True},
    "job": {"kind": "categorical", "categories": ["a", "b", "c"], "nullable": True},
    "remote": {"kind": "boolean"},
    "income": {"kind": "categorical", "categories": ["low", "high"]},
    "person_id": {"kind": "identifier"},
}


def small_contract(**overrides: object) -> Contract:
    data: dict[str, object] = {
        "table": "people",
        "target": "income",
        "columns": COLUMNS,
        "privacy": {"epsilon": 2.0, "delta": 1e-6},
    }
    data.update(overrides)
    return parse_contract(data)


def small_frame(n: int, seed: int) -> pl.DataFrame:
    """Rows over the modelled columns, with a learnable target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 91, size=n)
    hours = np.round(rng.uniform(1, 99, size=n), 1)
    job = rng.choice(["a", "b", "c"], size=n)
    high = (age > 45) ^ (rng.random(n) < 0.1)
    return pl.DataFrame(
        {
            "age": age.astype(np.int64),
            "hours": [None if i % 17 == 0 else float(h) for i, h in enumerate(hours)],
            "job": [None if i % 13 == 0 else j for i, j in enumerate(job)],
            "remote": rng.random(n) < 0.3,
            "income": np.where(high, "high", "low"),
        }
    )


def test_budget_gate() -> None:
    ok = budget_result(2.5, 3.0)
    assert (ok.passed, ok.kind, ok.direction, ok.threshold) == (True, "budget", "max", 3.0)
    assert ok.margin == pytest.approx(0.5)
    assert budget_result(3.0, 3.0).passed
    over = budget_result(3.2, 3.0)
    assert not over.passed and over.margin == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="epsilon_spent"):
        budget_result(float("nan"), 3.0)
    with pytest.raises(ValueError, match="privacy.epsilon"):
        budget_result(1.0, 0.0)


def test_contract_gate_names_data_derived_columns() -> None:
    assert contract_public_result(small_contract()).passed
    columns = {**COLUMNS, "age": {**COLUMNS["age"], "from_data": True}}
    r = contract_public_result(small_contract(columns=columns))
    assert not r.passed
    assert (r.value, r.threshold, r.kind) == (1.0, 0.0, "contract")
    assert r.details["data_derived_columns"] == ["age"]
    assert r.description.endswith("Read off the data here: age.")
    assert decide_release([r]).reasons[0].startswith("contract_is_public")


def test_run_checks_runs_every_check_with_a_description() -> None:
    contract = small_contract()
    train, holdout, synthetic = small_frame(400, 1), small_frame(200, 2), small_frame(300, 3)
    results = run_checks(train, holdout, synthetic, contract, epsilon_spent=1.5, seed=0)
    names = [r.name for r in results]
    assert names == [
        "identical_match_share",
        "dcr_share",
        "near_copy_share",
        "nndr",
        "dcr_share_worst_subset",
        "singling_out_risk_univariate",
        "singling_out_risk_multivariate",
        "linkability_risk",
        "inference_risk[income]",
        "mia_auc",
        "mia_tpr_at_1pct_fpr",
        "column_shapes",
        "pair_trends",
        "three_way_marginals",
        "detection_auc",
        "ml_efficacy",
        "privacy_budget",
        "contract_is_public",
    ]
    assert all(r.description.endswith(".") for r in results)
    # Every check is a gate except NNDR (reported) and, with fewer than 500 non-members, TPR@1%FPR.
    assert {r.name for r in results if not r.is_gate} == {"nndr", "mia_tpr_at_1pct_fpr"}
    kinds = [r.kind for r in results]
    assert kinds == ["privacy"] * 11 + ["fidelity"] * 5 + ["budget", "contract"]
    # A fresh sample from the same process: no copies beyond chance, DCR share near 0.5
    # (300 rows are too few for the interval's upper end to clear 0.55).
    by_name = dict(zip(names, results, strict=True))
    assert by_name["identical_match_share"].passed
    assert abs(by_name["dcr_share"].value - 0.5) < 0.1
    assert abs(by_name["mia_auc"].value - 0.5) < 0.1
    again = run_checks(train, holdout, synthetic, contract, epsilon_spent=1.5, seed=0)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in results]


def test_run_checks_blocks_a_copy_of_train() -> None:
    contract = small_contract()
    train, holdout = small_frame(400, 1), small_frame(200, 2)
    results = run_checks(train, holdout, train, contract, epsilon_spent=1.5, seed=0)
    decision = decide_release(results)
    assert not decision.released
    failed = {r.name for r in results if not r.passed}
    assert {"identical_match_share", "dcr_share", "near_copy_share", "mia_auc", "linkability_risk"} <= failed


def test_run_checks_without_target_skips_ml_efficacy() -> None:
    contract = small_contract(target=None)
    frame = small_frame(100, 1)
    results = run_checks(frame, small_frame(50, 2), small_frame(50, 3), contract, epsilon_spent=0.5, seed=1)
    names = [r.name for r in results]
    assert "ml_efficacy" not in names


@pytest.mark.statistical
def test_run_checks_on_adult_at_demo_size() -> None:
    """32k train / 16k holdout / 16k synthetic (the demo's sizes): every check runs and returns
    one result each. How long it takes is measured by `make bench-scale`, not asserted here."""
    contract, train, holdout = adult_split()
    rng = np.random.default_rng(5)
    synthetic = pl.DataFrame({c: train[c].gather(rng.integers(0, train.height, size=16_000)) for c in train.columns})
    results = run_checks(train, holdout, synthetic, contract, epsilon_spent=2.0, seed=0)
    names = [r.name for r in results]
    assert len(names) == len(set(names)), names  # one result per check
    for group in (
        "identical_match_share",
        "dcr_share",
        "mia_auc",
        "column_shapes",
        "pair_trends",
        "ml_efficacy",
        "privacy_budget",
    ):
        assert group in names, (group, names)
    assert all(isinstance(r.passed, bool) for r in results)
    # each "synthetic" column is resampled on its own (independent marginals): the label's
    # relationships are gone, so train-on-synthetic must fail its gate while the shapes pass
    by_name = {r.name: r for r in results}
    assert not by_name["ml_efficacy"].passed
    assert by_name["column_shapes"].passed
