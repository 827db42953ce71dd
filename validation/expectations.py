"""The great-expectations suite generated from the data contract, and table validation.

Rows outside the contract must fail before anything is trained. The suite is built from the
contract alone (never from rows); :func:`validate_frame` runs it on a polars table and
returns a :class:`ValidationReport` that holds counts only.

Privacy: great-expectations results can quote offending cell values (``partial_unexpected_list``
and friends). We request the smallest result format that still carries ``unexpected_count``
(``BASIC`` with ``partial_unexpected_count=0`` and ``exclude_unexpected_values``), copy out
counts only and drop the result object. Exception messages raised while evaluating an
expectation are withheld too, because they can quote data. Contract values (bounds,
categories) and column names are public and may appear in the report.

great-expectations validates pandas, not polars: the conversion happens here and nowhere else.
The frame handed to great-expectations is built with arrow-backed / nullable pandas dtypes,
so integers with nulls stay integers and NaN stays distinct from null (a NaN or ±inf in a
numeric column therefore fails the range expectation instead of passing as "missing").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from synthgate.validation.contract import (
    BooleanColumn,
    CategoricalColumn,
    Column,
    ContinuousColumn,
    Contract,
    DatetimeColumn,
    IntegerColumn,
)

if TYPE_CHECKING:  # importing great-expectations costs seconds: only when validating.
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations import Expectation

__all__ = [
    "DTYPE_CHECK",
    "TABLE",
    "ValidationFailure",
    "ValidationReport",
    "build_suite",
    "validate_frame",
]

#: The expectation name of a row that breaks a declared ``derived`` column.
DERIVED_CHECK = "derived_column_matches"
#: ``ValidationFailure.column`` for table-level failures (row count).
TABLE = "(table)"

# The smallest result format that still reports unexpected_count, with every list of
# offending values switched off.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
}

# Names great-expectations' pandas type check accepts for integer columns: numpy dtypes and
# pandas' nullable (masked) dtypes, which is what integer columns with nulls become here.
_INTEGER_TYPES: list[str] = [
    *(f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)),
    *(f"{p}Int{b}Dtype" for p in ("", "U") for b in (8, 16, 32, 64)),
]

# synthgate's own check (polars side, before great-expectations): the column's dtype can hold
# the contract kind at all. When it cannot, its value expectations are skipped.
DTYPE_CHECK = "expect_column_dtype_to_match_contract_kind"
# synthgate's own check (not a GE expectation): a categorical column that is an identifier in disguise.
IDENTIFIER_CHECK = "expect_categorical_column_not_identifier_like"
# Flagged when at least this share of its non-null rows hold a value no other row holds, and at
# least IDENTIFIER_MIN_SINGLETONS rows do: a real category is shared by many rows, an ID by one.
IDENTIFIER_SINGLETON_SHARE = 0.5
IDENTIFIER_MIN_SINGLETONS = 20

_EXIST = "expect_column_to_exist"
_NOT_NULL = "expect_column_values_to_not_be_null"
_BETWEEN = "expect_column_values_to_be_between"
_IN_SET = "expect_column_values_to_be_in_set"
_TYPE_LIST = "expect_column_values_to_be_in_type_list"
_ROW_COUNT = "expect_table_row_count_to_be_between"


@dataclass(frozen=True)
class ValidationFailure:
    """One failed check: which column, which expectation, how many rows. Never a value."""

    column: str
    expectation: str
    unexpected_count: int
    detail: str


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating a table against its contract (aggregates only)."""

    success: bool
    n_rows: int
    failures: list[ValidationFailure] = field(default_factory=list)

    def summary(self) -> str:
        """A short human table ``column | expectation | bad rows``."""
        if self.success:
            return f"validation passed: {self.n_rows} rows, every expectation met."
        head = f"validation FAILED: {len(self.failures)} failed check(s) on {self.n_rows} rows."
        rows = [("column", "expectation", "bad rows")]
        rows += [(f.column, f.expectation, str(f.unexpected_count)) for f in self.failures]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}} | {b:<{w1}} | {c}" for a, b, c in rows]
        lines.insert(1, f"{'-' * w0}-+-{'-' * w1}-+-{'-' * len('bad rows')}")
        details = [f"- {f.column}: {f.detail}" for f in self.failures if f.detail]
        return "\n".join([head, *lines, *details])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the release report."""
        return {
            "success": self.success,
            "n_rows": self.n_rows,
            "failures": [asdict(f) for f in self.failures],
        }


# --- the suite ---------------------------------------------------------------------------------


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """Compare datetimes as naive UTC: aware values are converted, naive ones taken as UTC."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _column_expectations(name: str, col: Column, *, present: bool = True, values: bool = True) -> list[Expectation]:
    """The expectations for one contract column, in a fixed order.

    ``present=False`` keeps only the existence check (the column is absent: anything else
    would only raise). ``values=False`` keeps existence and not-null (the column's dtype
    cannot hold its kind, so range or set checks would be meaningless).
    """
    import great_expectations as gx

    exps = gx.expectations
    out: list[Expectation] = [exps.ExpectColumnToExist(column=name)]
    if not present or col.kind in ("identifier", "pii"):
        # Dropped before training and never released: nothing else about them is checked,
        # so their values never reach great-expectations.
        return out
    if not col.nullable:
        out.append(exps.ExpectColumnValuesToNotBeNull(column=name))
    if not values:
        return out
    if isinstance(col, (IntegerColumn, ContinuousColumn)):
        if isinstance(col, IntegerColumn):
            out.append(exps.ExpectColumnValuesToBeInTypeList(column=name, type_list=_INTEGER_TYPES))
        out.append(exps.ExpectColumnValuesToBeBetween(column=name, min_value=col.min, max_value=col.max))
    elif isinstance(col, DatetimeColumn):
        out.append(
            exps.ExpectColumnValuesToBeBetween(
                column=name, min_value=_naive_utc(col.min), max_value=_naive_utc(col.max)
            )
        )
    elif isinstance(col, CategoricalColumn):
        out.append(exps.ExpectColumnValuesToBeInSet(column=name, value_set=list(col.categories)))
    elif isinstance(col, BooleanColumn):
        out.append(exps.ExpectColumnValuesToBeInSet(column=name, value_set=[True, False]))
    return out


