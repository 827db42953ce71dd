"""DP-medGAN: two DP-SGD phases under one noise multiplier, the public batch-mean stand-in, the contract.

Runs on the synthetic health table (tests/health.py), with tiny networks.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from opacus import GradSampleModule
from opacus.validators import ModuleValidator

from synthgate.models.dp import init_uniform_, pair_loss
from synthgate.models.ledger import PrivacyLedger, epsilon_of
from synthgate.models.synthesizers.base import TrainingProgress
from synthgate.models.synthesizers.medgan import MedGAN, MedGANConfig, reconstruction_loss
from synthgate.validation.contract import Contract
from tests.health import COUNT_BOUNDS, DX_COLUMNS, health_table

TINY = MedGANConfig(
    epochs=1.0,
    autoencoder_epochs=1.0,
    batch_size=100,
    latent_dim=16,
    z_dim=16,
    generator_dims=(16, 16),
    discriminator_dims=(32,),
)
# DP fits use Poisson rate q = 1 (batch_size > n): the ledger's RDP analysis of a subsampled
# Gaussian at q < 1 costs seconds per calibration on a busy 2-core box, at q = 1 it is closed-form.
# The non-DP fits keep q < 1, so Poisson sampling is exercised too.
TINY_DP = TINY.model_copy(update={"batch_size": 5000, "epochs": 2.0, "autoencoder_epochs": 3.0})
EPS = 3.0


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, *, epsilon: float, seed: int, cfg: MedGANConfig = TINY, progress=None
) -> tuple[MedGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    model = MedGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed, progress=progress)
    return model, ledger


@pytest.fixture(scope="module")
def dp_fit(
    health_contract: Contract, health_rows: pl.DataFrame
) -> tuple[MedGAN, PrivacyLedger, list[TrainingProgress]]:
    reports: list[TrainingProgress] = []
    model, ledger = _fit(health_contract, health_rows, epsilon=EPS, seed=3, cfg=TINY_DP, progress=reports.append)
    return model, ledger, reports


# ---------------------------------------------------------------------------- ledger
def test_both_phases_share_one_sigma_and_compose_to_the_target(dp_fit) -> None:
    model, ledger, _ = dp_fit
    s = model.training_summary
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-autoencoder", "dp-sgd-discriminator"]
    codec_entry, ae, disc = ledger.entries
    q = s["sample_rate"]
    assert ae.steps == s["autoencoder_steps"] == math.ceil(TINY_DP.autoencoder_epochs / q) == 3
    assert disc.steps == s["steps"] == math.ceil(TINY_DP.epochs / q) == 2
    assert ae.noise_multiplier == disc.noise_multiplier == s["noise_multiplier"] > 0
    assert ae.sample_rate == disc.sample_rate == q
    assert EPS - 0.05 <= ledger.epsilon <= EPS + 1e-6
    # calibrated tightly: 5% less noise on both phases would overspend the budget
    less = [
        (codec_entry.noise_multiplier, 1.0, 1),
        (0.95 * ae.noise_multiplier, q, ae.steps),
        (0.95 * ae.noise_multiplier, q, disc.steps),
    ]
    assert epsilon_of(less, ledger.delta) > EPS
    # each phase's entry is what Opacus' own accountant recorded for that optimizer
    for name, entry in (("autoencoder", ae), ("discriminator", disc)):
        assert model.accountants[name].history == [(entry.noise_multiplier, entry.sample_rate, entry.steps)]


def test_progress_hides_the_real_rows_reconstruction_loss(dp_fit) -> None:
    model, _, reports = dp_fit
    s = model.training_summary
    assert reports and reports[-1].step == reports[-1].steps == s["autoencoder_steps"] + s["steps"]
    pre = [r for r in reports if r.step <= s["autoencoder_steps"]]
    gan = [r for r in reports if r.step > s["autoencoder_steps"]]
    assert pre and all(math.isnan(r.generator_loss) and math.isnan(r.critic_fake_score) for r in pre)
    assert gan and all(math.isfinite(r.generator_loss) for r in gan)
    assert [r.epsilon for r in reports] == sorted(r.epsilon for r in reports)


def test_non_dp_mode_is_recorded_as_infinite(health_contract: Contract, health_rows: pl.DataFrame) -> None:
    model, ledger = _fit(health_contract, health_rows, epsilon=math.inf, seed=3)
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms-non-dp",
        "dp-sgd-autoencoder-non-dp",
        "dp-sgd-discriminator-non-dp",
    ]
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    s = model.training_summary
    assert s["differential_privacy"] is False and s["noise_multiplier"] == 0.0 and s["max_grad_norm"] is None
    assert ledger.entries[1].steps == s["autoencoder_steps"] and ledger.entries[2].steps == s["steps"]
    assert model.sample(50, seed=0).height == 50


# ---------------------------------------------------------------------------- output
def test_samples_obey_the_contract(dp_fit, health_contract: Contract) -> None:
    model, _, _ = dp_fit
    out = model.sample(700, seed=2)
    assert out.columns == health_contract.modelled_columns and out.height == 700
    for name in [*DX_COLUMNS, "readmitted"]:
        assert out.schema[name] == pl.Boolean and out[name].null_count() == 0, name
    for name, (lo, hi) in COUNT_BOUNDS.items():
        assert out.schema[name] == pl.Int64, name
        assert lo <= out[name].min() and out[name].max() <= hi, name
    assert model.sample(0, seed=2).height == 0


def test_seeded_dp_fit_reproduces_and_checkpoint_round_trips(
    tmp_path, dp_fit, health_contract: Contract, health_rows: pl.DataFrame
) -> None:
    model, ledger, _ = dp_fit
    again, ledger2 = _fit(health_contract, health_rows, epsilon=EPS, seed=3, cfg=TINY_DP)
    assert again.sample(300, seed=9).equals(model.sample(300, seed=9))
    assert ledger2.to_dict() == ledger.to_dict()
    assert not model.sample(300, seed=9).equals(model.sample(300, seed=10))

    model.save(tmp_path / "medgan.pt")
    blob = torch.load(tmp_path / "medgan.pt", weights_only=True)
    assert set(blob["networks"]) == {"generator", "decoder"}  # the DP decoder, fine-tuned on fakes only
    loaded = MedGAN.load(tmp_path / "medgan.pt", health_contract, device="cpu")
    assert loaded.sample(300, seed=4).equals(model.sample(300, seed=4))


def test_other_seed_gives_other_samples(health_contract: Contract, health_rows: pl.DataFrame) -> None:
    a, _ = _fit(health_contract, health_rows, epsilon=math.inf, seed=1)
    b, _ = _fit(health_contract, health_rows, epsilon=math.inf, seed=2)
    assert not a.sample(200, seed=0).equals(b.sample(200, seed=0))


# ---------------------------------------------------------------------------- errors
def test_clear_errors_for_bad_input(health_contract: Contract, health_rows: pl.DataFrame) -> None:
    model = MedGAN(health_contract, TINY, device="cpu")
    ledger = PrivacyLedger(health_contract.privacy.delta)
    with pytest.raises(ValueError, match="or math.inf for a non-DP baseline"):
        model.fit(health_rows, ledger=ledger, epsilon=0.0, seed=0)
    with pytest.raises(ValueError, match=r"missing \['readmitted'\]"):
        model.fit(health_rows.drop("readmitted"), ledger=ledger, epsilon=EPS, seed=0)
    with pytest.raises(ValueError, match="has no rows"):
        model.fit(health_rows.head(0), ledger=ledger, epsilon=EPS, seed=0)
    assert ledger.entries == []  # refused before any row was read
    with pytest.raises(RuntimeError, match="call fit"):
        model.sample(5, seed=0)
    with pytest.raises(ValueError, match="extra|Extra"):
        MedGANConfig(latent=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="needs a MedGANConfig"):
        MedGAN(health_contract, object(), device="cpu")  # type: ignore[arg-type]


def test_no_conditional_sampling(dp_fit) -> None:
    model, _, _ = dp_fit
    assert MedGAN.conditional is False and model.conditionable_columns() == []
    with pytest.raises(ValueError, match="cannot generate conditionally"):
        model.sample(5, seed=0, conditions={"readmitted": True})


# ---------------------------------------------------------------------------- DP invariants
def test_private_networks_pass_opacus_validation_and_have_no_batchnorm(health_contract: Contract) -> None:
    model = MedGAN(health_contract, MedGANConfig(), device="cpu")
    for net in (model._make_encoder(), model._make_decoder(), model._make_discriminator()):
        assert ModuleValidator.validate(net, strict=True) == []
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    # the generator keeps medGAN's BatchNorm: it never reads a real row
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model._make_generator().modules())


def _per_sample_grads(net: torch.nn.Module, pairs: torch.Tensor) -> dict[str, torch.Tensor]:
    params = {k: p.detach() for k, p in net.named_parameters()}

    def one(p: dict, x: torch.Tensor) -> torch.Tensor:
        return pair_loss(torch.func.functional_call(net, p, (x.unsqueeze(0),)))

    return torch.func.vmap(torch.func.grad(one), in_dims=(None, 0))(params, pairs)


def test_real_side_of_a_pair_never_depends_on_other_real_rows(
    dp_fit, health_contract: Contract, health_rows: pl.DataFrame
) -> None:
    """Replacing and permuting the OTHER real rows of a batch leaves row 0's per-sample gradient unchanged.

    With the paper's minibatch averaging over real rows it would change (checked below), so the
    test can tell the leak from the fix.
    """
    model, _, _ = dp_fit
    X = torch.as_tensor(model.codec.encode(health_rows, rng=np.random.default_rng(0)))
    disc = model._make_discriminator()
    init_uniform_(disc, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    fake, fake_mean = model._fake_partners(8, 8, g)
    batch_a = X[:8]
    batch_b = torch.cat([X[:1], X[100:107].flip(0)])  # same row 0, other rows replaced and permuted
    ga = _per_sample_grads(disc, model._pairs(batch_a, fake, fake_mean))
    gb = _per_sample_grads(disc, model._pairs(batch_b, fake, fake_mean))
    for k in ga:
        torch.testing.assert_close(ga[k][0], gb[k][0], rtol=0, atol=0)
        assert not torch.equal(ga[k][1], gb[k][1]) or k.endswith("bias")  # other rows did change

    def leaky(real: torch.Tensor) -> torch.Tensor:  # the paper's real-batch mean
        real_mean = real.mean(0, keepdim=True).expand_as(real)
        return torch.stack([torch.cat([real, real_mean], 1), torch.cat([fake, fake_mean], 1)], 1)

    la, lb = _per_sample_grads(disc, leaky(batch_a)), _per_sample_grads(disc, leaky(batch_b))
    assert any(not torch.allclose(la[k][0], lb[k][0]) for k in la)

    # Opacus' hooks (PrivateTrainer's other path) see the same per-sample gradients of a pair
    hooked = GradSampleModule(disc, loss_reduction="sum")
    pair_loss(hooked(model._pairs(batch_a, fake, fake_mean))).backward()
    for k, p in disc.named_parameters():
        torch.testing.assert_close(p.grad_sample, ga[k], rtol=1e-4, atol=1e-6)


def test_public_mean_is_the_expected_encoded_row(health_contract: Contract) -> None:
    """Softmax blocks: the DP frequencies. Tanh slots: 0, the mean of 2u − 1 for u ~ U(0, 1).

    With exact (non-DP) statistics the empirical mean of the encoded rows matches it.
    """
    df = health_table(20000, seed=5)
    model = MedGAN(health_contract, TINY, device="cpu")
    model.codec.fit_non_dp(df, ledger=PrivacyLedger(1e-6))
    m = model._public_mean().numpy()
    for b in model.codec.blocks:
        sl = slice(b.start, b.start + b.width)
        if b.kind == "tanh":
            assert m[sl] == pytest.approx([0.0])
        else:
            np.testing.assert_allclose(m[sl], model.codec.frequencies[b.column], rtol=1e-6)
    empirical = model.codec.encode(df, rng=np.random.default_rng(0), dtype=np.float64).mean(0)
    np.testing.assert_allclose(empirical, m, atol=0.02)


def test_fake_partners_do_not_depend_on_the_poisson_batch_size(dp_fit) -> None:
    model, _, _ = dp_fit
    small = model._fake_partners(3, 10, torch.Generator().manual_seed(7))
    large = model._fake_partners(25, 10, torch.Generator().manual_seed(7))
    assert large[0].shape == (25, model.codec.dim)
    torch.testing.assert_close(small[0], large[0][:3])
    torch.testing.assert_close(small[1], large[1][:3])
    # each row's mean is its own chunk's mean
    torch.testing.assert_close(large[1][12], large[0][10:20].mean(0))


def test_reconstruction_loss_is_per_row(dp_fit, health_rows: pl.DataFrame) -> None:
    model, _, _ = dp_fit
    X = torch.as_tensor(model.codec.encode(health_rows.head(6), rng=np.random.default_rng(0)))
    logits = torch.randn(6, model.codec.dim, generator=torch.Generator().manual_seed(0))
    per_row = reconstruction_loss(model.codec, logits, X)
    assert per_row.shape == (6,) and (per_row > 0).all()
    for i in range(6):
        torch.testing.assert_close(per_row[i], reconstruction_loss(model.codec, logits[i : i + 1], X[i : i + 1])[0])
    # a perfect softmax fit of the one-hot blocks and exact tanh slots gives ~0
    exact = torch.where(X > 0.5, 30.0, -30.0)
    for b in model.codec.blocks:
        if b.kind == "tanh":
            exact[:, b.start] = torch.atanh(X[:, b.start].clamp(-0.999, 0.999))
    assert reconstruction_loss(model.codec, exact, X).max() < 1e-3
