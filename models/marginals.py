"""DP 2-way (and selected 3-way) marginals of the codec-discretised table, chosen under DP, for a
generator to match.

A GAN critic trained by DP-SGD teaches the dependencies between columns slowly and noisily; MST and
AIM (McKenna et al. 2021, 2022) measure them directly. This module does the measuring half of that
for a neural generator, as MargNet (Chen, Gong, Wang 2025) does; the generator then fits the
released marginals (post-processing), beside the DP critic's signal (models/synthesizers/ctgan.py).

Variables. Every codec block is one discrete variable: a one-hot block (a categorical or boolean
column, a mode block) with its own categories, and a numeric tanh slot cut into ``NUMERIC_BINS``
equal bins of the encoded value, plus one more category "null" when the column is nullable (read from
its null block, which is then no variable of its own). Under the default quantile encoding the
encoded value is the DP CDF (2u − 1), so equal bins there are DP quantile bins of the column; the
bins read no row beyond the codec's already-charged histograms.

Selection and measurement (one data-entry point, ``measure_marginals``):
- every pair (target, other variable) is measured: a public choice, the contract names the target;
- ``extra`` more pairs are chosen in rounds by the exponential mechanism, without replacement. A
  candidate's score is its L1 distance from independence, ‖C_ab − n̂·f_a ⊗ f_b‖₁ (C_ab the exact
  counts; f_a, f_b the codec's DP 1-way frequencies, n̂ its DP row count), minus the expected L1 error
  its measurement would add, √(2/π)·σ·cells (AIM's penalty, a public number). Adding or removing a row
  changes one cell of C_ab by 1, so the score's sensitivity is 1. Each round is ε₀-DP and ε₀-bounded
  range, hence ε₀²/8-zCDP (Cesar & Rogers 2021), which the ledger accounts as a Gaussian mechanism of
  noise multiplier 2/ε₀ (the same Rényi curve, ``PrivacyLedger.charge_exponential``);
- every chosen pair's count table gets Gaussian noise of std σ (L2 sensitivity 1 per table, one
  ledger step per table), then is projected onto the simplex scaled to n̂ (post-processing). A
  table of two other columns whose noisy counts are no further from independence than noise alone
  would put them (``shrink_to_independence``) is replaced by the independence table of its own noisy
  margins first (post-processing: the generator and the raking then fit no noise dependence). Any
  table, the target's too, whose summed noise σ·√cells reaches n̂ is replaced by the independence
  table of the codec's DP 1-way frequencies: nothing in it can be told from noise. Both are
  listed in ``Measured.independent``: without the DP-SGD critic, sampling draws the column groups that
  no other released table ties as independent given the target (``calibrate.independent_groups``).
- then 3-way marginals (target, a, b) (``plan_triples``: as many as keep the expected noise error of a
  median candidate's table for the rarest target class within the pairs' tolerance, dropping the ones
  whose own error is above it, so only large tables at large ε get any; every candidate without DP). When fewer than every candidate, they are chosen by rounds of the exponential mechanism
  on their L1 distance from what the released pairs (t, a) and (t, b) already imply,
  P(t)·P(a | t)·P(b | t) (a fixed DP reference, so the score's sensitivity stays 1), minus the same
  noise penalty; each gets Gaussian noise of the pairs' σ and is projected as they are. They are what
  the pairs cannot tell: how two columns act on the target together (the issue's "selected 3-way").
The share of ρ is AIM's: 10% selection, 90% measurement, calibrated (pairs and triples together) so
that the ledger after this step has spent ``target_epsilon``.

The selection is adaptive in the sense of MST's selection (rounds of the exponential mechanism over
pair scores), not AIM's full loop: scores are computed once against independence, not re-estimated
from a graphical model after each measurement.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synthgate.models.codec import Codec, one_way_estimate, project_to_simplex
from synthgate.models.ledger import PrivacyLedger

NUMERIC_BINS = 8
MAX_CELLS = 4096  # larger pair tables are not candidates (their noise would swamp them)
SELECTION_SHARE = 0.1  # of the marginals' zCDP budget, as AIM
EXTRA_TOLERANCE = 0.05  # expected TV error of a measured table that still earns a pair its place
# A 3-way table (target, a, b) is judged by the error of its rarest target class's conditional table
# (a, b | class), whose rows are the class's share of n̂: classes rarer than this share of the rows are
# left out of that minimum (an empty category, or a null bin nobody uses, would bar every triple).
MIN_TARGET_SHARE = 0.01
# A table of two non-target variables is kept as measured when its noisy counts' L1 distance from the
# independence table of their own margins is above SHRINK_FACTOR times that distance's expected value
# under noise alone; else it is replaced by that independence table. Chosen on the public suite
# (BENCHMARKS.md, "Round 2 session 7"): on survival::colon at ε = 3 all 91
# pairs are measured at σ = 17.2 rows on 1,300 rows, most of them independent columns, and fitting
# their noise cost train-on-synthetic AUC 0.914 against 0.939 shrunk (8 fits each).
SHRINK_FACTOR = 1.5
SELECTION = "marginal-selection"
MEASUREMENT = "marginal-measurements"


@dataclass(frozen=True)
class Variable:
    """One codec block as a discrete variable: ``width`` categories (bins for a tanh slot)."""

    column: str
    role: str
    kind: str  # "softmax" | "tanh"
    start: int
    width: int  # categories; a nullable numeric's last one is "null"
    null_start: int | None = None  # a nullable numeric's null block (slot +1 = null)

    @property
    def label(self) -> str:
        return self.column if self.role == "value" else f"{self.column}:{self.role}"

    @property
    def bins(self) -> int:
        return self.width - (self.null_start is not None)


def variables(codec: Codec, numeric_bins: int = NUMERIC_BINS) -> list[Variable]:
    """The codec's blocks as discrete variables (layout from the contract alone)."""
    if numeric_bins < 2:
        raise ValueError(f"numeric_bins must be >= 2. Got {numeric_bins!r}.")
    nulls = {b.column: b.start for b in codec.blocks if b.role == "null"}
    out = []
    for b in codec.blocks:
        if b.role == "null":
            continue
        if b.kind == "tanh":
            null = nulls.get(b.column)
            out.append(Variable(b.column, b.role, b.kind, b.start, numeric_bins + (null is not None), null))
        else:
            out.append(Variable(b.column, b.role, b.kind, b.start, b.width))
    return out