def _suite(contract: Contract, *, absent: Iterable[str] = (), skip_values: Iterable[str] = ()) -> ExpectationSuite:
    import great_expectations as gx

    gone, skip = set(absent), set(skip_values)
    expectations: list[Expectation] = [gx.expectations.ExpectTableRowCountToBeBetween(min_value=1)]
    for name, col in contract.columns.items():
        expectations += _column_expectations(name, col, present=name not in gone, values=name not in skip)
    # Passed to the constructor rather than add_expectation(), which needs an active data
    # context (it checks whether the suite was saved to a store): build_suite stays pure.
    return gx.ExpectationSuite(
        name=f"synthgate-{contract.table}",
        expectations=expectations,
        meta={"contract_fingerprint": contract.fingerprint()},
    )


def build_suite(contract: Contract) -> ExpectationSuite:
    """Build the great-expectations suite for ``contract``, from the contract alone.

    The table must have at least one row. For every column: it exists; it has no nulls unless
    ``nullable``; integer columns have an integer dtype and values in ``[min, max]``;
    continuous and datetime columns have values in ``[min, max]`` (bounds inclusive; aware
    datetimes compared as naive UTC); categorical values are in the declared categories;
    boolean values are True/False. identifier and pii columns are only required to exist.
    """
    return _suite(contract)


# --- preparing the frame -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    frame: pl.DataFrame  # contract columns present in the input, in dtypes GE handles well
    missing: list[str]  # contract columns absent from the input
    dtype_failures: list[ValidationFailure]
    skip_values: set[str]  # columns whose value expectations are skipped (bad dtype)
    nan_counts: dict[str, int]  # NaN count per float column (for failure details)
    notes: dict[str, str]  # extra public detail for a column's type check


def _is_float(dtype: pl.DataType) -> bool:
    return dtype in (pl.Float32, pl.Float64)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _null_mask(s: pl.Series) -> pl.Series:
    """A value-free stand-in: null where ``s`` is null, 0 elsewhere (for the not-null check)."""
    return (
        pl.select(pl.when(s.is_null()).then(pl.lit(None, dtype=pl.Int8)).otherwise(pl.lit(0, dtype=pl.Int8)))
        .to_series()
        .alias(s.name)
    )


