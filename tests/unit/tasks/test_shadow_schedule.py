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