def _inner_edges(width: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, width + 1)[1:-1]


def discretise(x: np.ndarray, variables_: list[Variable]) -> np.ndarray:
    """Encoded rows (n, dim) -> integer codes (n, V): argmax of a one-hot block, bin of a tanh slot."""
    out = np.empty((x.shape[0], len(variables_)), dtype=np.int64)
    for j, v in enumerate(variables_):
        if v.kind == "tanh":
            out[:, j] = np.searchsorted(_inner_edges(v.bins), x[:, v.start], side="right")
            if v.null_start is not None:
                out[:, j] = np.where(x[:, v.null_start + 1] > x[:, v.null_start], v.bins, out[:, j])
        else:
            out[:, j] = x[:, v.start : v.start + v.width].argmax(axis=1)
    return out


def one_way(codec: Codec, v: Variable) -> np.ndarray:
    """The variable's DP 1-way frequencies from the codec's charged statistics (uniform for bins)."""
    if v.kind == "tanh":
        f = np.full(v.bins, 1.0 / v.bins)
        if v.null_start is None:
            return f
        r = codec.null_rate.get(v.column, 0.0)
        return np.append(f * (1.0 - r), r)
    if v.role == "value":
        f = np.asarray(codec.frequencies[v.column], dtype=np.float64)
    else:
        f = np.asarray(codec.modes[v.column].weight, dtype=np.float64)
    return f / f.sum() if f.sum() > 0 else np.full(v.width, 1.0 / v.width)


@dataclass
class Measured:
    """The released pair marginals: variable indices and normalised tables (DP outputs only)."""

    variables: list[Variable]
    pairs: list[tuple[int, int]]
    tables: list[np.ndarray]  # each (width_a, width_b), non-negative, summing to 1
    sigma: float = 0.0  # the Gaussian noise std of each count table (0: exact); public
    n_hat: float = 0.0  # the DP row estimate the tables were normalised by
    # categorical columns' 1-way frequencies pooled from the codec's histogram and these tables' raw
    # margins (``pool_one_way``); a column absent here keeps the codec's frequencies
    one_way: dict[str, np.ndarray] = field(default_factory=dict)
    # indices into ``pairs`` of the tables replaced by their margins' independence table
    # (``shrink_to_independence``): released as "no dependence beyond the noise"
    independent: list[int] = field(default_factory=list)
    # 3-way marginals (target, a, b) and their normalised tables (width_t, width_a, width_b); same σ
    triples: list[tuple[int, int, int]] = field(default_factory=list)
    triple_tables: list[np.ndarray] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {
            "pairs": [list(p) for p in self.pairs],
            "tables": [t.tolist() for t in self.tables],
            "sigma": self.sigma,
            "n_hat": self.n_hat,
            "one_way": {k: v.tolist() for k, v in self.one_way.items()},
            "independent": list(self.independent),
            "triples": [list(t) for t in self.triples],
            "triple_tables": [t.tolist() for t in self.triple_tables],
        }

    @classmethod
    def from_state(cls, variables_: list[Variable], state: dict[str, Any]) -> Measured:
        return cls(
            variables_,
            [tuple(p) for p in state["pairs"]],  # type: ignore[misc]
            [np.asarray(t, dtype=np.float64) for t in state["tables"]],
            float(state.get("sigma", 0.0)),
            float(state.get("n_hat", 0.0)),
            {k: np.asarray(v, dtype=np.float64) for k, v in state.get("one_way", {}).items()},
            [int(i) for i in state.get("independent", [])],  # models saved before 2026-12-07: unknown, none
            [tuple(t) for t in state.get("triples", [])],  # type: ignore[misc]
            [np.asarray(t, dtype=np.float64) for t in state.get("triple_tables", [])],
        )

    @property
    def shrunk(self) -> int:
        """How many pair tables were replaced by their independence table."""
        return len(self.independent)

    def labels(self) -> list[str]:
        """Every measured marginal, pairs first: "a × b", then "t × a × b"."""
        return [" × ".join(self.variables[i].label for i in m) for m in [*self.pairs, *self.triples]]

    def cliques(self) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """Every measured marginal as (variable indices, normalised table): pairs, then triples."""
        return [(tuple(p), t) for p, t in zip(self.pairs, self.tables, strict=True)] + [
            (tuple(p), t) for p, t in zip(self.triples, self.triple_tables, strict=True)
        ]


