"""DP-medGAN: an autoencoder pre-trained under DP-SGD, then a GAN in its latent space.

The model (Choi et al. 2017, "Generating Multi-label Discrete Patient Records using Generative
Adversarial Networks"):
- phase 1: an autoencoder (encoder MLP -> latent of ``latent_dim`` = 128, tanh -> decoder MLP ->
  codec-space logits) is pre-trained on the encoded real rows. The loss of one row is the
  cross-entropy of every softmax block plus the squared error of every tanh slot
  (medGAN: binary cross-entropy of each code; here the codec's mixed blocks);
- phase 2: a generator maps noise z to a latent code (MLP with residual shortcuts and
  BatchNorm, tanh output like the encoder's), the decoder turns it into a row, and a
  discriminator MLP tells real rows from decoded fake ones. The decoder is fine-tuned by the
  generator's loss, as in medGAN. Minibatch averaging (medGAN's guard against mode collapse):
  the discriminator sees each row concatenated with a batch mean;
- sampling: z -> generator -> decoder -> one exact draw per softmax block, tanh per numeric.

What differs from the paper under DP, and why (DESIGN.md, "Differential privacy, end to end"):
- both networks that read real rows train under DP-SGD through ``PrivateTrainer`` on Poisson
  batches: the autoencoder (``dp-sgd-autoencoder``, whole-row reconstruction loss clipped per
  row) and the discriminator (``dp-sgd-discriminator``). The two phases share ONE noise
  multiplier, calibrated with ``calibrate_noise(phases=[(q, T_ae), (q, T_d)])`` before either
  runs, so codec + both phases compose to the target ε;
- the decoder's weights after phase 1 are DP; fine-tuning them in phase 2 only ever feeds them
  generated (fake) data, so the fine-tuned decoder is post-processing and may be released;
- minibatch averaging over REAL rows would make row i's gradient depend on the other private
  rows of the batch (per-sample clipping would no longer bound one person's influence). The
  real side therefore gets a PUBLIC stand-in for the batch mean: the expected encoded row under
  the codec's DP statistics (``_public_mean``). Fake rows get their own fake batch's mean. The
  discriminator can then only tell the halves apart by the mean when the fake batch mean
  drifts from the DP marginals, so the averaging works as a marginal-matching signal;
- fake partners are generated in chunks of the (public) expected batch size, each chunk with
  its own mean, so no per-sample gradient depends on the Poisson batch size either;
- real and fake halves of a discriminator step are clipped together (``pair_loss``, the
  logistic loss medGAN uses); one discriminator step per generator step (medGAN takes two:
  every discriminator step costs privacy, generator steps are free, ``generator_steps``);
- no BatchNorm, no dropout in the autoencoder or the discriminator; the generator (which
  never reads a real row) keeps medGAN's BatchNorm;
- beyond medGAN, the generator is also pulled towards the codec's DP marginals
  (``marginal_weight``; post-processing, as in ctgan), so DP-SGD's noisy discriminator mostly
  has to teach the dependencies between columns;
- no early stopping or model selection on real data; the reconstruction loss on real rows is
  not reported (it would be an un-noised statistic of private rows);
- sizes are chosen for DP-SGD on a CPU: DP-SGD's per-sample gradients cost time and memory in
  proportion to the parameter count, so the autoencoder is medGAN's one layer each way and the
  discriminator (128, 128) rather than (256, 128); per-sample gradients come from ``torch.func``
  (measured faster than Opacus' hooks for these networks; ``PrivateTrainer`` clips and noises
  them the same way).

``fit(..., epsilon=math.inf)`` is the non-DP mode: exact codec histograms and plain Adam with the
same architecture, Poisson batches and step counts, recorded as non-DP (ε = ∞).

corGAN (models/synthesizers/corgan.py) reuses this training loop with convolutional networks:
subclasses override ``_make_encoder``, ``_make_decoder``, ``_make_generator`` and
``_make_discriminator`` (and ``discriminator_per_sample`` when Opacus' hooks cannot handle them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from synthgate.models.dp import PrivateTrainer, init_uniform_, pair_loss
from synthgate.models.nets import dense_layers
from synthgate.models.synthesizers.base import (
    ModelInfo,
    Phase,
    Run,
    SynthConfig,
    Synthesizer,
    activate,
    buffers_kept,
    marginal_loss,
    marginal_targets,
)
from synthgate.validation.contract import Contract

__all__ = [
    "Autoencoder",
    "MedGAN",
    "MedGANConfig",
    "MLPDecoder",
    "MLPDiscriminator",
    "MLPEncoder",
    "ResidualGenerator",
    "reconstruction_loss",
]

# Opacus' full backward hooks on a module whose input needs no gradient warn on every step; benign.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


class MedGANConfig(SynthConfig):
    """medGAN's options. Inherited: epochs (of the GAN phase), batch_size, max_grad_norm, codec_noise_multiplier."""

    epochs: float = Field(6.0, gt=0, description="GAN passes over the data (1/q discriminator steps each).")
    autoencoder_epochs: float = Field(3.0, gt=0, description="Autoencoder pre-training passes (1/q steps each).")
    latent_dim: int = Field(128, ge=1, description="Size of the autoencoder's latent code (medGAN: 128).")
    # medGAN's autoencoder is one layer each way (input -> 128 -> input); hidden layers are optional.
    # DP-SGD's per-sample gradients cost memory and time in proportion to the parameter count.
    encoder_dims: tuple[int, ...] = ()
    decoder_dims: tuple[int, ...] = ()
    z_dim: int = Field(128, ge=1, description="Size of the generator's noise (medGAN: 128).")
    generator_dims: tuple[int, ...] = (128, 128)
    discriminator_dims: tuple[int, ...] = (128, 128)  # medGAN: (256, 128); smaller is cheaper under DP-SGD
    autoencoder_lr: float = Field(1e-3, gt=0)
    generator_lr: float = Field(1e-3, gt=0, description="Adam rate of the generator and of the decoder's fine-tuning.")
    discriminator_lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    generator_steps: int = Field(1, ge=1, description="Generator updates per discriminator step (no privacy cost).")
    gumbel_tau: float = Field(0.2, gt=0, description="Gumbel-softmax temperature of the decoded fake rows.")
    marginal_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the generator's pull towards the codec's DP marginals (0 = medGAN's loss alone).",
    )


