"""The release registry: budget reservations, one-way transitions, keyed fingerprints, locks."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from synthgate.errors import BudgetExceeded, DatabaseLocked, RegistryError
from synthgate.governance.locks import connect
from synthgate.governance.registry import Registry
from tests.lockholder import hold


def _begin(
    reg: Registry,
    run_id: str,
    *,
    epsilon: float = 1.0,
    lifetime: float | None = 2.5,
    table: str = "patients",
    lifetime_delta: float | None = None,
) -> None:
    reg.begin_run(
        run_id=run_id,
        table=table,
        epsilon=epsilon,
        delta=1e-6,
        lifetime_epsilon=lifetime,
        lifetime_delta=lifetime_delta,
        contract_hash="c0ffee",
        config={"seed": 0},
        output_db="out/x.duckdb",
        output_table=f"{table}_synthetic",
    )


def _finish(reg: Registry, run_id: str, *, spent: float, status: str = "released") -> None:
    reg.finish(
        run_id,
        status=status,
        epsilon_spent=spent,
        gates=[{"name": "dcr_share", "passed": status == "released"}],
        reasons=[] if status == "released" else ["dcr_share failed"],
        folder=f"out/{run_id}",
    )


def test_budget_adds_up_over_runs_and_refuses_the_one_that_would_overspend(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "r1")
    _finish(reg, "r1", spent=0.99)
    _begin(reg, "r2")
    _finish(reg, "r2", spent=0.98, status="blocked")  # a blocked run spent its budget too
    assert reg.spend("patients").epsilon == pytest.approx(1.97)
    assert reg.spend("patients").runs == 2
    with pytest.raises(
        BudgetExceeded, match=r"patients.*1\.97 already spent over 2 run\(s\) \+ 1 planned > lifetime_epsilon 2\.5"
    ):
        _begin(reg, "r3")
    refused = reg.get("r3")
    assert refused.status == "refused" and refused.epsilon_charged == 0.0
    _begin(reg, "r4", epsilon=0.5)  # a smaller run still fits
    assert reg.spend("patients").epsilon == pytest.approx(2.47)
    assert reg.spend("other").epsilon == 0.0  # budgets are per table


def test_delta_is_budgeted_too(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "r1", lifetime=None, lifetime_delta=1.5e-6)
    _finish(reg, "r1", spent=1.0)
    with pytest.raises(BudgetExceeded, match="δ"):
        _begin(reg, "r2", lifetime=None, lifetime_delta=1.5e-6)


def test_a_running_run_reserves_its_whole_plan(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "r1", epsilon=2.0)
    with pytest.raises(BudgetExceeded):
        _begin(reg, "r2", epsilon=1.0)  # 2.0 reserved + 1.0 > 2.5, although r1 has not finished


def test_failures_charge_what_was_spent_or_the_plan(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "invalid", lifetime=None)
    reg.fail("invalid", error="ContractViolation: age out of bounds", invalid=True)
    assert (reg.get("invalid").status, reg.get("invalid").epsilon_charged) == ("invalid", 0.0)
    _begin(reg, "crashed", lifetime=None)
    reg.mark_training("crashed", data_fingerprint="hmac-sha256:ab")
    reg.fail("crashed", error="RuntimeError (details in the flow run's log)")
    assert (reg.get("crashed").status, reg.get("crashed").epsilon_charged) == ("failed", 1.0)
    _begin(reg, "late", lifetime=None)
    reg.mark_training("late", data_fingerprint="hmac-sha256:ab")
    reg.fail("late", error="OSError", epsilon_spent=0.97)
    assert reg.get("late").epsilon_charged == 0.97


def test_transitions_are_one_way(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "b1")
    _finish(reg, "b1", spent=1.0, status="blocked")
    with pytest.raises(RegistryError, match="blocked run cannot be published later"):
        _finish(reg, "b1", spent=1.0, status="released")
    with pytest.raises(RegistryError, match="only a killed or failed run can resume"):
        reg.resume_run("b1")
    with pytest.raises(RegistryError, match="no run 'nope'"):
        reg.get("nope")


def test_resume_keeps_the_reservation_and_refuses_other_data(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "r1", lifetime=None)
    with pytest.raises(RegistryError, match="before training started"):
        reg.resume_run("r1")
    reg.mark_training("r1", data_fingerprint="hmac-sha256:aa")
    reg.fail("r1", error="KeyboardInterrupt (details in the flow run's log)")
    record = reg.resume_run("r1")
    assert (record.status, record.resumes, record.epsilon_charged) == ("running", 1, 1.0)
    with pytest.raises(RegistryError, match="different data"):
        reg.mark_training("r1", data_fingerprint="hmac-sha256:bb")
    reg.mark_training("r1", data_fingerprint="hmac-sha256:aa")
    _finish(reg, "r1", spent=0.99)
    assert reg.spend("patients").epsilon == pytest.approx(0.99)


def test_checkpoint_hashes_keep_the_last_two_of_a_running_run(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    _begin(reg, "c1")
    assert reg.get("c1").checkpoint_hashes == []
    for digest in ("aa", "bb", "cc"):
        reg.record_checkpoint("c1", digest)
    assert reg.get("c1").checkpoint_hashes == ["bb", "cc"]
    _finish(reg, "c1", spent=1.0)
    with pytest.raises(RegistryError, match="not running"):
        reg.record_checkpoint("c1", "dd")
    assert reg.get("c1").to_dict()["checkpoint_hashes"] == ["bb", "cc"]


def test_fingerprint_is_keyed_order_free_and_content_sensitive(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    df = pl.DataFrame({"age": [30, 41, None], "sex": ["F", "M", "F"]})
    fp = reg.fingerprint(df)
    assert fp == reg.fingerprint(df.reverse())
    assert fp != reg.fingerprint(df.with_columns(pl.lit(31).alias("age")))
    key = tmp_path / "registry.key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    other = Registry(tmp_path / "elsewhere" / "registry.duckdb")
    assert other.fingerprint(df) != fp  # another key: nobody without the key can test a guess


def test_reading_a_missing_registry_says_where_it_looked(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "none.duckdb")
    assert reg.runs() == [] and reg.spend("t").epsilon == 0.0
    with pytest.raises(RegistryError, match="no release registry at"):
        reg.get("x")


def test_a_locked_file_is_waited_for_then_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    holder = hold(str(path), 2.0)
    with pytest.raises(DatabaseLocked, match=rf"locked by process {holder.pid}.*waited 0.5 s and changed nothing"):
        connect(path, timeout_s=0.5)
    started = time.monotonic()
    with connect(path, timeout_s=60) as con:  # waits until the holder lets go
        assert con.execute("SELECT count(*) FROM held").fetchone() == (0,)
    assert time.monotonic() - started > 0.5
    holder.join(30)


def test_only_transient_errors_are_retried() -> None:
    from types import SimpleNamespace

    import duckdb

    from synthgate.errors import InputError
    from synthgate.tasks.governance import is_transient

    def failed(err: BaseException) -> SimpleNamespace:
        return SimpleNamespace(data=err)

    assert is_transient(None, None, failed(duckdb.IOException("Could not set lock on file")))
    assert is_transient(None, None, failed(DatabaseLocked("busy")))
    assert is_transient(None, None, failed(TimeoutError("nfs")))
    for permanent in (InputError("no such table"), FileNotFoundError("gone"), BudgetExceeded("over"), ValueError("x")):
        assert not is_transient(None, None, failed(permanent)), permanent


def test_exceeds_lifetime_agrees_with_begin_run_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.duckdb"
    reg = Registry(path)
    kw = {"delta": 1e-6, "lifetime_epsilon": 2.5, "lifetime_delta": None}
    assert not reg.exceeds_lifetime("patients", epsilon=1.0, **kw) and not path.exists()  # no registry yet
    _begin(reg, "r1")
    _finish(reg, "r1", spent=0.99)
    _begin(reg, "r2")
    _finish(reg, "r2", spent=0.98)
    before = path.read_bytes()
    assert reg.exceeds_lifetime("patients", epsilon=1.0, **kw)  # 1.97 + 1 > 2.5: begin_run refuses it too
    assert not reg.exceeds_lifetime("patients", epsilon=0.5, **kw)
    assert not reg.exceeds_lifetime("patients", epsilon=100.0, delta=1e-6, lifetime_epsilon=None, lifetime_delta=None)
    assert path.read_bytes() == before  # read-only
    with pytest.raises(BudgetExceeded):
        _begin(reg, "r3")


def test_runs_come_back_newest_first_even_when_they_start_in_the_same_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import synthgate.governance.registry as registry_module

    monkeypatch.setattr(registry_module, "now", lambda: "2026-12-06T07:00:00+00:00")  # one second for every run
    reg = Registry(tmp_path / "registry.duckdb")
    # Ids chosen so that their alphabetical order is the reverse of the order they were recorded in.
    for run_id in ("c-first", "b-second", "a-third"):
        _begin(reg, run_id, lifetime=None)
    assert {r.started_at for r in reg.runs()} == {"2026-12-06T07:00:00+00:00"}
    assert [r.run_id for r in reg.runs()] == ["a-third", "b-second", "c-first"]
    assert [r.run_id for r in reg.runs(limit=1)] == ["a-third"]
    _finish(reg, "c-first", spent=0.5)  # finishing (an UPDATE) does not move a run
    assert [r.run_id for r in reg.runs(table="patients")] == ["a-third", "b-second", "c-first"]


def test_a_registry_written_before_the_sequence_column_keeps_its_order(tmp_path: Path) -> None:
    import duckdb

    from synthgate.governance.registry import _SCHEMA

    path = tmp_path / "registry.duckdb"
    old_schema = "\n".join(line for line in _SCHEMA.splitlines() if "seq" not in line)
    with duckdb.connect(str(path)) as con:  # an older synthgate's file: no seq column, same started_at
        con.execute(old_schema)
        for run_id in ("c-first", "b-second", "a-third"):
            con.execute(
                "INSERT INTO runs (run_id, source_table, status, started_at, epsilon_planned, epsilon_charged, delta) "
                "VALUES (?, 'patients', 'blocked', '2026-12-06T07:00:00+00:00', 1.0, 1.0, 1e-6)",
                [run_id],
            )
    reg = Registry(path)
    assert [r.run_id for r in reg.runs()] == ["a-third", "b-second", "c-first"]  # read-only: rowid order
    _begin(reg, "z-fourth", lifetime=None)  # the first write adds seq, numbering the old rows in their order
    assert [r.run_id for r in reg.runs()] == ["z-fourth", "a-third", "b-second", "c-first"]