def candidate_pairs(
    variables_: list[Variable], target: str | None
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(pairs with the target, the other candidates): never two blocks of one column, at most
    ``MAX_CELLS`` cells. Public: layout and contract only."""
    with_target, others = [], []
    for a, b in itertools.combinations(range(len(variables_)), 2):
        va, vb = variables_[a], variables_[b]
        if va.column == vb.column or va.width * vb.width > MAX_CELLS:
            continue
        if (target, "value") in ((va.column, va.role), (vb.column, vb.role)):
            with_target.append((a, b))
        else:
            others.append((a, b))
    return with_target, others


def plan_noise(*, ledger: PrivacyLedger, target_epsilon: float, measurements: int, rounds: int) -> tuple[float, float]:
    """(σ of each measurement, ε₀ of each selection round) such that the ledger plus ``measurements``
    Gaussian tables and ``rounds`` exponential-mechanism rounds spends ``target_epsilon``; ρ split
    90 / 10 between them. Bisection on the total zCDP ρ."""
    if ledger.epsilon >= target_epsilon:
        raise ValueError(
            f"the ledger has already spent ε = {ledger.epsilon:.3f}, nothing is left of ε = {target_epsilon} "
            "for the marginals. Lower marginal_share or raise privacy.epsilon."
        )

    def split(rho: float) -> tuple[float, float]:
        sel = SELECTION_SHARE * rho if rounds else 0.0
        sigma = math.sqrt(measurements / (2.0 * (rho - sel)))
        eps0 = math.sqrt(8.0 * sel / rounds) if rounds else math.inf
        return sigma, eps0

    def spent(rho: float) -> float:
        sigma, eps0 = split(rho)
        extra = [(sigma, 1.0, measurements)] + ([(2.0 / eps0, 1.0, rounds)] if rounds else [])
        return ledger.epsilon_with(extra)

    lo, hi = 1e-9, 1.0
    while spent(hi) < target_epsilon and hi < 1e6:
        hi *= 2.0
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        if spent(mid) > target_epsilon:
            hi = mid
        else:
            lo = mid
    return split(lo)


def plan_extra(
    variables_: list[Variable],
    with_target: list[tuple[int, int]],
    others: list[tuple[int, int]],
    *,
    ledger: PrivacyLedger,
    target_epsilon: float | None,
    n_hat: float,
    tolerance: float = EXTRA_TOLERANCE,
) -> int:
    """How many pairs to choose beyond the target's, from public quantities only.

    At least a spanning tree's worth (one per variable less one, as MST), and more while the noise
    stays small: the largest ``k`` at which a median-sized candidate table's expected total-variation
    error from the Gaussian noise, √(2/π)·σ·cells / (2 n̂), is at most ``tolerance`` (σ being what
    ``plan_noise`` gives ``len(with_target) + k`` tables and ``k`` selection rounds). Every candidate
    (no selection round at all) when that fits; a non-DP fit measures every candidate exactly.
    """
    floor = min(len(others), len(variables_) - 1)
    if not others:
        return 0
    if target_epsilon is None:
        return len(others)
    cells = float(np.median([variables_[a].width * variables_[b].width for a, b in others]))

    def error(k: int) -> float:
        rounds = 0 if k == len(others) else k
        sigma, _ = plan_noise(
            ledger=ledger, target_epsilon=target_epsilon, measurements=len(with_target) + k, rounds=rounds
        )
        return math.sqrt(2.0 / math.pi) * sigma * cells / (2.0 * max(n_hat, 1.0))

    if error(len(others)) <= tolerance:
        return len(others)
    # error(floor) is accepted whatever it is; error(len(others)) > tolerance
    return _largest_within(floor, len(others), lambda k: error(k) <= tolerance)


def _largest_within(lo: int, hi: int, ok: Any) -> int:
    """The largest k in [lo, hi) with ``ok(k)``, by bisection, given ``ok`` holds up to some k and then
    fails, and fails at ``hi`` (``lo`` is returned whether it holds or not)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def candidate_triples(variables_: list[Variable], target: str | None) -> list[tuple[int, int, int]]:
    """3-way candidates (target, a, b): the target's value variable with two other variables of two
    other columns, at most ``MAX_CELLS`` cells. Public: layout and contract only."""
    t = next((i for i, v in enumerate(variables_) if (v.column, v.role) == (target, "value")), None)
    if t is None:
        return []
    out = []
    for a, b in itertools.combinations(range(len(variables_)), 2):
        va, vb = variables_[a], variables_[b]
        if target in (va.column, vb.column) or va.column == vb.column:
            continue
        if variables_[t].width * va.width * vb.width <= MAX_CELLS:
            out.append((t, a, b))
    return out


def plan_triples(
    variables_: list[Variable],
    candidates: list[tuple[int, int, int]],
    *,
    ledger: PrivacyLedger,
    target_epsilon: float | None,
    n_hat: float,
    pair_measurements: int,
    pair_rounds: int,
    target_share: float,
    tolerance: float = EXTRA_TOLERANCE,
) -> tuple[list[tuple[int, int, int]], int]:
    """Which 3-way marginals with the target may be measured, and how many, from public quantities only.

    A triple (t, a, b) is worth what its conditional tables (a, b | t = c) are, and the rarest target
    class ``c`` has the fewest rows behind its table: ``target_share`` (the smallest DP frequency of a
    target class, classes under ``MIN_TARGET_SHARE`` left out) times n̂. Its expected total-variation
    error from the Gaussian noise is √(2/π)·σ·cells_ab / (2·n̂·target_share), cells_ab = the triple's
    cells over the target's width; ``tolerance`` is the pairs' (``EXTRA_TOLERANCE``).

    Returns (eligible candidates, k). First the count: the largest ``k`` at which a median-sized
    candidate's error is within tolerance (σ being what ``plan_noise`` gives the pairs' measurements
    plus ``k`` triples, and their selection rounds plus ``k``); every candidate when that fits, none when
    even one does not. Then each candidate on its own: one whose error at that σ is above tolerance is
    dropped (a wide column's triples: MplsStops' 87 neighbourhoods make (a, b) tables of up to 522
    cells that the median, 27, hides), and ``k`` is at most what is left; the exponential mechanism
    chooses only when ``k`` is fewer than the eligible ones. So only large tables at large ε get any,
    fewer where the target is unbalanced (nassCDS, 4.6% deaths: none at ε ≤ 3, 0–18 of 78 at ε = 10).
    A non-DP fit measures every candidate exactly.
    """
    if not candidates:
        return [], 0
    if target_epsilon is None:
        return list(candidates), len(candidates)
    width_t = variables_[candidates[0][0]].width
    sizes = [math.prod(variables_[i].width for i in c) / width_t for c in candidates]
    cells = float(np.median(sizes))
    rows = max(n_hat, 1.0) * max(target_share, MIN_TARGET_SHARE)

    def error(k: int, size: float = cells) -> float:
        rounds = pair_rounds + (0 if k == len(candidates) else k)
        sigma, _ = plan_noise(
            ledger=ledger, target_epsilon=target_epsilon, measurements=pair_measurements + k, rounds=rounds
        )
        return math.sqrt(2.0 / math.pi) * sigma * size / (2.0 * rows)

    if error(len(candidates)) <= tolerance:
        k = len(candidates)
    elif error(1) > tolerance:
        return [], 0
    else:  # error(1) <= tolerance < error(len(candidates))
        k = _largest_within(1, len(candidates), lambda k: error(k) <= tolerance)
    per_cell = error(k, 1.0)
    eligible = [c for c, size in zip(candidates, sizes, strict=True) if per_cell * size <= tolerance]
    return eligible, min(k, len(eligible))


def target_share(codec: Codec, v: Variable) -> float:
    """The smallest DP frequency of the target variable's classes that hold at least
    ``MIN_TARGET_SHARE`` of the rows (the codec's released statistics; a numeric target's bins are
    DP quantiles, so about 1 / bins each). Public."""
    f = one_way(codec, v)
    kept = f[f >= MIN_TARGET_SHARE]
    return float(kept.min()) if kept.size else MIN_TARGET_SHARE


def conditional_independence(pair_ta: np.ndarray, pair_tb: np.ndarray) -> np.ndarray:
    """The 3-way table P(t)·P(a | t)·P(b | t) implied by two normalised pair tables (t, a) and (t, b)
    (t's margin from the first): what the measured pairs alone say of (t, a, b)."""
    rows = pair_tb.sum(1, keepdims=True)
    p_b_given_t = pair_tb / np.where(rows > 0, rows, 1.0)
    return pair_ta[:, :, None] * p_b_given_t[:, None, :]


def measure_marginals(
    x: np.ndarray,
    codec: Codec,
    *,
    ledger: PrivacyLedger,
    target_epsilon: float | None,
    rng: np.random.Generator,
    extra: int | None = None,
    triples: int | None = None,
    numeric_bins: int = NUMERIC_BINS,
) -> Measured:
    """Select and measure pair and 3-way marginals of the encoded PRIVATE rows ``x`` (see the module
    docstring).

    ``target_epsilon``: the ledger's total once this step is charged; None is the non-DP baseline
    (exact tables, top-scoring pairs, recorded as non-DP entries). ``rng``: a PRIVATE stream (the
    Gaussian noise and the exponential mechanism's draws). ``extra``: pairs chosen beyond the
    target's (default: ``plan_extra``, at least a spanning tree's worth; when it is every candidate,
    nothing is selected and no selection round is charged). ``triples``: 3-way marginals (target, a, b)
    measured after the pairs (default: ``plan_triples``; 0: none).
    """
    vs = variables(codec, numeric_bins)
    target = codec.contract.target if codec.contract.target in codec.columns else None
    with_target, others = candidate_pairs(vs, target)
    triple_candidates = candidate_triples(vs, target)
    n_hat = float(codec.n_estimate or x.shape[0] or 1)
    dp = target_epsilon is not None
    if extra is None:
        k = plan_extra(vs, with_target, others, ledger=ledger, target_epsilon=target_epsilon, n_hat=n_hat)
    else:
        k = min(len(others), extra)
    rounds = 0 if k == len(others) else k  # every candidate: nothing to choose
    if triples is None:
        triple_candidates, k3 = plan_triples(
            vs,
            triple_candidates,
            ledger=ledger,
            target_epsilon=target_epsilon,
            n_hat=n_hat,
            pair_measurements=len(with_target) + k,
            pair_rounds=rounds,
            target_share=target_share(codec, vs[triple_candidates[0][0]]) if triple_candidates else 1.0,
        )
    else:
        k3 = min(len(triple_candidates), triples)
    rounds3 = 0 if k3 == len(triple_candidates) else k3
    measurements = len(with_target) + k + k3
    if measurements == 0:
        return Measured(vs, [], [])
    codes = discretise(x, vs)
    sigma, eps0 = (
        plan_noise(ledger=ledger, target_epsilon=target_epsilon, measurements=measurements, rounds=rounds + rounds3)
        if target_epsilon is not None
        else (0.0, math.inf)  # dp
    )

    def counts(*idx: int) -> np.ndarray:
        widths = [vs[i].width for i in idx]
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), widths)
        return np.bincount(flat, minlength=math.prod(widths)).astype(np.float64).reshape(widths)

    def choose(candidates: list[Any], wanted: int, scores: np.ndarray, what: str) -> list[Any]:
        """``wanted`` of ``candidates`` by rounds of the exponential mechanism on ``scores`` (charged
        here, before any draw), without replacement; the top scores when not DP."""
        if dp:
            ledger.charge_exponential(
                SELECTION,
                epsilon=eps0,
                steps=wanted,
                description=(
                    f"{wanted} rounds of the exponential mechanism (ε₀ = {eps0:.4f} each, score sensitivity 1) "
                    f"choosing {what} of {len(candidates)} candidates"
                ),
            )
        else:
            ledger.record_non_dp(
                f"{SELECTION}-non-dp", steps=wanted, description=f"{what} chosen by exact scores: NOT DP"
            )
        picked, left = [], list(range(len(candidates)))
        for _ in range(wanted):
            s = scores[left]
            if dp:
                p = np.exp(eps0 / 2.0 * (s - s.max()))
                pick = int(rng.choice(len(left), p=p / p.sum()))
            else:
                pick = int(np.argmax(s))
            picked.append(candidates[left.pop(pick)])
        return picked

    penalty = math.sqrt(2.0 / math.pi) * sigma  # AIM's: the expected L1 error the noise adds per cell
    chosen: list[tuple[int, int]] = list(others) if k and not rounds else []
    if rounds:
        oneway = [one_way(codec, v) for v in vs]
        scores = np.array(
            [
                np.abs(counts(a, b) - n_hat * np.outer(oneway[a], oneway[b])).sum()
                - penalty * vs[a].width * vs[b].width
                for a, b in others
            ]
        )
        chosen = choose(others, k, scores, "pairs")
    pairs = with_target + chosen
    _charge_tables(ledger, len(pairs), "pair", sigma if dp else None)
    tables: list[np.ndarray] = []
    raw: list[np.ndarray] = []
    shrunk: list[int] = []  # indices into ``pairs``
    targeted = set(with_target)
    for a, b in pairs:
        c = counts(a, b)
        if dp:
            c = c + rng.normal(0.0, sigma, size=c.shape)
        raw.append(c)
        if dp:
            independent = shrink_to_independence(
                c,
                sigma,
                n_hat=n_hat,
                margins=(one_way(codec, vs[a]), one_way(codec, vs[b])),
                deviation_test=(a, b) not in targeted,
            )
            if independent is not None:
                c = independent
                shrunk.append(len(tables))
        tables.append(project_to_simplex(c, max(n_hat, 1.0)) / max(n_hat, 1.0))
    pooled = pool_one_way(codec, vs, pairs, raw, sigma) if dp else {}
    measured = Measured(vs, pairs, tables, sigma, n_hat, pooled, shrunk)
    if k3:
        _measure_triples(measured, triple_candidates, k3, rounds3, counts, choose, dp=dp, ledger=ledger, rng=rng)
    return measured


