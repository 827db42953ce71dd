"""Gradient canaries for the one-run privacy audit (Steinke, Nasr & Jagielski, NeurIPS 2023).

A canary is an extra training record whose per-sample gradient the auditor chooses: a "Dirac"
gradient, all zero except one coordinate of the DP network's parameters. Each of ``m`` canaries is
included in training with probability 1/2 (the auditor's secret coin); an included canary then
takes part in each step like any row, by its own Poisson coin at the trainer's sample rate, and its
gradient goes through the production path unchanged: it is appended to ``p.grad_sample`` before
Opacus' ``DPOptimizer`` clips every row to C, sums and adds N(0, σ²C²) noise. The canary's gradient
is ``overshoot · C`` long (10·C by default), so a clipping bug would show up in the audit as well as
a noise bug.

The auditor observes the noisy, clipped, averaged gradient of every step (all iterates: what
DP-SGD's accounting covers) and scores canary j by the sum over steps of that gradient's value at
its coordinate. Included canaries push their coordinate up by C / expected batch size each time
they are sampled; excluded ones never do. ``validation.audit`` turns scores and coins into a lower
bound on ε.

A canary run is an audit, never a release: ``install`` is a context manager, and only the first DP
trainer built inside it (the critic of every GAN here) carries the canaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from models.dp import PrivateTrainer

__all__ = ["GradientCanaries", "active", "install"]

_ACTIVE: ContextVar[GradientCanaries | None] = ContextVar("synthgate_gradient_canaries", default=None)


class GradientCanaries:
    """``m`` Dirac gradient canaries, their secret inclusion coins and their accumulated scores."""

    def __init__(self, m: int, *, seed: int, overshoot: float = 10.0, reserve: bool = True) -> None:
        if m < 2:
            raise ValueError(f"an audit needs at least 2 canaries. Got m={m}.")
        if not overshoot >= 1.0:
            raise ValueError(f"overshoot must be >= 1 (the canary gradient is overshoot·C long). Got {overshoot}.")
        self.m = m
        self.overshoot = float(overshoot)
        self.reserve = reserve
        self._rng = np.random.default_rng(seed)
        self.included = self._rng.random(m) < 0.5
        self._observed: list[np.ndarray] = []  # per step: each canary coordinate's noisy gradient, in units of C/B
        self.participations = np.zeros(m, dtype=np.int64)
        self.trainer: PrivateTrainer | None = None
        self.what = ""
        self.n_parameters = 0
        self._slots: list[tuple[int, np.ndarray, np.ndarray]] = []  # (param index, canary ids, flat offsets)

    # -- wiring ------------------------------------------------------------------------------
    def claim(self, trainer: PrivateTrainer, what: str) -> bool:
        """Attach to ``trainer`` if no trainer holds the canaries yet (the first DP network built)."""
        if self.trainer is not None:
            return False
        params = self._params(trainer)
        sizes = np.array([p.numel() for p in params])
        total = int(sizes.sum())
        if total < self.m:
            raise ValueError(
                f"the {what} has {total} trainable parameters, fewer than the {self.m} canaries; audit with "
                f"at most {total} canaries."
            )
        coords = np.sort(self._rng.choice(total, size=self.m, replace=False))
        owner = np.searchsorted(np.cumsum(sizes), coords, side="right")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        order = self._rng.permutation(self.m)  # canary j's coordinate is random, not sorted by j
        coords, owner = coords[order], owner[order]
        self._slots = [
            (int(k), np.flatnonzero(owner == k), coords[owner == k] - starts[k]) for k in np.unique(owner)
        ]
        self.trainer, self.what, self.n_parameters = trainer, what, total
        optimizer = trainer.optimizer
        previous = optimizer.step_hook

        def hook(opt: object) -> None:  # runs after clipping, noise and scaling, before Adam
            if previous is not None:
                previous(opt)
            self._observe()

        optimizer.step_hook = hook
        return True

    @staticmethod
    def _params(trainer: PrivateTrainer) -> list[torch.nn.Parameter]:
        return [p for p in trainer.raw.parameters() if p.requires_grad]

    # -- per step ----------------------------------------------------------------------------
    def inject(self) -> None:
        """Append this step's participating canaries to every parameter's ``grad_sample``."""
        if self.trainer is None:
            return
        sampled = self.included & (self._rng.random(self.m) < self.trainer.entry.sample_rate)
        ids = np.flatnonzero(sampled)
        self.participations[ids] += 1
        row_of = np.full(self.m, -1)
        row_of[ids] = np.arange(len(ids))
        length = self.overshoot * self.trainer.max_grad_norm
        params = self._params(self.trainer)
        slots = {k: (canary_ids, offsets) for k, canary_ids, offsets in self._slots}
        for k, p in enumerate(params):
            rows = torch.zeros((len(ids), p.numel()), device=p.device, dtype=p.dtype)
            if k in slots:
                canary_ids, offsets = slots[k]
                here = sampled[canary_ids]
                rows[torch.as_tensor(row_of[canary_ids[here]]), torch.as_tensor(offsets[here])] = length
            grad_sample = getattr(p, "grad_sample", None)
            if not isinstance(grad_sample, torch.Tensor):
                raise RuntimeError(
                    f"parameter {k} of the {self.what} has no per-sample gradient tensor "
                    f"({type(grad_sample).__name__}); canaries need one backward pass per step."
                )
            if self.reserve and k in slots:
                # The canaries' coordinates are the auditor's: the rows' gradients there are zeroed
                # before clipping (each row's norm can only shrink), so the score sees canaries + noise.
                flat = grad_sample.reshape(grad_sample.shape[0], -1)  # a view when contiguous
                flat[:, torch.as_tensor(slots[k][1])] = 0
                grad_sample = flat.view_as(grad_sample)
            p.grad_sample = torch.cat([grad_sample, rows.view(len(ids), *p.shape)], dim=0)

    def _observe(self) -> None:
        if self.trainer is None:
            return
        params = self._params(self.trainer)
        # DPOptimizer divides the noisy sum by its expected batch size: one sampled canary adds C / B.
        unit = self.trainer.max_grad_norm / float(self.trainer.optimizer.expected_batch_size)
        x = np.zeros(self.m)
        for k, canary_ids, offsets in self._slots:
            grad = params[k].grad
            if grad is None:
                raise RuntimeError(f"parameter {k} of the {self.what} has no gradient after the DP step.")
            x[canary_ids] = grad.detach().reshape(-1)[torch.as_tensor(offsets)].cpu().double().numpy() / unit
        self._observed.append(x)

    @property
    def steps(self) -> int:
        return len(self._observed)

    @property
    def scores(self) -> np.ndarray:
        """Each canary's log-likelihood ratio, "included" against "excluded", over all steps.

        Observed at its coordinate in units of C/B, an excluded canary gives x_t ~ N(0, σ²) at every
        step and an included one the mixture (1 − q)·N(0, σ²) + q·N(1, σ²) (it is sampled with
        probability q). The ratio Σ_t log(1 − q + q·exp((2x_t − 1) / 2σ²)) is the Neyman-Pearson
        score for that question, far stronger than the plain sum when q is small (the sum adds every
        step's noise for about q·T steps of signal). It is fixed before any score is seen. Rows'
        own gradients at the coordinates (``reserve=False``) only blur it.
        """
        if self.trainer is None or not self._observed:
            return np.zeros(self.m)
        sigma = self.trainer.entry.noise_multiplier
        q = self.trainer.entry.sample_rate
        x = np.stack(self._observed)
        if sigma <= 0:  # no noise: any step at 1 or above is a sighting
            return (x >= 0.5).sum(axis=0).astype(float)
        z = (2.0 * x - 1.0) / (2.0 * sigma**2)
        return np.logaddexp(np.log1p(-q), np.log(q) + z).sum(axis=0) if q < 1 else z.sum(axis=0)


def active() -> GradientCanaries | None:
    """The canaries installed in this context, if any (read by ``PrivateTrainer``)."""
    return _ACTIVE.get()


@contextmanager
def install(canaries: GradientCanaries) -> Iterator[GradientCanaries]:
    """Within the block, the first DP trainer built carries ``canaries`` (audits only)."""
    token = _ACTIVE.set(canaries)
    try:
        yield canaries
    finally:
        _ACTIVE.reset(token)
