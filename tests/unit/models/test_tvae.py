"""DP-TVAE: one DP-SGD network (encoder + decoder + learned scales), its loss, ledger and sampling."""

from __future__ import annotations

import copy
import math

import polars as pl
import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from pydantic import ValidationError

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.tvae import DPTVAE, VAE, TVAEConfig, kl_divergence, row_loss
from synthgate.validation.contract import Contract

TINY = TVAEConfig(epochs=1.0, batch_size=200, latent_dim=8, encoder_dims=(32,), decoder_dims=(32,))


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, *, epsilon: float, seed: int, cfg: TVAEConfig = TINY
) -> tuple[DPTVAE, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    model = DPTVAE(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed)
    return model, ledger


@pytest.fixture(scope="module")
def dp_fit(adult_contract: Contract, adult_modelled: pl.DataFrame) -> tuple[DPTVAE, PrivacyLedger]:
    return _fit(adult_contract, adult_modelled, epsilon=3.0, seed=5)


# ---------------------------------------------------------------------------- loss
def test_kl_term_matches_a_hand_computed_case() -> None:
    # μ = (1, 0), log σ² = (0, log 2): ½[(1 + 1 − 1 − 0) + (0 + 2 − 1 − log 2)] = 1 − ½ log 2
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    kl = kl_divergence(mu, logvar)
    assert kl[0].item() == pytest.approx(1.0 - 0.5 * math.log(2.0), abs=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)  # q = prior
    # against torch.distributions as an independent reference
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl, ref, atol=1e-6)


def test_row_loss_is_cross_entropy_plus_gaussian_nll_weighted_plus_kl(adult_contract: Contract) -> None:
    model = DPTVAE(adult_contract, TINY, device="cpu")
    codec = model.codec
    x = torch.zeros(1, codec.dim)
    out = torch.zeros(1, codec.dim)  # uniform logits, tanh mean 0
    log_sigma = torch.full((1, model.n_numeric), math.log(0.5))
    expected_recon = 0.0
    for b in codec.blocks:
        if b.kind == "softmax":
            x[0, b.start] = 1.0
            expected_recon += math.log(b.width)  # CE of a uniform softmax
        else:
            x[0, b.start] = 0.5  # (0.5 − 0)² / (2·0.25) + log 0.5
            expected_recon += 0.5 + math.log(0.5)
    mu, logvar = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    loss, kl = row_loss(codec, x, out, log_sigma, mu, logvar, loss_factor=2.0)
    assert kl.item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(2.0 * expected_recon + 0.5, rel=1e-5)


