"""One errors module (issue 17): every error synthgate raises on purpose lives in synthgate.errors,
derives from SynthgateError, keeps its built-in base, and the CLI maps each kind to its exit code."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from synthgate import errors
from synthgate.errors import (
    BudgetExceeded,
    CheckpointRefused,
    ContractError,
    ContractViolation,
    DatabaseLocked,
    InputError,
    OutputViolation,
    OwnerReportError,
    RegistryError,
    ReleaseBlocked,
    SynthgateError,
    WhereError,
    WithheldError,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "tasks", "models", "validation", "governance", "synthgate")
# BaseException on purpose (a signal, not an error): `except Exception` must not catch it
NOT_ERRORS = {("flows/cli.py", "Interrupted")}

BUILTIN_BASE = {
    ContractError: ValueError,
    InputError: ValueError,
    ContractViolation: ValueError,
    WhereError: ValueError,
    CheckpointRefused: ValueError,
    RegistryError: RuntimeError,
    BudgetExceeded: RuntimeError,
    DatabaseLocked: RuntimeError,
    OutputViolation: RuntimeError,
    OwnerReportError: RuntimeError,
    WithheldError: RuntimeError,
    ReleaseBlocked: RuntimeError,
}


def test_every_error_is_a_synthgate_error_and_keeps_its_builtin_base() -> None:
    exported = {getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert exported == {*BUILTIN_BASE, SynthgateError}
    for cls, base in BUILTIN_BASE.items():
        assert issubclass(cls, SynthgateError) and issubclass(cls, base), cls.__name__


def _exception_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            if any(
                b.endswith(("Error", "Exception", "Violation", "Refused", "Locked", "Exceeded", "Blocked"))
                for b in bases
            ):
                found.append(node.name)
    return found


def test_no_error_class_is_defined_outside_the_errors_module() -> None:
    stray = []
    for top in PACKAGES:
        # synthgate/<folder> are links to the folders already read: only synthgate's own files
        files = (ROOT / top).glob("*.py") if top == "synthgate" else (ROOT / top).rglob("*.py")
        for path in sorted(files):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "synthgate/errors.py":
                continue
            stray += [f"{rel}: {name}" for name in _exception_classes(path) if (rel, name) not in NOT_ERRORS]
    assert stray == [], "define these in synthgate/errors.py:\n" + "\n".join(stray)


def test_the_errors_module_imports_nothing_of_synthgate() -> None:
    tree = ast.parse((ROOT / "synthgate" / "errors.py").read_text(encoding="utf-8"))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert [m for m in modules if m.split(".")[0] in {*PACKAGES}] == []


@pytest.mark.parametrize(
    ("err", "label", "code"),
    [
        (ContractError("bad contract"), "error", 2),
        (InputError("bad input"), "error", 2),
        (CheckpointRefused("changed checkpoint"), "error", 2),
        (RegistryError("unknown run"), "error", 2),
        (OwnerReportError("unsafe owner folder"), "error", 2),
        (BudgetExceeded("over budget"), "REFUSED", 4),
        (OutputViolation("out of bounds"), "BLOCKED", 3),
        (ReleaseBlocked("blocked"), "BLOCKED", 3),
        (DatabaseLocked("locked"), "error", 5),
        (WithheldError("ValueError", "polars", "load_table"), "error", 1),
    ],
)
def test_the_cli_maps_each_kind_to_its_exit_code(err: SynthgateError, label: str, code: int) -> None:
    from synthgate.flows import cli

    assert cli._exit_for(err) == (label, code)
    assert code in {cli.EXIT_FAILED, cli.EXIT_BAD_INPUT, cli.EXIT_BLOCKED, cli.EXIT_REFUSED, cli.EXIT_LOCKED}


def test_a_pickled_release_blocked_drops_its_report() -> None:
    copy = pickle.loads(pickle.dumps(ReleaseBlocked("release r1 was BLOCKED", {"dcr": 0.61})))
    assert isinstance(copy, ReleaseBlocked) and copy.report is None and str(copy) == "release r1 was BLOCKED"


def test_a_withheld_error_survives_pickling() -> None:
    raised = WithheldError("InvalidOperationError", "polars", "load_table")
    copy = pickle.loads(pickle.dumps(raised))
    assert isinstance(copy, WithheldError) and str(copy) == str(raised)
    assert (copy.kind, copy.origin, copy.where) == ("InvalidOperationError", "polars", "load_table")
