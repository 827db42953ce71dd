"""benchmarks/spread_diag.py: its pinned streams separate the DP noise from the generator's randomness."""

from __future__ import annotations

import pytest
import torch

from benchmarks import spread_diag as sd


def _draws(public: int, private: int, seed: int) -> tuple[float, float, float]:
    sd.PINNED.update(public=public, private=private)
    g = sd._pinned_generators(seed, torch.device("cpu"))
    return (
        float(torch.rand(1, generator=g.init)),  # public: weight initialisation
        float(torch.rand(1, generator=g.noise)),  # private: DP-SGD noise
        float(g.numpy.random()),  # private: codec and marginal noise
    )


def test_the_pinned_streams_follow_their_keys_not_the_seed() -> None:
    base = _draws(0, 0, seed=0)
    assert _draws(0, 0, seed=7) == base  # the fit's seed is ignored
    other_public = _draws(1, 0, seed=0)
    assert other_public[0] != base[0] and other_public[1:] == base[1:]  # same DP noise, new generator
    other_private = _draws(0, 1, seed=0)
    assert other_private[0] == base[0] and other_private[1] != base[1] and other_private[2] != base[2]


def test_the_clip_arm_restores_the_estimators_before_session_16(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--one-way clip``: the codec's and the pooled frequencies clipped at zero and normalised, n̂ the plain
    mean of the column totals; the default projects onto n̂'s simplex with the inverse-variance n̂."""
    import numpy as np

    from synthgate.models import codec, marginals

    for module, name in ((codec, "one_way_estimate"), (marginals, "one_way_estimate"), (codec, "row_estimate")):
        monkeypatch.setattr(module, name, getattr(module, name))  # undone after the test
    counts = np.array([-3.0, 900.0, 12.0, 4.0])
    projected = codec.one_way_estimate(counts, 900.0)
    assert projected[1] > 900.0 / 916.0  # θ > 0 came off every count
    sd._clip_one_way()
    np.testing.assert_allclose(codec.one_way_estimate(counts, 900.0), [0.0, 900 / 916, 12 / 916, 4 / 916])
    assert marginals.one_way_estimate is codec.one_way_estimate
    noisy = {"a": np.array([600.0, 400.0]), "b": np.full(100, 10.2)}
    est, sd_ = codec.row_estimate(noisy, 5.0)
    assert est == pytest.approx(1010.0) and sd_ == pytest.approx(5.0 * np.sqrt(102) / 2)
