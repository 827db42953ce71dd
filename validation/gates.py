"""The release gates: every check a release must pass, run in one place.

``run_checks`` returns one ``MetricResult`` per check (the flow's tasks call its three parts,
``privacy_checks``, ``fidelity_checks`` and ``governance_checks``, as separate steps); ``validation.results.decide_release``
turns them into the release decision and ``validation.report`` into the report.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from validation.contract import Contract
from validation.fidelity import column_shapes, ml_efficacy, pair_trends
from validation.privacy import DEFAULT_MAX_SYNTHETIC_ROWS, dcr_share, identical_match_share
from validation.results import MetricResult

__all__ = [
    "budget_result",
    "contract_public_result",
    "fidelity_checks",
    "governance_checks",
    "privacy_checks",
    "run_checks",
]

BUDGET_DESCRIPTION = (
    "Privacy loss (epsilon) spent by every step that learned from the private rows, which "
    "must stay within the budget set in the contract."
)
CONTRACT_DESCRIPTION = (
    "Number of contract entries (bounds or category lists) that were read off the private "
    "data instead of public knowledge; any such entry voids the privacy guarantee."
)


def budget_result(epsilon_spent: float, epsilon_budget: float) -> MetricResult:
    """Gate: the total ε spent (from the privacy ledger) must not exceed the budget.

    Args:
        epsilon_spent: total ε of the release's ledger (all mechanisms, composed).
        epsilon_budget: ε allowed by the contract (``contract.privacy.epsilon``).
    """
    spent, budget = float(epsilon_spent), float(epsilon_budget)
    if not (math.isfinite(spent) and spent >= 0):
        raise ValueError(
            f"`epsilon_spent` must be a finite number >= 0. Got {epsilon_spent}. "
            "Pass the total epsilon of the release's privacy ledger."
        )
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(
            f"`epsilon_budget` must be a finite number > 0. Got {epsilon_budget}. "
            "Set privacy.epsilon in the contract."
        )
    return MetricResult(
        name="privacy_budget",
        value=spent,
        threshold=budget,
        passed=spent <= budget,
        direction="max",
        kind="budget",
        description=BUDGET_DESCRIPTION,
        details={"epsilon_spent": spent, "epsilon_budget": budget},
    )


def contract_public_result(contract: Contract) -> MetricResult:
    """Gate: no contract entry may be data-derived (``from_data: true``).

    Bounds or categories drafted from the private rows (``synthgate contract infer``) leak
    them outside the DP guarantee; a person must replace them with public knowledge.
    """
    derived = list(contract.data_derived_columns)
    details: dict[str, object] = {"data_derived_columns": derived}
    if derived:
        details["fix"] = (
            "Replace the bounds/categories of these columns with public knowledge and remove "
            "`from_data: true`, or spend budget to learn them with a DP mechanism."
        )
    description = CONTRACT_DESCRIPTION
    if derived:
        description += f" Read off the data here: {', '.join(derived)}."
    return MetricResult(
        name="contract_is_public",
        value=float(len(derived)),
        threshold=0.0,
        passed=not derived,
        direction="max",
        kind="contract",
        description=description,
        details=details,
    )


def privacy_checks(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    identical_seed: int,
    dcr_seed: int,
    max_synthetic_rows: int = DEFAULT_MAX_SYNTHETIC_ROWS,
) -> list[MetricResult]:
    """Identical-match share and DCR share, each with its own seed."""
    return [
        identical_match_share(synthetic, train, holdout, contract=contract, seed=identical_seed),
        dcr_share(
            synthetic,
            train,
            holdout,
            contract,
            seed=dcr_seed,
            max_synthetic_rows=max_synthetic_rows,
        ),
    ]


def fidelity_checks(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    ml_seed: int,
) -> list[MetricResult]:
    """Column shapes and pair trends against train; ML efficacy when the contract has a target."""
    results = [column_shapes(train, synthetic, contract), pair_trends(train, synthetic, contract)]
    ml = ml_efficacy(train, synthetic, holdout, contract, seed=ml_seed)
    if ml is not None:
        results.append(ml)
    return results


def governance_checks(contract: Contract, *, epsilon_spent: float) -> list[MetricResult]:
    """The budget gate and the contract-is-public gate."""
    return [
        budget_result(epsilon_spent, contract.privacy.epsilon),
        contract_public_result(contract),
    ]


def run_checks(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    epsilon_spent: float,
    seed: int,
    max_synthetic_rows: int = DEFAULT_MAX_SYNTHETIC_ROWS,
) -> list[MetricResult]:
    """Run every release check and return the results, gates first to last.

    Order: privacy (identical matches, DCR share), fidelity (column shapes and pair trends
    against train, ML efficacy when the contract has a target), the budget and the contract
    gates. Each check gets its own seed, split from ``seed`` with ``SeedSequence.spawn``.

    Args:
        train, holdout, synthetic: frames with exactly ``contract.modelled_columns``.
        contract: the data contract (thresholds, budget, bounds, target).
        epsilon_spent: total ε of the release's privacy ledger.
        seed: root seed of the checks' subsamples and classifiers.
        max_synthetic_rows: cap on the synthetic rows scored by the DCR check.
    """
    identical_seed, dcr_seed, ml_seed = (
        int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)
    )
    return [
        *privacy_checks(
            train, holdout, synthetic, contract, identical_seed=identical_seed,
            dcr_seed=dcr_seed, max_synthetic_rows=max_synthetic_rows,
        ),
        *fidelity_checks(train, holdout, synthetic, contract, ml_seed=ml_seed),
        *governance_checks(contract, epsilon_spent=epsilon_spent),
    ]
