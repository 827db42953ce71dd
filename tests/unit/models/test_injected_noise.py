"""The noise each DP mechanism actually injects has the scale its ledger entry is charged for.

Issue 18, item 6: the suite stayed green when the codec released exact histograms while the ledger
charged ε, when the codec's L2 sensitivity was taken as 1 instead of √columns, and when DP-SGD's
noise had std σ instead of σ·C (every test fit used C = 1). These tests measure the noise in what the
mechanisms release, inside a real fit of every registered model, against the ledger:

- the codec (``codec-histograms``): the released histograms minus the exact ones. Adding or removing
  one row changes each of the k per-column histograms by one count, so the L2 sensitivity is √k
  (checked on the table itself) and the noise std must be σ·√k for the σ the ledger charges;
- every DP-SGD network (``dp-sgd-*``): the gradient the inner Adam receives, times the expected batch
  size. With the per-sample gradients zeroed just before clipping (the taint test's neutralisation),
  that gradient is the injected noise alone, whose std must be σ·C; the fits use C = 0.37, so σ
  alone is off by a factor 2.7;
- tablegan's feature moments (``gaussian-feature-moments``): the released sum with an empty batch,
  std σ·C_f with C_f = 0.45.

Tolerances: the std of m independent normal draws is estimated within about 1/√(2m) (relative); each
check needs m ≥ 500 and allows 6 such standard errors, and every mutation above is off by a factor
≥ 2.2.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

import synthgate.models.synthesizers.tablegan as tablegan_module
from synthgate.models.codec import Codec
from synthgate.models.dp import PrivateTrainer
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import MODEL_NAMES, get_synthesizer
from synthgate.validation.contract import Contract
from tests.unit.models.test_taint import CODEC, DP_SGD, MOMENTS, TINY, Taint, neutralised

CLIP = 0.37  # C ≠ 1: σ and σ·C differ
FEATURE_CLIP = 0.45  # tablegan's C_f ≠ 1


# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit_and_capture(name: str, contract: Contract, train: pl.DataFrame) -> tuple[PrivacyLedger, dict[str, Any], Any]:
    """A DP fit of ``name`` (C = CLIP) in which the codec reads the table and every other mechanism gets
    zero gradients / an empty batch; what each mechanism released is captured."""
    captured: dict[str, Any] = {"codec": [], "sgd": {}, "moments": []}
    mp = pytest.MonkeyPatch()
    fit_dp = Codec.fit_dp

    @functools.wraps(fit_dp)
    def capturing_fit_dp(self: Codec, df: pl.DataFrame, **kwargs: Any) -> None:
        exact = self.histograms(df)
        set_statistics = self._set_statistics

        def capture(noisy: dict[str, np.ndarray], sigma: float) -> None:
            captured["codec"].append((df, exact, {k: np.asarray(v, dtype=np.float64).copy() for k, v in noisy.items()}))
            set_statistics(noisy, sigma)

        self._set_statistics = capture  # type: ignore[method-assign]
        try:
            fit_dp(self, df, **kwargs)
        finally:
            del self._set_statistics

    def capturing_init(self: PrivateTrainer, module: torch.nn.Module, **kwargs: Any) -> None:
        trainer_init(self, module, **kwargs)
        inner = self.optimizer.original_optimizer
        step = inner.step
        grads = captured["sgd"].setdefault(kwargs["mechanism"], [])

        def capturing_step(*args: Any, **kw: Any) -> Any:
            grads.append(torch.cat([p.grad.detach().flatten().cpu() for p in self.optimizer.params]))
            return step(*args, **kw)

        inner.step = capturing_step  # type: ignore[method-assign]

    def capturing_release(features: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = release(features, **kwargs)  # neutralised: it releases an empty batch's sum, noise only
        captured["moments"].append((out * kwargs["expected_batch_size"]).detach().cpu())
        return out

    cls = get_synthesizer(name)
    options = dict(TINY[name], epochs=0.5, batch_size=100, max_grad_norm=CLIP)
    if name == "tablegan":  # 2 x 64 released moments per step: enough noise values to measure
        options |= {"feature_clip": FEATURE_CLIP, "feature_dim": 64}
    if "autoencoder_epochs" in options:
        options["autoencoder_epochs"] = 0.5
    model = cls(contract, cls.config_class(**options), device="cpu")
    ledger = PrivacyLedger(contract.privacy.delta)
    with neutralised(Taint(live=frozenset({CODEC}))):
        # wrap the neutralised versions (zero per-sample gradients, empty feature batches)
        trainer_init = PrivateTrainer.__init__
        release = tablegan_module.release_feature_moments
        mp.setattr(Codec, "fit_dp", capturing_fit_dp)
        mp.setattr(PrivateTrainer, "__init__", capturing_init)
        mp.setattr(tablegan_module, "release_feature_moments", capturing_release)
        try:
            model.fit(train.select(contract.modelled_columns), ledger=ledger, epsilon=1.0, seed=3)
        finally:
            mp.undo()
    return ledger, captured, model


_FITS: dict[str, tuple[PrivacyLedger, dict[str, Any], Any]] = {}


@pytest.fixture()
def fitted(
    request: pytest.FixtureRequest, adult_contract: Contract, adult_small: pl.DataFrame
) -> tuple[PrivacyLedger, dict[str, Any], Any]:
    name = request.param
    if name not in _FITS:
        _FITS[name] = _fit_and_capture(name, adult_contract, adult_small)
    return _FITS[name]


def _check_std(values: np.ndarray, expected: float, what: str) -> None:
    m = values.size
    assert m >= 500, f"{what}: only {m} noise values"
    measured = float(np.sqrt(np.mean(values**2)))  # the noise has mean 0
    tolerance = 6 / math.sqrt(2 * m)
    assert abs(measured / expected - 1) < tolerance, (
        f"{what}: injected noise std {measured:.4g}, but the ledger charges for {expected:.4g} "
        f"(ratio {measured / expected:.3f}, tolerance ±{tolerance:.3f})"
    )


def _entry(ledger: PrivacyLedger, mechanism: str) -> Any:
    (entry,) = [e for e in ledger.entries if e.mechanism == mechanism]
    return entry


@pytest.mark.parametrize("fitted", MODEL_NAMES, indirect=True)
def test_the_codec_noise_is_sigma_times_root_columns(fitted: tuple[PrivacyLedger, dict[str, Any], Any]) -> None:
    ledger, captured, model = fitted
    ((df, exact, noisy),) = captured["codec"]
    k = len(model.contract.modelled_columns)  # one histogram per modelled column
    # the L2 sensitivity, measured: one more row moves each of the k histograms by one count
    plus_one = model.codec.histograms(pl.concat([df, df[:1]]))
    change = math.sqrt(sum(float(((plus_one[c] - exact[c]) ** 2).sum()) for c in exact))
    assert change == pytest.approx(math.sqrt(k))
    deviations = np.concatenate([noisy[c] - exact[c] for c in exact])
    _check_std(deviations, _entry(ledger, CODEC).noise_multiplier * math.sqrt(k), f"{model.name} codec")


@pytest.mark.parametrize("fitted", MODEL_NAMES, indirect=True)
def test_the_dp_sgd_noise_is_sigma_times_the_clipping_norm(fitted: tuple[PrivacyLedger, dict[str, Any], Any]) -> None:
    ledger, captured, model = fitted
    assert set(captured["sgd"]) == set(DP_SGD[model.name])
    for mechanism, grads in captured["sgd"].items():
        entry = _entry(ledger, mechanism)
        assert len(grads) == entry.steps > 0
        # the gradient is (clipped sum + noise) / expected batch size; the clipped sum is zero here
        expected_batch = max(1, round(entry.sample_rate * float(model.codec.n_estimate)))
        noise = torch.cat(grads).numpy().astype(np.float64) * expected_batch
        assert model.config.max_grad_norm == CLIP
        _check_std(noise, entry.noise_multiplier * CLIP, f"{model.name} {mechanism}")


def test_the_feature_moments_noise_is_sigma_times_their_clipping_norm(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    ledger, captured, model = _FITS.get("tablegan") or _fit_and_capture("tablegan", adult_contract, adult_small)
    entry = _entry(ledger, MOMENTS)
    assert len(captured["moments"]) == entry.steps > 0
    noise = torch.cat(captured["moments"]).numpy().astype(np.float64)
    _check_std(noise, entry.noise_multiplier * FEATURE_CLIP, "tablegan feature moments")
