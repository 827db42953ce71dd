"""Sampling-time calibration: draw the output from a larger generated pool so that its marginals
match the model's released DP marginals (raking, i.e. iterative proportional fitting of row weights;
Deming & Stephan 1940), instead of taking the generator's rows as they come.

Why. A generator trained by DP-SGD (and by a loss towards noisy marginals) ends training with
its 1-way and 2-way marginals still some way from the DP statistics it was given: on the benchmark
suite, column shapes trailed independent marginals and pair trends trailed MST (BENCHMARKS.md).
Both targets are already released, so matching them more closely costs no privacy:

- every categorical or boolean column's DP frequencies, and every nullable numeric's DP null rate,
  from the codec's charged histograms;
- every numeric column's DP histogram, cell by cell (``Codec.mass_cells``: a bin released on its own,
  or a run of sparse bins released as one sum), under the default quantile encoding;
- every pair table, and every 3-way table with the target, measured by models/marginals.py (noisy,
  projected to the simplex; the 3-way ones after the pairs in each sweep).

A numeric column is raked to the cells its histogram was released in, never finer: which cell a
pool row's value falls in is set by the generator, and inside a cell the generator's own shape is
kept (rows are chosen, no value is moved). An earlier target, "uniform in the encoded CDF" (equal
cells of the DP CDF), imposed a shape the histogram never measured inside its wide bins and made
column shapes worse (nassCDS ``weight``: KS complement 0.90 → 0.57).

Order. In each sweep the pair tables come first, then the numeric histograms, then the discrete
1-way targets, so that a sweep ends on the released 1-way marginals. A pair table projected to the
simplex has margins that disagree with the codec's (its clipped noise puts mass on rare categories);
raked last, the pair tables pulled the sample's categories off their DP frequencies (Adult ε = 1:
``native-country`` TV 0.065 from its DP frequencies; workclass 0.03, against 0.004 between the DP
frequencies and the real ones). Measured on cached fits of the benchmark suite (shapes_diag, same
fit and sampling seed, old → new raking): column shapes Adult ε = 1 0.983 → 0.990, MplsStops 0.977
→ 0.986, nassCDS 0.977 → 0.988 (``weight`` 0.78 → 0.90), colon (6 fits) 0.945 → 0.954, with pair
trends up 0.002–0.01 and TSTR unchanged or up (benchmarks/results/shapes-diag-shapes.txt).

Settling. Ending each sweep on the 1-way targets does not make the sample meet them: each 1-way
rake undoes part of the one before (education after education-num, marital-status after
relationship), and the next sweep's pair tables pull again. On an Adult ε = 1 fit the weighted pool
sat 0.008–0.013 TV from workclass', education's and marital-status' targets, which were themselves
0.002–0.005 from the real frequencies. So ``SETTLE_SWEEPS`` more sweeps over the categorical 1-way
targets alone follow: they move the weights no more than the conflict among those targets needs.
Measured on the same fits and sampling seeds (round 2 session 10; ``python -m benchmarks.shapes_diag
summary lastbins,settle,settleall``, 2 fits each, diamonds ε = 3 4; ``repeat`` for colon, 4 fits × 5
sampling seeds, and nassCDS, 2 × 3), no settling → categorical targets (the default) → every 1-way
target, numeric cells included:

    column shapes  Adult ε = 1 0.9880 → 0.9909 → 0.9907, ε = 3 0.9923 → 0.9934 → 0.9935;
                   MplsStops ε = 1 0.9866 → 0.9890 → 0.9901, ε = 3 0.9887 → 0.9901 → 0.9908;
                   diamonds ε = 3 0.9720 → 0.9723 → 0.9730; nassCDS +0.0008 / +0.0005 (± 0.0002);
                   colon +0.0011 / +0.0008 (± 0.0008)
    pair trends    Adult ε = 1 0.9675 → 0.9693 → 0.9694; MplsStops ε = 1 0.9612 → 0.9630 → 0.9634,
                   ε = 3 0.9742 → 0.9752 → 0.9760; diamonds ε = 3 0.9783 → 0.9786 → 0.9793
    TSTR           Adult ε = 3 0.8931 → 0.8939 → 0.8928; MplsStops ε = 1 0.8798 → 0.8819 → 0.8792,
                   ε = 3 0.8963 → 0.8927 → 0.8944; diamonds ε = 3 (R²) 0.8920 → 0.8921 → 0.8876

Settling the numeric cells as well cost diamonds ε = 3 0.0044 R² (4 paired fits, 3 of them lower; in
the suite, 6 fits, 0.878 against sessions 7–9's 0.889–0.891): its numerics are near functions of one
another (carat, x, y, z, price), and forcing each one's fine DP cells, whose noise disagrees, picks
rows against the joint the generator learnt. It gained MplsStops 0.001 of column shapes. Not kept.

How. For each output chunk of ``m`` rows the model generates ``POOL_FACTOR`` × m rows, weights
them by capped raking (each sweep multiplies a row's weight by target / current share of its cell,
for every target in turn; weights are capped at ``POOL_FACTOR`` × their mean so that no row's
inclusion probability exceeds 1), and keeps ``m`` rows by systematic sampling with probability
proportional to weight (Madow 1949): every pool row is kept at most once, so the calibration adds
no duplicate. Cells a target puts at zero (a noisy count projected away) are not emptied: a row's
factor is floored at ``FLOOR`` per sweep, the generator's belief tempering the measurement's.

A categorical column's 1-way target is the inverse-variance pool of the codec's histogram and the raw
margins of every pair table that holds it (``Measured.one_way``, models/marginals.py ``pool_one_way``),
where the measurement made one; else the codec's frequencies.

Tried and left out: pooling from the *projected* pair tables and raking the pair tables to agree: the
projected tables' margins are biased on rare categories, and Adult's categories got worse (ε = 1, one
fit: 0.9825 → 0.9818). Fitting each projected table to the pooled 1-way targets (IPF) before raking
(round 2 session 7, ε = 1, 2 fits each, same fits and sampling seeds): Adult's native-country shape
0.966 → 0.974, but column shapes level on Adult and MplsStops (0.9881 → 0.9881, 0.9870 → 0.9868), TSTR
−0.0005 and −0.0014 there and +0.009 on colon: no consistent gain.
Trusting a noisy pair table less (raking exponent TOLERANCE / its expected noise
error). On the two small tables it was tried on at ε = 1 (colon, 930 rows; a 1,500-row sample of
Adult; 2–3 fits each) it moved pair trends by +0.012 and −0.025: no consistent gain.

Factorising (``factorise``, set when the DP-SGD critic did not train). Such a generator learnt the
released marginals and nothing else; whatever else ties its columns together comes from its one latent,
not from the data. So after the draw, the groups of columns that no released table ties
(``independent_groups``) are shuffled independently among the rows of each target class: every released
marginal is kept as drawn, and the rest is what the largest-entropy table under them would say
(independence given the target). Measured on the same fits and sampling seeds (round 2 session 10,
``python -m benchmarks.shapes_diag summary nofactor,settle``):
colon ε = 1 (12 fits, 4–10 groups each) pair trends +0.0024 (up in every fit), TSTR −0.0001; colon
ε = 3 (8 fits, 6 of them one group, nothing to do) pairs −0.0002, TSTR −0.0009; pd_speech ε = 1
(1 fit, every table swamped by its noise, see ``marginals.shrink_to_independence``) pair trends
0.926 → 0.966, the synthetic features' mean |correlation| 0.145 → 0.060 (the real one 0.146, mostly
what the DP statistics cannot show at 176 rows).

Everything here reads the generated pool and the released statistics only: post-processing of
DP outputs, with randomness from the caller's (public) sampling stream.
"""

