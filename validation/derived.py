"""Derived columns: a column the contract declares as a copy of another, or another plus a constant.

Such a column is not learned (a synthesizer breaks exact equalities apart: three columns that always
hold the same date came out as three different dates and failed the 3-way gate). It is dropped before
training and generated from its source after sampling, so the synthetic table keeps the identity
exactly. Validation counts the rows that break a declared derivation (counts only, never a value).

``find_derivations`` is the drafting side: which columns of a table duplicate another, or differ
from it by a constant (``contract infer`` drafts them as ``derived``, ``contract check`` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from synthgate.validation.contract import Contract

__all__ = ["Derivation", "add_derived_columns", "derivation_violations", "find_derivations"]

_SECONDS_PER_DAY = 86_400


def _offset_expr(source: pl.Expr, kind: str, offset: float) -> pl.Expr:
    if kind == "datetime":
        return source + pl.duration(microseconds=round(offset * _SECONDS_PER_DAY * 1e6))
    if kind == "integer":
        return source + int(offset)
    return source + offset


def _expected(contract: Contract, name: str) -> pl.Expr:
    col = contract.columns[name]
    d = col.derived
    assert d is not None  # callers iterate contract.derived_columns
    src = pl.col(d.source)
    return src if d.as_ == "copy" else _offset_expr(src, col.kind, float(d.offset))  # type: ignore[arg-type]


def add_derived_columns(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """``df`` (the modelled columns, e.g. synthetic rows) with every derived column generated from
    its source, in the contract's column order. Post-processing: reads no private row."""
    if not contract.derived_columns:
        return df
    out = df.with_columns(_expected(contract, name).alias(name) for name in contract.derived_columns)
    return out.select([c for c in contract.released_columns if c in out.columns])


def derivation_violations(df: pl.DataFrame, contract: Contract) -> dict[str, int]:
    """Per derived column present with its source: the number of rows where it differs from its
    derivation (nulls must match). Counts only."""
    out: dict[str, int] = {}
    for name in contract.derived_columns:
        src = contract.columns[name].derived.source  # type: ignore[union-attr]
        if name not in df.columns or src not in df.columns:
            continue
        try:
            bad = df.select((~_expected(contract, name).eq_missing(pl.col(name))).sum()).item()
        except pl.exceptions.PolarsError:  # incompatible dtypes: every row is unverified
            bad = df.height
        out[name] = int(bad or 0)
    return out


@dataclass(frozen=True)
class Derivation:
    """``column`` equals ``source`` (offset None) or ``source`` + ``offset`` in every row."""

    column: str
    source: str
    offset: float | None  # None: a copy; datetime offsets in days

    def describe(self) -> str:
        if self.offset is None:
            return f"{self.column!r} equals {self.source!r} in every row"
        return f"{self.column!r} equals {self.source!r} + {self.offset:g} in every row"


def _comparable(s: pl.Series) -> tuple[str, pl.Series] | None:
    """A column as (family, values) that equality and differences work on: datetimes in days,
    numbers, booleans, text. Only columns of one family are compared."""
    if s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us"))
    if isinstance(s.dtype, pl.Datetime):
        return "datetime", s.dt.epoch("us").cast(pl.Float64) / (_SECONDS_PER_DAY * 1e6)
    if s.dtype == pl.Boolean:
        return "boolean", s.cast(pl.Float64)
    if s.dtype.is_numeric():
        return "number", s.cast(pl.Float64)
    if s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
        return "text", s.cast(pl.String)
    return None


def find_derivations(df: pl.DataFrame, columns: list[str] | None = None, *, min_rows: int = 2) -> list[Derivation]:
    """Columns that duplicate an earlier column, or differ from one by a constant, in every row.

    Nulls must coincide. Only a table of at least ``min_rows`` rows and a non-constant source
    count (a constant column equals any other constant column plus something). Each column is
    reported once, against the first earlier column it is a function of. The result is read off
    the private rows: a draft for a person to confirm.
    """
    names = columns if columns is not None else df.columns
    if df.height < min_rows:
        return []
    series = {n: _comparable(df.get_column(n)) for n in names if n in df.columns}
    found: list[Derivation] = []
    taken: set[str] = set()
    for j, b in enumerate(names):
        fb = series.get(b)
        if fb is None or fb[1].null_count() == fb[1].len():
            continue
        family, sb = fb
        for a in names[:j]:
            fa = series.get(a)
            if a in taken or fa is None or fa[0] != family or fa[1].n_unique() < 2:
                continue
            sa = fa[1]
            if family == "boolean" and not (sa == sb).drop_nulls().all():
                continue  # booleans: copies only, never an offset
            if not (sa.is_null() == sb.is_null()).all():
                continue
            if sa.dtype == pl.String:
                if (sa.drop_nulls() == sb.drop_nulls()).all():
                    found.append(Derivation(b, a, None))
                    taken.add(b)
                    break
                continue
            diff = (sb - sa).drop_nulls()
            if diff.len() == 0 or diff.is_nan().any():
                continue
            lo, hi = diff.min(), diff.max()
            if lo == hi:
                found.append(Derivation(b, a, None if lo == 0 else float(lo)))  # type: ignore[arg-type]
                taken.add(b)
                break
    return found
