"""A ContractViolation pickled (Prefect writes every error raised in a flow to its result storage)
keeps no exact row count of the table."""

from __future__ import annotations

import pickle

from synthgate.errors import ContractViolation
from synthgate.validation.expectations import ValidationFailure, ValidationReport


def test_a_pickled_violation_drops_the_row_counts() -> None:
    report = ValidationReport(
        success=False,
        n_rows=48_213,
        failures=[ValidationFailure("age", "expect_column_values_to_be_between", 1_337, "age outside [17, 90]")],
    )
    raised = ContractViolation(report, role="the source table")
    assert "48213" in str(raised) and "1337" in str(raised)  # where it was raised, the owner sees them
    copy = pickle.loads(pickle.dumps(raised))
    assert isinstance(copy, ContractViolation)
    assert copy.report is None and copy.role == "the source table"
    text = str(copy)
    assert "48213" not in text and "1337" not in text and "48,213" not in text
    assert "1 check(s)" in text and "nothing was trained or written" in text
