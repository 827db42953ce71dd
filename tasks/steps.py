"""The exceptions a task raises on bad input (InputError, ContractViolation).

The stages' tasks live one module per stage of the README's pipeline: tasks/ingest.py, validate.py,
split.py, train.py, sample.py, evaluate.py, gates.py, publish.py, governance.py.
"""

from __future__ import annotations

from typing import Any

from synthgate.validation.expectations import ValidationReport


class InputError(ValueError):
    """The input table cannot be read or used as the contract describes it (exit code 2)."""


class ContractViolation(ValueError):
    """Rows break the contract: nothing is trained or written (exit code 2)."""

    def __init__(self, report: ValidationReport | None, *, role: str = "the table", failures: int | None = None) -> None:
        self.report = report
        self.role = role
        n = len(report.failures) if report is not None else failures
        detail = f"\n{report.summary()}" if report is not None else " (the per-check row counts are shown only where it was raised)"
        super().__init__(
            f"{role} breaks its contract in {n} check(s); nothing was "
            f"trained or written.{detail}\nFix the rows or the contract, then rerun."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled copy (Prefect writes every error raised in a flow to its result storage) keeps the
        # number of failed checks only: the report and the summary hold exact row counts of the table.
        n = len(self.report.failures) if self.report is not None else None
        return (_redacted_violation, (self.role, n))


def _redacted_violation(role: str, failures: int | None) -> ContractViolation:
    return ContractViolation(None, role=role, failures=failures)
