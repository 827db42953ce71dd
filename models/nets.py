"""Networks several synthesizers share."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def dense_layers(
    in_dim: int, dims: tuple[int, ...], activation: Callable[[], nn.Module]
) -> tuple[list[nn.Module], int]:
    """[Linear, activation] per width in ``dims``, and the width they end with."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in dims:
        layers += [nn.Linear(d, h), activation()]
        d = h
    return layers, d


class MLPCritic(nn.Module):
    """Dense LeakyReLU layers to one score per row; works on (..., d) inputs.

    No BatchNorm (it mixes samples) and no dropout: every sample's output depends on that sample
    alone, as per-sample DP-SGD (Opacus hooks or torch.func vmap) requires.
    """

    def __init__(self, in_dim: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        layers, d = dense_layers(in_dim, dims, lambda: nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers, nn.Linear(d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
