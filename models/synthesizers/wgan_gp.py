"""WGAN-GP and its class-conditional variant: the plain MLP baselines, with a DP-SGD critic.

``WGANGP`` is the baseline of the ydata-synthetic tutorials (Gulrajani et al. 2017 on tabular
rows): an MLP generator whose output goes through the codec's activation (tanh per numeric slot,
Gumbel-softmax per one-hot block), an MLP critic, the Wasserstein loss with a gradient penalty
λ·(‖∇_x D(x̂)‖ − 1)² on random interpolates x̂ of real and fake rows, ``n_critic`` critic steps
per generator step, Adam with betas (0.5, 0.9).

``CWGANGP`` is the conditional variant (class-conditional generation, e.g. only the minority
class): the generator reads [z, one-hot class], the critic reads [row, one-hot class]. A real
row's class is its own value, so the class is part of the sample whose gradient is clipped; a
fake's class is drawn from the DP class frequencies of the codec's charged histogram step. The
class block of every generated row is overwritten with its condition, so
``sample(n, conditions={column: value})`` returns only that class, without rejection.

What differs under DP, and why (DESIGN.md, "Differential privacy, end to end"):
- the gradient penalty needs a double backward, which Opacus' per-sample hooks cannot do, so
  per-sample gradients come from ``torch.func`` (``PrivateTrainer(per_sample="functorch")``:
  ``vmap(grad(loss))`` with a nested ``grad`` for the penalty) and Opacus' DPOptimizer clips and
  noises them. Each sample is one real row, its fake partner and its interpolation coefficient:
  ℓ_i = D(fake_i) − D(real_i) + λ (‖∇_x D(x̂_i)‖ − 1)², so the real half, the fake half and the
  penalty of a step are clipped and charged together, once per real row;
- every critic step is one accounted DP-SGD step on a Poisson batch (``epochs / q`` critic
  steps; ``critic steps / n_critic`` generator steps);
- the default penalty weight is λ = 1, not the paper's 10: each sample's gradient (Wasserstein
  terms + penalty) is clipped to C as a whole, and a λ = 10 penalty's gradient dominates it and
  drowns the Wasserstein signal (measured on Adult, see ``WGANGPConfig``);
- no BatchNorm, dropout or minibatch statistics in the critic (the tutorial's critic dropout is
  dropped: it would need per-sample randomness inside the vmapped loss for nothing);
- the interpolation coefficients come from the seeded device generator and enter ``loss_fn`` as
  a per-sample tensor (no randomness inside the vmapped function);
- the generator never reads a real row: its updates are post-processing of the DP critic;
- no early stopping or model selection on real data.
``fit(..., epsilon=math.inf)`` is the non-DP baseline: exact codec histograms, the same
functorch loss averaged over the batch with plain Adam, recorded as non-DP (ε = ∞).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call

from synthgate.models.codec import Block
from synthgate.models.dp import init_uniform_
from synthgate.models.nets import MLPCritic, dense_layers
from synthgate.models.synthesizers.base import ModelInfo, Run, SynthConfig, Synthesizer, activate
from synthgate.validation.contract import Contract

__all__ = ["CWGANGP", "CWGANGPConfig", "WGANGP", "WGANGPConfig", "MLPCritic", "MLPGenerator", "gradient_penalty_loss"]


class WGANGPConfig(SynthConfig):
    """Options of :class:`WGANGP` (inherited: epochs, batch_size, max_grad_norm, codec noise)."""

    # Defaults measured on Adult at ε=3 (one seed each; pair trends / TSTR AUC): batch 1000, λ=10:
    # 0.52 / 0.48; batch 200, λ=10: 0.51 / 0.65; batch 200, λ=1: 0.68 / 0.68; batch 100, λ=1:
    # 0.64 / 0.61. Small batches give the plain WGAN more generator steps per epoch (and functorch's
    # per-sample cost grows faster than linearly with the batch); with per-sample clipping to C a
    # λ=10 penalty's gradient dominates each clipped sample and drowns the Wasserstein signal.
    batch_size: int = Field(200, ge=2, description="Expected Poisson batch size of the critic.")
    z_dim: int = Field(64, ge=1)
    generator_dims: tuple[int, ...] = (256, 256)
    critic_dims: tuple[int, ...] = (128, 128)
    generator_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = Field(
        1.0, ge=0, description="λ of the gradient penalty (the paper's 10 is worse under clipping)."
    )
    n_critic: int = Field(1, ge=1, description="Critic (DP-SGD) steps per generator step.")
    gumbel_tau: float = Field(0.2, gt=0, description="Gumbel-softmax temperature of one-hot blocks.")


class CWGANGPConfig(WGANGPConfig):
    """Options of :class:`CWGANGP`: those of WGAN-GP plus the column to condition on."""

    condition_column: str | None = Field(
        None, description="Categorical or boolean column to condition on (None: the contract's target)."
    )


class MLPGenerator(nn.Module):
    """Dense ReLU layers, then one linear output of the codec's width (activated by the codec)."""

    def __init__(self, in_dim: int, dims: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers, d = dense_layers(in_dim, dims, nn.ReLU)
        self.net = nn.Sequential(*layers, nn.Linear(d, out_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def gradient_penalty_loss(
    critic: nn.Module, gp_weight: float
) -> Callable[
    [dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]:
    """The per-sample WGAN-GP critic loss for ``PrivateTrainer.step_per_sample``.

    ``loss_fn(params, buffers, real_i, fake_i, alpha_i)`` = D(fake_i) − D(real_i) +
    λ (‖∇_x D(x̂_i)‖ − 1)² with x̂_i = alpha_i·real_i + (1 − alpha_i)·fake_i, for ONE sample
    (real_i, fake_i of shape (d,), alpha_i of shape (1,)). The critic is evaluated with
    ``functional_call`` so that ``vmap(grad(loss_fn))`` differentiates with respect to
    ``params``; the penalty's inner gradient is a nested ``torch.func.grad``.
    """

    def score(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(critic, (params, buffers), (x.unsqueeze(0),)).sum()

    def loss_fn(
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        real: torch.Tensor,
        fake: torch.Tensor,
        alpha: torch.Tensor,
    ) -> torch.Tensor:
        loss = score(params, buffers, fake) - score(params, buffers, real)
        if gp_weight == 0:
            return loss
        x_hat = alpha * real + (1.0 - alpha) * fake
        grad_x = torch.func.grad(lambda x: score(params, buffers, x))(x_hat)
        # + tiny constant: the norm's derivative is undefined at a zero gradient
        norm = torch.sqrt((grad_x**2).sum() + 1e-12)
        return loss + gp_weight * (norm - 1.0) ** 2

    return loss_fn


class WGANGP(Synthesizer):
    """Plain MLP WGAN-GP with a DP-SGD critic (functorch per-sample gradients); see the module docstring."""

    name = "wgan-gp"
    config_class = WGANGPConfig
    conditional = False
    info = ModelInfo(
        family="Wasserstein GAN with gradient penalty (plain MLP baseline)",
        paper="Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville: Improved Training of Wasserstein "
        "GANs, NeurIPS 2017 (as in the ydata-synthetic tabular tutorial)",
        good_for="a simple, well-understood baseline to compare richer models against",
        caveats="a weak baseline: no mode-specific normalisation, conditional vector or marginal "
        "loss, and a plain WGAN learns slowly in the few steps a DP budget allows (Adult, ε=3: "
        "pair trends ≈0.68, TSTR AUC ≈0.68 vs ctgan's 0.93 / 0.86); the penalty's double backward "
        "needs functorch per-sample gradients, about 2x slower per DP step than the hook path",
    )
    config: WGANGPConfig

    def __init__(self, contract: Contract, config: WGANGPConfig | None = None, *, device: str = "auto") -> None:
        super().__init__(contract, config, device=device)
        self.generator: MLPGenerator | None = None
        # Kept after fit for inspection only (DP weights); not saved: sampling does not need it.
        self.critic: MLPCritic | None = None
        self.accountant = None

    # ------------------------------------------------------------------ conditioning hooks
    # WGAN-GP has no condition; CWGANGP overrides these four.
    @property
    def cond_dim(self) -> int:
        return 0

    def _draw_cond(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        """Condition one-hots (n, cond_dim) for generated rows."""
        return torch.zeros(n, 0, device=self.device)

    def _with_cond(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Generated codec rows with their condition imposed (identity without a condition)."""
        return x

    def _critic_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the critic reads for codec rows ``x`` (the row itself without a condition)."""
        return x

    # ------------------------------------------------------------------ helpers
    def _generate(
        self, n: int, g: torch.Generator, conditions: dict[str, Any] | None = None, *, hard: bool = False
    ) -> torch.Tensor:
        assert self.generator is not None
        z = torch.randn(n, self.config.z_dim, generator=g, device=self.device)
        cond = self._draw_cond(n, g, conditions)
        x = activate(self.codec, self.generator(torch.cat([z, cond], dim=1)), g, tau=self.config.gumbel_tau, hard=hard)
        return self._with_cond(x, cond)

    def _new_generator(self) -> MLPGenerator:
        cfg = self.config
        return MLPGenerator(cfg.z_dim + self.cond_dim, cfg.generator_dims, self.codec.dim)

    # ------------------------------------------------------------------ training (hooks of Synthesizer.fit)
    # ``epsilon=math.inf`` is the non-DP baseline: exact codec histograms and plain Adam on the mean
    # of the same per-sample losses, on the same Poisson batches and step count (ε = ∞ entries).
    def _build_training(self, run: Run) -> None:
        cfg = self.config
        self.generator = self._new_generator().to(run.device)
        critic = MLPCritic(self.codec.dim + self.cond_dim, cfg.critic_dims)
        init_uniform_(self.generator, run.gens.init)
        init_uniform_(critic, run.gens.init)
        self._opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.generator_lr, betas=cfg.betas)
        # steps = critic steps, each one accounted DP-SGD step
        self._trainer = run.private(
            critic, mechanism="dp-sgd-critic", lr=cfg.critic_lr, what="critic", per_sample="functorch"
        )
        self.accountant = self._trainer.accountant
        self.critic = critic
        self._loss_fn = gradient_penalty_loss(critic, cfg.gp_weight)
        self._bg = max(1, run.expected_batch)  # generator batch: the expected Poisson batch size (public)
        run.keep(generator=self.generator, opt_g=self._opt_g)

    def _train_step(self, run: Run, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        assert self.generator is not None and self.critic is not None
        # ---- critic: one accounted step; sample i = (real_i, its fake partner, alpha_i) ----
        real = self._critic_input(run.real_batch())
        b = real.shape[0]
        # partners and α: paired with real rows, so from the private per-sample stream, which the
        # generator's steps never use
        with torch.no_grad():
            fake = self._critic_input(self._generate(b, run.gens.per_sample))
        alpha = torch.rand(b, 1, generator=run.gens.per_sample, device=run.device)
        self._trainer.step_per_sample(self._loss_fn, real, fake, alpha)

        # ---- generator: post-processing of the DP critic, every n_critic-th step -----------
        if i % self.config.n_critic:
            return None
        score = self.critic(self._critic_input(self._generate(self._bg, run.gens.device)))
        loss_g = -score.mean()
        self._update(self._opt_g, loss_g, list(self.generator.parameters()))
        return loss_g, score

    def _summary(self, run: Run) -> dict[str, Any]:
        return {"generator_steps": run.phases[-1].steps // self.config.n_critic, "n_critic": self.config.n_critic}

    # ------------------------------------------------------------------ sampling / persistence
    def _sample_block(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        return self._generate(n, g, conditions, hard=True)

    def _networks(self) -> dict[str, nn.Module]:
        if self.generator is None:
            raise RuntimeError("the model has no generator yet: fit() or load() it first.")
        return {"generator": self.generator}

    def _build(self) -> None:
        self.generator = self._new_generator()


class CWGANGP(WGANGP):
    """Class-conditional WGAN-GP: generate rows of a chosen class of one categorical/boolean column."""

    name = "cwgan-gp"
    config_class = CWGANGPConfig
    conditional = True
    info = ModelInfo(
        family="conditional Wasserstein GAN with gradient penalty (MLP)",
        paper="Gulrajani et al. 2017 (WGAN-GP) with class conditioning as in Mirza & Osindero 2014 "
        "(conditional GANs), as in the ydata-synthetic CWGAN-GP tutorial",
        good_for="generating rows of one class of a single column (e.g. only the minority class of "
        "the target) without rejection; the class share follows the DP class frequencies",
        caveats="conditions on exactly one categorical/boolean column (the target by default); the "
        "other caveats of wgan-gp apply (weak baseline fidelity, no mode-specific handling, "
        "functorch per-sample gradients about 2x slower)",
    )
    config: CWGANGPConfig

    def __init__(self, contract: Contract, config: CWGANGPConfig | None = None, *, device: str = "auto") -> None:
        super().__init__(contract, config, device=device)
        column = self.config.condition_column or contract.target
        if column is None:
            raise ValueError(
                "cwgan-gp needs a column to condition on: the contract has no target and "
                "condition_column is not set. Set CWGANGPConfig(condition_column=...) to a "
                "categorical or boolean column."
            )
        spec = next((s for s in self.codec.discrete if s.name == column), None)
        if spec is None:
            kind: str = contract.columns[column].kind if column in contract.columns else "not a column of the contract"
            if column in contract.columns and column not in contract.modelled_columns:
                kind = f"{kind}, not modelled"
            choices = [s.name for s in self.codec.discrete]
            raise ValueError(
                f"cwgan-gp cannot condition on {column!r} ({kind}): the condition column must be a "
                f"modelled categorical or boolean column. Set condition_column to one of {choices}."
            )
        self.condition_column: str = column
        self._spec = spec
        self._block: Block = next(b for b in self.codec.blocks if b.column == column and b.role == "value")

    def conditionable_columns(self) -> list[str]:
        return [self.condition_column]

    @property
    def cond_dim(self) -> int:
        return self._block.width

    def _draw_cond(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        """Fixed class if ``conditions`` names one, else classes drawn from the DP frequencies."""
        dev = self.device
        if conditions:
            k = self._class_index(conditions)
            cats = torch.full((n,), k, dtype=torch.long, device=dev)
        else:
            freq = torch.as_tensor(self.codec.frequencies[self.condition_column], dtype=torch.float32, device=dev)
            cats = (
                torch.multinomial(freq, n, replacement=True, generator=g)
                if n
                else torch.zeros(0, dtype=torch.long, device=dev)
            )
        return torch.nn.functional.one_hot(cats, self.cond_dim).to(torch.float32)

    def _class_index(self, conditions: dict[str, Any]) -> int:
        if set(conditions) != {self.condition_column}:
            raise ValueError(
                f"cwgan-gp conditions on exactly one column, {self.condition_column!r}. Got {sorted(conditions)}."
            )
        value = conditions[self.condition_column]
        # a bool matches only a bool: 1 must not select True, nor True a category equal to 1
        for k, c in enumerate(self._spec.categories):
            if c == value and isinstance(c, bool) == isinstance(value, bool | np.bool_):
                return k
        raise ValueError(
            f"{value!r} is not in the contract's domain of {self.condition_column!r}: {self._spec.categories}."
        )

    def _with_cond(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # The generated class IS the condition: overwrite the class block (exact one-hot).
        b = self._block
        return torch.cat([x[:, : b.start], cond, x[:, b.start + b.width :]], dim=1)

    def _critic_input(self, x: torch.Tensor) -> torch.Tensor:
        # [row, one-hot class]: the class of a real row is its own value (inside the row, hence
        # inside its per-sample gradient); a fake's class block already equals its condition.
        b = self._block
        return torch.cat([x, x[:, b.start : b.start + b.width]], dim=1)