from __future__ import annotations

import numpy as np

from synthgate.models.codec import Codec
from synthgate.models.marginals import Measured, Variable, discretise, one_way, variables

POOL_FACTOR = 4
SWEEPS = 12
SETTLE_SWEEPS = 12  # then sweeps over the categorical 1-way targets alone (see Settling)
FLOOR = 0.2  # the least a sweep multiplies a row's weight by
TINY_SHARE = 1e-12  # a cell with less of the weight is left as it is


def _null_cells(x: np.ndarray, v: Variable) -> np.ndarray:
    assert v.null_start is not None
    return (x[:, v.null_start + 1] > x[:, v.null_start]).astype(np.int64)


class Calibrator:
    """The released marginals of one model, and the raking that draws an output from a pool."""

    def __init__(
        self,
        codec: Codec,
        measured: Measured | None,
        *,
        numeric_cells: bool = True,
        one_way_last: bool = True,
        settle_sweeps: int = SETTLE_SWEEPS,
        settle_numeric: bool = False,
        factorise: bool = False,
        measured_ties: bool = False,
    ) -> None:
        """``numeric_cells``: rake each numeric column to its DP histogram's cells (quantile encoding;
        else its null rate only). ``one_way_last``: the 1-way targets come after the pair tables in
        each sweep (see Order above). ``settle_sweeps``: sweeps over the categorical 1-way targets alone
        after the others (with ``one_way_last``; ``settle_numeric``: the numeric cells too). Both False
        and 0 is the raking before 2026-12, kept for comparisons (benchmarks/shapes_diag.py). ``factorise``: the drawn rows' column groups that no
        released marginal ties together are made independent given the target (``independent_groups``;
        for a generator that learnt from the released marginals alone, i.e. without the DP-SGD critic).
        ``measured_ties``: with ``factorise``, every measured table ties its columns, the ones released as
        independent too (the rule for a generator that also learnt from the critic)."""
        self.codec = codec
        self.measured = measured
        self.variables = measured.variables if measured is not None else []
        self.one_way_last = one_way_last
        self.settle_sweeps = settle_sweeps
        self.settle_numeric = settle_numeric
        self._strata, self._groups = (
            independent_groups(codec, measured, measured_ties=measured_ties) if factorise else (None, [])
        )
        self._one_way: list[tuple[Variable, np.ndarray]] = []
        self._by_cells: set[str] = set()  # numeric columns raked to their histogram's cells
        for v in variables(codec):
            if v.kind != "tanh":
                pooled = measured.one_way.get(v.column) if measured is not None and v.role == "value" else None
                self._one_way.append((v, pooled if pooled is not None else one_way(codec, v)))
                continue
            r = float(codec.null_rate.get(v.column, 0.0)) if v.null_start is not None else 0.0
            if numeric_cells and codec.numeric_encoding == "quantile":
                _, mass = codec.mass_cells(v.column)
                t = mass / mass.sum() * (1.0 - r)
                self._by_cells.add(v.column)
                self._one_way.append((v, np.append(t, r) if v.null_start is not None else t))
            elif v.null_start is not None:  # the DP null rate only; the values keep the generator's shape
                self._one_way.append((v, np.array([1.0 - r, r])))

    @property
    def targets(self) -> int:
        return len(self._one_way) + (len(self.measured.cliques()) if self.measured is not None else 0)

    def _one_way_cells(self, x: np.ndarray, v: Variable, t: np.ndarray) -> np.ndarray:
        if v.kind != "tanh":
            return x[:, v.start : v.start + v.width].argmax(1)
        if v.column not in self._by_cells:  # null rate only
            return _null_cells(x, v)
        cells = self.codec.encoded_cells(v.column, x)
        return cells if v.null_start is None else np.where(_null_cells(x, v) == 1, t.size - 1, cells)

    def _cells(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(cell index of each pool row, target shares) per released marginal, in raking order."""
        one = [(self._one_way_cells(x, v, t), t) for v, t in self._one_way]
        pairs = []
        cliques = self.measured.cliques() if self.measured is not None else []
        if cliques:  # the pair tables, then the 3-way ones
            codes = discretise(x, self.variables)
            for idx, table in cliques:
                flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), table.shape)
                pairs.append((flat, table.ravel()))
        if not self.one_way_last:
            return one + pairs
        # the numeric histograms before the discrete 1-way targets: raked last, the coarse cells of a
        # small table's numeric histogram pulled its categories off (colon ε = 1: 0.955 → 0.942)
        numeric = [c for c, (v, _) in zip(one, self._one_way, strict=True) if v.kind == "tanh"]
        discrete = [c for c, (v, _) in zip(one, self._one_way, strict=True) if v.kind != "tanh"]
        return pairs + numeric + discrete

    def weights(self, x: np.ndarray, *, sweeps: int = SWEEPS, cap: float = POOL_FACTOR) -> np.ndarray:
        """Raking weights of the pool rows ``x`` (mean 1, each at most ``cap``)."""
        targets = self._cells(x)
        w = np.ones(x.shape[0])
        n_one = len(self._one_way) if self.settle_numeric else sum(v.kind != "tanh" for v, _ in self._one_way)
        # the categorical 1-way targets (and, with settle_numeric, the numeric cells): the last in order
        settle = targets[-n_one:] if self.one_way_last and n_one else []
        for sweep in range(sweeps + (self.settle_sweeps if settle else 0)):
            for c, t in targets if sweep < sweeps else settle:
                share = np.bincount(c, weights=w, minlength=t.size) / w.sum()
                # a cell whose rows' weights the floors have driven to nothing counts as empty (dividing by
                # its share overflowed on pd_speech's 1,502 tables)
                factor = np.divide(t, share, out=np.ones_like(t), where=share > TINY_SHARE)
                w *= np.maximum(factor, FLOOR)[c]
                w /= w.mean()
                np.minimum(w, cap, out=w)
                w /= w.mean()
        return np.minimum(w, cap)

    def select(self, x: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` rows of the pool ``x`` (POOL_FACTOR × m rows or more): see ``select_index``; then, with
        ``factorise``, each column group but the first shuffled among the rows of its target stratum."""
        rows = x[self.select_index(x, m, rng)]
        if not self._groups:
            return rows
        strata = np.zeros(len(rows), dtype=np.int64) if self._strata is None else discretise(rows, [self._strata])[:, 0]
        for s in np.unique(strata):
            at = np.flatnonzero(strata == s)
            for slots in self._groups[1:]:
                rows[np.ix_(at, slots)] = rows[np.ix_(rng.permutation(at), slots)]
        return rows

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


def independent_groups(
    codec: Codec, measured: Measured | None, *, measured_ties: bool = False
) -> tuple[Variable | None, list[np.ndarray]]:
    """(the target's variable or None, each group's encoded slots): the modelled columns other than the
    target, grouped by the released marginals that tie them together (union of every measured pair and
    3-way table's non-target columns; a pair table released as independent, ``Measured.independent``,
    ties nothing, unless ``measured_ties``: then every measured table ties its columns). Fewer than two
    groups: no groups.

    ``measured_ties`` is the rule for a generator that also learnt from the DP-SGD critic: a table
    released as independent may hide a dependence the critic saw, but a pair no table measured has no
    released evidence at all, and on a wide table the critic's noisy signal did not hold the latent's
    dependence there to the data's. ISLR::Caravan (86 columns, 170 of 3,655 pairs measured, critic on at
    ε = 3 and 10): the unmeasured pairs' mean |Δρ| was 0.075 against independence's 0.057; drawn
    factorised, the same fits' pair trends rose by about 0.011 (BENCHMARKS.md, "Round 2 session 13").
    A table whose measured tables join every column (every pair measured, as on every suite table
    wherever its critic trains but Caravan; or enough of them, as flchain's 24 of 45 at ε = 3) has one
    group: nothing changes.

    The largest entropy a table can have under the released marginals makes such groups independent
    given the target. A generator trained on those marginals alone is not held to that: its one latent
    drives every column. On pd_speech (752 features, 176 rows, every table released as independent) its
    features' mean |correlation| was 0.145 where the real one is 0.146 but the DP statistics show none;
    factorised, 0.060 (pair trends 0.926 → 0.966). Shuffling a group among the rows of
    one target stratum keeps every released marginal as drawn (each lies inside one group with the
    target) and removes the rest. Reads the contract's layout and released statistics only."""
    if measured is None:
        return None, []
    target = codec.contract.target if codec.contract.target in codec.columns else None
    columns = [c for c in codec.columns if c != target]
    parent = {c: c for c in columns}

    def root(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    # ``measured_ties``: every measured table ties its columns, the ones released as independent too
    released_independent = set() if measured_ties else set(measured.independent)
    for k, (idx, _) in enumerate(measured.cliques()):
        if k < len(measured.pairs) and k in released_independent:
            continue
        tied = sorted({measured.variables[i].column for i in idx} - {target})
        for c in tied[1:]:
            parent[root(c)] = root(tied[0])
    groups: dict[str, list[str]] = {}
    for c in columns:
        groups.setdefault(root(c), []).append(c)
    if len(groups) < 2:
        return None, []
    strata = next((v for v in measured.variables if v.column == target and v.role == "value"), None)
    slots = [
        np.concatenate([np.arange(b.start, b.start + b.width) for b in codec.blocks if b.column in members])
        for members in sorted(groups.values(), key=len, reverse=True)
    ]
    return strata, slots


__all__ = ["FLOOR", "POOL_FACTOR", "SETTLE_SWEEPS", "SWEEPS", "Calibrator", "independent_groups"]
