"""Privacy checks that compare the synthetic table with the training rows and a holdout.

Every check here reads private rows (train and holdout) and is *not* charged to the DP
ledger: it is an evaluation, and only its aggregates (shares, medians, counts) may leave
this module. Nothing in a result's ``details`` is a row or a value of a row.

Distance used throughout (``encode_for_distance``): the Euclidean combination of per-column
distances, where a numeric column (continuous, integer, datetime as epoch seconds) contributes
``|Δ| / (max - min)`` with the *contract* bounds, and a categorical or boolean column
contributes 0 when the values are equal and 1 when they differ (null is its own category).
So ``d(a, b) = sqrt(Σ_numeric (|a_j - b_j| / range_j)² + #categorical mismatches)``.

Helpers at the top (``_prepare``, ``_numeric_values``, ``_discrete_codes``) are shared with
``validation.fidelity``; they turn a frame into the canonical form described there.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

import numpy as np
import polars as pl
from scipy.stats import binomtest
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from validation.contract import (
    NUMERIC_KINDS,
    BooleanColumn,
    CategoricalColumn,
    Contract,
    DatetimeColumn,
    Gates,
)
from validation.results import MetricResult

__all__ = ["dcr_share", "encode_for_distance", "identical_match_share"]

# One-hot entries are 1/sqrt(2): two rows with different categories differ in two entries,
# so the mismatch adds (1/sqrt 2)² + (1/sqrt 2)² = 1 to the squared distance.
_ONE_HOT = np.float32(1.0 / math.sqrt(2.0))
# Where a null numeric sits in its scaled column: the middle, so that together with its
# indicator (0 → 1) it differs from any in-range value by between 1 and sqrt(1.25).
_NULL_POSITION = np.float32(0.5)
# Distances closer than this (a millionth of a column's range) are ties: the float32 encoding
# and the BLAS distance expansion are accurate to ~1e-7 for identical rows.
_TIE_TOLERANCE = 1e-6
DEFAULT_MAX_SYNTHETIC_ROWS = 20_000

IDENTICAL_MATCH_DESCRIPTION = (
    "Share of synthetic rows that are exact copies of a training record, compared with the "
    "share that copy an unseen real record; a higher training share means records were "
    "memorised."
)
DCR_DESCRIPTION = (
    "Share of synthetic rows that sit closer to a training record than to an unseen real "
    "record; 0.5 means the generator learned the population, not the people."
)


# --- canonical frames ------------------------------------------------------------------------


def _epoch_seconds(value: dt.datetime) -> float:
    """Contract datetimes without a time zone are read as UTC, as polars reads naive columns."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def _bounds(contract: Contract, name: str) -> tuple[float, float]:
    """(min, max) of a numeric column from the contract, as floats (datetimes: epoch s)."""
    col = contract.columns[name]
    if isinstance(col, DatetimeColumn):
        return _epoch_seconds(col.min), _epoch_seconds(col.max)
    return float(col.min), float(col.max)  # type: ignore[union-attr]


