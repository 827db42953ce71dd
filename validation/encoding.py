"""Shared tabular encoding: the canonical form of a table and its mixed-type distance encoding.

Every check that reads rows (privacy, membership inference, Anonymeter-style risks, fidelity, the
public report's charts) starts here, so all of them see a table the same way:

- ``canonical_frame`` checks that a frame holds exactly the contract's modelled columns and casts
  it to canonical dtypes (numeric kinds as Float64, datetimes as epoch seconds; categorical as
  Utf8; boolean as Boolean); ``numeric_values``, ``discrete_codes`` and ``numeric_bounds`` read a
  canonical column as numbers, as codes fixed by the contract, and with its contract bounds;
- ``encode_for_distance`` turns rows into a matrix whose Euclidean distance is the contract's
  mixed-type distance: ``d(a, b) = sqrt(Σ_numeric (|a_j - b_j| / range_j)² + #categorical
  mismatches)``, ranges from the *contract* bounds, never from the rows; ``column_values``,
  ``distance_layout``, ``used_slots`` and ``encode_columns`` are its parts, for checks that search
  on column subsets or drop slots no row uses;
- ``nearest_distances``: exact distances to the k nearest encoded rows (brute force, chunked);
- ``subsample_rows`` / ``subsample_index`` draw rows without replacement, ``int_seed`` turns a
  SeedSequence into scikit-learn's ``random_state``.

Everything here depends only on the contract (public) and the frame it is given; error messages
name columns and dtypes, never values.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.neighbors import NearestNeighbors

from synthgate.validation.contract import (
    NUMERIC_KINDS,
    BooleanColumn,
    CategoricalColumn,
    Contract,
    DatetimeColumn,
)

__all__ = [
    "ColumnBlock",
    "canonical_frame",
    "column_values",
    "discrete_codes",
    "distance_layout",
    "encode_columns",
    "encode_for_distance",
    "int_seed",
    "n_discrete_slots",
    "nearest_distances",
    "numeric_bounds",
    "numeric_values",
    "subsample_index",
    "subsample_rows",
    "used_slots",
]

# One-hot entries are 1/sqrt(2): two rows with different categories differ in two entries,
# so the mismatch adds (1/sqrt 2)² + (1/sqrt 2)² = 1 to the squared distance.
_ONE_HOT = np.float32(1.0 / math.sqrt(2.0))
# Where a null numeric sits in its scaled column: the middle, so that together with its
# indicator (0 → 1) it differs from any in-range value by between 1 and sqrt(1.25).
_NULL_POSITION = np.float32(0.5)


# --- canonical frames ------------------------------------------------------------------------


def _epoch_seconds(value: dt.datetime) -> float:
    """Contract datetimes without a time zone are read as UTC, as polars reads naive columns."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def numeric_bounds(contract: Contract, name: str) -> tuple[float, float]:
    """(min, max) of a numeric column from the contract, as floats (datetimes: epoch s)."""
    col = contract.columns[name]
    if isinstance(col, DatetimeColumn):
        return _epoch_seconds(col.min), _epoch_seconds(col.max)
    return float(col.min), float(col.max)  # type: ignore[union-attr]


