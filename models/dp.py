"""DP-SGD pieces shared by every synthesizer: Poisson sampling, the pair loss, the private trainer.

Every network that reads a real row is trained through a :class:`PrivateTrainer`: Poisson-sampled
batches, per-sample clipping of the whole step's loss to C, Gaussian noise σ·C, one ledger entry
extended by one step per optimizer step. Networks that never see a real row (generators) are
post-processing and use plain optimizers.

Two ways to get per-sample gradients:
- Opacus hooks (``GradSampleModule``), the default: call ``trainer.module`` for the loss and pass
  the summed per-sample loss to ``trainer.step``.
- ``torch.func`` (``trainer.step_per_sample``): for losses Opacus' hooks cannot differentiate,
  such as WGAN-GP's gradient penalty (a double backward). ``vmap(grad(loss))`` fills
  ``p.grad_sample`` and Opacus' ``DPOptimizer`` clips and noises exactly as on the hook path.

The penalty-free pair loss: each Poisson-sampled real row i is fed to the critic *together with*
its fake partner as one sample of shape (2, d), so the per-sample gradient is the gradient of the
whole step's loss ℓ_i = softplus(-D(real_i)) + softplus(D(fake_i)): real and fake halves are
clipped and charged together, never separately. WGAN-GP via vmap was measured 2x slower than the
hook path on 2 cores (0.44 s vs 0.20 s per 1000-row step), which is why ctgan uses the pair loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.grad_sample.gsm_base import AbstractGradSampleModule
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from torch import nn

from synthgate.models import canaries as audit_canaries
from synthgate.models.ledger import Charge, PrivacyLedger


def poisson_sample(n: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of a Poisson-sampled batch: each of n rows is in it independently with ``rate``."""
    mask = torch.rand(n, generator=generator) < rate
    return mask.nonzero(as_tuple=True)[0]


def pair_losses(scores: torch.Tensor) -> torch.Tensor:
    """ℓ_i per sample for critic scores of shape (batch, 2) = [real_i, fake_i]: shape (batch,)."""
    return F.softplus(-scores[:, 0]) + F.softplus(scores[:, 1])


def pair_loss(scores: torch.Tensor) -> torch.Tensor:
    """Sum over samples of ℓ_i for critic scores of shape (batch, 2) = [real_i, fake_i]."""
    return pair_losses(scores).sum()


def init_uniform_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise Linear / Conv / LSTM weights from an explicit generator (global RNG untouched).

    PyTorch's default init draws from the global RNG; seeding that would be a side effect on the
    caller. Uniform(±1/sqrt(fan_in)) is PyTorch's own default bound for these layers.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d | nn.ConvTranspose2d):
            fan_in = (
                m.weight[0].numel()
                if not isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d)
                else m.weight[:, 0].numel()
            )
            bound = 1.0 / math.sqrt(max(1, fan_in))
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)
        elif isinstance(m, nn.LSTM | nn.GRU | nn.LSTMCell | nn.GRUCell):
            bound = 1.0 / math.sqrt(m.hidden_size)
            with torch.no_grad():
                for p in m.parameters():
                    p.uniform_(-bound, bound, generator=generator)
        elif isinstance(m, nn.Embedding):
            with torch.no_grad():
                m.weight.normal_(0.0, 1.0, generator=generator)


