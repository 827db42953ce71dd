"""DPCTGAN's ``critic`` option: a default fit skips the DP-SGD critic when its planned noise leaves it
no usable signal (models/schedule.py, ``critic_snr``), and the measured marginals spend its ε instead.

What must hold either way: every data read is charged, a skipped critic has no ledger entry, the
mechanisms that ran account for the whole ε, and the rule reads public quantities only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from synthgate.models import schedule as sch
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.base import Run
from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig
from synthgate.validation.contract import Contract

TINY = dict(generator_dims=(32,), critic_dims=(32,), z_dim=8)
EPS = 1.0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(contract: Contract, df: pl.DataFrame, **options: object) -> tuple[DPCTGAN, PrivacyLedger]:
    ledger = PrivacyLedger(contract.privacy.delta)
    model = DPCTGAN(contract, CTGANConfig(**TINY, **options), device="cpu").fit(df, ledger=ledger, epsilon=EPS, seed=3)
    return model, ledger


@pytest.mark.statistical
def test_a_default_fit_on_1200_rows_at_eps_1_skips_the_noise_bound_critic(
    adult_contract: Contract, adult_modelled: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # training reads no real row: the only reads are the codec's and the marginals', both charged
    def no_read(self: Run) -> None:
        raise AssertionError("a fit without its critic drew a batch of real rows")

    monkeypatch.setattr(Run, "real_batch", no_read)
    model, ledger = _fit(adult_contract, adult_modelled)
    summary = model.training_summary
    assert summary["critic"] == "off" and summary["critic_snr"] < sch.MIN_CRITIC_SNR
    assert summary["noise_multiplier"] is None and model.accountant is None
    # TINY's explicit widths win over the default rule (tested below)
    assert summary["generator_dims"] == list(TINY["generator_dims"])
    # no critic entry; the codec (with its refinement) and the marginals spend the whole ε (plan_noise's bisection: tight)
    # (1,200 rows: the numeric columns' fine bins are noise-bound, so the codec refines them: numeric_refine)
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms",
        "codec-coarse-histograms",
        "marginal-selection",
        "marginal-measurements",
    ]
    assert EPS - 1e-3 < ledger.epsilon <= EPS + 1e-9
    # the generator still trained for the schedule's steps, and samples obey the contract's columns
    assert summary["steps"] >= sch.MIN_STEPS
    out = model.sample(300, seed=1)
    assert out.columns == adult_contract.modelled_columns and out.height == 300
    # a saved model keeps its critic-less fit, so its sampling factorises as the fitted one's does
    model.save(tmp_path / "model.pt")
    loaded = DPCTGAN.load(tmp_path / "model.pt", adult_contract, device="cpu")
    assert loaded._critic_on is False and loaded.measured.independent == model.measured.independent
    assert loaded.sample(300, seed=1).equals(out)


def test_the_option_overrides_the_rule_and_no_dp_keeps_the_critic(
    adult_contract: Contract, adult_modelled: pl.DataFrame
) -> None:
    """The decision alone, after the codec's charged step (what a fit knows when it makes it)."""

    def decide(dp: bool = True, **options: object) -> tuple[bool, float | None]:
        model = DPCTGAN(adult_contract, CTGANConfig(**TINY, **options), device="cpu")
        ledger = PrivacyLedger(adult_contract.privacy.delta)
        model._fit_codec_statistics(adult_modelled, ledger=ledger, dp=True, rng=np.random.default_rng(0), epsilon=EPS)
        return model._plan_critic(ledger=ledger, dp=dp, epsilon=EPS), model._critic_snr

    on, snr = decide()
    assert not on and 0 < snr < sch.MIN_CRITIC_SNR  # 1,200 rows at ε = 1
    assert decide(critic="on") == (True, None)
    assert decide(critic="off") == (False, None)
    assert decide(dp=False) == (True, None)  # the non-DP baseline: no noise, the critic trains
    assert decide(epochs=2.0) == (True, None)  # the user's schedule: the critic trains


