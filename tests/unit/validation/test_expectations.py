"""The great-expectations suite built from the contract, and validate_frame on hostile input."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from synthgate.validation.contract import Contract, load_contract, parse_contract
from synthgate.validation.expectations import (
    DTYPE_CHECK,
    TABLE,
    ValidationFailure,
    ValidationReport,
    build_suite,
    validate_frame,
)

DEMO_DIR = Path(__file__).resolve().parents[3] / "flows" / "demo"

GE_DOCS_LOGGER = "great_expectations.data_context.types.base"

SECRET_TEXT = "SECRET-VALUE-123"
SECRET_NUMBER = -987654


@pytest.fixture(scope="module")
def contract() -> Contract:
    return parse_contract(
        {
            "table": "people",
            "columns": {
                "age": {"kind": "integer", "min": 0, "max": 120},
                "income": {"kind": "continuous", "min": 0.0, "max": 1e6, "nullable": True},
                "smoker": {"kind": "categorical", "categories": ["yes", "no"]},
                "active": {"kind": "boolean", "nullable": True},
                "joined": {"kind": "datetime", "min": "2000-01-01", "max": "2030-01-01"},
                "member_id": {"kind": "identifier"},
                "email": {"kind": "pii", "nullable": True},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )


@pytest.fixture()
def frame() -> pl.DataFrame:
    """Four valid rows for ``contract``."""
    return pl.DataFrame(
        {
            "age": [30, 45, 0, 120],
            "income": [1000.5, None, 0.0, 1e6],
            "smoker": ["yes", "no", "no", "yes"],
            "active": [True, None, False, True],
            "joined": [dt.datetime(2000, 1, 1), dt.datetime(2010, 5, 5)] * 2,
            "member_id": ["a1", "a2", "a3", "a4"],
            "email": ["x@example.org", None, "y@example.org", "z@example.org"],
        }
    )


@pytest.fixture(scope="module")
def demo() -> tuple[Contract, pl.DataFrame]:
    c = load_contract(DEMO_DIR / "adult.contract.yaml")
    df = pl.read_parquet(DEMO_DIR / "adult.parquet")
    text = [n for n, t in df.schema.items() if t == pl.String]
    df = df.with_columns(
        pl.when(pl.col(n).is_in(c.missing_values)).then(None).otherwise(pl.col(n)).alias(n) for n in text
    )
    return c, df


def _set(df: pl.DataFrame, column: str, row: int, value: Any, dtype: Any = None) -> pl.DataFrame:
    """``df`` with one cell replaced (the column is cast to ``dtype`` first when given)."""
    values = df.get_column(column).to_list()
    values[row] = value
    new = pl.Series(column, values, dtype=dtype or df.schema[column], strict=False)
    return df.with_columns(new)


BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
NOT_NULL = "expect_column_values_to_not_be_null"
TYPE_LIST = "expect_column_values_to_be_in_type_list"


def _triple(f: ValidationFailure) -> tuple[str, str, int]:
    return f.column, f.expectation, f.unexpected_count


def _only(report: ValidationReport) -> ValidationFailure:
    assert not report.success
    assert len(report.failures) == 1, report.summary()
    return report.failures[0]


# --- the suite ---------------------------------------------------------------------------------


def test_suite_has_the_expected_expectations(contract: Contract) -> None:
    suite = build_suite(contract)
    got = [(e.expectation_type, getattr(e, "column", TABLE)) for e in suite.expectations]
    assert got == [
        ("expect_table_row_count_to_be_between", TABLE),
        ("expect_column_to_exist", "age"),
        ("expect_column_values_to_not_be_null", "age"),
        ("expect_column_values_to_be_in_type_list", "age"),
        ("expect_column_values_to_be_between", "age"),
        ("expect_column_to_exist", "income"),
        ("expect_column_values_to_be_between", "income"),
        ("expect_column_to_exist", "smoker"),
        ("expect_column_values_to_not_be_null", "smoker"),
        ("expect_column_values_to_be_in_set", "smoker"),
        ("expect_column_to_exist", "active"),
        ("expect_column_values_to_be_in_set", "active"),
        ("expect_column_to_exist", "joined"),
        ("expect_column_values_to_not_be_null", "joined"),
        ("expect_column_values_to_be_between", "joined"),
        # identifier / pii: existence only, never their values
        ("expect_column_to_exist", "member_id"),
        ("expect_column_to_exist", "email"),
    ]
    by_key = {(e.expectation_type, getattr(e, "column", TABLE)): e for e in suite.expectations}
    age = by_key[("expect_column_values_to_be_between", "age")]
    assert (age.min_value, age.max_value) == (0, 120)
    assert by_key[("expect_column_values_to_be_in_set", "smoker")].value_set == ["yes", "no"]
    assert by_key[("expect_column_values_to_be_in_set", "active")].value_set == [True, False]
    joined = by_key[("expect_column_values_to_be_between", "joined")]
    assert joined.min_value == dt.datetime(2000, 1, 1)
    assert joined.max_value == dt.datetime(2030, 1, 1)
    assert "int64" in by_key[("expect_column_values_to_be_in_type_list", "age")].type_list
    assert by_key[("expect_table_row_count_to_be_between", TABLE)].min_value == 1
    assert suite.meta["contract_fingerprint"] == contract.fingerprint()


def test_suite_for_demo_contract(demo: tuple[Contract, pl.DataFrame]) -> None:
    c, _ = demo
    suite = build_suite(c)
    # 1 row count + 15 exist + 12 not-null + 6 integer type + 6 between + 9 in-set
    assert len(suite.expectations) == 1 + 15 + 12 + 6 + 6 + 9


# --- validating --------------------------------------------------------------------------------


def test_demo_table_validates(demo: tuple[Contract, pl.DataFrame], capfd: pytest.CaptureFixture[str]) -> None:
    c, df = demo
    report = validate_frame(df, c)
    assert report.success, report.summary()
    assert report.n_rows == 48_842
    assert report.failures == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # quiet: no tqdm "Calculating Metrics" bars


def test_validation_prints_no_ephemeral_docs_site_line(
    contract: Contract, frame: pl.DataFrame, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """GE's "Created temporary directory ... for ephemeral docs site" line is not emitted at all.

    The console handler is set up as Prefect's is (on the root logger, level 0, writing to stderr,
    root at WARNING): GE pins that logger to INFO, so before the fix the line reached stderr once
    per validated batch. GE's loggers keep their levels, so its warnings and errors still show.
    """
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.NOTSET)
    root.addHandler(console)
    caplog.set_level(logging.DEBUG, logger="great_expectations")  # any GE record at all is kept
    try:
        report = validate_frame(frame, contract)
        again = validate_frame(frame, contract)  # a second batch: a fresh context each time
    finally:
        root.removeHandler(console)
    assert report.success and again.success
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in (out, err, logged):
        assert "ephemeral docs site" not in text and "Created temporary directory" not in text
    ge_levels = [logging.getLogger(n).getEffectiveLevel() for n in ("great_expectations", GE_DOCS_LOGGER)]
    assert max(ge_levels) <= logging.INFO  # nothing silenced by raising a GE logger's level
    with caplog.at_level(logging.WARNING, logger=GE_DOCS_LOGGER):
        logging.getLogger(GE_DOCS_LOGGER).warning("a real GE warning")
    assert "a real GE warning" in caplog.text


def test_valid_frame_passes(contract: Contract, frame: pl.DataFrame) -> None:
    report = validate_frame(frame, contract)
    assert report.success, report.summary()
    assert report.n_rows == 4
    assert "passed" in report.summary()


def test_negative_age_fails_with_count_one(demo: tuple[Contract, pl.DataFrame]) -> None:
    c, df = demo
    report = validate_frame(_set(df, "age", 7, -3), c)
    f = _only(report)
    assert _triple(f) == ("age", BETWEEN, 1)
    assert "[17, 90]" in f.detail


def test_undeclared_category_fails(contract: Contract, frame: pl.DataFrame) -> None:
    f = _only(validate_frame(_set(frame, "smoker", 2, "sometimes"), contract))
    assert _triple(f) == ("smoker", IN_SET, 1)
    assert "2 categories" in f.detail


def test_null_in_non_nullable_column_fails(contract: Contract, frame: pl.DataFrame) -> None:
    f = _only(validate_frame(_set(frame, "smoker", 1, None), contract))
    assert _triple(f) == ("smoker", NOT_NULL, 1)
    assert "nullable" in f.detail


def test_null_in_nullable_column_passes(contract: Contract, frame: pl.DataFrame) -> None:
    assert validate_frame(_set(frame, "income", 0, None), contract).success


@pytest.mark.parametrize("column", ["age", "smoker", "member_id"])
def test_missing_column_fails_alone(contract: Contract, frame: pl.DataFrame, column: str) -> None:
    f = _only(validate_frame(frame.drop(column), contract))
    assert _triple(f) == (column, "expect_column_to_exist", 4)
    assert "missing from the table" in f.detail


def test_frame_without_any_contract_column(contract: Contract) -> None:
    report = validate_frame(pl.DataFrame({"other": [1, 2, 3]}), contract)
    assert report.n_rows == 3
    assert {f.expectation for f in report.failures} == {"expect_column_to_exist"}
    assert [f.column for f in report.failures] == list(contract.columns)
    assert {f.unexpected_count for f in report.failures} == {3}


def test_string_in_numeric_column_fails_without_crashing(contract: Contract, frame: pl.DataFrame) -> None:
    bad = _set(frame, "age", 1, "forty", dtype=pl.String)
    f = _only(validate_frame(bad, contract))
    assert _triple(f) == ("age", DTYPE_CHECK, 4)
    assert "dtype String" in f.detail and "1 non-null values are not numbers" in f.detail


def test_object_column_fails_without_crashing(contract: Contract, frame: pl.DataFrame) -> None:
    bad = frame.with_columns(pl.Series("income", [1.0, "x", None, 2], dtype=pl.Object))
    f = _only(validate_frame(bad, contract))
    assert (f.column, f.expectation) == ("income", DTYPE_CHECK)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_fail(contract: Contract, frame: pl.DataFrame, value: float) -> None:
    # income is nullable: NaN must not pass as "missing".
    f = _only(validate_frame(_set(frame, "income", 0, value), contract))
    assert _triple(f) == ("income", BETWEEN, 1)
    if math.isnan(value):
        assert "1 of them NaN" in f.detail


def test_nan_and_inf_counted_together(contract: Contract, frame: pl.DataFrame) -> None:
    bad = _set(_set(frame, "income", 0, math.nan), "income", 3, math.inf)
    assert _only(validate_frame(bad, contract)).unexpected_count == 2


def test_float_integer_column_fails(contract: Contract, frame: pl.DataFrame) -> None:
    bad = frame.with_columns(pl.col("age").cast(pl.Float64))
    bad = _set(bad, "age", 0, 30.5)
    f = _only(validate_frame(bad, contract))
    assert _triple(f) == ("age", TYPE_LIST, 4)
    assert "Float64" in f.detail and "1 of its values are not whole numbers" in f.detail


def test_integer_column_with_nulls_keeps_integer_type() -> None:
    c = parse_contract(
        {
            "table": "t",
            "columns": {"n": {"kind": "integer", "min": 0, "max": 10, "nullable": True}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    report = validate_frame(pl.DataFrame({"n": [1, None, 3]}), c)
    assert report.success, report.summary()


def test_other_dtypes_that_hold_the_kind_pass(contract: Contract, frame: pl.DataFrame) -> None:
    ok = frame.with_columns(
        pl.col("age").cast(pl.UInt8),
        pl.col("income").cast(pl.Float32),
        pl.col("smoker").cast(pl.Categorical),
        pl.col("joined").dt.replace_time_zone("UTC"),
        pl.col("member_id").cast(pl.Categorical),
    )
    assert validate_frame(ok, contract).success


def test_out_of_range_datetime_and_non_boolean_fail(contract: Contract, frame: pl.DataFrame) -> None:
    bad = _set(frame, "joined", 2, dt.datetime(1999, 12, 31))
    bad = bad.with_columns(pl.col("active").cast(pl.Int64))
    report = validate_frame(bad, contract)
    got = {(f.column, f.expectation, f.unexpected_count) for f in report.failures}
    assert got == {
        ("active", DTYPE_CHECK, 3),
        ("joined", BETWEEN, 1),
    }


def test_aware_datetimes_compare_in_utc() -> None:
    c = parse_contract(
        {
            "table": "t",
            "columns": {
                "t": {
                    "kind": "datetime",
                    "min": "2020-01-01T02:00:00+02:00",
                    "max": "2021-01-01T00:00:00Z",
                }
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    utc = dt.timezone.utc
    inside = pl.DataFrame({"t": [dt.datetime(2020, 1, 1, 0, 0, tzinfo=utc)]})  # == min
    assert validate_frame(inside, c).success
    before = pl.DataFrame({"t": [dt.datetime(2019, 12, 31, 23, 59, tzinfo=utc)]})
    assert _only(validate_frame(before, c)).expectation == "expect_column_values_to_be_between"


def test_not_a_polars_frame_is_a_type_error(contract: Contract, frame: pl.DataFrame) -> None:
    with pytest.raises(TypeError, match="polars DataFrame"):
        validate_frame(frame.lazy(), contract)  # type: ignore[arg-type]


def test_all_null_column_is_checked_for_nulls_only(contract: Contract, frame: pl.DataFrame) -> None:
    bad = frame.with_columns(pl.lit(None).alias("smoker"))
    f = _only(validate_frame(bad, contract))
    assert _triple(f) == ("smoker", NOT_NULL, 4)


def test_empty_frame_fails(contract: Contract, frame: pl.DataFrame) -> None:
    report = validate_frame(frame.clear(), contract)
    f = _only(report)
    assert report.n_rows == 0
    assert (f.column, f.expectation) == (TABLE, "expect_table_row_count_to_be_between")
    assert "table has no rows" in f.detail


def test_undeclared_extra_column_is_ignored(contract: Contract, frame: pl.DataFrame) -> None:
    assert validate_frame(frame.with_columns(pl.lit(1).alias("extra")), contract).success


def test_failures_are_ordered_by_contract_column(contract: Contract, frame: pl.DataFrame) -> None:
    bad = _set(_set(frame.drop("joined"), "smoker", 0, "maybe"), "age", 0, -1)
    cols = [f.column for f in validate_frame(bad, contract).failures]
    assert cols == ["age", "smoker", "joined"]


def test_report_never_contains_private_values(contract: Contract, frame: pl.DataFrame) -> None:
    bad = _set(frame, "age", 0, SECRET_NUMBER)
    bad = _set(bad, "smoker", 1, SECRET_TEXT)
    bad = _set(bad, "member_id", 2, SECRET_TEXT)
    bad = _set(bad, "email", 3, SECRET_TEXT)
    bad = _set(bad, "income", 2, float(SECRET_NUMBER))
    report = validate_frame(bad, contract)
    assert {f.column for f in report.failures} == {"age", "smoker", "income"}
    # and a numeric column holding strings (dtype failure path)
    report2 = validate_frame(_set(frame, "age", 1, SECRET_TEXT, dtype=pl.String), contract)
    assert not report2.success
    for r in (report, report2):
        texts = [repr(r), str(r), r.summary(), json.dumps(r.to_dict())]
        for text in texts:
            assert SECRET_TEXT not in text
            assert str(SECRET_NUMBER) not in text
            assert "987654" not in text


def test_summary_is_a_table(contract: Contract, frame: pl.DataFrame) -> None:
    report = validate_frame(_set(frame, "age", 0, -1), contract)
    lines = report.summary().splitlines()
    assert lines[0].startswith("validation FAILED: 1 failed check(s) on 4 rows")
    assert [p.strip() for p in lines[1].split("|")] == ["column", "expectation", "bad rows"]
    assert [p.strip() for p in lines[3].split("|")] == ["age", BETWEEN, "1"]


def test_report_is_frozen(contract: Contract, frame: pl.DataFrame) -> None:
    report = validate_frame(frame, contract)
    with pytest.raises(AttributeError):
        report.success = False  # type: ignore[misc]


# ---------------------------------------------------------------- issue 21: physical types per kind


def _typed_contract() -> Contract:
    from synthgate.validation.contract import parse_contract

    return parse_contract(
        {
            "table": "t",
            "columns": {
                "day": {"kind": "datetime", "min": "2000-01-01", "max": "2030-01-01"},
                "flag": {"kind": "boolean"},
                "yn": {"kind": "boolean", "true_values": ["Y"], "false_values": ["N"], "nullable": True},
                "n": {"kind": "integer", "min": 0, "max": 9},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )


def test_conform_types_makes_dates_and_flags_canonical_and_every_stage_accepts_them() -> None:
    from synthgate.validation.encoding import canonical_frame
    from synthgate.validation.expectations import conform_types, physical_type_errors

    c = _typed_contract()
    raw = pl.DataFrame(
        {
            "day": [dt.date(2020, 1, d) for d in range(1, 7)],
            "flag": [0, 1, 1, 0, 1, 0],
            "yn": ["Y", "N", None, "Y", "Y", "N"],
            "n": [1, 2, 3, 4, 5, 6],
        }
    )
    assert len(physical_type_errors(raw.schema, c)) == 3  # before: Date, Int64, String
    out = conform_types(raw, c)
    assert out.schema == pl.Schema({"day": pl.Datetime("us"), "flag": pl.Boolean, "yn": pl.Boolean, "n": pl.Int64})
    assert out["flag"].to_list() == [False, True, True, False, True, False]
    assert out["yn"].to_list() == [True, False, None, True, True, False]
    assert physical_type_errors(out.schema, c) == []
    assert validate_frame(out, c).success
    canonical_frame(out, c, role="train")  # the privacy checks take it as it is (the DATE crash of issue 21)


def test_flags_that_are_not_zero_one_stay_and_fail_validation_with_a_count() -> None:
    from synthgate.validation.expectations import conform_types, physical_type_errors

    c = _typed_contract()
    raw = pl.DataFrame(
        {"day": [dt.datetime(2020, 1, 1)] * 3, "flag": [0, 1, 2], "yn": ["Y", "maybe", "N"], "n": [1, 2, 3]}
    )
    out = conform_types(raw, c)
    assert out.schema["flag"] == pl.Int64 and out.schema["yn"] == pl.String
    errors = physical_type_errors(out.schema, c)
    assert len(errors) == 2 and "'flag' is Int64" in errors[0]
    report = validate_frame(out, c)
    by_column = {f.column: f for f in report.failures}
    assert (
        by_column["flag"].expectation == DTYPE_CHECK and "1 non-null values are not 0 or 1" in by_column["flag"].detail
    )
    assert "1 non-null values are none of them" in by_column["yn"].detail
    assert "maybe" not in report.summary()
