"""Draft a data contract from a table (``synthgate contract infer``).

A drafted contract is a starting point for a person, never a release input as is: every bound
and category list below is read from the private rows, so it leaks information about them.
Each such column is marked ``from_data: true``, and the ``contract_is_public`` gate blocks
releases until a person replaces those entries with public knowledge (or they are learned
with a DP mechanism charged to the budget).

Heuristics, all conservative (a doubtful column is excluded rather than modelled):
- name hints (``id``, ``uuid``, ... → identifier; ``name``, ``email``, ``phone``, ``ssn``,
  ``address``, ... → pii) apply to every dtype;
- text values that look like e-mail addresses or SSNs (any value) or phone numbers (at least
  half the distinct values) → pii;
- text unique per row → identifier; free text (at least 5 distinct values, half of them held by
  one row only, or more than 50 distinct values mostly of several words) → pii, however short;
  text with ≤ 50 distinct values and fewer distinct values than half the rows → categorical;
  other high-cardinality text (codes) → identifier;
- integers: a row index (unique 1..n or 0..n-1) or a dense near-unique key → identifier; only
  0/1 → boolean; else integer. Float/decimal → continuous, Boolean → boolean, Date/Datetime →
  datetime; anything else → identifier (excluded, with a note);
- a modelled column equal to an earlier one (or to it plus a constant) in every row → ``derived``.
The draft's budget is the README's default ε (3.0) with a lifetime budget of 3 releases' worth.
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import polars as pl

from synthgate.errors import ContractError
from synthgate.validation.contract import Contract, parse_contract

__all__ = ["MAX_CATEGORIES", "infer_contract", "render_inferred_yaml"]

#: A text column with more distinct values than this is not drafted as categorical.
MAX_CATEGORIES = 50
#: Text with at least this many distinct values, half of them held by one row only, is free text
#: (answers typed by people, short or long): drafted pii, never categorical.
FREE_TEXT_MIN_DISTINCT = 5
#: The drafted lifetime budget, as a multiple of the per-release ε (a few retries, not unlimited).
LIFETIME_RELEASES = 3
#: The per-release ε a draft gets, the README's default.
DEFAULT_EPSILON = 3.0

_EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
_SSN = r"^\d{3}-\d{2}-\d{4}$"
# Digits with optional +, spaces, dots, dashes, parentheses; 7 to 15 digits (E.164 max).
_PHONE = r"^\+?[\d\s().-]{7,24}$"

_ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "pk", "key", "rowid", "recordid"})
_ID_PREFIXES = frozenset(
    {
        "user",
        "customer",
        "client",
        "patient",
        "person",
        "account",
        "member",
        "employee",
        "record",
        "row",
        "order",
        "session",
        "case",
        "subject",
        "household",
    }
)
_PII_TOKENS = frozenset(
    {
        "name",
        "names",
        "email",
        "mail",
        "phone",
        "telephone",
        "tel",
        "mobile",
        "fax",
        "ssn",
        "passport",
        "address",
        "street",
        "iban",
        "dob",
        "birthdate",
        "birthday",
        "nino",
        "ip",
    }
)
_PII_PHRASES = ("socialsecurity", "dateofbirth", "phonenumber", "emailaddress", "ipaddress")


def _tokens(name: str) -> list[str]:
    """Split a column name into lowercase words: ``customerID`` → ``customer``, ``id``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _name_hint(name: str) -> tuple[str, str] | None:
    """(kind, reason) when the column name says identifier or pii, else None."""
    tokens = _tokens(name)
    joined = "".join(tokens)
    for tok in tokens:
        if tok in _PII_TOKENS or (tok.endswith("name") and len(tok) > 4):
            return "pii", f"its name contains {tok!r}"
    for phrase in _PII_PHRASES:
        if phrase in joined:
            return "pii", f"its name contains {phrase!r}"
    for tok in tokens:
        if tok in _ID_TOKENS or (tok.endswith("id") and tok[:-2] in _ID_PREFIXES):
            return "identifier", f"its name contains {tok!r}"
    return None


def _pattern_hint(distinct: pl.Series) -> str | None:
    """A reason when the distinct text values look like personal data, else None.

    E-mail and SSN patterns are specific: one matching value is enough. The phone pattern is
    looser (it also matches some codes), so half the distinct values must match.
    """
    if distinct.len() == 0:
        return None
    values = distinct.str.strip_chars()
    if values.str.contains(_EMAIL).any():
        return "some values look like e-mail addresses"
    if values.str.contains(_SSN).any():
        return "some values look like social security numbers"
    digits = values.str.count_matches(r"\d")
    phone = values.str.contains(_PHONE) & (digits >= 7) & (digits <= 15)
    if phone.sum() * 2 >= values.len():
        return "most values look like phone numbers"
    return None


