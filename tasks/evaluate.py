"""The checks' stages: evaluate_privacy, attack_membership + train_shadow, evaluate_fidelity, the PII
gate, and the seeded subsample of the three sets they score (``evaluation_subsample``).

Every task here reads private rows (train, holdout) to *evaluate* a synthetic table. That is
outside the DP guarantee (the report lists it under ``outside_guarantee``): results carry
aggregates only, and no task persists or caches its inputs or outputs.

The shadow-model attack is split so that a Prefect task runner can spread it: one task plans
the shadow runs, ``train_shadow`` trains one shadow synthesizer per run (independent tasks,
submitted concurrently by the flow), and ``score_shadow_attack`` turns their samples into an
attack result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from prefect import task

from synthgate.tasks.redaction import private_task
from synthgate.tasks.train import fit_synthesizer
from synthgate.validation.contract import Contract
from synthgate.validation.gates import fidelity_checks, membership_attacks, membership_checks, privacy_checks
from synthgate.validation.mia import (
    AttackResult,
    ShadowRun,
    auc_power_floor,
    plan_shadow_runs,
    select_exposed,
    shadow_attack,
    shadow_training_frame,
)
from synthgate.validation.pii import PiiScan
from synthgate.validation.results import MetricResult

__all__ = [
    "ShadowPlan",
    "attack_membership",
    "evaluate_fidelity",
    "evaluate_privacy",
    "evaluation_subsample",
    "gate_pii_values",
    "judge_membership",
    "membership_contract",
    "plan_shadow_attack",
    "score_shadow_attack",
    "shadow_attack_row_limited",
    "train_shadow",
]


def child_seed(seed: int, *key: int) -> int:
    """A seed for one consumer of ``seed``, independent of every other key's."""
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1)[0])


def membership_contract(contract: Contract, *, shadow: bool) -> Contract:
    """The contract ``synthgate evaluate``'s membership attacks run under: the shadow-model attack (which
    trains the contract's model as a stand-in for an unknown synthesizer) only when ``shadow`` asks."""
    if shadow or not contract.evaluation.shadow_models:
        return contract
    return contract.model_copy(update={"evaluation": contract.evaluation.model_copy(update={"shadow_models": 0})})


@private_task(name="evaluation_subsample", task_run_name="subsample the sets for the checks")
def evaluation_subsample(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, *, max_rows: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The three sets the checks score, each cut to at most ``max_rows`` rows by a seeded uniform
    subsample (row order kept); sets already small enough are returned as they are."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1. Got {max_rows}.")
    streams = np.random.SeedSequence(seed).spawn(3)
    out = []
    for frame, stream in zip((train, holdout, synthetic), streams, strict=True):
        if frame.height <= max_rows:
            out.append(frame)
        else:
            keep = np.sort(np.random.default_rng(stream).choice(frame.height, size=max_rows, replace=False))
            out.append(frame[keep])
    return out[0], out[1], out[2]


@private_task(name="evaluate_privacy", task_run_name="privacy checks")
def evaluate_privacy(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract, *, seed: int
) -> list[MetricResult]:
    """Identical matches, DCR share (all columns and column subsets), NNDR, anonymeter risks."""
    return privacy_checks(train, holdout, synthetic, contract, seed=seed)


@private_task(name="gate_pii_values", task_run_name="PII gate")
def gate_pii_values(scan: PiiScan, synthetic: pl.DataFrame) -> MetricResult:
    """The PII gate over what the scan of the private rows found (see ``validation.pii``)."""
    return scan.result(synthetic)


@private_task(name="evaluate_fidelity", task_run_name="fidelity checks")
def evaluate_fidelity(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract, *, seed: int
) -> list[MetricResult]:
    """Column shapes, pair trends, 3-way marginals, detection and ML efficacy."""
    return fidelity_checks(train, holdout, synthetic, contract, seed=seed)


@private_task(name="attack_membership", task_run_name="membership attacks")
def attack_membership(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract, *, seed: int
) -> list[AttackResult]:
    """The distance and density-ratio (DOMIAS) attacks; the shadow attack runs as its own tasks."""
    return membership_attacks(train, holdout, synthetic, contract, seed=seed)


@dataclass(frozen=True)
class ShadowPlan:
    """What every shadow run trains on: exposed targets, a reference pool, and the runs."""

    runs: list[ShadowRun]
    targets: pl.DataFrame
    target_is_member: np.ndarray
    reference_pool: pl.DataFrame
    n_synthetic: int
    batch_size: int | None  # None: the model's default schedule (models/schedule.py), as the release

    def __len__(self) -> int:
        return len(self.runs)


