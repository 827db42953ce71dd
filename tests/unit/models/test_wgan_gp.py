"""wgan-gp / cwgan-gp: the functorch per-sample path clips and noises, matches autograd, and the
models account every critic step; cwgan-gp generates exactly the requested class."""

from __future__ import annotations

import math

import polars as pl
import pytest
import torch
from torch import nn

from synthgate.models.dp import PrivateTrainer
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.wgan_gp import (
    CWGANGP,
    WGANGP,
    CWGANGPConfig,
    MLPCritic,
    WGANGPConfig,
    gradient_penalty_loss,
)
from synthgate.validation.contract import Contract

# batch_size >= rows: Poisson rate 1, so calibrate_noise is instant (subsampled RDP is slow to
# evaluate); 4 full-batch steps.
TINY = dict(epochs=4.0, batch_size=5000, generator_dims=(32,), critic_dims=(32,), z_dim=8)
GP = 10.0


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------- per-sample DP path
def _trainer(critic: nn.Module, *, dp: bool, sigma: float, C: float, expected: int) -> PrivateTrainer:
    trainer = PrivateTrainer(
        critic,
        ledger=PrivacyLedger(1e-6),
        mechanism="dp-sgd-critic",
        dp=dp,
        noise_multiplier=max(sigma, 1.0),
        sample_rate=0.1,
        expected_batch_size=expected,
        max_grad_norm=C,
        lr=1e-3,
        noise_generator=torch.Generator().manual_seed(1),
        per_sample="functorch",
    )
    if dp:
        trainer.optimizer.noise_multiplier = sigma  # the ledger refuses σ = 0; the optimizer may use it
    return trainer