def _excluded(kind: str, nullable: bool, reason: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "nullable": nullable,
        "description": f"drafted as {kind} because {reason}; never modelled or released.",
    }


#: A unique integer column of at least this many rows that is dense (range <= 2 n) is a key.
KEY_MIN_ROWS = 50
#: ... and so is one whose distinct values are at least this share of its non-null values.
KEY_DISTINCT_SHARE = 0.95


def _integer_key_reason(s: pl.Series) -> str | None:
    """Why an integer column looks like a row index or a key, else None.

    A row index: unique values forming the sequence start..start+n-1 with start 0 or 1 (R's
    ``rownames``, a pandas index). A key: (nearly) unique values packed into a range no wider than
    2n, in a table of at least ``KEY_MIN_ROWS`` rows (a measurement rarely has both).
    """
    values = s.drop_nulls()
    n = values.len()
    if n < 2:
        return None
    n_distinct = values.n_unique()
    lo, hi = int(values.min()), int(values.max())  # type: ignore[arg-type]
    if n_distinct == n and lo in (0, 1) and hi - lo + 1 == n:
        return f"its values are the unique sequence {'1..n' if lo == 1 else '0..n-1'} (a row index)"
    if n >= KEY_MIN_ROWS and n_distinct >= KEY_DISTINCT_SHARE * n and hi - lo + 1 <= 2 * n:
        return (
            f"its values are (nearly) unique ({n_distinct} distinct of {n}) and packed in a range no "
            "wider than twice the row count (a key)"
        )
    return None


def _numeric_spec(s: pl.Series, *, integer: bool, nullable: bool) -> dict[str, Any]:
    values = s.cast(pl.Float64) if not integer else s
    if not integer:
        values = values.filter(values.is_finite())
    values = values.drop_nulls()
    kind = "integer" if integer else "continuous"
    note = None
    if values.len() == 0:
        lo, hi = (0, 1) if integer else (0.0, 1.0)
        note = "no finite value in the data: placeholder bounds, set public ones"
    else:
        lo = int(values.min()) if integer else float(values.min())  # type: ignore[arg-type]
        hi = int(values.max()) if integer else float(values.max())  # type: ignore[arg-type]
        if not lo < hi:  # constant column: the contract needs min < max
            hi = lo + 1 if integer else lo + 1.0
            note = "constant in the data: max widened by 1"
    spec: dict[str, Any] = {"kind": kind, "nullable": nullable, "min": lo, "max": hi, "from_data": True}
    if note:
        spec["description"] = note
    return spec


def _datetime_spec(s: pl.Series, *, nullable: bool) -> dict[str, Any]:
    values = s.cast(pl.Datetime("us")) if s.dtype == pl.Date else s
    values = values.drop_nulls()
    spec: dict[str, Any] = {"kind": "datetime", "nullable": nullable, "from_data": True}
    if values.len() == 0:
        lo, hi = dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)
        spec["description"] = "no value in the data: placeholder bounds, set public ones"
    else:
        low, high = values.min(), values.max()
        if not (isinstance(low, dt.datetime) and isinstance(high, dt.datetime)):  # a Datetime series' bounds
            raise TypeError(f"the bounds of a datetime column came back as {type(low).__name__}, not datetimes.")
        lo, hi = low, high
        if isinstance(values.dtype, pl.Datetime) and values.dtype.time_unit == "ns":
            hi = hi + dt.timedelta(microseconds=1)  # python: µs
        if not lo < hi:
            hi = lo + dt.timedelta(days=1)
            spec["description"] = "constant in the data: max widened by one day"
    spec["min"], spec["max"] = lo, hi
    return spec


def _text_spec(s: pl.Series, *, n_rows: int, nullable: bool) -> dict[str, Any]:
    text = s.cast(pl.String)
    distinct = text.drop_nulls().unique()
    n_distinct = distinct.len()
    non_null = text.len() - text.null_count()
    reason = _pattern_hint(distinct)
    if reason is not None:
        return _excluded("pii", nullable, reason)
    if n_distinct == 0:
        return _excluded("identifier", nullable, "every value is null (declare its kind)")
    if n_distinct == non_null and non_null > 1 and n_distinct * 2 >= n_rows:
        return _excluded("identifier", nullable, "its values are unique per row")
    counts = text.drop_nulls().value_counts().get_column("count")
    singletons = int((counts == 1).sum())
    if n_distinct >= FREE_TEXT_MIN_DISTINCT and singletons * 2 >= n_distinct:
        return _excluded(
            "pii",
            nullable,
            f"it looks like free text: {singletons} of its {n_distinct} distinct values occur in one row "
            "only; declare it categorical with a public category list if it is one",
        )
    if n_distinct <= MAX_CATEGORIES and n_distinct * 2 < n_rows:
        return {
            "kind": "categorical",
            "nullable": nullable,
            "categories": sorted(distinct.to_list()),
            "from_data": True,
        }
    if n_distinct > MAX_CATEGORIES and distinct.str.strip_chars().str.contains(r"\s").mean() >= 0.5:  # type: ignore[operator]
        return _excluded(
            "pii",
            nullable,
            f"it looks like free text: {n_distinct} distinct values, most of several words; declare it "
            "categorical with a public category list if it is one",
        )
    return _excluded(
        "identifier",
        nullable,
        f"it is high-cardinality text ({n_distinct} distinct values); declare it categorical "
        "with a public category list if it is one",
    )


