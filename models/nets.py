"""Networks several synthesizers share."""

from __future__ import annotations

import torch
from torch import nn


class MLPCritic(nn.Module):
    """Dense LeakyReLU layers to one score per row; works on (..., d) inputs.

    No BatchNorm (it mixes samples) and no dropout: every sample's output depends on that sample
    alone, as per-sample DP-SGD (Opacus hooks or torch.func vmap) requires.
    """

    def __init__(self, in_dim: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in dims:
            layers += [nn.Linear(d, h), nn.LeakyReLU(0.2)]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
