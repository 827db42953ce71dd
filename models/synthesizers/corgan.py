"""DP-corGAN: medGAN with 1-D convolutional networks, so adjacent features share filters.

The model (Torfi & Fox 2020, "CorGAN: Correlation-Capturing Convolutional Generative Adversarial
Networks for Generating Synthetic Healthcare Records"): medGAN's recipe (an autoencoder
pre-trained on real rows, a generator in its latent space whose output is decoded, a
discriminator on decoded rows) with 1-D convolutions. The encoded row is read as a 1-channel
sequence of length ``codec.dim``: a convolution's filter slides over neighbouring features, which
is meant to capture correlations between adjacent columns (e.g. related diagnosis codes).
- autoencoder: strided Conv1d layers -> flatten -> Linear -> tanh latent; decoder: Linear ->
  sub-pixel (Conv1d + reshape) upsampling Conv1d layers -> codec-space logits. The Linear
  ends give each feature position its own weights (a pure convolution could not tell the
  columns apart); the convolutions carry the local structure;
- generator: z -> Linear -> a short 1-channel-group sequence -> residual Conv1d blocks
  (BatchNorm: the generator never sees a real row) -> flatten -> Linear -> tanh latent;
- discriminator (critic): the row and its batch-mean stand-in as TWO channels over the same
  positions -> strided Conv1d layers -> flatten -> Linear -> score.

Training is medGAN's loop, unchanged (models/synthesizers/medgan.py, its docstring says what
differs from the papers under DP): two DP-SGD phases (``dp-sgd-autoencoder``,
``dp-sgd-discriminator``) sharing one noise multiplier calibrated before either runs, the public
stand-in for the real rows' batch mean, fake partners in fixed-size chunks, real and fake halves
clipped together, the decoder fine-tuned on fake data only. corGAN's paper trains a WGAN; here the
critic uses the penalty-free logistic pair loss (models/dp.py: WGAN-GP's double backward is 2x
slower under DP-SGD, and weight clipping interacts badly with DP noise).

DP-specific choices for the networks: no BatchNorm and no dropout in the autoencoder or the
critic (no normalisation at all, which ``opacus.validators.ModuleValidator`` accepts); no
ConvTranspose1d (Opacus' hooks have no per-sample rule for it), so the decoder upsamples with a
sub-pixel shuffle. The critic folds the (real, fake) pair into its batch for the convolutions, so
its per-sample gradients come from ``torch.func`` (``per_sample="functorch"``): Opacus' hooks
would see 2b samples.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from synthgate.models.synthesizers.base import ModelInfo, SynthConfig
from synthgate.models.synthesizers.medgan import MedGAN, MedGANConfig

__all__ = ["ConvDecoder", "ConvDiscriminator", "ConvEncoder", "ConvGenerator", "CorGAN", "CorGANConfig"]


class CorGANConfig(MedGANConfig):
    """corGAN's options: medGAN's (dims of MLP layers are unused) plus the convolutions' shape."""

    # Three stride-2 layers keep the flattened map (and the Linear ends) small: per-sample
    # gradients cost time in proportion to the parameter count.
    channels: tuple[int, ...] = Field((8, 16, 16), min_length=1, description="Conv1d channels per stride-2 layer.")
    kernel_size: int = Field(5, ge=1, description="Conv1d kernel (odd: 'same' padding).")
    generator_channels: int = Field(32, ge=1)
    generator_length: int = Field(16, ge=1, description="Length of the generator's convolved sequence.")
    generator_blocks: int = Field(2, ge=1, description="Residual Conv1d blocks in the generator.")
    latent_dim: int = Field(128, ge=1)

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, k: int) -> int:
        if k % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so that 'same' padding keeps positions aligned. Got {k}; use {k + 1}."
            )
        return k


def _down_lengths(length: int, layers: int) -> list[int]:
    """Sequence lengths after each stride-2 'same' convolution: ceil(L / 2) each time."""
    out = [length]
    for _ in range(layers):
        out.append(math.ceil(out[-1] / 2))
    return out


