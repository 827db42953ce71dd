"""DP table-GAN: a DCGAN over rows reshaped to square matrices, with information and classification losses.

table-GAN (Park, Mohammadi, Gorde, Jajodia, Park, Kim: "Data Synthesis based on Generative
Adversarial Networks", VLDB 2018) treats a row as a tiny grey-scale image: the codec vector
(dim d) is zero-padded to side² cells (side = ceil(sqrt(d))) and shaped (1, side, side). Three
networks play:

- the generator G (DCGAN: Linear -> reshape -> ConvTranspose2d stack -> side x side logits; the
  first d cells are the codec vector, activated per codec block: tanh / Gumbel-softmax);
- the discriminator D (Conv2d stack), whose last hidden layer f(x) is a feature vector and whose
  score is a linear read-out of f;
- the classifier C (same convolutional body, separate weights), which predicts the contract's
  target label from a row whose label block is zeroed ("semantic integrity").

The generator minimises the adversarial loss, the *information loss* (distance between the mean
and standard deviation of f on real and on fake rows, with optional hinge thresholds δ_mean,
δ_sd as in the paper) and the *classification loss* (C's cross-entropy against the fake row's
own label).

What differs from the paper under DP, and why:
- every network that reads a real row trains through ``PrivateTrainer`` on Poisson batches:
  D (phase ``dp-sgd-discriminator``, penalty-free pair loss: real_i and its fake partner are
  one sample, clipped together) and C (phase ``dp-sgd-classifier``, trained on real rows only);
- D and C use GroupNorm, never BatchNorm (which mixes the samples of a batch); G keeps BatchNorm:
  it never sees a real row;
- the information loss needs the mean and standard deviation of f over REAL rows: statistics of
  private rows. The paper tracks them with moving averages of exact batch moments; here each
  step releases them through their own subsampled Gaussian mechanism (phase
  ``gaussian-feature-moments``, see :func:`release_feature_moments`) and the moving averages
  are post-processing of those releases. f is tanh-bounded so the clipping bound C_f can be
  chosen to (almost) never bind;
- the three phases each draw their own Poisson batch per step, so the ledger's RDP composition
  of three independent subsampled Gaussian mechanisms (one shared noise multiplier, from
  ``calibrate_noise(phases=...)``) is exactly what ran;
- an optional marginal loss towards the codec's DP histograms (post-processing, not in the
  paper) steers G's per-column distributions, so the noisy discriminator mostly has to teach the
  dependencies; a learned per-cell bias on G's output lets each cell (column slot) have its own
  offset, which a translation-equivariant convolution alone cannot give;
- no early stopping or model selection on real data.

``fit(..., epsilon=math.inf)`` is the non-DP mode (baselines, attack oracles): exact codec
histograms, plain Adam for D and C, exact batch feature moments; all recorded as non-DP ledger
entries (ε = ∞). Architecture, losses, sampling rates and step counts are those of the DP path.
"""

from __future__ import annotations

import math
import warnings
from contextlib import ExitStack
from typing import Any

import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from synthgate.models.codec import Block, Codec
from synthgate.models.dp import PrivateTrainer, init_uniform_, pair_loss
from synthgate.models.ledger import Charge
from synthgate.models.synthesizers.base import (
    ModelInfo,
    Phase,
    Run,
    SynthConfig,
    Synthesizer,
    activate,
    marginal_loss,
    marginal_targets,
)
from synthgate.validation.contract import Contract

__all__ = [
    "ConvBody",
    "Discriminator",
    "Classifier",
    "Generator",
    "TableGAN",
    "TableGANConfig",
    "from_square",
    "release_feature_moments",
    "side_for",
    "to_square",
]

# Opacus' per-sample hooks on a network whose input needs no gradient trigger this torch warning
# on every step; it is benign (see ctgan.py for why a process-wide filter).
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