def test_explicit_epochs_keep_the_critic(
    adult_contract: Contract, adult_modelled: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's epochs / batch size win over the schedule, the critic included (and the critic's
    batches go through ``Run.real_batch``, which the no-critic test above forbids: it has power)."""
    reads: list[int] = []
    real_batch = Run.real_batch

    def counted(self: Run) -> object:
        reads.append(1)
        return real_batch(self)

    monkeypatch.setattr(Run, "real_batch", counted)
    model, ledger = _fit(adult_contract, adult_modelled, epochs=0.5, batch_size=100)
    assert len(reads) == ledger.entries[-1].steps > 0
    assert model.training_summary["critic"] == "on"
    assert [e.mechanism for e in ledger.entries][-1] == "dp-sgd-critic"
    assert ledger.entries[-1].steps == math.ceil(0.5 / model.training_summary["sample_rate"])


def test_the_generator_is_narrower_when_the_critic_trains_unless_the_config_says(adult_contract: Contract) -> None:
    """``generator_dims=None`` (the default): (128, 128) with the DP-SGD critic, (256, 256) without it
    (BENCHMARKS.md, "Round 2 session 14"); explicit widths always win. The decision is the critic's,
    which a saved model keeps (``_extra_state``), so a loaded model rebuilds the same network."""
    from synthgate.models.synthesizers.ctgan import GENERATOR_DIMS

    assert CTGANConfig().generator_dims is None
    assert GENERATOR_DIMS == {True: (128, 128), False: (256, 256)}
    model = DPCTGAN(adult_contract, CTGANConfig(critic_dims=(32,), z_dim=8), device="cpu")
    for critic_on in (True, False):
        model._critic_on = critic_on
        assert model.generator_dims() == GENERATOR_DIMS[critic_on]
        assert model._extra_state()["critic"] is critic_on  # saved with the model, so load() rebuilds alike
    explicit = DPCTGAN(adult_contract, CTGANConfig(generator_dims=(48, 24)), device="cpu")
    for critic_on in (True, False):
        explicit._critic_on = critic_on
        assert explicit.generator_dims() == (48, 24)


def test_critic_partners_are_release_draws_that_leave_the_generator_as_it_was(
    adult_contract: Contract, adult_modelled: pl.DataFrame
) -> None:
    """``DPCTGAN._partners``: exactly b rows in eval mode, from the stream it is given. The realised
    Poisson batch b is private, so nothing the generator keeps (weights, BatchNorm running statistics,
    train/eval mode) may change with it, and partner i may depend on no other partner (eval-mode
    BatchNorm: a row's output is the same whatever rows are generated beside it)."""
    import torch

    model, _ = _fit(adult_contract, adult_modelled, epochs=0.5, batch_size=100)
    gen = model.generator
    assert gen is not None and any(isinstance(m, torch.nn.BatchNorm1d) for m in gen.modules())
    gen.train()
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    g = torch.Generator().manual_seed(11)
    assert model._partners(0, g) is None
    for b in (1, 7, 301):
        fake = model._partners(b, g)
        assert fake is not None and fake.shape == (b, model.codec.dim) and not fake.requires_grad
        assert torch.isfinite(fake).all()
        assert gen.training  # back in train mode for the generator's own step
        after = gen.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), f"b = {b} changed the generator's state"
    # eval mode: row i's output does not depend on the rows generated with it (train-mode BatchNorm would)
    x = torch.randn(301, model.config.z_dim + model.cond_dim, generator=torch.Generator().manual_seed(5))
    gen.eval()
    with torch.no_grad():
        assert torch.allclose(gen(x[:3]), gen(x)[:3], atol=1e-5)
    gen.train()
    with torch.no_grad():
        assert not torch.allclose(gen(x[:3]), gen(x)[:3], atol=1e-3)  # the control: train mode mixes rows


def test_the_rule_is_public_and_the_options_are_checked() -> None:
    # the decision's inputs: the ledger (public entries), ε, and the codec's DP row count and width
    import inspect

    assert set(inspect.signature(DPCTGAN._plan_critic).parameters) == {"self", "ledger", "dp", "epsilon"}
    with pytest.raises(ValidationError, match="critic='off' with marginals='off'"):
        CTGANConfig(critic="off", marginals="off")
    with pytest.raises(ValidationError):
        CTGANConfig(critic="sometimes")