def _prepare(df: pl.DataFrame, contract: Contract, *, role: str) -> pl.DataFrame:
    """Check that ``df`` holds exactly the modelled columns and cast it to canonical dtypes.

    Canonical form: numeric columns (integer, continuous, datetime) as Float64 (datetimes as
    epoch seconds), categorical columns as Utf8, boolean columns as Boolean; columns in the
    contract's order. Error messages name columns and dtypes only, never values.
    """
    if not isinstance(df, pl.DataFrame):
        raise TypeError(
            f"`{role}` must be a polars DataFrame. Got {type(df).__name__}. "
            "Convert it with polars.from_pandas(...) or polars.DataFrame(...)."
        )
    wanted = contract.modelled_columns
    missing = [c for c in wanted if c not in df.columns]
    extra = [c for c in df.columns if c not in wanted]
    if missing or extra:
        raise ValueError(
            f"`{role}` must hold exactly the contract's modelled columns. Missing: {missing}; "
            f"not modelled (identifier, pii or unknown): {extra}. "
            f"Select contract.modelled_columns before evaluating."
        )
    if df.height == 0:
        raise ValueError(f"`{role}` has no rows. Pass a non-empty table.")
    exprs: list[pl.Expr] = []
    for name in wanted:
        kind = contract.columns[name].kind
        dtype = df.schema[name]
        if kind == "datetime":
            if not isinstance(dtype, pl.Datetime):
                raise ValueError(
                    f"`{role}` column {name!r} is {dtype}, the contract says datetime. "
                    "Cast it to polars Datetime."
                )
            exprs.append((pl.col(name).dt.epoch("us").cast(pl.Float64) / 1e6).alias(name))
        elif kind in NUMERIC_KINDS:
            if not dtype.is_numeric():
                raise ValueError(
                    f"`{role}` column {name!r} is {dtype}, the contract says {kind}. "
                    "Cast it to Int64 (integer) or Float64 (continuous)."
                )
            exprs.append(pl.col(name).cast(pl.Float64))
        elif kind == "boolean":
            if dtype != pl.Boolean:
                raise ValueError(
                    f"`{role}` column {name!r} is {dtype}, the contract says boolean. "
                    "Cast it to polars Boolean."
                )
            exprs.append(pl.col(name))
        else:  # categorical
            if not (dtype == pl.Utf8 or isinstance(dtype, (pl.Categorical, pl.Enum))):
                raise ValueError(
                    f"`{role}` column {name!r} is {dtype}, the contract says categorical. "
                    "Cast it to Utf8 strings (null = missing)."
                )
            exprs.append(pl.col(name).cast(pl.Utf8))
    return df.select(exprs)


def _numeric_values(series: pl.Series) -> np.ndarray:
    """float64 values of a canonical numeric column, NaN where null."""
    return series.cast(pl.Float64).to_numpy(allow_copy=True).astype(np.float64, copy=False)


def _n_discrete_slots(contract: Contract, name: str) -> int:
    """Slots of a discrete column: its categories, then null, then (categorical) 'other'."""
    col = contract.columns[name]
    if isinstance(col, BooleanColumn):
        return 3
    assert isinstance(col, CategoricalColumn)
    return len(col.categories) + 2


def _discrete_codes(series: pl.Series, contract: Contract, name: str) -> np.ndarray:
    """int64 codes of a canonical discrete column, fixed by the contract.

    Categorical: index in the contract's category list, then ``K`` for null and ``K + 1``
    for a value outside the contract's domain (schema validation should have refused it; it
    is tolerated here so a check never fails on, or prints, such a value). Boolean: False 0,
    True 1, null 2.
    """
    col = contract.columns[name]
    if isinstance(col, BooleanColumn):
        return series.cast(pl.Int64).fill_null(2).to_numpy().astype(np.int64, copy=False)
    assert isinstance(col, CategoricalColumn)
    k = len(col.categories)
    mapping = {c: i for i, c in enumerate(col.categories)}
    codes = (
        series.replace_strict(mapping, default=k + 1, return_dtype=pl.Int64)
        .to_numpy()
        .astype(np.int64, copy=True)
    )
    # replace_strict sends null to the default; put it back in its own slot.
    codes[series.is_null().to_numpy()] = k
    return codes


