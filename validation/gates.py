"""The release gates: every check a release must pass, run in one place.

``run_checks`` returns one ``MetricResult`` per check. The flow's tasks call its parts as
separate steps (``privacy_checks``, ``membership_attacks`` + the shadow-model tasks +
``membership_checks``, ``fidelity_checks``, ``governance_checks``);
``validation.results.decide_release`` turns them into the release decision and
``validation.report`` into the report.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from synthgate.validation.anonymeter import anonymeter_checks
from synthgate.validation.contract import Contract
from synthgate.validation.fidelity import fidelity_suite
from synthgate.validation.mia import AttackResult, density_ratio_attack, distance_attack, membership_inference
from synthgate.validation.privacy import distance_checks, identical_match_share
from synthgate.validation.results import MetricResult

__all__ = [
    "budget_result",
    "contract_public_result",
    "fidelity_checks",
    "governance_checks",
    "membership_attacks",
    "membership_checks",
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
    if math.isnan(spent) or spent < 0:
        raise ValueError(
            f"`epsilon_spent` must be a number >= 0 (math.inf for a model trained without DP). "
            f"Got {epsilon_spent}. Pass the total epsilon of the release's privacy ledger."
        )
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(
            f"`epsilon_budget` must be a finite number > 0. Got {epsilon_budget}. Set privacy.epsilon in the contract."
        )
    return MetricResult(
        name="privacy_budget",
        value=spent,
        threshold=budget,
        passed=spent <= budget,
        direction="max",
        kind="budget",
        description=BUDGET_DESCRIPTION,
        details={"epsilon_spent": spent, "epsilon_budget": budget}
        if math.isfinite(spent)
        else {
            "epsilon_spent": spent,
            "epsilon_budget": budget,
            "differential_privacy": False,
            "fix": "The model was trained without differential privacy (epsilon = inf); retrain it "
            "with a finite epsilon within the budget to release it.",
        },
    )


def contract_public_result(contract: Contract) -> MetricResult:
    """Gate: no contract entry may be data-derived (``from_data: true``).

    Bounds or categories drafted from the private rows (``synthgate contract infer``) leak
    them outside the DP guarantee; a person must replace them with public knowledge. Columns
    marked ``dp_learned`` (``contract infer --dp``: learned with DP, charged to the table's
    lifetime budget) count as public.
    """
    derived = list(contract.data_derived_columns)
    details: dict[str, object] = {"data_derived_columns": derived}
    learned = contract.dp_learned_columns
    if learned and contract.dp_inference is not None:
        # Public: learned with DP and charged to the table's lifetime budget (the flow checked the
        # registry holds the run before reading a row: tasks.governance.check_dp_inference).
        paid = contract.dp_inference
        details["dp_learned_columns"] = learned
        details["dp_inference"] = {"run_id": paid.run_id, "epsilon": paid.epsilon, "delta": paid.delta}
    if derived:
        details["fix"] = (
            "Replace the bounds/categories of these columns with public knowledge and remove "
            "`from_data: true`, or spend budget to learn them with a DP mechanism."
        )
    description = CONTRACT_DESCRIPTION
    if derived:
        description += f" Read off the data here: {', '.join(derived)}."
    if learned and contract.dp_inference is not None:
        description += (
            f" {len(learned)} column(s) were learned with DP (ε {contract.dp_inference.epsilon:.3g}, charged to "
            f"the table's lifetime budget by run {contract.dp_inference.run_id}) and count as public."
        )
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
    seed: int,
    max_synthetic_rows: int | None = None,
) -> list[MetricResult]:
    """Identical matches, distance checks (DCR share, NNDR, worst column subset), anonymeter risks.

    The membership-inference attacks are separate (``membership_attacks`` and, in the flow,
    the shadow-model tasks) because the shadow attack trains synthesizers.
    """
    identical_seed, distance_seed, anonymeter_seed = _seeds(seed, 3)
    return [
        identical_match_share(synthetic, train, holdout, contract=contract, seed=identical_seed),
        *distance_checks(
            synthetic, train, holdout, contract, seed=distance_seed, max_synthetic_rows=max_synthetic_rows
        ),
        *anonymeter_checks(train, holdout, synthetic, contract, seed=anonymeter_seed),
    ]


def membership_attacks(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract, *, seed: int
) -> list[AttackResult]:
    """The distance and density-ratio (DOMIAS) attacks on a sample of members and non-members.

    Members are ``evaluation.attack_rows`` train rows; non-members as many holdout rows; the
    rest of the holdout is the attacker's reference sample of the population (DOMIAS).
    """
    sample_seed, domias_seed = _seeds(seed, 2)
    rng = np.random.default_rng(sample_seed)
    n = min(contract.evaluation.attack_rows, train.height, holdout.height // 2)
    if n < 10:
        raise ValueError(
            f"the membership attacks need at least 10 train rows and 20 holdout rows; got "
            f"{train.height} and {holdout.height}. Use a larger table or a larger holdout fraction."
        )
    members = train[np.sort(rng.choice(train.height, n, replace=False))]
    order = rng.permutation(holdout.height)
    nonmembers, reference = holdout[np.sort(order[:n])], holdout[np.sort(order[n:])]
    return [
        distance_attack(synthetic, members, nonmembers, contract),
        density_ratio_attack(synthetic, members, nonmembers, reference, contract, seed=domias_seed),
    ]


def membership_checks(attacks: list[AttackResult], contract: Contract) -> list[MetricResult]:
    """The two membership gates over every attack run: worst AUC (upper bound), worst TPR@1%FPR."""
    return membership_inference(
        attacks, max_auc=contract.gates.max_mia_auc, max_tpr=contract.gates.max_mia_tpr_at_1pct_fpr
    )


def fidelity_checks(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
) -> list[MetricResult]:
    """Column shapes, pair trends, 3-way marginals, detection and ML efficacy (with a target)."""
    g = contract.gates
    return fidelity_suite(
        train,
        holdout,
        synthetic,
        contract,
        seed=seed,
        min_three_way_ratio=g.min_three_way_ratio,
        max_detection_auc=g.max_detection_auc,
    )


def governance_checks(contract: Contract, *, epsilon_spent: float) -> list[MetricResult]:
    """The budget gate and the contract-is-public gate."""
    return [
        budget_result(epsilon_spent, contract.privacy.epsilon),
        contract_public_result(contract),
    ]


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def run_checks(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    epsilon_spent: float | None,
    seed: int,
    extra_attacks: list[AttackResult] | None = None,
    max_synthetic_rows: int | None = None,
) -> list[MetricResult]:
    """Run every release check and return the results, gates first to last.

    Order: privacy (identical matches, DCR share and NNDR, anonymeter risks), membership
    inference (distance and DOMIAS attacks plus ``extra_attacks``, e.g. the shadow-model
    attack the flow runs as separate tasks), fidelity, then the budget and contract gates
    (skipped when ``epsilon_spent`` is None: a table made outside synthgate has no ledger).
    Each part gets its own seed, split from ``seed`` with ``SeedSequence.spawn``.

    Args:
        train, holdout, synthetic: frames with exactly ``contract.modelled_columns``.
        contract: the data contract (thresholds, budget, bounds, target).
        epsilon_spent: total ε of the release's privacy ledger, or None.
        seed: root seed of the checks' subsamples and classifiers.
        extra_attacks: further membership attacks to include in the worst-attack gates.
        max_synthetic_rows: cap on the synthetic rows scored by the distance checks.
    """
    privacy_seed, attack_seed, fidelity_seed = _seeds(seed, 3)
    attacks = membership_attacks(train, holdout, synthetic, contract, seed=attack_seed)
    results = [
        *privacy_checks(train, holdout, synthetic, contract, seed=privacy_seed, max_synthetic_rows=max_synthetic_rows),
        *membership_checks([*attacks, *(extra_attacks or [])], contract),
        *fidelity_checks(train, holdout, synthetic, contract, seed=fidelity_seed),
    ]
    if epsilon_spent is not None:
        results += governance_checks(contract, epsilon_spent=epsilon_spent)
    return results
