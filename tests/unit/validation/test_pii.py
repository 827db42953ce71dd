"""The PII gate: a declared category or a synthetic cell equal to a pii/identifier value blocks."""

from __future__ import annotations

import json

import polars as pl

from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.pii import PII_CHECK, PiiScan

SECRET = "Ada Lovelace-ZQX"  # a person's name; must never reach a result


def _contract(referrers: list[str]) -> Contract:
    return parse_contract(
        {
            "table": "visits",
            "columns": {
                "age": {"kind": "integer", "min": 0, "max": 120},
                "referrer": {"kind": "categorical", "categories": referrers},
                "ward": {"kind": "categorical", "categories": ["A", "B"]},
                "name": {"kind": "pii"},
                "record_no": {"kind": "identifier"},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )


def _rows(names: list[str], ids: list[int]) -> pl.DataFrame:
    n = len(names)
    return pl.DataFrame({"age": [40] * n, "referrer": ["GP"] * n, "ward": ["A"] * n, "name": names, "record_no": ids})


def test_clean_release_passes() -> None:
    scan = PiiScan(_contract(["GP", "self"]))
    scan.update(_rows(["Grace Hopper", "Alan Turing"], [1, 2]))
    result = scan.result(pl.DataFrame({"age": [3, 4], "referrer": ["GP", "self"], "ward": ["A", "B"]}))
    assert result.name == PII_CHECK and result.passed and result.value == 0
    assert result.details["rows_scanned"] == 2 and result.details["pii_columns"] == ["name", "record_no"]


def test_declared_category_equal_to_a_name_blocks_even_when_unsampled() -> None:
    """The published model can emit any declared category: the domain alone blocks the release."""
    scan = PiiScan(_contract(["GP", SECRET.upper() + "  "]))  # matched trimmed and case-folded
    scan.update(_rows(["Grace Hopper"], [1]))
    scan.update(_rows([SECRET], [2]))  # the matching row arrives in a later batch
    result = scan.result(pl.DataFrame({"age": [3], "referrer": ["GP"], "ward": ["A"]}))
    assert not result.passed and result.value == 1
    fix = result.details["columns"]["referrer"].pop("fix")
    assert result.details["columns"] == {
        "referrer": {"declared_categories": 1, "synthetic_cells": 0, "equal_to_values_of": ["name"]}
    }
    # the fix names the column and the action that applies: delete the entry from its categories
    assert "'referrer'" in fix and "Delete those entries" in fix and "kind: pii" not in fix
    assert "fix" in result.details
    text = json.dumps(result.to_dict()).lower()
    assert SECRET.lower() not in text and "lovelace" not in text


def test_synthetic_cells_are_counted_and_identifiers_compared_as_text() -> None:
    scan = PiiScan(_contract(["GP", "1042"]))  # a record number typed into the category list
    scan.update(_rows(["Grace Hopper", "Alan Turing"], [1042, 7]))
    synthetic = pl.DataFrame({"age": [1042, 5, 6], "referrer": ["1042", "GP", "1042"], "ward": ["A", "A", "B"]})
    result = scan.result(synthetic)
    assert not result.passed
    assert result.details["columns"]["referrer"]["synthetic_cells"] == 2  # the integer age 1042 is not compared
    assert result.details["columns"]["referrer"]["equal_to_values_of"] == ["record_no"]
    assert result.value == 1 + 2


def test_a_category_that_no_private_row_holds_does_not_block() -> None:
    """Only values that occur among the private rows count: a category named like a person is not one."""
    scan = PiiScan(_contract(["GP", SECRET]))
    scan.update(_rows(["Grace Hopper"], [1]))
    assert scan.result(pl.DataFrame({"age": [1], "referrer": [SECRET], "ward": ["A"]})).passed


def test_no_pii_columns_means_nothing_to_match() -> None:
    contract = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "categorical", "categories": ["a"]}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    scan = PiiScan(contract)
    scan.update(pl.DataFrame({"x": ["a"]}))
    result = scan.result(pl.DataFrame({"x": ["a"]}))
    assert result.passed and result.details["pii_columns"] == []


def _free_text_contract(grades_from_data: bool = False) -> Contract:
    return parse_contract(
        {
            "table": "cases",
            "columns": {
                "state": {"kind": "categorical", "categories": ["CA", "NY", "TX"]},
                "grade": {"kind": "categorical", "categories": ["A", "B", "C"], "from_data": grades_from_data},
                "notes": {"kind": "pii"},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )


def test_common_tokens_in_free_text_do_not_block() -> None:
    """A free-text pii column holding a state code or a grade (common tokens, also real categories)
    singles nobody out: the gate passes and says how many such tokens it ignored."""
    n = 300
    rows = pl.DataFrame(
        {
            "state": (["CA", "NY", "TX"] * n)[:n],
            "grade": (["A", "B", "C"] * n)[:n],
            # the free text is often just a state code or a grade; the rest is unique per row
            "notes": [("CA" if i % 3 == 0 else "a" if i % 3 == 1 else f"seen at desk {i}") for i in range(n)],
        }
    )
    scan = PiiScan(_free_text_contract())
    scan.update(rows)
    result = scan.result(rows.select("state", "grade"))
    assert result.passed and result.value == 0
    assert result.details["common_tokens_ignored"] == 2  # 'CA' (state) and 'A' (grade, case-folded)


def test_a_rare_value_equal_to_a_rarely_used_category_still_blocks() -> None:
    """One row's note equal to a category that (almost) no row of its own column holds is identifying."""
    n = 300
    rows = pl.DataFrame(
        {
            "state": ["CA"] * n,
            "grade": ["A"] * (n - 1) + ["C"],
            "notes": [f"seen at desk {i}" for i in range(n - 1)] + ["C"],
        }
    )
    scan = PiiScan(_free_text_contract(grades_from_data=True))
    scan.update(rows)
    result = scan.result(rows.select("state", "grade"))
    assert not result.passed
    col = result.details["columns"]["grade"]
    assert col["declared_categories"] == 1 and col["synthetic_cells"] == 1
    # drafted from the rows: the fix says to replace the drafted list with a public one
    assert "from_data: true" in col["fix"] and "public code list" in col["fix"]
