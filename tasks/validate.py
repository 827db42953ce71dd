"""The validate_table stage: the rows against the expectation suite generated from the contract."""

from __future__ import annotations

import polars as pl

from synthgate.errors import ContractViolation
from synthgate.tasks.redaction import private_task
from synthgate.validation.contract import Contract, ContractError
from synthgate.validation.expectations import ValidationReport, physical_type_errors, validate_frame


@private_task(name="validate_table", task_run_name="validate {role} against the contract")
def validate_table(
    df: pl.DataFrame, contract: Contract, *, role: str = "the table", check_delta: bool = True
) -> ValidationReport:
    """Run the suite generated from the contract; raise ContractViolation on any failure.

    ``role`` names the table in the error (``synthgate evaluate`` checks three); ``check_delta``
    also checks δ < 1/n, which matters only for a table that is trained on.
    """
    report = validate_frame(df, contract)
    if not report.success:
        raise ContractViolation(report, role=role)
    # Every modelled column in the physical type its kind needs, before any row is trained on or
    # checked (validation reports most mismatches with counts; this is the guarantee).
    wrong = physical_type_errors(df.schema, contract)
    if wrong:
        raise ContractError(
            f"{role}: " + "; ".join(wrong) + ". Cast the column at ingestion (e.g. in the source query) "
            "or fix its kind in the contract; nothing was trained."
        )
    if check_delta:
        contract.privacy.check_delta(df.height)
    return report
