"""The DP mechanisms' randomness never follows from the public seed.

A report shows the run's seed. If the Gaussian noise, the Poisson batches or the codec noise were
derived from it, anyone could regenerate the noise and subtract it. These tests pin the rule:
without ``SYNTHGATE_NOISE_SEED`` two DP fits with the same seed differ; with it they repeat; the
public streams (weight initialisation) still follow the seed alone; the key's value is never shown.
"""

from __future__ import annotations

import polars as pl
import pytest
import torch

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import get_synthesizer
from synthgate.models.synthesizers.base import NOISE_SEED_ENV, make_generators, private_randomness_source
from synthgate.validation.contract import Contract


def _fit_ctgan(contract: Contract, train: pl.DataFrame) -> dict[str, torch.Tensor]:
    cls = get_synthesizer("ctgan")
    model = cls(contract, cls.config_class(epochs=0.5, batch_size=200), device="cpu")
    model.fit(
        train.select(contract.modelled_columns), ledger=PrivacyLedger(contract.privacy.delta), epsilon=3.0, seed=5
    )
    return {k: v.clone() for k, v in model.generator.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_without_the_key_a_dp_fit_does_not_repeat(
    adult_contract: Contract, adult_small: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NOISE_SEED_ENV, raising=False)
    first, second = _fit_ctgan(adult_contract, adult_small), _fit_ctgan(adult_contract, adult_small)
    assert not _same(first, second)
    assert "operating-system entropy" in private_randomness_source()


def test_with_the_key_a_dp_fit_repeats(
    adult_contract: Contract, adult_small: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NOISE_SEED_ENV, "987654321")
    assert _same(_fit_ctgan(adult_contract, adult_small), _fit_ctgan(adult_contract, adult_small))
    assert "987654321" not in private_randomness_source()


def test_private_streams_change_with_the_key_public_streams_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    def draws(key: str) -> dict[str, torch.Tensor]:
        monkeypatch.setenv(NOISE_SEED_ENV, key)
        g = make_generators(7, torch.device("cpu"))
        return {
            "init": torch.rand(4, generator=g.init),
            "device": torch.rand(4, generator=g.device),
            "extra": torch.rand(4, generator=g.extra),
            "noise": torch.rand(4, generator=g.noise),
            "batches": torch.rand(4, generator=g.batches),
            "per_sample": torch.rand(4, generator=g.per_sample),
            "numpy": torch.as_tensor(g.numpy.random(4)),
        }

    a, b = draws("1"), draws("2")
    for public in ("init", "device", "extra"):
        assert torch.equal(a[public], b[public]), public
    for private in ("noise", "batches", "numpy", "per_sample"):
        assert not torch.equal(a[private], b[private]), private


@pytest.mark.parametrize("bad", ["abc", "-3"])
def test_a_bad_key_is_refused_without_echoing_it(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOISE_SEED_ENV, bad)
    with pytest.raises(ValueError, match=NOISE_SEED_ENV) as err:
        make_generators(0, torch.device("cpu"))
    assert bad not in str(err.value)


def test_the_private_streams_are_domain_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each private stream is its own SeedSequence child: under one key no two start alike."""
    monkeypatch.setenv(NOISE_SEED_ENV, "1")
    g = make_generators(7, torch.device("cpu"))
    draws = {name: torch.rand(8, generator=getattr(g, name)) for name in ("batches", "noise", "per_sample")}
    draws["numpy"] = torch.as_tensor(g.numpy.random(8), dtype=torch.float32)
    names = sorted(draws)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.equal(draws[a], draws[b]), (a, b)
