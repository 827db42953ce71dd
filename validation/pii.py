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

The scan keeps, in memory, only the public category entries that matched, never a private value,
and the result shows counts and column names only. Like every check against private rows, the
gate's outcome is not charged to the privacy budget (the report lists it as outside the
guarantee).
"""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from validation.contract import CategoricalColumn, Contract
from validation.results import MetricResult

__all__ = ["PII_CHECK", "PiiScan"]

PII_CHECK = "pii_values_in_output"
DESCRIPTION = (
    "Values of identifier or pii columns that the release could emit: declared categories, and "
    "cells of the synthetic table, equal (trimmed, case-folded) to such a value of a private row. "
    "Any match blocks the release."
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
            name: set(pl.Series(col.categories, dtype=pl.Utf8).to_frame("v").select(_normalised(pl.col("v"))).to_series())
            for name, col in contract.columns.items()
            if isinstance(col, CategoricalColumn)
        }
        self._candidates = pl.Series("domain", sorted(set().union(*self._categories.values())), dtype=pl.Utf8)
        # normalised category text -> the pii/identifier columns one of whose values equals it
        self._matched: dict[str, set[str]] = defaultdict(set)
        self.rows_scanned = 0

    def update(self, frame: pl.DataFrame) -> None:
        """Scan one batch of private rows (the columns of the contract, as read from the source)."""
        self.rows_scanned += frame.height
        if not self.excluded or self._candidates.is_empty():
            return
        for name in self.excluded:
            if name not in frame.columns:
                continue  # validation refuses a missing declared column; nothing to compare here
            hits = (
                frame.lazy()
                .select(_normalised(pl.col(name)).alias("v"))
                .filter(pl.col("v").is_in(self._candidates.implode()))
                .unique()
                .collect()
                .get_column("v")
            )
            for value in hits:  # each one is a declared (public) category
                self._matched[value].add(name)

    def result(self, synthetic: pl.DataFrame) -> MetricResult:
        """The gate: blocks when a declared category, or a synthetic cell, equals a pii/identifier value."""
        per_column: dict[str, dict[str, object]] = {}
        cells_total = 0
        entries_total = 0
        for name, categories in self._categories.items():
            matched = categories & self._matched.keys()
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
            per_column[name] = {"declared_categories": len(matched), "synthetic_cells": cells,
                                "equal_to_values_of": sources}
            entries_total += len(matched)
            cells_total += cells
        details: dict[str, object] = {
            "pii_columns": self.excluded,
            "rows_scanned": self.rows_scanned,
            "declared_categories_matched": entries_total,
            "synthetic_cells_matched": cells_total,
            "columns": per_column,
        }
        if per_column:
            details["fix"] = (
                "Remove these categories from the contract (a person's identifying value must not be "
                "a public category), or declare the column itself pii; then rerun. Matching values "
                "are not shown, here or anywhere."
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