# ---------------------------------------------------------------------------- DP network
def test_vae_has_no_batchnorm_or_dropout_and_is_deterministic_given_eps(adult_contract: Contract) -> None:
    model = DPTVAE(adult_contract, TINY, device="cpu")
    vae = model._new_vae()
    bad = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout)
    assert not any(isinstance(m, bad) for m in vae.modules())
    x, eps = torch.rand(4, model.codec.dim), torch.randn(4, TINY.latent_dim)
    a = vae(x, eps)
    torch.randn(100)  # moving the global RNG must not change the forward pass
    b = vae(x, eps)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_every_parameter_gets_a_per_sample_gradient_and_is_clipped_to_C(adult_contract: Contract) -> None:
    model = DPTVAE(adult_contract, TINY, device="cpu")
    vae: VAE = model._new_vae()
    plain = copy.deepcopy(vae)  # a hook-free twin for per-row autograd references
    gsm = GradSampleModule(vae, loss_reduction="sum")
    B, C = 16, 0.3
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(B, model.codec.dim, generator=gen) * 2 - 1
    eps = torch.randn(B, TINY.latent_dim, generator=gen)
    opt = DPOptimizer(
        torch.optim.SGD(vae.parameters(), lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=C,
        expected_batch_size=B,
        generator=torch.Generator().manual_seed(1),
    )
    loss, _ = row_loss(model.codec, x, *gsm(x, eps), loss_factor=2.0)
    loss.sum().backward()
    params = [p for p in vae.parameters() if p.requires_grad]
    names = [k for k, p in vae.named_parameters() if p.requires_grad]
    assert "decoder.log_sigma.weight" in names  # the learned σ's are a DP-trained layer
    for k, p in zip(names, params, strict=True):
        assert getattr(p, "grad_sample", None) is not None, f"{k} has no per-sample gradient"
        assert p.grad_sample.shape == (B, *p.shape), k
    # the hooks' per-sample gradients equal a per-row autograd reference (σ layer included)
    for i in (0, 7):
        li, _ = row_loss(model.codec, x[i : i + 1], *plain(x[i : i + 1], eps[i : i + 1]), loss_factor=2.0)
        ref = torch.autograd.grad(li.sum(), list(plain.parameters()))
        for k, p, r in zip(names, params, ref, strict=True):
            assert torch.allclose(p.grad_sample[i], r, atol=1e-5, rtol=1e-4), k
    raw = torch.stack([p.grad_sample.reshape(B, -1).norm(dim=1) for p in params], 1).norm(dim=1)
    assert raw.min() > C  # clipping is exercised for every row
    grad_samples = [p.grad_sample.clone() for p in params]
    opt.pre_step()  # clip + (zero) noise + 1/B scaling into p.grad, no update
    factor = (C / (raw + 1e-6)).clamp(max=1.0)
    assert torch.all(factor * raw <= C + 1e-5)  # each clipped per-sample gradient has norm <= C
    for k, p, g in zip(names, params, grad_samples, strict=True):
        clipped_sum = torch.einsum("i,i...->...", factor, g)
        assert torch.allclose(p.grad * B, clipped_sum, atol=1e-5, rtol=1e-4), k
    total = torch.cat([p.grad.reshape(-1) for p in params]).norm() * B
    assert total <= B * C + 1e-4


# ---------------------------------------------------------------------------- fit
def test_dp_fit_charges_codec_and_vae_within_the_target(dp_fit: tuple[DPTVAE, PrivacyLedger]) -> None:
    model, ledger = dp_fit
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-vae"]
    sgd = ledger.entries[1]
    assert sgd.steps == model.training_summary["steps"] > 0
    assert sgd.noise_multiplier == model.training_summary["noise_multiplier"] > 0
    assert ledger.differentially_private
    assert 2.7 < ledger.epsilon <= 3.0 + 1e-6  # calibrated close to the target, never above
    # Opacus' own accountant saw the same steps
    assert model.accountant is not None
    assert model.accountant.history == [(sgd.noise_multiplier, sgd.sample_rate, sgd.steps)]
    sig = model.training_summary["numeric_sigma"]
    assert len(sig) == model.n_numeric and all(TINY.sigma_min - 1e-6 <= s <= TINY.sigma_max + 1e-6 for s in sig)


def test_non_dp_fit_is_recorded_as_infinite_epsilon(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(adult_contract, adult_modelled.head(400), epsilon=math.inf, seed=0)
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms-non-dp", "dp-sgd-vae-non-dp"]
    assert model.training_summary["differential_privacy"] is False
    assert model.sample(50, seed=0).height == 50


def test_seeded_fit_is_reproducible(
    dp_fit: tuple[DPTVAE, PrivacyLedger], adult_contract: Contract, adult_modelled: pl.DataFrame
) -> None:
    m1, l1 = dp_fit
    m2, l2 = _fit(adult_contract, adult_modelled, epsilon=3.0, seed=5)
    s1 = m1.sample(300, seed=9)
    assert s1.equals(m2.sample(300, seed=9))
    assert not s1.equals(m1.sample(300, seed=10))
    assert l1.epsilon == l2.epsilon


def test_samples_obey_the_contract_and_checkpoint_round_trips(
    tmp_path, dp_fit: tuple[DPTVAE, PrivacyLedger], adult_contract: Contract
) -> None:
    model, _ = dp_fit
    out = model.sample(500, seed=2)
    assert out.columns == adult_contract.modelled_columns and out.height == 500
    for name in adult_contract.modelled_columns:
        col = adult_contract.columns[name]
        s = out[name]
        if hasattr(col, "categories"):
            allowed = set(col.categories) | ({None} if col.nullable else set())
            assert set(s.to_list()) <= allowed, name
        elif col.kind in ("integer", "continuous"):
            assert s.null_count() == 0 or col.nullable, name
            assert s.min() >= col.min and s.max() <= col.max, name
            if col.kind == "integer":
                assert s.dtype == pl.Int64, name
    assert set(out["income"].to_list()) <= {"<=50K", ">50K"}
    # numeric slots are drawn around the decoder mean, not collapsed onto it (codec space)
    block = model._sample_block(500, torch.Generator().manual_seed(0), None)
    tanh_cols = [b.start for b in model.codec.blocks if b.kind == "tanh"]
    assert block[:, tanh_cols].std(dim=0).min() > 0.01
    assert block[:, tanh_cols].abs().max() <= 1.0
    model.save(tmp_path / "tvae.pt")
    blob = torch.load(tmp_path / "tvae.pt", weights_only=True)
    assert set(blob["networks"]) == {"decoder"}  # the encoder is not needed for sampling
    again = DPTVAE.load(tmp_path / "tvae.pt", adult_contract, device="cpu")
    assert again.sample(200, seed=3).equals(model.sample(200, seed=3))


def test_mean_sampling_mode_and_unconditional_contract(dp_fit: tuple[DPTVAE, PrivacyLedger]) -> None:
    model, _ = dp_fit
    assert DPTVAE.conditional is False and model.conditionable_columns() == []
    with pytest.raises(ValueError, match="cannot generate conditionally"):
        model.sample(10, seed=0, conditions={"sex": "Female"})
    mean_model = DPTVAE(model.contract, model.config.model_copy(update={"numeric_sampling": "mean"}), device="cpu")
    mean_model.codec = model.codec
    mean_model.decoder = model.decoder
    mean_model._fitted = True
    a = mean_model.sample(300, seed=1)
    b = model.sample(300, seed=1)
    # the Gaussian draw spreads the numeric columns at least as much as the decoder means
    assert b["age"].std() >= a["age"].std() * 0.9
    assert a.columns == b.columns


def test_clear_errors_for_bad_input(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model = DPTVAE(adult_contract, TINY, device="cpu")
    with pytest.raises(RuntimeError, match="fit\\(\\) or load\\(\\)"):
        model.sample(5, seed=0)
    with pytest.raises(ValueError, match="epsilon must be a number > 0"):
        model.fit(adult_modelled, ledger=PrivacyLedger(1e-6), epsilon=0.0, seed=0)
    with pytest.raises(ValueError, match="modelled columns"):
        model.fit(adult_modelled.drop("age"), ledger=PrivacyLedger(1e-6), epsilon=3.0, seed=0)
    with pytest.raises(ValidationError):
        TVAEConfig(sigma_min=0.5, sigma_init=0.1)
    with pytest.raises(ValidationError):
        TVAEConfig(latent_dim=0)
    with pytest.raises(TypeError, match="TVAEConfig"):
        from synthgate.models.synthesizers.ctgan import CTGANConfig

        DPTVAE(adult_contract, CTGANConfig())  # type: ignore[arg-type]
