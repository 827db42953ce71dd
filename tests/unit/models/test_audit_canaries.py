"""Gradient canaries through the real DP critic (models/canaries.py + validation/audit.py).

An honest fit's audited bound stays below the ε its ledger claims; a fit whose noise or clipping is
sabotaged behind the ledger's back (the ledger still claims the same ε) is caught. That second half
is what makes the first meaningful: the audit has the power to see a broken implementation. Both
clipping paths are audited: per-sample (canaries as ``grad_sample`` rows) and ghost (the path ctgan
releases use; canaries clipped by the module's own clipping function and added before the noise).
"""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
import torch

from benchmarks.audit import sabotaged
from synthgate.models import dp
from synthgate.models.canaries import GradientCanaries, install
from synthgate.models.dp import pair_losses
from synthgate.models.ledger import PrivacyLedger, epsilon_of
from synthgate.models.synthesizers.ctgan import Critic
from synthgate.tasks.train import fit_synthesizer
from synthgate.validation.audit import score_audit
from synthgate.validation.contract import Contract

EPSILON = 1.0
CANARIES = 500


PATHS = ("per-sample", "ghost")


def _audit(
    train: pl.DataFrame, contract: Contract, *, seed: int = 3, clipping: str = "per-sample"
) -> tuple[GradientCanaries, PrivacyLedger, float]:
    canaries = GradientCanaries(CANARIES, seed=seed, clipping=clipping)
    with install(canaries):
        _, ledger = fit_synthesizer(train, contract, epsilon=EPSILON, epochs=2, batch_size=300, device="cpu", seed=seed)
    assert canaries.trainer is not None, "the critic did not pick up the canaries"
    assert canaries.trainer.ghost == (clipping == "ghost"), "the audit ran on the wrong clipping path"
    e = canaries.trainer.entry
    return canaries, ledger, epsilon_of([(e.noise_multiplier, e.sample_rate, e.steps)], ledger.delta)


@pytest.mark.parametrize("clipping", PATHS)
def test_an_honest_fit_stays_below_its_claim(
    adult_small: pl.DataFrame, adult_contract: Contract, clipping: str
) -> None:
    train = adult_small.select(adult_contract.modelled_columns)
    canaries, ledger, claimed = _audit(train, adult_contract, clipping=clipping)
    trainer = canaries.trainer
    assert trainer is not None and canaries.what == "critic"
    assert canaries.steps == trainer.entry.steps > 0
    # Excluded canaries never take part; included ones at the trainer's Poisson rate.
    assert canaries.participations[~canaries.included].sum() == 0
    expected = trainer.entry.sample_rate * canaries.steps
    assert (
        abs(canaries.participations[canaries.included].mean() - expected)
        < 4 * np.sqrt(expected / canaries.included.sum()) + 0.05
    )
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta)
    assert bound.epsilon_lower_bound <= claimed, bound
    assert claimed <= ledger.epsilon <= EPSILON + 1e-9


@pytest.mark.parametrize("clipping", PATHS)
def test_canaries_leave_the_accounting_alone(
    adult_small: pl.DataFrame, adult_contract: Contract, clipping: str
) -> None:
    train = adult_small.select(adult_contract.modelled_columns)
    _, with_canaries, _ = _audit(train, adult_contract, clipping=clipping)
    _, without = fit_synthesizer(train, adult_contract, epsilon=EPSILON, epochs=2, batch_size=300, device="cpu", seed=3)
    assert with_canaries.to_dict() == without.to_dict()


@pytest.mark.parametrize("clipping", PATHS)
def test_no_noise_behind_the_ledger_is_caught(
    adult_small: pl.DataFrame, adult_contract: Contract, clipping: str
) -> None:
    with sabotaged("no noise"):
        canaries, ledger, claimed = _audit(
            adult_small.select(adult_contract.modelled_columns), adult_contract, clipping=clipping
        )
    # The score still assumes the claimed σ; with no noise, sampled canaries stand out anyway.
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta)
    assert bound.epsilon_lower_bound > claimed, bound


@pytest.mark.parametrize("clipping", PATHS)
def test_no_clipping_behind_the_ledger_is_caught(
    adult_small: pl.DataFrame, adult_contract: Contract, clipping: str
) -> None:
    """Gradients summed unclipped (the optimizer's per-sample clipping skipped, or every ghost clipping
    coefficient 1): the canaries' 10·C gradients get through at full length."""
    with sabotaged("no clipping"):
        canaries, ledger, claimed = _audit(
            adult_small.select(adult_contract.modelled_columns), adult_contract, clipping=clipping
        )
    bound = score_audit(canaries.scores, canaries.included, delta=ledger.delta)
    assert bound.epsilon_lower_bound > claimed, bound


def test_too_many_canaries_for_the_network_is_a_clear_error(
    adult_small: pl.DataFrame, adult_contract: Contract
) -> None:
    with install(GradientCanaries(10**6, seed=0)), pytest.raises(ValueError, match="fewer than the 1000000 canaries"):
        fit_synthesizer(
            adult_small.select(adult_contract.modelled_columns),
            adult_contract,
            epsilon=EPSILON,
            epochs=1,
            batch_size=300,
            device="cpu",
            seed=0,
        )


