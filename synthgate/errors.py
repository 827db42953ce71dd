"""Every error synthgate raises on purpose, in one place: the ground floor of the package.

Each class says what went wrong in words a user can act on (which value, how to fix it) and never
quotes a private value. All derive from :class:`SynthgateError`, so a caller can catch "anything
synthgate refused" in one clause; each also keeps the built-in base it had before (``ValueError``
for bad input, ``RuntimeError`` for a refusal or a state), so ``except ValueError`` keeps working.

The CLI (``synthgate.flows.cli``) prints one line and no traceback for each, with an exit code by
kind: 2 for bad input (contract, config, rows, checkpoint, registry), 3 when the output breaks the
contract (blocked), 4 when the budget refuses a run, 5 while a database is locked. ``tasks.redaction`` lets
their messages out of a task that reads private rows, since they are written to name columns,
files and problems, never values.

This module imports nothing from synthgate's packages (an import-linter contract keeps it so):
every layer can import it.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = [
    "SHOW_ENV",
    "BudgetExceeded",
    "CheckpointRefused",
    "ContractError",
    "ContractViolation",
    "DatabaseLocked",
    "InputError",
    "OutputViolation",
    "OwnerReportError",
    "RegistryError",
    "ReleaseBlocked",
    "SynthgateError",
    "WhereError",
    "WithheldError",
]

#: Environment switch that lets library error messages out of a private task (``tasks.redaction``).
SHOW_ENV = "SYNTHGATE_SHOW_LIBRARY_ERRORS"


class SynthgateError(Exception):
    """An error synthgate raises on purpose: its message names the problem and the fix, no private value."""


# --- bad input: the contract, the run config, the rows, a query (exit code 2) --------------------------


class ContractError(SynthgateError, ValueError):
    """The contract file is missing, malformed or inconsistent."""


class InputError(SynthgateError, ValueError):
    """The input table cannot be read or used as the contract describes it (exit code 2)."""


class _ValidationReport(Protocol):
    """What ContractViolation reads of ``validation.expectations.ValidationReport``."""

    @property
    def failures(self) -> Any: ...

    def summary(self) -> str: ...


class ContractViolation(SynthgateError, ValueError):
    """Rows break the contract: nothing is trained or written (exit code 2)."""

    def __init__(
        self, report: _ValidationReport | None, *, role: str = "the table", failures: int | None = None
    ) -> None:
        self.report = report
        self.role = role
        n = len(report.failures) if report is not None else failures
        detail = (
            f"\n{report.summary()}"
            if report is not None
            else " (the per-check row counts are shown only where it was raised)"
        )
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


class WhereError(SynthgateError, ValueError):
    """The WHERE clause cannot be parsed or names a column the contract does not model."""


class CheckpointRefused(SynthgateError, ValueError):
    """A checkpoint file was changed, replaced, damaged or belongs to another fit (exit code 2)."""


class RegistryError(SynthgateError, RuntimeError):
    """An unknown run, or a change the registry does not allow (e.g. re-publishing a blocked run)."""


# --- refusals and states ------------------------------------------------------------------------------


class BudgetExceeded(SynthgateError, RuntimeError):
    """The run would take the table past its lifetime budget; it was refused before reading a row."""


class DatabaseLocked(SynthgateError, RuntimeError):
    """Another process held a DuckDB file for longer than the wait allowed; nothing was written."""


class OutputViolation(SynthgateError, RuntimeError):
    """The synthetic table breaks the contract (a bound, a category, a type): it is not published."""


class OwnerReportError(SynthgateError, RuntimeError):
    """The owner-only location is unsafe (inside the release folder, or open to others)."""


class WithheldError(SynthgateError, RuntimeError):
    """A library raised an error while reading private rows; its message was withheld."""

    def __init__(self, kind: str, origin: str, where: str) -> None:
        self.kind, self.origin, self.where = kind, origin, where
        super().__init__(
            f"{kind} raised by {origin} in {where}; its message was withheld because it may quote private "
            f"values. On a trusted machine, rerun with {SHOW_ENV}=1 to see it."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its three parts (the default would call __init__ with the message alone and fail
        # where an error crosses a process, e.g. from a Dask worker or into Prefect's result storage)
        return (type(self), (self.kind, self.origin, self.where))


class ReleaseBlocked(SynthgateError, RuntimeError):
    """A release blocked by its gates: nothing was published (both reports were written).

    The release flow ends in a Failed state named "Blocked" that holds this error, so the Prefect UI
    shows the run red and automations can alert on it. ``report`` is the run's report: the owner's,
    with figures computed on private rows, for this process only; it is dropped when the error is
    pickled (Prefect never persists the release flow's result, and this keeps it so).
    """

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)
