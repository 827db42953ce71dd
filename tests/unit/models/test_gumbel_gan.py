"""gumbel-gan: per-variable heads, DP accounting of the discriminator, both losses, contract-obeying output."""

from __future__ import annotations

import math

import polars as pl
import pytest
from pydantic import ValidationError
from torch import nn

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.gumbel_gan import GumbelGAN, GumbelGANConfig
from synthgate.validation.contract import Contract

# batch_size >= rows: Poisson rate 1, so calibrate_noise is instant (subsampled RDP is slow to
# evaluate); 4 full-batch steps.
TINY = dict(epochs=4.0, batch_size=5000, generator_dims=(32,), discriminator_dims=(32,), z_dim=8)


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, *, epsilon: float = 3.0, seed: int = 0, **kw
) -> tuple[GumbelGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    cfg = GumbelGANConfig(**{**TINY, **kw})
    model = GumbelGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed)
    return model, ledger


@pytest.fixture(scope="module")
def dp_fit(adult_contract: Contract, adult_modelled: pl.DataFrame) -> tuple[GumbelGAN, PrivacyLedger]:
    return _fit(adult_contract, adult_modelled, seed=5)


def test_one_head_per_codec_block_and_a_batchnorm_free_discriminator(dp_fit) -> None:
    model, _ = dp_fit
    gen = model.generator
    assert gen is not None
    assert [h.out_features for h in gen.heads] == [b.width for b in model.codec.blocks]
    assert len(gen.heads) == len(model.codec.blocks) > 1
    # the discriminator (which reads real rows) holds no layer that mixes samples
    assert model.discriminator is not None
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout) for m in model.discriminator.modules())


def test_dp_fit_ledger_steps_and_epsilon(dp_fit, adult_modelled: pl.DataFrame) -> None:
    model, ledger = dp_fit
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-discriminator"]
    sgd = ledger.entries[1]
    q, planned = model._plan(adult_modelled.height)
    assert sgd.steps == planned == model.training_summary["steps"]
    assert sgd.sample_rate == pytest.approx(q)
    assert model.training_summary["generator_steps"] == planned  # n_critic = 1
    assert 2.9 < ledger.epsilon <= 3.0 + 1e-6
    assert ledger.differentially_private
    # Opacus' accountant attached to the optimizer saw exactly the ledger's steps
    assert model.accountant is not None
    assert model.accountant.history == [(sgd.noise_multiplier, sgd.sample_rate, sgd.steps)]


def test_non_dp_mode_is_recorded_as_infinite(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(adult_contract, adult_modelled, epsilon=math.inf)
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms-non-dp", "dp-sgd-discriminator-non-dp"]
    assert model.training_summary["differential_privacy"] is False
    assert model.sample(50, seed=0).height == 50


def test_seeded_fit_is_reproducible(dp_fit, adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = dp_fit
    again, ledger2 = _fit(adult_contract, adult_modelled, seed=5)
    assert again.sample(300, seed=9).equals(model.sample(300, seed=9))
    assert not model.sample(300, seed=9).equals(model.sample(300, seed=10))
    assert ledger.epsilon == ledger2.epsilon


def test_samples_obey_the_contract_and_checkpoint_round_trips(
    tmp_path, dp_fit, adult_contract: Contract, adult_modelled: pl.DataFrame
) -> None:
    model, _ = dp_fit
    out = model.sample(1000, seed=2)
    assert out.columns == adult_contract.modelled_columns and out.height == 1000
    assert out.schema == adult_modelled.schema
    for name in adult_contract.modelled_columns:
        col = adult_contract.columns[name]
        s = out[name]
        if not col.nullable:
            assert s.null_count() == 0, name
        if col.kind == "categorical":
            assert set(s.drop_nulls().to_list()) <= set(col.categories), name
        elif col.kind == "integer":
            assert col.min <= s.min() and s.max() <= col.max, name
    model.save(tmp_path / "g.pt")
    again = GumbelGAN.load(tmp_path / "g.pt", adult_contract, device="cpu")
    assert again.sample(200, seed=3).equals(model.sample(200, seed=3))


def test_wasserstein_critic_weights_are_clipped(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(adult_contract, adult_modelled, loss="wasserstein", clip_value=0.02, n_critic=2)
    assert model.discriminator is not None
    biggest = max(p.abs().max().item() for p in model.discriminator.parameters())
    assert biggest <= 0.02 + 1e-7
    q, planned = model._plan(adult_modelled.height)
    assert ledger.entries[1].steps == planned
    assert model.training_summary["generator_steps"] == planned // 2
    assert ledger.epsilon <= 3.0 + 1e-6
    out = model.sample(200, seed=0)
    assert set(out["income"].to_list()) <= {"<=50K", ">50K"}


def test_all_categorical_table(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    cats = [c for c in adult_contract.modelled_columns if adult_contract.columns[c].kind == "categorical"]
    data = adult_contract.model_dump()
    data["columns"] = {k: v for k, v in data["columns"].items() if k in cats}
    contract = Contract.model_validate(data)
    model, ledger = _fit(contract, adult_modelled.select(cats))
    assert all(b.kind == "softmax" for b in model.codec.blocks)
    out = model.sample(500, seed=1)
    assert out.columns == cats
    for c in cats:
        assert set(out[c].drop_nulls().to_list()) <= set(contract.columns[c].categories)
    assert ledger.epsilon <= 3.0 + 1e-6


def test_clear_errors(adult_contract: Contract, adult_modelled: pl.DataFrame, dp_fit) -> None:
    with pytest.raises(ValidationError):
        GumbelGANConfig(loss="hinge")
    model = GumbelGAN(adult_contract, GumbelGANConfig(**TINY), device="cpu")
    with pytest.raises(RuntimeError, match="fit"):
        model.sample(10, seed=0)
    with pytest.raises(ValueError, match="epsilon"):
        model.fit(adult_modelled, ledger=PrivacyLedger(1e-6), epsilon=0, seed=0)
    fitted, _ = dp_fit
    with pytest.raises(ValueError, match="cannot generate conditionally"):
        fitted.sample(10, seed=0, conditions={"income": ">50K"})