class TableGANConfig(SynthConfig):
    """table-GAN options; ``epochs``, ``batch_size``, ``max_grad_norm``, ``codec_noise_multiplier`` inherited."""

    epochs: float = Field(5.0, gt=0, description="Passes over the data (1/q Poisson steps each).")
    z_dim: int = Field(64, ge=1, description="Latent dimension of the generator.")
    generator_channels: int = Field(32, ge=2, description="Channels of G's widest convolution.")
    discriminator_channels: int = Field(
        8,
        ge=2,
        description="Base channels of D's and C's conv bodies (x1, x2, x4 per layer); per-sample "
        "gradients cost memory and time in proportion to these networks' size.",
    )
    feature_dim: int = Field(16, ge=1, description="Width of D's feature layer f(x) (tanh-bounded).")
    norm_groups: int = Field(4, ge=1, description="GroupNorm groups in D and C (must divide their channels).")
    generator_lr: float = Field(1e-3, gt=0)
    discriminator_lr: float = Field(1e-3, gt=0)
    classifier_lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    info_weight: float = Field(1.0, ge=0, description="Weight of the information loss; 0 disables it and its phase.")
    delta_mean: float = Field(0.0, ge=0, description="Hinge threshold δ_mean of the information loss (paper).")
    delta_sd: float = Field(0.0, ge=0, description="Hinge threshold δ_sd of the information loss (paper).")
    feature_clip: float = Field(
        4.0,
        gt=0,
        description="C_f: L2 clipping bound of each real row's [f, f²] before the Gaussian "
        "feature-moment release. f is tanh-bounded, so sqrt(2·feature_dim) never binds.",
    )
    feature_ema: float = Field(0.9, ge=0, lt=1, description="Decay of the moving averages of the released moments.")
    class_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the classification loss; 0 (or no categorical/boolean target) "
        "disables the classifier and its phase.",
    )
    marginal_weight: float = Field(
        1.0, ge=0, description="Weight of a marginal loss towards the codec's DP histograms (not in the paper)."
    )
    gumbel_tau: float = Field(0.2, gt=0)

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> TableGANConfig:
        c, g = self.discriminator_channels, self.norm_groups
        if (2 * c) % g:
            raise ValueError(
                f"norm_groups={g} must divide the discriminator's and classifier's conv widths "
                f"{2 * c} and {4 * c} (discriminator_channels={c}). Pick a divisor of {2 * c}."
            )
        return self


# ---------------------------------------------------------------------------- square layout
def side_for(dim: int) -> int:
    """Side of the square matrix a codec vector of ``dim`` entries is padded into."""
    if dim < 1:
        raise ValueError(f"a codec vector needs at least one entry; got dim={dim}.")
    return math.isqrt(dim - 1) + 1  # ceil(sqrt(dim)), exact for any integer


def to_square(x: torch.Tensor, side: int) -> torch.Tensor:
    """(N, d) codec vectors -> (N, 1, side, side) images, zero-padded after the d-th entry."""
    d = x.shape[-1]
    if d > side * side:
        raise ValueError(f"a vector of {d} entries does not fit a {side}x{side} matrix.")
    return F.pad(x, (0, side * side - d)).reshape(-1, 1, side, side)


def from_square(img: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, 1, side, side) images -> their first ``dim`` entries in row-major order, (N, dim)."""
    return img.reshape(img.shape[0], -1)[:, :dim]


def _halved(side: int, times: int) -> int:
    for _ in range(times):
        side = (side + 1) // 2  # a stride-2, kernel-3, padding-1 convolution: ceil(s / 2)
    return side


# ---------------------------------------------------------------------------- networks
class Generator(nn.Module):
    """DCGAN generator: z -> Linear -> (2c, s0, s0) -> 2x ConvTranspose2d (x2 each) -> side x side logits.

    BatchNorm is allowed: G never sees a real row (its training is post-processing).
    """

    def __init__(self, z_dim: int, dim: int, channels: int) -> None:
        super().__init__()
        self.dim = dim
        self.side = side_for(dim)
        self.s0 = _halved(self.side, 2)  # two x2 up-samplings reach >= side; the excess is cropped
        c = channels
        self.fc = nn.Linear(z_dim, 2 * c * self.s0 * self.s0)
        self.bn0 = nn.BatchNorm2d(2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, kernel_size=4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.up2 = nn.ConvTranspose2d(c, c // 2, kernel_size=4, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(c // 2)
        self.out = nn.Conv2d(c // 2, 1, kernel_size=3, padding=1)
        # Cells are column slots, not pixels: each gets its own offset (convolutions share theirs).
        self.cell_bias = nn.Parameter(torch.zeros(1, 1, self.side, self.side))
        self.channels = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, z_dim) -> (N, dim) raw logits (the first ``dim`` cells of the side x side matrix)."""
        h = self.fc(z).reshape(-1, 2 * self.channels, self.s0, self.s0)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.up1(h)))
        h = F.relu(self.bn2(self.up2(h)))
        img = self.out(h)[:, :, : self.side, : self.side] + self.cell_bias
        return from_square(img, self.dim)