def _charge_tables(ledger: PrivacyLedger, tables: int, what: str, sigma: float | None) -> None:
    """Charge ``tables`` Gaussian count tables of noise std ``sigma`` (L2 sensitivity 1 each, one
    ledger step per table), or record them as exact (``sigma`` None: the non-DP baseline)."""
    if sigma is None:
        ledger.record_non_dp(f"{MEASUREMENT}-non-dp", steps=tables, description=f"exact {what} count tables: NOT DP")
        return
    ledger.charge(
        MEASUREMENT,
        noise_multiplier=sigma,
        sample_rate=1.0,
        steps=tables,
        description=f"Gaussian mechanism on {tables} {what} count tables (L2 sensitivity 1 each, noise std {sigma:.1f} rows)",
    )


def _measure_triples(
    measured: Measured,
    candidates: list[tuple[int, int, int]],
    k3: int,
    rounds3: int,
    counts: Any,
    choose: Any,
    *,
    dp: bool,
    ledger: PrivacyLedger,
    rng: np.random.Generator,
) -> None:
    """Choose ``k3`` of the 3-way candidates (target, a, b) and measure them into ``measured``.

    A candidate's score is its L1 distance from what the released pairs (t, a) and (t, b) already say
    of it, ‖C_tab − n̂·P(t)P(a | t)P(b | t)‖₁ (``conditional_independence`` of the DP tables: a fixed,
    public reference, so one row still moves the score by at most 1), minus AIM's noise penalty per
    cell. Each chosen table gets Gaussian noise of the pairs' σ (L2 sensitivity 1) and is projected to
    the simplex scaled to n̂; never shrunk (it holds the target)."""
    vs, sigma, n_hat = measured.variables, measured.sigma, measured.n_hat
    chosen = list(candidates)
    if rounds3:
        by_pair = {p: t for p, t in zip(measured.pairs, measured.tables, strict=True)}

        def oriented(i: int, j: int) -> np.ndarray:
            return by_pair[(i, j)] if (i, j) in by_pair else by_pair[(j, i)].T

        penalty = math.sqrt(2.0 / math.pi) * sigma
        scores = np.array(
            [
                np.abs(counts(t, a, b) - n_hat * conditional_independence(oriented(t, a), oriented(t, b))).sum()
                - penalty * vs[t].width * vs[a].width * vs[b].width
                for t, a, b in candidates
            ]
        )
        chosen = choose(candidates, k3, scores, "3-way marginals with the target")
    _charge_tables(ledger, len(chosen), "3-way (with the target)", sigma if dp else None)
    for triple in chosen:
        c = counts(*triple)
        if dp:
            c = c + rng.normal(0.0, sigma, size=c.shape)
        measured.triples.append(triple)
        measured.triple_tables.append(project_to_simplex(c, max(n_hat, 1.0)) / max(n_hat, 1.0))


