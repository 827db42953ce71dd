"""Encoding built from the contract, with its data-dependent parts learned under DP.

Layout (fixed by the contract alone): a categorical or boolean column is a one-hot block
over its declared domain (plus a null slot when nullable); a numeric column (integer,
continuous, datetime) is one value in [-1, 1] (plus a 2-slot null block when nullable).

Numerics are *quantile normalised*: value -> its CDF position u in [0, 1] -> 2u - 1. The CDF
comes from a histogram over public bins (from the contract's bounds). Integer columns get
one bin per value when the range is small; otherwise a point bin at each bound (survey data
is often top- or bottom-coded: capital gains of 0, ages of 90) and equal-width bins between.

All histograms (every column's, categorical frequencies included) are released at once by
one Gaussian mechanism: adding or removing a row changes one bin per column, so the L2
sensitivity is sqrt(number of columns). It is charged to the ledger. Everything after it
(clipping, thresholding, the CDF, the category frequencies used by the conditional sampler,
the row-count estimate) is post-processing.

``fit_non_dp`` is the explicit non-DP path (baselines, attack oracles): the same statistics
from exact histograms, recorded in the ledger as a non-DP step (ε = ∞).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from models.ledger import PrivacyLedger
from validation.contract import (
    BooleanColumn,
    CategoricalColumn,
    Contract,
    ContinuousColumn,
    DatetimeColumn,
    IntegerColumn,
)

MAX_BINS = 128


@dataclass(frozen=True)
class Block:
    """A slice of the encoded vector: ``softmax`` (one-hot, width >= 2) or ``tanh`` (width 1)."""

    column: str
    kind: str  # "softmax" | "tanh"
    start: int
    width: int
    role: str  # "value" | "null"


def _epoch_seconds(v: Any) -> float:
    return v.timestamp() if hasattr(v, "timestamp") else float(v)


@dataclass
class _NumericSpec:
    name: str
    kind: str  # integer | continuous | datetime
    lo: float
    hi: float
    nullable: bool
    edges_lo: np.ndarray  # per-bin interval [edges_lo, edges_hi] in value space
    edges_hi: np.ndarray


@dataclass
class _DiscreteSpec:
    name: str
    kind: str  # categorical | boolean
    categories: list[Any]  # declared domain (+ None slot appended when nullable)
    nullable: bool


def _numeric_bins(kind: str, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Public bin intervals for a numeric column, from its contract bounds only."""
    if kind == "integer":
        n_values = int(hi - lo) + 1
        if n_values <= MAX_BINS:
            centres = np.arange(lo, hi + 1, dtype=np.float64)
            return centres - 0.5, centres + 0.5
        inner = np.linspace(lo + 0.5, hi - 0.5, MAX_BINS - 1)
        e_lo = np.concatenate([[lo - 0.5], inner[:-1], [hi - 0.5]])
        e_hi = np.concatenate([[lo + 0.5], inner[1:], [hi + 0.5]])
        return e_lo, e_hi
    edges = np.linspace(lo, hi, MAX_BINS + 1)
    return edges[:-1], edges[1:]