class ConvBody(nn.Module):
    """Conv2d stack shared in shape by D and C: (N, d) rows -> (N, feature_dim) features in [-1, 1].

    GroupNorm (per-sample statistics), never BatchNorm: these networks read real rows under DP-SGD.
    """

    def __init__(self, dim: int, channels: int, feature_dim: int, groups: int) -> None:
        super().__init__()
        c = channels
        for width in (2 * c, 4 * c):
            if width % groups:
                raise ValueError(
                    f"norm_groups={groups} must divide the conv widths {2 * c} and {4 * c} "
                    f"(discriminator_channels={c}). Pick a divisor, e.g. norm_groups=2."
                )
        self.dim = dim
        self.side = side_for(dim)
        s2 = _halved(self.side, 2)
        self.conv1 = nn.Conv2d(1, c, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1)
        self.gn2 = nn.GroupNorm(groups, 2 * c)
        self.conv3 = nn.Conv2d(2 * c, 4 * c, kernel_size=3, stride=2, padding=1)
        self.gn3 = nn.GroupNorm(groups, 4 * c)
        self.fc = nn.Linear(4 * c * s2 * s2, feature_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv1(to_square(x, self.side)))
        h = self.act(self.gn2(self.conv2(h)))
        h = self.act(self.gn3(self.conv3(h)))
        # tanh-bounded features: the feature-moment release can clip without (much) bias.
        return torch.tanh(self.fc(h.flatten(1)))