def _captured_step(trainer: PrivateTrainer, *samples: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Run one step_per_sample and capture p.grad (after clip + noise + scaling) and p.grad_sample,
    just before the inner Adam update."""
    seen: dict[str, list[torch.Tensor]] = {}
    inner = trainer.optimizer.original_optimizer if trainer.dp else trainer.optimizer
    params = list(trainer.raw.parameters())

    def capture(*_a, **_k) -> None:
        seen["grad"] = [p.grad.detach().clone() for p in params]
        if trainer.dp:
            seen["grad_sample"] = [p.grad_sample.detach().clone() for p in params]

    inner.step = capture  # instance attribute: the DPOptimizer calls original_optimizer.step()
    trainer.step_per_sample(gradient_penalty_loss(trainer.raw, GP), *samples)
    return seen


def _flat(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def test_per_sample_path_clips_each_sample_to_C() -> None:
    torch.manual_seed(0)
    critic = MLPCritic(6, (16,))
    b, C, expected = 32, 0.5, 40
    real, fake = torch.randn(b, 6) * 50, torch.randn(b, 6) * 50  # huge inputs -> huge raw gradients
    alpha = torch.rand(b, 1)
    trainer = _trainer(critic, dp=True, sigma=0.0, C=C, expected=expected)
    seen = _captured_step(trainer, real, fake, alpha)
    raw = torch.stack([g.reshape(b, -1).norm(dim=1) for g in seen["grad_sample"]], 1).norm(dim=1)
    assert raw.min() > 10 * C  # clipping was really exercised on every sample
    total = _flat(seen["grad"]).norm()
    assert 0 < total <= b * C / expected + 1e-5
    assert trainer.entry.steps == 1


def test_per_sample_path_noise_std_on_an_empty_batch() -> None:
    torch.manual_seed(0)
    critic = MLPCritic(20, (64,))  # 20*64 + 64 + 64 + 1 = 1409 noisy coordinates
    sigma, C, expected = 1.3, 0.7, 4
    trainer = _trainer(critic, dp=True, sigma=sigma, C=C, expected=expected)
    seen = _captured_step(trainer, torch.zeros(0, 20), torch.zeros(0, 20), torch.zeros(0, 1))
    noise = _flat(seen["grad"])
    # 1409 draws: the sample std is within ~4% of σ·C/expected with overwhelming odds
    assert noise.std().item() == pytest.approx(sigma * C / expected, rel=0.08)
    assert abs(noise.mean().item()) < 0.1 * sigma * C / expected * 4
    assert trainer.entry.steps == 1  # an empty Poisson batch is an accounted step too


@pytest.mark.parametrize("dp", [False, True])
def test_functorch_gradient_equals_autograd_mean_with_penalty(dp: bool) -> None:
    """Non-DP: the step's gradient is the batch mean of the per-sample losses' gradients, penalty
    included (reference: plain autograd with create_graph). DP with a huge C and σ = 0 (nothing
    clipped, no noise, expected batch = b): the same."""
    torch.manual_seed(0)
    critic = MLPCritic(5, (16, 16))
    b = 12
    real, fake, alpha = torch.randn(b, 5), torch.randn(b, 5), torch.rand(b, 1)

    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (gx,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    penalty = (torch.sqrt(gx.pow(2).sum(1) + 1e-12) - 1) ** 2
    loss = (critic(fake) - critic(real) + GP * penalty).mean()
    reference = _flat(list(torch.autograd.grad(loss, list(critic.parameters()))))
    assert reference.norm() > 0

    trainer = _trainer(critic, dp=dp, sigma=0.0, C=1e6, expected=b)
    got = _flat(_captured_step(trainer, real, fake, alpha)["grad"])
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- WGAN-GP model
def _fit(cls, contract: Contract, df: pl.DataFrame, *, epsilon: float = 3.0, seed: int = 0, **kw):
    ledger = PrivacyLedger(contract.privacy.delta)
    cfg_cls = CWGANGPConfig if cls is CWGANGP else WGANGPConfig
    model = cls(contract, cfg_cls(**{**TINY, **kw}), device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed)
    return model, ledger


@pytest.fixture(scope="module")
def wgan(adult_contract: Contract, adult_modelled: pl.DataFrame) -> tuple[WGANGP, PrivacyLedger]:
    return _fit(WGANGP, adult_contract, adult_modelled, seed=3, n_critic=2)


def test_wgan_dp_ledger_counts_every_critic_step(wgan, adult_modelled: pl.DataFrame) -> None:
    model, ledger = wgan
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-critic"]
    q, planned = model._plan(adult_modelled.height)
    sgd = ledger.entries[1]
    assert sgd.steps == planned == model.training_summary["steps"]
    assert sgd.sample_rate == pytest.approx(q)
    assert model.training_summary["generator_steps"] == planned // 2
    assert 2.9 < ledger.epsilon <= 3.0 + 1e-6
    assert model.accountant is not None
    assert model.accountant.history == [(sgd.noise_multiplier, sgd.sample_rate, sgd.steps)]
    assert model.critic is not None
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout) for m in model.critic.modules())


def test_wgan_seeded_output_obeys_contract_and_round_trips(
    tmp_path, wgan, adult_contract: Contract, adult_modelled: pl.DataFrame
) -> None:
    model, ledger = wgan
    again, ledger2 = _fit(WGANGP, adult_contract, adult_modelled, seed=3, n_critic=2)
    assert again.sample(300, seed=1).equals(model.sample(300, seed=1))
    assert not model.sample(300, seed=1).equals(model.sample(300, seed=2))
    assert ledger.epsilon == ledger2.epsilon
    out = model.sample(1000, seed=4)
    assert out.columns == adult_contract.modelled_columns and out.schema == adult_modelled.schema
    for name in adult_contract.modelled_columns:
        col = adult_contract.columns[name]
        if not col.nullable:
            assert out[name].null_count() == 0, name
        if col.kind == "categorical":
            assert set(out[name].drop_nulls().to_list()) <= set(col.categories), name
        elif col.kind == "integer":
            assert col.min <= out[name].min() and out[name].max() <= col.max, name
    model.save(tmp_path / "w.pt")
    loaded = WGANGP.load(tmp_path / "w.pt", adult_contract, device="cpu")
    assert loaded.sample(200, seed=5).equals(model.sample(200, seed=5))
    with pytest.raises(ValueError, match="cannot generate conditionally"):
        model.sample(10, seed=0, conditions={"income": ">50K"})


def test_wgan_non_dp_mode_is_recorded_as_infinite(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(WGANGP, adult_contract, adult_modelled, epsilon=math.inf)
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms-non-dp", "dp-sgd-critic-non-dp"]
    assert ledger.entries[1].steps == model._plan(adult_modelled.height)[1]
    assert model.sample(20, seed=0).height == 20


# ---------------------------------------------------------------------------- CWGAN-GP model
@pytest.fixture(scope="module")
def cwgan(adult_contract: Contract, adult_modelled: pl.DataFrame) -> tuple[CWGANGP, PrivacyLedger]:
    return _fit(CWGANGP, adult_contract, adult_modelled, seed=2)


def test_cwgan_samples_only_the_requested_class(tmp_path, cwgan, adult_contract: Contract) -> None:
    model, ledger = cwgan
    assert model.conditionable_columns() == ["income"]  # the contract's target by default
    assert ledger.epsilon <= 3.0 + 1e-6
    only = model.sample(1000, seed=1, conditions={"income": ">50K"})
    assert only.height == 1000 and set(only["income"].to_list()) == {">50K"}
    with pytest.raises(ValueError, match="not in the contract's domain"):
        model.sample(10, seed=1, conditions={"income": "lots"})
    with pytest.raises(ValueError, match="cannot generate conditionally"):
        model.sample(10, seed=1, conditions={"sex": "Female"})
    model.save(tmp_path / "c.pt")
    loaded = CWGANGP.load(tmp_path / "c.pt", adult_contract, device="cpu")
    a = loaded.sample(300, seed=7, conditions={"income": "<=50K"})
    assert a.equals(model.sample(300, seed=7, conditions={"income": "<=50K"}))
    assert set(a["income"].to_list()) == {"<=50K"}


def test_cwgan_unconditional_class_share_follows_dp_frequencies(cwgan) -> None:
    model, _ = cwgan
    out = model.sample(4000, seed=3)
    share = (out["income"] == ">50K").mean()
    # classes are drawn from the DP frequencies then imposed: binomial sd ≈ 0.007 at n = 4000,
    # so 0.03 is > 4 standard deviations
    assert share == pytest.approx(model.codec.frequencies["income"][1], abs=0.03)


def test_cwgan_critic_reads_row_and_its_own_class(cwgan, adult_modelled: pl.DataFrame) -> None:
    model, _ = cwgan
    b = model._block
    assert model.critic is not None and model.critic.net[0].in_features == model.codec.dim + b.width
    x = torch.eye(model.codec.dim)[:5]
    x[:, b.start : b.start + b.width] = torch.tensor([[0.0, 1.0]] * 5)
    seen = model._critic_input(x)
    assert torch.equal(seen[:, : model.codec.dim], x)
    assert torch.equal(seen[:, model.codec.dim :], x[:, b.start : b.start + b.width])


def test_cwgan_condition_column_must_be_categorical_or_boolean(adult_contract: Contract) -> None:
    with pytest.raises(ValueError, match=r"'age' \(integer\)"):
        CWGANGP(adult_contract, CWGANGPConfig(condition_column="age"), device="cpu")
    with pytest.raises(ValueError, match="not a column of the contract"):
        CWGANGP(adult_contract, CWGANGPConfig(condition_column="nope"), device="cpu")
    no_target = Contract.model_validate({**adult_contract.model_dump(), "target": None})
    with pytest.raises(ValueError, match="no target"):
        CWGANGP(no_target, device="cpu")
    by_sex = CWGANGP(adult_contract, CWGANGPConfig(condition_column="sex"), device="cpu")
    assert by_sex.conditionable_columns() == ["sex"] and by_sex.cond_dim == 2
