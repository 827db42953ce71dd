"""Library exception messages are withheld at the task boundary; synthgate's own pass unchanged."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synthgate.errors import InputError, WithheldError
from synthgate.tasks.redaction import SHOW_ENV, withhold_library_errors

SECRET = "ZQX-PRIVATE-7731"


def _library_error(df: pl.DataFrame) -> None:
    df.select(pl.col("name").cast(pl.Int64))  # polars quotes the values it could not convert


def test_a_library_message_is_withheld_naming_type_and_library() -> None:
    wrapped = withhold_library_errors(_library_error)
    with pytest.raises(WithheldError) as caught:
        wrapped(pl.DataFrame({"name": [SECRET]}))
    text = str(caught.value)
    assert SECRET not in text and "InvalidOperationError raised by polars in _library_error" in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(pl.exceptions.InvalidOperationError, match=SECRET):  # what it would have said
        _library_error(pl.DataFrame({"name": [SECRET]}))


def test_own_errors_pass_with_their_message_and_without_their_cause() -> None:
    def ours() -> None:
        try:
            _library_error(pl.DataFrame({"name": [SECRET]}))
        except pl.exceptions.InvalidOperationError as err:
            raise ValueError("column 'name' is not numeric; declare it categorical") from err

    def own_class() -> None:
        raise InputError("input file 'x.parquet' does not exist")

    with pytest.raises(ValueError, match="declare it categorical") as caught:
        withhold_library_errors(ours)()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(InputError, match="does not exist"):
        withhold_library_errors(own_class)()


def test_our_code_installed_in_site_packages_is_still_ours() -> None:
    """An installed wheel's modules live in site-packages; a ValueError raised there by a synthgate
    module passes (its message names columns), one raised by another package there is withheld."""
    code = compile(
        "def fail():\n    raise ValueError('column x: " + SECRET + "')\n",
        "/venv/lib/python3.11/site-packages/pkg/mod.py",
        "exec",
    )
    for module, passes in (("synthgate.validation.fake", True), ("somelib.core", False)):
        space: dict[str, object] = {"__name__": module}
        exec(code, space)  # noqa: S102  (a function whose frame claims that file and module)
        wrapped = withhold_library_errors(space["fail"])  # type: ignore[arg-type]
        if passes:
            with pytest.raises(ValueError, match=SECRET):
                wrapped()
        else:
            with pytest.raises(WithheldError, match="ValueError raised by somelib") as caught:
                wrapped()
            assert SECRET not in str(caught.value)


def test_io_errors_pass_for_retries_and_the_switch_shows_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    def io() -> None:
        open("/nonexistent/synthgate/file")  # noqa: SIM115

    with pytest.raises(FileNotFoundError):
        withhold_library_errors(io)()
    monkeypatch.setenv(SHOW_ENV, "1")
    with pytest.raises(pl.exceptions.InvalidOperationError, match=SECRET):
        withhold_library_errors(_library_error)(pl.DataFrame({"name": [SECRET]}))


def test_private_tasks_are_wrapped() -> None:
    """Every Prefect task that reads private rows carries the filter (its fn is the wrapper)."""
    from synthgate.tasks import evaluate, ingest, split, train, validate
    from synthgate.tasks.audit import audit_one
    from synthgate.tasks.governance import record_training_start

    tasks = [
        ingest.load_table,
        ingest.sample_large_table,
        validate.validate_table,
        split.split_holdout,
        evaluate.evaluation_subsample,
        train.train_synthesizer,
        evaluate.evaluate_privacy,
        evaluate.evaluate_fidelity,
        evaluate.gate_pii_values,
        evaluate.attack_membership,
        evaluate.plan_shadow_attack,
        evaluate.train_shadow,
        evaluate.score_shadow_attack,
        record_training_start,
        audit_one,
    ]
    for t in tasks:
        assert getattr(t.fn, "__wrapped__", None) is not None, t.name


def test_synthgate_classes_and_an_installed_synthgate_count_as_our_own_code() -> None:
    """Since the one namespace every class's module is synthgate.*; installed, the code lives in
    site-packages/synthgate, which is the project there (a library beside it is not)."""
    from synthgate.tasks.redaction import _inside_project, _passes

    assert InputError.__module__.startswith("synthgate.")
    assert _passes(InputError("input file 'x.parquet' does not exist")) == (True, "")  # judged by class, no traceback
    installed = Path("/venv/lib/python3.11/site-packages/synthgate")
    assert _inside_project(installed / "tasks" / "ingest.py", installed)
    assert not _inside_project(Path("/venv/lib/python3.11/site-packages/polars/frame.py"), installed)
    checkout = Path("/repo")
    assert _inside_project(checkout / "tasks" / "ingest.py", checkout)
    assert not _inside_project(
        checkout / ".venv" / "lib" / "python3.11" / "site-packages" / "polars" / "frame.py", checkout
    )
