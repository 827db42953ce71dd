"""Prefect wiring without a server: artifact keys, the blocked-run error, the CLI's logging defaults."""

from __future__ import annotations

import os
import pickle
import re
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.exceptions import FailedRun
from prefect.types.names import LOWERCASE_LETTERS_NUMBERS_AND_DASHES_ONLY_REGEX

from synthgate.errors import ReleaseBlocked
from synthgate.flows.stages import run_tags
from synthgate.tasks.publish import artifact_key
from synthgate.tasks.runlog import blocked_message


@pytest.mark.parametrize(
    "table", ["adult", "Sales_EU", "sales-eu", "patients 2024", "___", "données", "x" * 80, "a--b", "-lead"]
)
def test_artifact_keys_are_valid_prefect_keys(table: str) -> None:
    key = artifact_key(table, "release-gates")
    assert re.fullmatch(LOWERCASE_LETTERS_NUMBERS_AND_DASHES_ONLY_REGEX, key), key
    assert key.endswith("-release-gates") and not key.startswith("-") and "--" not in key
    assert len(key) <= 40 + 7 + len("-release-gates")
    assert artifact_key(table, "release-gates") == key  # stable: the same table always gets the same key


def test_artifact_keys_keep_a_plain_name_and_tell_similar_names_apart() -> None:
    assert artifact_key("adult", "release-summary") == "adult-release-summary"
    keys = {artifact_key(t, "release-gates") for t in ("Sales_EU", "sales-eu", "sales_eu", "SALES EU", "sales--eu")}
    assert len(keys) == 5
    assert artifact_key("x" * 80, "g") != artifact_key("x" * 81, "g")  # cut to 40 characters, then told apart


def test_run_tags_say_table_model_and_epsilon() -> None:
    assert run_tags("adult", "ctgan", 3.0) == ["table:adult", "model:ctgan", "epsilon:3"]
    assert run_tags("t", "tvae", 0.5)[-1] == "epsilon:0.5"


def test_a_pickled_release_blocked_error_leaves_the_owners_report_behind() -> None:
    report = {
        "run_id": "r1",
        "table": "adult",
        "failed_gates": ["column_shapes"],
        "folder": "out/blocked/r1",
        "rows": {"train": 1234},
    }
    err = ReleaseBlocked(blocked_message(report), report)
    assert err.report is report and "1234" not in str(err)
    assert str(err) == (
        "release r1 of table 'adult' was BLOCKED; nothing published. Failed gates: "
        "['column_shapes']. Report: out/blocked/r1/report.html"
    )
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.report is None
    assert b"1234" not in pickle.dumps(err)


def test_cli_defaults_send_run_logs_to_the_api_and_keep_the_terminal_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, load_logging_config

    from synthgate.flows.cli import QUIET_TERMINAL, prefect_defaults

    def unset_all() -> None:  # recorded by monkeypatch (set first), so the process env is restored afterwards
        for key in QUIET_TERMINAL:
            monkeypatch.setenv(key, "unset")
            monkeypatch.delenv(key)

    unset_all()
    prefect_defaults()
    assert {k: os.environ[k] for k in QUIET_TERMINAL} == QUIET_TERMINAL
    config = load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
    assert config["loggers"]["prefect.flow_runs"]["level"] == "INFO"  # the Logs tab gets the stage lines
    assert config["loggers"]["prefect.task_runs"]["level"] == "INFO"
    assert config["handlers"]["console"]["level"] == "WARNING"  # the terminal does not

    # A user's own level wins, and then nothing else is changed either.
    unset_all()
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    prefect_defaults()
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"
    assert not any(k in os.environ for k in QUIET_TERMINAL if k != "PREFECT_LOGGING_LEVEL")


def test_the_outcome_tag_of_a_run_that_raised_uses_the_registrys_words() -> None:
    from synthgate.errors import InputError
    from synthgate.governance.registry import BudgetExceeded, RegistryError
    from synthgate.tasks.governance import run_outcome
    from synthgate.tasks.redaction import WithheldError
    from synthgate.validation.contract import ContractError

    assert run_outcome(BudgetExceeded("over")) == "refused"
    assert {run_outcome(e) for e in (ContractError("c"), InputError("i"), RegistryError("r"))} == {"invalid"}
    assert run_outcome(KeyboardInterrupt()) == "stopped"
    assert run_outcome(WithheldError("ValueError", "polars", "load_table")) == "failed"
    assert run_outcome(RuntimeError("bug")) == "failed"


@pytest.mark.parametrize("data", ["kept", "lost"])
def test_a_blocked_state_is_a_blocked_release_even_when_prefect_drops_its_data(
    monkeypatch: pytest.MonkeyPatch, data: str
) -> None:
    """The API may answer the final state with its own copy, without the in-process data (a REJECT after
    a retried write; CI saw it with SQLite 'database is locked'): `prefect`'s result() then raises
    FailedRun. run_release turns a state named "Blocked" into ReleaseBlocked (the CLI's exit 3), with
    the report when the state still holds it."""
    from prefect.states import Failed

    import synthgate.flows.release as release

    report = {"released": False, "run_id": "r1"}
    message = "release r1 of table 'adult' was BLOCKED; nothing published."
    state = Failed(name="Blocked", message=message, data=ReleaseBlocked(message, report) if data == "kept" else None)

    class FakeFlow:
        def with_options(self, **_: Any) -> "FakeFlow":
            return self

        def __call__(self, config: Any, return_state: bool) -> Any:
            return state

    monkeypatch.setattr(release, "release_flow", FakeFlow())
    monkeypatch.setattr(release, "make_task_runner", lambda *a, **k: None)
    config = SimpleNamespace(task_runner="threads", workers=None, dask_address=None)
    if data == "kept":
        assert release.run_release(config) is report  # type: ignore[arg-type]
    else:
        with pytest.raises(ReleaseBlocked, match="was BLOCKED") as caught:
            release.run_release(config)  # type: ignore[arg-type]
        assert caught.value.report is None
    # any other failure still raises as the flow did
    monkeypatch.setattr(release, "release_flow", FakeFlow())
    state = Failed(name="Failed", message="boom")
    with pytest.raises(FailedRun):
        release.run_release(config)  # type: ignore[arg-type]
