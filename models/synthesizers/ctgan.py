"""DP-CTGAN v1: a conditional tabular GAN whose critic alone sees real rows, under DP-SGD.

What differs from the public CTGAN code, and why (see DESIGN.md, "known leaks"):
- the codec comes from the contract; its CDFs and the conditional sampler's category
  frequencies come from one charged Gaussian-mechanism histogram step (models/codec.py);
- the critic sees rows only (no conditional vector): real rows are Poisson-sampled, which
  the privacy accounting assumes, instead of being drawn to match a sampled condition;
- pac = 1, no BatchNorm and no dropout in the critic; a penalty-free logistic critic (see
  models/dp.py for why not WGAN-GP under DP-SGD);
- per-sample gradients of the whole step's loss (real row and its fake partner) are clipped
  together and noised by Opacus' DPOptimizer;
- no early stopping or model selection on real data; the generator (and its BatchNorm)
  never touches a real row, so its updates are post-processing of the DP critic.
The generator is steered by two post-processing signals besides the critic: the
conditional vector's cross-entropy (as in CTGAN) and a marginal loss towards the DP
histograms, so DP-SGD's noisy critic only has to teach the dependencies between columns.

``fit(..., epsilon=math.inf)`` is a non-DP mode for baselines and privacy-attack oracles: exact
codec histograms and a plain (unclipped, noise-free) Adam critic on the same Poisson batches,
recorded in the ledger as non-DP entries (ε = ∞), so such a model never passes a budget gate.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.optimizers import DPOptimizer
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from models.codec import Codec
from models.device import resolve_device
from models.dp import pair_loss, poisson_sample
from models.ledger import Charge, PrivacyLedger, calibrate_noise
from validation.contract import Contract

FORMAT_VERSION = 1

# Opacus' per-sample hooks on a critic whose input needs no gradient trigger this torch warning
# on every step; it is benign. A process-wide filter (not catch_warnings, which is not
# thread-safe: shadow models train in parallel threads).
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


class CTGANConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float = Field(8.0, gt=0, description="Passes over the data (1/q Poisson steps each).")
    batch_size: int = Field(1000, ge=2, description="Expected Poisson batch size of the critic.")
    z_dim: int = Field(64, ge=1)
    generator_dims: tuple[int, ...] = (256, 256)
    critic_dims: tuple[int, ...] = (128, 128)
    generator_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    max_grad_norm: float = Field(1.0, gt=0, description="Per-sample clipping norm C.")
    codec_noise_multiplier: float = Field(
        8.0, gt=0, description="σ/Δ of the histogram step; larger spends less ε there."
    )
    cond_weight: float = Field(1.0, ge=0)
    marginal_weight: float = Field(1.0, ge=0)
    gumbel_tau: float = Field(0.2, gt=0)


@dataclass
class TrainingProgress:
    epoch: float
    epochs: float
    step: int
    steps: int
    generator_loss: float
    critic_fake_score: float
    epsilon: float


def _init_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every Linear from an explicit generator (the global RNG stays untouched)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)


class _Residual(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    def __init__(self, in_dim: int, dims: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in dims:
            layers.append(_Residual(d, h))
            d += h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(d, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class Critic(nn.Module):
    """MLP critic: no BatchNorm (it would mix samples), no dropout (vmap-friendly)."""

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


class DPCTGAN:
    """fit(train, ledger, epsilon) under DP; sample(n) anywhere (post-processing).

    ``epsilon=math.inf`` is the non-DP mode (baselines, attack oracles): see ``fit``.
    """

    name = "ctgan"

    def __init__(self, contract: Contract, config: CTGANConfig | None = None, *, device: str = "auto") -> None:
        self.contract = contract
        self.config = config or CTGANConfig()
        self.device = resolve_device(device)
        self.codec = Codec(contract)
        # Conditional vector: one-hot over the discrete columns' value blocks.
        self._cond_blocks = [b for b in self.codec.blocks if b.kind == "softmax" and b.role == "value"]
        self.cond_dim = sum(b.width for b in self._cond_blocks)
        self.generator: Generator | None = None
        self.accountant: RDPAccountant | None = None
        self.training_summary: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _activate(self, logits: torch.Tensor, g: torch.Generator | None, *, hard: bool = False) -> torch.Tensor:
        """tanh on numeric slots; Gumbel-softmax on each one-hot block (explicit RNG)."""
        parts = []
        tau = self.config.gumbel_tau
        for b in self.codec.blocks:
            x = logits[:, b.start : b.start + b.width]
            if b.kind == "tanh":
                parts.append(torch.tanh(x))
                continue
            u = torch.rand(x.shape, generator=g, device=x.device).clamp_(1e-10, 1.0 - 1e-10)
            y = F.softmax((x - torch.log(-torch.log(u))) / tau, dim=1)
            if hard:
                y = F.one_hot(y.argmax(1), b.width).to(x.dtype)
            parts.append(y)
        return torch.cat(parts, dim=1)

    def _sample_cond(
        self, n: int, g: torch.Generator, conditions: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Condition vectors from the DP frequencies: (cond, chosen block index, category)."""
        dev = self.device
        cond = torch.zeros(n, self.cond_dim, device=dev)
        if not self._cond_blocks:
            return cond, torch.zeros(n, dtype=torch.long, device=dev), torch.zeros(n, dtype=torch.long, device=dev)
        if conditions:
            return self._fixed_cond(n, conditions)
        which = torch.randint(len(self._cond_blocks), (n,), generator=g, device=dev)
        cats = torch.zeros(n, dtype=torch.long, device=dev)
        offset = 0
        offsets = []
        for j, b in enumerate(self._cond_blocks):
            rows = (which == j).nonzero(as_tuple=True)[0]
            freq = torch.as_tensor(self.codec.frequencies[b.column], dtype=torch.float32, device=dev)
            if len(rows):
                cats[rows] = torch.multinomial(freq, len(rows), replacement=True, generator=g)
            offsets.append(offset)
            offset += b.width
        pos = torch.as_tensor(offsets, device=dev)[which] + cats
        cond[torch.arange(n, device=dev), pos] = 1.0
        return cond, which, cats

    def _fixed_cond(self, n: int, conditions: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(conditions) != 1:
            raise ValueError(f"v1 conditions on exactly one column. Got {sorted(conditions)}.")
        (column, value), = conditions.items()
        names = [b.column for b in self._cond_blocks]
        if column not in names:
            raise ValueError(
                f"cannot condition on {column!r}: conditions need a categorical or boolean "
                f"column. Choose one of {names}."
            )
        j = names.index(column)
        spec = next(s for s in self.codec.discrete if s.name == column)
        if value not in spec.categories:
            raise ValueError(
                f"{value!r} is not in the contract's domain of {column!r}: {spec.categories}."
            )
        k = spec.categories.index(value)
        offset = sum(b.width for b in self._cond_blocks[:j])
        cond = torch.zeros(n, self.cond_dim, device=self.device)
        cond[:, offset + k] = 1.0
        full = lambda v: torch.full((n,), v, dtype=torch.long, device=self.device)  # noqa: E731
        return cond, full(j), full(k)

    def _generate(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.generator is not None
        z = torch.randn(n, self.config.z_dim, generator=g, device=self.device)
        cond, which, cats = self._sample_cond(n, g, conditions)
        logits = self.generator(torch.cat([z, cond], dim=1))
        return logits, cond, which, cats

    def _cond_loss(self, logits: torch.Tensor, which: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for j, b in enumerate(self._cond_blocks):
            rows = (which == j).nonzero(as_tuple=True)[0]
            if len(rows):
                total = total + F.cross_entropy(
                    logits[rows, b.start : b.start + b.width], cats[rows], reduction="sum"
                )
        return total / max(1, logits.shape[0])

    def _marginal_loss(self, logits: torch.Tensor, targets: dict[tuple[str, str], torch.Tensor]) -> torch.Tensor:
        """KL(DP histogram ‖ generated marginal) per one-hot block; W2 to uniform per numeric."""
        total = logits.new_zeros(())
        n = logits.shape[0]
        grid = (torch.arange(n, device=logits.device, dtype=logits.dtype) + 0.5) / n * 2 - 1
        for b in self.codec.blocks:
            x = logits[:, b.start : b.start + b.width]
            if b.kind == "tanh":
                total = total + ((torch.sort(torch.tanh(x[:, 0])).values - grid) ** 2).mean()
            else:
                t = targets[(b.column, b.role)]
                p = F.softmax(x, dim=1).mean(0).clamp_min(1e-8)
                total = total + (t * (torch.log(t.clamp_min(1e-8)) - torch.log(p))).sum()
        return total

    def _marginal_targets(self) -> dict[tuple[str, str], torch.Tensor]:
        out = {}
        for b in self.codec.blocks:
            if b.kind != "softmax":
                continue
            if b.role == "value":
                t = self.codec.frequencies[b.column]
            else:
                r = self.codec.null_rate.get(b.column, 0.0)
                t = np.array([1.0 - r, r])
            out[(b.column, b.role)] = torch.as_tensor(t, dtype=torch.float32, device=self.device)
        return out

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: pl.DataFrame,
        *,
        ledger: PrivacyLedger,
        epsilon: float,
        seed: int,
        progress: Callable[[TrainingProgress], None] | None = None,
    ) -> DPCTGAN:
        """Train under (epsilon, ledger.delta)-DP, charging every data-dependent step to ``ledger``.

        ``epsilon=math.inf`` trains WITHOUT differential privacy (non-DP baselines, attack
        oracles): exact codec histograms, and a plain Adam critic on Poisson-sampled batches
        with no clipping and no noise; architecture, losses, sampling rate and step count are
        those of the DP path. Both steps are recorded in ``ledger`` as non-DP entries, so
        ``ledger.epsilon`` is ``math.inf`` and no budget gate can pass the model.
        """
        is_number = isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool)
        eps = float(epsilon) if is_number else math.nan
        if math.isnan(eps) or eps <= 0:
            raise ValueError(
                f"epsilon must be a number > 0 (the DP budget of this fit), or math.inf for a "
                f"non-DP baseline. Got {epsilon!r}. Pass the contract's privacy.epsilon."
            )
        dp = math.isfinite(eps)
        cfg = self.config
        ss = np.random.SeedSequence(seed).spawn(6)
        np_rng = np.random.default_rng(ss[0])
        dev = self.device
        g_init = torch.Generator().manual_seed(int(ss[1].generate_state(1)[0]))
        g_sample = torch.Generator().manual_seed(int(ss[2].generate_state(1)[0]))
        g_dev = torch.Generator(device=dev).manual_seed(int(ss[3].generate_state(1)[0]))
        g_noise = torch.Generator(device=dev).manual_seed(int(ss[4].generate_state(1)[0]))

        t0 = time.perf_counter()
        if dp:
            self.codec.fit_dp(train, ledger=ledger, noise_multiplier=cfg.codec_noise_multiplier, rng=np_rng)
        else:
            self.codec.fit_non_dp(train, ledger=ledger)
        n_hat = float(self.codec.n_estimate or 1.0)
        X = torch.as_tensor(self.codec.encode(train, rng=np_rng), device=dev)
        n = X.shape[0]
        q = min(1.0, cfg.batch_size / n_hat)
        steps = max(1, math.ceil(cfg.epochs / q))
        sigma = calibrate_noise(target_epsilon=eps, ledger=ledger, sample_rate=q, steps=steps) if dp else 0.0

        self.generator = Generator(cfg.z_dim + self.cond_dim, cfg.generator_dims, self.codec.dim).to(dev)
        base_critic = Critic(self.codec.dim, cfg.critic_dims)
        _init_(self.generator, g_init)
        _init_(base_critic, g_init)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.generator_lr, betas=cfg.betas)
        entry: Charge
        if dp:
            critic = GradSampleModule(base_critic.to(dev), loss_reduction="sum")
            opt_d: torch.optim.Optimizer = DPOptimizer(
                torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=cfg.betas),
                noise_multiplier=sigma,
                max_grad_norm=cfg.max_grad_norm,
                expected_batch_size=max(1, round(q * n_hat)),
                loss_reduction="mean",
                generator=g_noise,
            )
            # Opacus' own accountant runs beside our ledger as a cross-check (tests compare them).
            self.accountant = RDPAccountant()
            opt_d.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=q))
            entry = ledger.charge(
                "dp-sgd-critic",
                noise_multiplier=sigma,
                sample_rate=q,
                steps=0,
                description=(
                    f"DP-SGD on the critic: Poisson rate {q:.4g}, clip {cfg.max_grad_norm}, "
                    f"noise multiplier {sigma:.3f}"
                ),
            )
        else:
            base_critic.to(dev)
            opt_d = torch.optim.Adam(base_critic.parameters(), lr=cfg.critic_lr, betas=cfg.betas)
            self.accountant = None
            entry = ledger.record_non_dp(
                "critic-sgd-non-dp",
                sample_rate=q,
                steps=0,
                description=(
                    f"plain Adam on the critic: Poisson rate {q:.4g}, no clipping, no noise: "
                    "NOT differentially private"
                ),
            )
        targets = self._marginal_targets()
        bg = max(2, round(q * n_hat))
        report_every = max(1, steps // 50)
        for step in range(1, steps + 1):
            # ---- critic: one step over a Poisson batch (DP-SGD unless non-DP) -----------
            idx = poisson_sample(n, q, g_sample).to(dev)
            real = X[idx]
            b = real.shape[0]
            with torch.no_grad():  # BatchNorm needs >= 2 rows; extra fakes are dropped
                logits, *_ = self._generate(max(b, 2), g_dev)
                fake = self._activate(logits, g_dev)[:b]
            if dp:
                if b > 0:
                    pair_loss(critic(torch.stack([real, fake], dim=1))).backward()
                else:  # an empty Poisson batch still takes a noisy step (it is accounted)
                    for p in critic.parameters():
                        p.grad_sample = torch.zeros((0, *p.shape), device=dev)
                opt_d.step()
                opt_d.zero_grad(set_to_none=True)
            elif b > 0:  # non-DP: the mean of the same pair loss, no clipping, no noise
                (pair_loss(base_critic(torch.stack([real, fake], dim=1))) / b).backward()
                opt_d.step()
                opt_d.zero_grad(set_to_none=True)
            ledger.add_steps(entry, 1)

            # ---- generator: post-processing of the (DP) critic ----------------------
            # The critic's per-sample hooks must not record this backward pass: it is not a DP
            # step, and a stray grad_sample would be accumulated into the next one.
            self.generator.train()
            if dp:
                critic.disable_hooks()
            logits, _, which, cats = self._generate(bg, g_dev)
            fake = self._activate(logits, g_dev)
            score = base_critic(fake)
            loss_g = F.softplus(-score).mean()
            if cfg.cond_weight:
                loss_g = loss_g + cfg.cond_weight * self._cond_loss(logits, which, cats)
            if cfg.marginal_weight:
                loss_g = loss_g + cfg.marginal_weight * self._marginal_loss(logits, targets)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward(inputs=list(self.generator.parameters()))
            if dp:
                critic.enable_hooks()
            opt_g.step()

            if progress is not None and (step % report_every == 0 or step == steps):
                progress(
                    TrainingProgress(
                        epoch=step * q, epochs=cfg.epochs, step=step, steps=steps,
                        generator_loss=float(loss_g.detach()),
                        critic_fake_score=float(score.detach().mean()),
                        epsilon=ledger.epsilon,
                    )
                )
        self.generator.eval()
        self.training_summary = {
            "differential_privacy": dp,
            "steps": steps,
            "sample_rate": q,
            "noise_multiplier": sigma,
            "max_grad_norm": cfg.max_grad_norm if dp else None,
            "expected_batch_size": q * n_hat,
            "seconds": time.perf_counter() - t0,
            "device": str(dev),
        }
        return self

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, *, seed: int, conditions: dict[str, Any] | None = None, batch: int = 50_000) -> pl.DataFrame:
        if self.generator is None:
            raise RuntimeError("sample() needs a fitted or loaded model: call fit() or load() first.")
        if n < 0:
            raise ValueError(f"n must be >= 0. Got {n}.")
        g = torch.Generator(device=self.device).manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        self.generator.eval()
        parts = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            logits, *_ = self._generate(m, g, conditions)
            parts.append(self._activate(logits, g, hard=True).cpu().numpy())
        x = np.concatenate(parts) if parts else np.zeros((0, self.codec.dim), dtype=np.float32)
        return self.codec.decode(x)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Generator weights + codec state (DP outputs only); loadable with weights_only=True."""
        if self.generator is None:
            raise RuntimeError("nothing to save: the model is not fitted.")
        torch.save(
            {
                "format_version": FORMAT_VERSION,
                "model": self.name,
                "config": self.config.model_dump(mode="json"),
                "contract_fingerprint": self.contract.fingerprint(),
                "codec": self.codec.state(),
                "generator": {k: v.detach().cpu() for k, v in self.generator.state_dict().items()},
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, contract: Contract, *, device: str = "auto") -> DPCTGAN:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("contract_fingerprint") != contract.fingerprint():
            raise ValueError(
                f"{path} was trained under a different contract (fingerprint mismatch). Load it "
                "with the contract saved beside it in the release folder."
            )
        model = cls(contract, CTGANConfig.model_validate(blob["config"]), device=device)
        model.codec.load_state(blob["codec"])
        cfg = model.config
        model.generator = Generator(cfg.z_dim + model.cond_dim, cfg.generator_dims, model.codec.dim)
        model.generator.load_state_dict(blob["generator"])
        model.generator.to(model.device).eval()
        return model
