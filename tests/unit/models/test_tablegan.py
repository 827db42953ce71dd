"""table-GAN under DP: the square layout, the DP networks, the feature-moment mechanism, the ledger.

What is specific to this model: rows padded into side x side matrices; a discriminator and a
classifier that read real rows (GroupNorm only, Opacus-valid, a real row and its fake partner
clipped as one sample); the released real feature moments (clipping bound C_f, noise σ·C_f);
three phases that share one noise multiplier and compose with the codec to the target ε.
"""

from __future__ import annotations

import copy
import math

import polars as pl
import pytest
import torch
from opacus import GradSampleModule
from opacus.validators import ModuleValidator
from pydantic import ValidationError
from torch import nn

from synthgate.models.dp import pair_loss
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.tablegan import (
    Classifier,
    Discriminator,
    Generator,
    TableGAN,
    TableGANConfig,
    from_square,
    release_feature_moments,
    side_for,
    to_square,
)
from synthgate.validation.contract import CategoricalColumn, Contract

TINY = TableGANConfig(
    epochs=0.5,
    batch_size=48,
    z_dim=8,
    generator_channels=4,
    discriminator_channels=2,
    norm_groups=2,
    feature_dim=4,
)
EPS = 3.0


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, *, epsilon: float = EPS, seed: int = 0, cfg: TableGANConfig = TINY, **kw
) -> tuple[TableGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    model = TableGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed, **kw)
    return model, ledger


@pytest.fixture(scope="module")
def dp_fit(adult_contract: Contract, adult_modelled: pl.DataFrame) -> tuple[TableGAN, PrivacyLedger, list]:
    seen: list = []
    model, ledger = _fit(adult_contract, adult_modelled, progress=seen.append)
    return model, ledger, seen


# ---------------------------------------------------------------------------- square layout
def test_side_is_ceil_sqrt_and_padding_round_trips() -> None:
    assert [side_for(d) for d in (1, 2, 4, 5, 9, 10, 110, 121, 122)] == [1, 2, 2, 3, 3, 4, 11, 11, 12]
    with pytest.raises(ValueError, match="at least one entry"):
        side_for(0)
    for d in (1, 7, 110):
        x = torch.randn(5, d)
        side = side_for(d)
        img = to_square(x, side)
        assert img.shape == (5, 1, side, side)
        assert torch.equal(from_square(img, d), x)  # the first d entries are the codec vector
        assert torch.count_nonzero(img.reshape(5, -1)[:, d:]) == 0  # the rest is zero padding
        assert torch.equal(img[:, 0, 0, : min(d, side)], x[:, : min(d, side)])  # row-major
    with pytest.raises(ValueError, match="does not fit"):
        to_square(torch.zeros(2, 10), 3)


def test_networks_map_any_dim_through_the_square(adult_contract: Contract) -> None:
    for d in (1, 3, 17, 110):
        z = torch.randn(4, 8)
        assert Generator(8, d, 4)(z).shape == (4, d)
        x = torch.rand(4, d)
        assert Discriminator(d, 2, 4, 2)(x).shape == (4,)
        assert Discriminator(d, 2, 4, 2)(torch.stack([x, x], 1)).shape == (4, 2)
        assert Classifier(d, 2, 4, 2, 3)(x).shape == (4, 3)
    model = TableGAN(adult_contract, TINY, device="cpu")
    assert model.side == 11 == side_for(model.codec.dim)


# ---------------------------------------------------------------------------- DP networks
def test_discriminator_and_classifier_are_opacus_valid_without_batchnorm() -> None:
    for net in (Discriminator(110, 8, 16, 4), Classifier(110, 8, 16, 4, 2)):
        assert ModuleValidator.validate(net, strict=True) == []  # raises on BatchNorm & co.
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        assert any(isinstance(m, nn.GroupNorm) for m in net.modules())
    # the generator may keep BatchNorm: it never reads a real row
    assert any(isinstance(m, nn.BatchNorm2d) for m in Generator(8, 110, 4).modules())


