"""Derived columns: declared in the contract, generated after sampling, checked by count, drafted by infer."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from synthgate.errors import ContractError
from synthgate.validation.contract import parse_contract
from synthgate.validation.derived import add_derived_columns, derivation_violations, find_derivations
from synthgate.validation.expectations import DERIVED_CHECK, validate_frame


def _contract(**extra: dict) -> object:
    columns = {
        "arrest": {"kind": "datetime", "min": "2019-01-01", "max": "2025-01-01"},
        "filed": {
            "kind": "datetime",
            "min": "2019-01-01",
            "max": "2025-01-01",
            "derived": {"from": "arrest", "as": "copy"},
        },
        "due": {
            "kind": "datetime",
            "min": "2019-01-01",
            "max": "2025-03-01",
            "derived": {"from": "arrest", "as": "offset", "offset": 30},
        },
        "fine": {"kind": "integer", "min": 0, "max": 1000},
        **extra,
    }
    return parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}})


def test_derived_columns_are_generated_not_learned() -> None:
    c = _contract()
    assert c.modelled_columns == ["arrest", "fine"] and c.derived_columns == ["filed", "due"]
    assert c.released_columns == ["arrest", "filed", "due", "fine"]
    syn = pl.DataFrame({"arrest": [dt.datetime(2020, 1, 1, 12), dt.datetime(2021, 2, 1)], "fine": [5, 7]})
    out = add_derived_columns(syn, c)
    assert out.columns == ["arrest", "filed", "due", "fine"]
    assert out["filed"].to_list() == syn["arrest"].to_list()
    assert out["due"].to_list() == [dt.datetime(2020, 1, 31, 12), dt.datetime(2021, 3, 3)]


def test_rows_that_break_a_derivation_fail_validation_by_count() -> None:
    c = _contract()
    days = [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(10)]
    rows = pl.DataFrame(
        {"arrest": days, "filed": days, "due": [d + dt.timedelta(days=30) for d in days], "fine": list(range(10))}
    )
    assert derivation_violations(rows, c) == {"filed": 0, "due": 0}
    assert validate_frame(rows, c).success
    broken = rows.with_columns(pl.Series("filed", days[:9] + [days[0]]))
    report = validate_frame(broken, c)
    (failure,) = report.failures
    assert (failure.column, failure.expectation, failure.unexpected_count) == ("filed", DERIVED_CHECK, 1)
    assert "remove `derived`" in failure.detail and "2020" not in failure.detail  # counts, never a value


@pytest.mark.parametrize(
    ("column", "match"),
    [
        ({"kind": "integer", "min": 0, "max": 9, "derived": {"from": "nope", "as": "copy"}}, "not a column"),
        ({"kind": "integer", "min": 0, "max": 9, "derived": {"from": "filed", "as": "copy"}}, "itself derived"),
        ({"kind": "integer", "min": 0, "max": 9, "derived": {"from": "arrest", "as": "copy"}}, "source's kind"),
        ({"kind": "integer", "min": 0, "max": 9, "derived": {"from": "fine", "as": "offset"}}, "needs a finite"),
        (
            {"kind": "integer", "min": 0, "max": 9, "derived": {"from": "fine", "as": "offset", "offset": 0.5}},
            "whole number",
        ),
        ({"kind": "integer", "min": 0, "max": 9, "derived": {"from": "fine", "as": "copy", "offset": 1}}, "takes no"),
        ({"kind": "pii", "derived": {"from": "fine", "as": "copy"}}, "never released"),
    ],
)
def test_bad_derivations_are_refused_with_a_fix(column: dict, match: str) -> None:
    with pytest.raises(ContractError, match=match):
        _contract(extra=column)


def test_contracts_without_new_keys_keep_their_form() -> None:
    c = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "integer", "min": 0, "max": 9}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    text = c.to_yaml()
    for key in ("derived", "special_values", "true_values", "false_values", "modes"):
        assert key not in text
    d = _contract()
    assert parse_contract(__import__("yaml").safe_load(d.to_yaml())) == d


def test_find_derivations_copies_offsets_and_no_coincidences() -> None:
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=7 * i) for i in range(30)]
    df = pl.DataFrame(
        {
            "a": days,
            "b": days,
            "c": [d + dt.timedelta(days=2) for d in days],
            "n": [3 * i for i in range(30)],
            "m": [3 * i - 5 for i in range(30)],
            "k": [7 * i for i in range(30)],  # no constant difference with a date (days since epoch)
            "const1": [1] * 30,
            "const2": [2] * 30,  # constants: not reported
            "t": ["x", "y", "z"] * 10,
            "u": ["x", "y", "z"] * 10,
        }
    )
    found = {(f.column, f.source, f.offset) for f in find_derivations(df)}
    assert found == {("b", "a", None), ("c", "a", 2.0), ("m", "n", -5.0), ("u", "t", None)}