def _prepare(df: pl.DataFrame, contract: Contract) -> _Prepared:
    """Coerce each contract column to a dtype GE checks correctly, or record why it can't."""
    cols: list[pl.Series] = []
    missing: list[str] = []
    failures: list[ValidationFailure] = []
    skip: set[str] = set()
    nan_counts: dict[str, int] = {}
    notes: dict[str, str] = {}

    def incompatible(s: pl.Series, expected: str, kind: str, extra: str = "") -> None:
        skip.add(s.name)
        cols.append(_null_mask(s))
        failures.append(
            ValidationFailure(
                column=s.name,
                expectation=DTYPE_CHECK,
                unexpected_count=s.len() - s.null_count(),
                detail=(
                    f"column {s.name!r} has dtype {s.dtype}, but kind {kind!r} needs {expected}"
                    f"{extra}. Its values were not range/set-checked. Cast the column at "
                    "ingestion, or fix its kind in the contract."
                ),
            )
        )

    for name, col in contract.columns.items():
        if name not in df.columns:
            missing.append(name)
            continue
        s = df.get_column(name)
        dtype = s.dtype
        kind = col.kind
        if dtype == pl.Null:  # all-null column: any kind can hold it
            targets: dict[str, pl.DataType] = {
                "integer": pl.Int64(),
                "continuous": pl.Float64(),
                "categorical": pl.String(),
                "boolean": pl.Boolean(),
                "datetime": pl.Datetime("us"),
            }
            target = targets.get(kind, pl.Int8())
            cols.append(s.cast(target))
        elif kind in ("identifier", "pii"):
            cols.append(_null_mask(s))  # only existence is checked: no values for GE
        elif kind in ("integer", "continuous"):
            if dtype.is_numeric():
                if _is_float(dtype):
                    nan_counts[name] = int(s.is_nan().sum())
                if kind == "continuous" or not dtype.is_integer():
                    if kind == "integer":
                        as_float = s.cast(pl.Float64)
                        finite = as_float.filter(as_float.is_finite())
                        frac = int((finite != finite.floor()).sum())
                        notes[name] = (
                            f"column {name!r} has dtype {dtype}, expected an integer dtype"
                            f" ({frac} of its values are not whole numbers). Cast it to an "
                            "integer type at ingestion, or declare the column continuous."
                        )
                    s = s.cast(pl.Float64)
                cols.append(s)
            else:
                bad = s.len() - s.null_count()
                if dtype == pl.String:
                    bad = int((s.cast(pl.Float64, strict=False).is_null() & s.is_not_null()).sum())
                extra = f" ({bad} non-null values are not numbers)"
                incompatible(s, "a numeric dtype", kind, extra)
        elif kind == "categorical":
            if _is_text(dtype):
                cols.append(s.cast(pl.String))
            else:
                incompatible(s, "a text dtype (String)", kind)
        elif kind == "boolean":
            if dtype == pl.Boolean:
                cols.append(s)
            elif dtype.is_integer():  # conform_types maps an all-0/1 column; this one is not
                bad = int((~s.is_in([0, 1]) & s.is_not_null()).sum())
                incompatible(s, "Boolean, or integers 0/1", kind, f" ({bad} non-null values are not 0 or 1)")
            elif _is_text(dtype) and isinstance(col, BooleanColumn) and col.true_values is not None:
                known = [*col.true_values, *(col.false_values or [])]
                bad = int((~s.cast(pl.String).is_in(known) & s.is_not_null()).sum())
                incompatible(
                    s,
                    f"Boolean, or the declared true_values/false_values {known}",
                    kind,
                    f" ({bad} non-null values are none of them)",
                )
            else:
                incompatible(
                    s, "the Boolean dtype (or integers 0/1, or text with declared true_values/false_values)", kind
                )
        elif kind == "datetime":
            if isinstance(dtype, pl.Datetime):
                if dtype.time_zone is not None:
                    s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                cols.append(s)
            elif dtype == pl.Date:
                cols.append(s.cast(pl.Datetime("us")))
            else:
                incompatible(s, "a Datetime or Date dtype", kind)
        else:  # pragma: no cover - the contract's discriminated union allows no other kind
            raise AssertionError(f"unhandled column kind {kind!r}")

    if not cols:
        # Every contract column is absent. Keep the row count visible to GE's row-count check
        # with one value-free placeholder column, named so that it matches no contract column.
        name = "_synthgate_rows"
        while name in contract.columns:
            name += "_"
        cols.append(pl.Series(name, [None] * df.height, dtype=pl.Int8))
    return _Prepared(pl.DataFrame(cols), missing, failures, skip, nan_counts, notes)


