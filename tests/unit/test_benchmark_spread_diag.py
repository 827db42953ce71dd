"""benchmarks/spread_diag.py: its pinned streams separate the DP noise from the generator's randomness."""

from __future__ import annotations

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
