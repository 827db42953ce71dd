"""DPCTGAN's options: mode-specific normalisation ("modes") and the conditioned critic.

What is specific to them: the DP accounting is unchanged (modes cost nothing: they are
post-processing of the charged histograms; the conditioned critic is still one Poisson-sampled,
clipped pair per real row), a row's condition in the critic step is a function of that row
alone, unused modes are never generated, and the usual contract / seed / save-load guarantees.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.base import codec_noise_for
from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig
from synthgate.validation.contract import Contract

BOTH = CTGANConfig(
    epochs=1.0,
    batch_size=200,
    generator_dims=(32,),
    critic_dims=(32,),
    z_dim=8,
    numeric_encoding="modes",
    critic_conditioning=True,
    log_frequency=True,
)


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fitted(adult_contract: Contract, adult_small: pl.DataFrame) -> tuple[DPCTGAN, PrivacyLedger]:
    df = adult_small.select(adult_contract.modelled_columns)
    ledger = PrivacyLedger(adult_contract.privacy.delta)
    model = DPCTGAN(adult_contract, BOTH, device="cpu").fit(df, ledger=ledger, epsilon=3.0, seed=5)
    return model, ledger


def _check_contract(out: pl.DataFrame, contract: Contract) -> None:
    assert out.columns == contract.modelled_columns
    for name in out.columns:
        col, s = contract.columns[name], out[name]
        if col.kind == "categorical":
            assert set(s.drop_nulls().to_list()) <= set(col.categories), name
        elif col.kind == "integer":
            assert s.dtype == pl.Int64 and col.min <= s.min() and s.max() <= col.max, name
        if not col.nullable:
            assert s.null_count() == 0, name


def test_dp_fit_with_both_options_is_accounted_as_before(fitted: tuple[DPCTGAN, PrivacyLedger]) -> None:
    model, ledger = fitted
    summary = model.training_summary
    assert summary["numeric_encoding"] == "modes" and summary["critic_conditioning"] is True
    # modes add no charge: the same two mechanisms as the default, the histogram step charged
    # once at the codec's noise, and the critic's steps exactly the planned ones
    # (the measured pair marginals, on by default, charge their own two entries: models/marginals.py)
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms",
        "marginal-selection",
        "marginal-measurements",
        "dp-sgd-critic",
    ]
    hist, selection, measurements, critic = ledger.entries
    assert selection.sample_rate == measurements.sample_rate == 1.0
    assert measurements.steps == len(summary["measured_pairs"]) > selection.steps > 0
    assert (hist.noise_multiplier, hist.sample_rate, hist.steps) == (
        codec_noise_for(3.0, ledger.delta, DPCTGAN.codec_share, DPCTGAN.codec_noise_floor),
        1.0,
        1,
    )
    assert hist.noise_multiplier < 8.0  # ctgan's codec takes its 0.4 of ε = 3 (no floor at σ/Δ = 8)
    assert critic.steps == summary["steps"] == math.ceil(BOTH.epochs / summary["sample_rate"])
    assert critic.sample_rate == summary["sample_rate"] and critic.noise_multiplier == summary["noise_multiplier"]
    assert 2.9 < ledger.epsilon <= 3.0 + 1e-6


def test_samples_obey_the_contract_reproduce_and_survive_save_load(
    fitted: tuple[DPCTGAN, PrivacyLedger], adult_contract: Contract, tmp_path: Path
) -> None:
    model, _ = fitted
    out = model.sample(800, seed=2)
    _check_contract(out, adult_contract)
    assert model.sample(800, seed=2).equals(out)
    assert not model.sample(800, seed=3).equals(out)
    model.save(tmp_path / "m.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    assert blob["codec"]["numeric_encoding"] == "modes" and "age" in blob["codec"]["modes"]
    loaded = DPCTGAN.load(tmp_path / "m.pt", adult_contract, device="cpu")
    assert loaded.config == BOTH
    assert loaded.sample(800, seed=2).equals(out)
    cond = loaded.sample(300, seed=4, conditions={"sex": "Female"})
    assert cond["sex"].to_list() == ["Female"] * 300


def test_unused_modes_are_never_generated(fitted: tuple[DPCTGAN, PrivacyLedger]) -> None:
    model, _ = fitted
    mode_blocks = [b for b in model.codec.blocks if b.role == "mode"]
    assert mode_blocks and any((~model.codec.modes[b.column].valid).any() for b in mode_blocks)
    x = model._sample_block(4000, torch.Generator().manual_seed(0), None)
    for b in mode_blocks:
        block = x[:, b.start : b.start + b.width]
        unused = torch.as_tensor(~model.codec.modes[b.column].valid)
        assert torch.all(block.sum(1) == 1) and block[:, unused].sum() == 0, b.column
    targets = model._marginal_targets()
    for b in mode_blocks:  # the mode block's marginal target is the mixture's weights
        np.testing.assert_allclose(targets[(b.column, "mode")].numpy(), model.codec.modes[b.column].weight, rtol=1e-6)
        assert targets[(b.column, "alpha")].shape == (1024,)


def test_critic_condition_is_the_rows_own_category(
    fitted: tuple[DPCTGAN, PrivacyLedger], adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    """cond_i is a function of row i (and of data-free randomness): exactly one discrete column,
    holding row i's own category; other rows in the batch cannot change it."""
    model, _ = fitted
    df = adult_small.select(adult_contract.modelled_columns)
    X = torch.as_tensor(model.codec.encode(df, rng=np.random.default_rng(0)))
    cond = model._own_cond(X, torch.Generator().manual_seed(1))
    assert cond.shape == (X.shape[0], model.cond_dim)
    assert torch.all(cond.sum(1) == 1)  # one column, one category per row
    offset = 0
    hits = torch.zeros(X.shape[0])
    for blk in model._cond_blocks:
        part = cond[:, offset : offset + blk.width]
        chosen = part.sum(1) == 1
        assert torch.equal(part[chosen], X[chosen, blk.start : blk.start + blk.width])
        hits += chosen.float()
        offset += blk.width
    assert torch.all(hits == 1)
    # other rows replaced: row 0's condition is unchanged (same data-free column draw)
    other = X.clone()
    other[1:] = X[torch.randperm(X.shape[0] - 1, generator=torch.Generator().manual_seed(2)) + 1]
    cond2 = model._own_cond(other, torch.Generator().manual_seed(1))
    assert torch.equal(cond2[0], cond[0])
    # the critic scores [row, condition]: its input is codec.dim + cond_dim wide
    assert model.cond_dim > 0 and model.codec.dim > 0