# ---------------------------------------------------------------------------- networks (medGAN)
def _mlp(in_dim: int, dims: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers, d = dense_layers(in_dim, dims, lambda: nn.LeakyReLU(0.2))
    return nn.Sequential(*layers, nn.Linear(d, out_dim))


class MLPEncoder(nn.Module):
    """Codec row -> latent code in (-1, 1) (medGAN's encoder ends in tanh). Reads real rows: no BatchNorm."""

    def __init__(self, in_dim: int, dims: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.net = _mlp(in_dim, dims, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x))


class MLPDecoder(nn.Module):
    """Latent code -> codec-space logits (activated per block by ``activate``). No BatchNorm."""

    def __init__(self, latent_dim: int, dims: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        self.net = _mlp(latent_dim, dims, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class Autoencoder(nn.Module):
    """The phase-1 network: one module, so one ``PrivateTrainer`` clips encoder and decoder together."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class _ResidualBlock(nn.Module):
    """h -> relu(BN(W h)) + h (medGAN's shortcut); BatchNorm is fine: the generator sees no real row."""

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)
        self.shortcut = i == o

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.fc(h)))
        return out + h if self.shortcut else out


class ResidualGenerator(nn.Module):
    """medGAN's generator: z -> residual BatchNorm MLP -> latent code (tanh, like the encoder's output)."""

    def __init__(self, z_dim: int, dims: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        d = z_dim
        for h in dims:
            blocks.append(_ResidualBlock(d, h))
            d = h
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(d, latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.body(z)))


class MLPDiscriminator(nn.Module):
    """MLP over [row, batch mean] (width 2·dim): no BatchNorm, no dropout. Any leading shape."""

    def __init__(self, in_dim: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.net = _mlp(in_dim, dims, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def reconstruction_loss(codec: Any, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-row loss (shape (n,)): cross-entropy per softmax block + squared error per tanh slot."""
    total = logits.new_zeros(logits.shape[0])
    for b in codec.blocks:
        sl = slice(b.start, b.start + b.width)
        if b.kind == "tanh":
            total = total + ((torch.tanh(logits[:, sl]) - x[:, sl]) ** 2).sum(1)
        else:
            # -Σ_k x_k log softmax_k: the block's cross-entropy (x is an exact one-hot)
            total = total - (x[:, sl] * F.log_softmax(logits[:, sl], dim=1)).sum(1)
    return total


# ---------------------------------------------------------------------------- the model
class MedGAN(Synthesizer):
    """fit(train, ledger, epsilon) under DP; sample(n) anywhere (post-processing)."""

    name = "medgan"
    config_class: ClassVar[type[SynthConfig]] = MedGANConfig
    conditional = False
    info = ModelInfo(
        family="autoencoder + latent GAN (medGAN, Choi et al. 2017)",
        paper="Choi, Biswal, Malin, Duke, Stewart, Sun: Generating Multi-label Discrete Patient "
        "Records using Generative Adversarial Networks, MLHC 2017",
        good_for="high-dimensional binary or count tables such as patient x diagnosis-code matrices",
        caveats="two DP-SGD phases (autoencoder, discriminator) split one budget; minibatch "
        "averaging uses a public DP-statistics stand-in on the real side; no conditional sampling",
    )
    config: MedGANConfig
    #: How each DP network's per-sample gradients are computed: "functorch" (vmap of grad) or
    #: "hooks" (Opacus). Both clip and noise the same way; on 2 CPU cores torch.func was measured
    #: faster for these networks (1000-row step: autoencoder 0.33 s vs 0.78 s, discriminator
    #: 0.55 s vs 0.88 s, on a loaded machine), and it also handles corGAN's conv critic.
    discriminator_per_sample: ClassVar[str] = "functorch"
    autoencoder_per_sample: ClassVar[str] = "functorch"

    def __init__(self, contract: Contract, config: MedGANConfig | None = None, *, device: str = "auto") -> None:
        super().__init__(contract, config, device=device)
        self.generator: nn.Module | None = None
        self.decoder: nn.Module | None = None
        self.accountants: dict[str, Any] = {}

    # ------------------------------------------------------------------ networks (overridden by corGAN)
    def _make_encoder(self) -> nn.Module:
        cfg = self.config
        return MLPEncoder(self.codec.dim, cfg.encoder_dims, cfg.latent_dim)

    def _make_decoder(self) -> nn.Module:
        cfg = self.config
        return MLPDecoder(cfg.latent_dim, cfg.decoder_dims, self.codec.dim)

    def _make_generator(self) -> nn.Module:
        cfg = self.config
        return ResidualGenerator(cfg.z_dim, cfg.generator_dims, cfg.latent_dim)

    def _make_discriminator(self) -> nn.Module:
        """Scores rows of width 2·codec.dim ([row, batch mean]); any leading shape -> that shape."""
        return MLPDiscriminator(2 * self.codec.dim, self.config.discriminator_dims)

    # ------------------------------------------------------------------ helpers
    def _public_mean(self) -> torch.Tensor:
        """The expected encoded row under the codec's DP statistics: the real side's batch-mean stand-in.

        Post-processing of the charged histograms only (no row is read):
        - a softmax value block's expectation is its one-hot's mean = the DP category
          frequencies ``codec.frequencies``; a null block's is (1 − r, r), r = ``codec.null_rate``;
        - a tanh slot holds 2u − 1 with u = F̂(v) the value's position under the codec's DP CDF
          F̂ (integers are dequantised with uniform jitter first, so v is continuous). Under the
          distribution the DP histogram describes, F̂(v) is exactly Uniform(0, 1) (probability
          integral transform; F̂ is piecewise linear within bins, matching the uniform spread of
          mass inside a bin), so E[2u − 1] = 2·½ − 1 = 0. A null value is encoded as 0 too, so
          the expectation is 0 whatever the null rate.
        """
        m = torch.zeros(self.codec.dim, dtype=torch.float32)
        for b in self.codec.blocks:
            if b.kind == "tanh":
                continue  # 0: see the docstring
            if b.role == "value":
                t = torch.as_tensor(self.codec.frequencies[b.column], dtype=torch.float32)
            else:
                r = float(self.codec.null_rate.get(b.column, 0.0))
                t = torch.tensor([1.0 - r, r])
            m[b.start : b.start + b.width] = t
        return m.to(self.device)

    def _pairs(self, real: torch.Tensor, fake: torch.Tensor, fake_mean: torch.Tensor) -> torch.Tensor:
        """Discriminator input of a DP step, shape (b, 2, 2·dim): [real_i ⊕ m_pub, fake_i ⊕ fake mean].

        Row i's pair depends on real row i, its fake partner and public quantities only: never
        on another real row (the per-sample DP invariant tests check).
        """
        b = real.shape[0]
        pub = self._public_mean_t.expand(b, -1)
        return torch.stack([torch.cat([real, pub], 1), torch.cat([fake, fake_mean], 1)], dim=1)

    def _activate(self, logits: torch.Tensor, g: torch.Generator | None, *, hard: bool = False) -> torch.Tensor:
        return activate(self.codec, logits, g, tau=self.config.gumbel_tau, hard=hard)

    def _generate(self, n: int, g: torch.Generator, *, hard: bool = False) -> torch.Tensor:
        assert self.generator is not None and self.decoder is not None
        z = torch.randn(n, self.config.z_dim, generator=g, device=self.device)
        return self._activate(self.decoder(self.generator(z)), g, hard=hard)

    def _fake_partners(self, b: int, chunk: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """b fake rows and, per row, the mean of ITS chunk of ``chunk`` fakes.

        Chunks have the fixed (public) expected batch size, so a fake partner and its mean have a
        distribution that does not depend on the Poisson batch size b (nor does BatchNorm's
        batch statistic inside the generator).
        """
        rows, means = [], []
        # ``g`` is the private per-sample stream (partners are paired with real rows), which the
        # generator's own steps never use, and BatchNorm's running statistics
        # come back afterwards: the private b must leave no mark on the released networks.
        with torch.no_grad(), buffers_kept(self.generator, self.decoder):  # partners carry no gradient
            for _ in range(math.ceil(b / chunk)):
                x = self._generate(chunk, g)
                rows.append(x)
                means.append(x.mean(0, keepdim=True).expand(chunk, -1))
        return torch.cat(rows)[:b], torch.cat(means)[:b]

    @staticmethod
    def _private_step(
        trainer: PrivateTrainer,
        batch_loss: Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor],
        samples: torch.Tensor,
    ) -> None:
        """One accounted DP (or non-DP) step; ``batch_loss(net, samples)`` = Σ_i ℓ_i over the batch.

        Hooks path: through ``trainer.module``. functorch path: ℓ_i of each sample alone via
        ``torch.func`` (for networks whose forward reshapes the batch, e.g. conv critics over pairs).
        """
        b = samples.shape[0]
        if trainer.per_sample == "functorch":

            def one(params: dict, buffers: dict, sample: torch.Tensor) -> torch.Tensor:
                net = lambda x: torch.func.functional_call(trainer.raw, (params, buffers), (x,))  # noqa: E731
                return batch_loss(net, sample.unsqueeze(0))

            trainer.step_per_sample(one, samples)
        else:
            trainer.step(batch_loss(trainer.module, samples) if b > 0 else None, b)

    # ------------------------------------------------------------------ training (hooks of Synthesizer.fit)
    # Ledger entries, in order: ``codec-histograms``, ``dp-sgd-autoencoder`` (phase 1),
    # ``dp-sgd-discriminator`` (phase 2); both DP-SGD phases use one noise multiplier, calibrated
    # before phase 1 so that all three compose to ε. ``epsilon=math.inf`` trains WITHOUT differential
    # privacy (exact histograms, plain Adam, same batches and steps), recorded as non-DP entries.
    # Progress: during pre-training both losses are NaN (the reconstruction loss of real rows is not
    # released); in the GAN phase they are the generator's loss and the discriminator's mean score of
    # fakes (fake data only).
    def _check_train(self, train: pl.DataFrame) -> None:
        self._require_modelled_columns(train)

    def _phases(self, run: Run) -> list[Phase]:
        cfg = self.config
        q = min(1.0, cfg.batch_size / run.n_hat)
        return [
            Phase(
                "autoencoder",
                max(1, math.ceil(cfg.autoencoder_epochs / q)),
                q,
                epochs=cfg.autoencoder_epochs,
                step=self._autoencoder_step,
            ),
            Phase(
                "gan",
                max(1, math.ceil(cfg.epochs / q)),
                q,
                epochs=cfg.epochs,
                step=self._gan_step,
                start=self._start_gan,
            ),
        ]

    def _build_training(self, run: Run) -> None:
        cfg = self.config
        self._chunk = max(2, max(1, run.expected_batch))  # fake chunk size (public); >= 2 for BatchNorm
        self._public_mean_t = self._public_mean()
        # the generator's pull towards the codec's DP marginals (post-processing; see marginal_loss)
        self._targets = marginal_targets(self.codec, run.device)
        # ---- phase 1's network: the autoencoder reads real rows -> DP-SGD
        ae = Autoencoder(self._make_encoder(), self._make_decoder())
        init_uniform_(ae, run.gens.init)
        ae.to(run.device).train()
        self._ae = ae
        self._ae_trainer = run.private(
            ae,
            mechanism="dp-sgd-autoencoder",
            lr=cfg.autoencoder_lr,
            what="autoencoder (encoder and decoder)",
            per_sample=self.autoencoder_per_sample,
        )
        # ---- phase 2's: the generator and the discriminator (reads real rows -> DP-SGD). Initialised
        # now, after the autoencoder, from the init stream, which nothing else draws from.
        self.generator = self._make_generator()
        disc = self._make_discriminator()
        init_uniform_(self.generator, run.gens.init)
        init_uniform_(disc, run.gens.init)
        self.generator.to(run.device)
        self._d_trainer = run.private(
            disc,
            mechanism="dp-sgd-discriminator",
            lr=cfg.discriminator_lr,
            what="discriminator",
            per_sample=self.discriminator_per_sample,
        )
        self.accountants = {"autoencoder": self._ae_trainer.accountant, "discriminator": self._d_trainer.accountant}
        self._g_loss = math.nan
        run.keep(generator=self.generator)

    def _ae_loss(self, net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(self.codec, net(x), x).sum()

    @staticmethod
    def _d_loss(net: Callable[[torch.Tensor], torch.Tensor], pairs: torch.Tensor) -> torch.Tensor:
        return pair_loss(net(pairs))

    def _autoencoder_step(self, run: Run, i: int) -> tuple[float, float]:
        self._private_step(self._ae_trainer, self._ae_loss, run.real_batch())
        return math.nan, math.nan

    def _start_gan(self, run: Run) -> None:
        """The GAN phase takes over a fresh, hook-free copy of the DP decoder: from here on only fake
        data flows into it. medGAN fine-tunes it with the generator's loss (post-processing)."""
        assert self.generator is not None
        self.decoder = self._make_decoder().to(run.device)
        self.decoder.load_state_dict(self._ae.decoder.state_dict())
        self.generator.train()
        self.decoder.train()
        self._d_trainer.raw.train()
        self._post = list(self.generator.parameters()) + list(self.decoder.parameters())
        self._opt_g = torch.optim.Adam(self._post, lr=self.config.generator_lr, betas=self.config.betas)
        run.keep(decoder=self.decoder, opt_g=self._opt_g)

    def _gan_step(self, run: Run, i: int) -> tuple[float, float]:
        cfg = self.config
        dev, g_dev = run.device, run.gens.device
        assert self.generator is not None and self.decoder is not None
        d_trainer = self._d_trainer
        real = run.real_batch()
        with torch.no_grad():
            fake, fake_mean = self._fake_partners(real.shape[0], self._chunk, run.gens.per_sample)
        self._private_step(d_trainer, self._d_loss, self._pairs(real, fake, fake_mean))

        # generator (+ decoder): post-processing of the DP discriminator
        for _ in range(cfg.generator_steps):
            with d_trainer.hooks_off():
                z = torch.randn(self._chunk, cfg.z_dim, generator=g_dev, device=dev)
                logits = self.decoder(self.generator(z))
                fake = self._activate(logits, g_dev)
                score = d_trainer.raw(torch.cat([fake, fake.mean(0, keepdim=True).expand_as(fake)], 1))
                loss = F.softplus(-score).mean()
                if cfg.marginal_weight:
                    loss = loss + cfg.marginal_weight * marginal_loss(self.codec, logits, self._targets)
                self._update(self._opt_g, loss, self._post)
        self._g_loss = float(loss.detach())
        return self._g_loss, float(score.detach().mean())

    def _summary(self, run: Run) -> dict[str, Any]:
        return {"autoencoder_steps": run.phases[0].steps, "final_generator_loss": self._g_loss}

    # ------------------------------------------------------------------ sampling / persistence
    def _sample_block(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        return self._generate(n, g, hard=True)

    def _networks(self) -> dict[str, nn.Module]:
        if self.generator is None or self.decoder is None:
            raise RuntimeError("the model has no generator/decoder yet: fit() or load() it first.")
        return {"generator": self.generator, "decoder": self.decoder}

    def _build(self) -> None:
        self.generator = self._make_generator()
        self.decoder = self._make_decoder()