def shadow_attack_row_limited(train: pl.DataFrame, holdout: pl.DataFrame, contract: Contract) -> str | None:
    """Why the shadow-model attack is not run at these rows (None: run it).

    It scores ``min(evaluation.mia_targets, train/4, holdout/4)`` exposed records per side. When even an
    attack with no signal would have an AUC upper bound past ``gates.max_mia_auc`` at that size
    (``validation.mia.auc_power_floor``), the attack could never show the gate met, and its cost is
    ``evaluation.shadow_models`` more fits of the release's model (pd_speech, 252 rows × 752 columns:
    past 30 minutes for 15 records per side). A leak blatant enough to be evidence at such sizes is in
    reach of the distance and DOMIAS attacks of the same gate and of the distance checks. The note
    gives no row count (the split's sizes are private)."""
    ev = contract.evaluation
    if ev.shadow_models == 0:
        return None
    per_side = min(ev.mia_targets, train.height // 4, holdout.height // 4)
    floor, _ = auc_power_floor(max(per_side, 1), max(per_side, 1), contract.gates.max_mia_auc)
    if floor <= contract.gates.max_mia_auc:
        return None
    return (
        f"the shadow-model attack was not run: at these rows it scores too few exposed records for even a "
        f"signal-free attack to bound its AUC under {contract.gates.max_mia_auc:g} (its upper end would be about "
        f"{floor:.2f}), so it could only come out inconclusive; the distance and DOMIAS attacks ran"
    )


@private_task(name="plan_shadow_attack", task_run_name="plan the shadow-model attack")
def plan_shadow_attack(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    n_synthetic: int,
    batch_size: int | None,
    seed: int,
) -> ShadowPlan | None:
    """Pick the most exposed records and lay out the shadow runs; None when shadows are off.

    Targets: the ``evaluation.mia_targets`` most outlying train rows (members) and holdout
    rows (non-members). Each shadow trains on ``evaluation.shadow_rows`` holdout rows (never a
    target) plus about half of the targets, with the release's expected Poisson sampling rate
    (``batch_size / train rows``), so its noise per step matches the release's. ``batch_size=None``
    (the release trained on ctgan's default schedule): each shadow uses that schedule too, which
    sets its batch from its own DP row estimate by the same rule.
    """
    ev = contract.evaluation
    if ev.shadow_models == 0:
        return None
    per_side = min(ev.mia_targets, train.height // 4, holdout.height // 4)
    if per_side < 5:
        raise ValueError(
            "the shadow-model attack needs at least 20 train and 20 holdout rows, and this split has fewer "
            "(exact counts are not shown: they are private). Set evaluation.shadow_models: 0 for a table this small."
        )
    members, nonmembers = select_exposed(train, holdout, contract, n_per_side=per_side, seed=child_seed(seed, 0))
    targets = pl.concat([train[members], holdout[nonmembers]], how="vertical")
    is_member = np.r_[np.ones(len(members), dtype=bool), np.zeros(len(nonmembers), dtype=bool)]
    pool = holdout[np.setdiff1d(np.arange(holdout.height), nonmembers)]
    shadow_rows = min(ev.shadow_rows, pool.height)
    runs = plan_shadow_runs(
        len(targets), pool.height, n_shadows=ev.shadow_models, shadow_rows=shadow_rows, seed=child_seed(seed, 1)
    )
    shadow_batch = None
    if batch_size is not None:
        rate = min(1.0, batch_size / train.height)
        shadow_batch = max(2, round(rate * (shadow_rows + per_side)))
    return ShadowPlan(runs, targets, is_member, pool, n_synthetic, shadow_batch)


@private_task(name="train_shadow", task_run_name="shadow model {index}")
def train_shadow(
    plan: ShadowPlan, index: int, contract: Contract, *, epsilon: float, epochs: float | None, device: str
) -> pl.DataFrame:
    """Train one shadow synthesizer exactly as the release was trained, and sample from it."""
    run = plan.runs[index]
    frame = shadow_training_frame(run, plan.targets, plan.reference_pool)
    model, _ = fit_synthesizer(
        frame, contract, epsilon=epsilon, epochs=epochs, batch_size=plan.batch_size, device=device, seed=run.seed
    )
    return model.sample(plan.n_synthetic, seed=child_seed(run.seed, 0))


@private_task(name="score_shadow_attack", task_run_name="score the shadow-model attack")
def score_shadow_attack(
    plan: ShadowPlan, shadow_synthetics: list[pl.DataFrame], synthetic: pl.DataFrame, contract: Contract
) -> AttackResult:
    return shadow_attack(plan.runs, shadow_synthetics, plan.targets, plan.target_is_member, synthetic, contract)


@task(name="judge_membership", task_run_name="membership gates")
def judge_membership(attacks: list[AttackResult], contract: Contract) -> list[MetricResult]:
    """The two membership gates: the strongest attack's AUC (upper bound) and TPR at 1% FPR."""
    return membership_checks(attacks, contract)
