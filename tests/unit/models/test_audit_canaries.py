"""Gradient canaries through the real DP critic (models/canaries.py + validation/audit.py).

An honest fit's audited bound stays below the ε its ledger claims; a fit whose noise or clipping is
sabotaged behind the ledger's back (the ledger still claims the same ε) is caught. That second half
is what makes the first meaningful: the audit has the power to see a broken implementation.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from benchmarks.audit import sabotaged
from models import dp
from models.canaries import GradientCanaries, install
from models.ledger import PrivacyLedger, epsilon_of
from tasks.steps import fit_synthesizer
from validation.audit import score_audit
from validation.contract import Contract

EPSILON = 1.0
CANARIES = 500


def _audit(train: pl.DataFrame, contract: Contract, *, seed: int = 3) -> tuple[GradientCanaries, PrivacyLedger, float]:
    canaries = GradientCanaries(CANARIES, seed=seed)
    with install(canaries):
        _, ledger = fit_synthesizer(train, contract, epsilon=EPSILON, epochs=2, batch_size=300, device="cpu", seed=seed)
    assert canaries.trainer is not None, "the critic did not pick up the canaries"
    e = canaries.trainer.entry
    return canaries, ledger, epsilon_of([(e.noise_multiplier, e.sample_rate, e.steps)], ledger.delta)


def test_an_honest_fit_stays_below_its_claim(adult_small: pl.DataFrame, adult_contract: Contract) -> None:
    train = adult_small.select(adult_contract.modelled_columns)
    canaries, ledger, claimed = _audit(train, adult_contract)
    trainer = canaries.trainer
    assert trainer is not None and canaries.what == "critic"
    assert canaries.steps == trainer.entry.steps > 0
    # Excluded canaries never take part; included ones at the trainer's Poisson rate.
    assert canaries.participations[~canaries.included].sum() == 0
    expected = trainer.entry.sample_rate * canaries.steps
    assert abs(canaries.participations[canaries.included].mean() - expected) < 4 * np.sqrt(expected / canaries.included.sum()) + 0.05
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta)
    assert bound.epsilon_lower_bound <= claimed, bound
    assert claimed <= ledger.epsilon <= EPSILON + 1e-9


def test_canaries_leave_the_accounting_alone(adult_small: pl.DataFrame, adult_contract: Contract) -> None:
    train = adult_small.select(adult_contract.modelled_columns)
    _, with_canaries, _ = _audit(train, adult_contract)
    _, without = fit_synthesizer(train, adult_contract, epsilon=EPSILON, epochs=2, batch_size=300, device="cpu", seed=3)
    assert with_canaries.to_dict() == without.to_dict()


def test_no_noise_behind_the_ledger_is_caught(adult_small: pl.DataFrame, adult_contract: Contract) -> None:
    with sabotaged("no noise"):
        canaries, ledger, claimed = _audit(adult_small.select(adult_contract.modelled_columns), adult_contract)
    # The score still assumes the claimed σ; with no noise, sampled canaries stand out anyway.
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta)
    assert bound.epsilon_lower_bound > claimed, bound


def test_no_clipping_behind_the_ledger_is_caught(adult_small: pl.DataFrame, adult_contract: Contract) -> None:
    """Per-sample gradients summed unclipped: the canaries' 10·C gradients get through at full length."""
    with sabotaged("no clipping"):
        canaries, ledger, claimed = _audit(adult_small.select(adult_contract.modelled_columns), adult_contract)
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta)
    assert bound.epsilon_lower_bound > claimed, bound


def test_too_many_canaries_for_the_network_is_a_clear_error(
    adult_small: pl.DataFrame, adult_contract: Contract
) -> None:
    with install(GradientCanaries(10**6, seed=0)), pytest.raises(ValueError, match="fewer than the 1000000 canaries"):
        fit_synthesizer(adult_small.select(adult_contract.modelled_columns), adult_contract, epsilon=EPSILON,
                        epochs=1, batch_size=300, device="cpu", seed=0)


def test_only_the_first_dp_network_carries_the_canaries() -> None:
    ledger = PrivacyLedger(1e-6)
    canaries = GradientCanaries(4, seed=0)
    nets = [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]
    with install(canaries):
        first, second = (
            dp.PrivateTrainer(net, ledger=ledger, mechanism=f"m{i}", dp=True, noise_multiplier=1.0, sample_rate=0.1,
                              expected_batch_size=10, max_grad_norm=1.0, lr=1e-3)
            for i, net in enumerate(nets)
        )
    assert first.canaries is canaries and second.canaries is None
    outside = dp.PrivateTrainer(torch.nn.Linear(3, 2), ledger=ledger, mechanism="m3", dp=True, noise_multiplier=1.0,
                                sample_rate=0.1, expected_batch_size=10, max_grad_norm=1.0, lr=1e-3)
    assert outside.canaries is None