class Discriminator(nn.Module):
    """D: conv body -> feature f(x) -> linear score.

    ``forward`` takes (N, d) rows -> (N,) scores, or (B, 2, d) pairs [real_i, fake_i] -> (B, 2)
    scores for ``pair_loss``. A pair goes through the body as two calls of batch B (not one call of
    batch 2B): Opacus' hooks then sum the two calls' per-sample gradients into sample i, so the
    real row and its fake partner are clipped together as ONE sample.
    """

    def __init__(self, dim: int, channels: int, feature_dim: int, groups: int) -> None:
        super().__init__()
        self.body = ConvBody(dim, channels, feature_dim, groups)
        self.score = nn.Linear(feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): the last hidden layer, (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return torch.stack([self.score(self.body(x[:, j])).squeeze(-1) for j in range(x.shape[1])], dim=1)
        return self.score(self.body(x)).squeeze(-1)


class Classifier(nn.Module):
    """C: the same conv body shape (separate weights) -> logits over the target's categories."""

    def __init__(self, dim: int, channels: int, feature_dim: int, groups: int, n_classes: int) -> None:
        super().__init__()
        self.body = ConvBody(dim, channels, feature_dim, groups)
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# ---------------------------------------------------------------------------- feature moments
def release_feature_moments(
    features: torch.Tensor,
    *,
    clip: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Gaussian-mechanism estimate of E[f] and E[f²] over a Poisson batch of REAL rows, shape (2F,).

    Each row's vector [f, f²] is clipped to L2 norm ``clip`` (adding or removing one row changes
    the sum by at most C_f), the clipped vectors are summed, Gaussian noise of std
    ``noise_multiplier · clip`` is added, and the sum is divided by the *expected* batch size (the
    actual size of a Poisson batch is private). With Poisson sampling at rate q over T steps this
    is the subsampled Gaussian mechanism the ledger charges as "gaussian-feature-moments".
    An empty batch (shape (0, F)) releases pure noise, as it must.
    """
    if expected_batch_size <= 0:
        raise ValueError(f"expected_batch_size must be > 0. Got {expected_batch_size}.")
    v = torch.cat([features, features.square()], dim=1)
    norms = v.norm(dim=1, keepdim=True)
    v = v * (clip / norms.clamp_min(1e-12)).clamp(max=1.0)
    total = v.sum(0)
    if noise_multiplier > 0:
        total = total + noise_multiplier * clip * torch.randn(
            total.shape, generator=generator, device=total.device, dtype=total.dtype
        )
    return total / expected_batch_size


class _MovingMoments:
    """Bias-corrected exponential moving averages of released (E[f], E[f²]): post-processing only."""

    def __init__(self, decay: float, device: torch.device | None = None) -> None:
        self.decay = decay
        self.device = device
        self.avg: torch.Tensor | None = None
        self.updates = 0

    def update(self, released: torch.Tensor) -> None:
        self.updates += 1
        self.avg = (
            released.clone() * (1 - self.decay)
            if self.avg is None
            else (self.decay * self.avg + (1 - self.decay) * released)
        )

    def state_dict(self) -> dict[str, Any]:
        return {"avg": None if self.avg is None else self.avg.detach().cpu().clone(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.avg = None if state["avg"] is None else state["avg"].to(self.device)
        self.updates = int(state["updates"])

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.avg is not None
        est = self.avg / (1 - self.decay**self.updates)
        k = est.shape[0] // 2
        mean, second = est[:k], est[k:]
        return mean, (second - mean.square()).clamp_min(0.0).add(1e-8).sqrt()


# ---------------------------------------------------------------------------- model
class TableGAN(Synthesizer):
    """fit(train, ledger, epsilon) under DP; sample(n) anywhere (post-processing of G)."""

    name = "tablegan"
    config_class = TableGANConfig
    conditional = False
    info = ModelInfo(
        family="convolutional GAN over rows reshaped to square matrices (table-GAN, Park et al. 2018)",
        paper="Park, Mohammadi, Gorde, Jajodia, Park, Kim: Data Synthesis based on Generative "
        "Adversarial Networks, VLDB 2018",
        good_for="tables with a categorical or boolean target whose label should stay consistent "
        "with the other columns (the classifier's semantic-integrity loss)",
        caveats="convolutions assume neighbouring codec slots are related, which tables do not "
        "guarantee; under DP three private phases (discriminator, feature moments, classifier) "
        "share the budget, so each is noisier than a single-critic model's",
    )
    config: TableGANConfig

    def __init__(self, contract: Contract, config: TableGANConfig | None = None, *, device: str = "auto") -> None:
        super().__init__(contract, config, device=device)
        self.side = side_for(self.codec.dim)
        self.label_block: Block | None = _label_block(self.codec, contract.target)
        # 1 everywhere but the label block: C reads rows with their label zeroed out.
        self._keep = torch.ones(self.codec.dim, device=self.device)
        if self.label_block is not None:
            self._keep[self.label_block.start : self.label_block.start + self.label_block.width] = 0.0
        self.generator: Generator | None = None
        self.discriminator: Discriminator | None = None
        self.classifier: Classifier | None = None

    # ------------------------------------------------------------------ helpers
    def _activate(self, logits: torch.Tensor, g: torch.Generator | None, *, hard: bool = False) -> torch.Tensor:
        return activate(self.codec, logits, g, tau=self.config.gumbel_tau, hard=hard)

    def _generate(self, n: int, g: torch.Generator) -> torch.Tensor:
        assert self.generator is not None
        z = torch.randn(n, self.config.z_dim, generator=g, device=self.device)
        return self.generator(z)

    def without_label(self, x: torch.Tensor) -> torch.Tensor:
        """Codec rows with the target's one-hot block zeroed: what the classifier C reads."""
        return x * self._keep

    def _uses_classifier(self) -> bool:
        return self.label_block is not None and self.config.class_weight > 0

    # ------------------------------------------------------------------ training (hooks of Synthesizer.fit)
    # Private mechanisms, each with its own Poisson batch per step, all at the same rate q for T steps,
    # sharing one σ calibrated so that they and the codec compose to ε: ``dp-sgd-discriminator``,
    # ``gaussian-feature-moments`` (when ``info_weight > 0``) and ``dp-sgd-classifier`` (when the
    # contract has a categorical/boolean target and ``class_weight > 0``). ``epsilon=math.inf`` trains
    # the same networks WITHOUT DP, recorded as non-DP ledger entries (ε = ∞).
    def _check_train(self, train: pl.DataFrame) -> None:
        missing = [c for c in self.contract.modelled_columns if c not in train.columns]
        if missing:
            raise ValueError(
                f"train lacks the contract's modelled columns {missing}. Pass the table prepared for "
                f"this contract (columns {self.contract.modelled_columns})."
            )

    def _phases(self, run: Run) -> list[Phase]:
        q, steps = self._plan(run.n)
        # The mechanisms share (q, T) and σ, so their RDP composition equals one mechanism of
        # n·T steps (Opacus' compute_rdp is linear in steps): one phase, ``accounted`` = n.
        accounted = 1 + int(self.config.info_weight > 0) + int(self._uses_classifier())
        return [Phase("train", steps, q, epochs=self.config.epochs, step=self._train_step, accounted=accounted)]

    def _build_training(self, run: Run) -> None:
        cfg = self.config
        d = self.codec.dim
        q, sigma = run.sample_rate, run.sigma
        self._build()
        assert self.generator is not None
        self.generator.to(run.device)
        disc = Discriminator(d, cfg.discriminator_channels, cfg.feature_dim, cfg.norm_groups)
        init_uniform_(self.generator, run.gens.init)
        init_uniform_(disc, run.gens.init)
        self._opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.generator_lr, betas=cfg.betas)
        self._trainer_d = run.private(
            disc, mechanism="dp-sgd-discriminator", lr=cfg.discriminator_lr, what="discriminator"
        )
        self._moments = _MovingMoments(cfg.feature_ema, run.device)
        self._info_entry: Charge | None = None
        if cfg.info_weight > 0:
            self._info_entry = (
                run.ledger.charge(
                    "gaussian-feature-moments",
                    noise_multiplier=sigma,
                    sample_rate=q,
                    steps=0,
                    description=(
                        f"Gaussian mechanism on the sum of real rows' discriminator features [f, f²] "
                        f"(dim {2 * cfg.feature_dim}), each clipped to L2 norm {cfg.feature_clip}: "
                        f"Poisson rate {q:.4g}, noise multiplier {sigma:.3f}"
                    ),
                )
                if run.dp
                else run.ledger.record_non_dp(
                    "gaussian-feature-moments-non-dp",
                    sample_rate=q,
                    steps=0,
                    description="exact batch moments of the real rows' discriminator features, no "
                    "clipping, no noise: NOT differentially private",
                )
            )
        self._trainer_c: PrivateTrainer | None = None
        clf: Classifier | None = None
        if self._uses_classifier():
            lb = self.label_block
            assert lb is not None
            clf = Classifier(d, cfg.discriminator_channels, cfg.feature_dim, cfg.norm_groups, lb.width)
            init_uniform_(clf, run.gens.init)
            self._trainer_c = run.private(clf, mechanism="dp-sgd-classifier", lr=cfg.classifier_lr, what="classifier")
        self.discriminator, self.classifier = disc, clf
        self._targets = marginal_targets(self.codec, run.device)  # the codec's DP frequencies (post-processing)
        self._expected = max(1, run.expected_batch)
        run.keep(generator=self.generator, opt_g=self._opt_g, moments=self._moments)

    def _train_step(self, run: Run, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        gen, disc, clf = self.generator, self.discriminator, self.classifier
        trainer_d, trainer_c = self._trainer_d, self._trainer_c
        assert gen is not None and disc is not None
        bg = max(2, self._expected)
        g_dev = run.gens.device
        disc.train()
        # ---- D: one DP-SGD step on a Poisson batch, real_i and fake_i as one sample ----------
        real = run.real_batch()
        b = real.shape[0]
        with torch.no_grad():
            fake = self._fake_partners(
                b, bg, lambda m: self._activate(self._generate(m, run.gens.per_sample), run.gens.per_sample), keep=gen
            )
        loss_d = pair_loss(trainer_d.module(torch.stack([real, fake], dim=1))) if fake is not None else None
        trainer_d.step(loss_d, b)

        # ---- real feature moments: a Gaussian mechanism on its own Poisson batch --------------
        if self._info_entry is not None:
            rows_f = run.real_batch()
            # f is computed by the (DP) discriminator on REAL rows: these features are private
            # values, whatever network computes them. What makes their moments DP is the
            # mechanism below (per-row clipping to C_f + Gaussian noise σ·C_f, charged as its
            # own subsampled Gaussian phase); the discriminator's own DP guarantee does not
            # cover them. Evaluated without gradients and with Opacus' hooks off (no DP-SGD step).
            with torch.no_grad(), trainer_d.hooks_off():
                feats = disc.features(rows_f)
                released: torch.Tensor | None
                if run.dp:
                    released = release_feature_moments(
                        feats,
                        clip=cfg.feature_clip,
                        noise_multiplier=run.sigma,
                        expected_batch_size=self._expected,
                        generator=run.gens.noise,
                    )
                else:  # non-DP: exact batch moments (empty batches carry nothing)
                    released = torch.cat([feats, feats.square()], 1).mean(0) if len(feats) else None
            if released is not None:
                self._moments.update(released)
            run.ledger.add_steps(self._info_entry, 1)

        # ---- C: one DP-SGD step on real rows (label block zeroed) ----------------------------
        if trainer_c is not None:
            lb = self.label_block
            assert lb is not None
            rows = run.real_batch()
            bc = rows.shape[0]
            loss_c = None
            if bc > 0:
                labels = rows[:, lb.start : lb.start + lb.width].argmax(1)
                loss_c = F.cross_entropy(trainer_c.module(self.without_label(rows)), labels, reduction="sum")
            trainer_c.step(loss_c, bc)

        # ---- G: post-processing of the DP networks and the released moments ------------------
        gen.train()
        with ExitStack() as stack:
            stack.enter_context(trainer_d.hooks_off())
            if trainer_c is not None:
                stack.enter_context(trainer_c.hooks_off())
            logits = self._generate(bg, g_dev)
            fake = self._activate(logits, g_dev)
            feats_fake = disc.features(fake)
            score = disc.score(feats_fake).squeeze(-1)
            loss_g = F.softplus(-score).mean()
            if self._info_entry is not None and self._moments.avg is not None:
                mean_r, sd_r = self._moments.mean_std()
                mean_f = feats_fake.mean(0)
                sd_f = (feats_fake.var(0, unbiased=False) + 1e-8).sqrt()
                l_mean = F.relu((mean_r - mean_f).norm() - cfg.delta_mean)
                l_sd = F.relu((sd_r - sd_f).norm() - cfg.delta_sd)
                loss_g = loss_g + cfg.info_weight * (l_mean + l_sd)
            if clf is not None:
                lb = self.label_block
                assert lb is not None
                own = fake[:, lb.start : lb.start + lb.width]
                pred = F.log_softmax(clf(self.without_label(fake)), dim=1)
                loss_g = loss_g + cfg.class_weight * -(own * pred).sum(1).mean()
            if cfg.marginal_weight:
                loss_g = loss_g + cfg.marginal_weight * marginal_loss(self.codec, logits, self._targets)
            self._update(self._opt_g, loss_g, list(gen.parameters()))
        return loss_g, score

    def _summary(self, run: Run) -> dict[str, Any]:
        cfg = self.config
        use_info, use_class = self._info_entry is not None, self._trainer_c is not None
        return {
            "feature_clip": cfg.feature_clip if (run.dp and use_info) else None,
            "phases": ["dp-sgd-discriminator"]
            + (["gaussian-feature-moments"] if use_info else [])
            + (["dp-sgd-classifier"] if use_class else []),
            "classifier": use_class,
            "side": self.side,
        }

    # ------------------------------------------------------------------ sampling / persistence
    def _sample_block(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        # BatchNorm in eval mode uses running statistics, so any n (even 1) works.
        return self._activate(self._generate(n, g), g, hard=True)

    def _networks(self) -> dict[str, nn.Module]:
        if self.generator is None:
            raise RuntimeError("the model has no generator yet: fit() or load() it first.")
        return {"generator": self.generator}

    def _build(self) -> None:
        cfg = self.config
        self.generator = Generator(cfg.z_dim, self.codec.dim, cfg.generator_channels)


def _label_block(codec: Codec, target: str | None) -> Block | None:
    """The codec's one-hot block of a categorical/boolean target, or None (no classifier)."""
    if target is None:
        return None
    for b in codec.blocks:
        if b.column == target and b.role == "value":
            return b if b.kind == "softmax" else None
    return None
