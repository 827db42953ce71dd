"""TGAN under DP: an LSTM generator that writes a row column by column, a DP-SGD discriminator.

The model (Xu & Veeramachaneni 2018, "Synthesizing Tabular Data using Generative Adversarial
Networks"): the generator is an ``nn.LSTMCell`` unrolled over the codec's blocks, in the
contract's modelled-column order, one step per block (a numeric column is one step for its
value and, when nullable, one more for its 2-wide null block). At step t

    input_t  = [e_{t-1}, z, a_{t-1}]          e_{-1} is a learned <GO> vector
    h_t      = LSTMCell(input_t, state)
    f_t      = tanh(W_t h_t)                  a step-specific feature layer
    out_t    = tanh(U_t f_t)                  numeric value slot, or
               GumbelSoftmax(U_t f_t, tau)    a categorical / boolean / null block
    e_t      = E_t out_t                      a step-specific Linear embedding of the output
    a_t      = Σ_{k<=t} softmax(α_t)_k h_k    the paper's attention: learned weights over the
                                              hidden states so far (no content-based scoring)

and the concatenated outputs are a codec vector. The discriminator is an MLP on that vector.
Generator loss: the non-saturating adversarial loss through the discriminator plus, as in the
paper, for every one-hot block KL(target ‖ mean softmax of the generated batch).

What differs from the paper, and why:
- the discriminator trains under DP-SGD (Opacus hooks path, one ``PrivateTrainer``
  ``dp-sgd-critic``) with the penalty-free pair loss (models/dp.py): each Poisson-sampled
  real row is clipped together with its fake partner, drawn from the private per-sample stream;
- NO minibatch discrimination: TGAN's discriminator appends a statistic computed across the
  batch, i.e. across *real rows*, so one row's gradient would depend on the others and
  per-sample clipping would no longer bound a row's influence: a leak under per-sample DP.
  No BatchNorm and no dropout either (they also mix or randomise per batch);
- the KL target is not a real batch's category frequencies (that would read real rows outside
  the DP mechanism) but the codec's DP frequencies (``codec.frequencies``, ``codec.null_rate``),
  post-processing of the charged histogram step;
- numeric columns: TGAN encodes each continuous column with a Gaussian mixture (a value plus a
  mode one-hot, two LSTM steps); here the codec (built from the contract, CDF learned under DP)
  gives one quantile-normalised value in [-1, 1], so the generator emits one tanh value per
  numeric column and a null block step when the column is nullable;
- categorical outputs are Gumbel-softmax samples (the same tau as ctgan) rather than plain
  softmaxes; by default (``straight_through``) the discriminator and the next step see the
  sample's exact one-hot while gradients flow through the soft sample, so the adversarial
  gradient reaches the whole unrolled sequence and the discriminator cannot tell fakes by their
  softness (TGAN instead adds noise to the real one-hots);
- the generator is unconditional (``conditional = False``), as in the paper.

The generator never reads a real row: its updates are post-processing of the DP discriminator
(done with the discriminator's per-sample hooks off, backward into the generator only).

``fit(..., epsilon=math.inf)`` is the non-DP mode: exact codec histograms and a plain Adam
discriminator on the same Poisson batches, recorded as non-DP ledger entries (ε = ∞).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from synthgate.models.codec import Block
from synthgate.models.dp import init_uniform_, pair_loss
from synthgate.models.nets import MLPCritic as Discriminator
from synthgate.models.synthesizers.base import ModelInfo, Run, SynthConfig, Synthesizer, marginal_loss, marginal_targets
from synthgate.validation.contract import Contract

__all__ = ["Discriminator", "TGAN", "TGANConfig", "TGANGenerator", "categorical_kl"]

# Opacus' per-sample hooks on a discriminator whose input needs no gradient trigger this benign
# torch warning on every step (process-wide filter: catch_warnings is not thread-safe).
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


class TGANConfig(SynthConfig):
    """TGAN options; ``epochs``, ``batch_size``, ``max_grad_norm``, codec noise are inherited."""

    # Sizes: the LSTMCell's gate matmul over (embed + z + attention + hidden) inputs, once per
    # codec block and row, is most of the fit's cost; the paper uses hidden 100 as well.
    z_dim: int = Field(32, ge=1, description="Latent noise fed to every LSTM step.")
    hidden_dim: int = Field(100, ge=1, description="LSTMCell hidden size (the paper uses 100).")
    feature_dim: int = Field(64, ge=1, description="Width of each step's tanh feature layer f_t.")
    embed_dim: int = Field(32, ge=1, description="Width of the embedding of a step's output.")
    attention: bool = Field(True, description="The paper's learned attention over previous hidden states.")
    discriminator_dims: tuple[int, ...] = (128, 128)
    generator_lr: float = Field(1e-3, gt=0)
    discriminator_lr: float = Field(1e-3, gt=0)
    generator_weight_decay: float = Field(1e-5, ge=0, description="L2 on the generator (TGAN's l2norm).")
    betas: tuple[float, float] = (0.5, 0.9)
    kl_weight: float = Field(1.0, ge=0, description="Weight of the categorical KL terms (0 turns them off).")
    gumbel_tau: float = Field(0.2, gt=0)
    straight_through: bool = Field(
        True,
        description="Train on hard Gumbel one-hots with the soft sample's gradient, so the discriminator "
        "cannot tell fakes by their softness (TGAN smooths the real one-hots instead).",
    )


def categorical_kl(probs_mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ probs_mean) for one block: 0 iff the generated batch marginal equals the target.

    Categories with zero target mass contribute nothing (0 · log 0 = 0).
    """
    t = target.to(probs_mean.dtype)
    return (t * (torch.log(t.clamp_min(1e-8)) - torch.log(probs_mean.clamp_min(1e-8)))).sum()


