"""The unit of privacy: one row of the source table, or one person when the contract names a unit.

DP protects whatever one "neighbouring" change of the input is. By default that is one row of the
source table, added or removed; a person with k rows in a longitudinal table then gets only the
protection of k rows (group privacy: roughly k·ε). A contract that names its entity column
(``unit: patient_id``) makes the unit one person: before anything else reads the rows, each person's
rows are reduced to at most ``max_rows_per_unit`` rows (today: 1), chosen by a keyed hash of the
row under a secret key. Why this gives person-level DP with the row-level mechanisms unchanged:

- the kept row of a person is a function of that person's rows alone (and the key), so adding or
  removing one person adds or removes at most ONE row of the reduced table, and every later step
  (the holdout split's per-row coins, the codec's DP histograms, DP-SGD) is DP for one row of it;
- a person's other rows are dropped, never trained on and never put in the holdout, so a person is
  never both in training and in the holdout.
The hash is polars' 64-bit row hash seeded with a secret key from the private entropy: the choice
is private randomness (DESIGN.md: every draw touching a private sample from a private stream); the
stability argument above needs only that it depends on the person's own rows.
"""

from __future__ import annotations

import polars as pl

from synthgate.errors import InputError
from synthgate.tasks.redaction import private_task


def one_row_per_unit(df: pl.DataFrame, unit: str, *, key: int) -> pl.DataFrame:
    """Keep one row per distinct value of ``unit``: the row with the smallest keyed hash.

    ``key`` is a secret (private entropy); nothing about which row was kept is returned. Row order
    of the result is by that hash (a secret order: no row's position reveals the source order).
    """
    if unit not in df.columns:
        raise InputError(
            f"the contract's unit column {unit!r} is not in the rows read. Columns: {df.columns}. "
            "Declare it in the contract's columns (kind identifier) and select it in the source."
        )
    if df.get_column(unit).null_count():
        raise InputError(
            f"the unit column {unit!r} holds nulls: a row without a person cannot be bounded to one "
            "person's contribution. Fill or drop those rows in the source query, then rerun."
        )
    hashed = df.with_columns(pl.struct(pl.all()).hash(seed=key & 0xFFFF_FFFF_FFFF_FFFF).alias("__unit_hash"))
    kept = hashed.sort("__unit_hash").unique(subset=[unit], keep="first", maintain_order=True)
    return kept.drop("__unit_hash")


@private_task(name="bound_contributions", task_run_name="bound each person to one row")
def bound_contributions(df: pl.DataFrame, unit: str | None, *, key: int) -> pl.DataFrame:
    """The rows the run may use: all of them when the unit is a row, one per person otherwise."""
    if unit is None:
        return df
    return one_row_per_unit(df, unit, key=key)
