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

``numeric_encoding="modes"`` (opt-in; the default stays "quantile") is CTGAN's mode-specific
normalisation: a numeric value becomes a scalar α = (x − μ_k)/(4σ_k) in a tanh slot plus a
one-hot "mode" block over the column's K Gaussian modes, the mode k of each row SAMPLED from its
posterior under the mixture (from the caller's seeded rng). The modes come from the contract
(``modes:``, public knowledge, used verbatim) or are fitted to the already-charged DP histogram
by a weighted EM over the public bins (``fit_histogram_mixture``): pure post-processing, no extra
charge. The layout still comes from the contract alone: K is the number of declared modes, else
``max_modes``; learned modes that EM prunes keep their slot with weight 0 and are never encoded
or decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.stats import norm

from synthgate.models.ledger import PrivacyLedger
from synthgate.validation.contract import (
    BooleanColumn,
    CategoricalColumn,
    ContinuousColumn,
    Contract,
    DatetimeColumn,
    IntegerColumn,
)

MAX_BINS = 128
# Recording grids a value may sit on (``precision_level``), coarsest first: a continuous column's
# whole, half and decimal units, a datetime's day / hour / minute / second (epoch seconds). The level
# after the last is "finer than every grid". Integers need none: they decode to integers. Each step
# divides the one before it (``_on_grid`` counts a grid's own points as its multiples less the
# coarser step's). The half unit (session 15): half years of schooling, half points of a score.
PRECISION_STEPS = {"continuous": (1.0, 0.5, 0.1, 0.01, 0.001), "datetime": (86400.0, 3600.0, 60.0, 1.0)}
# Each row's one-hot precision level enters the codec's Gaussian mechanism scaled by this weight, so
# the profiles add w² per column to the squared L2 sensitivity (1/16: +0.6% of σ per column at 10
# columns) and carry noise σ / w rows: small beside the level counts, which are counts of all rows.
PRECISION_WEIGHT = 0.25
# Chance that a numeric column with no rows in its sparse bins keeps noise as mass (``_merged_mass``,
# ``_segment_mass``): a Bonferroni level over the column's bins.
FAMILY_ALPHA = 0.05
# The stricter level outside a numeric column's support (``_merged_mass``): the bins from the first to
# the last whose noisy count passes Φ⁻¹(1 − SUPPORT_ALPHA / bins)·σ.
SUPPORT_ALPHA = FAMILY_ALPHA / 10
# The numeric zoom (``Codec.zoom_plan``, ``Codec.zoom``): a column is zoomed when at most ZOOM_MAX_BINS of
# its non-point bins, each with ZOOM_PART, hold ZOOM_COVER of its DP mass off its point masses (the
# contract's bounds are far wider than its rows). A zoomed bin is cut into ZOOM_LINEAR equal sub-bins and,
# when it lies at zero (its end nearer zero is within its width of zero), also at geometric steps
# (``zoom_per_decade`` per decade) over ZOOM_DECADES decades towards that end, so that values of any
# scale inside it get sub-bins.
ZOOM_COVER = 0.5
ZOOM_MAX_BINS = 2
ZOOM_PART = 0.2  # of those bins, the ones with at least this share of the mass off the point masses
ZOOM_LINEAR = 64
ZOOM_DECADES = 16
# Geometric sub-bins per decade (``zoom_per_decade``): ZOOM_PER_SQRT_SNR·√(rows / σ), the zoomed bin's DP
# rows over the zoom's noise std, within [MIN, MAX]. Finer bins resolve more but leave more of a column to
# noise. On four simulated columns (lognormal, normal around 0, a spike at 0 then integers 1-59, integer
# ages; bounds 10⁶-10¹⁴ times wider than the rows; σ = 8.7 rows; 5 draws) the sum of KS distances with
# optimal segments was least at a fixed 8 per decade at 1,000 rows (rows/σ = 115) and 3,000 (345) and at
# 32 at 30,000 (3,450): 0.262, 0.102, 0.036; this rule gives 0.247, 0.105, 0.035. At rows/σ under ~10
# (modeldata::pd_speech: 252 rows, σ ≈ 36 at ε = 10) only a sub-bin per decade or two can pass the noise.
ZOOM_PER_SQRT_SNR = 0.75
ZOOM_MIN_PER_DECADE = 1
ZOOM_MAX_PER_DECADE = 32
# ``_segment_mass`` floors each bin's width relative to its stretch's mean at this (no suite contract has a
# bin this much narrower than its neighbours; a contract bounded by ±1e9 does, around its spikes)
MIN_SEGMENT_WIDTH = 1e-4
#: Learned mixture modes lighter than this are dropped (CTGAN's threshold).
MIN_MODE_WEIGHT = 0.005
NumericEncoding = Literal["quantile", "modes"]


@dataclass(frozen=True)
class Block:
    """A slice of the encoded vector: ``softmax`` (one-hot, width >= 2) or ``tanh`` (width 1).

    A ``mode`` block (``numeric_encoding="modes"`` only) is a softmax over a numeric column's
    mixture modes; it may have width 1 when the contract declares a single mode.
    """

    column: str
    kind: str  # "softmax" | "tanh"
    start: int
    width: int
    role: str  # "value" | "null" | "mode"


@dataclass(frozen=True)
class ModeMixture:
    """A numeric column's Gaussian mixture; one entry per slot of its mode block.

    A slot with ``weight == 0`` is unused (pruned by the fit): never encoded, never decoded.
    """

    weight: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.weight > 0

    def to_json(self) -> dict[str, list[float]]:
        return {"weight": self.weight.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, list[float]]) -> ModeMixture:
        return cls(*(np.asarray(d[k], dtype=np.float64) for k in ("weight", "mean", "std")))


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
    # zero-width (point-mass) bins of a continuous/datetime column: their values and bin indices
    point_values: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.float64))
    point_bins: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))


def _with_edges(spec: _NumericSpec, e_lo: np.ndarray, e_hi: np.ndarray) -> _NumericSpec:
    """``spec`` over the bins [e_lo, e_hi] (its zero-width bins its point masses)."""
    points = np.flatnonzero(e_lo == e_hi)
    return _NumericSpec(spec.name, spec.kind, spec.lo, spec.hi, spec.nullable, e_lo, e_hi, e_lo[points].copy(), points)


def zoom_per_decade(rows: float, sigma: float) -> int:
    """Geometric sub-bins per decade for a zoomed bin of ``rows`` (DP) rows at noise std ``sigma``:
    ``ZOOM_PER_SQRT_SNR``·√(rows / σ) within [``ZOOM_MIN_PER_DECADE``, ``ZOOM_MAX_PER_DECADE``]."""
    if sigma <= 0:
        return ZOOM_MAX_PER_DECADE
    k = round(ZOOM_PER_SQRT_SNR * math.sqrt(max(rows, 0.0) / sigma))
    return int(np.clip(k, ZOOM_MIN_PER_DECADE, ZOOM_MAX_PER_DECADE))


def zoom_edges(spec: _NumericSpec, b: int, per_decade: int = ZOOM_MAX_PER_DECADE) -> tuple[np.ndarray, np.ndarray]:
    """Public sub-bins of bin ``b`` of ``spec`` (see ZOOM_*): ``ZOOM_LINEAR`` equal ones and, for a bin at
    zero (not for datetimes), geometric cuts towards its end nearer zero, ``per_decade`` per decade of
    distance from that end over ``ZOOM_DECADES`` decades. An integer column's cuts are moved to
    half-integers (its values are whole) and every sub-bin holds at least one whole value. From the bin's
    edges alone, and ``per_decade`` from DP outputs (``zoom_per_decade``)."""
    a, z = float(spec.edges_lo[b]), float(spec.edges_hi[b])
    width = z - a
    if width <= 0:  # a point mass: nothing to cut
        return spec.edges_lo[b : b + 1].copy(), spec.edges_hi[b : b + 1].copy()
    cuts = [np.linspace(a, z, ZOOM_LINEAR + 1)]
    at_zero = (0.0 <= a <= width) or (0.0 >= z >= -width)
    if spec.kind != "datetime" and at_zero:
        anchor, sign = (a, 1.0) if a >= 0.0 else (z, -1.0)
        steps = np.arange(per_decade * ZOOM_DECADES + 1) / per_decade
        cuts.append(anchor + sign * width * 10.0 ** (-steps))
    c = np.concatenate(cuts)
    if spec.kind == "integer":  # half-integer cuts with a whole value on either side inside the bin
        c = np.floor(c) + 0.5
        c = c[(c - 0.5 >= a) & (c + 0.5 <= z)]
    c = np.unique(np.concatenate([[a, z], c[(c > a) & (c < z)]]))
    return c[:-1], c[1:]


@dataclass
class _DiscreteSpec:
    name: str
    kind: str  # categorical | boolean
    categories: list[Any]  # declared domain (+ None slot appended when nullable)
    nullable: bool