def _column_spec(s: pl.Series, *, n_rows: int) -> dict[str, Any]:
    nullable = s.null_count() > 0
    hint = _name_hint(s.name)
    if hint is not None:
        return _excluded(hint[0], nullable, hint[1])
    dtype = s.dtype
    if dtype == pl.Boolean:
        return {"kind": "boolean", "nullable": nullable}
    if dtype.is_integer():
        key = _integer_key_reason(s)
        if key is not None:
            return _excluded("identifier", nullable, key)
        distinct = s.drop_nulls().unique()
        if distinct.len() > 0 and bool(distinct.is_in([0, 1]).all()):
            return {
                "kind": "boolean",
                "nullable": nullable,
                "description": "drafted as boolean: its values are 0/1 (read as False/True)",
            }
        return _numeric_spec(s, integer=True, nullable=nullable)
    if dtype.is_numeric():  # floats and decimals
        return _numeric_spec(s, integer=False, nullable=nullable)
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return _datetime_spec(s, nullable=nullable)
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return _text_spec(s, n_rows=n_rows, nullable=nullable)
    if dtype == pl.Null:
        return _excluded("identifier", True, "every value is null (declare its kind)")
    return _excluded("identifier", nullable, f"its dtype {dtype} is not supported")


def _mark_derivations(df: pl.DataFrame, columns: dict[str, dict[str, Any]]) -> None:
    """Draft ``derived`` on a modelled column equal to an earlier one (or to it plus a constant) in
    every row: such columns are generated from their source, not learned."""
    from synthgate.validation.derived import find_derivations

    modelled = [n for n, spec in columns.items() if spec["kind"] not in ("identifier", "pii")]
    for d in find_derivations(df, modelled):
        spec, src = columns[d.column], columns[d.source]
        if spec["kind"] != src["kind"] or (
            d.offset is not None and spec["kind"] not in ("integer", "continuous", "datetime")
        ):
            continue
        if d.offset is not None and spec["kind"] == "integer" and d.offset != int(d.offset):
            continue
        if src.get("nullable") and not spec.get("nullable"):
            continue
        offset = None if d.offset is None else (int(d.offset) if spec["kind"] == "integer" else d.offset)
        spec["derived"] = (
            {"from": d.source, "as": "copy"} if offset is None else {"from": d.source, "as": "offset", "offset": offset}
        )
        spec["from_data"] = True  # read off the rows: a person confirms it
        what = (
            f"a copy of {d.source!r}"
            if offset is None
            else f"{d.source!r} + {offset:g}" + (" days" if spec["kind"] == "datetime" else "")
        )
        spec["description"] = (
            f"drafted as derived: {what} in every row, so it is generated from it, not learned. "
            "Confirm, or remove `derived`."
        )


def infer_contract(
    df: pl.DataFrame,
    *,
    table: str,
    epsilon: float = DEFAULT_EPSILON,
    delta: float | None = None,
    missing_values: Sequence[str] = (),
) -> Contract:
    """Draft a contract from ``df``. Every bound and category list is marked ``from_data``.

    ``missing_values`` are strings read as null in text columns (recorded in the contract).
    ``delta`` defaults to ``min(1e-6, 0.1 / n)`` for the table's ``n`` rows. The draft must be
    reviewed: the ``contract_is_public`` gate blocks releases while any entry is data-derived.
    Raises :class:`ContractError` for an empty table, a ``delta`` ≥ 1/n, or a table whose
    every column is excluded (identifier/pii).
    """
    n = df.height
    if n == 0 or df.width == 0:
        raise ContractError(
            f"cannot draft a contract for table {table!r}: it has {n} rows and {df.width} "
            "columns. Pass a non-empty table, or write the contract by hand."
        )
    if missing_values:
        markers = list(missing_values)
        df = df.with_columns(
            pl.when(pl.col(c).is_in(markers)).then(None).otherwise(pl.col(c)).alias(c)
            for c, t in df.schema.items()
            if t == pl.String
        )
    if delta is None:
        delta = min(1e-6, 0.1 / n)
    columns = {name: _column_spec(df.get_column(name), n_rows=n) for name in df.columns}
    _mark_derivations(df, columns)
    data = {
        "version": 1,
        "table": table,
        # No row count here: n is private too (synthgate learns it with a DP mechanism).
        "description": "DRAFT written by `synthgate contract infer`; review before use.",
        "missing_values": list(missing_values),
        "columns": columns,
        "privacy": {
            "epsilon": epsilon,
            "delta": delta,
            "lifetime_epsilon": LIFETIME_RELEASES * epsilon,
            "lifetime_delta": LIFETIME_RELEASES * delta if LIFETIME_RELEASES * delta < 1 else None,
        },
    }
    contract = parse_contract(data, source=f"inferred contract for table {table!r}")
    contract.privacy.check_delta(n)
    return contract