class PrivateTrainer:
    """DP-SGD (or, non-DP, plain Adam) for ONE network that reads real rows, charged to a ledger.

    ``dp=True``: Opacus' DPOptimizer over Adam, per-sample clipping to ``max_grad_norm``, noise
    ``noise_multiplier · max_grad_norm``, gradients divided by ``expected_batch_size`` (the
    Poisson-sampling estimator), and a ledger entry ``mechanism`` at ``sample_rate`` that grows by
    one step per :meth:`step` — empty Poisson batches included, since they are accounted too.
    Opacus' own RDPAccountant runs beside the ledger as a cross-check (``self.accountant``).

    ``dp=False`` (``epsilon = math.inf`` baselines): plain Adam on the batch mean, no clipping,
    no noise, recorded with ``ledger.record_non_dp`` so the ledger's ε is infinite.

    ``clipping="ghost"`` (hooks path only): the same mechanism without materialising per-sample
    gradients. Opacus' ghost clipping computes each sample's gradient norm from the layer inputs
    and output gradients (for a sample of T rows, from the T×T Gram matrices), then a second
    backward of Σ_i min(1, C/‖g_i‖)·ℓ_i gives the sum of clipped gradients, to which the
    optimizer adds N(0, σ²C²) as before. Equal to the per-sample path up to float rounding
    (tests/unit/models/test_dp.py); needs ``step`` to get the per-sample losses, and networks of
    Linear layers and parameter-free activations. An audit run (``synthgate audit``) plants its
    canaries on either path (``models/canaries.py``): as per-sample gradient rows (a ghost trainer
    is then switched to per-sample clipping) or, on the ghost path, as extra rows clipped by the
    same ``get_clipping_coef`` call and added to the clipped sum before the noise.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        ledger: PrivacyLedger,
        mechanism: str,
        dp: bool,
        noise_multiplier: float,
        sample_rate: float,
        expected_batch_size: int,
        max_grad_norm: float,
        lr: float,
        betas: tuple[float, float] = (0.5, 0.9),
        weight_decay: float = 0.0,
        noise_generator: torch.Generator | None = None,
        per_sample: str = "hooks",
        clipping: str = "per-sample",
        what: str = "network",
    ) -> None:
        if per_sample not in ("hooks", "functorch"):
            raise ValueError(f"per_sample must be 'hooks' or 'functorch'. Got {per_sample!r}.")
        if clipping not in ("per-sample", "ghost"):
            raise ValueError(f"clipping must be 'per-sample' or 'ghost'. Got {clipping!r}.")
        self.raw = module
        self.dp = dp
        self.max_grad_norm = float(max_grad_norm)
        self.ledger = ledger
        self.per_sample = per_sample
        planted = audit_canaries.active()
        audit_path = "release" if planted is None else planted.clipping
        self.ghost = dp and per_sample == "hooks" and clipping == "ghost" and audit_path != "per-sample"
        if self.ghost:
            self.module: nn.Module = GradSampleModuleFastGradientClipping(
                module, max_grad_norm=max_grad_norm, use_ghost_clipping=True, loss_reduction="sum"
            )
        elif dp and per_sample == "hooks":
            self.module = GradSampleModule(module, loss_reduction="sum")
        else:
            self.module = module
        adam = torch.optim.Adam(module.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        self.accountant: RDPAccountant | None = None
        self.entry: Charge
        self.canaries: audit_canaries.GradientCanaries | None = None
        if dp:
            optimizer_class = DPOptimizerFastGradientClipping if self.ghost else DPOptimizer
            self.optimizer: torch.optim.Optimizer = optimizer_class(
                adam,
                noise_multiplier=noise_multiplier,
                max_grad_norm=max_grad_norm,
                expected_batch_size=max(1, int(expected_batch_size)),
                loss_reduction="mean",
                generator=noise_generator,
            )
            self.accountant = RDPAccountant()
            self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
            self.entry = ledger.charge(
                mechanism,
                noise_multiplier=noise_multiplier,
                sample_rate=sample_rate,
                steps=0,
                description=(
                    f"DP-SGD on the {what}: Poisson rate {sample_rate:.4g}, clip {max_grad_norm}, "
                    f"noise multiplier {noise_multiplier:.3f}"
                ),
            )
            # An audit run (``synthgate audit``) plants gradient canaries in the first DP network.
            self.canaries = planted if planted is not None and planted.claim(self, what) else None
        else:
            self.optimizer = adam
            self.entry = ledger.record_non_dp(
                f"{mechanism}-non-dp",
                sample_rate=sample_rate,
                steps=0,
                description=(
                    f"plain Adam on the {what}: Poisson rate {sample_rate:.4g}, no clipping, no "
                    "noise: NOT differentially private"
                ),
            )

    def step(self, loss_sum: torch.Tensor | None, batch_size: int) -> None:
        """One accounted step. ``loss_sum`` is Σ_i ℓ_i over the batch, computed through ``self.module``,
        or the vector of the ℓ_i (shape (batch_size,)), which ghost clipping needs.

        An empty Poisson batch (``batch_size == 0``, ``loss_sum`` None) still takes a noisy DP
        step: it is part of the accounting.
        """
        if batch_size > 0 and loss_sum is None:
            raise ValueError("a non-empty batch needs its summed loss.")
        if self.ghost:
            self._ghost_backward(loss_sum, batch_size)
        elif self.dp:
            if loss_sum is not None and batch_size > 0:
                loss_sum.sum().backward()
            else:
                self._empty_grad_samples()
        if self.dp:
            if self.canaries is not None:
                if self.ghost:
                    self.canaries.inject_ghost(batch_size if loss_sum is not None else 0)
                else:
                    self.canaries.inject()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        elif loss_sum is not None and batch_size > 0:
            (loss_sum.sum() / batch_size).backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.ledger.add_steps(self.entry, 1)

    def step_per_sample(
        self,
        loss_fn: Callable[..., torch.Tensor],
        *samples: torch.Tensor,
    ) -> None:
        """One accounted step whose per-sample gradients come from ``torch.func``.

        ``loss_fn(params, buffers, *one_sample)`` returns the scalar loss ℓ_i of ONE sample (each
        tensor in ``samples`` has the batch on dim 0), evaluating the network with
        ``torch.func.functional_call(trainer.raw, (params, buffers), ...)``. It may itself take
        gradients (WGAN-GP's penalty): ``vmap(grad(loss_fn))`` handles the nesting.
        """
        if self.per_sample != "functorch":
            raise ValueError("step_per_sample needs a trainer built with per_sample='functorch'.")
        b = samples[0].shape[0] if samples else 0
        named = [(k, p) for k, p in self.raw.named_parameters() if p.requires_grad]
        if b > 0:
            params = {k: p.detach() for k, p in named}
            buffers = {k: v.detach() for k, v in self.raw.named_buffers()}
            in_dims = (None, None, *([0] * len(samples)))
            grads = torch.func.vmap(torch.func.grad(loss_fn), in_dims=in_dims, randomness="different")(
                params, buffers, *samples
            )
            for k, p in named:
                if self.dp:
                    p.grad_sample = grads[k]
                else:
                    p.grad = grads[k].mean(0)
        elif self.dp:
            self._empty_grad_samples()
        if self.canaries is not None:
            self.canaries.inject()
        if self.dp or b > 0:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            for _, p in named:
                p.grad_sample = None
        self.ledger.add_steps(self.entry, 1)

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue this trainer: weights, optimizer, steps taken."""
        return {
            "network": {k: v.detach().cpu().clone() for k, v in self.raw.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "steps": int(self.entry.steps),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state()``: the ledger entry and Opacus' accountant resume the count of
        steps already taken, so a resumed fit is accounted exactly like an uninterrupted one."""
        self.raw.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        steps = int(state["steps"])
        self.entry.steps = steps
        if self.accountant is not None:
            self.accountant.history = [(self.entry.noise_multiplier, self.entry.sample_rate, steps)] if steps else []

    def _ghost_backward(self, losses: torch.Tensor | None, batch_size: int) -> None:
        """Leave Σ_i min(1, C/‖∇ℓ_i‖)·∇ℓ_i in ``p.grad`` (zeros for an empty batch)."""
        if losses is None or batch_size == 0:
            for p in self.raw.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
            return
        if losses.dim() != 1 or losses.shape[0] != batch_size:
            raise ValueError(
                f"ghost clipping needs the per-sample losses, shape ({batch_size},); got {tuple(losses.shape)}. "
                "Pass the vector of ℓ_i (e.g. pair_losses), not their sum."
            )
        losses.sum().backward(retain_graph=True)  # the hooks record each sample's gradient norm
        self.optimizer.zero_grad(set_to_none=True)  # that pass's (unclipped) sum is discarded
        coefficients = self.module.get_clipping_coef()
        self.module.disable_hooks()
        try:
            (coefficients.detach() * losses).sum().backward()
        finally:
            self.module.enable_hooks()

    def _empty_grad_samples(self) -> None:
        for p in self.raw.parameters():
            if p.requires_grad:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)

    @contextmanager
    def hooks_off(self) -> Iterator[None]:
        """Use the network for a post-processing backward (the generator's update through the critic).

        Opacus' per-sample hooks must not record that pass: it is not a DP step, and a stray
        ``grad_sample`` would be accumulated into the next one.
        """
        if isinstance(self.module, AbstractGradSampleModule):
            self.module.disable_hooks()
            try:
                yield
            finally:
                self.module.enable_hooks()
        else:
            yield
