"""The PII gate: no value of an identifier or pii column may come out of a release.

identifier and pii columns are dropped before training, so the model never sees them. A value of
one can still come out by another road: a categorical column whose *declared* domain holds it (a
contract drafted from the data, a free-text field declared as a category, a name typed into a
category list). The released model can emit any declared category, so the gate checks both

- the contract's category domains (what the published model can ever emit), and
- the synthetic table itself (what this release holds),

against every value of every identifier/pii column among the private rows that were read. Values
are compared as text, trimmed and case-folded. Numeric, boolean and datetime cells are not
compared: their values are generated inside the contract's bounds, and a generated age equal to a
row id by chance discloses nothing.

Only *identifying* matches count: a category that equals a value held by fewer than
``COMMON_ROWS`` rows of its own categorical column AND by few rows of the identifier/pii column
(fewer than ``COMMON_ROWS``, or than ``COMMON_SHARE`` of the rows scanned). A state code or a grade
that also occurs as a word of a free-text pii column is a common token, shared by many rows, and
singles nobody out; a name or record number typed into a category list is held by one person.

The scan keeps, in memory, only the public category entries that matched (with row counts), never
a private value, and the result shows counts and column names only. Like every check against private rows, the
gate's outcome is not charged to the privacy budget (the report lists it as outside the
guarantee).
"""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from synthgate.validation.contract import CategoricalColumn, Contract
from synthgate.validation.results import MetricResult

__all__ = ["PII_CHECK", "PiiScan"]

PII_CHECK = "pii_values_in_output"
#: A value held by at least this many rows (of its categorical column, or of the pii column) is a
#: common token, not a person's identifying value.
COMMON_ROWS = 10
#: ... as is a value held by at least this share of the rows scanned in the pii/identifier column.
COMMON_SHARE = 0.01
DESCRIPTION = (
    "Identifying values of identifier or pii columns that the release could emit: declared categories, "
    "and cells of the synthetic table, equal (trimmed, case-folded) to such a value of a private row "
    f"that is rare (held by fewer than {COMMON_ROWS} rows of its category column and of the pii column). "
    "Any such match blocks the release."
)


def _normalised(expr: pl.Expr) -> pl.Expr:
    """The one definition of "the same text": trimmed and case-folded, for private and public values alike."""
    return expr.cast(pl.Utf8, strict=False).str.strip_chars().str.to_lowercase()