def independence_deviation(c: np.ndarray) -> float:
    """L1 distance of a (noisy) count table from the independence table of its own margins."""
    total = c.sum()
    if total <= 0:
        return 0.0
    return float(np.abs(c - np.outer(c.sum(1), c.sum(0)) / total).sum())


def noise_deviation(shape: tuple[int, int], sigma: float) -> float:
    """The expected ``independence_deviation`` of a table of i.i.d. N(0, σ²) noise on independent counts:
    each cell's residual after removing its row and column effects has variance σ²(1 − 1/a)(1 − 1/b), so
    the L1 sum over a·b cells is √(2/π)·σ·√((a − 1)(b − 1)·a·b) (the linear, large-count approximation)."""
    a, b = shape
    return math.sqrt(2.0 / math.pi) * sigma * math.sqrt((a - 1) * (b - 1) * a * b)


def shrink_to_independence(
    c: np.ndarray,
    sigma: float,
    factor: float = SHRINK_FACTOR,
    *,
    n_hat: float | None = None,
    margins: tuple[np.ndarray, np.ndarray] | None = None,
    deviation_test: bool = True,
) -> np.ndarray | None:
    """The independence table of noisy counts ``c``'s own margins when ``c`` is no further from it than
    ``factor`` × ``noise_deviation`` (its dependence is not told apart from the noise); else None.
    ``deviation_test`` False (the target's tables): never on that test.

    With the DP row estimate ``n_hat`` and DP 1-way frequencies ``margins``: a table whose summed noise,
    σ·√cells, is as large as n̂ is n̂·(margins' outer product) whatever its counts, the target's too.
    There nothing in it is told from noise, and the test above means nothing (it linearises around
    counts that the noise swamps; the table's own total is noise, often near zero or negative, and
    dividing by it made most such tables look dependent: pd_speech, 176 rows, σ = 225 on 16-cell
    tables, kept 541 of 751). Kept, the target's noise tables tied every feature to the class at random
    (synthetic features' mean |correlation| 0.26 even when factorised, real 0.15). Post-processing of released
    statistics."""
    if sigma <= 0 or min(c.shape) < 2:
        return None
    if n_hat is not None and margins is not None and sigma * math.sqrt(c.size) >= n_hat:
        return float(n_hat) * np.outer(margins[0], margins[1])
    if not deviation_test:
        return None
    if independence_deviation(c) > factor * noise_deviation(c.shape, sigma):
        return None
    total = c.sum()
    return np.outer(c.sum(1), c.sum(0)) / total if total > 0 else None