class _SubPixel1d(nn.Module):
    """(n, C·2, L) -> (n, C, 2L): position 2j+r takes channel block r at j (a learnable x2 upsampling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c2, length = x.shape
        return x.reshape(n, c2 // 2, 2, length).permute(0, 1, 3, 2).reshape(n, c2 // 2, 2 * length)


class ConvEncoder(nn.Module):
    """Codec row (n, d) -> latent (n, latent) in (-1, 1): strided Conv1d over the 1-channel row."""

    def __init__(self, d: int, channels: tuple[int, ...], kernel: int, latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv1d(c_in, c, kernel, stride=2, padding=kernel // 2), nn.LeakyReLU(0.2)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * _down_lengths(d, len(channels))[-1], latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x.unsqueeze(1))
        return torch.tanh(self.head(h.flatten(1)))


class ConvDecoder(nn.Module):
    """Latent (n, latent) -> logits (n, d): Linear to a short sequence, then x2 sub-pixel Conv1d steps."""

    def __init__(self, latent_dim: int, channels: tuple[int, ...], kernel: int, d: int) -> None:
        super().__init__()
        self.d = d
        self.channels = tuple(reversed(channels))  # widest first
        self.length = _down_lengths(d, len(channels))[-1]
        self.head = nn.Linear(latent_dim, self.channels[0] * self.length)
        layers: list[nn.Module] = []
        outs = [*self.channels[1:], 1]
        for c_in, c_out in zip(self.channels, outs, strict=True):
            layers += [nn.Conv1d(c_in, 2 * c_out, kernel, padding=kernel // 2), _SubPixel1d()]
            if c_out != 1:
                layers.append(nn.LeakyReLU(0.2))
        self.convs = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.head(h), 0.2).reshape(h.shape[0], self.channels[0], self.length)
        return self.convs(x)[:, 0, : self.d]


class _ResConv(nn.Module):
    def __init__(self, c: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c, c, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(c)  # generator only: never sees a real row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.bn(self.conv(x)))


class ConvGenerator(nn.Module):
    """z -> Linear -> (channels, length) sequence -> residual Conv1d blocks -> Linear -> tanh latent."""

    def __init__(self, z_dim: int, channels: int, length: int, blocks: int, kernel: int, latent_dim: int) -> None:
        super().__init__()
        self.channels, self.length = channels, length
        self.head = nn.Linear(z_dim, channels * length)
        self.bn = nn.BatchNorm1d(channels * length)
        self.body = nn.Sequential(*[_ResConv(channels, kernel) for _ in range(blocks)])
        self.out = nn.Linear(channels * length, latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.head(z))).reshape(z.shape[0], self.channels, self.length)
        return torch.tanh(self.out(self.body(x).flatten(1)))


class ConvDiscriminator(nn.Module):
    """Scores [row, batch mean] inputs of width 2·d, any leading shape (pairs (b, 2, 2d) -> (b, 2)).

    Row and mean are two channels over the same d positions, so a filter sees each feature next
    to its neighbours and next to the batch's mean of those features. No normalisation.
    """

    def __init__(self, d: int, channels: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        self.d = d
        layers: list[nn.Module] = []
        c_in = 2
        for c in channels:
            layers += [nn.Conv1d(c_in, c, kernel, stride=2, padding=kernel // 2), nn.LeakyReLU(0.2)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * _down_lengths(d, len(channels))[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = self.convs(x.reshape(-1, 2, self.d))
        return self.head(h.flatten(1)).reshape(lead)


class CorGAN(MedGAN):
    """medGAN's DP training loop (inherited) with 1-D convolutional networks."""

    name = "corgan"
    config_class: ClassVar[type[SynthConfig]] = CorGANConfig
    conditional = False
    info = ModelInfo(
        family="convolutional autoencoder + latent GAN (corGAN, Torfi & Fox 2020)",
        paper="Torfi, Fox: CorGAN: Correlation-Capturing Convolutional Generative Adversarial "
        "Networks for Generating Synthetic Healthcare Records, FLAIRS 2020",
        good_for="binary code matrices whose neighbouring columns are related (codes ordered by "
        "a hierarchy), where shared 1-D filters can pick up local correlations",
        caveats="column order matters (convolutions only relate nearby columns in the contract's "
        "order); logistic critic instead of the paper's WGAN; medGAN's two-phase DP budget split",
    )
    config: CorGANConfig
    # The critic reshapes each (real, fake) pair into its conv batch: Opacus' hooks would see 2b
    # samples, so its per-sample gradients must come from torch.func (medGAN's default anyway).
    discriminator_per_sample: ClassVar[str] = "functorch"

    def _make_encoder(self) -> nn.Module:
        cfg = self.config
        return ConvEncoder(self.codec.dim, cfg.channels, cfg.kernel_size, cfg.latent_dim)

    def _make_decoder(self) -> nn.Module:
        cfg = self.config
        return ConvDecoder(cfg.latent_dim, cfg.channels, cfg.kernel_size, self.codec.dim)

    def _make_generator(self) -> nn.Module:
        cfg = self.config
        return ConvGenerator(
            cfg.z_dim,
            cfg.generator_channels,
            cfg.generator_length,
            cfg.generator_blocks,
            cfg.kernel_size,
            cfg.latent_dim,
        )

    def _make_discriminator(self) -> nn.Module:
        cfg = self.config
        return ConvDiscriminator(self.codec.dim, cfg.channels, cfg.kernel_size)
