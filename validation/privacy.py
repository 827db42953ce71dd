"""Privacy checks that compare the synthetic table with the training rows and a holdout.

Every check here reads private rows (train and holdout) and is *not* charged to the DP
ledger: it is an evaluation, and only its aggregates (shares, medians, counts) may leave
this module. Nothing in a result's ``details`` is a row or a value of a row.

Distance used throughout (``validation.encoding.encode_for_distance``): the Euclidean combination of per-column
distances, where a numeric column (continuous, integer, datetime as epoch seconds) contributes
``|Δ| / (max - min)`` with the *contract* bounds, and a categorical or boolean column
contributes 0 when the values are equal and 1 when they differ (null is its own category).
So ``d(a, b) = sqrt(Σ_numeric (|a_j - b_j| / range_j)² + #categorical mismatches)``.

Distance checks: ``dcr_share`` (share of synthetic rows closer to train than to holdout),
``near_copy_share`` (synthetic rows that are near copies of a training row, beyond chance),
``nndr`` (nearest / second-nearest distance ratio, train vs holdout) and ``dcr_share_subsets``
(the DCR share on column subsets, worst one gated); ``distance_checks`` runs all four and
shares their neighbour searches.

Which gate carries the burden of proof: ``near_copy_share`` must *show* (upper end of its interval)
that no more synthetic rows sit on training records than chance puts there; the DCR shares block on
*evidence* (lower end of the interval past the threshold). A model fitted to the training rows'
aggregates, a trusted DP mechanism included, is a little closer to its training sample than to unseen
rows everywhere (measured, benchmarks/false_blocks.py: smartnoise MST at ε = 1 on 1,300 rows of
survival::colon, DCR share 0.543 [0.512, 0.573]): that is a fit to the sample, not a copied record,
and DP does not forbid it (by a per-record argument ε-DP only keeps the share's odds under about
e^ε, a share of 0.73 at ε = 1). Copied records are
what the near-copy share looks for. Searches are exact brute force with scikit-learn, chunked,
so memory grows with the rows, never with synthetic x reference pairs.

The canonical frames, the distance encoding and the row subsampling come from
``validation.encoding``, which mia, anonymeter, fidelity and the public report share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal, cast

import numpy as np
import polars as pl
from scipy.stats import binomtest, norm
from sklearn.metrics import pairwise_distances_chunked

from synthgate.validation.contract import Contract, Gates
from synthgate.validation.encoding import (
    ColumnBlock,
    canonical_frame,
    column_values,
    distance_layout,
    encode_columns,
    nearest_distances,
    subsample_index,
    subsample_rows,
    used_slots,
)
from synthgate.validation.results import MetricResult, min_rows_to_pass, upper_bound_gate
from synthgate.validation.stats import check_confidence, cramers_v_matrix, paired_difference_ci

__all__ = [
    "dcr_share",
    "near_copy_share",
    "dcr_share_subsets",
    "distance_checks",
    "identical_match_share",
    "nndr",
]

# Distances closer than this (a millionth of a column's range) are ties: the float32 encoding
# and the BLAS distance expansion are accurate to ~1e-7 for identical rows.
_TIE_TOLERANCE = 1e-6
DEFAULT_MAX_SYNTHETIC_ROWS = 20_000
# Column subsets: each costs a full search, so fewer synthetic rows are scored per subset.
DEFAULT_SUBSET_SYNTHETIC_ROWS = 5_000
# Three random and three correlated subsets, as mostlyai-qa checks three of each.
DEFAULT_N_RANDOM_SUBSETS = 3
DEFAULT_N_CORRELATED_SUBSETS = 3
# Near copies: a synthetic row is a near copy of a reference when it lies closer to it than all but
# this share of unseen real rows lie to the same reference (the chance level of the near-copy share).
NEAR_COPY_QUANTILE = 0.05
# NNDR is summarised by this percentile of the per-row ratios (the most exposed rows).
NNDR_PERCENTILE = 5
# Numeric columns are cut into this many quantile bins to measure association.
_ASSOCIATION_BINS = 10
# The correlated subsets measure the association of every pair of at most this many columns
# (a seeded draw on a wider table), then each anchor's with every column: pairs measured stay
# under 256²/2 + 3 x columns, so a 750-column table costs seconds, not minutes of 280k pairs.
_ASSOCIATION_CANDIDATES = 256
# Largest distance block held at once when counting tied neighbours (scikit-learn's
# working_memory, MiB); the default of 1 GiB would be a large peak on a large reference.
_WORKING_MEMORY_MIB = 64
# Reference rows cast to float64 at a time when counting tied neighbours (~60 MB at 110 wide).
_REFERENCE_BLOCK = 65_536
_DISTANCE_NOTE = "Euclidean over columns: numeric |Δ|/contract range, categorical 0/1"

IDENTICAL_MATCH_DESCRIPTION = (
    "Share of synthetic rows that are exact copies of a training record, compared with the "
    "share that copy an unseen real record; a higher training share means records were "
    "memorised."
)
DCR_DESCRIPTION = (
    "Share of synthetic rows that sit closer to a training record than to an unseen real "
    "record; 0.5 means the generator learned the population, not the people."
)
NNDR_DESCRIPTION = (
    "How much nearer each synthetic row is to its closest real record than to the next "
    "closest; if synthetic rows sit markedly nearer one particular training record than they "
    "do to unseen real records, individual people were copied."
)
NEAR_COPY_DESCRIPTION = (
    "Share of synthetic rows that are near copies of a training record (closer to one than all "
    "but 5% of unseen real records are), beyond the share that are as near an unseen real "
    "record; on the DCR share's scale, 0.5 means no record was copied."
)
SUBSET_DESCRIPTION = (
    "Among groups of related columns and random groups of columns, the highest share of "
    "synthetic rows closer to a training record than to an unseen real record; a high share "
    "means some columns were copied from real people even where whole rows were not."
)


# --- identical matches -----------------------------------------------------------------------


def _exact_match_share(synthetic: pl.DataFrame, reference: pl.DataFrame) -> float:
    """Share of synthetic rows equal (all columns, null == null) to some reference row."""
    matched = synthetic.join(reference.unique(), on=synthetic.columns, how="semi", nulls_equal=True).height
    return matched / synthetic.height


IDENTICAL_MATCH_PERMUTATIONS = 400  # reference splits drawn for the no-leak spread of the excess


def _exact_match_excess_null(
    synthetic: pl.DataFrame, train_ref: pl.DataFrame, holdout_ref: pl.DataFrame, rng: np.random.Generator, draws: int
) -> np.ndarray:
    """The train-minus-holdout excess of exact-match shares over ``draws`` random splits of the pooled
    reference rows into two halves of the same sizes: its spread where the two references are
    exchangeable, i.e. where no synthetic row is closer to the training rows than to unseen ones.

    On a table of few distinct rows (AER::DoctorVisits: 12 columns of flags and small counts, a third
    of its rows repeating another) which rows of a rare kind land in the train half or the holdout half
    moves the two shares apart by chance alone: fresh real rows, never trained on, failed the plain
    ``excess <= tolerance`` gate in 4 of 20 splits (``benchmarks/false_blocks.py``). Rows are matched by
    a 64-bit hash of all their values (null equal to null), the shares themselves by exact joins."""
    pooled = pl.concat([train_ref, holdout_ref], how="vertical_relaxed")
    keys, key_id = np.unique(pooled.hash_rows(seed=0).to_numpy(), return_inverse=True)
    syn_keys = synthetic.hash_rows(seed=0).to_numpy()
    pos = np.clip(np.searchsorted(keys, syn_keys), 0, len(keys) - 1)
    known = keys[pos] == syn_keys
    copies = np.bincount(pos[known], minlength=len(keys)).astype(np.float64)  # synthetic rows per pooled key
    m = train_ref.height
    out = np.empty(draws)
    for r in range(draws):
        order = rng.permutation(pooled.height)
        in_a = np.zeros(len(keys), dtype=bool)
        in_b = np.zeros(len(keys), dtype=bool)
        in_a[key_id[order[:m]]] = True
        in_b[key_id[order[m:]]] = True
        out[r] = float(copies @ in_a - copies @ in_b) / synthetic.height
    return out


def identical_match_share(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    *,
    contract: Contract | None = None,
    tolerance: float | None = None,
    seed: int = 0,
) -> MetricResult:
    """Share of synthetic rows that exactly copy a training row, against the holdout's share.

    Exact equality over all modelled columns (null equals null), computed with polars semi
    joins. The larger of train and holdout is subsampled (seeded) to the smaller's size so
    the two shares are comparable: a fresh sample from the population copies a same-size set
    of train rows as often as it copies the holdout.

    Gate: ``train share <= holdout share + tolerance``; ``value`` is the train share and the
    threshold is the holdout share plus the tolerance. A failed gate is a ``fail`` (evidence of
    memorised rows) only when the excess is past what chance gives: ``ci`` is the train share less
    the 97.5th and 2.5th percentiles of the excess over ``IDENTICAL_MATCH_PERMUTATIONS`` random splits
    of the pooled reference rows (``_exact_match_excess_null``), and ``ideal`` (the no-leak value) is
    the holdout share; where the release's family-wise interval holds it, the block is
    ``inconclusive`` (``MetricResult.outcome``), which blocks only with ``gates.block_inconclusive``.
    A copy of the training table (excess 0.4 on Adult) stays a fail.

    Args:
        synthetic, train, holdout: frames with exactly ``contract.modelled_columns``.
        contract: the data contract. With it, columns are checked and cast to canonical
            dtypes (so an Int64 column equals the same values as Float64); without it the
            three frames must already share one schema.
        tolerance: allowed excess of the train share; defaults to
            ``contract.gates.identical_match_tolerance`` (0.01 without a contract).
        seed: seed of the subsample.
    """
    if tolerance is not None:
        tol = float(tolerance)
    elif contract is not None:
        tol = contract.gates.identical_match_tolerance
    else:
        tol = Gates().identical_match_tolerance
    if not 0.0 <= tol <= 1.0:
        raise ValueError(f"`tolerance` must be in [0, 1]. Got {tol}. Set gates.identical_match_tolerance.")
    if contract is not None:
        syn = canonical_frame(synthetic, contract, role="synthetic")
        tr = canonical_frame(train, contract, role="train")
        ho = canonical_frame(holdout, contract, role="holdout")
    else:
        syn, tr, ho = synthetic, train, holdout
        for role, frame in (("train", tr), ("holdout", ho)):
            if frame.schema != syn.schema:
                raise ValueError(
                    f"`{role}` and `synthetic` have different schemas (column names or "
                    "dtypes). Pass `contract=` to check and cast them, or select and cast "
                    "the same columns first."
                )
        if min(syn.height, tr.height, ho.height) == 0:
            raise ValueError("synthetic, train and holdout must all have rows.")
    m = min(tr.height, ho.height)
    rng = np.random.default_rng(seed)
    tr_ref = subsample_rows(tr, m, rng)
    ho_ref = subsample_rows(ho, m, rng)
    train_share = _exact_match_share(syn, tr_ref)
    holdout_share = _exact_match_share(syn, ho_ref)
    threshold = holdout_share + tol
    null = _exact_match_excess_null(syn, tr_ref, ho_ref, rng, IDENTICAL_MATCH_PERMUTATIONS)
    low, high = (float(q) for q in np.quantile(null, [0.025, 0.975]))
    ci = (min(1.0, max(0.0, train_share - high)), min(1.0, max(0.0, train_share - low)))
    return MetricResult(
        name="identical_match_share",
        value=train_share,
        threshold=threshold,
        passed=train_share <= threshold,
        direction="max",
        ci=ci,
        gated_value=train_share,
        kind="privacy",
        description=IDENTICAL_MATCH_DESCRIPTION,
        ideal=holdout_share,
        details={
            "train_share": train_share,
            "holdout_share": holdout_share,
            "tolerance": tol,
            "excess": train_share - holdout_share,
            "no_leak_excess_95": [low, high],
            "ci_method": f"train share less the 2.5th and 97.5th percentiles of the excess over "
            f"{IDENTICAL_MATCH_PERMUTATIONS} random halvings of the pooled reference rows",
            # Against every training row: not comparable with holdout_share when the sizes
            # differ, but the plain answer to "how many rows are copies?".
            "train_share_all_rows": _exact_match_share(syn, tr),
            "reference_rows_each": m,
            "synthetic_rows": syn.height,
            "method": "exact equality on all modelled columns (null == null); the larger of "
            "train/holdout subsampled to the smaller's size",
        },
    )


# --- distance to closest record --------------------------------------------------------------
#
# Every distance check runs on one ``_Tables``: the three tables checked and encoded once on
# a shared layout, with each reference (train, holdout) ordered so that its first ``m`` rows
# are a seeded subsample of size ``m = min(n_train, n_holdout)`` (the "equal-size part").
# A nearest-neighbour search over a reference is then one search over the equal-size part
# (k = 2 when NNDR needs the second neighbour) plus, where the whole reference counts, one
# k = 1 search over the rest: each synthetic x reference distance is computed once.
#
# Seeds: ``SeedSequence(seed).spawn(5)`` gives [synthetic subsample, reference split,
# subset choice, synthetic subsample for the subsets, association candidates on a wide table]
# (spawn's first children do not depend on how many are spawned); every public check uses the same
# streams, so ``distance_checks`` reproduces each check called alone with the same seed.


@dataclass(frozen=True)
class _Tables:
    """The three tables, checked, and encoded on one layout (synthetic rows on demand)."""

    layout: dict[str, ColumnBlock]
    syn_values: dict[str, np.ndarray]
    syn_total: int
    train: np.ndarray  # encoded; rows [:m] are the equal-size part
    holdout: np.ndarray  # encoded; rows [:m] are the equal-size part
    train_codes: dict[str, np.ndarray]  # per column, codes of distinct values; rows as train
    holdout_codes: dict[str, np.ndarray]
    m: int
    seeds: tuple[np.random.SeedSequence, ...]

    def synthetic_rows(self, cap: int | None, stream: int) -> np.ndarray:
        """Indices of the synthetic rows scored: all, or ``cap`` drawn from seed ``stream``."""
        n = self.syn_total if cap is None else cap
        return subsample_index(self.syn_total, n, np.random.default_rng(self.seeds[stream]))

    def references(self, balance: str) -> tuple[np.ndarray, np.ndarray]:
        """(train, holdout) a synthetic row is compared with: whole, or equal-size parts."""
        if balance == "subsample":
            return self.train[: self.m], self.holdout[: self.m]
        return self.train, self.holdout

    def reference_codes(self, balance: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The value codes of the rows ``references(balance)`` returns."""
        if balance == "subsample":
            return (
                {k: v[: self.m] for k, v in self.train_codes.items()},
                {k: v[: self.m] for k, v in self.holdout_codes.items()},
            )
        return self.train_codes, self.holdout_codes