def pool_one_way(
    codec: Codec, variables_: list[Variable], pairs: list[tuple[int, int]], raw: list[np.ndarray], sigma: float
) -> dict[str, np.ndarray]:
    """Each categorical column's 1-way counts estimated from every DP release that holds them.

    The codec's histogram of a column (noise std σ₀ per count) and the margin of each raw (unprojected)
    noisy pair table that holds the column (the sum of ``w`` cells of std σ: variance σ²·w, ``w`` the
    other variable's width) are unbiased estimates of the same counts, with independent noise; their
    inverse-variance mean has variance 1 / (1/σ₀² + Σ 1/(σ²·w)). On Adult at ε = 1 (σ₀ = 41.5,
    σ = 57.2, 14 tables per column) that is σ ≈ 27–29, which cuts the expected TV error of the
    frequencies by about a third (simulated at Adult's real counts: native-country 0.021 → 0.015).
    Measured on the suite tables, paired on the same fits: benchmarks/pool_one_way.py.

    The raw margins must be used, not the projected tables' (projecting a noisy table to the simplex
    clips its rare cells and biases their margins upward: session 3 tried those and Adult's
    categories got worse). The result goes onto n̂'s simplex and is normalised, as the codec's own
    frequencies do (``codec.one_way_estimate``). Post-processing of DP outputs only (the codec's released counts and the tables'
    Gaussian outputs): no row is read and nothing is charged."""
    counts, s0 = codec.released_counts, codec.released_sigma
    if not counts or not (s0 > 0) or not (sigma > 0):
        return {}
    n_hat = float(codec.n_estimate or 1.0)
    out: dict[str, np.ndarray] = {}
    for j, v in enumerate(variables_):
        y0 = counts.get(v.column)
        if v.kind != "softmax" or v.role != "value" or y0 is None or y0.shape != (v.width,):
            continue
        total, precision = y0 / s0**2, 1.0 / s0**2
        for (a, b), table in zip(pairs, raw, strict=True):
            if j not in (a, b):
                continue
            margin, other = (table.sum(1), variables_[b].width) if a == j else (table.sum(0), variables_[a].width)
            total = total + margin / (sigma**2 * other)
            precision += 1.0 / (sigma**2 * other)
        if precision > 1.0 / s0**2:
            out[v.column] = one_way_estimate(total / precision, n_hat)
    return out