def spike_points(col: Any) -> np.ndarray:
    """A numeric column's public point masses: its bounds, 0 when within them, and its declared
    ``special_values`` (sorted, unique; datetimes in epoch seconds, bounds only)."""
    lo, hi = _epoch_seconds(col.min), _epoch_seconds(col.max)
    points = {lo, hi}
    if col.kind != "datetime":
        if lo <= 0.0 <= hi:
            points.add(0.0)
        points.update(float(v) for v in (getattr(col, "special_values", None) or []))
    return np.array(sorted(points), dtype=np.float64)


def _numeric_bins(kind: str, lo: float, hi: float, spikes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Public bin intervals for a numeric column, from its contract only.

    ``spikes`` (public point masses, see :func:`spike_points`) each get a bin of their own: for an
    integer column the unit bin [s - ½, s + ½], for a continuous or datetime one a zero-width bin
    [s, s] that holds exactly the rows equal to s. Its share of the DP histogram is then the share
    of rows at s, and decoding maps that whole share of the CDF back to s exactly, so a
    zero-inflated or top-coded column keeps its spike instead of smearing it over a bin's width.
    """
    spikes = np.array([], dtype=np.float64) if spikes is None else np.asarray(spikes, dtype=np.float64)
    if kind == "integer":
        n_values = int(hi - lo) + 1
        if n_values <= MAX_BINS:
            centres = np.arange(lo, hi + 1, dtype=np.float64)
            return centres - 0.5, centres + 0.5
        inner = np.linspace(lo + 0.5, hi - 0.5, MAX_BINS - 1)
        cuts = np.concatenate([[lo - 0.5], inner, [hi + 0.5], [lo + 0.5, hi - 0.5]])
        cuts = np.concatenate([cuts, spikes - 0.5, spikes + 0.5])
        edges = np.unique(cuts[(cuts >= lo - 0.5) & (cuts <= hi + 0.5)])
        return edges[:-1], edges[1:]
    edges = np.unique(np.concatenate([np.linspace(lo, hi, MAX_BINS + 1), spikes]))
    e_lo: list[float] = []
    e_hi: list[float] = []
    is_spike = set(spikes.tolist())
    for i, e in enumerate(edges):
        if e in is_spike:
            e_lo.append(e)
            e_hi.append(e)
        if i + 1 < len(edges):
            e_lo.append(e)
            e_hi.append(edges[i + 1])
    return np.array(e_lo), np.array(e_hi)


class Codec:
    """Row <-> vector mapping whose layout comes from the contract and CDFs from DP histograms.

    ``numeric_encoding``: "quantile" (default: one tanh slot per numeric, through the DP CDF) or
    "modes" (CTGAN's mode-specific normalisation, see the module docstring); ``max_modes`` is the
    width of a learned mode block.
    """

    def __init__(
        self, contract: Contract, *, numeric_encoding: NumericEncoding = "quantile", max_modes: int = 10
    ) -> None:
        if numeric_encoding not in ("quantile", "modes"):
            raise ValueError(f"numeric_encoding must be 'quantile' or 'modes'. Got {numeric_encoding!r}.")
        if isinstance(max_modes, bool) or not isinstance(max_modes, int) or max_modes < 1:
            raise ValueError(f"max_modes must be an integer >= 1. Got {max_modes!r}.")
        self.numeric_encoding = numeric_encoding
        self.max_modes = max_modes
        # Declared (public) mixtures, used verbatim; learned ones are filled by the fit.
        self._given_modes: dict[str, ModeMixture] = {}
        self.modes: dict[str, ModeMixture] = {}
        self.contract = contract
        self.numeric: list[_NumericSpec] = []
        self.discrete: list[_DiscreteSpec] = []
        self.blocks: list[Block] = []
        self.columns = contract.modelled_columns
        pos = 0
        for name in self.columns:
            col = contract.columns[name]
            if isinstance(col, CategoricalColumn | BooleanColumn):
                cats: list[Any] = list(col.categories) if isinstance(col, CategoricalColumn) else [False, True]
                if col.nullable:
                    cats.append(None)
                self.discrete.append(_DiscreteSpec(name, col.kind, cats, col.nullable))
                self.blocks.append(Block(name, "softmax", pos, len(cats), "value"))
                pos += len(cats)
            elif isinstance(col, IntegerColumn | ContinuousColumn | DatetimeColumn):
                lo, hi = _epoch_seconds(col.min), _epoch_seconds(col.max)
                e_lo, e_hi = _numeric_bins(col.kind, lo, hi, spike_points(col))
                points = np.flatnonzero(e_lo == e_hi)  # zero-width bins (continuous/datetime spikes)
                self.numeric.append(
                    _NumericSpec(name, col.kind, lo, hi, col.nullable, e_lo, e_hi, e_lo[points].copy(), points)
                )
                self.blocks.append(Block(name, "tanh", pos, 1, "value"))
                pos += 1
                if numeric_encoding == "modes":
                    declared = getattr(col, "modes", None)
                    if declared:
                        self._given_modes[name] = ModeMixture(
                            np.array([m.weight for m in declared], dtype=np.float64),
                            np.array([m.mean for m in declared], dtype=np.float64),
                            np.array([m.std for m in declared], dtype=np.float64),
                        )
                    k = len(declared) if declared else max_modes
                    self.blocks.append(Block(name, "softmax", pos, k, "mode"))
                    pos += k
                if col.nullable:
                    self.blocks.append(Block(name, "softmax", pos, 2, "null"))
                    pos += 2
        self.dim = pos
        self._block = {(b.column, b.role): b for b in self.blocks}
        # Filled by fit_dp (post-processed DP histograms) or fit_non_dp (exact ones).
        self.bin_mass: dict[str, np.ndarray] = {}
        self.null_rate: dict[str, float] = {}
        self.frequencies: dict[str, np.ndarray] = {}
        # the categorical columns' raw noisy counts and their noise std, as released by ``fit_dp``
        # (DP outputs), for pooling with later releases (models/marginals.py ``pool_one_way``); not
        # saved: a loaded codec has none
        self.released_counts: dict[str, np.ndarray] = {}
        self.released_sigma = 0.0
        self.n_estimate: float | None = None
        self.n_estimate_sd: float | None = None  # its noise's standard deviation (public: σ and the bins)
        # per continuous/datetime column: DP shares of the rows on each PRECISION_STEPS grid
        self.precision: dict[str, np.ndarray] = {}
        # numeric columns whose bins ``zoom`` cut finer than the contract's (their new bins are saved)
        self.zoomed: list[str] = []

    # ------------------------------------------------------------------ DP statistics
    @property
    def n_histograms(self) -> int:
        return len(self.columns)

    @property
    def _gridded(self) -> list[_NumericSpec]:
        return [spec for spec in self.numeric if spec.kind in PRECISION_STEPS]

    @property
    def sensitivity(self) -> float:
        """L2 sensitivity of the codec's one mechanism: a row's one-hot in every column's
        histogram, and its precision level (weight ``PRECISION_WEIGHT``) per gridded column."""
        return math.sqrt(self.n_histograms + PRECISION_WEIGHT**2 * len(self._gridded))

    def precision_histograms(self, df: pl.DataFrame) -> dict[str, np.ndarray]:
        """Exact counts of each gridded column's non-null values per precision level (private)."""
        out: dict[str, np.ndarray] = {}
        for spec in self._gridded:
            values, null = self._numeric_values(df, spec)
            levels = precision_level(values[~null], PRECISION_STEPS[spec.kind])
            out[spec.name] = np.bincount(levels, minlength=len(PRECISION_STEPS[spec.kind]) + 1).astype(np.float64)
        return out

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
        sigma = noise_multiplier * self.sensitivity
        grids = len(self._gridded)
        ledger.charge(
            "codec-histograms",
            noise_multiplier=noise_multiplier,
            sample_rate=1.0,
            steps=1,
            description=(
                f"Gaussian mechanism on {self.n_histograms} per-column histograms over public "
                f"bins and {grids} precision profiles at weight {PRECISION_WEIGHT} (L2 sensitivity "
                f"{self.sensitivity:.3f}, noise std {sigma:.1f} rows)"
            ),
        )
        exact = self.histograms(df)
        noisy = {k: v + rng.normal(0.0, sigma, size=v.shape) for k, v in exact.items()}
        levels = {k: _noisy_levels(v, sigma, rng) for k, v in self.precision_histograms(df).items()}
        self._set_statistics(noisy, sigma)
        self._set_precision(levels, sigma / PRECISION_WEIGHT)
        self.released_counts = {spec.name: noisy[spec.name] for spec in self.discrete}
        self.released_sigma = sigma

    def noise_bound_columns(self, sigma: float) -> list[str]:
        """Numeric columns whose fine histogram the noise swamps: an even share of the DP row estimate per
        non-point bin, n̂ / bins, would not pass the single-bin threshold τσ (``_merged_mass``'s τ), so
        every bin would be left to merged runs. Their fine masses come from ``_segment_mass`` instead
        (``_set_statistics``), and ``refine_dp`` may measure them again on coarse groups. Public: n̂ (DP),
        the contract's bins and the noise std ``sigma``."""
        n_hat = float(self.n_estimate or 0.0)
        out = []
        for spec in self.numeric:
            bins = len(spec.edges_lo) - len(spec.point_bins)
            tau = float(norm.ppf(1.0 - FAMILY_ALPHA / max(len(spec.edges_lo), 1)))
            if bins > 0 and n_hat / bins < tau * sigma:
                out.append(spec.name)
        return out

    def coarse_groups(self, column: str, groups: int) -> np.ndarray:
        """Group index of each fine bin: ``groups`` runs of consecutive non-point bins of equal count, each
        point-mass bin a group of its own (public: the contract's bins)."""
        spec = next(s for s in self.numeric if s.name == column)
        k = len(spec.edges_lo)
        points = np.zeros(k, dtype=bool)
        points[spec.point_bins] = True
        inner = np.flatnonzero(~points)
        out = np.empty(k, dtype=np.int64)
        g = max(1, min(groups, len(inner)))
        out[inner] = np.arange(len(inner)) * g // max(len(inner), 1)
        out[points] = g + np.arange(int(points.sum()))
        return out

    def refine_dp(
        self,
        df: pl.DataFrame,
        columns: list[str],
        groups: dict[str, int],
        *,
        ledger: PrivacyLedger,
        noise_multiplier: float,
        rng: np.random.Generator,
    ) -> None:
        """Measure ``columns``' non-null values again on coarse groups of their bins (``coarse_groups``),
        in one charged Gaussian mechanism (L2 sensitivity √len(columns): a row adds one count per
        column), and replace their fine bin masses with the groups' masses, spread inside each group
        as the codec's fine estimate spreads it there (by width where that has no mass). A group keeps
        its noisy count when it passes τσ (τ = Φ⁻¹(1 − FAMILY_ALPHA / groups)); the null rates are the
        codec's. Beyond the new counts, post-processing of the codec's released masses only. Meant for
        the columns ``noise_bound_columns`` names (ctgan's ``numeric_refine``; BENCHMARKS.md, "Round 2
        session 5")."""
        if not columns:
            return
        sigma = noise_multiplier * math.sqrt(len(columns))
        named = ", ".join(f"{c}: {groups[c]} groups" for c in columns[:10])
        if len(columns) > 10:
            named += f" and {len(columns) - 10} more"
        ledger.charge(
            "codec-coarse-histograms",
            noise_multiplier=noise_multiplier,
            sample_rate=1.0,
            steps=1,
            description=(
                f"Gaussian mechanism on coarse histograms of {len(columns)} numeric columns whose fine bins "
                f"the codec's noise swamps ({named}; "
                f"L2 sensitivity {math.sqrt(len(columns)):.3f}, noise std {sigma:.1f} rows)"
            ),
        )
        for name in columns:
            spec = next(s for s in self.numeric if s.name == name)
            group = self.coarse_groups(name, groups[name])
            values, null = self._numeric_values(df, spec)
            fine = np.bincount(self._bin_index(spec, values[~null]), minlength=len(spec.edges_lo))
            exact = np.bincount(group, weights=fine.astype(np.float64), minlength=int(group.max()) + 1)
            noisy = exact + rng.normal(0.0, sigma, size=exact.shape)
            tau = float(norm.ppf(1.0 - FAMILY_ALPHA / max(len(noisy), 1)))
            kept = np.where(noisy > tau * sigma, noisy, 0.0)
            if kept.sum() <= 0:  # all noise: keep the codec's estimate
                continue
            width = spec.edges_hi - spec.edges_lo
            before = np.asarray(self.bin_mass[name], dtype=np.float64)
            mass = np.zeros(len(spec.edges_lo))
            for g in np.flatnonzero(kept):
                bins = np.flatnonzero(group == g)
                # inside a group: the codec's fine shape where it put mass there, else spread by width
                w = before[bins] if before[bins].sum() > 0 else width[bins]
                mass[bins] = kept[g] * (w / w.sum() if w.sum() > 0 else np.full(len(bins), 1.0 / len(bins)))
            self.bin_mass[name] = mass / mass.sum()

    def zoom_plan(self) -> dict[str, list[int]]:
        """The bins ``zoom`` would cut finer, per numeric column: its largest (at most ``ZOOM_MAX_BINS``)
        non-point bins with at least ``ZOOM_PART`` each that together hold ``ZOOM_COVER`` of its released
        mass outside its point masses (zero-width bins, an integer's unit bins at its spikes), when so few
        do; bins that cannot be cut (an integer bin of one value) are left out. Read off ``bin_mass`` (DP
        outputs): post-processing.

        Why: a contract written from documentation often bounds a column far beyond its rows (a survey
        weight up to 60,000 whose rows mostly lie under 800; a feature bounded by ±10¹² because nobody
        knows its range). Its 128 equal bins then put most rows in one or two bins, inside which values
        decode uniformly: the column's shape, and every pair with it, is lost."""
        out: dict[str, list[int]] = {}
        for spec in self.numeric:
            mass = np.asarray(self.bin_mass.get(spec.name, []), dtype=np.float64)
            if mass.size != len(spec.edges_lo) or mass.sum() <= 0:
                continue
            width = spec.edges_hi - spec.edges_lo
            cuttable = width > (1.0 if spec.kind == "integer" else 0.0)
            cuttable[spec.point_bins] = False
            at_point = width <= 0
            if spec.kind == "integer":  # an integer's point masses are the unit bins at its spikes
                spikes = self._bin_index(spec, spike_points(self.contract.columns[spec.name]))
                at_point[spikes[width[spikes] <= 1.0]] = True
            spread = float(mass[~at_point].sum())  # the mass not at a point
            if spread <= 0:
                continue
            top = [int(i) for i in np.argsort(-mass, kind="stable") if cuttable[i]][:ZOOM_MAX_BINS]
            top = [i for i in top if mass[i] >= ZOOM_PART * spread]
            if top and mass[top].sum() >= ZOOM_COVER * spread:
                out[spec.name] = sorted(top)
        return out

    def zoom(
        self,
        df: pl.DataFrame,
        plan: dict[str, list[int]],
        *,
        ledger: PrivacyLedger,
        noise_multiplier: float | None,
        rng: np.random.Generator,
    ) -> None:
        """Cut the bins of ``plan`` (``zoom_plan``) into their ``zoom_edges`` and measure each column's rows
        there, all columns in one charged Gaussian mechanism (L2 sensitivity √len(plan): a row falls in at
        most one zoomed bin per column, so adds one count per column), or exactly with ``noise_multiplier``
        None (non-DP, recorded as such). A zoomed bin keeps its released mass, spread over its sub-bins
        (``zoom_edges``, ``zoom_per_decade`` from its DP row count and σ) as ``_segment_mass`` spreads the
        noisy sub-counts, each segment evenly over its sub-bins; where they are all noise it stays one bin.
        The null rates and other bins are the codec's. The new bins replace the contract's for encoding,
        decoding and everything after (they are saved with the state)."""
        if not plan:
            return
        k = len(plan)
        named = ", ".join(f"{c}: {len(b)} bin{'s' if len(b) > 1 else ''}" for c, b in list(plan.items())[:10])
        if k > 10:
            named += f" and {k - 10} more"
        if noise_multiplier is None:
            sigma = 0.0
            ledger.record_non_dp(
                "codec-zoom-non-dp",
                description=f"exact counts of {k} numeric columns inside their densest bins ({named}): NOT DP",
            )
        else:
            sigma = noise_multiplier * math.sqrt(k)
            ledger.charge(
                "codec-zoom-histograms",
                noise_multiplier=noise_multiplier,
                sample_rate=1.0,
                steps=1,
                description=(
                    f"Gaussian mechanism on finer histograms inside the densest bins of {k} numeric columns "
                    f"({named}; L2 sensitivity {math.sqrt(k):.3f}, noise std {sigma:.1f} rows)"
                ),
            )
        n_hat = float(self.n_estimate or 0.0)
        for name, bins in plan.items():
            i = next(j for j, s in enumerate(self.numeric) if s.name == name)
            spec = self.numeric[i]
            values, null = self._numeric_values(df, spec)
            values = values[~null]
            idx = self._bin_index(spec, values)
            before = np.asarray(self.bin_mass[name], dtype=np.float64)
            e_lo: list[np.ndarray] = []
            e_hi: list[np.ndarray] = []
            mass: list[np.ndarray] = []
            for b in range(len(spec.edges_lo)):
                sub = None
                if b in bins:
                    s_lo, s_hi = zoom_edges(spec, b, zoom_per_decade(before[b] * n_hat, sigma))
                    part = _with_edges(spec, s_lo, s_hi)
                    exact = np.bincount(self._bin_index(part, values[idx == b]), minlength=len(s_lo))
                    counts = exact + rng.normal(0.0, sigma, size=len(s_lo)) if sigma > 0 else exact.astype(float)
                    # optimal segments with a flat density per sub-bin: uniform in log value where the sub-bins
                    # are geometric, in value where they are equal
                    shares = _segment_mass(counts, sigma, part, uniform_fallback=False, spread=np.ones(len(s_lo)))
                    if shares.sum() > 0:
                        sub = (s_lo, s_hi, before[b] * shares)
                if sub is None:
                    sub = (spec.edges_lo[b : b + 1], spec.edges_hi[b : b + 1], before[b : b + 1])
                e_lo.append(sub[0])
                e_hi.append(sub[1])
                mass.append(sub[2])
            self.numeric[i] = _with_edges(spec, np.concatenate(e_lo), np.concatenate(e_hi))
            self.bin_mass[name] = np.concatenate(mass)
            if name not in self.zoomed:
                self.zoomed.append(name)
        if self.numeric_encoding == "modes":
            self._fit_modes()

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
        self._set_precision(self.precision_histograms(df), 0.0)

    def _set_precision(self, counts_by_column: dict[str, np.ndarray], sigma: float) -> None:
        """Each gridded column's shares of rows per precision level (post-processing).

        Levels whose noisy count is under 2σ are dropped; a column whose profile is all noise gets
        none (its values are left as decoded)."""
        self.precision = {}
        for name, counts in counts_by_column.items():
            kept = np.where(counts > 2.0 * sigma, counts, 0.0)
            if kept.sum() > 0:
                self.precision[name] = kept / kept.sum()

    def _set_statistics(self, counts_by_column: dict[str, np.ndarray], sigma: float) -> None:
        """Post-processing of the released histograms (noise std ``sigma`` rows, 0 if exact)."""
        noisy = counts_by_column
        self.n_estimate, self.n_estimate_sd = row_estimate(noisy, sigma)
        threshold = 2.0 * sigma  # drop bins indistinguishable from noise (post-processing)
        # where no bin can pass on its own (``noise_bound_columns``, from n̂ and public bins) the greedy
        # runs' ends are a random walk of the noise; there the bins are cut by optimal segments
        segmented = set(self.noise_bound_columns(sigma)) if sigma > 0 else set()
        for spec in self.discrete:
            self.frequencies[spec.name] = one_way_estimate(noisy[spec.name], self.n_estimate)
        for spec in self.numeric:
            counts = noisy[spec.name]
            if spec.nullable:
                null_count, counts = counts[-1], counts[:-1]
                total = max(counts.clip(min=0).sum() + max(null_count, 0.0), 1.0)
                self.null_rate[spec.name] = float(np.clip(null_count / total, 0.0, 1.0))
            if sigma <= 0:
                self.bin_mass[spec.name] = _normalise(counts, threshold)
            elif spec.name in segmented:
                self.bin_mass[spec.name] = _segment_mass(counts, sigma, spec)
            else:
                self.bin_mass[spec.name] = _merged_mass(counts, sigma, spec)
        if self.numeric_encoding == "modes":
            self._fit_modes()

    def _fit_modes(self) -> None:
        """Each numeric column's mixture: declared in the contract, else fitted to ``bin_mass``.

        Post-processing only: the fit reads nothing but the (already released) bin masses and
        the public bin edges, and is deterministic, so equal histograms give equal modes.
        """
        for spec in self.numeric:
            if spec.name in self._given_modes:
                self.modes[spec.name] = self._given_modes[spec.name]
            else:
                k = self._block[(spec.name, "mode")].width
                self.modes[spec.name] = fit_histogram_mixture(self.bin_mass[spec.name], spec.edges_lo, spec.edges_hi, k)

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
        idx = np.clip(np.searchsorted(spec.edges_hi, values, side="right"), 0, len(spec.edges_hi) - 1)
        for v, b in zip(spec.point_values, spec.point_bins, strict=True):
            idx[values == v] = b  # exactly at a spike: its point bin
        return idx

    def spike_shares(self, column: str) -> dict[float, float]:
        """A numeric column's point masses and their shares of the rows, from the DP histogram
        (post-processing): continuous/datetime zero-width bins, integer unit bins at a spike."""
        spec = next(s for s in self.numeric if s.name == column)
        col = self.contract.columns[column]
        mass = self.bin_mass[column]
        out = {}
        for v in spike_points(col):
            b = int(self._bin_index(spec, np.array([v]))[0])
            out[float(v)] = float(mass[b])
        return out

    def encode(self, df: pl.DataFrame, *, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        """Rows -> matrix (n, dim). Integers are dequantised with uniform jitter within their bin.

        float32 (for torch) cannot resolve a bin holding < ~1e-7 of the mass near u = 1, so
        such a value can come back a bin away; float64 round-trips exactly.
        """
        if not self.bin_mass and self.numeric:
            raise RuntimeError("Codec.encode needs fit_dp (or fit_non_dp) first: the CDFs come from the histograms.")
        if self.numeric_encoding == "modes":
            return self._encode_modes(df, rng=rng, dtype=dtype)
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
            if len(spec.point_bins):  # a spike's rows spread uniformly over its share of the CDF
                at = np.isin(idx, spec.point_bins)
                mass = self.bin_mass[spec.name]
                jitter = rng.uniform(size=n)
                u = np.where(at, np.clip(u + mass[idx] * jitter, 0.0, 1.0), u)
            b = self._block[(spec.name, "value")]
            out[:, b.start] = np.where(null, 0.0, 2.0 * u - 1.0)
            if spec.nullable:
                nb = self._block[(spec.name, "null")]
                out[np.arange(n), nb.start + null.astype(np.int64)] = 1.0
        return out

    def _encode_modes(self, df: pl.DataFrame, *, rng: np.random.Generator, dtype: type) -> np.ndarray:
        """encode() under "modes": α in the tanh slot, the posterior-sampled mode one-hot beside it."""
        n = df.height
        out = np.zeros((n, self.dim), dtype=dtype)
        rows = np.arange(n)
        for spec in self.discrete:
            b = self._block[(spec.name, "value")]
            out[rows, b.start + self._discrete_codes(df, spec)] = 1.0
        for spec in self.numeric:
            values, null = self._numeric_values(df, spec)
            if spec.kind == "integer":  # dequantise as the histogram's bins assume
                values = values + rng.uniform(-0.5, 0.5, size=n)
            mix = self.modes[spec.name]
            with np.errstate(divide="ignore"):
                log_w = np.log(mix.weight)
            z = (values[:, None] - mix.mean) / mix.std
            logp = log_w - np.log(mix.std) - 0.5 * z * z
            # A null row has no value: its mode slot is drawn from the prior (the mode weights).
            logp = np.where(null[:, None], log_w, logp)
            post = np.exp(logp - logp.max(axis=1, keepdims=True))
            post /= post.sum(axis=1, keepdims=True)
            u = rng.uniform(size=n)
            k = (np.cumsum(post, axis=1) < u[:, None]).sum(axis=1)
            last_valid = int(np.flatnonzero(mix.valid)[-1])
            k = np.minimum(k, last_valid)  # rounding of the cumulative sum at its top
            alpha = np.clip((values - mix.mean[k]) / (4.0 * mix.std[k]), -1.0, 1.0)
            b = self._block[(spec.name, "value")]
            out[:, b.start] = np.where(null, 0.0, alpha)
            mb = self._block[(spec.name, "mode")]
            out[rows, mb.start + k] = 1.0
            if spec.nullable:
                nb = self._block[(spec.name, "null")]
                out[rows, nb.start + null.astype(np.int64)] = 1.0
        return out

    def _decode_value(self, spec: _NumericSpec, x: np.ndarray) -> np.ndarray:
        """A numeric column's value (float, within bounds) from its encoded slots."""
        b = self._block[(spec.name, "value")]
        if self.numeric_encoding == "modes":
            mix = self.modes[spec.name]
            mb = self._block[(spec.name, "mode")]
            scores = np.where(mix.valid, x[:, mb.start : mb.start + mb.width].astype(np.float64), -np.inf)
            k = scores.argmax(axis=1)
            alpha = np.clip(x[:, b.start].astype(np.float64), -1.0, 1.0)
            return np.clip(4.0 * mix.std[k] * alpha + mix.mean[k], spec.lo, spec.hi)
        u = np.clip((x[:, b.start].astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
        return np.clip(self._inverse_cdf(spec, u), spec.lo, spec.hi)

    def _decoded_bin_edges(self, spec: _NumericSpec, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per decoded row, the interval ``_on_grid`` keeps its value in: the extent of the released
        cell (``mass_cells``: a bin, or a run of sparse bins released as one noisy sum) that
        ``_inverse_cdf`` drew it from, so rounding moves no mass across what was measured ("quantile");
        the column's bounds ("modes": no bins). Inside a run, how the mass falls between its bins is
        an assumption (spread by width), so the run's whole extent is the value's interval."""
        if self.numeric_encoding != "quantile":
            return np.full(n, spec.lo), np.full(n, spec.hi)
        b = self._block[(spec.name, "value")]
        idx = self._inverse_bin(spec, np.clip((x[:, b.start].astype(np.float64) + 1.0) / 2.0, 0.0, 1.0))
        cell, masses = self.mass_cells(spec.name)
        inside = cell >= 0
        cell_lo = np.full(len(masses), np.inf)
        cell_hi = np.full(len(masses), -np.inf)
        np.minimum.at(cell_lo, cell[inside], spec.edges_lo[inside])
        np.maximum.at(cell_hi, cell[inside], spec.edges_hi[inside])
        # a drawn bin always has mass (``_inverse_bin``), so it is in a cell
        lo = np.where(cell[idx] >= 0, cell_lo[np.maximum(cell[idx], 0)], spec.edges_lo[idx])
        hi = np.where(cell[idx] >= 0, cell_hi[np.maximum(cell[idx], 0)], spec.edges_hi[idx])
        return np.maximum(lo, spec.lo), np.minimum(hi, spec.hi)

    def value_quantiles(self, column: str, m: int = 1024) -> np.ndarray:
        """``m`` sorted quantiles of a numeric column's encoded tanh value implied by the DP
        statistics alone (post-processing): a target for a generator's marginal loss.

        "quantile": the uniform grid on [-1, 1]. "modes": the distribution of α when values
        follow ``bin_mass`` and each value's mode is drawn from its posterior.
        """
        spec = next((s for s in self.numeric if s.name == column), None)
        if spec is None:
            raise ValueError(f"{column!r} is not a numeric column of the codec: {[s.name for s in self.numeric]}.")
        grid = (np.arange(m) + 0.5) / m
        if self.numeric_encoding == "quantile":
            return 2.0 * grid - 1.0
        values = self._inverse_cdf(spec, grid)
        mix = self.modes[column]
        with np.errstate(divide="ignore"):
            log_w = np.log(mix.weight)
        z = (values[:, None] - mix.mean) / mix.std
        logp = log_w - np.log(mix.std) - 0.5 * z * z
        post = np.exp(logp - logp.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        alpha = np.clip((values[:, None] - mix.mean) / (4.0 * mix.std), -1.0, 1.0).ravel()
        order = np.argsort(alpha, kind="stable")
        cum = np.cumsum(post.ravel()[order]) / m
        return alpha[order][np.clip(np.searchsorted(cum, grid), 0, len(order) - 1)]

    def _cdf(self, spec: _NumericSpec, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        mass = self.bin_mass[spec.name]
        cum = np.concatenate([[0.0], np.cumsum(mass)])
        width = spec.edges_hi[idx] - spec.edges_lo[idx]
        w = np.clip((values - spec.edges_lo[idx]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
        return np.clip(cum[idx] + mass[idx] * w, 0.0, 1.0)

    def _inverse_bin(self, spec: _NumericSpec, u: np.ndarray) -> np.ndarray:
        """The bin ``_inverse_cdf`` decodes each CDF position ``u`` into."""
        mass = self.bin_mass[spec.name]
        cum = np.cumsum(mass)
        # Only bins with DP mass can be drawn: the first such bin whose CDF passes u.
        nonzero = np.flatnonzero(mass > 0)
        return nonzero[np.clip(np.searchsorted(cum[nonzero], u, side="right"), 0, len(nonzero) - 1)]

    def _inverse_cdf(self, spec: _NumericSpec, u: np.ndarray) -> np.ndarray:
        mass = self.bin_mass[spec.name]
        cum = np.cumsum(mass)
        idx = self._inverse_bin(spec, u)
        start = cum[idx] - mass[idx]
        w = np.clip((u - start) / np.where(mass[idx] > 0, mass[idx], 1.0), 0.0, 1.0)
        return spec.edges_lo[idx] + w * (spec.edges_hi[idx] - spec.edges_lo[idx])

    def mass_cells(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """A numeric column's DP histogram as the cells it was released in: (cell of each bin, -1 for a
        bin without mass; mass of each cell).

        ``_merged_mass`` releases a run of sparse bins as one noisy sum spread over the run in
        proportion to the bins' widths, so how the mass falls inside a run is an assumption, not a
        measurement; the run is one cell. Runs are read back from the masses (consecutive bins of
        positive width and equal density: two separately released bins have equal density only by
        accident, and merging them then loses nothing measured). Post-processing of ``bin_mass``.
        """
        spec = next((s for s in self.numeric if s.name == column), None)
        if spec is None:
            raise ValueError(f"{column!r} is not a numeric column of the codec: {[s.name for s in self.numeric]}.")
        mass = np.asarray(self.bin_mass[column], dtype=np.float64)
        width = spec.edges_hi - spec.edges_lo
        density = np.where(width > 0, mass / np.where(width > 0, width, 1.0), np.nan)
        cell = np.full(len(mass), -1, dtype=np.int64)
        k = -1
        for i in range(len(mass)):
            if mass[i] <= 0:
                continue
            same = (
                i > 0
                and cell[i - 1] >= 0
                and width[i] > 0
                and width[i - 1] > 0
                and math.isclose(density[i], density[i - 1], rel_tol=1e-9)
            )
            if not same:
                k += 1
            cell[i] = k
        return cell, np.bincount(cell[cell >= 0], weights=mass[cell >= 0], minlength=k + 1)

    def encoded_cells(self, column: str, x: np.ndarray) -> np.ndarray:
        """The ``mass_cells`` cell that ``decode`` puts each encoded row's value of ``column`` in
        (quantile encoding; null rows get the cell their value slot would decode to)."""
        if self.numeric_encoding != "quantile":
            raise ValueError(f"encoded_cells needs the quantile encoding; this codec uses {self.numeric_encoding!r}.")
        spec = next(s for s in self.numeric if s.name == column)
        b = self._block[(column, "value")]
        u = np.clip((x[:, b.start].astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
        cell, _ = self.mass_cells(column)
        return cell[self._inverse_bin(spec, u)]

    def decode(self, x: np.ndarray, rng: np.random.Generator | None = None) -> pl.DataFrame:
        """Matrix (n, dim) -> rows that obey the contract (domains, bounds, nullability).

        With ``rng`` (the public sampling stream), each continuous or datetime value is put on a
        recording grid drawn from its column's DP precision profile (``self.precision``), weighted
        by the grid's points inside the value's released cell (``_on_grid``): a column whose rows
        are 98% whole numbers comes out 98% whole numbers, as a detector would otherwise notice,
        and a column of whole and half years on its whole and half years. Without it, or without
        a profile, values are left as decoded."""
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
            v = self._decode_value(spec, x)
            if rng is not None and spec.name in self.precision:
                lo, hi = self._decoded_bin_edges(spec, x, len(v))
                grids = PRECISION_STEPS[spec.kind]
                v = _on_grid(v, self.precision[spec.name], grids, lo, hi, rng, bounds=(spec.lo, spec.hi))
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
        """JSON-able statistics (DP outputs only). "modes" codecs add their mixtures."""
        out: dict[str, Any] = {
            "bin_mass": {k: v.tolist() for k, v in self.bin_mass.items()},
            "null_rate": dict(self.null_rate),
            "frequencies": {k: v.tolist() for k, v in self.frequencies.items()},
            "n_estimate": self.n_estimate,
            "n_estimate_sd": self.n_estimate_sd,
            "precision": {k: v.tolist() for k, v in self.precision.items()},
        }
        if self.zoomed:  # DP outputs: which bins were cut is read off the released masses
            spec_of = {s.name: s for s in self.numeric}
            out["bins"] = {n: [spec_of[n].edges_lo.tolist(), spec_of[n].edges_hi.tolist()] for n in self.zoomed}
        if self.numeric_encoding == "modes":
            out["numeric_encoding"] = "modes"
            out["modes"] = {k: m.to_json() for k, m in self.modes.items()}
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``. A "modes" codec given a state without modes (saved before modes
        were persisted) refits them from the bin masses: deterministic, so the same mixtures."""
        saved = state.get("numeric_encoding", "quantile")
        if saved != self.numeric_encoding:
            raise ValueError(
                f"the codec state was saved with numeric_encoding={saved!r} but this codec uses "
                f"{self.numeric_encoding!r}. Build the codec with numeric_encoding={saved!r}."
            )
        self.bin_mass = {k: np.asarray(v) for k, v in state["bin_mass"].items()}
        # saved before precision profiles existed: values decode as before, off any grid
        self.precision = {k: np.asarray(v) for k, v in state.get("precision", {}).items()}
        for spec in self._gridded:
            p = self.precision.get(spec.name)
            if p is None:
                continue
            if spec.kind == "continuous" and len(p) == len(PRECISION_STEPS["continuous"]):
                # saved before the half-unit grid (round 2, session 15): levels 1, 0.1, 0.01, 0.001, none
                p = self.precision[spec.name] = np.insert(p, 1, 0.0)
            if len(p) != len(PRECISION_STEPS[spec.kind]) + 1:
                raise ValueError(
                    f"the saved precision profile of {spec.name!r} has {len(p)} levels; this version's "
                    f"{spec.kind} grids {PRECISION_STEPS[spec.kind]} need {len(PRECISION_STEPS[spec.kind]) + 1}. "
                    "Refit the model with this version."
                )
        self.zoomed = []
        for i, spec in enumerate(self.numeric):
            if spec.name in state.get("bins", {}):  # zoomed: the bins it was released with
                e_lo, e_hi = (np.asarray(v, dtype=np.float64) for v in state["bins"][spec.name])
                if not (len(e_lo) == len(e_hi) == len(self.bin_mass.get(spec.name, []))):
                    raise ValueError(
                        f"the saved bins of {spec.name!r} ({len(e_lo)}) do not match its saved histogram "
                        f"({len(self.bin_mass.get(spec.name, []))} masses): the state is damaged. Save it again."
                    )
                self.numeric[i] = _with_edges(spec, e_lo, e_hi)
                self.zoomed.append(spec.name)
                continue
            saved_bins = len(self.bin_mass.get(spec.name, spec.edges_lo))
            if saved_bins == len(spec.edges_lo):
                continue
            # A model saved before spikes had their own bins: its histogram used the plain bins.
            e_lo, e_hi = _numeric_bins(spec.kind, spec.lo, spec.hi)
            if saved_bins != len(e_lo):
                raise ValueError(
                    f"the saved histogram of {spec.name!r} has {saved_bins} bins but this contract gives "
                    f"{len(spec.edges_lo)}: the state comes from another contract. Load it with the "
                    "contract it was released with."
                )
            self.numeric[i] = _NumericSpec(spec.name, spec.kind, spec.lo, spec.hi, spec.nullable, e_lo, e_hi)
        self.null_rate = dict(state["null_rate"])
        self.frequencies = {k: np.asarray(v) for k, v in state["frequencies"].items()}
        self.n_estimate = state["n_estimate"]
        self.n_estimate_sd = state.get("n_estimate_sd")  # None: saved before it was kept
        if self.numeric_encoding == "modes":
            if "modes" in state:
                self.modes = {k: ModeMixture.from_json(v) for k, v in state["modes"].items()}
                for name, mix in self.modes.items():
                    width = self._block[(name, "mode")].width
                    if len(mix.weight) != width:
                        raise ValueError(
                            f"the saved mixture of {name!r} has {len(mix.weight)} modes but the "
                            f"codec's mode block has {width} slots: the state comes from another "
                            "contract or max_modes. Load it with the settings it was saved with."
                        )
            else:
                self._fit_modes()


def _noisy_levels(exact: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A precision profile's counts through the codec's mechanism: the counts enter at weight
    ``PRECISION_WEIGHT`` and get the mechanism's noise std ``sigma``; dividing by the weight
    afterwards is post-processing (noise std ``sigma / PRECISION_WEIGHT`` in rows)."""
    return (PRECISION_WEIGHT * exact + rng.normal(0.0, sigma, size=exact.shape)) / PRECISION_WEIGHT


def precision_level(values: np.ndarray, steps: tuple[float, ...]) -> np.ndarray:
    """Index of the coarsest grid in ``steps`` each value lies on (``len(steps)``: none of them).

    A value is on the grid of step ``s`` when ``value / s`` is within 1e-6 of an integer (plus
    float64 rounding at its magnitude), so 55.4 is on the 0.1 grid despite its binary
    representation."""
    out = np.full(len(values), len(steps), dtype=np.int64)
    for k in range(len(steps) - 1, -1, -1):
        q = values / steps[k]
        on = np.abs(q - np.rint(q)) <= 1e-6 + 1e-12 * np.abs(q)
        out[on] = k
    return out


def _grid_weights(share: np.ndarray, steps: tuple[float, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(rows, levels): how many of each level's rows an interval [lo_i, hi_i] should hold, up to a
    factor (``_on_grid``): ``share[k]`` × the own points of ``steps[k]`` in it × the length each
    stands for; the last level ``share[-1]`` × the interval's width."""
    weight = np.empty((len(lo), len(share)))
    coarser = np.zeros(len(lo))  # multiples of the coarser step in each interval (none above the first)
    for k, step in enumerate(steps):
        multiples = np.maximum(np.floor(hi / step + 1e-9) - np.ceil(lo / step - 1e-9) + 1.0, 0.0)
        per_point = 1.0 / (1.0 / step - (1.0 / steps[k - 1] if k else 0.0))
        weight[:, k] = share[k] * (multiples - coarser) * per_point
        coarser = multiples
    weight[:, -1] = share[-1] * np.maximum(hi - lo, 0.0)
    return weight


def _on_grid(
    values: np.ndarray,
    shares: np.ndarray,
    steps: tuple[float, ...],
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Put each value on a recording grid drawn from the DP profile ``shares`` given its interval
    [lo_i, hi_i] (its released cell: ``Codec._decoded_bin_edges``), at the nearest point of that grid
    inside the interval; the last level ("on no grid") leaves the value as decoded.

    Level k's rows are the values whose coarsest grid is ``steps[k]``: they sit on its *own* points,
    the multiples of ``steps[k]`` that are not multiples of the coarser step (each step of a ladder
    divides the one before it). If each level's rows are spread along the column like the rest, the
    rows of level k that fall in an interval are proportional to ``shares[k]`` × (its own points in
    the interval) × (the length each own point stands for, 1 / (1/steps[k] − 1/steps[k−1])), and
    the unrounded level's to ``shares[-1]`` × the interval's width (``_grid_weights``). A row draws
    its level from these weights: in a cell much wider than the steps they are ``shares`` (the
    profile's own proportions), and in a narrow cell the grids it holds points of take it. A value
    decoded in the bin (10.43, 10.66) of a column of whole and half years goes to 10.5, never to 10
    or 11 (out of the bin the DP histogram put it in). A cell that holds no point of any grid with a
    share (a bin between two grid points, given mass by the noise) is widened to ``bounds`` (the
    column's): its rows go to the nearest point of a grid drawn from ``shares``, as every row did
    before session 15. Post-processing of the DP profile and bins; one public uniform per row."""
    n, levels = len(values), len(shares)
    if levels != len(steps) + 1:
        raise ValueError(f"a precision profile over {len(steps)} grids has {len(steps) + 1} levels; got {levels}.")
    share = np.asarray(shares, dtype=np.float64)
    lo, hi = np.asarray(lo, dtype=np.float64).copy(), np.asarray(hi, dtype=np.float64).copy()
    weight = _grid_weights(share, steps, lo, hi)
    empty = ~(weight.sum(axis=1) > 0)
    if bounds is not None and empty.any():
        lo[empty], hi[empty] = bounds
        weight[empty] = _grid_weights(share, steps, lo[empty], hi[empty])
    total = weight.sum(axis=1)
    cum = np.cumsum(weight, axis=1)
    level = np.minimum((cum < (rng.random(n) * total)[:, None]).sum(axis=1), levels - 1)
    level = np.where(total > 0, level, levels - 1)  # no grid with a share has a point here: leave it
    out = values.copy()
    offsets = np.arange(-2, 4)
    for k, step in enumerate(steps):
        rows = np.flatnonzero(level == k)
        if not len(rows):
            continue
        v = values[rows]
        # the own points nearest v: within two steps of it whenever the interval holds one
        cand = (np.floor(v / step)[:, None] + offsets[None, :]) * step
        ok = (cand >= lo[rows, None] - 1e-9 * step) & (cand <= hi[rows, None] + 1e-9 * step)
        if k:
            q = cand / steps[k - 1]  # not a coarser grid's point (``precision_level``'s tolerance)
            ok &= np.abs(q - np.rint(q)) > 1e-6 + 1e-12 * np.abs(q)
        dist = np.where(ok, np.abs(cand - v[:, None]), np.inf)
        best = dist.argmin(axis=1)
        # the grid point as its decimal reads (12 × 0.1 is 1.2000000000000002, not the 1.2 of the table)
        point = np.round(cand[np.arange(len(rows)), best], _decimals(step))
        out[rows] = np.where(np.isfinite(dist.min(axis=1)), point, v)
    return out


def _decimals(step: float) -> int:
    """The fewest decimals that write ``step`` exactly (0.5 → 1, 0.01 → 2, 60 → 0; at most 12)."""
    return next((d for d in range(13) if round(step, d) == step), 12)


def _merged_mass(
    counts: np.ndarray,
    sigma: float,
    spec: _NumericSpec,
    tau: float | None = None,
    tau_outside: float | None = None,
) -> np.ndarray:
    """Bin masses from a numeric column's noisy counts (noise std ``sigma``), merging sparse bins.

    ``tau`` defaults to ``Φ⁻¹(1 - FAMILY_ALPHA / bins)``: a column of empty bins keeps no mass
    with probability about 1 - ``FAMILY_ALPHA`` (3.36 at 128 bins). At a fixed 2, each empty bin
    (and each run of them) had a 2.3% chance of keeping 2-3σ of noise as rows; over a long empty
    tail (AER::CPS1988 ``wage``, bounds 0-25,000 and 99.9% of rows under 3,730) that put
    124-169 of 19,709 synthetic rows above 3,730 where the real table has 20, and made the
    train-on-synthetic regression's R² swing between seeds.

    A bin whose noisy count is under ``tau``·σ is mostly noise. Zeroing it (the rule for dense
    tables) zeroes most of a spread-out column of a few thousand rows and leaves the uniform
    fallback. Instead, consecutive sparse bins are merged left to right into a run until the run's
    noisy sum passes ``tau``·σ·√(run length), the same threshold for a sum of that many noisy counts;
    the run's mass is spread over its bins in proportion to their widths. A bin that passes on its
    own stays its own cell, so a dense bin is never smeared over its sparse neighbours. A run cut
    short by a dense bin, a point mass, the end or the support's edge keeps its sum only if that
    passes the same ``tau``·σ·√(length). Zero-width (point-mass) bins stay their own cell.

    The support. ``FAMILY_ALPHA`` still left a spurious bin in a few percent of columns: on cps1988
    ``wage`` at ε = 1 (σ = 28 rows), 4.0% of noise draws put more than 2 × the real rows + 20 above
    the real 99.9th percentile (``benchmarks/sparse_bins.py``): one bin of ~τσ rows at a value the
    table never holds. 3 of 36 suite fits had such a tail and a TSTR R² of −0.35 to 0.18 (the others
    0.26-0.28). Contracts written from documentation declare bounds far wider than the data, so most
    of a column's bins are often empty. So the bins outside
    the *support* (from the first to the last bin, point bins included, whose noisy count passes
    ``tau_outside``·σ, ``tau_outside`` defaulting to ``Φ⁻¹(1 − SUPPORT_ALPHA / bins)``, 3.96 at 128
    bins) are held to ``tau_outside``, alone and in runs, and no run crosses the support's edge.
    Inside it, ``tau`` as before. A column with no such bin (a spread-out column of few rows) has the
    whole range as its support. On cps1988 ``wage`` that share falls from 4.0% to 0.5% (ε = 1) and
    from 4.0% to 1.0% (ε = 10), and over the 23 numeric columns of the five large suite tables at ε = 1,
    3 and 10 from 3.8% on average (at most 15%) to 1.2% (at most 4.5%); the price is real sparse mass
    outside the support kept less often (KS at the bins 0.0109 → 0.0115 on average, −0.002 to +0.007;
    Adult ``capital-gain`` 0.0149 → 0.0163 at ε = 1). Paired suite fits moved column shapes
    and pair trends by at most ±0.002 (``benchmarks/sparse_bins.py``;
    BENCHMARKS.md, "Round 2 session 8"). Post-processing of the released counts and the public
    widths only.
    """
    counts = np.asarray(counts, dtype=np.float64)
    bins = max(len(counts), 1)
    if tau is None:
        tau = float(norm.ppf(1.0 - FAMILY_ALPHA / bins))
    if tau_outside is None:
        tau_outside = max(tau, float(norm.ppf(1.0 - SUPPORT_ALPHA / bins)))
    strong = np.flatnonzero(counts > tau_outside * sigma)
    lo, hi = (int(strong[0]), int(strong[-1])) if strong.size else (0, len(counts) - 1)
    width = spec.edges_hi - spec.edges_lo
    points = set(spec.point_bins.tolist())
    mass = np.zeros(len(counts))
    run: list[int] = []
    total = 0.0
    level = tau

    def emit(bins_: list[int], amount: float) -> None:
        w = width[bins_]
        mass[bins_] = amount * (w / w.sum() if w.sum() > 0 else np.full(len(bins_), 1.0 / len(bins_)))

    def flush() -> None:
        nonlocal run, total
        if run and total > level * sigma * math.sqrt(len(run)):
            emit(run, total)
        run, total = [], 0.0

    for i, c in enumerate(counts):
        if i in (lo, hi + 1):  # the support's edges: a run ends there, at the level it was built at
            flush()
        level = tau if lo <= i <= hi else tau_outside
        if i in points or c > level * sigma:
            flush()
            mass[i] = c if c > level * sigma else 0.0
            continue
        run.append(i)
        total += float(c)
        if total > level * sigma * math.sqrt(len(run)):
            emit(run, total)
            run, total = [], 0.0
    flush()
    if mass.sum() <= 0:  # all noise: fall back to the public, data-free uniform
        return np.full(len(counts), 1.0 / len(counts))
    return mass / mass.sum()


def _segment_mass(
    counts: np.ndarray,
    sigma: float,
    spec: _NumericSpec,
    tau: float | None = None,
    penalty: float | None = None,
    *,
    uniform_fallback: bool = True,
    spread: np.ndarray | None = None,
) -> np.ndarray:
    """Bin masses from a numeric column's noisy counts (noise std ``sigma``): the best piecewise-constant
    density over the public bins, its segments chosen by penalised least squares, not left to right.

    ``_merged_mass`` merges sparse bins greedily from the left until a run's noisy sum passes a
    threshold. Where no bin passes on its own (a few thousand rows over 83-128 bins at a small ε) the
    whole column is such runs, and where each one ends is a random walk of the noise: on
    survival::colon at ε = 1 (σ ≈ 40 rows per bin, ~1,300 rows) one draw put every age in 58-66,
    another every time in 0-1,270 (real median 1,868), and the column shapes, and every pair with
    those columns, swung between fits (BENCHMARKS.md, "Round 2 session 5").

    Here the bins (between point-mass bins) are cut into segments by exact dynamic programming
    (optimal partitioning; Jackson et al. 2005): the partition minimises the residual sum of squares
    of counts ≈ density × width within each segment plus ``penalty``·σ² per segment, ``penalty``
    defaulting to 2·ln(bins) (a BIC-like price: a cut must explain more than noise would by
    chance). A segment keeps its noisy sum, spread over its bins by width, when the sum passes
    ``tau``·σ·√(its length), ``tau`` the family-wise threshold of ``_merged_mass`` (so empty tails stay
    empty as often as there). Zero-width (point-mass) bins stay their own cell, thresholded at
    ``tau``·σ. On simulated columns (1,300 rows, σ = 40, 83-128 bins; five shapes) the error in 10
    equal-width bins fell from 0.36 (greedy runs) to 0.29-0.33 in total variation; at 30,000 rows it
    is unchanged (0.009). Post-processing of the released counts and the public widths only.

    The codec's estimator for noise-bound columns (``noise_bound_columns``: no bin can pass on its own,
    so greedy runs would cover the whole column), since round 2 session 8; ``_merged_mass`` keeps the
    others. Session 5's pre-registered comparison on colon (6 fits, before ``refine_dp`` existed) did
    not adopt it (ε = 3 TSTR −0.009). With ``refine_dp`` spreading each coarse group's mass as this
    estimate spreads it, 12 paired fits per ε on colon (same DP noise in both arms) gave column shapes
    +0.0057 / +0.0025 / +0.0035 and pair trends +0.0040 / +0.0045 / +0.0054 at ε = 1 / 3 / 10, TSTR
    −0.0002 / +0.0010 / −0.0001; unpaired, every colon ε = 1 fit of sessions 7-8 pooled (48 against
    36), TSTR −0.006 ± 0.004 with shapes +0.003 (BENCHMARKS.md, "Round 2 session 8"). On the dense columns of the large suite tables it was
    not adopted: it merges neighbouring dense bins of similar counts, which smooths equal-width
    continuous bins (diamonds ``price``: KS at the bins 0.021 → 0.010) but flattens spiky integer
    columns (Adult ``hours-per-week`` 0.020 → 0.022); in paired suite fits (3 per cell) it moved
    column shapes by −0.0008 to +0.0027 (Adult down at ε = 1 and 3, nassCDS up) and pair trends by
    −0.0010 to +0.0012: no consistent gain.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if tau is None:
        tau = float(norm.ppf(1.0 - FAMILY_ALPHA / max(len(counts), 1)))
    if penalty is None:
        penalty = 2.0 * math.log(max(len(counts), 2))
    # ``spread``: the bins' sizes in the space where a segment's density is flat (default: their widths)
    width = spec.edges_hi - spec.edges_lo if spread is None else np.asarray(spread, dtype=np.float64)
    points = set(spec.point_bins.tolist())
    mass = np.zeros(len(counts))
    stretch: list[int] = []

    def cut(bins: list[int]) -> None:
        """Optimal segments of consecutive non-point bins ``bins`` (O(len²) vectorised)."""
        y = counts[bins]
        w = np.where(width[bins] > 0, width[bins], 1.0)
        # relative widths floored at MIN_SEGMENT_WIDTH: a segment's Σw² is a difference of cumulative sums,
        # which is rounding error for a unit bin among bins ten million wide (an integer bounded by ±1e9)
        w = np.maximum(w / w.mean(), MIN_SEGMENT_WIDTH)
        syw = np.concatenate([[0.0], np.cumsum(y * w)])
        sww = np.concatenate([[0.0], np.cumsum(w * w)])
        m = len(bins)
        best = np.zeros(m + 1)
        start = np.zeros(m + 1, dtype=np.int64)
        price = penalty * sigma * sigma
        for j in range(1, m + 1):
            starts = np.arange(j)
            cost = best[starts] - (syw[j] - syw[starts]) ** 2 / (sww[j] - sww[starts]) + price
            k = int(np.argmin(cost))
            best[j], start[j] = cost[k], k
        j = m
        while j > 0:
            first = int(start[j])
            seg = bins[first:j]
            total = float(counts[seg].sum())
            if total > tau * sigma * math.sqrt(len(seg)):
                sw = width[seg]
                mass[seg] = total * (sw / sw.sum() if sw.sum() > 0 else np.full(len(seg), 1.0 / len(seg)))
            j = first

    for i, c in enumerate(counts):
        if i in points:
            if stretch:
                cut(stretch)
            stretch = []
            mass[i] = c if c > tau * sigma else 0.0
            continue
        stretch.append(i)
    if stretch:
        cut(stretch)
    if mass.sum() <= 0:  # all noise: the public, data-free uniform (zeros if the caller has its own fallback)
        return np.full(len(counts), 1.0 / len(counts)) if uniform_fallback else mass
    return mass / mass.sum()


def project_to_simplex(y: np.ndarray, total: float = 1.0) -> np.ndarray:
    """Euclidean projection of ``y`` onto {x ≥ 0, Σx = total} (sort-based; Held et al. 1974)."""
    flat = np.asarray(y, dtype=np.float64).ravel()
    u = np.sort(flat)[::-1]
    css = np.cumsum(u) - total
    k = np.arange(1, len(u) + 1)
    rho = np.nonzero(u - css / k > 0)[0][-1]
    theta = css[rho] / (rho + 1)
    return np.maximum(flat - theta, 0.0).reshape(np.shape(y))


def row_estimate(noisy: dict[str, np.ndarray], sigma: float) -> tuple[float, float]:
    """The DP row count n̂ from every column's noisy histogram (noise std ``sigma`` per count), and its std.

    Each column's unclipped total is unbiased for n, with noise variance σ² × its bins. Their
    inverse-variance mean weighs a column by 1 / its bins, so a two-category column counts 64 times a
    128-bin numeric one. The plain mean of K totals (before session 16) had std σ·√(Σ bins) / K: on
    AER::HMDA (10 categorical columns of 2-6 categories, 4 numeric of 128 bins) 1.6σ, noisier than a
    binary column's own total (1.4σ); weighted, 0.47σ. At σ = 0 (exact counts) every total is n.
    Post-processing of released counts only.
    """
    if not noisy:
        return 1.0, 0.0
    totals = np.array([float(v.sum()) for v in noisy.values()])
    if sigma <= 0:  # exact counts: every total is n (the plain mean keeps it exact in floats)
        return max(1.0, float(np.mean(totals))), 0.0
    cells = np.array([max(v.size, 1) for v in noisy.values()], dtype=np.float64)
    weights = 1.0 / cells
    estimate = float(np.sum(weights * totals) / np.sum(weights))
    return max(1.0, estimate), float(sigma / math.sqrt(np.sum(weights)))


def one_way_estimate(counts: np.ndarray, n_hat: float) -> np.ndarray:
    """A categorical column's frequencies from its noisy counts: the projection onto {x ≥ 0, Σx = n̂}, normalised.

    Post-processing of released counts (``counts``, Gaussian noise) and the DP row estimate ``n̂`` (every
    column's noisy total weighed by 1 / its bins, ``row_estimate``: more precise than this column's own). Clipping at
    zero instead leaves each empty category E[max(0, N(0, σ²))] ≈ 0.40σ rows, so a domain declared wider
    than the data (nine regions declared, one held) loses 0.40σ per empty category to values the table
    never holds; the projection subtracts one θ from every count before clipping, so that the kept counts
    sum to n̂ ("Norm-Sub", Wang et al. 2020). Where the counts' clipped sum is already at most n̂ (θ ≤ 0),
    that is clipping. Measured against clipping on the suite's categorical columns:
    benchmarks/one_way_projection.py (BENCHMARKS.md, "Round 2 session 16").
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0:
        return counts
    total = float(n_hat)
    if not (math.isfinite(total) and total > 0):
        raise ValueError(f"n_hat must be the codec's DP row estimate (a finite number > 0). Got {n_hat!r}.")
    clipped = np.clip(counts, 0.0, None)
    if clipped.sum() <= total:  # θ ≤ 0: nothing to take off; clipping alone
        est = clipped
    else:
        est = project_to_simplex(counts, total)
    s = est.sum()
    return est / s if s > 0 else np.full(len(counts), 1.0 / len(counts))


def _normalise(counts: np.ndarray, threshold: float) -> np.ndarray:
    c = np.where(counts > threshold, counts, 0.0)
    if c.sum() <= 0:  # all noise: fall back to the public, data-free uniform
        return np.full(len(counts), 1.0 / len(counts))
    return c / c.sum()


def fit_histogram_mixture(
    mass: np.ndarray, edges_lo: np.ndarray, edges_hi: np.ndarray, k: int, *, iterations: int = 200
) -> ModeMixture:
    """A Gaussian mixture of at most ``k`` modes fitted to a histogram by weighted EM.

    Each bin is a block of mass spread uniformly over [edges_lo, edges_hi]: in the E-step a bin's
    probability under mode j is approximated by width · N(centre; μ_j, σ_j² + width²/12) (the
    Gaussian convolved with the bin's uniform, moment-matched), and the M-step's variance adds
    each bin's own width²/12, so a one-value-per-bin integer column gets σ >= ~0.29, never 0.
    Deterministic (no random init): means start at the histogram's (j + ½)/k quantiles, then at
    the heaviest remaining bins. Modes lighter than ``MIN_MODE_WEIGHT`` are pruned (their slots
    keep weight 0) and EM continues with the rest. Returns ``k`` slots sorted by mean, unused last.
    """
    mass = np.asarray(mass, dtype=np.float64)
    centre = (edges_lo + edges_hi) / 2.0
    width = np.maximum(edges_hi - edges_lo, 0.0)
    keep = mass > 0
    if not keep.any():  # no information: one broad mode over the public range
        keep = np.ones_like(mass, dtype=bool)
        mass = np.ones_like(mass)
    m, c, w2 = mass[keep] / mass[keep].sum(), centre[keep], width[keep] ** 2 / 12.0
    span = float(edges_hi.max() - edges_lo.min())
    floor = max(1e-6 * span, 1e-12)

    # ---- deterministic initialisation
    cum = np.cumsum(m)
    first = np.searchsorted(cum, (np.arange(k) + 0.5) / k)
    start: list[int] = []
    for i in list(np.clip(first, 0, len(m) - 1)) + list(np.argsort(-m, kind="stable")):
        if int(i) not in start:
            start.append(int(i))
        if len(start) == k:
            break
    mu = c[start].copy()
    overall = float(np.sqrt(np.sum(m * ((c - np.sum(m * c)) ** 2 + w2))))
    sd = np.full(len(start), max(overall / len(start), floor))
    wt = np.full(len(start), 1.0 / len(start))

    for _ in range(3):  # EM, then prune light modes and refine the rest, until none is pruned
        for _ in range(iterations):
            var = sd[None, :] ** 2 + w2[:, None]
            logp = np.log(wt)[None, :] - 0.5 * np.log(var) - 0.5 * (c[:, None] - mu[None, :]) ** 2 / var
            r = np.exp(logp - logp.max(axis=1, keepdims=True))
            r /= r.sum(axis=1, keepdims=True)
            rm = r * m[:, None]
            nk = rm.sum(axis=0)
            alive = nk > 1e-12
            safe = np.where(alive, nk, 1.0)
            new_mu = np.where(alive, (rm * c[:, None]).sum(axis=0) / safe, mu)
            new_var = (rm * ((c[:, None] - new_mu[None, :]) ** 2 + w2[:, None])).sum(axis=0) / safe
            new_sd = np.where(alive, np.sqrt(np.maximum(new_var, floor**2)), sd)
            new_wt = np.where(alive, nk, 0.0) / nk[alive].sum()
            done = np.allclose(new_mu, mu, rtol=0, atol=1e-9 * span) and np.allclose(new_wt, wt, atol=1e-10)
            mu, sd, wt = new_mu, new_sd, new_wt
            if done:
                break
        # Modes that converged onto each other (started in neighbouring bins) become one.
        light = wt < MIN_MODE_WEIGHT
        for i in range(len(mu)):
            for j in range(i):
                same = abs(mu[i] - mu[j]) <= 0.01 * min(sd[i], sd[j]) and abs(sd[i] - sd[j]) <= 0.01 * sd[j]
                if same and not light[j]:
                    wt[j] += wt[i]
                    light[i] = True
                    break
        if not light.any():
            break
        mu, sd, wt = mu[~light], sd[~light], wt[~light] / wt[~light].sum()
    light = wt < MIN_MODE_WEIGHT
    if light.any():  # pruned in the last round: drop without refitting
        mu, sd, wt = mu[~light], sd[~light], wt[~light] / wt[~light].sum()

    order = np.argsort(mu, kind="stable")
    mu, sd, wt = mu[order], sd[order], wt[order]
    pad = k - len(mu)
    return ModeMixture(
        np.concatenate([wt, np.zeros(pad)]),
        np.concatenate([mu, np.full(pad, mu[0])]),
        np.concatenate([sd, np.full(pad, sd[0])]),
    )