class Codec:
    """Row <-> vector mapping whose layout comes from the contract and CDFs from DP histograms."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.numeric: list[_NumericSpec] = []
        self.discrete: list[_DiscreteSpec] = []
        self.blocks: list[Block] = []
        self.columns = contract.modelled_columns
        pos = 0
        for name in self.columns:
            col = contract.columns[name]
            if isinstance(col, CategoricalColumn | BooleanColumn):
                cats: list[Any] = (
                    list(col.categories) if isinstance(col, CategoricalColumn) else [False, True]
                )
                if col.nullable:
                    cats.append(None)
                self.discrete.append(_DiscreteSpec(name, col.kind, cats, col.nullable))
                self.blocks.append(Block(name, "softmax", pos, len(cats), "value"))
                pos += len(cats)
            elif isinstance(col, IntegerColumn | ContinuousColumn | DatetimeColumn):
                lo, hi = _epoch_seconds(col.min), _epoch_seconds(col.max)
                e_lo, e_hi = _numeric_bins(col.kind, lo, hi)
                self.numeric.append(_NumericSpec(name, col.kind, lo, hi, col.nullable, e_lo, e_hi))
                self.blocks.append(Block(name, "tanh", pos, 1, "value"))
                pos += 1
                if col.nullable:
                    self.blocks.append(Block(name, "softmax", pos, 2, "null"))
                    pos += 2
        self.dim = pos
        self._block = {(b.column, b.role): b for b in self.blocks}
        # Filled by fit_dp (post-processed DP histograms) or fit_non_dp (exact ones).
        self.bin_mass: dict[str, np.ndarray] = {}
        self.null_rate: dict[str, float] = {}
        self.frequencies: dict[str, np.ndarray] = {}
        self.n_estimate: float | None = None

    # ------------------------------------------------------------------ DP statistics
    @property
    def n_histograms(self) -> int:
        return len(self.columns)

    def histograms(self, df: pl.DataFrame) -> dict[str, np.ndarray]:
        """Exact per-column histograms over the public bins (private: only used under noise)."""
        out: dict[str, np.ndarray] = {}
        for spec in self.discrete:
            codes = self._discrete_codes(df, spec)
            out[spec.name] = np.bincount(codes, minlength=len(spec.categories)).astype(np.float64)
        for spec in self.numeric:
            values, null = self._numeric_values(df, spec)
            idx = self._bin_index(spec, values[~null])
            counts = np.bincount(idx, minlength=len(spec.edges_lo)).astype(np.float64)
            if spec.nullable:
                counts = np.append(counts, float(null.sum()))
            out[spec.name] = counts
        return out

    def fit_dp(
        self,
        df: pl.DataFrame,
        *,
        ledger: PrivacyLedger,
        noise_multiplier: float,
        rng: np.random.Generator,
    ) -> None:
        """Learn bin masses and category frequencies with one charged Gaussian mechanism."""
        if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
            raise ValueError(
                f"noise_multiplier must be a finite number > 0 for the DP histogram step. Got "
                f"{noise_multiplier!r}. Raise it (the default is 8.0); for exact, non-DP histograms "
                "call Codec.fit_non_dp instead."
            )
        sensitivity = math.sqrt(self.n_histograms)
        sigma = noise_multiplier * sensitivity
        ledger.charge(
            "codec-histograms",
            noise_multiplier=noise_multiplier,
            sample_rate=1.0,
            steps=1,
            description=(
                f"Gaussian mechanism on {self.n_histograms} per-column histograms over public "
                f"bins (L2 sensitivity sqrt({self.n_histograms}), noise std {sigma:.1f} rows)"
            ),
        )
        exact = self.histograms(df)
        noisy = {k: v + rng.normal(0.0, sigma, size=v.shape) for k, v in exact.items()}
        self._set_statistics(noisy, sigma)

    def fit_non_dp(self, df: pl.DataFrame, *, ledger: PrivacyLedger) -> None:
        """Learn the same statistics from EXACT histograms: no noise, no DP (ε = ∞).

        For non-DP baselines and attack oracles only. The step is recorded in ``ledger`` as
        a non-DP entry, which makes the ledger's ε infinite, so such a model can never pass a
        budget gate. Zero-count bins and categories get no mass (the DP path's noise threshold
        is 0 here).
        """
        ledger.record_non_dp(
            "codec-histograms-non-dp",
            description=(
                f"exact per-column histograms of {self.n_histograms} columns over public bins, "
                "no noise: NOT differentially private"
            ),
        )
        self._set_statistics(self.histograms(df), 0.0)

    def _set_statistics(self, counts_by_column: dict[str, np.ndarray], sigma: float) -> None:
        """Post-processing of the released histograms (noise std ``sigma`` rows, 0 if exact)."""
        noisy = counts_by_column
        # Unclipped noisy totals are unbiased for n; average over columns.
        self.n_estimate = float(max(1.0, np.mean([v.sum() for v in noisy.values()])))
        threshold = 2.0 * sigma  # drop bins indistinguishable from noise (post-processing)
        for spec in self.discrete:
            self.frequencies[spec.name] = _normalise(noisy[spec.name], 0.0)
        for spec in self.numeric:
            counts = noisy[spec.name]
            if spec.nullable:
                null_count, counts = counts[-1], counts[:-1]
                total = max(counts.clip(min=0).sum() + max(null_count, 0.0), 1.0)
                self.null_rate[spec.name] = float(np.clip(null_count / total, 0.0, 1.0))
            self.bin_mass[spec.name] = _normalise(counts, threshold)

    # ------------------------------------------------------------------ encode / decode
    def _discrete_codes(self, df: pl.DataFrame, spec: _DiscreteSpec) -> np.ndarray:
        s = df.get_column(spec.name)
        if spec.kind == "boolean":
            codes = s.cast(pl.Int64).fill_null(2 if spec.nullable else 0).to_numpy()
            return codes.astype(np.int64)
        domain = [c for c in spec.categories if c is not None]
        codes = s.cast(pl.Utf8).cast(pl.Enum(domain)).to_physical().cast(pl.Int64)
        return codes.fill_null(len(domain)).to_numpy().astype(np.int64)

    def _numeric_values(self, df: pl.DataFrame, spec: _NumericSpec) -> tuple[np.ndarray, np.ndarray]:
        s = df.get_column(spec.name)
        if spec.kind == "datetime":
            s = s.dt.epoch("ms").cast(pl.Float64) / 1000.0
        values = s.cast(pl.Float64).to_numpy()
        null = np.isnan(values)
        return np.where(null, spec.lo, values), null

    @staticmethod
    def _bin_index(spec: _NumericSpec, values: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(spec.edges_hi, values, side="right")
        return np.clip(idx, 0, len(spec.edges_hi) - 1)

    def encode(self, df: pl.DataFrame, *, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        """Rows -> matrix (n, dim). Integers are dequantised with uniform jitter within their bin.

        float32 (for torch) cannot resolve a bin holding < ~1e-7 of the mass near u = 1, so
        such a value can come back a bin away; float64 round-trips exactly.
        """
        if not self.bin_mass and self.numeric:
            raise RuntimeError(
                "Codec.encode needs fit_dp (or fit_non_dp) first: the CDFs come from the histograms."
            )
        n = df.height
        out = np.zeros((n, self.dim), dtype=dtype)
        for spec in self.discrete:
            b = self._block[(spec.name, "value")]
            out[np.arange(n), b.start + self._discrete_codes(df, spec)] = 1.0
        for spec in self.numeric:
            values, null = self._numeric_values(df, spec)
            idx = self._bin_index(spec, values)  # the bin the DP histogram counted it in
            if spec.kind == "integer":
                values = values + rng.uniform(-0.5, 0.5, size=n)
            u = self._cdf(spec, values, idx)
            b = self._block[(spec.name, "value")]
            out[:, b.start] = np.where(null, 0.0, 2.0 * u - 1.0)
            if spec.nullable:
                nb = self._block[(spec.name, "null")]
                out[np.arange(n), nb.start + null.astype(np.int64)] = 1.0
        return out

    def _cdf(self, spec: _NumericSpec, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        mass = self.bin_mass[spec.name]
        cum = np.concatenate([[0.0], np.cumsum(mass)])
        width = spec.edges_hi[idx] - spec.edges_lo[idx]
        w = np.clip((values - spec.edges_lo[idx]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
        return np.clip(cum[idx] + mass[idx] * w, 0.0, 1.0)

    def _inverse_cdf(self, spec: _NumericSpec, u: np.ndarray) -> np.ndarray:
        mass = self.bin_mass[spec.name]
        cum = np.cumsum(mass)
        # Only bins with DP mass can be drawn: the first such bin whose CDF passes u.
        nonzero = np.flatnonzero(mass > 0)
        idx = nonzero[np.clip(np.searchsorted(cum[nonzero], u, side="right"), 0, len(nonzero) - 1)]
        start = cum[idx] - mass[idx]
        w = np.clip((u - start) / np.where(mass[idx] > 0, mass[idx], 1.0), 0.0, 1.0)
        return spec.edges_lo[idx] + w * (spec.edges_hi[idx] - spec.edges_lo[idx])

    def decode(self, x: np.ndarray) -> pl.DataFrame:
        """Matrix (n, dim) -> rows that obey the contract (domains, bounds, nullability)."""
        cols: dict[str, pl.Series] = {}
        for spec in self.discrete:
            b = self._block[(spec.name, "value")]
            codes = x[:, b.start : b.start + b.width].argmax(axis=1)
            if spec.kind == "boolean":
                vals = np.array(spec.categories, dtype=object)[codes]
                cols[spec.name] = pl.Series(spec.name, vals.tolist(), dtype=pl.Boolean)
            else:
                vals = np.array(spec.categories, dtype=object)[codes]  # None slot -> null
                cols[spec.name] = pl.Series(spec.name, vals.tolist(), dtype=pl.Utf8)
        for spec in self.numeric:
            b = self._block[(spec.name, "value")]
            u = np.clip((x[:, b.start].astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
            v = np.clip(self._inverse_cdf(spec, u), spec.lo, spec.hi)
            null = np.zeros(len(v), dtype=bool)
            if spec.nullable:
                nb = self._block[(spec.name, "null")]
                null = x[:, nb.start + 1] > x[:, nb.start]
            if spec.kind == "integer":
                s = pl.Series(spec.name, np.rint(v).astype(np.int64))
            elif spec.kind == "datetime":
                s = pl.Series(spec.name, (v * 1000).astype(np.int64)).cast(pl.Datetime("ms"))
            else:
                s = pl.Series(spec.name, v)
            if spec.nullable:
                s = pl.select(pl.when(pl.Series(null)).then(None).otherwise(s).alias(spec.name)).to_series()
            cols[spec.name] = s
        return pl.DataFrame([cols[c] for c in self.columns])

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        return {
            "bin_mass": {k: v.tolist() for k, v in self.bin_mass.items()},
            "null_rate": dict(self.null_rate),
            "frequencies": {k: v.tolist() for k, v in self.frequencies.items()},
            "n_estimate": self.n_estimate,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.bin_mass = {k: np.asarray(v) for k, v in state["bin_mass"].items()}
        self.null_rate = dict(state["null_rate"])
        self.frequencies = {k: np.asarray(v) for k, v in state["frequencies"].items()}
        self.n_estimate = state["n_estimate"]


def _normalise(counts: np.ndarray, threshold: float) -> np.ndarray:
    c = np.where(counts > threshold, counts, 0.0)
    if c.sum() <= 0:  # all noise: fall back to the public, data-free uniform
        return np.full(len(counts), 1.0 / len(counts))
    return c / c.sum()