# ---------------------------------------------------------------------------- the generator's loss
def soft_membership(logits: torch.Tensor, v: Variable, tau: float | None = None) -> torch.Tensor:
    """(batch, width) probabilities of each category / bin for generated logits of one block.

    One-hot blocks: the softmax (the distribution the hard draw samples from). Tanh slots: the
    value tanh(logit) put into bins by differences of sigmoids at the bin edges (temperature ``tau``,
    default an eighth of a bin), which sum to 1 and tend to the hard bin as tau → 0; a nullable
    column's bins are scaled by P(not null) from its null block's softmax, P(null) appended.
    """
    x = logits[:, v.start : v.start + (1 if v.kind == "tanh" else v.width)]
    if v.kind != "tanh":
        return torch.softmax(x, dim=1)
    t = tau if tau is not None else 2.0 / v.bins / 8.0
    edges = torch.as_tensor(_inner_edges(v.bins), dtype=x.dtype, device=x.device)
    above = torch.sigmoid((torch.tanh(x) - edges[None, :]) / t)  # P(value > edge_k)
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    upper = torch.cat([ones, above], dim=1)
    lower = torch.cat([above, zeros], dim=1)
    bins = upper - lower
    if v.null_start is None:
        return bins
    null = torch.softmax(logits[:, v.null_start : v.null_start + 2], dim=1)
    return torch.cat([bins * null[:, :1], null[:, 1:]], dim=1)


def target_weight(measured: Measured, target: str | None) -> float:
    """The weight of each pair with the target's value variable in ``PairLoss``: the number of the other
    measured pairs over the number of the target's, at least 1 (1 without a target or its pairs)."""
    on_target = {i for i, v in enumerate(measured.variables) if (v.column, v.role) == (target, "value")}
    with_target = sum(1 for a, b in measured.pairs if on_target & {a, b})
    if target is None or with_target == 0:
        return 1.0
    return max(1.0, (len(measured.pairs) - with_target) / with_target)


