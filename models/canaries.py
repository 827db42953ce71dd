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

Two clipping paths, both audited (``clipping``):
- "per-sample": the trainer materialises per-sample gradients (``p.grad_sample``) and Opacus'
  ``DPOptimizer`` clips them; the canaries are extra rows of ``grad_sample`` (:meth:`inject`). A
  trainer configured for ghost clipping is switched to this path for the audit.
- "ghost": the path releases use by default (ctgan's ``clipping: ghost``). Opacus' ghost clipping
  never materialises per-sample gradients: the hooks record each row's per-parameter gradient norm
  (``p._norm_sample``), ``get_clipping_coef`` turns them into min(1, C/‖g_i‖), and a second
  backward leaves Σ_i coef_i·g_i in ``p.grad``, to which ``DPOptimizerFastGradientClipping`` adds
  N(0, σ²C²) and which it scales by 1/B. The canaries are extra rows of that step
  (:meth:`inject_ghost`): their per-parameter norms are appended to the rows' ``_norm_sample``, the
  module's own ``get_clipping_coef`` clips rows and canaries in one call, and each sampled canary
  adds coef·(its Dirac gradient) to ``p.grad`` before the optimizer's noise, scaling and step hook:
  the canary is subject to the same clip-to-C, the same noise and the same accounting as a row.
  What this path does not audit is Opacus' computation of the rows' norms from layer activations
  and backprops (a canary's norm is the auditor's); ``tests/unit/models/test_dp.py`` checks those
  norms against the per-sample path.
- "release": keep whichever path the trainer is configured for.

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
    from synthgate.models.dp import PrivateTrainer

__all__ = ["CLIPPING_PATHS", "GradientCanaries", "active", "install"]

CLIPPING_PATHS = ("per-sample", "ghost", "release")

_ACTIVE: ContextVar[GradientCanaries | None] = ContextVar("synthgate_gradient_canaries", default=None)


class GradientCanaries:
    """``m`` Dirac gradient canaries, their secret inclusion coins and their accumulated scores."""

    def __init__(
        self, m: int, *, seed: int, overshoot: float = 10.0, reserve: bool = True, clipping: str = "per-sample"
    ) -> None:
        if m < 2:
            raise ValueError(f"an audit needs at least 2 canaries. Got m={m}.")
        if not overshoot >= 1.0:
            raise ValueError(f"overshoot must be >= 1 (the canary gradient is overshoot·C long). Got {overshoot}.")
        if clipping not in CLIPPING_PATHS:
            raise ValueError(f"clipping must be one of {', '.join(CLIPPING_PATHS)}. Got {clipping!r}.")
        self.m = m
        self.clipping = clipping
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
        if self.clipping == "ghost" and not trainer.ghost:
            raise ValueError(
                f"the audit asked for the ghost-clipping path, but the {what} clips per sample (a torch.func "
                "trainer, or the model's clipping option is per-sample); audit it with clipping 'per-sample' "
                "or 'release'."
            )
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
        self._slots = [(int(k), np.flatnonzero(owner == k), coords[owner == k] - starts[k]) for k in np.unique(owner)]
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
    def _draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This step's participants (each included canary by its own coin at the trainer's Poisson rate):
        the sampled mask, their ids, and each canary's row among them (-1 when not sampled)."""
        if self.trainer is None:
            raise RuntimeError("the canaries are not attached to a DP trainer yet; nothing to draw.")
        sampled = self.included & (self._rng.random(self.m) < self.trainer.entry.sample_rate)
        ids = np.flatnonzero(sampled)
        self.participations[ids] += 1
        row_of = np.full(self.m, -1)
        row_of[ids] = np.arange(len(ids))
        return sampled, ids, row_of

    def inject(self) -> None:
        """Append this step's participating canaries to every parameter's ``grad_sample``."""
        if self.trainer is None:
            return
        sampled, ids, row_of = self._draw()
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
                flat = grad_sample.reshape(
                    grad_sample.shape[0], p.numel()
                )  # a view when contiguous (-1 fails on 0 rows)
                flat[:, torch.as_tensor(slots[k][1])] = 0
                grad_sample = flat.view_as(grad_sample)
            p.grad_sample = torch.cat([grad_sample, rows.view(len(ids), *p.shape)], dim=0)

    def inject_ghost(self, batch_size: int) -> None:
        """Ghost path: add this step's participating canaries, clipped like rows, to the clipped sum.

        Called after the trainer's ghost backward left Σ_i min(1, C/‖g_i‖)·g_i of its ``batch_size``
        rows in ``p.grad`` and their per-parameter norms in ``p._norm_sample``, before the optimizer
        noises and scales. The canaries' norms are appended to the rows' and the module's own
        ``get_clipping_coef`` clips all of them in one call (the rows' coefficients are recomputed
        unchanged; a sabotaged or broken clipping function shows in the canaries). With ``reserve``
        the clipped sum is zeroed at the canaries' coordinates first: each row's contribution there
        is dropped after clipping, so its norm can only shrink and the score sees canaries + noise.
        """
        if self.trainer is None:
            return
        module = self.trainer.module
        params = self._params(self.trainer)
        _, ids, row_of = self._draw()
        length = self.overshoot * self.trainer.max_grad_norm
        slots = {k: (canary_ids, offsets) for k, canary_ids, offsets in self._slots}
        saved: list[torch.Tensor | None] = []
        for k, p in enumerate(params):
            rows = getattr(p, "_norm_sample", None) if batch_size > 0 else None
            if batch_size > 0 and not (isinstance(rows, torch.Tensor) and rows.shape == (batch_size,)):
                raise RuntimeError(
                    f"parameter {k} of the {self.what} has no per-sample gradient norms for the {batch_size} rows "
                    f"of this step ({type(rows).__name__}); ghost canaries need the ghost backward first."
                )
            norms = torch.zeros(len(ids), device=p.device, dtype=p.dtype)
            if k in slots:
                canary_ids, _ = slots[k]
                here = row_of[canary_ids] >= 0
                norms[torch.as_tensor(row_of[canary_ids[here]], dtype=torch.long)] = length
            saved.append(getattr(p, "_norm_sample", None))
            p._norm_sample = norms if rows is None else torch.cat([rows, norms])
        try:
            coefficients = module.get_clipping_coef()[batch_size:]
        finally:
            for p, before in zip(params, saved, strict=True):
                p._norm_sample = before
        if coefficients.shape != (len(ids),):
            raise RuntimeError(
                f"the clipping function gave {tuple(coefficients.shape)} coefficients for {len(ids)} canaries."
            )
        for k, canary_ids, offsets in self._slots:
            p = params[k]
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            flat = p.grad.view(-1)
            if self.reserve:
                flat[torch.as_tensor(offsets)] = 0
            here = row_of[canary_ids] >= 0
            if here.any():
                rows_here = torch.as_tensor(row_of[canary_ids[here]], dtype=torch.long, device=coefficients.device)
                flat[torch.as_tensor(offsets[here])] += (coefficients[rows_here] * length).to(flat.dtype)

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