class PiiScan:
    """Accumulates, over one or many batches of private rows, which declared categories equal a
    value of an identifier/pii column; :meth:`result` turns that into the gate's ``MetricResult``."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.excluded = list(contract.excluded_columns)
        # categorical column -> its declared categories, normalised (public data)
        self._categories: dict[str, set[str]] = {
            name: set(
                pl.Series(col.categories, dtype=pl.Utf8).to_frame("v").select(_normalised(pl.col("v"))).to_series()
            )
            for name, col in contract.columns.items()
            if isinstance(col, CategoricalColumn)
        }
        self._candidates = pl.Series("domain", sorted(set().union(*self._categories.values())), dtype=pl.Utf8)
        # normalised category text -> the pii/identifier columns one of whose values equals it
        self._matched: dict[str, set[str]] = defaultdict(set)
        # (pii column, matched category text) -> rows of the pii column holding it
        self._pii_rows: dict[tuple[str, str], int] = defaultdict(int)
        # (categorical column, category text) -> rows of that column holding it
        self._category_rows: dict[tuple[str, str], int] = defaultdict(int)
        self.rows_scanned = 0

    def update(self, frame: pl.DataFrame) -> None:
        """Scan one batch of private rows (the columns of the contract, as read from the source)."""
        self.rows_scanned += frame.height
        if not self.excluded or self._candidates.is_empty():
            return
        for name in self.excluded:
            if name not in frame.columns:
                continue  # validation refuses a missing declared column; nothing to compare here
            for value, rows in self._candidate_counts(frame, name):  # each value is a declared (public) category
                self._matched[value].add(name)
                self._pii_rows[(name, value)] += int(rows)
        for name in self._categories:
            if name not in frame.columns:
                continue
            for value, rows in self._candidate_counts(frame, name):
                self._category_rows[(name, value)] += int(rows)

    def _candidate_counts(self, frame: pl.DataFrame, name: str) -> list[tuple[str, int]]:
        """(normalised value, rows) of column ``name`` for the values that equal a declared category."""
        return (
            frame.lazy()
            .select(_normalised(pl.col(name)).alias("v"))
            .filter(pl.col("v").is_in(self._candidates.implode()))
            .group_by("v")
            .len()
            .collect()
            .rows()
        )

    def _identifying(self, column: str, value: str) -> bool:
        """A matched category of ``column`` is identifying unless it is a common token: held by
        many rows of its own column, or by many rows of every pii column it matched."""
        if self._category_rows.get((column, value), 0) >= COMMON_ROWS:
            return False
        common = max(COMMON_ROWS, COMMON_SHARE * self.rows_scanned)
        return any(self._pii_rows.get((p, value), 0) < common for p in self._matched[value])

    def _fix(self, column: str, n: int, sources: list[str]) -> str:
        """What to do about ``n`` identifying categories of ``column``, for the case at hand."""
        col = self.contract.columns[column]
        if not isinstance(col, CategoricalColumn):  # the scan matches declared categories only (``_categories``)
            raise TypeError(
                f"{column!r} is a {col.kind} column, not a categorical one: it has no category list to fix."
            )
        of = ", ".join(repr(s) for s in sources)
        what = (
            f"{n} of {column!r}'s declared categories equal values of {of} that fewer than {COMMON_ROWS} rows "
            f"of {column!r} hold (a person's name or number, not a category)."
        )
        if col.from_data:
            return (
                f"{what} Its category list was drafted from the rows (from_data: true): replace it with a "
                "public code list (a codebook or standard), set from_data: false, and rerun."
            )
        if len(col.categories) >= 3 and n * 2 > len(col.categories):
            return (
                f"{what} Most of its categories are such values, so {column!r} itself holds identifying "
                f"text: declare {column!r} `kind: pii` (dropped, never released) and rerun."
            )
        return (
            f"{what} Delete those entries from {column!r}'s `categories` (compare the list with "
            f"{of} at the source; rows holding them then fail validation, so map them at ingestion) "
            "and rerun."
        )

    def result(self, synthetic: pl.DataFrame) -> MetricResult:
        """The gate: blocks when a declared category, or a synthetic cell, equals a pii/identifier value."""
        per_column: dict[str, dict[str, object]] = {}
        cells_total = 0
        entries_total = 0
        common_tokens = 0
        for name, categories in self._categories.items():
            equal = categories & self._matched.keys()
            matched = {m for m in equal if self._identifying(name, m)}
            common_tokens += len(equal) - len(matched)
            if not matched:
                continue
            cells = 0
            if name in synthetic.columns:
                cells = int(
                    synthetic.select(
                        _normalised(pl.col(name)).is_in(pl.Series(sorted(matched), dtype=pl.Utf8).implode()).sum()
                    ).item()
                )
            sources = sorted(set().union(*(self._matched[m] for m in matched)))
            per_column[name] = {
                "declared_categories": len(matched),
                "synthetic_cells": cells,
                "equal_to_values_of": sources,
                "fix": self._fix(name, len(matched), sources),
            }
            entries_total += len(matched)
            cells_total += cells
        details: dict[str, object] = {
            "pii_columns": self.excluded,
            "rows_scanned": self.rows_scanned,
            "declared_categories_matched": entries_total,
            "synthetic_cells_matched": cells_total,
            "common_tokens_ignored": common_tokens,
            "columns": per_column,
        }
        if per_column:
            details["fix"] = " ".join(f"{name}: {c['fix']}" for name, c in per_column.items()) + (
                " Matching values are not shown, here or anywhere."
            )
        return MetricResult(
            name=PII_CHECK,
            value=float(entries_total + cells_total),
            threshold=0.0,
            passed=entries_total + cells_total == 0,
            direction="max",
            kind="privacy",
            description=DESCRIPTION,
            details=details,
        )
