"""Shadow models train as the release did: at its batch when one was set, else on ctgan's default
schedule (models/schedule.py), which has no batch size to scale (``batch_size=None``)."""

from __future__ import annotations

import polars as pl

from synthgate.tasks.evaluate import plan_shadow_attack
from synthgate.validation.contract import Contract


def test_shadow_plan_follows_the_release_schedule(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    train, holdout = df[:800], df[800:]
    assert adult_contract.evaluation.shadow_models > 0
    scheduled = plan_shadow_attack.fn(train, holdout, adult_contract, n_synthetic=800, batch_size=None, seed=0)
    assert (
        scheduled is not None
        and scheduled.batch_size is None
        and len(scheduled) == adult_contract.evaluation.shadow_models
    )
    fixed = plan_shadow_attack.fn(train, holdout, adult_contract, n_synthetic=800, batch_size=200, seed=0)
    assert fixed is not None and isinstance(fixed.batch_size, int) and fixed.batch_size >= 2


def test_the_shadow_attack_is_not_run_where_it_could_only_be_inconclusive(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    """It scores min(mia_targets, train/4, holdout/4) records per side. With 60 holdout rows (15 per side)
    a signal-free attack's AUC upper bound is about 0.5 + 1.96·√(31 / (12·15²)) ≈ 0.71, past the 0.60
    gate: the shadows (8 fits of the model) are skipped, and the note says why without a row count. At
    100 per side (≈ 0.58) they run; shadow_models: 0 is no note at all."""
    from synthgate.tasks.evaluate import shadow_attack_row_limited

    df = adult_small.select(adult_contract.modelled_columns)
    assert adult_contract.gates.max_mia_auc == 0.6
    note = shadow_attack_row_limited(df[:400], df[400:460], adult_contract)
    assert note is not None and "not run" in note and "0.71" in note and "60" not in note.replace("0.6", "")
    assert shadow_attack_row_limited(df[:400], df[400:800], adult_contract) is None  # 100 per side
    off = adult_contract.model_copy(
        update={"evaluation": adult_contract.evaluation.model_copy(update={"shadow_models": 0})}
    )
    assert shadow_attack_row_limited(df[:400], df[400:460], off) is None