def test_log_frequency_shows_rare_categories_more_often(fitted: tuple[DPCTGAN, PrivacyLedger]) -> None:
    model, _ = fitted
    n = 40000
    j = [b.column for b in model._cond_blocks].index("race")
    g = torch.Generator().manual_seed(0)
    share = {}
    for log_frequency in (False, True):
        _, which, cats = model._sample_cond(n, g, log_frequency=log_frequency)
        race = cats[which == j]
        share[log_frequency] = (race != 0).float().mean().item()  # 0 = White, the common one
    freq = model.codec.frequencies["race"]
    assert share[False] == pytest.approx(1 - freq[0], abs=0.03)
    assert share[True] > share[False] + 0.2


def test_non_dp_mode_with_both_options_is_recorded_and_reproducible(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    samples = []
    for seed in (1, 1, 2):
        ledger = PrivacyLedger(adult_contract.privacy.delta)
        model = DPCTGAN(adult_contract, BOTH, device="cpu").fit(df, ledger=ledger, epsilon=math.inf, seed=seed)
        assert ledger.epsilon == math.inf and not ledger.differentially_private
        assert ledger.entries[0].mechanism == "codec-histograms-non-dp"
        samples.append(model.sample(500, seed=0))
    _check_contract(samples[0], adult_contract)
    # same seed, same model (the conditioned critic's column draws and the modes' posterior
    # draws are seeded too); another seed, another model
    assert samples[0].equals(samples[1]) and not samples[0].equals(samples[2])


def test_contract_modes_reach_the_model(adult_contract: Contract) -> None:
    data = adult_contract.model_dump(mode="json")
    data["columns"]["age"]["modes"] = [
        {"mean": 25.0, "std": 5.0, "weight": 0.5},
        {"mean": 50.0, "std": 10.0, "weight": 0.5},
    ]
    contract = Contract.model_validate(data)
    model = DPCTGAN(contract, BOTH, device="cpu")
    age_mode = next(b for b in model.codec.blocks if b.column == "age" and b.role == "mode")
    assert age_mode.width == 2
    with pytest.raises(Exception, match="numeric_encoding"):
        CTGANConfig(numeric_encoding="gmm")  # type: ignore[arg-type]