def canonical_frame(df: pl.DataFrame, contract: Contract, *, role: str) -> pl.DataFrame:
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
    # df.columns and df.schema are rebuilt on every access: read them once (quadratic in the
    # columns otherwise: 20 s per check on a 750-column table)
    have, schema, wanted_set = df.columns, df.schema, set(wanted)
    have_set = set(have)
    missing = [c for c in wanted if c not in have_set]
    extra = [c for c in have if c not in wanted_set]
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
        dtype = schema[name]
        if kind == "datetime":
            if not isinstance(dtype, pl.Datetime):
                raise ValueError(
                    f"`{role}` column {name!r} is {dtype}, the contract says datetime. Cast it to polars Datetime."
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
                    f"`{role}` column {name!r} is {dtype}, the contract says boolean. Cast it to polars Boolean."
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


def numeric_values(series: pl.Series) -> np.ndarray:
    """float64 values of a canonical numeric column, NaN where null."""
    return series.cast(pl.Float64).to_numpy(allow_copy=True).astype(np.float64, copy=False)


def n_discrete_slots(contract: Contract, name: str) -> int:
    """Slots of a discrete column: its categories, then null, then (categorical) 'other'."""
    col = contract.columns[name]
    if isinstance(col, BooleanColumn):
        return 3
    assert isinstance(col, CategoricalColumn)
    return len(col.categories) + 2


def discrete_codes(series: pl.Series, contract: Contract, name: str) -> np.ndarray:
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
    codes = series.replace_strict(mapping, default=k + 1, return_dtype=pl.Int64).to_numpy().astype(np.int64, copy=True)
    # replace_strict sends null to the default; put it back in its own slot.
    codes[series.is_null().to_numpy()] = k
    return codes


def subsample_index(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n`` of ``total`` rows drawn without replacement (all when ``n >= total``)."""
    if n >= total:
        return np.arange(total)
    return np.sort(rng.choice(total, size=n, replace=False))


def subsample_rows(df: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` rows drawn without replacement (all rows, in order, when ``n >= df.height``)."""
    if n >= df.height:
        return df
    return df[subsample_index(df.height, n, rng)]


def int_seed(seq: np.random.SeedSequence) -> int:
    """A non-negative 32-bit int from a SeedSequence (scikit-learn's random_state range)."""
    return int(seq.generate_state(1)[0])


# --- encoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnBlock:
    """Where one column's encoding sits in an encoded matrix.

    ``keep`` masks the column's slots in the contract layout (numeric: value, null flag;
    discrete: categories, null, other). The public layout keeps every slot; the layout used
    for the searches drops slots that no row of the three tables uses, which are zero in
    every row and so change no distance.
    """

    start: int
    numeric: bool
    keep: np.ndarray

    @property
    def width(self) -> int:
        return int(self.keep.sum())

    @property
    def columns(self) -> slice:
        return slice(self.start, self.start + self.width)


def column_values(frame: pl.DataFrame, contract: Contract) -> dict[str, np.ndarray]:
    """Per modelled column of a canonical frame: ``(x - min) / (max - min)`` with the contract
    bounds as float64 (NaN for null) for numeric columns, slot codes (``discrete_codes``) for
    discrete ones."""
    out: dict[str, np.ndarray] = {}
    for name in contract.modelled_columns:
        if contract.columns[name].kind in NUMERIC_KINDS:
            lo, hi = numeric_bounds(contract, name)
            out[name] = (numeric_values(frame[name]) - lo) / (hi - lo)
        else:
            out[name] = discrete_codes(frame[name], contract, name)
    return out


def distance_layout(contract: Contract, used: dict[str, np.ndarray] | None = None) -> dict[str, ColumnBlock]:
    """Column -> block, in contract order; ``used[name]`` masks the slots to keep (None: all)."""
    blocks: dict[str, ColumnBlock] = {}
    start = 0
    for name in contract.modelled_columns:
        numeric = contract.columns[name].kind in NUMERIC_KINDS
        n_slots = 2 if numeric else n_discrete_slots(contract, name)
        keep = np.ones(n_slots, dtype=bool) if used is None else used[name]
        blocks[name] = ColumnBlock(start=start, numeric=numeric, keep=keep)
        start += blocks[name].width
    return blocks


def used_slots(contract: Contract, tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Slots some row of ``tables`` uses: a numeric value always, its null flag when a value is
    missing somewhere; a category when some row holds it. Never empty for a column."""
    used: dict[str, np.ndarray] = {}
    for name in contract.modelled_columns:
        if contract.columns[name].kind in NUMERIC_KINDS:
            has_null = any(bool(np.isnan(t[name]).any()) for t in tables)
            used[name] = np.array([True, has_null])
        else:
            n_slots = n_discrete_slots(contract, name)
            counts = sum(np.bincount(t[name], minlength=n_slots) for t in tables)
            used[name] = np.asarray(counts) > 0
    return used


def encode_columns(
    values: dict[str, np.ndarray], layout: dict[str, ColumnBlock], rows: np.ndarray | None = None
) -> np.ndarray:
    """float32 matrix of ``values`` (all rows, or ``rows`` in that order) on ``layout``."""
    first = next(iter(values.values()))
    n = len(first) if rows is None else len(rows)
    width = sum(b.width for b in layout.values())
    out = np.zeros((n, width), dtype=np.float32)
    for name, block in layout.items():
        v = values[name] if rows is None else values[name][rows]
        if block.numeric:
            null = np.isnan(v)
            out[:, block.start] = np.where(null, _NULL_POSITION, v)
            if block.keep[1]:
                out[:, block.start + 1] = null
        else:
            # Slot code -> column inside the block; every code present is a kept slot.
            position = np.cumsum(block.keep) - 1
            out[np.arange(n), block.start + position[v]] = _ONE_HOT
    return out


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

    Each column is one contiguous block of the encoding (numeric: 2 entries; discrete: its
    categories + null + other), in the contract's order; a column subset is a selection of
    blocks. The checks below search on the same layout less the slots no row uses.

    Args:
        df: rows holding exactly ``contract.modelled_columns``.
        contract: the table's data contract (bounds and category lists).

    Returns:
        A float32 array of shape ``(df.height, width)``.
    """
    frame = canonical_frame(df, contract, role="df")
    return encode_columns(column_values(frame, contract), distance_layout(contract))


# --- nearest neighbours ------------------------------------------------------------------------


def nearest_distances(reference: np.ndarray, query: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances from each query row to its ``k`` nearest reference rows, ascending.

    scikit-learn's brute-force search (``ArgKmin``) walks the pairs in tiles of
    ``pairwise_dist_chunk_size`` (256) x 256 rows and keeps a k-heap per query row, so its
    memory is O((n_query + n_reference) k) plus a few tiles per thread, never
    O(n_query x n_reference). float32 tiles are upcast to float64 for the dot products.
    """
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean")
    return nn.fit(reference).kneighbors(query, return_distance=True)[0]