def test_only_the_first_dp_network_carries_the_canaries() -> None:
    ledger = PrivacyLedger(1e-6)
    canaries = GradientCanaries(4, seed=0)
    nets = [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]
    with install(canaries):
        first, second = (
            dp.PrivateTrainer(
                net,
                ledger=ledger,
                mechanism=f"m{i}",
                dp=True,
                noise_multiplier=1.0,
                sample_rate=0.1,
                expected_batch_size=10,
                max_grad_norm=1.0,
                lr=1e-3,
            )
            for i, net in enumerate(nets)
        )
    assert first.canaries is canaries and second.canaries is None
    outside = dp.PrivateTrainer(
        torch.nn.Linear(3, 2),
        ledger=ledger,
        mechanism="m3",
        dp=True,
        noise_multiplier=1.0,
        sample_rate=0.1,
        expected_batch_size=10,
        max_grad_norm=1.0,
        lr=1e-3,
    )
    assert outside.canaries is None


def _critic_trainer(
    net: torch.nn.Module, *, C: float, sigma: float, q: float, expected: int, noise_seed: int
) -> dp.PrivateTrainer:
    return dp.PrivateTrainer(
        net,
        ledger=PrivacyLedger(1e-6),
        mechanism="dp-sgd-critic",
        dp=True,
        noise_multiplier=sigma,
        sample_rate=q,
        expected_batch_size=expected,
        max_grad_norm=C,
        lr=1e-3,
        clipping="ghost",
        what="critic",
        noise_generator=torch.Generator().manual_seed(noise_seed),
    )


def test_ghost_and_per_sample_canaries_see_the_same_clipped_and_noised_signal() -> None:
    """Same critic, rows, canary coins and noise draws on both paths: each canary's observed gradient is
    the same, C (its 10·C gradient clipped) / B plus the same noise, whether clipped per sample by the
    optimizer or by the ghost module's clipping coefficients; the rows' own gradients are reserved out."""
    torch.manual_seed(0)
    base = Critic(6, (16, 8))
    x = torch.randn(40, 2, 6) * torch.logspace(-2, 2, 40)[:, None, None]  # rows both above and below C
    observed = {}
    for clipping in PATHS:
        canaries = GradientCanaries(30, seed=5, clipping=clipping)
        with install(canaries):
            trainer = _critic_trainer(copy.deepcopy(base), C=0.7, sigma=0.5, q=1.0, expected=40, noise_seed=2)
        assert canaries.trainer is trainer and trainer.ghost == (clipping == "ghost")
        losses = pair_losses(trainer.module(x))
        trainer.step(losses if trainer.ghost else losses.sum(), 40)
        trainer.step(None, 0)  # an empty Poisson batch: canaries and noise only
        observed[clipping] = np.stack(canaries._observed)
    # q = 1: every included canary is sampled at both steps
    assert np.allclose(observed["ghost"], observed["per-sample"], atol=1e-4)
    noise_free = GradientCanaries(30, seed=5, clipping="ghost")
    with install(noise_free):
        trainer = _critic_trainer(copy.deepcopy(base), C=0.7, sigma=0.5, q=1.0, expected=40, noise_seed=2)
    trainer.optimizer.noise_multiplier = 0.0  # the ledger refuses σ = 0; the optimizer's noise is switched off
    trainer.step(pair_losses(trainer.module(x)), 40)
    # without noise the observation is exactly the clipped canary (C, in units of C) or nothing (reserved)
    assert np.allclose(noise_free._observed[0], noise_free.included.astype(float), atol=1e-5)


def test_ghost_canaries_see_noise_of_std_sigma_times_C() -> None:
    """Excluded canaries' coordinates carry only the optimizer's noise: N(0, σ²C²)/B, i.e. σ in units of C/B
    (with C ≠ 1, noise of std σ instead of σ·C would show as σ/C)."""
    torch.manual_seed(1)
    sigma, C, B = 1.3, 2.5, 16
    canaries = GradientCanaries(40, seed=9, clipping="ghost")
    with install(canaries):
        trainer = _critic_trainer(Critic(6, (16,)), C=C, sigma=sigma, q=0.5, expected=B, noise_seed=4)
    for _ in range(60):
        x = torch.randn(B, 2, 6)
        trainer.step(pair_losses(trainer.module(x)), B)
    x_out = np.stack(canaries._observed)[:, ~canaries.included]
    # 60 steps x ~20 excluded canaries: the sample std is within ~3% of σ (tolerance 10%)
    assert x_out.std() == pytest.approx(sigma, rel=0.1)
    assert abs(x_out.mean()) < 0.15
    assert canaries.participations[canaries.included].mean() == pytest.approx(30, abs=8)


def test_a_ghost_audit_of_a_per_sample_critic_is_a_clear_error() -> None:
    canaries = GradientCanaries(4, seed=0, clipping="ghost")
    with install(canaries), pytest.raises(ValueError, match="audit it with clipping 'per-sample'"):
        dp.PrivateTrainer(
            torch.nn.Linear(3, 2),
            ledger=PrivacyLedger(1e-6),
            mechanism="m",
            dp=True,
            noise_multiplier=1.0,
            sample_rate=0.1,
            expected_batch_size=10,
            max_grad_norm=1.0,
            lr=1e-3,
            clipping="per-sample",
        )
    with pytest.raises(ValueError, match="clipping must be one of"):
        GradientCanaries(4, seed=0, clipping="none")
