"""DP-corGAN: medGAN's DP loop with 1-D convolutional networks that Opacus accepts.

Runs on the synthetic health table (tests/health.py), with tiny networks.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from opacus.validators import ModuleValidator
from pydantic import ValidationError

from synthgate.models.dp import init_uniform_, pair_loss
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.corgan import (
    ConvDecoder,
    ConvDiscriminator,
    ConvEncoder,
    ConvGenerator,
    CorGAN,
    CorGANConfig,
)
from synthgate.models.synthesizers.medgan import MedGAN
from synthgate.validation.contract import Contract
from tests.health import COUNT_BOUNDS, DX_COLUMNS

TINY = CorGANConfig(
    epochs=1.0,
    autoencoder_epochs=1.0,
    batch_size=100,
    latent_dim=16,
    z_dim=8,
    channels=(4, 8),
    generator_channels=4,
    generator_length=8,
    generator_blocks=1,
)
# q = 1 (batch_size > n) for DP fits: the ledger's RDP calibration is closed-form there (fast);
# the non-DP fits keep q < 1 so Poisson sampling is exercised.
TINY_DP = TINY.model_copy(update={"batch_size": 5000, "epochs": 2.0, "autoencoder_epochs": 3.0})
EPS = 3.0


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, *, epsilon: float, seed: int, cfg: CorGANConfig = TINY
) -> tuple[CorGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    return CorGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed), ledger


@pytest.fixture(scope="module")
def dp_fit(health_contract: Contract, health_rows: pl.DataFrame) -> tuple[CorGAN, PrivacyLedger]:
    return _fit(health_contract, health_rows, epsilon=EPS, seed=4, cfg=TINY_DP)


# ---------------------------------------------------------------------------- networks
def test_private_networks_pass_opacus_strict_validation(health_contract: Contract) -> None:
    model = CorGAN(health_contract, CorGANConfig(), device="cpu")
    for net in (model._make_encoder(), model._make_decoder(), model._make_discriminator()):
        assert ModuleValidator.validate(net, strict=True) == []
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.Dropout) for m in net.modules())
        assert any(isinstance(m, torch.nn.Conv1d) for m in net.modules())
    gen = model._make_generator()  # never reads a real row: BatchNorm allowed
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in gen.modules())
    assert any(isinstance(m, torch.nn.Conv1d) for m in gen.modules())


@pytest.mark.parametrize("d", [7, 53, 112])
def test_conv_networks_keep_shapes_for_any_row_width(d: int) -> None:
    g = torch.Generator().manual_seed(0)
    enc, dec = ConvEncoder(d, (4, 8, 8), 5, 16), ConvDecoder(16, (4, 8, 8), 5, d)
    gen, disc = ConvGenerator(8, 4, 6, 2, 3, 16), ConvDiscriminator(d, (4, 8), 5)
    for net in (enc, dec, gen, disc):
        init_uniform_(net, g)
    x = torch.rand(5, d)
    assert enc(x).shape == (5, 16) and enc(x).abs().max() < 1
    assert dec(enc(x)).shape == (5, d)
    assert gen(torch.randn(5, 8, generator=g)).shape == (5, 16)
    assert disc(torch.rand(5, 2 * d)).shape == (5,)
    assert disc(torch.rand(5, 2, 2 * d)).shape == (5, 2)


def test_encoder_reads_the_row_as_a_one_channel_sequence_with_local_filters() -> None:
    enc = ConvEncoder(40, (4,), 3, 8)
    first = enc.convs[0]
    assert isinstance(first, torch.nn.Conv1d) and first.in_channels == 1 and first.kernel_size == (3,)
    # one conv layer, kernel 3, stride 2: output position j only sees inputs 2j-1..2j+1
    x = torch.zeros(1, 40, requires_grad=True)
    enc.convs(x.unsqueeze(1))[0, :, 5].sum().backward()
    assert set(x.grad[0].nonzero().flatten().tolist()) <= {9, 10, 11}


def test_critic_scores_each_half_of_a_pair_separately() -> None:
    d = 20
    disc = ConvDiscriminator(d, (4, 8), 5)
    init_uniform_(disc, torch.Generator().manual_seed(0))
    pairs = torch.rand(6, 2, 2 * d)
    other = pairs.clone()
    other[:, 1] = torch.rand(6, 2 * d)  # new fake halves
    torch.testing.assert_close(disc(pairs)[:, 0], disc(other)[:, 0])  # real scores untouched
    torch.testing.assert_close(disc(pairs)[:, 0], disc(pairs[:, 0]))


def test_sub_pixel_decoder_can_give_each_position_its_own_output() -> None:
    """Unlike a plain upsample + convolution, the decoder is not forced to repeat values in pairs."""
    dec = ConvDecoder(4, (4, 4), 3, 16)
    init_uniform_(dec, torch.Generator().manual_seed(0))
    out = dec(torch.randn(3, 4, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(out[:, 0::2], out[:, 1::2])


def test_kernel_size_must_be_odd_and_unknown_options_are_rejected() -> None:
    with pytest.raises(ValidationError, match="kernel_size must be odd"):
        CorGANConfig(kernel_size=4)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CorGANConfig(channel=(3,))  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- the DP loop (medGAN's)
def test_corgan_reuses_medgans_training_loop() -> None:
    assert issubclass(CorGAN, MedGAN)
    assert CorGAN.fit is MedGAN.fit and CorGAN._pairs is MedGAN._pairs
    assert CorGAN.discriminator_per_sample == "functorch"  # the conv critic folds pairs into its batch
    assert CorGAN.name == "corgan" and CorGAN.conditional is False


def test_dp_fit_charges_two_phases_with_one_sigma(dp_fit) -> None:
    model, ledger = dp_fit
    s = model.training_summary
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-autoencoder", "dp-sgd-discriminator"]
    _, ae, disc = ledger.entries
    assert (ae.steps, disc.steps) == (s["autoencoder_steps"], s["steps"]) == (3, 2)
    assert ae.noise_multiplier == disc.noise_multiplier == s["noise_multiplier"] > 0
    assert EPS - 0.05 <= ledger.epsilon <= EPS + 1e-6
    for name, entry in (("autoencoder", ae), ("discriminator", disc)):
        assert model.accountants[name].history == [(entry.noise_multiplier, entry.sample_rate, entry.steps)]


def test_non_dp_mode_is_recorded_as_infinite(health_contract: Contract, health_rows: pl.DataFrame) -> None:
    model, ledger = _fit(health_contract, health_rows, epsilon=math.inf, seed=4)
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    assert [e.mechanism for e in ledger.entries][1:] == ["dp-sgd-autoencoder-non-dp", "dp-sgd-discriminator-non-dp"]
    assert model.training_summary["differential_privacy"] is False
    assert (
        ledger.entries[2].steps
        == model.training_summary["steps"]
        == math.ceil(1.0 / model.training_summary["sample_rate"])
    )


def test_samples_obey_the_contract_reproduce_and_round_trip(
    tmp_path, dp_fit, health_contract: Contract, health_rows: pl.DataFrame
) -> None:
    model, ledger = dp_fit
    out = model.sample(500, seed=2)
    assert out.columns == health_contract.modelled_columns and out.height == 500
    for name in [*DX_COLUMNS, "readmitted"]:
        assert out.schema[name] == pl.Boolean and out[name].null_count() == 0, name
    for name, (lo, hi) in COUNT_BOUNDS.items():
        assert out.schema[name] == pl.Int64 and lo <= out[name].min() and out[name].max() <= hi, name

    again, ledger2 = _fit(health_contract, health_rows, epsilon=EPS, seed=4, cfg=TINY_DP)
    assert again.sample(500, seed=2).equals(out) and ledger2.to_dict() == ledger.to_dict()
    assert not model.sample(500, seed=3).equals(out)

    model.save(tmp_path / "corgan.pt")
    loaded = CorGAN.load(tmp_path / "corgan.pt", health_contract, device="cpu")
    assert isinstance(loaded.decoder, ConvDecoder) and isinstance(loaded.generator, ConvGenerator)
    assert loaded.sample(300, seed=5).equals(model.sample(300, seed=5))
    with pytest.raises(ValueError, match="holds a 'corgan' model"):
        MedGAN.load(tmp_path / "corgan.pt", health_contract, device="cpu")


def test_real_side_of_a_pair_never_depends_on_other_real_rows(dp_fit, health_rows: pl.DataFrame) -> None:
    model, _ = dp_fit
    X = torch.as_tensor(model.codec.encode(health_rows, rng=np.random.default_rng(0)))
    disc = model._make_discriminator()
    init_uniform_(disc, torch.Generator().manual_seed(0))
    fake, fake_mean = model._fake_partners(6, 6, torch.Generator().manual_seed(1))
    params = {k: p.detach() for k, p in disc.named_parameters()}

    def grads(real: torch.Tensor) -> dict[str, torch.Tensor]:
        def one(p: dict, x: torch.Tensor) -> torch.Tensor:
            return pair_loss(torch.func.functional_call(disc, p, (x.unsqueeze(0),)))

        return torch.func.vmap(torch.func.grad(one), in_dims=(None, 0))(params, model._pairs(real, fake, fake_mean))

    a = grads(X[:6])
    b = grads(torch.cat([X[:1], X[200:205].flip(0)]))
    for k in a:
        torch.testing.assert_close(a[k][0], b[k][0], rtol=0, atol=0)