class PairLoss:
    """The generator's loss on the measured marginals (post-processing: reads only the released tables).

    A pair (a, b) adds KL(measured ‖ the batch's soft joint), the joint being the mean over generated
    rows of the outer product of the two blocks' memberships. A triple (t, a, b) adds only what its
    pairs do not say: by the chain rule KL(P_tab ‖ Q_tab) = KL(P_ta ‖ Q_ta) + E_P[KL(P_b|ta ‖ Q_b|ta)],
    and the triple's term is the second part (its full KL less the KL of its own (t, a) margin), so the
    target's pairs, which every triple holds, are not counted once per triple on top of their own term.
    Counted whole, Adult's and MplsStops' target pairs weighed 14 and 11 times the others (MplsStops
    ε = 10: pair trends 0.973 against 0.978 without triples).

    Batched: the marginals that share their leading variables (a pair's first, a triple's first two)
    form one group, whose joints are one matrix product, (leading memberships)ᵀ @ [the other blocks'
    memberships side by side], and whose KL terms are one sum over the concatenated tables. Adult's
    105 pairs and 91 triples are 27 products instead of 196 (torch.einsum per triple spent more time
    planning its contraction than computing it).

    ``target`` (the contract's target column): its pairs weigh ``target_weight`` each, the other pairs'
    count over the target's, at least 1, so that the target's pairs together weigh as much as all the
    others (triples are unchanged). Unweighted, a table whose every pair is measured gave its target's 11
    pairs a sixth of the loss (AER::DoctorVisits at ε = 3, 66 pairs) and its TSTR AUC fell from 0.80 at
    ε = 1 (23 pairs) to 0.75; weighted, 0.79. Measured on eleven suite cells, 3 paired-seed fits each
    (BENCHMARKS.md, "Round 2 session 16"). Public: the measured pairs' layout and the contract."""

    def __init__(self, measured: Measured, device: torch.device, target: str | None = None) -> None:
        self.measured = measured
        self.cliques = [idx for idx, _ in measured.cliques()]
        self.target_weight = target_weight(measured, target)
        on_target = {i for i, v in enumerate(measured.variables) if (v.column, v.role) == (target, "value")}
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for idx, table in measured.cliques():
            lead = tuple(idx[:-1])
            groups.setdefault(lead, []).append((idx[-1], table.reshape(-1, table.shape[-1])))
        # (lead, other blocks, concatenated tables times their weights, the tables' logs, margins' weight on each
        # lead cell, Σ p log p)
        self.groups: list[tuple[tuple[int, ...], list[int], torch.Tensor, torch.Tensor, torch.Tensor, float]] = []
        for lead, members in groups.items():
            # each table's column weight: the target's pairs weigh target_weight (triples, and every pair
            # of a fit without a target, 1)
            column_weight = np.concatenate(
                [
                    np.full(
                        m.shape[1],
                        self.target_weight if len(lead) == 1 and on_target & {lead[0], b} else 1.0,
                    )
                    for b, m in members
                ]
            )
            t = np.concatenate([t for _, t in members], axis=1) * column_weight[None, :]
            margins = np.stack([m.sum(1) for _, m in members], axis=1)  # each triple's own (t, a) margin
            weight = margins.sum(1) if len(lead) > 1 else np.zeros(len(t))
            entropy = float((margins * np.log(np.clip(margins, 1e-8, None))).sum()) if len(lead) > 1 else 0.0
            weighted = torch.as_tensor(t, dtype=torch.float32, device=device)
            unweighted = np.concatenate([m for _, m in members], axis=1)
            self.groups.append(
                (
                    lead,
                    [b for b, _ in members],
                    weighted,
                    torch.log(torch.as_tensor(unweighted, dtype=torch.float32, device=device).clamp_min(1e-8)),
                    torch.as_tensor(weight, dtype=torch.float32, device=device),
                    entropy,
                )
            )
        self.used = sorted({i for c in self.cliques for i in c})

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        if not self.cliques:
            return total
        member = {i: soft_membership(logits, self.measured.variables[i]) for i in self.used}
        n = logits.shape[0]
        for lead, others, t, log_t, weight, entropy in self.groups:
            left = member[lead[0]]
            for i in lead[1:]:  # the leading blocks' joint membership, (n, width_t · width_a)
                left = (left[:, :, None] * member[i][:, None, :]).reshape(n, -1)
            q = left.t() @ torch.cat([member[b] for b in others], dim=1) / n
            total = total + (t * (log_t - torch.log(q.clamp_min(1e-8)))).sum()
            if len(lead) > 1:  # less each triple's KL on its (t, a) margin, whose batch joint is left's mean
                q_lead = left.mean(0)
                total = total - (entropy - (weight * torch.log(q_lead.clamp_min(1e-8))).sum())
        return total


__all__ = [
    "MEASUREMENT",
    "SELECTION",
    "Measured",
    "PairLoss",
    "Variable",
    "candidate_pairs",
    "candidate_triples",
    "conditional_independence",
    "discretise",
    "measure_marginals",
    "one_way",
    "plan_extra",
    "plan_noise",
    "plan_triples",
    "target_share",
    "pool_one_way",
    "shrink_to_independence",
    "project_to_simplex",
    "soft_membership",
    "target_weight",
    "variables",
]
