"""The concurrent tasks (checks, shadow models) give the same result on threads and on a Dask cluster."""

from __future__ import annotations

import polars as pl
import pytest
from prefect import flow

from flows.stages import make_task_runner, run_membership_attacks
from tasks.steps import split_holdout
from validation.contract import Contract, ContractError

pytest.importorskip("prefect_dask", reason="task_runner: dask needs synthgate[cluster] (installed by `make test`)")


def _attack(contract: Contract, adult_small: pl.DataFrame, runner: object) -> list[tuple[str, float]]:
    small = contract.model_copy(update={
        "evaluation": contract.evaluation.model_copy(update={"shadow_models": 4, "shadow_rows": 200, "mia_targets": 40}),
    })
    train, holdout = split_holdout.fn(adult_small.select(contract.modelled_columns), fraction=0.5, seed=0)
    synthetic = holdout.sample(n=400, seed=1)

    @flow(name="attack-on-runner", task_runner=runner)  # type: ignore[arg-type]
    def attack() -> list[tuple[str, float]]:
        results = run_membership_attacks(
            train, holdout, synthetic, small, epsilon=3.0, epochs=0.5, batch_size=100, device="cpu", seed=5,
            show_progress=False,
        )
        return [(r.name, r.value) for r in results]

    return attack()


def test_shadow_models_on_a_local_dask_cluster_match_the_thread_pool(
    prefect_harness: None, adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    threads = _attack(adult_contract, adult_small, make_task_runner("threads", workers=2))
    dask = _attack(adult_contract, adult_small, make_task_runner("dask", workers=2))
    assert [name for name, _ in threads] == ["mia_auc", "mia_tpr_at_1pct_fpr"]
    # Seeded shadows with the test noise key inherited by the worker processes: the same figures.
    assert dask == threads


def test_an_unknown_runner_is_a_config_error() -> None:
    with pytest.raises(ContractError, match="'threads' or 'dask'"):
        make_task_runner("ray", workers=2)
