"""Sampling-time calibration: draw the output from a larger generated pool so that its marginals
match the model's released DP marginals (raking, i.e. iterative proportional fitting of row weights;
Deming & Stephan 1940), instead of taking the generator's rows as they come.

Why. A generator trained by DP-SGD (and by a loss towards noisy marginals) ends training with
its 1-way and 2-way marginals still some way from the DP statistics it was given: on the benchmark
suite, column shapes trailed independent marginals and pair trends trailed MST (BENCHMARKS.md).
Both targets are already released, so matching them more closely costs no privacy:

- every categorical or boolean column's DP frequencies, and every nullable numeric's DP null rate,
  from the codec's charged histograms;
- every pair table measured by models/marginals.py (noisy, projected to the simplex).

A numeric column's values get no 1-way target of their own: the codec's bins are coarse (often
one bin holds most of a skewed column), so "uniform in the encoded CDF" is an assumption, not a
measurement, and raking to it made column shapes worse (nassCDS ``weight``: KS complement 0.90 →
0.57). The measured pair tables bin numerics by the DP quantiles of real rows, so they are fair
targets.

How. For each output chunk of ``m`` rows the model generates ``POOL_FACTOR`` × m rows, weights
them by capped raking (each sweep multiplies a row's weight by target / current share of its cell,
for every target in turn; weights are capped at ``POOL_FACTOR`` × their mean so that no row's
inclusion probability exceeds 1), and keeps ``m`` rows by systematic sampling with probability
proportional to weight (Madow 1949): every pool row is kept at most once, so the calibration adds
no duplicate. Cells a target puts at zero (a noisy count projected away) are not emptied: a row's
factor is floored at ``FLOOR`` per sweep, the generator's belief tempering the measurement's.

Tried and left out: trusting a noisy pair table less (raking exponent TOLERANCE / its expected noise
error). On the two small tables it was tried on at ε = 1 (colon, 930 rows; a 1,500-row sample of
Adult; 2–3 fits each) it moved pair trends by +0.012 and −0.025: no consistent gain.

Everything here reads the generated pool and the released statistics only: post-processing of
DP outputs, with randomness from the caller's (public) sampling stream.
"""

from __future__ import annotations

import numpy as np

from models.codec import Codec
from models.marginals import Measured, Variable, discretise, one_way, variables

POOL_FACTOR = 4
SWEEPS = 12
FLOOR = 0.2  # the least a sweep multiplies a row's weight by


def _null_cells(x: np.ndarray, v: Variable) -> np.ndarray:
    assert v.null_start is not None
    return (x[:, v.null_start + 1] > x[:, v.null_start]).astype(np.int64)


class Calibrator:
    """The released marginals of one model, and the raking that draws an output from a pool."""

    def __init__(self, codec: Codec, measured: Measured | None) -> None:
        self.codec = codec
        self.measured = measured
        self.variables = measured.variables if measured is not None else []
        self._one_way: list[tuple[Variable, np.ndarray]] = []
        for v in variables(codec):
            if v.kind != "tanh":
                self._one_way.append((v, one_way(codec, v)))
            elif v.null_start is not None:  # a numeric's DP null rate; its values keep the generator's shape
                r = float(codec.null_rate.get(v.column, 0.0))
                self._one_way.append((v, np.array([1.0 - r, r])))

    @property
    def targets(self) -> int:
        return len(self._one_way) + (len(self.measured.pairs) if self.measured is not None else 0)

    def _cells(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(cell index of each pool row, target shares) per released marginal."""
        out = []
        for v, t in self._one_way:
            cells = _null_cells(x, v) if v.kind == "tanh" else x[:, v.start : v.start + v.width].argmax(1)
            out.append((cells, t))
        if self.measured is not None and self.measured.pairs:
            codes = discretise(x, self.variables)
            for (a, b), table in zip(self.measured.pairs, self.measured.tables, strict=True):
                wb = self.variables[b].width
                out.append((codes[:, a] * wb + codes[:, b], table.ravel()))
        return out

    def weights(self, x: np.ndarray, *, sweeps: int = SWEEPS, cap: float = POOL_FACTOR) -> np.ndarray:
        """Raking weights of the pool rows ``x`` (mean 1, each at most ``cap``)."""
        targets = self._cells(x)
        w = np.ones(x.shape[0])
        for _ in range(sweeps):
            for c, t in targets:
                share = np.bincount(c, weights=w, minlength=t.size) / w.sum()
                factor = np.where(share > 0, t / np.where(share > 0, share, 1.0), 1.0)
                w *= np.maximum(factor, FLOOR)[c]
                w /= w.mean()
                np.minimum(w, cap, out=w)
                w /= w.mean()
        return np.minimum(w, cap)

    def select(self, x: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` rows of the pool ``x`` (POOL_FACTOR × m rows or more): see ``select_index``."""
        return x[self.select_index(x, m, rng)]

    def select_index(self, x: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of ``m`` distinct pool rows, drawn by systematic sampling with probability ∝
        raking weight (each inclusion probability min(1, m·w/Σw)), in random order."""
        if x.shape[0] <= m:
            return np.arange(x.shape[0])
        w = self.weights(x, cap=x.shape[0] / m)
        order = rng.permutation(x.shape[0])
        pi = np.minimum(w[order] * (m / w.sum()), 1.0)
        pi *= m / pi.sum()  # the cap can leave Σπ a hair under m
        points = rng.uniform() + np.arange(m)
        keep = np.searchsorted(np.cumsum(pi), points, side="right")
        chosen = order[np.unique(np.minimum(keep, len(order) - 1))]
        if chosen.size < m:  # rounding at the cap: top up with the heaviest rows not yet kept
            rest = np.setdiff1d(np.arange(x.shape[0]), chosen)
            chosen = np.concatenate([chosen, rest[np.argsort(-w[rest], kind="stable")[: m - chosen.size]]])
        return rng.permutation(chosen)

    def error(self, x: np.ndarray) -> float:
        """Mean total-variation distance between ``x``'s marginals and the released ones."""
        cells = self._cells(x)
        if not cells:
            return 0.0
        tv = [0.5 * np.abs(np.bincount(c, minlength=t.size) / max(len(c), 1) - t).sum() for c, t in cells]
        return float(np.mean(tv))


__all__ = ["FLOOR", "POOL_FACTOR", "SWEEPS", "Calibrator"]