class TGANGenerator(nn.Module):
    """LSTM generator: one LSTMCell step per codec block; outputs concatenate to a codec vector.

    ``blocks`` is the codec's block list (kind "tanh" width 1, or "softmax" width >= 2), in
    order; the module only keeps their kinds and widths, so it is built from the contract alone.
    """

    def __init__(
        self,
        blocks: list[Block],
        *,
        z_dim: int,
        hidden_dim: int,
        feature_dim: int,
        embed_dim: int,
        attention: bool,
        straight_through: bool = True,
    ) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("TGANGenerator needs at least one codec block (the contract models no column).")
        self.kinds = [b.kind for b in blocks]
        self.widths = [b.width for b in blocks]
        self.z_dim, self.hidden_dim, self.embed_dim = z_dim, hidden_dim, embed_dim
        self.use_attention = attention
        self.straight_through = straight_through
        n = len(blocks)
        self.go = nn.Parameter(torch.zeros(embed_dim))
        self.cell = nn.LSTMCell(embed_dim + z_dim + (hidden_dim if attention else 0), hidden_dim)
        self.features = nn.ModuleList(nn.Linear(hidden_dim, feature_dim) for _ in range(n))
        self.heads = nn.ModuleList(nn.Linear(feature_dim, w) for w in self.widths)
        self.embeds = nn.ModuleList(nn.Linear(w, embed_dim) for w in self.widths)
        # Row t holds the attention logits of step t over h_0..h_t (upper triangle unused).
        # Zeros = uniform attention at the start, as a softmax over equal free weights.
        self.att = nn.Parameter(torch.zeros(n, n))

    @property
    def dim(self) -> int:
        return sum(self.widths)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Seeded init of every weight (``init_uniform_`` plus the <GO> vector)."""
        init_uniform_(self, generator)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.embed_dim)
            self.go.uniform_(-bound, bound, generator=generator)
            self.att.zero_()

    def forward(
        self, z: torch.Tensor, g: torch.Generator | None, *, tau: float, hard: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw logits, activated outputs), both (n, dim) in codec layout.

        Activated: tanh on numeric slots; Gumbel-softmax(tau) per one-hot block, an exact
        one-hot (a draw from the block's softmax) when ``hard``. Gumbel noise comes from ``g``.
        """
        n = z.shape[0]
        h = z.new_zeros(n, self.hidden_dim)
        c = z.new_zeros(n, self.hidden_dim)
        prev = self.go.expand(n, -1)
        attn = z.new_zeros(n, self.hidden_dim)
        states: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        outs: list[torch.Tensor] = []
        for t, kind in enumerate(self.kinds):
            parts = [prev, z, attn] if self.use_attention else [prev, z]
            h, c = self.cell(torch.cat(parts, dim=1), (h, c))
            x = self.heads[t](torch.tanh(self.features[t](h)))
            if kind == "tanh":
                y = torch.tanh(x)
            else:
                u = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype).clamp_(1e-10, 1.0 - 1e-10)
                y = F.softmax((x - torch.log(-torch.log(u))) / tau, dim=1)
                if hard:
                    y = F.one_hot(y.argmax(1), x.shape[1]).to(x.dtype)
                elif self.straight_through:  # exact one-hot forward, soft sample's gradient backward
                    y = F.one_hot(y.argmax(1), x.shape[1]).to(x.dtype) - y.detach() + y
            logits.append(x)
            outs.append(y)
            prev = self.embeds[t](y)
            if self.use_attention:
                states.append(h)
                w = F.softmax(self.att[t, : t + 1], dim=0)
                attn = torch.einsum("k,knh->nh", w, torch.stack(states))
        return torch.cat(logits, dim=1), torch.cat(outs, dim=1)