def test_a_real_row_and_its_fake_partner_are_one_sample_for_clipping() -> None:
    """Opacus' per-sample gradient of a (B, 2, d) pair = torch.func's gradient of the whole ℓ_i."""
    torch.manual_seed(0)
    d, b = 20, 5
    net = Discriminator(d, 2, 4, 2)
    plain = copy.deepcopy(net)  # no Opacus hooks: torch.func differentiates it directly
    x = torch.randn(b, 2, d)
    gsm = GradSampleModule(net, loss_reduction="sum")
    pair_loss(gsm(x)).backward()
    hooks = {k: p.grad_sample.clone() for k, p in net.named_parameters()}
    params = {k: p.detach() for k, p in plain.named_parameters()}

    def loss_one(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return pair_loss(torch.func.functional_call(plain, p, (xi.unsqueeze(0),)))

    exact = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0))(params, x)
    for k, g in hooks.items():
        assert g.shape[0] == b  # B samples, not 2B halves
        torch.testing.assert_close(g, exact[k], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- feature moments
def test_feature_moment_release_is_clipped_to_c_f() -> None:
    g = torch.Generator().manual_seed(0)
    b, c_f = 7, 0.5
    huge = torch.full((b, 6), 1e6) * torch.linspace(-1, 1, 6)
    summed = release_feature_moments(huge, clip=c_f, noise_multiplier=0.0, expected_batch_size=1.0, generator=g)
    assert summed.shape == (12,)  # [E f, E f²]
    assert summed.norm() <= b * c_f + 1e-4
    assert summed.norm() == pytest.approx(b * c_f, rel=1e-4)  # identical rows: clipping binds exactly
    # small rows are left alone (no clipping below C_f), and the sum is divided by the EXPECTED size
    small = torch.full((4, 3), 0.1)
    est = release_feature_moments(small, clip=c_f, noise_multiplier=0.0, expected_batch_size=8.0, generator=g)
    torch.testing.assert_close(est, torch.tensor([0.05] * 3 + [0.005] * 3))
    with pytest.raises(ValueError, match="expected_batch_size"):
        release_feature_moments(small, clip=1.0, noise_multiplier=1.0, expected_batch_size=0, generator=g)


def test_feature_moment_noise_std_is_sigma_c_f_over_expected_batch() -> None:
    g = torch.Generator().manual_seed(1)
    sigma, c_f, expected = 1.3, 0.7, 50.0
    noise = release_feature_moments(
        torch.zeros(0, 10_000), clip=c_f, noise_multiplier=sigma, expected_batch_size=expected, generator=g
    )
    assert noise.shape == (20_000,)
    # 20,000 draws: the sample std is within ~1% of σ·C_f / E[b] with overwhelming odds
    assert noise.std().item() == pytest.approx(sigma * c_f / expected, rel=0.03)
    assert abs(noise.mean().item()) < 4 * sigma * c_f / expected / math.sqrt(20_000)
    again = release_feature_moments(
        torch.zeros(0, 10_000),
        clip=c_f,
        noise_multiplier=sigma,
        expected_batch_size=expected,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(noise, again)  # the seeded noise generator alone decides the noise


# ---------------------------------------------------------------------------- fits
def test_dp_fit_charges_each_phase_and_composes_to_the_target(dp_fit: tuple) -> None:
    model, ledger, seen = dp_fit
    names = [e.mechanism for e in ledger.entries]
    assert names == ["codec-histograms", "dp-sgd-discriminator", "gaussian-feature-moments", "dp-sgd-classifier"]
    s = model.training_summary
    phases = ledger.entries[1:]
    assert s["steps"] > 1 and all(e.steps == s["steps"] for e in phases)
    assert all(e.sample_rate == pytest.approx(s["sample_rate"]) for e in phases)
    assert all(e.noise_multiplier == s["noise_multiplier"] > 0 for e in phases)  # one shared σ
    assert ledger.differentially_private
    assert EPS - 0.05 <= ledger.epsilon <= EPS + 1e-6
    assert s["phases"] == names[1:] and s["classifier"] is True
    # progress is reported, ends at the last step, and never shows more than the target
    assert 1 <= len(seen) <= 51 and seen[-1].step == s["steps"]
    assert all(p.epsilon <= EPS + 1e-6 for p in seen)
    # the generator's updates ran with Opacus' hooks off: no stray per-sample gradient is left
    assert model.discriminator is not None and model.classifier is not None
    for net in (model.discriminator, model.classifier):
        assert all(getattr(p, "grad_sample", None) is None for p in net.parameters())


def test_no_categorical_target_means_no_classifier_phase(
    adult_contract: Contract, adult_modelled: pl.DataFrame
) -> None:
    numeric_target = adult_contract.model_copy(update={"target": "age"})
    assert TableGAN(numeric_target, TINY, device="cpu").label_block is None
    no_target = adult_contract.model_copy(update={"target": None})
    model, ledger = _fit(no_target, adult_modelled, seed=3)
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms",
        "dp-sgd-discriminator",
        "gaussian-feature-moments",
    ]
    assert EPS - 0.05 <= ledger.epsilon <= EPS + 1e-6  # two phases now share the budget
    assert model.classifier is None and model.training_summary["classifier"] is False


def test_info_weight_zero_drops_the_feature_phase(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    cfg = TINY.model_copy(update={"info_weight": 0.0, "class_weight": 0.0})
    _, ledger = _fit(adult_contract, adult_modelled, cfg=cfg, seed=4)
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-discriminator"]
    assert EPS - 0.05 <= ledger.epsilon <= EPS + 1e-6


def test_classifier_never_reads_the_label(adult_contract: Contract) -> None:
    model = TableGAN(adult_contract, TINY, device="cpu")
    lb = model.label_block
    assert lb is not None and lb.column == adult_contract.target and lb.width == 2
    x = torch.rand(6, model.codec.dim)
    masked = model.without_label(x)
    assert torch.count_nonzero(masked[:, lb.start : lb.start + lb.width]) == 0
    keep = torch.ones(model.codec.dim, dtype=torch.bool)
    keep[lb.start : lb.start + lb.width] = False
    assert torch.equal(masked[:, keep], x[:, keep])


def test_non_dp_mode_is_recorded_as_infinite(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(adult_contract, adult_modelled, epsilon=math.inf, seed=2)
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms-non-dp",
        "dp-sgd-discriminator-non-dp",
        "gaussian-feature-moments-non-dp",
        "dp-sgd-classifier-non-dp",
    ]
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    steps = model.training_summary["steps"]
    assert all(e.steps == steps for e in ledger.entries[1:])
    assert model.training_summary["differential_privacy"] is False
    assert model.sample(50, seed=0).height == 50


def test_same_seed_same_samples(adult_contract: Contract, adult_modelled: pl.DataFrame, dp_fit: tuple) -> None:
    model, _, _ = dp_fit
    again, _ = _fit(adult_contract, adult_modelled)
    s1, s2 = model.sample(300, seed=9), again.sample(300, seed=9)
    assert s1.equals(s2)
    assert not s1.equals(model.sample(300, seed=10))


def test_samples_obey_the_contract(adult_contract: Contract, dp_fit: tuple) -> None:
    model, _, _ = dp_fit
    syn = model.sample(500, seed=1)
    assert syn.columns == adult_contract.modelled_columns and syn.height == 500
    for name in syn.columns:
        col = adult_contract.columns[name]
        s = syn.get_column(name)
        if not col.nullable:
            assert s.null_count() == 0, name
        if isinstance(col, CategoricalColumn):
            assert s.dtype == pl.Utf8
            assert set(s.drop_nulls().unique().to_list()) <= set(col.categories), name
        elif col.kind in ("integer", "continuous"):
            assert s.dtype == (pl.Int64 if col.kind == "integer" else pl.Float64), name
            assert s.min() >= col.min and s.max() <= col.max, name
    assert model.sample(0, seed=1).height == 0 and model.sample(1, seed=1).height == 1


def test_save_load_gives_identical_samples(adult_contract: Contract, dp_fit: tuple, tmp_path) -> None:
    model, _, _ = dp_fit
    path = tmp_path / "tablegan.pt"
    model.save(path)
    blob = torch.load(path, weights_only=True)
    assert blob["model"] == "tablegan" and set(blob["networks"]) == {"generator"}  # only what sampling needs
    loaded = TableGAN.load(path, adult_contract, device="cpu")
    assert loaded.sample(200, seed=4).equals(model.sample(200, seed=4))


def test_clear_errors_for_bad_input(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model = TableGAN(adult_contract, TINY, device="cpu")
    for bad in (0, -1.0, float("nan"), "3", True):
        with pytest.raises(ValueError, match="epsilon must be a number > 0"):
            model.fit(adult_modelled, ledger=PrivacyLedger(1e-6), epsilon=bad, seed=0)
    with pytest.raises(ValueError, match=r"lacks the contract's modelled columns \['income'\]"):
        model.fit(adult_modelled.drop("income"), ledger=PrivacyLedger(1e-6), epsilon=EPS, seed=0)
    with pytest.raises(RuntimeError, match="fitted or loaded"):
        model.sample(5, seed=0)
    with pytest.raises(ValueError, match="cannot generate conditionally"):
        model._check_conditions({"income": ">50K"})
    with pytest.raises(ValueError, match="norm_groups=3 must divide"):
        Discriminator(110, 2, 4, 3)
    with pytest.raises(ValidationError):
        TableGANConfig(feature_clip=0.0)
    with pytest.raises(ValidationError):
        TableGANConfig(pac=10)  # unknown keys are rejected
    with pytest.raises(TypeError, match="needs a TableGANConfig"):
        TableGAN(adult_contract, TableGANConfig.__bases__[0](), device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="norm_groups=3 must divide"):
        TableGANConfig(discriminator_channels=4, norm_groups=3)
    assert TableGAN.conditional is False
