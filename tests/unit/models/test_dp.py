"""DP invariants: Poisson batches, per-sample clipping to C, noise std σ·C, seeded fits."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from synthgate.models.dp import PrivateTrainer, pair_loss, pair_losses, poisson_sample
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.ctgan import DPCTGAN, Critic, CTGANConfig
from synthgate.validation.contract import Contract


def test_poisson_batches_have_binomial_sizes() -> None:
    g = torch.Generator().manual_seed(0)
    n, q = 2000, 0.05
    sizes = np.array([len(poisson_sample(n, q, g)) for _ in range(400)])
    # mean n·q = 100, variance n·q·(1-q) = 95; 400 draws: tolerance ~4 standard errors
    assert abs(sizes.mean() - n * q) < 4 * np.sqrt(95 / 400)
    assert 0.6 * 95 < sizes.var() < 1.5 * 95
    assert len(set(sizes)) > 10  # not fixed-size batches


def _dp_step(
    critic: GradSampleModule, x: torch.Tensor, sigma: float, C: float, expected: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    opt = DPOptimizer(
        torch.optim.SGD(critic.parameters(), lr=1.0),
        noise_multiplier=sigma,
        max_grad_norm=C,
        expected_batch_size=expected,
        generator=torch.Generator().manual_seed(1),
    )
    if x.shape[0]:
        pair_loss(critic(x)).backward()
    else:
        for p in critic.parameters():
            p.grad_sample = torch.zeros((0, *p.shape))
    before = [p.detach().clone() for p in critic.parameters()]
    opt.pre_step()  # clip + noise + scale into p.grad, without the parameter update
    flat_norms = (
        torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in opt.grad_samples], 1).norm(dim=1)
        if x.shape[0]
        else torch.zeros(0)
    )
    return flat_norms, [p.grad.detach().clone() for p in critic.parameters()] + before[:0]


def test_per_sample_clipping_bounds_each_person_to_C() -> None:
    torch.manual_seed(0)
    critic = GradSampleModule(Critic(6, (16,)), loss_reduction="sum")
    x = torch.randn(32, 2, 6) * 50  # big inputs -> big raw per-sample gradients
    C = 0.5
    _, grads = _dp_step(critic, x, sigma=0.0, C=C, expected=32)
    total = torch.cat([g.reshape(-1) for g in grads]).norm() * 32  # undo the 1/expected scaling
    assert total <= 32 * C + 1e-4
    # and the raw per-sample gradients really were larger than C (clipping was exercised)
    raw = torch.stack([p.grad_sample.reshape(32, -1).norm(dim=1) for p in critic.parameters()], 1).norm(dim=1)
    assert raw.min() > C


def test_noise_std_is_sigma_times_C_on_an_empty_batch() -> None:
    torch.manual_seed(0)
    critic = GradSampleModule(Critic(20, (64,)), loss_reduction="sum")
    sigma, C, expected = 1.3, 0.7, 1
    _, grads = _dp_step(critic, torch.zeros(0, 2, 20), sigma=sigma, C=C, expected=expected)
    noise = torch.cat([g.reshape(-1) for g in grads])
    # 20*64+64+64+1 = 1409 draws: the sample std is within ~4% of sigma*C with overwhelming odds
    assert noise.std().item() == pytest.approx(sigma * C, rel=0.08)
    assert abs(noise.mean().item()) < 0.1


def _trainer(net: torch.nn.Module, clipping: str, C: float, expected: int) -> PrivateTrainer:
    return PrivateTrainer(
        net,
        ledger=PrivacyLedger(1e-6),
        mechanism="dp-sgd-critic",
        dp=True,
        noise_multiplier=1.0,
        sample_rate=0.1,
        expected_batch_size=expected,
        max_grad_norm=C,
        lr=1e-3,
        clipping=clipping,
        noise_generator=torch.Generator().manual_seed(2),
    )


def test_ghost_clipping_sums_the_same_clipped_gradients_as_per_sample_clipping() -> None:
    torch.manual_seed(0)
    base = Critic(6, (16, 8))
    # samples of 2 rows (the pair loss) at scales from 0.01 to 100: some clipped, some not
    x = torch.randn(40, 2, 6) * torch.logspace(-2, 2, 40)[:, None, None]
    C = 0.5
    per_sample = _trainer(copy.deepcopy(base), "per-sample", C, 40)
    pair_loss(per_sample.module(x)).backward()
    raw = torch.stack([p.grad_sample.reshape(40, -1).norm(dim=1) for p in per_sample.raw.parameters()], 1).norm(dim=1)
    assert (raw > C).sum() >= 10 and (raw < C).sum() >= 10  # both sides of the clip exercised
    per_sample.optimizer.clip_and_accumulate()
    expected = [p.summed_grad for p in per_sample.optimizer.params]

    ghost = _trainer(copy.deepcopy(base), "ghost", C, 40)
    assert ghost.ghost
    ghost._ghost_backward(pair_losses(ghost.module(x)), 40)
    got = [p.grad for p in ghost.raw.parameters()]
    for want, have in zip(expected, got, strict=True):
        assert torch.allclose(want, have, rtol=1e-4, atol=1e-6)


def test_ghost_clipping_steps_count_and_empty_batches_take_pure_noise() -> None:
    torch.manual_seed(0)
    trainer = _trainer(Critic(20, (64,)), "ghost", 0.7, 1)
    before = [p.detach().clone() for p in trainer.raw.parameters()]
    trainer.step(None, 0)  # an empty Poisson batch: a noisy step all the same
    assert trainer.entry.steps == 1
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.raw.parameters(), strict=True))
    x = torch.randn(8, 2, 20)
    trainer.step(pair_losses(trainer.module(x)), 8)
    assert trainer.entry.steps == 2
    with pytest.raises(ValueError, match="per-sample losses"):
        trainer.step(pair_loss(trainer.module(x)), 8)  # a sum cannot be clipped per sample


def test_ghost_and_per_sample_ctgan_fits_spend_the_same_epsilon(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    spent = {}
    for clipping in ("ghost", "per-sample"):
        cfg = CTGANConfig(
            epochs=1.0, batch_size=200, generator_dims=(32,), critic_dims=(32,), z_dim=8, clipping=clipping
        )
        ledger = PrivacyLedger(adult_contract.privacy.delta)
        model = DPCTGAN(adult_contract, cfg, device="cpu").fit(adult_small, ledger=ledger, epsilon=3.0, seed=0)
        spent[clipping] = ledger.epsilon
        assert model.sample(50, seed=1).height == 50
    assert spent["ghost"] == pytest.approx(spent["per-sample"]) and spent["ghost"] <= 3.0


def _tiny_fit(contract: Contract, df: pl.DataFrame, seed: int) -> tuple[DPCTGAN, PrivacyLedger]:
    cfg = CTGANConfig(epochs=1.0, batch_size=200, generator_dims=(32,), critic_dims=(32,), z_dim=8)
    ledger = PrivacyLedger(contract.privacy.delta)
    model = DPCTGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=3.0, seed=seed)
    return model, ledger


def test_seeded_fit_is_reproducible_and_ledger_matches_opacus(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    m1, l1 = _tiny_fit(adult_contract, df, seed=5)
    m2, l2 = _tiny_fit(adult_contract, df, seed=5)
    s1, s2 = m1.sample(300, seed=9), m2.sample(300, seed=9)
    assert s1.equals(s2)
    assert not s1.equals(m1.sample(300, seed=10))
    assert l1.epsilon == l2.epsilon <= 3.0
    # the training entry of our ledger equals Opacus' own accountant attached to the optimizer
    sgd = [e for e in l1.entries if e.mechanism == "dp-sgd-critic"][0]
    alone = PrivacyLedger(l1.delta)
    alone.entries.append(sgd)
    assert m1.accountant is not None
    assert m1.accountant.history == [(sgd.noise_multiplier, sgd.sample_rate, sgd.steps)]
    assert alone.epsilon == pytest.approx(m1.accountant.get_epsilon(l1.delta), rel=1e-9)
    assert [e.mechanism for e in l1.entries] == [
        "codec-histograms",
        "codec-coarse-histograms",  # a small table: its numeric bins are noise-bound (ctgan numeric_refine)
        "marginal-selection",
        "marginal-measurements",
        "dp-sgd-critic",
    ]
    # the whole ledger (codec, exponential-mechanism rounds as their RDP-equivalent Gaussian, pair
    # measurements, DP-SGD) composes exactly as Opacus' RDP accountant given the same history
    from opacus.accountants import RDPAccountant

    from synthgate.models.ledger import ALPHAS

    whole = RDPAccountant()
    whole.history = [(e.noise_multiplier, e.sample_rate, e.steps) for e in l1.entries]
    assert l1.epsilon == pytest.approx(whole.get_epsilon(l1.delta, alphas=ALPHAS), rel=1e-9)


def test_samples_obey_the_contract_and_checkpoint_round_trips(
    tmp_path, adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    model, _ = _tiny_fit(adult_contract, df, seed=1)
    out = model.sample(500, seed=2)
    assert out.columns == adult_contract.modelled_columns and out.height == 500
    assert set(out["income"].to_list()) <= {"<=50K", ">50K"}
    assert out["age"].min() >= 17 and out["age"].max() <= 90
    model.save(tmp_path / "model.pt")
    again = DPCTGAN.load(tmp_path / "model.pt", adult_contract, device="cpu")
    assert again.sample(200, seed=3).equals(model.sample(200, seed=3))
    only = again.sample(300, seed=4, conditions={"sex": "Female"})
    assert only.height == 300
    with pytest.raises(ValueError, match="not in the contract's domain"):
        again.sample(10, seed=4, conditions={"sex": "Other"})