_HEADER = """\
# =====================================================================================
# DRAFT DATA CONTRACT, INFERRED FROM THE PRIVATE ROWS -- NOT YET A PRIVACY BOUNDARY
# =====================================================================================
# `synthgate contract infer` wrote this file by reading table {table!r}.
#
# Every bound (min/max) and category list marked `from_data: true` was read from the
# private rows. It leaks information about them (e.g. the exact oldest age, a rare
# category held by one person). A release built on it is NOT differentially private.
#
# Before a release counts as DP, for each column marked `from_data: true`:
#   - replace its bounds/categories with public knowledge (a codebook, a standard, a
#     regulation, a generous round bound) and set `from_data: false`, or
#   - learn them with a DP mechanism whose cost is charged to the privacy budget.
# synthgate's `contract_is_public` gate blocks every release until no entry is marked
# `from_data: true`.
#
# Data-derived columns ({n_derived}):
{derived}
#
# Also review: the kinds, the `nullable` flags (read from the rows too), the
# identifier/pii flags (name and value heuristics: they may miss personal data), and
# privacy.delta (its default, min(1e-6, 0.1/n), depends on the row count).
# Budget: privacy.epsilon is the README's default per release; privacy.lifetime_epsilon
# caps what every run on this table may spend together ({lifetime}x the per-release ε: a few
# retries, then runs are refused). Raise it deliberately, never to "unlimited" by accident.
# Columns marked `derived` equal another column (or it plus a constant) in every row:
# they are generated from it, not learned; confirm each.
# This file quotes values from the private table: treat it as private until reviewed.
# =====================================================================================
"""


def render_inferred_yaml(contract: Contract) -> str:
    """The contract as YAML, under a loud header saying what was read from private rows.

    The result loads back with :func:`validation.contract.parse_contract` (or
    ``load_contract`` from a file) to an equal contract.
    """
    derived = contract.data_derived_columns
    # repr() keeps a column name with a newline from breaking out of the comment block.
    listing = ", ".join(repr(name) for name in derived) if derived else "(none)"
    lines = textwrap.wrap(listing, width=83, break_long_words=True, break_on_hyphens=False)
    header = _HEADER.format(
        table=contract.table,
        n_derived=len(derived),
        lifetime=LIFETIME_RELEASES,
        derived="\n".join(f"#   {line}" for line in lines),
    )
    return header + contract.to_yaml()


# Column names that usually hold the outcome a table is analysed for (whole words, any case).
_TARGET_WORDS = (
    "target",
    "label",
    "class",
    "outcome",
    "y",
    "response",
    "income",
    "churn",
    "churned",
    "default",
    "survived",
    "status",
    "diagnosis",
    "result",
    "fraud",
    "readmitted",
    "approved",
)


def propose_target(contract: Contract) -> str | None:
    """A proposed ML-efficacy target, from the column names and kinds alone (no value is read, so the
    proposal is public): a boolean or categorical column whose name is, or ends in, a word that usually
    names an outcome (target, label, class, outcome, income, churn, ...); else the only boolean column;
    else None. A proposal only:
    the person reviewing the draft confirms or changes it."""
    import re

    candidates = [
        n
        for n in contract.modelled_columns
        if contract.columns[n].kind in ("boolean", "categorical") and contract.columns[n].derived is None
    ]
    for word in _TARGET_WORDS:
        for name in candidates:
            words = [w for w in re.split(r"[^a-z0-9]+|(?<=[a-z])(?=[A-Z])", name) if w]
            if words and (name.lower() == word or words[-1].lower() == word):
                return name
    flags = [n for n in candidates if contract.columns[n].kind == "boolean"]
    return flags[0] if len(flags) == 1 else None  # the only yes/no column: a binary outcome
