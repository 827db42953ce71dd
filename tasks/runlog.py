"""The release's log lines, one function per stage: what each stage writes to the run's Prefect log.

Prefect's database and UI are outside the data owner's control, so a line holds only what a public
report could hold: settings from the contract and the run config, ε, gate outcomes, and counts that
are DP estimates or published lengths. Never a row, a value, or an exact count of private rows (the
split's and the sample's sizes are private: no line names them). Keeping every line in one module
keeps that review in one place; the flows only pass the lines to ``stage_log``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthgate.tasks.publish import gate_artifact_rows
from synthgate.validation.contract import Contract

#: the DP facts of the training that decision.json publishes too (never its duration: it grows with the rows)
TRAINING_FACTS = ("steps", "sample_rate", "noise_multiplier", "max_grad_norm")


def run_start_line(run_id: str, contract: Contract, epsilon: float, *, resumed: bool) -> str:
    """The first line: the run, its table and model, and the ε asked for against the budget."""
    return (
        f"run {run_id}{' (resumed)' if resumed else ''}: table {contract.table!r}, model {contract.model}, "
        f"ε {epsilon:g} of the contract's {contract.privacy.epsilon:g}, δ {contract.privacy.delta:g}"
    )


def loaded_line() -> str:
    """A table loaded whole and validated."""
    return "loaded and validated: every contract expectation met (the row count is private: not logged)"


def streamed_line(batch_rows: int, max_rows: int) -> str:
    """A table too large to load: streamed, validated in batches, sampled."""
    return (
        f"streamed in batches of {batch_rows} rows: every row validated against the contract; training "
        f"uses an independent secret-coin sample of about max_rows = {max_rows} rows (sizes private)"
    )


def split_line(unit: str | None, holdout_fraction: float) -> str:
    """The unit of privacy (when a person is the unit) and the holdout split's rule, never its sizes."""
    return (
        (f"one row per person (unit column {unit!r}); " if unit is not None else "")
        + f"holdout split: each row to the holdout with probability {holdout_fraction:g} by a secret coin "
        "(the sizes are private: not logged)"
    )


def training_line(
    model: str, training_summary: Mapping[str, Any], *, epsilon_spent: float, epsilon: float, delta: float
) -> str:
    """The ε the ledger spent of the ε asked for, and the training's DP facts (``TRAINING_FACTS``)."""
    return f"trained {model} with DP: ε spent {epsilon_spent:.4g} of {epsilon:g} (δ {delta:g}); " + ", ".join(
        f"{k}={training_summary[k]:.4g}" if isinstance(training_summary[k], float) else f"{k}={training_summary[k]}"
        for k in TRAINING_FACTS
        if k in training_summary
    )


def sample_line(n_synthetic: int, *, asked: bool) -> str:
    """The synthetic table's length (published) and where it came from."""
    return (
        f"sampled {n_synthetic} synthetic rows (the length "
        + ("asked for by n_synthetic" if asked else "is the model's DP estimate of the training rows")
        + "; sampling reads no private row)"
    )


def published_lines(
    public_report: Mapping[str, Any], folder: Path, *, released: bool, output_table: str, output_db: Path
) -> list[str]:
    """Each gate's outcome (pass/fail against its rule, never a figure), then RELEASED or BLOCKED."""
    lines = [
        f"gate {row['gate']}: {row['outcome']} (must be {row['must be']})" for row in gate_artifact_rows(public_report)
    ]
    if released:
        lines.append(f"RELEASED: table {output_table!r} in {output_db}; public report {folder}/report.html")
    else:  # INFO: the run's state "Blocked" is the alarm
        lines.append(
            f"BLOCKED: nothing published; failed gates {public_report['failed_gates']}; public "
            f"report {folder}/report.html"
        )
    return lines


def blocked_message(report: Mapping[str, Any]) -> str:
    """One line for a blocked run: which gates failed (names only) and where its public report is."""
    return (
        f"release {report['run_id']} of table {report['table']!r} was BLOCKED; nothing published. "
        f"Failed gates: {report['failed_gates']}. Report: {report['folder']}/report.html"
    )