class TGAN(Synthesizer):
    """fit(train, ledger, epsilon) under DP; sample(n) anywhere (post-processing).

    ``epsilon=math.inf`` is the non-DP mode (baselines, attack oracles): see ``fit``.
    """

    name = "tgan"
    config_class = TGANConfig
    conditional = False
    info = ModelInfo(
        family="sequential (LSTM) GAN (TGAN, Xu & Veeramachaneni 2018)",
        paper="Xu, Veeramachaneni: Synthesizing Tabular Data using Generative Adversarial "
        "Networks, arXiv:1811.11264, 2018",
        good_for="mixed-type tables of a few dozen columns, where generating each column from "
        "the ones before it (LSTM with attention) helps dependencies between neighbouring columns",
        caveats="no minibatch discrimination (a statistic over real rows leaks under per-sample "
        "DP), no BatchNorm/dropout in the DP-SGD discriminator, one quantile-normalised value per "
        "numeric instead of GMM modes, KL targets are the DP codec frequencies; unconditional, and "
        "the step-by-step LSTM makes it slower than an MLP generator on wide tables",
    )
    config: TGANConfig

    def __init__(self, contract: Contract, config: TGANConfig | None = None, *, device: str = "auto") -> None:
        super().__init__(contract, config, device=device)
        self.generator: TGANGenerator | None = None
        self.accountant = None

    # ------------------------------------------------------------------ helpers
    def _new_generator(self) -> TGANGenerator:
        cfg = self.config
        return TGANGenerator(
            self.codec.blocks,
            z_dim=cfg.z_dim,
            hidden_dim=cfg.hidden_dim,
            feature_dim=cfg.feature_dim,
            embed_dim=cfg.embed_dim,
            attention=cfg.attention,
            straight_through=cfg.straight_through,
        )

    def _generate(self, n: int, g: torch.Generator, *, hard: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if self.generator is None:
            raise RuntimeError("the model has no generator yet: fit() or load() it first.")
        z = torch.randn(n, self.config.z_dim, generator=g, device=self.device)
        return self.generator(z, g, tau=self.config.gumbel_tau, hard=hard)

    def _kl_targets(self) -> dict[tuple[str, str], torch.Tensor]:
        """Per one-hot block, its DP target marginal (post-processing of the codec step)."""
        return marginal_targets(self.codec, self.device)

    def _kl_loss(self, logits: torch.Tensor, targets: dict[tuple[str, str], torch.Tensor]) -> torch.Tensor:
        """Σ over one-hot blocks of KL(target ‖ mean softmax of the generated batch) (the paper's term)."""
        return marginal_loss(self.codec, logits, targets, numeric=False)

    # ------------------------------------------------------------------ training (hooks of Synthesizer.fit)
    # Charged: the codec's histogram step, then one DP-SGD run on the discriminator (``dp-sgd-critic``)
    # whose σ is calibrated before training so that both compose to ε; the LSTM generator is
    # post-processing. ``epsilon=math.inf`` trains WITHOUT differential privacy: exact codec histograms
    # and a plain Adam discriminator on the same Poisson batches (same architecture, losses, rate and
    # steps), recorded as non-DP ledger entries so ``ledger.epsilon`` is ``math.inf``.
    def _check_train(self, train: pl.DataFrame) -> None:
        missing = [c for c in self.contract.modelled_columns if c not in train.columns]
        if missing:
            raise ValueError(
                f"train lacks the contract's modelled columns {missing}. Pass "
                "train.select(contract.modelled_columns) of a table that passed the contract's checks."
            )

    def _build_training(self, run: Run) -> None:
        cfg = self.config
        self.generator = self._new_generator()
        self.generator.reset_parameters(run.gens.init)
        self.generator.to(run.device)
        disc = Discriminator(self.codec.dim, cfg.discriminator_dims)
        init_uniform_(disc, run.gens.init)
        self._opt_g = torch.optim.Adam(
            self.generator.parameters(), lr=cfg.generator_lr, betas=cfg.betas, weight_decay=cfg.generator_weight_decay
        )
        self._trainer = run.private(disc, mechanism="dp-sgd-critic", lr=cfg.discriminator_lr, what="discriminator")
        self.accountant = self._trainer.accountant
        self._disc = disc
        self._targets = self._kl_targets()
        # The generator's batch is fixed (from the DP row estimate), never the realised Poisson
        # batch size, so nothing the generator does depends on it.
        self._bg = max(2, run.expected_batch)
        run.keep(generator=self.generator, opt_g=self._opt_g)

    def _train_step(self, run: Run, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        gen, trainer = self.generator, self._trainer
        assert gen is not None
        # ---- the generator's batch (public stream): its loss after the discriminator step
        gen.train()
        logits, fake = self._generate(self._bg, run.gens.device)

        # ---- discriminator: one step over a Poisson batch (DP-SGD unless non-DP) ------
        real = run.real_batch()
        b = real.shape[0]
        # Fake partners are paired with real rows: fresh draws from the private per-sample
        # stream, never the generator's own batch (whose draws are public and whose rows the
        # generator's update reveals: a row's partner must be unknown to the adversary).
        partners = self._fake_partners(b, self._bg, lambda m: self._generate(m, run.gens.per_sample)[1], keep=gen)
        loss_d = pair_loss(trainer.module(torch.stack([real, partners], dim=1))) if partners is not None else None
        trainer.step(loss_d, b)

        # ---- generator: post-processing of the (DP) discriminator ---------------------
        with trainer.hooks_off():
            score = self._disc(fake)
            loss_g = F.softplus(-score).mean()
            if cfg.kl_weight:
                loss_g = loss_g + cfg.kl_weight * self._kl_loss(logits, self._targets)
            self._update(self._opt_g, loss_g, list(gen.parameters()))
        return loss_g, score

    def _summary(self, run: Run) -> dict[str, Any]:
        return {
            "generator_steps": len(self.codec.blocks),
            "attention": self.config.attention,
            "minibatch_discrimination": False,
        }

    # ------------------------------------------------------------------ sampling / persistence
    def _sample_block(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        return self._generate(n, g, hard=True)[1]

    def _networks(self) -> dict[str, nn.Module]:
        if self.generator is None:
            raise RuntimeError("the model has no generator yet: fit() or load() it first.")
        return {"generator": self.generator}

    def _build(self) -> None:
        self.generator = self._new_generator()
