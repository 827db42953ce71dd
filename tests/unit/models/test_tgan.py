"""TGAN (LSTM generator, DP-SGD discriminator): ledger, non-DP mode, seeds, contract, layout, KL."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import load_synthesizer
from synthgate.models.synthesizers.base import TrainingProgress
from synthgate.models.synthesizers.tgan import TGAN, Discriminator, TGANConfig, categorical_kl
from synthgate.validation.contract import Contract, parse_contract

TINY = TGANConfig(
    epochs=1.0, batch_size=120, z_dim=4, hidden_dim=16, feature_dim=8, embed_dim=8, discriminator_dims=(16,)
)
# Poisson rate 1 (the batch exceeds the 1200 rows): calibrating σ for a large rate q < 1 takes
# Opacus' RDP analysis several seconds, q = 1 a few milliseconds. For tests that refit a lot.
FULL_BATCH = TINY.model_copy(update={"batch_size": 5000, "epochs": 2.0})


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(
    contract: Contract, df: pl.DataFrame, *, epsilon: float, seed: int, cfg: TGANConfig = TINY, **kw
) -> tuple[TGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    model = TGAN(contract, cfg, device="cpu").fit(df, ledger=ledger, epsilon=epsilon, seed=seed, **kw)
    return model, ledger


@pytest.fixture(scope="module")
def dp_model(
    adult_contract: Contract, adult_modelled: pl.DataFrame
) -> tuple[TGAN, PrivacyLedger, list[TrainingProgress]]:
    seen: list[TrainingProgress] = []
    # ε = 1: Opacus' RDP analysis is several times faster at this noise level than at ε = 3
    model, ledger = _fit(adult_contract, adult_modelled, epsilon=1.0, seed=3, progress=seen.append)
    return model, ledger, seen


@pytest.fixture(scope="module")
def mixed_contract() -> Contract:
    return parse_contract(
        {
            "table": "t",
            "columns": {
                "x": {"kind": "continuous", "min": 0.0, "max": 10.0, "nullable": True},
                "flag": {"kind": "boolean"},
                "colour": {"kind": "categorical", "categories": ["red", "green", "blue"], "nullable": True},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )


@pytest.fixture(scope="module")
def mixed_frame() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.uniform(0, 10, n)
    return pl.DataFrame(
        {
            "x": [None if i % 3 == 0 else float(v) for i, v in enumerate(x)],
            "flag": (x > 5).tolist(),
            "colour": [["red", "green", "blue", None][i % 4] for i in range(n)],
        },
        schema={"x": pl.Float64, "flag": pl.Boolean, "colour": pl.Utf8},
    )


# ---------------------------------------------------------------------------- DP accounting
def test_dp_fit_charges_codec_and_discriminator_within_the_target(dp_model) -> None:
    model, ledger, seen = dp_model
    summary = model.training_summary
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "dp-sgd-critic"]
    critic = ledger.entries[1]
    assert critic.steps == summary["steps"] == math.ceil(TINY.epochs / summary["sample_rate"])
    assert critic.sample_rate == summary["sample_rate"] and critic.noise_multiplier == summary["noise_multiplier"]
    assert summary["differential_privacy"] is True and summary["max_grad_norm"] == TINY.max_grad_norm
    assert summary["minibatch_discrimination"] is False
    # calibrated before training: the whole ledger lands on (just below) the target
    assert 0.95 < ledger.epsilon <= 1.0 + 1e-6
    # Opacus' own accountant saw exactly the discriminator's steps at the same rate and noise
    alone = PrivacyLedger(ledger.delta)
    alone.entries.append(critic)
    assert model.accountant is not None
    assert model.accountant.get_epsilon(ledger.delta) == pytest.approx(alone.epsilon, rel=1e-3)
    # progress reports end on the last step, with the ledger's ε
    assert seen and seen[-1].step == seen[-1].steps == summary["steps"]
    assert seen[-1].epsilon == pytest.approx(ledger.epsilon)


def test_non_dp_mode_is_recorded_as_infinite(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(adult_contract, adult_modelled, epsilon=math.inf, seed=3)
    assert ledger.epsilon == math.inf and not ledger.differentially_private
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms-non-dp", "dp-sgd-critic-non-dp"]
    s = model.training_summary
    assert s["differential_privacy"] is False and s["noise_multiplier"] == 0.0 and s["max_grad_norm"] is None
    assert ledger.entries[1].steps == s["steps"] == math.ceil(TINY.epochs / s["sample_rate"])
    assert model.accountant is None


# ---------------------------------------------------------------------------- seeds, contract, persistence
def test_same_seed_same_samples_other_seed_differs(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model, ledger = _fit(adult_contract, adult_modelled, epsilon=3.0, seed=3, cfg=FULL_BATCH)
    again, ledger2 = _fit(adult_contract, adult_modelled, epsilon=3.0, seed=3, cfg=FULL_BATCH)
    out = model.sample(300, seed=1)
    assert again.sample(300, seed=1).equals(out)
    assert ledger2.to_dict() == ledger.to_dict()
    assert not model.sample(300, seed=2).equals(out)
    other, _ = _fit(adult_contract, adult_modelled, epsilon=3.0, seed=4, cfg=FULL_BATCH)
    assert not other.sample(300, seed=1).equals(out)


def test_output_obeys_the_contract(adult_contract: Contract, dp_model) -> None:
    model, _, _ = dp_model
    out = model.sample(1000, seed=5)
    assert out.columns == adult_contract.modelled_columns and out.height == 1000
    for name in out.columns:
        col, s = adult_contract.columns[name], out[name]
        if col.kind == "categorical":
            assert s.dtype == pl.Utf8 and set(s.drop_nulls().to_list()) <= set(col.categories), name
        elif col.kind == "boolean":
            assert s.dtype == pl.Boolean, name
        elif col.kind == "integer":
            assert s.dtype == pl.Int64 and col.min <= s.min() and s.max() <= col.max, name
        if not col.nullable:
            assert s.null_count() == 0, name
    assert model.sample(0, seed=5).height == 0


def test_save_load_round_trip(adult_contract: Contract, dp_model, tmp_path) -> None:
    model, _, _ = dp_model
    path = tmp_path / "tgan.pt"
    model.save(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert set(blob["networks"]) == {"generator"}  # the discriminator is not needed to sample
    back = TGAN.load(path, adult_contract, device="cpu")
    assert back.sample(500, seed=9).equals(model.sample(500, seed=9))
    assert load_synthesizer(path, adult_contract, device="cpu").sample(200, seed=9).equals(model.sample(200, seed=9))


# ---------------------------------------------------------------------------- layout
def test_generator_layout_matches_codec_blocks_with_a_nullable_numeric(
    mixed_contract: Contract, mixed_frame: pl.DataFrame
) -> None:
    model = TGAN(mixed_contract, TINY, device="cpu")
    blocks = [(b.column, b.kind, b.role, b.width) for b in model.codec.blocks]
    assert blocks == [
        ("x", "tanh", "value", 1),
        ("x", "softmax", "null", 2),
        ("flag", "softmax", "value", 2),
        ("colour", "softmax", "value", 4),
    ]
    model, ledger = _fit(mixed_contract, mixed_frame, epsilon=math.inf, seed=0)
    gen = model.generator
    assert gen is not None
    # one LSTM step, feature layer, head and embedding per codec block, sized from the block
    assert gen.kinds == [b[1] for b in blocks] and gen.widths == [b[3] for b in blocks]
    assert [h.out_features for h in gen.heads] == [b[3] for b in blocks]
    assert [e.in_features for e in gen.embeds] == [b[3] for b in blocks]
    calls = []
    handle = gen.cell.register_forward_hook(lambda *a: calls.append(1))
    try:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            logits, soft = gen(torch.randn(64, TINY.z_dim, generator=g), g, tau=0.2)
            _, hard = gen(torch.randn(64, TINY.z_dim, generator=g), g, tau=0.2, hard=True)
    finally:
        handle.remove()
    assert len(calls) == 2 * len(blocks)
    assert logits.shape == soft.shape == hard.shape == (64, model.codec.dim)
    for b in model.codec.blocks:
        s, h = soft[:, b.start : b.start + b.width], hard[:, b.start : b.start + b.width]
        if b.kind == "tanh":
            assert torch.all(s.abs() <= 1) and torch.equal(s, torch.tanh(logits[:, b.start : b.start + 1]))
        else:
            assert torch.allclose(s.sum(1), torch.ones(64)) and torch.all(s >= -1e-6)
            assert torch.equal(h.sum(1), torch.ones(64)) and set(h.unique().tolist()) <= {0.0, 1.0}
    out = model.sample(500, seed=1)
    assert out.schema == mixed_frame.schema
    x = out["x"]
    assert 0 < x.null_count() < 500  # the null block step decides nulls; the rest stay in bounds
    assert 0.0 <= x.drop_nulls().min() and x.drop_nulls().max() <= 10.0
    assert set(out["colour"].drop_nulls().to_list()) <= {"red", "green", "blue"}


def test_attention_is_optional_and_learned(mixed_contract: Contract, mixed_frame: pl.DataFrame) -> None:
    with_att, _ = _fit(mixed_contract, mixed_frame, epsilon=math.inf, seed=0)
    assert with_att.generator is not None and with_att.generator.att.abs().sum() > 0  # moved from zero
    no_att_cfg = TINY.model_copy(update={"attention": False})
    plain, _ = _fit(mixed_contract, mixed_frame, epsilon=math.inf, seed=0, cfg=no_att_cfg)
    assert plain.generator is not None
    assert plain.generator.cell.input_size == no_att_cfg.embed_dim + no_att_cfg.z_dim
    assert with_att.generator.cell.input_size == TINY.embed_dim + TINY.z_dim + TINY.hidden_dim
    assert plain.sample(50, seed=0).height == 50


def test_discriminator_has_no_batch_statistics() -> None:
    d = Discriminator(10, (16, 16))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout) for m in d.modules())
    # each row's score depends on that row only (no minibatch discrimination)
    x = torch.randn(5, 10)
    with torch.no_grad():
        alone = torch.stack([d(x[i : i + 1])[0] for i in range(5)])
        assert torch.allclose(d(x), alone, atol=1e-6)
    assert "minibatch discrimination" in TGAN.info.caveats


# ---------------------------------------------------------------------------- the KL term
def test_kl_is_zero_at_the_target_and_positive_elsewhere(mixed_contract: Contract, mixed_frame: pl.DataFrame) -> None:
    t = torch.tensor([0.5, 0.3, 0.2, 0.0])
    assert categorical_kl(t.clone(), t).item() == pytest.approx(0.0, abs=1e-7)
    assert categorical_kl(torch.full((4,), 0.25), t).item() > 0.05

    model = TGAN(mixed_contract, TINY, device="cpu")
    model.codec.fit_non_dp(mixed_frame, ledger=PrivacyLedger(1e-6))
    targets = model._kl_targets()
    assert torch.allclose(targets[("x", "null")], torch.tensor([2 / 3, 1 / 3]), atol=0.01)
    # logits whose softmax is the target in every row: the batch marginal equals the target
    logits = torch.zeros(32, model.codec.dim)
    for b in model.codec.blocks:
        if b.kind == "softmax":
            logits[:, b.start : b.start + b.width] = torch.log(targets[(b.column, b.role)].clamp_min(1e-12))
    assert model._kl_loss(logits, targets).item() == pytest.approx(0.0, abs=1e-6)
    # half the rows certain of one category, half of another: same per-row entropy, wrong marginal
    skewed = logits.clone()
    cb = next(b for b in model.codec.blocks if b.column == "colour")
    skewed[:, cb.start : cb.start + cb.width] = torch.tensor([10.0, -10.0, -10.0, -10.0])
    assert model._kl_loss(skewed, targets).item() > 0.5
    assert model._kl_loss(torch.zeros(32, model.codec.dim), targets).item() > 0


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, "3"])
def test_bad_epsilon_is_refused_before_any_charge(
    adult_contract: Contract, adult_modelled: pl.DataFrame, bad: object
) -> None:
    ledger = PrivacyLedger(adult_contract.privacy.delta)
    with pytest.raises(ValueError, match="or math.inf for a non-DP baseline"):
        TGAN(adult_contract, TINY, device="cpu").fit(adult_modelled, ledger=ledger, epsilon=bad, seed=0)  # type: ignore[arg-type]
    assert ledger.entries == []


def test_clear_errors(adult_contract: Contract, adult_modelled: pl.DataFrame) -> None:
    model = TGAN(adult_contract, TINY, device="cpu")
    ledger = PrivacyLedger(adult_contract.privacy.delta)
    with pytest.raises(ValueError, match=r"lacks the contract's modelled columns \['age'\]"):
        model.fit(adult_modelled.drop("age"), ledger=ledger, epsilon=3.0, seed=0)
    assert ledger.entries == []
    with pytest.raises(RuntimeError, match="fit\\(\\) or load\\(\\)"):
        model.sample(10, seed=0)
    with pytest.raises(TypeError, match="needs a TGANConfig"):
        TGAN(adult_contract, object(), device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TGANConfig(hidden_dim=0)
