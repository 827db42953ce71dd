"""Non-DP mode of DPCTGAN (``epsilon=math.inf``): baselines and privacy-attack oracles.

The non-DP model must be recorded honestly (ε = ∞ in the ledger, in its JSON and in the
training summary), must still obey the contract, and must be able to memorise: that is what
the membership-attack oracle relies on.
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from sklearn.neighbors import NearestNeighbors

from synthgate.models.codec import Codec
from synthgate.models.ledger import PrivacyLedger, calibrate_noise
from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig
from synthgate.validation.contract import Contract
from synthgate.validation.encoding import encode_for_distance
from synthgate.validation.gates import budget_result

TINY = CTGANConfig(epochs=2.0, batch_size=200, generator_dims=(32,), critic_dims=(32,), z_dim=8)

# Settings under which the non-DP model memorises 300 Adult rows (see test_non_dp_model_can_memorise):
# 750 critic/generator steps (Poisson rate 32/300), ~12-14 s of one CPU core. gumbel_tau=1.0 and
# the higher learning rates matter: the defaults (0.2, 1e-3) memorise far more slowly. The measured
# pair marginals (models/marginals.py) are off: they pull the generator towards the population's
# pair tables, away from the individual rows this oracle is meant to copy.
MEMORISE_ROWS = 300
MEMORISE = CTGANConfig(
    epochs=80.0,
    batch_size=32,
    generator_dims=(256, 256),
    critic_dims=(256, 256),
    z_dim=8,
    gumbel_tau=1.0,
    generator_lr=3e-3,
    critic_lr=3e-3,
    marginals="off",
)


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, cfg: CTGANConfig, *, epsilon: float, seed: int
) -> tuple[DPCTGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    model = DPCTGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed)
    return model, ledger


# ---------------------------------------------------------------------------- ledger
def test_non_dp_entry_makes_the_ledger_infinite_and_json_safe() -> None:
    ledger = PrivacyLedger(1e-6)
    ledger.charge("histograms", noise_multiplier=8.0)
    assert math.isfinite(ledger.epsilon) and ledger.differentially_private
    dp_json = ledger.to_dict()
    assert isinstance(dp_json["epsilon"], float) and dp_json["differential_privacy"] is True

    entry = ledger.record_non_dp("critic-sgd-non-dp", sample_rate=0.1, steps=0)
    assert ledger.epsilon == pytest.approx(dp_json["epsilon"])  # no step has run yet
    ledger.add_steps(entry, 5)
    assert ledger.epsilon == math.inf and not ledger.differentially_private

    d = ledger.to_dict()
    text = json.dumps(d, allow_nan=False)  # would raise on a float infinity
    assert "Infinity" not in text
    back = json.loads(text)
    assert back["epsilon"] == "inf" and float(back["epsilon"]) == math.inf
    assert back["differential_privacy"] is False
    assert [e["epsilon_alone"] for e in back["entries"]][1] == "inf"
    assert [e["differential_privacy"] for e in back["entries"]] == [True, False]
    again = PrivacyLedger.from_dict(back)
    assert again.epsilon == math.inf and again.to_dict() == d

    # nothing can be calibrated on top of an infinite ledger, and no budget gate passes it
    with pytest.raises(ValueError, match="nothing is left for training"):
        calibrate_noise(target_epsilon=3.0, ledger=ledger, sample_rate=0.1, steps=10)


def test_budget_gate_never_passes_a_non_dp_ledger() -> None:
    ledger = PrivacyLedger(1e-6)
    ledger.record_non_dp("codec-histograms-non-dp")
    result = budget_result(ledger.epsilon, 3.0)
    assert result.passed is False and result.details["differential_privacy"] is False
    assert "without differential privacy" in result.details["fix"]


def test_ledger_rejects_bad_non_dp_entries() -> None:
    ledger = PrivacyLedger(1e-6)
    with pytest.raises(ValueError, match="sample_rate must be in"):
        ledger.record_non_dp("x", sample_rate=0.0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        ledger.record_non_dp("x", steps=-1)
    with pytest.raises(ValueError, match="noise_multiplier must be > 0 for a DP charge"):
        ledger.charge("x", noise_multiplier=0.0)  # the DP path stays strict
    bad = {"delta": 1e-6, "entries": [{"mechanism": "x", "noise_multiplier": -1, "sample_rate": 1, "steps": 1}]}
    with pytest.raises(ValueError, match="noise_multiplier -1"):
        PrivacyLedger.from_dict(bad)


# ---------------------------------------------------------------------------- codec
def test_codec_non_dp_path_learns_exact_histograms(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    codec = Codec(adult_contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_non_dp(df, ledger=ledger)
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms-non-dp"]
    assert ledger.epsilon == math.inf
    assert codec.n_estimate == df.height
    exact = codec.histograms(df)
    np.testing.assert_allclose(codec.frequencies["education"], exact["education"] / df.height)
    age_bins = exact["age"]
    np.testing.assert_allclose(codec.bin_mass["age"], age_bins / age_bins.sum())

    dp = Codec(adult_contract)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="call Codec.fit_non_dp instead"):
            dp.fit_dp(df, ledger=PrivacyLedger(1e-6), noise_multiplier=bad, rng=np.random.default_rng(0))


# ---------------------------------------------------------------------------- DPCTGAN
def test_non_dp_fit_is_recorded_honestly_obeys_the_contract_and_reproduces(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    model, ledger = _fit(adult_contract, df, TINY, epsilon=math.inf, seed=5)

    assert ledger.epsilon == math.inf and not ledger.differentially_private
    # without noise every candidate pair, then every 3-way candidate with the target, is measured
    # (marginals.plan_extra, plan_triples), so nothing is selected
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms-non-dp",
        "marginal-measurements-non-dp",
        "marginal-measurements-non-dp",
        "dp-sgd-critic-non-dp",
    ]
    summary = model.training_summary
    assert summary["differential_privacy"] is False
    assert summary["noise_multiplier"] == 0.0 and summary["max_grad_norm"] is None
    assert len(summary["measured_pairs"]) == ledger.entries[1].steps + ledger.entries[2].steps > 0
    assert summary["measured_triples"] == ledger.entries[2].steps > 0
    assert ledger.entries[3].steps == summary["steps"] == math.ceil(TINY.epochs / summary["sample_rate"])
    assert summary["sample_rate"] == pytest.approx(TINY.batch_size / df.height)  # exact n, no noise
    assert model.accountant is None

    d = json.loads(json.dumps(ledger.to_dict(), allow_nan=False))
    assert d["epsilon"] == "inf" and d["differential_privacy"] is False
    assert PrivacyLedger.from_dict(d).to_dict() == ledger.to_dict()

    out = model.sample(600, seed=2)
    assert out.columns == adult_contract.modelled_columns and out.height == 600
    for name, col in adult_contract.columns.items():
        if name not in out.columns:
            continue
        s = out[name]
        if col.kind == "categorical":
            assert set(s.drop_nulls().to_list()) <= set(col.categories), name
        elif col.kind == "integer":
            assert col.min <= s.min() and s.max() <= col.max, name
        if not col.nullable:
            assert s.null_count() == 0, name

    again, ledger2 = _fit(adult_contract, df, TINY, epsilon=math.inf, seed=5)
    assert again.sample(600, seed=2).equals(out)
    assert ledger2.to_dict() == ledger.to_dict()
    other, _ = _fit(adult_contract, df, TINY, epsilon=math.inf, seed=6)
    assert not other.sample(600, seed=2).equals(out)


def test_dp_fit_says_so_in_its_summary(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    cfg = CTGANConfig(epochs=1.0, batch_size=200, generator_dims=(32,), critic_dims=(32,), z_dim=8)
    model, ledger = _fit(adult_contract, df, cfg, epsilon=3.0, seed=5)
    assert model.training_summary["differential_privacy"] is True
    assert ledger.differentially_private and ledger.epsilon <= 3.0
    assert isinstance(json.loads(json.dumps(ledger.to_dict(), allow_nan=False))["epsilon"], float)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, -math.inf, "3"])
def test_fit_rejects_a_meaningless_epsilon(adult_contract: Contract, adult_small: pl.DataFrame, bad: object) -> None:
    model = DPCTGAN(adult_contract, TINY, device="cpu")
    ledger = PrivacyLedger(adult_contract.privacy.delta)
    with pytest.raises(ValueError, match="or math.inf for a non-DP baseline"):
        model.fit(adult_small.select(adult_contract.modelled_columns), ledger=ledger, epsilon=bad, seed=0)  # type: ignore[arg-type]
    assert ledger.entries == []  # refused before any row was read


@pytest.mark.statistical
def test_non_dp_model_can_memorise(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    """Overfitted for many epochs on 300 rows, synthetic rows sit closer to the training rows than
    to 300 held-out rows of the same population: the oracle the membership attacks need.

    The mixed-type distance counts one per categorical mismatch, so nearest-neighbour distances
    cluster near 0 (all categories of some row reproduced) and 1 (one mismatch); the mean and
    the DCR share are steadier than the median (which jumps between ~0.35 and ~1.0 across
    seeds). Measured (seed 11): NN distance to train median 0.36 / mean 0.57, to holdout median
    1.01 / mean 0.86; DCR share 0.79; near-copies (distance < 0.5) 0.57 vs 0.33. Seeds 0-4 gave
    mean ratios 0.61-0.75, DCR shares 0.66-0.76 and near-copy ratios 1.7-2.3.
    """
    df = adult_small.select(adult_contract.modelled_columns)
    train, holdout = df[:MEMORISE_ROWS], df[MEMORISE_ROWS : 2 * MEMORISE_ROWS]
    model, ledger = _fit(adult_contract, train, MEMORISE, epsilon=math.inf, seed=11)
    assert ledger.epsilon == math.inf
    synthetic = model.sample(MEMORISE_ROWS, seed=12)

    def nn_distance(ref: pl.DataFrame) -> np.ndarray:
        nn = NearestNeighbors(n_neighbors=1).fit(encode_for_distance(ref, adult_contract))
        return nn.kneighbors(encode_for_distance(synthetic, adult_contract))[0][:, 0]

    to_train, to_holdout = nn_distance(train), nn_distance(holdout)
    assert to_train.mean() < 0.85 * to_holdout.mean(), (to_train.mean(), to_holdout.mean())
    # DCR share (ties count half): 0.5 for a model that does not memorise; 300 rows give a
    # standard error of 0.029, so 0.62 is 4 standard errors above it.
    dcr_share = np.mean(to_train < to_holdout) + 0.5 * np.mean(to_train == to_holdout)
    assert dcr_share > 0.62, dcr_share
    # near-copies (every category of a real row reproduced, numerics close)
    assert np.mean(to_train < 0.5) > 1.5 * np.mean(to_holdout < 0.5)