def _to_pandas(frame: pl.DataFrame) -> Any:
    """The one polars → pandas conversion: arrow-backed dtypes, masked dtypes for integers.

    Masked integers (pandas ``Int64`` etc.) keep integer columns integer when they have nulls
    and are recognised by GE's type check; ArrowDtype keeps NaN distinct from null for floats.
    """
    import pandas as pd
    import pyarrow as pa

    masked: dict[pa.DataType, Any] = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
    }

    def mapper(t: pa.DataType) -> Any:
        return masked.get(t, pd.ArrowDtype(t))

    return frame.to_arrow().to_pandas(types_mapper=mapper)


# --- running great-expectations -------------------------------------------------------------------


def _run_suite(pdf: Any, suite: ExpectationSuite) -> list[Any]:
    """Validate ``pdf`` in a fresh ephemeral context, quietly. Returns GE's result list."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # No data-docs site: synthgate writes its own reports. GE's default ephemeral context makes a
    # temporary docs site and announces it ("Created temporary directory ... for ephemeral docs
    # site") on a logger whose level GE itself pins to INFO at import, so Prefect's console showed
    # it once per validated batch. Without the site there is nothing to announce; GE's own loggers
    # keep their levels, so its warnings and errors still show.
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    context = gx.get_context(project_config=config, mode="ephemeral")
    # GE draws tqdm "Calculating Metrics" bars unless the context's progress_bars config says
    # otherwise (Validator._determine_progress_bars reads `globally` / `metric_calculations`).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    tag = uuid.uuid4().hex[:8]
    source = context.data_sources.add_pandas(name=f"synthgate-{tag}")
    asset = source.add_dataframe_asset(name="table")
    batch_def = asset.add_batch_definition_whole_dataframe(name="whole-table")
    batch = batch_def.get_batch(batch_parameters={"dataframe": pdf})
    result = batch.validate(suite, result_format=dict(_RESULT_FORMAT))
    return list(result.results)


def _raised(exception_info: Any) -> bool:
    """GE gives either one info dict or a dict of them keyed by metric; any raise counts."""
    if not isinstance(exception_info, dict):
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    return any(_raised(v) for v in exception_info.values())


def _describe(exp_type: str, column: str, contract: Contract, prepared: _Prepared) -> str:
    """Public text for a failed expectation: the contract rule and how to fix it."""
    col = contract.columns.get(column)
    if exp_type == _ROW_COUNT:
        return "table has no rows. Check the source query/file and the ingestion step."
    if exp_type == _EXIST:
        return (
            f"column {column!r} is declared in the contract but missing from the table. "
            "Add it at ingestion, or remove it from the contract."
        )
    if exp_type == _NOT_NULL:
        return (
            f"null values in column {column!r}, which the contract declares non-nullable. "
            "Fix the rows, set nullable: true, or list the missing marker in missing_values."
        )
    if exp_type == _TYPE_LIST:
        return prepared.notes.get(column, f"column {column!r} does not have an integer dtype.")
    if exp_type == _BETWEEN and isinstance(col, (IntegerColumn, ContinuousColumn, DatetimeColumn)):
        nan = prepared.nan_counts.get(column, 0)
        nan_txt = f" ({nan} of them NaN)" if nan else ""
        return (
            f"values outside the contract bounds [{col.min}, {col.max}]{nan_txt}; NaN and "
            "±inf count as outside. Fix or drop the rows, or widen the bounds from public "
            "knowledge."
        )
    if exp_type == _IN_SET and isinstance(col, CategoricalColumn):
        return (
            f"values not among the {len(col.categories)} categories the contract declares. "
            "Map them at ingestion, or add the category to the contract from public knowledge."
        )
    if exp_type == _IN_SET and isinstance(col, BooleanColumn):
        return "values other than True/False. Map them to booleans at ingestion."
    return f"{exp_type} failed on column {column!r}."


def conform_types(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Each contract column in the one physical type every later stage expects for its kind.

    Lossless conversions only: a Date column of kind datetime becomes Datetime (µs, midnight); an
    aware datetime becomes naive UTC; a boolean column held as integers whose every value is 0 or 1
    (or as text whose every value is a declared true_value/false_value) becomes Boolean. Anything
    else is left as it is, so that validation reports it (dtype check, with counts) before any row
    is trained on. Columns the contract does not name are left alone.
    """
    exprs: list[pl.Expr] = []
    for name, col in contract.columns.items():
        if name not in df.columns:
            continue
        s = df.get_column(name)
        dtype = s.dtype
        if col.kind == "datetime":
            if dtype == pl.Date:
                exprs.append(pl.col(name).cast(pl.Datetime("us")))
            elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
                exprs.append(pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        elif isinstance(col, BooleanColumn) and dtype != pl.Boolean:
            if dtype.is_integer() and bool(s.drop_nulls().is_in([0, 1]).all()):
                exprs.append(pl.col(name).cast(pl.Boolean))
            elif _is_text(dtype) and col.true_values is not None and col.false_values is not None:
                text = s.cast(pl.String)
                if bool(text.drop_nulls().is_in([*col.true_values, *col.false_values]).all()):
                    t = pl.col(name).cast(pl.String)
                    exprs.append(
                        pl.when(t.is_in(col.true_values))
                        .then(True)
                        .when(t.is_in(col.false_values))
                        .then(False)
                        .otherwise(None)
                        .cast(pl.Boolean)
                        .alias(name)
                    )
    return df.with_columns(exprs) if exprs else df


def physical_type_errors(schema: pl.Schema | dict[str, pl.DataType], contract: Contract) -> list[str]:
    """One line per modelled column whose physical type cannot hold its kind (schema only: no row
    is read). Empty when every present column fits; absent columns are validation's to report."""
    out = []
    for name, col in contract.columns.items():
        if name not in schema or col.kind in ("identifier", "pii"):
            continue
        dtype = schema[name]
        if dtype == pl.Null:
            continue
        ok = {
            "integer": dtype.is_numeric(),
            "continuous": dtype.is_numeric(),
            "datetime": isinstance(dtype, pl.Datetime),
            "boolean": dtype == pl.Boolean,
            "categorical": _is_text(dtype),
        }[col.kind]
        if not ok:
            need = {
                "integer": "an integer dtype",
                "continuous": "a numeric dtype",
                "datetime": "a Datetime or Date dtype",
                "boolean": "Boolean (or integers that are all 0/1, or text with declared true_values/false_values)",
                "categorical": "a text dtype (String)",
            }[col.kind]
            out.append(f"column {name!r} is {dtype}, but kind {col.kind!r} needs {need}")
    return out


def derivation_failures(df: pl.DataFrame, contract: Contract) -> list[ValidationFailure]:
    """Rows that break a declared ``derived`` column (counts only)."""
    from synthgate.validation.derived import derivation_violations

    out = []
    for name, bad in derivation_violations(df, contract).items():
        if bad:
            d = contract.columns[name].derived
            assert d is not None
            rule = f"{d.source!r}" if d.as_ == "copy" else f"{d.source!r} + {d.offset:g}"
            out.append(
                ValidationFailure(
                    column=name,
                    expectation=DERIVED_CHECK,
                    unexpected_count=bad,
                    detail=(
                        f"column {name!r} is declared derived (= {rule}) but {bad} rows differ. Fix the rows, "
                        f"or remove `derived` from {name!r} in the contract so that it is learned."
                    ),
                )
            )
    return out


def identifier_like_columns(df: pl.DataFrame, contract: Contract) -> list[ValidationFailure]:
    """Categorical columns whose values are (nearly) one per row: identifiers declared as categories.

    A model can only memorise such a column, and a declared category list of patient codes is a
    list of patients. The failure gives counts, never a value.
    """
    out = []
    for name, col in contract.columns.items():
        if col.kind != "categorical" or name not in df.columns or not _is_text(df.schema[name]):
            continue
        s = df.get_column(name).drop_nulls()
        if s.len() == 0:
            continue
        singletons = int((s.value_counts().get_column("count") == 1).sum())
        if singletons >= IDENTIFIER_MIN_SINGLETONS and singletons >= IDENTIFIER_SINGLETON_SHARE * s.len():
            out.append(
                ValidationFailure(
                    column=name,
                    expectation=IDENTIFIER_CHECK,
                    unexpected_count=singletons,
                    detail=(
                        f"column {name!r}: {singletons} of its {s.len()} non-null values occur in one row only; it "
                        "looks like an identifier disguised as a category. Declare it `kind: identifier` (dropped "
                        "before training) or coarsen it into real categories."
                    ),
                )
            )
    return out


def validate_frame(df: pl.DataFrame, contract: Contract, *, identifiers: bool = True) -> ValidationReport:
    """Validate a prepared table against its contract with great-expectations.

    ``df`` is expected already prepared: text columns as String with missing markers
    (``contract.missing_values``) mapped to null. Hostile input does not crash: an absent
    column, a dtype that cannot hold the column's kind, strings or NaN/±inf in numeric
    columns, floats in an integer column each become a failure row. The report carries
    counts, column names and contract values only, never a cell value. Columns the contract
    does not declare are ignored. ``identifiers`` also runs ``identifier_like_columns`` (a
    whole-table check: a streamed source runs it once, on its sample, not per batch).
    """
    if not isinstance(df, pl.DataFrame):
        raise TypeError(
            f"validate_frame needs a polars DataFrame, got {type(df).__name__}. "
            "Convert it first (pl.from_pandas(...), or .collect() a LazyFrame)."
        )
    n_rows = df.height
    prepared = _prepare(df, contract)
    suite = _suite(contract, absent=prepared.missing, skip_values=prepared.skip_values)
    order = {
        (exp.column if hasattr(exp, "column") else TABLE, exp.expectation_type): i
        for i, exp in enumerate(suite.expectations)
    }
    col_order = {TABLE: -1, **{name: i for i, name in enumerate(contract.columns)}}

    results = _run_suite(_to_pandas(prepared.frame), suite)
    failures = list(prepared.dtype_failures)
    failures += derivation_failures(df, contract)
    if identifiers:
        failures += identifier_like_columns(prepared.frame, contract)
    for res in results:
        if res.success:
            continue
        config = res.expectation_config
        exp_type: str = config.type
        column: str = config.kwargs.get("column", TABLE)
        if _raised(res.exception_info):
            failures.append(
                ValidationFailure(
                    column=column,
                    expectation=exp_type,
                    unexpected_count=n_rows,
                    detail=(
                        "could not be evaluated: great-expectations raised an error (its "
                        "message is withheld because it may quote data values); every row is "
                        "counted as unverified. Check the column's dtype."
                    ),
                )
            )
            continue
        result = res.result or {}
        if exp_type == _ROW_COUNT:
            count = 0
        elif exp_type == _EXIST:
            count = n_rows
        elif exp_type == _TYPE_LIST:
            count = int(prepared.frame.get_column(column).is_not_null().sum())
        else:
            count = int(result.get("unexpected_count") or 0)
        failures.append(
            ValidationFailure(
                column=column,
                expectation=exp_type,
                unexpected_count=count,
                detail=_describe(exp_type, column, contract, prepared),
            )
        )

    def sort_key(f: ValidationFailure) -> tuple[int, int]:
        return col_order.get(f.column, len(col_order)), order.get((f.column, f.expectation), -1)

    failures.sort(key=sort_key)
    return ValidationReport(success=not failures, n_rows=n_rows, failures=failures)


def merge_reports(reports: Iterable[ValidationReport]) -> ValidationReport:
    """One report for a table validated batch by batch (``synthgate`` streams large sources).

    Every expectation but the row count is row-wise, so a table passes exactly when each batch
    does, and a failure's bad-row count is the sum over batches. The row-count expectation
    (at least one row) is judged on the total. Failures keep the first batch's order and detail.
    """
    n_rows = 0
    merged: dict[tuple[str, str], ValidationFailure] = {}
    for report in reports:
        n_rows += report.n_rows
        for f in report.failures:
            key = (f.column, f.expectation)
            if f.expectation == _ROW_COUNT:
                continue
            seen = merged.get(key)
            merged[key] = (
                f
                if seen is None
                else ValidationFailure(
                    column=f.column,
                    expectation=f.expectation,
                    unexpected_count=seen.unexpected_count + f.unexpected_count,
                    detail=seen.detail,
                )
            )
    failures = list(merged.values())
    if n_rows == 0:
        failures.insert(
            0,
            ValidationFailure(
                column=TABLE,
                expectation=_ROW_COUNT,
                unexpected_count=0,
                detail="table has no rows. Check the source query/file and the ingestion step.",
            ),
        )
    return ValidationReport(success=not failures, n_rows=n_rows, failures=failures)