def _value_codes(values: dict[str, np.ndarray], rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per column, an int code per distinct value (all nulls one value), to group equal rows."""
    return {
        name: np.unique(v if rows is None else v[rows], return_inverse=True)[1].ravel().astype(np.int32)
        for name, v in values.items()
    }


def _distinct(codes: dict[str, np.ndarray], names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows equal on the columns ``names``: (one row index per distinct combination, row ->
    combination, rows per combination). Columns are combined one at a time and re-coded, so
    the key stays below rows² and never overflows."""
    key = np.zeros(len(codes[names[0]]), dtype=np.int64)
    for name in names:
        c = codes[name].astype(np.int64)
        key = np.unique(key * (int(c.max()) + 1) + c, return_inverse=True)[1].ravel()
    _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    return first, inverse.ravel(), counts


def _equal_part_first(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)``: a seeded subsample of ``m`` rows (sorted), then the rest."""
    inside = subsample_index(n, m, rng)
    if len(inside) == n:
        return inside
    return np.concatenate([inside, np.setdiff1d(np.arange(n), inside, assume_unique=True)])


def _tables(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    seed: int,
) -> _Tables:
    """Check and encode the tables once for any of the distance checks (see above)."""
    syn = canonical_frame(synthetic, contract, role="synthetic")
    tr = canonical_frame(train, contract, role="train")
    ho = canonical_frame(holdout, contract, role="holdout")
    seeds = tuple(np.random.SeedSequence(seed).spawn(5))
    m = min(tr.height, ho.height)
    ref_rng = np.random.default_rng(seeds[1])
    tr_order = _equal_part_first(tr.height, m, ref_rng)
    ho_order = _equal_part_first(ho.height, m, ref_rng)
    syn_values = column_values(syn, contract)
    tr_values = column_values(tr, contract)
    ho_values = column_values(ho, contract)
    layout = distance_layout(contract, used_slots(contract, [syn_values, tr_values, ho_values]))
    return _Tables(
        layout=layout,
        syn_values=syn_values,
        syn_total=syn.height,
        train=encode_columns(tr_values, layout, tr_order),
        holdout=encode_columns(ho_values, layout, ho_order),
        train_codes=_value_codes(tr_values, tr_order),
        holdout_codes=_value_codes(ho_values, ho_order),
        m=m,
        seeds=seeds,
    )


def _nearest_distance(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    return nearest_distances(reference, query, 1)[:, 0]


def _side(reference: np.ndarray, m: int, query: np.ndarray, *, k: int, whole: bool) -> tuple[np.ndarray, np.ndarray]:
    """(nearest distance over the reference, (n, k) distances within its equal-size part).

    ``whole=False`` takes the nearest distance within the equal-size part only.
    """
    part = nearest_distances(reference[:m], query, k)
    nearest = part[:, 0]
    if whole and reference.shape[0] > m:
        nearest = np.minimum(nearest, _nearest_distance(reference[m:], query))
    return nearest, part


def _count_within(
    reference: np.ndarray,
    query: np.ndarray,
    radius: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """For each query row, how many reference rows lie within its own radius (chunked).

    ``weights`` gives each reference row's multiplicity (a deduplicated reference); None
    counts every row once. Identical query rows are counted once (heavy ties on a few
    discrete columns repeat the same rows many times). The reference is taken in blocks of
    ``_REFERENCE_BLOCK`` rows cast to float64, where scikit-learn's
    ``pairwise_distances_chunked`` takes its fast path (its float32 path re-batches in
    Python), and each distance chunk stays under ``_WORKING_MEMORY_MIB``.
    """
    counts = np.zeros(query.shape[0], dtype=np.int64)
    if query.shape[0] == 0:
        return counts
    unique, inverse = np.unique(query, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    # Identical rows have the same nearest distances up to rounding; the largest radius
    # among them keeps every tied neighbour (the radius carries a 1e-6 margin anyway).
    r = np.full(len(unique), -np.inf)
    np.maximum.at(r, inverse, radius)
    q64 = unique.astype(np.float64)

    per_unique = np.zeros(len(unique), dtype=np.int64)
    for lo in range(0, reference.shape[0], _REFERENCE_BLOCK):
        block = reference[lo : lo + _REFERENCE_BLOCK].astype(np.float64)
        w = None if weights is None else weights[lo : lo + _REFERENCE_BLOCK].astype(np.float64)

        def _reduce(chunk: np.ndarray, start: int, w: np.ndarray | None = w) -> np.ndarray:
            within = chunk <= r[start : start + chunk.shape[0], None]
            if w is None:
                return within.sum(axis=1)
            return np.rint(within.astype(np.float64) @ w).astype(np.int64)  # BLAS, exact

        pos = 0
        chunks = pairwise_distances_chunked(q64, block, reduce_func=_reduce, working_memory=_WORKING_MEMORY_MIB)
        for part in chunks:
            per_unique[pos : pos + part.shape[0]] += part
            pos += part.shape[0]
    return per_unique[inverse]


def _size_adjusted(share: float, chance: float) -> float:
    """Map a raw share whose chance level is ``chance`` onto a scale where chance is 0.5.

    Keeps the odds ratio to chance: ``s' / (1 - s') = (s / (1 - s)) / (chance / (1 - chance))``.
    Monotone, so a confidence interval maps end to end; identity when ``chance == 0.5``.
    """
    num = share * (1.0 - chance)
    den = num + (1.0 - share) * chance
    return num / den if den > 0 else 0.5


def _dcr_power_floor(
    n: int, chance: float, confidence: float, threshold: float, estimates: int = 1
) -> tuple[float, int | None]:
    """The size-adjusted upper bound a synthetic table at chance level (no row closer to train
    than chance says) would get with ``n`` scored rows, and the rows at which it clears ``threshold``.

    ``estimates`` > 1: the gate takes the worst (highest bound) of that many shares. A no-leak
    table's worst share is then not at chance but at the median of the maximum of K noisy
    shares: chance + z_K standard errors, z_K = Φ⁻¹(0.5^(1/K)) (independent shares; correlated
    subsets spread less, so this errs towards calling a block inconclusive, never towards passing)."""
    z = float(norm.ppf(0.5 ** (1.0 / estimates))) if estimates > 1 else 0.0

    def floor_at(m: int) -> float:
        k = min(m, math.ceil(m * chance + z * math.sqrt(m * chance * (1.0 - chance)) - 1e-9))
        return _size_adjusted(
            float(binomtest(k, m).proportion_ci(confidence_level=confidence, method="wilson").high), chance
        )

    now = floor_at(max(n, 1))
    return now, (min_rows_to_pass(floor_at, threshold, start=max(n, 1)) if now > threshold else None)


@dataclass(frozen=True)
class _Share:
    """A DCR share: size-adjusted value and interval, and the aggregates behind them."""

    value: float
    raw: float
    ci: tuple[float, float]
    chance: float
    closer_to_train: int
    closer_to_holdout: int
    ties: int
    n: int


def _share(
    query: np.ndarray,
    train_ref: np.ndarray,
    holdout_ref: np.ndarray,
    d_train: np.ndarray,
    d_holdout: np.ndarray,
    confidence: float,
    train_weights: np.ndarray | None = None,
    holdout_weights: np.ndarray | None = None,
    query_inverse: np.ndarray | None = None,
) -> _Share:
    """DCR share of ``query`` from its nearest distances to the two references.

    A tie (distances within ``_TIE_TOLERANCE``) is split by the fraction of the tied nearest
    reference rows that are train rows; the Wilson interval is for the raw share with the
    count rounded up, and share and interval are mapped so that chance is 0.5. Any of the
    three may be deduplicated: ``*_weights`` give a reference row's multiplicity, and
    ``query_inverse`` maps each scored synthetic row to its row of ``query``.
    """
    q = (d_train < d_holdout).astype(np.float64)
    tie = np.abs(d_train - d_holdout) <= _TIE_TOLERANCE
    q[tie] = 0.0
    if tie.any():
        radius = np.minimum(d_train, d_holdout)[tie] + _TIE_TOLERANCE
        n_t = _count_within(train_ref, query[tie], radius, train_weights)
        n_h = _count_within(holdout_ref, query[tie], radius, holdout_weights)
        # Both counts are >= 1 up to rounding at the radius; guard the division anyway.
        q[tie] = np.where(n_t + n_h > 0, n_t / np.maximum(n_t + n_h, 1), 0.5)
    if query_inverse is not None:
        q, tie = q[query_inverse], tie[query_inverse]
    n = len(q)
    raw = float(q.mean())
    n_train = train_ref.shape[0] if train_weights is None else int(train_weights.sum())
    n_holdout = holdout_ref.shape[0] if holdout_weights is None else int(holdout_weights.sum())
    chance = n_train / (n_train + n_holdout)
    k = min(n, math.ceil(float(q.sum()) - 1e-9))  # rounded up: errs towards blocking
    ci_raw = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return _Share(
        value=_size_adjusted(raw, chance),
        raw=raw,
        ci=(_size_adjusted(float(ci_raw.low), chance), _size_adjusted(float(ci_raw.high), chance)),
        chance=chance,
        closer_to_train=int(((q == 1.0) & ~tie).sum()),
        closer_to_holdout=int(((q == 0.0) & ~tie).sum()),
        ties=int(tie.sum()),
        n=n,
    )


def _ratio(knn: np.ndarray) -> np.ndarray:
    """d1 / d2 per row of a (n, 2) distance array.

    Distances within ``_TIE_TOLERANCE`` count as equal: an exact copy (d1 = 0 < d2) has
    ratio 0, and d1 = d2 has ratio 1, including 0/0 (two or more reference rows coincide
    with the synthetic row, so no single record stands out).
    """
    d1, d2 = knn[:, 0], knn[:, 1]
    out = np.ones(len(d1))
    apart = d2 - d1 > _TIE_TOLERANCE
    out[apart] = np.where(d1[apart] > _TIE_TOLERANCE, d1[apart], 0.0) / d2[apart]
    return out


def _check_cap(value: int | None, name: str, default: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"`{name}` must be an integer >= 1, or None for every synthetic row. Got {value!r}. "
            f"The default is {default}."
        )


def _check_options(balance: str, confidence: float) -> None:
    if balance not in ("reweight", "subsample"):
        raise ValueError(f"`balance` must be 'reweight' or 'subsample'. Got {balance!r}.")
    check_confidence(confidence)


def _check_nndr_rows(tables: _Tables) -> None:
    if tables.m < 2:
        raise ValueError(
            f"NNDR needs a second-nearest neighbour, so train and holdout must have at least 2 "
            f"rows each. The smaller has {tables.m}. Pass larger reference tables."
        )


def _evidence_gate(
    name: str,
    value: float,
    ci: tuple[float, float],
    threshold: float,
    *,
    description: str,
    details: dict[str, Any],
    estimates: int = 1,
    ci_level: float = 0.95,
) -> MetricResult:
    """A share that blocks on evidence: fails when the *lower* end of its interval is past
    ``threshold`` (the share is past it at the interval's confidence). In ``MetricResult.outcome``'s
    terms such a block is a ``fail`` while the lower end of the release's family-wise interval is
    still past the threshold, else ``inconclusive``. ``estimates``: ``ci`` is simultaneous over this
    many shares (the worst of K subsets) at ``ci_level``."""
    return MetricResult(
        name=name,
        value=value,
        threshold=threshold,
        passed=ci[0] <= threshold,
        direction="max",
        ci=ci,
        gated_value=ci[0],
        kind="privacy",
        description=description,
        details={**details, "gated_on": "lower end of the interval (blocks on evidence)"},
        ideal=0.5,
        estimates=estimates,
        ci_level=ci_level,
        evidence=True,
    )


def _dcr_result(
    share: _Share,
    tables: _Tables,
    d_train: np.ndarray,
    d_holdout: np.ndarray,
    *,
    threshold: float,
    balance: str,
    cap: int | None,
    confidence: float,
) -> MetricResult:
    train_ref, holdout_ref = tables.references(balance)
    floor, _ = _dcr_power_floor(share.n, share.chance, confidence, threshold)
    return _evidence_gate(
        "dcr_share",
        share.value,
        share.ci,
        threshold,
        ci_level=confidence,
        description=DCR_DESCRIPTION,
        details={
            "share": share.value,
            "raw_share": share.raw,
            "chance_share": share.chance,
            "balance": balance,
            "closer_to_train": share.closer_to_train,
            "closer_to_holdout": share.closer_to_holdout,
            "ties": share.ties,
            "median_dcr_train": float(np.median(d_train)),
            "median_dcr_holdout": float(np.median(d_holdout)),
            "synthetic_rows_used": share.n,
            "synthetic_rows_total": tables.syn_total,
            "synthetic_row_cap": cap,
            "train_reference_rows": train_ref.shape[0],
            "holdout_reference_rows": holdout_ref.shape[0],
            # the upper end a table at chance would get here: how wide the interval is at these rows
            "upper_end_at_chance": floor,
            "ci_method": f"Wilson {confidence:.0%} on the raw share, size-adjusted",
            "distance": _DISTANCE_NOTE,
        },
    )


def _dcr_with_neighbours(
    tables: _Tables,
    contract: Contract,
    k: int,
    cap: int | None,
    balance: str,
    confidence: float,
    near: bool = False,
) -> tuple[MetricResult, MetricResult | None, np.ndarray, np.ndarray]:
    """DCR share from one k-nearest search per reference; also the near-copy share (``near``)
    from the same nearest distances, and the k-NN distances."""
    s = encode_columns(tables.syn_values, tables.layout, tables.synthetic_rows(cap, 0))
    whole = balance == "reweight"
    d_train, knn_train = _side(tables.train, tables.m, s, k=k, whole=whole)
    d_holdout, knn_holdout = _side(tables.holdout, tables.m, s, k=k, whole=whole)
    share = _share(s, *tables.references(balance), d_train, d_holdout, confidence)
    dcr = _dcr_result(
        share,
        tables,
        d_train,
        d_holdout,
        threshold=contract.gates.max_dcr_share,
        balance=balance,
        cap=cap,
        confidence=confidence,
    )
    copies = (
        _near_copy_result(
            tables,
            d_train,
            d_holdout,
            threshold=contract.gates.max_dcr_share,
            balance=balance,
            cap=cap,
            confidence=confidence,
        )
        if near
        else None
    )
    return dcr, copies, knn_train, knn_holdout


# --- near copies -----------------------------------------------------------------------------


def _near_weights(d: np.ndarray, real: np.ndarray, quantile: float) -> tuple[np.ndarray, float, float]:
    """How much each synthetic row (nearest distance ``d`` to a reference) counts as a near copy
    of that reference, where ``real`` are unseen real rows' nearest distances to the same reference.

    The radius is the ``quantile`` of ``real``; a row inside it counts 1, a row at it (within
    ``_TIE_TOLERANCE``) a fraction chosen so that the real rows' mean weight is exactly ``quantile``
    (heavy ties: on a few categorical columns most distances are 0), a row outside 0. Returns the
    weights, the radius and that fraction."""
    tau = float(np.quantile(real, quantile, method="inverted_cdf"))
    below = float(np.mean(real < tau - _TIE_TOLERANCE))
    at = float(np.mean(np.abs(real - tau) <= _TIE_TOLERANCE))
    part = min(1.0, max(0.0, (quantile - below) / at)) if at > 0 else 0.0
    w = np.where(d < tau - _TIE_TOLERANCE, 1.0, np.where(np.abs(d - tau) <= _TIE_TOLERANCE, part, 0.0))
    return w, tau, part


def _near_copy_floor(a: float, b: float, c: float, d: float, confidence: float) -> float:
    """The upper end a table without copies would get with these near-copy counts: the same rows
    near both references and near neither, the rows near one only split evenly between them."""
    half = (b + c) / 2
    return 0.5 + paired_difference_ci(a, half, half, d, confidence)[1] / 2


def _near_copy_result(
    tables: _Tables,
    d_train: np.ndarray,
    d_holdout: np.ndarray,
    *,
    threshold: float,
    balance: str,
    cap: int | None,
    confidence: float,
    quantile: float = NEAR_COPY_QUANTILE,
) -> MetricResult:
    """The near-copy share from the synthetic rows' nearest distances to the two references."""
    train_ref, holdout_ref = tables.references(balance)
    # Unseen real rows' nearest distances: holdout rows to the train reference, and train rows
    # (the seeded equal-size part) to the holdout reference.
    real_to_train = _nearest_distance(train_ref, holdout_ref)
    real_to_holdout = _nearest_distance(holdout_ref, train_ref[: tables.m])
    w_t, tau_t, part_t = _near_weights(d_train, real_to_train, quantile)
    w_h, tau_h, part_h = _near_weights(d_holdout, real_to_holdout, quantile)
    n = len(w_t)
    both = float(np.sum(w_t * w_h))
    train_only = float(np.sum(w_t * (1.0 - w_h)))
    holdout_only = float(np.sum((1.0 - w_t) * w_h))
    neither = n - both - train_only - holdout_only
    low, high = paired_difference_ci(both, train_only, holdout_only, neither, confidence)
    excess = (train_only - holdout_only) / n
    floor = _near_copy_floor(both, train_only, holdout_only, neither, confidence)

    def floor_at(rows: int) -> float:
        f = rows / n
        return _near_copy_floor(both * f, train_only * f, holdout_only * f, neither * f, confidence)

    need = min_rows_to_pass(floor_at, threshold, start=n) if floor > threshold else None
    return upper_bound_gate(
        "near_copy_share",
        0.5 + excess / 2,
        (0.5 + low / 2, 0.5 + high / 2),
        threshold,
        power_floor=floor,
        min_rows=need,
        ideal=0.5,
        ci_level=confidence,
        description=NEAR_COPY_DESCRIPTION,
        details={
            "near_train_share": (both + train_only) / n,
            "near_holdout_share": (both + holdout_only) / n,
            "excess_near_train_share": excess,
            "chance_share": quantile,
            "quantile": quantile,
            "radius_train": tau_t,
            "radius_holdout": tau_h,
            "tie_weight_train": part_t,
            "tie_weight_holdout": part_h,
            "balance": balance,
            "synthetic_rows_used": n,
            "synthetic_rows_total": tables.syn_total,
            "synthetic_row_cap": cap,
            "train_reference_rows": train_ref.shape[0],
            "holdout_reference_rows": holdout_ref.shape[0],
            "ci_method": f"Newcombe's paired score interval ({confidence:.0%}) on near-train minus near-holdout "
            "shares, mapped to 0.5 + difference / 2",
            "distance": _DISTANCE_NOTE,
        },
    )


def dcr_share(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    max_synthetic_rows: int | None = DEFAULT_MAX_SYNTHETIC_ROWS,
    balance: Literal["reweight", "subsample"] = "reweight",
    confidence: float = 0.95,
) -> MetricResult:
    """Share of synthetic rows closer to their nearest train row than to the nearest holdout row.

    Distances as in ``encode_for_distance`` (numeric ``|Δ|/range`` with contract bounds,
    categorical 0/1, Euclidean combination); exact nearest neighbours with scikit-learn's
    brute-force search. A synthetic row whose nearest train and holdout distances tie (within
    1e-6) is split in proportion to the tied neighbours: half for a one-to-one tie.

    A generator that learned the population puts a synthetic row as close to an unseen real
    row as to a training row, so the size-corrected share is 0.5; memorised rows push it to 1.
    Two ways to make 0.5 the chance level when train and holdout differ in size:

    - ``balance="reweight"`` (default): compare with every train row; with pooled sizes the
      chance share is ``n_train / (n_train + n_holdout)``, and the share is mapped to the
      0.5 scale keeping its odds ratio to chance. Uses all the evidence: a verbatim copy of
      train scores ~1.
    - ``balance="subsample"``: subsample the larger reference set (seeded) to the smaller's
      size. Symmetric and simple, but a copied train row that falls outside the subsample
      looks like a fresh row, so memorisation is diluted (a copy of train scores ~0.75
      when train is twice the holdout).

    The confidence interval is the Wilson binomial interval for the raw share (count rounded
    up), mapped like the share. It treats synthetic rows as independent trials and ignores
    the randomness of the reference sets, so it is a lower bound on the true uncertainty.

    Gate (on evidence): blocks when the *lower* end of the interval is past
    ``contract.gates.max_dcr_share``. The share counts a row closer to train by a hair the same
    as a copied record, so any model fitted to the training rows' aggregates sits above 0.5 by a
    fit to the sample that DP allows and that shrinks with the rows (measured with
    benchmarks/false_blocks.py ``--source mst|aim|synthgate``: smartnoise MST at ε = 1 on
    survival::colon, 1,300 training rows, 0.543 [0.512, 0.573]; BENCHMARKS.md, "False blocks").
    Asking the upper end to clear 0.55 blocked such outputs; the burden of showing that no
    record was copied is carried by ``near_copy_share`` (same threshold, same scale), which a
    fit to the sample hardly moves. A copy of train (~1) or of train with 10% of its cells
    replaced (0.87 on Adult) is still blocked here with the interval far above the threshold.

    Args:
        synthetic, train, holdout: frames with exactly ``contract.modelled_columns``.
        contract: data contract (bounds, categories, gate threshold).
        seed: seed for the subsamples (synthetic cap, and references with ``"subsample"``).
        max_synthetic_rows: at most this many synthetic rows are scored (seeded subsample;
            None scores all); the brute-force search costs synthetic x (train + holdout)
            distances.
        balance: ``"reweight"`` or ``"subsample"``, see above.
        confidence: confidence level of the interval.
    """
    _check_cap(max_synthetic_rows, "max_synthetic_rows", DEFAULT_MAX_SYNTHETIC_ROWS)
    _check_options(balance, confidence)
    tables = _tables(synthetic, train, holdout, contract, seed)
    dcr, _, _, _ = _dcr_with_neighbours(tables, contract, 1, max_synthetic_rows, balance, confidence)
    return dcr


def near_copy_share(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    max_synthetic_rows: int | None = DEFAULT_MAX_SYNTHETIC_ROWS,
    balance: Literal["reweight", "subsample"] = "reweight",
    confidence: float = 0.95,
) -> MetricResult:
    """Synthetic rows that are near copies of a training record, beyond chance, on the DCR scale.

    A synthetic row is a *near copy* of a reference (train or holdout) when its nearest distance to
    it is within the radius that only ``NEAR_COPY_QUANTILE`` (5%) of unseen real rows come within:
    the 5% quantile of the holdout rows' nearest distances to train, and of train rows' (a seeded
    equal-size part) nearest distances to the holdout. Each radius is measured against its own
    reference, so unequal sizes need no correction: a fresh real row is a near copy of train and of
    the holdout with the same chance, 5% each (a row exactly at the radius counts the fraction that
    makes the real rows' share exactly 5%, for heavy ties). A generator that learned the population,
    however smooth or sharp, puts as many rows near holdout records as near train records (in the
    small-radius limit both shares are 5% times the same ratio of densities). The statistic is
    ``near_train_share - near_holdout_share`` over the scored synthetic rows: the share of rows
    that sit on a training record beyond chance. It is reported as ``0.5 + difference / 2``, the
    DCR share those rows alone would give (a copied row is closer to train, every other row
    counts half), and gated with ``contract.gates.max_dcr_share``: 0.55 tolerates up to 10% of
    the synthetic rows sitting on training records, the same as the DCR share's threshold does.

    Why not the DCR share alone: it counts a row closer to train by a hair as a full vote, so a
    model fitted to the training sample's aggregates (any DP mechanism that fits noisy marginals of
    train) scores above 0.5 everywhere without copying any record. Measured (benchmarks/
    false_blocks.py; BENCHMARKS.md "False blocks"): fresh real rows and DP outputs (smartnoise MST,
    AIM, synthgate's default) pass this gate on every suite table, a copy of train scores ~1 and
    a copy with 10% of its cells replaced 0.70 on Adult (4,000 rows: 40% of its rows are near copies).

    Limits (measured): where more than 5% of unseen real rows have an exact twin in train (heavy
    ties: AER::CPS1988, radius 0), only exact matches are near copies, and they count the tie
    fraction, so a copy of train scores 0.72 there, not ~1, and a copy jittered by less than any
    real spacing is no near copy at all: such copying shows only in the DCR share's evidence. Where
    synthetic rows sit in common cells more often than real rows do, the two tie fractions differ
    and the statistic drifts a little below 0.5 (nassCDS, MST at ε = 1: 0.495); towards passing, by
    far less than the threshold's 0.05.

    Interval: Newcombe's paired score interval (method 10) for the difference of the two shares
    (a row's two near-copy flags are paired), mapped like the statistic; gate on its upper end
    (the release must show that copies stay under the threshold). ``power_floor`` is the upper
    end with the same near-copy counts split evenly (no copies), and ``min_rows_to_pass`` the rows
    at which it clears the threshold at the same rates.

    Args: as ``dcr_share`` (same synthetic subsample and references for the same seed).
    """
    _check_cap(max_synthetic_rows, "max_synthetic_rows", DEFAULT_MAX_SYNTHETIC_ROWS)
    _check_options(balance, confidence)
    tables = _tables(synthetic, train, holdout, contract, seed)
    _, copies, _, _ = _dcr_with_neighbours(tables, contract, 1, max_synthetic_rows, balance, confidence, near=True)
    return cast(MetricResult, copies)  # near=True always builds it


# --- nearest-neighbour distance ratio --------------------------------------------------------


def _nndr_result(knn_train: np.ndarray, knn_holdout: np.ndarray, tables: _Tables, cap: int | None) -> MetricResult:
    r_train, r_holdout = _ratio(knn_train), _ratio(knn_holdout)
    p5_train = float(np.percentile(r_train, NNDR_PERCENTILE))
    p5_holdout = float(np.percentile(r_holdout, NNDR_PERCENTILE))
    return MetricResult(
        name="nndr",
        value=p5_train,
        threshold=None,
        passed=True,
        direction="min",
        kind="privacy",
        description=NNDR_DESCRIPTION,
        details={
            "train_p5": p5_train,
            "train_median": float(np.median(r_train)),
            "holdout_p5": p5_holdout,
            "holdout_median": float(np.median(r_holdout)),
            # About 5% when synthetic rows relate to train as they relate to unseen rows.
            "share_train_below_holdout_p5": float((r_train < p5_holdout).mean()),
            "exact_copies_train": int((knn_train[:, 0] <= _TIE_TOLERANCE).sum()),
            "exact_copies_holdout": int((knn_holdout[:, 0] <= _TIE_TOLERANCE).sum()),
            "synthetic_rows_used": len(r_train),
            "synthetic_rows_total": tables.syn_total,
            "synthetic_row_cap": cap,
            "reference_rows_each": tables.m,
            "percentile": NNDR_PERCENTILE,
            "ratio_definition": "d1/d2 to the nearest and second-nearest reference row; "
            "distances within 1e-6 are equal, so d1 = d2 (also 0/0) gives 1 and an exact copy 0",
            "distance": _DISTANCE_NOTE,
        },
    )


def nndr(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    max_synthetic_rows: int | None = DEFAULT_MAX_SYNTHETIC_ROWS,
) -> MetricResult:
    """Nearest-neighbour distance ratio of the synthetic rows, against train and holdout.

    For each synthetic row, ``d1 / d2``: the distance to its nearest reference row over the
    distance to the second nearest (distance as in ``encode_for_distance``). A ratio near 0
    means the row sits on one particular record and far from all others; near 1, it sits
    among several records equally. Distances within 1e-6 count as equal, so ``d1 == d2``
    gives 1, and so does 0/0 (two reference rows coincide with the synthetic row: no single
    record stands out); an exact copy of a unique record gives 0.

    The ratios are computed against train and, the same way, against the holdout; the larger
    of the two is subsampled (seeded) to the smaller's size, since ratios depend on how
    densely the reference covers the space. A generator that learned the population gives
    the two the same distribution; train ratios lower than the holdout's mean that synthetic
    rows sit next to specific training records.

    Not a gate (``threshold=None``, ``passed=True``): ``value`` is the 5th percentile of the
    train ratios; details hold the 5th percentile and median of both, the share of train
    ratios below the holdout's 5th percentile (about 0.05 by chance) and the rows used.

    Args:
        synthetic, train, holdout: frames with exactly ``contract.modelled_columns``; train
            and holdout need at least 2 rows each.
        contract: data contract (bounds, categories).
        seed: seed of the synthetic cap and of the reference subsample.
        max_synthetic_rows: at most this many synthetic rows are scored (seeded subsample;
            None scores all).
    """
    _check_cap(max_synthetic_rows, "max_synthetic_rows", DEFAULT_MAX_SYNTHETIC_ROWS)
    tables = _tables(synthetic, train, holdout, contract, seed)
    _check_nndr_rows(tables)
    s = encode_columns(tables.syn_values, tables.layout, tables.synthetic_rows(max_synthetic_rows, 0))
    _, knn_train = _side(tables.train, tables.m, s, k=2, whole=False)
    _, knn_holdout = _side(tables.holdout, tables.m, s, k=2, whole=False)
    return _nndr_result(knn_train, knn_holdout, tables, max_synthetic_rows)


# --- DCR share on column subsets -------------------------------------------------------------


def _association_codes(values: np.ndarray, numeric: bool) -> np.ndarray:
    """Codes 0..L-1 of one column for a contingency table: numeric values cut at the deciles of
    the (synthetic) rows given, null its own level; discrete codes as they are."""
    if numeric:
        null = np.isnan(values)
        codes = np.zeros(len(values), dtype=np.int64)
        if (~null).any():
            qs = np.linspace(0.0, 1.0, _ASSOCIATION_BINS + 1)[1:-1]
            edges = np.unique(np.quantile(values[~null], qs))
            codes = np.searchsorted(edges, values, side="right").astype(np.int64)
        codes[null] = _ASSOCIATION_BINS
        values = codes
    return np.unique(values, return_inverse=True)[1].astype(np.int64).ravel()


def _association_candidates(p: int, rng: np.random.Generator) -> np.ndarray:
    """Columns whose pairs are all measured: every column, or a seeded draw of
    ``_ASSOCIATION_CANDIDATES`` of them (sorted) when there are more."""
    if p <= _ASSOCIATION_CANDIDATES:
        return np.arange(p)
    return np.sort(rng.choice(p, size=_ASSOCIATION_CANDIDATES, replace=False))


def _choose_subsets(
    values: dict[str, np.ndarray],
    tables: _Tables,
    *,
    n_random: int,
    n_correlated: int,
    size: int,
    rng: np.random.Generator,
    candidate_rng: np.random.Generator,
) -> tuple[list[tuple[str, tuple[int, ...], float | None]], dict[str, Any]]:
    """(kind, column indices in contract order, mean association) per distinct subset, and how
    the association was measured.

    Correlated: anchors in decreasing order of their strongest association with another
    candidate column (every column, or a seeded draw of ``_ASSOCIATION_CANDIDATES`` on a wider
    table); each gives the anchor and its ``size - 1`` most associated columns among all
    columns (a duplicate subset is skipped; on a wider table an anchor already inside a chosen
    subset is skipped, so only ``n_correlated`` anchors' associations with every column are
    measured). The mean association is over the subset's pairs, or, on a wider table, over the
    anchor's pairs with its partners.
    Random: ``size`` columns drawn without replacement, distinct from every subset so far
    (a bounded number of draws, so a small table may get fewer).
    """
    names = list(tables.layout)
    p = len(names)
    chosen: list[tuple[str, tuple[int, ...], float | None]] = []
    seen: set[tuple[int, ...]] = set()
    scope: dict[str, Any] = {"columns": p}
    if n_correlated > 0:
        codes = [_association_codes(values[n], tables.layout[n].numeric) for n in names]
        levels = [int(c.max()) + 1 for c in codes]
        candidates = _association_candidates(p, candidate_rng)
        capped = len(candidates) < p
        cand = candidates.tolist()
        assoc = cramers_v_matrix(codes, levels, cand, cand)
        np.fill_diagonal(assoc, 0.0)
        pairs_measured = len(cand) * (len(cand) - 1) // 2
        for a in np.argsort(-assoc.max(axis=1), kind="stable"):
            if len(chosen) == n_correlated:
                break
            anchor = cand[int(a)]
            if capped:
                # An anchor inside a chosen subset would mostly give that subset again (and an
                # anchor's subset holds the anchor, so skipping these leaves no duplicate):
                # at most n_correlated rows of the association are measured.
                if any(anchor in c for _, c, _ in chosen):
                    continue
                row = cramers_v_matrix(codes, levels, [anchor], list(range(p)))[0]
                pairs_measured += p - 1
            else:
                row = assoc[int(a)]
            row[anchor] = 0.0
            partners = [int(j) for j in np.argsort(-row, kind="stable") if j != anchor]
            cols = tuple(sorted([anchor, *partners[: size - 1]]))
            if cols in seen:
                continue
            seen.add(cols)
            if capped:
                mean = float(np.mean(row[partners[: size - 1]])) if size > 1 else None
            else:
                pairs = [assoc[a_, b_] for a_, b_ in combinations(cols, 2)]
                mean = float(np.mean(pairs)) if pairs else None
            chosen.append(("correlated", cols, mean))
        scope |= {
            "candidate_columns": len(cand),
            "capped": capped,
            "pairs_measured": pairs_measured,
            "pairs_total": p * (p - 1) // 2,
            "rows": len(codes[0]),
        }
    n_drawn = 0
    for _ in range(20 * n_random):
        if n_drawn == n_random:
            break
        cols = tuple(sorted(int(j) for j in rng.choice(p, size=size, replace=False)))
        if cols in seen:
            continue
        seen.add(cols)
        chosen.append(("random", cols, None))
        n_drawn += 1
    return chosen, scope


def _default_subset_size(p: int) -> int:
    return min(p - 1, max(2, round(p / 3)))


def _subset_result(
    tables: _Tables,
    *,
    n_random: int,
    n_correlated: int,
    subset_size: int | None,
    cap: int | None,
    balance: str,
    confidence: float,
    threshold: float,
) -> MetricResult:
    names = list(tables.layout)
    p = len(names)
    rows = tables.synthetic_rows(cap, 3)
    s_all = encode_columns(tables.syn_values, tables.layout, rows)
    scope: dict[str, Any] = {"columns": p}
    if p < 2:
        size = p
        subsets: list[tuple[str, tuple[int, ...], float | None]] = [("all", (0,), None)]
    else:
        size = _default_subset_size(p) if subset_size is None else subset_size
        values = {n: v[rows] for n, v in tables.syn_values.items()}
        subsets, scope = _choose_subsets(
            values,
            tables,
            n_random=n_random,
            n_correlated=n_correlated,
            size=size,
            rng=np.random.default_rng(tables.seeds[2]),
            candidate_rng=np.random.default_rng(tables.seeds[4]),
        )
    train_all, holdout_all = tables.references(balance)
    train_codes, holdout_codes = tables.reference_codes(balance)
    syn_codes = _value_codes(tables.syn_values, rows)
    rows_out: list[dict[str, Any]] = []
    shares: list[_Share] = []
    for kind, cols, assoc in subsets:
        idx = np.r_[tuple(tables.layout[names[j]].columns for j in cols)]  # a column selection
        # On a few columns many rows coincide: search and count distinct rows only (the
        # nearest distance ignores multiplicity; tie counts weight each row by it).
        sel = [names[j] for j in cols]
        s_first, s_inv, _ = _distinct(syn_codes, sel)
        t_first, _, t_w = _distinct(train_codes, sel)
        h_first, _, h_w = _distinct(holdout_codes, sel)
        s_u = s_all[np.ix_(s_first, idx)]
        t_u, h_u = train_all[np.ix_(t_first, idx)], holdout_all[np.ix_(h_first, idx)]
        d_t, d_h = _nearest_distance(t_u, s_u), _nearest_distance(h_u, s_u)
        share = _share(s_u, t_u, h_u, d_t, d_h, confidence, t_w, h_w, query_inverse=s_inv)
        shares.append(share)
        row: dict[str, Any] = {
            "kind": kind,
            "columns": [names[j] for j in cols],
            "share": share.value,
            "ci": [share.ci[0], share.ci[1]],
            "ties": share.ties,
        }
        if assoc is not None:
            row["mean_association"] = assoc
        rows_out.append(row)
    # Gate on evidence (see dcr_share): blocks when some subset's share is past the threshold under
    # a simultaneous interval, Bonferroni over the K subsets (the worst of K noisy shares is past
    # chance far more often than one share is). The worst subset is the one with the highest
    # simultaneous lower end; value and ci are its share and simultaneous interval.
    simultaneous = 1.0 - (1.0 - confidence) / len(shares)
    joint = [_simultaneous_ci(sh, simultaneous) for sh in shares]
    worst = max(range(len(shares)), key=lambda i: joint[i][0])  # first of equal bounds
    w = shares[worst]
    for row, ci in zip(rows_out, joint, strict=True):
        row["simultaneous_ci"] = [ci[0], ci[1]]
    return _evidence_gate(
        "dcr_share_worst_subset",
        w.value,
        joint[worst],
        threshold,
        estimates=len(shares),
        ci_level=simultaneous,
        description=SUBSET_DESCRIPTION,
        details={
            "worst_columns": rows_out[worst]["columns"],
            "worst_kind": rows_out[worst]["kind"],
            "share": w.value,
            "raw_share": w.raw,
            "chance_share": w.chance,
            "subsets": rows_out,
            "subset_size": size,
            "balance": balance,
            "synthetic_rows_used": len(rows),
            "synthetic_rows_total": tables.syn_total,
            "synthetic_row_cap": cap,
            "train_reference_rows": train_all.shape[0],
            "holdout_reference_rows": holdout_all.shape[0],
            "association": "Cramér's V on the synthetic rows scored (numeric columns cut at "
            "their deciles, null its own level); anchors in order of their strongest association"
            + (
                f" with another of {_ASSOCIATION_CANDIDATES} seeded candidate columns (of {p}), partners "
                "among all columns, mean association over the anchor's pairs"
                if scope.get("capped")
                else ""
            ),
            "association_scope": scope,
            "ci_method": f"Wilson {confidence:.0%} on the raw share, size-adjusted, per subset (ci); "
            f"simultaneous Wilson {simultaneous:.2%} (Bonferroni over the {len(shares)} subsets, simultaneous_ci), "
            "the worst is the highest simultaneous lower end",
            "distance": _DISTANCE_NOTE + ", over the subset's columns only",
        },
    )


def _simultaneous_ci(share: _Share, confidence: float) -> tuple[float, float]:
    """A subset share's size-adjusted Wilson interval at ``confidence`` (count rounded up, as in ``_share``)."""
    k = min(share.n, math.ceil(share.raw * share.n - 1e-9))
    ci = binomtest(k, share.n).proportion_ci(confidence_level=confidence, method="wilson")
    return _size_adjusted(float(ci.low), share.chance), _size_adjusted(float(ci.high), share.chance)


def _check_subset_options(
    contract: Contract,
    n_random: int,
    n_correlated: int,
    subset_size: int | None,
    threshold: float | None,
    names: tuple[str, str],
) -> float:
    """Validate the subset options; return the gate threshold."""
    for value, name in ((n_random, names[0]), (n_correlated, names[1])):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0. Got {value!r}.")
    p = len(contract.modelled_columns)
    if n_random + n_correlated < 1 and p >= 2:
        raise ValueError(
            f"`{names[0]}` + `{names[1]}` must be at least 1 to have a subset to check. "
            f"Got {n_random} and {n_correlated}. The defaults are "
            f"{DEFAULT_N_RANDOM_SUBSETS} and {DEFAULT_N_CORRELATED_SUBSETS}."
        )
    if (
        subset_size is not None
        and p >= 2
        and not (isinstance(subset_size, int) and not isinstance(subset_size, bool) and 1 <= subset_size < p)
    ):
        raise ValueError(
            f"`subset_size` must be an integer from 1 to {p - 1} (fewer than the {p} modelled "
            f"columns). Got {subset_size!r}. Leave it None for a third of the columns."
        )
    thr = contract.gates.max_dcr_share if threshold is None else float(threshold)
    if not 0.0 < thr <= 1.0:
        raise ValueError(f"`threshold` must be in (0, 1]. Got {thr}. Leave it None for contract.gates.max_dcr_share.")
    return thr


def dcr_share_subsets(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    n_random: int = DEFAULT_N_RANDOM_SUBSETS,
    n_correlated: int = DEFAULT_N_CORRELATED_SUBSETS,
    subset_size: int | None = None,
    max_synthetic_rows: int | None = DEFAULT_SUBSET_SYNTHETIC_ROWS,
    balance: Literal["reweight", "subsample"] = "reweight",
    confidence: float = 0.95,
    threshold: float | None = None,
) -> MetricResult:
    """DCR share recomputed on column subsets; reports and gates the worst subset.

    A generator can copy a few columns of a record (say age, occupation and hours together)
    while the other columns are new; over all columns such rows need not be closer to train
    than to the holdout, but over the copied columns they are. As mostlyai-qa does, the DCR
    share (same distance, tie split, Wilson interval and size adjustment as ``dcr_share``,
    on the subset's columns only) is recomputed on

    - ``n_correlated`` "correlated" subsets: for each anchor column, taken in decreasing
      order of its strongest association with another column, the anchor and its
      ``subset_size - 1`` most associated columns. Association is Cramér's V between columns
      of the *synthetic* table (numeric columns cut at their deciles). The synthetic table
      is what is released, so reading it costs no privacy and the subsets chosen (their
      column names are reported) say nothing about the private rows; and a block of columns
      copied together from training records is associated in the synthetic table as it is
      in train, which is the structure this looks for. On a table of more than 256 columns
      the anchors are taken among a seeded draw of 256 candidate columns (every pair of
      them measured; a candidate already inside a chosen subset is not an anchor) and each
      anchor's partners among all columns, so the pairs measured
      stay under 256²/2 + ``n_correlated`` x columns instead of growing with columns²
      (``details["association_scope"]`` says which); a strongly associated pair outside
      the candidates is then found only through an anchor it belongs to.
    - ``n_random`` random subsets of ``subset_size`` columns (seeded), distinct from the
      correlated ones.

    ``subset_size`` defaults to a third of the modelled columns (at least 2, at most all but
    one): small enough that a copied block dominates the distance, as in mostlyai-qa's split
    into three groups. With a single modelled column the only subset is that column.

    Gate (on evidence, as ``dcr_share``): blocks when some subset's share is past ``threshold``
    (default ``contract.gates.max_dcr_share``) under a simultaneous interval, Bonferroni over the
    K subsets: the lower end of a Wilson interval at confidence 1 - (1 - confidence) / K. The worst
    of K noisy shares is past chance far more often than one share is, so without the correction
    the gate blocked fresh real rows and DP outputs (issue 21: DP runs blocked at 0.56; measured,
    benchmarks/false_blocks.py). ``value`` and ``ci`` are the worst subset's (highest simultaneous
    lower end) share and simultaneous interval; ``details["subsets"]`` lists every subset's kind,
    column names, share, per-subset 95% interval, simultaneous interval and tie count. Showing that
    nothing was copied is ``near_copy_share``'s burden, over whole rows.

    Each subset costs a search of synthetic x (train + holdout) rows, so at most
    ``max_synthetic_rows`` synthetic rows are scored (default 5,000: the interval half-width
    is then about 0.014 at 0.5; None scores all).

    Args:
        synthetic, train, holdout: frames with exactly ``contract.modelled_columns``.
        contract: data contract (bounds, categories, gate threshold).
        seed: seed of the synthetic subsample, the reference subsample (``"subsample"``) and
            the random subsets.
        n_random, n_correlated: numbers of random and correlated subsets (>= 0, not both 0).
        subset_size: columns per subset, from 1 to (number of columns - 1); None: a third.
        max_synthetic_rows: synthetic rows scored per subset (seeded subsample).
        balance, confidence: as in ``dcr_share``.
        threshold: gate of the worst subset; None for ``contract.gates.max_dcr_share``.
    """
    _check_cap(max_synthetic_rows, "max_synthetic_rows", DEFAULT_SUBSET_SYNTHETIC_ROWS)
    _check_options(balance, confidence)
    thr = _check_subset_options(contract, n_random, n_correlated, subset_size, threshold, ("n_random", "n_correlated"))
    tables = _tables(synthetic, train, holdout, contract, seed)
    return _subset_result(
        tables,
        n_random=n_random,
        n_correlated=n_correlated,
        subset_size=subset_size,
        cap=max_synthetic_rows,
        balance=balance,
        confidence=confidence,
        threshold=thr,
    )


# --- all distance checks, sharing the searches -----------------------------------------------


def distance_checks(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    max_synthetic_rows: int | None = None,
    n_random_subsets: int = DEFAULT_N_RANDOM_SUBSETS,
    n_correlated_subsets: int = DEFAULT_N_CORRELATED_SUBSETS,
    subset_size: int | None = None,
    subset_max_synthetic_rows: int | None = DEFAULT_SUBSET_SYNTHETIC_ROWS,
    balance: Literal["reweight", "subsample"] = "reweight",
    confidence: float = 0.95,
    subset_threshold: float | None = None,
) -> list[MetricResult]:
    """``[dcr_share, near_copy_share, nndr, dcr_share_worst_subset]``, sharing the work between them.

    The tables are checked and encoded once, and each synthetic row's neighbours are
    searched once per reference: train's equal-size part with k = 2 (its nearest distance
    feeds the DCR share, the two nearest the NNDR), train's remaining rows with k = 1 (the
    DCR share's nearest over all of train), and the same for the holdout; the near-copy share
    reads the same nearest distances (plus the real rows' own, holdout to train and train to
    holdout). Each result equals the check called alone with the same seed and options
    (``dcr_share``, ``near_copy_share`` and ``nndr`` with
    ``max_synthetic_rows``, ``dcr_share_subsets`` with ``subset_max_synthetic_rows``).

    Memory stays O((synthetic + train + holdout) rows x encoded width): scikit-learn's
    searches run over tiles of 256 x 256 rows and tie counts over chunks of at most 64 MiB.
    Time is about synthetic x (train + holdout) distances for the full-column checks plus
    that for ``subset_max_synthetic_rows`` per subset.

    Args:
        synthetic, train, holdout: frames with exactly ``contract.modelled_columns``; train
            and holdout need at least 2 rows each (NNDR).
        contract: data contract (bounds, categories, gate thresholds).
        seed: one seed for all subsamples (streams as in the single checks).
        max_synthetic_rows: synthetic rows scored by DCR share and NNDR; None (default)
            scores every row. Cap it for large tables.
        n_random_subsets, n_correlated_subsets, subset_size: as ``n_random``,
            ``n_correlated`` and ``subset_size`` of ``dcr_share_subsets``.
        subset_max_synthetic_rows: synthetic rows scored per subset.
        balance, confidence: as in ``dcr_share`` (NNDR always uses equal-size references).
        subset_threshold: gate of the worst subset; None for ``contract.gates.max_dcr_share``.
    """
    _check_cap(max_synthetic_rows, "max_synthetic_rows", None)
    _check_cap(subset_max_synthetic_rows, "subset_max_synthetic_rows", DEFAULT_SUBSET_SYNTHETIC_ROWS)
    _check_options(balance, confidence)
    thr = _check_subset_options(
        contract,
        n_random_subsets,
        n_correlated_subsets,
        subset_size,
        subset_threshold,
        ("n_random_subsets", "n_correlated_subsets"),
    )
    tables = _tables(synthetic, train, holdout, contract, seed)
    _check_nndr_rows(tables)
    dcr, copies, knn_train, knn_holdout = _dcr_with_neighbours(
        tables, contract, 2, max_synthetic_rows, balance, confidence, near=True
    )
    ratio = _nndr_result(knn_train, knn_holdout, tables, max_synthetic_rows)
    subsets = _subset_result(
        tables,
        n_random=n_random_subsets,
        n_correlated=n_correlated_subsets,
        subset_size=subset_size,
        cap=subset_max_synthetic_rows,
        balance=balance,
        confidence=confidence,
        threshold=thr,
    )
    return [dcr, cast(MetricResult, copies), ratio, subsets]