def _subsample(df: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` rows drawn without replacement (all rows, in order, when ``n >= df.height``)."""
    if n >= df.height:
        return df
    idx = np.sort(rng.choice(df.height, size=n, replace=False))
    return df[idx]


def _int_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


# --- encoding --------------------------------------------------------------------------------


def encode_for_distance(df: pl.DataFrame, contract: Contract) -> np.ndarray:
    """Encode rows so that Euclidean distance is the mixed-type distance of the contract.

    The squared Euclidean distance between two encoded rows is
    ``Σ_numeric (|Δ_j| / (max_j - min_j))² + number of categorical/boolean mismatches``: each
    numeric column (continuous, integer, datetime in epoch seconds) becomes
    ``(x - min) / (max - min)`` with the contract's bounds (never data-derived ranges), and
    each categorical or boolean column becomes a one-hot block scaled by ``1/sqrt(2)``, so a
    mismatch adds exactly 1.

    Missing values: every numeric column also gets a null indicator; a null sits in the
    middle of the scaled column (0.5) with indicator 1, so it differs from any in-range value
    by at least 1 (at most sqrt(1.25)) and from another null by 0. In a discrete column null
    is its own category; a categorical value outside the contract's domain falls in one
    shared 'other' category. The layout depends only on the contract, so train, holdout and
    synthetic encodings always line up.

    Args:
        df: rows holding exactly ``contract.modelled_columns``.
        contract: the table's data contract (bounds and category lists).

    Returns:
        A float32 array of shape ``(df.height, width)``.
    """
    frame = _prepare(df, contract, role="df")
    n = frame.height
    names = contract.modelled_columns
    widths = [
        2 if contract.columns[c].kind in NUMERIC_KINDS else _n_discrete_slots(contract, c)
        for c in names
    ]
    out = np.zeros((n, sum(widths)), dtype=np.float32)
    rows = np.arange(n)
    offset = 0
    for name, width in zip(names, widths, strict=True):
        if contract.columns[name].kind in NUMERIC_KINDS:
            lo, hi = _bounds(contract, name)
            x = (_numeric_values(frame[name]) - lo) / (hi - lo)
            null = np.isnan(x)
            out[:, offset] = np.where(null, _NULL_POSITION, x)
            out[:, offset + 1] = null
        else:
            codes = _discrete_codes(frame[name], contract, name)
            out[rows, offset + codes] = _ONE_HOT
        offset += width
    return out


# --- identical matches -----------------------------------------------------------------------


def _exact_match_share(synthetic: pl.DataFrame, reference: pl.DataFrame) -> float:
    """Share of synthetic rows equal (all columns, null == null) to some reference row."""
    matched = synthetic.join(
        reference.unique(), on=synthetic.columns, how="semi", nulls_equal=True
    ).height
    return matched / synthetic.height


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
    threshold is the holdout share plus the tolerance.

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
        raise ValueError(
            f"`tolerance` must be in [0, 1]. Got {tol}. Set gates.identical_match_tolerance."
        )
    if contract is not None:
        syn = _prepare(synthetic, contract, role="synthetic")
        tr = _prepare(train, contract, role="train")
        ho = _prepare(holdout, contract, role="holdout")
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
    tr_ref = _subsample(tr, m, rng)
    ho_ref = _subsample(ho, m, rng)
    train_share = _exact_match_share(syn, tr_ref)
    holdout_share = _exact_match_share(syn, ho_ref)
    threshold = holdout_share + tol
    return MetricResult(
        name="identical_match_share",
        value=train_share,
        threshold=threshold,
        passed=train_share <= threshold,
        direction="max",
        gated_value=train_share,
        kind="privacy",
        description=IDENTICAL_MATCH_DESCRIPTION,
        details={
            "train_share": train_share,
            "holdout_share": holdout_share,
            "tolerance": tol,
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


def _nearest_distance(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute", metric="euclidean")
    dist, _ = nn.fit(reference).kneighbors(query)
    return dist[:, 0]


def _count_within(reference: np.ndarray, query: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """For each query row, how many reference rows lie within its own radius (chunked)."""
    counts = np.zeros(query.shape[0], dtype=np.int64)
    if query.shape[0] == 0:
        return counts

    def _reduce(chunk: np.ndarray, start: int) -> np.ndarray:
        return (chunk <= radius[start : start + chunk.shape[0], None]).sum(axis=1)

    pos = 0
    for part in pairwise_distances_chunked(query, reference, reduce_func=_reduce):
        counts[pos : pos + part.shape[0]] = part
        pos += part.shape[0]
    return counts


def _size_adjusted(share: float, chance: float) -> float:
    """Map a raw share whose chance level is ``chance`` onto a scale where chance is 0.5.

    Keeps the odds ratio to chance: ``s' / (1 - s') = (s / (1 - s)) / (chance / (1 - chance))``.
    Monotone, so a confidence interval maps end to end; identity when ``chance == 0.5``.
    """
    num = share * (1.0 - chance)
    den = num + (1.0 - share) * chance
    return num / den if den > 0 else 0.5


def dcr_share(
    synthetic: pl.DataFrame,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    max_synthetic_rows: int = DEFAULT_MAX_SYNTHETIC_ROWS,
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
    Gate: upper end of the interval ``<= contract.gates.max_dcr_share``.

    Args:
        synthetic, train, holdout: frames with exactly ``contract.modelled_columns``.
        contract: data contract (bounds, categories, gate threshold).
        seed: seed for the subsamples (synthetic cap, and references with ``"subsample"``).
        max_synthetic_rows: at most this many synthetic rows are scored (seeded subsample);
            the brute-force search costs synthetic x (train + holdout) distances.
        balance: ``"reweight"`` or ``"subsample"``, see above.
        confidence: confidence level of the interval.
    """
    if max_synthetic_rows < 1:
        raise ValueError(
            f"`max_synthetic_rows` must be >= 1. Got {max_synthetic_rows}. "
            f"The default is {DEFAULT_MAX_SYNTHETIC_ROWS}."
        )
    if balance not in ("reweight", "subsample"):
        raise ValueError(f"`balance` must be 'reweight' or 'subsample'. Got {balance!r}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1). Got {confidence}. Use e.g. 0.95.")
    syn = _prepare(synthetic, contract, role="synthetic")
    tr = _prepare(train, contract, role="train")
    ho = _prepare(holdout, contract, role="holdout")
    syn_seed, ref_seed = np.random.SeedSequence(seed).spawn(2)
    syn_used = _subsample(syn, max_synthetic_rows, np.random.default_rng(syn_seed))
    if balance == "subsample":
        m = min(tr.height, ho.height)
        ref_rng = np.random.default_rng(ref_seed)
        tr, ho = _subsample(tr, m, ref_rng), _subsample(ho, m, ref_rng)

    s = encode_for_distance(syn_used, contract)
    t = encode_for_distance(tr, contract)
    h = encode_for_distance(ho, contract)
    d_train = _nearest_distance(t, s)
    d_holdout = _nearest_distance(h, s)

    # Fraction of the nearest (tied) reference rows that are train rows, per synthetic row.
    q = (d_train < d_holdout).astype(np.float64)
    tie = np.abs(d_train - d_holdout) <= _TIE_TOLERANCE
    if tie.any():
        radius = np.minimum(d_train, d_holdout)[tie] + _TIE_TOLERANCE
        n_t = _count_within(t, s[tie], radius)
        n_h = _count_within(h, s[tie], radius)
        # Both counts are >= 1 up to rounding at the radius; guard the division anyway.
        q[tie] = np.where(n_t + n_h > 0, n_t / np.maximum(n_t + n_h, 1), 0.5)

    n = len(q)
    raw = float(q.mean())
    chance = tr.height / (tr.height + ho.height)
    k = min(n, math.ceil(float(q.sum()) - 1e-9))  # rounded up: errs towards blocking
    ci_raw = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    value = _size_adjusted(raw, chance)
    ci = (_size_adjusted(float(ci_raw.low), chance), _size_adjusted(float(ci_raw.high), chance))
    threshold = contract.gates.max_dcr_share
    return MetricResult(
        name="dcr_share",
        value=value,
        threshold=threshold,
        passed=ci[1] <= threshold,
        direction="max",
        ci=ci,
        gated_value=ci[1],
        kind="privacy",
        description=DCR_DESCRIPTION,
        details={
            "share": value,
            "raw_share": raw,
            "chance_share": chance,
            "balance": balance,
            "closer_to_train": int((q == 1.0).sum()),
            "closer_to_holdout": int((q == 0.0).sum()),
            "ties": int(tie.sum()),
            "median_dcr_train": float(np.median(d_train)),
            "median_dcr_holdout": float(np.median(d_holdout)),
            "synthetic_rows_used": n,
            "synthetic_rows_total": syn.height,
            "synthetic_row_cap": max_synthetic_rows,
            "train_reference_rows": tr.height,
            "holdout_reference_rows": ho.height,
            "ci_method": f"Wilson {confidence:.0%} on the raw share, size-adjusted",
            "distance": "Euclidean over columns: numeric |Δ|/contract range, categorical 0/1",
        },
    )

