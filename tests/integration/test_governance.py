"""Governance end to end: lifetime budgets across releases, the audit trail, safe publishing, resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from synthgate.errors import BudgetExceeded, DatabaseLocked
from synthgate.flows.cli import app
from synthgate.flows.config import RunConfig, SourceConfig
from synthgate.flows.demo import demo_contract
from synthgate.flows.release import release_flow, run_release
from synthgate.governance.registry import Registry
from synthgate.tasks import publish
from synthgate.tasks.publish import publish_table, published_run
from tests.lockholder import hold

runner = CliRunner()


def _contract_with(tmp_path: Path, evaluation: dict[str, int] | None = None, **privacy: float) -> Path:
    data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    data["privacy"].update(privacy)
    data.setdefault("evaluation", {}).update(evaluation or {})
    path = tmp_path / "adult.contract.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_release_over_the_lifetime_budget_is_refused_before_reading_a_row(
    prefect_harness: None, tmp_path: Path, small_source: Path
) -> None:
    contract = _contract_with(tmp_path, lifetime_epsilon=4.0)  # ε = 3 per run: one run fits, two do not
    cfg = RunConfig(
        contract=contract,
        source=SourceConfig(path=small_source),
        out=tmp_path / "out",
        epochs=1.0,
        batch_size=250,
        show_progress=False,
    )
    first = run_release(cfg)  # released or blocked: the report either way
    spent = float(first["privacy"]["epsilon_spent"])
    small_source.unlink()  # a second run that read anything would now fail with "does not exist"
    with pytest.raises(BudgetExceeded, match=rf"table 'adult' would exceed .*{spent:.4g} already spent over 1 run"):
        release_flow(cfg)

    newest, oldest = Registry(cfg.registry_path).runs()
    assert oldest.run_id == first["run_id"] and oldest.status == ("released" if first["released"] else "blocked")
    assert oldest.epsilon_charged == pytest.approx(spent) and oldest.data_fingerprint.startswith("hmac-sha256:")
    assert oldest.contract_hash == first["contract_fingerprint"] and oldest.gates == first["public"]["gates"]
    assert oldest.code_version and oldest.user_name and oldest.config["epochs"] == 1.0
    assert (newest.status, newest.epsilon_charged, newest.training_started) == ("refused", 0.0, False)

    shown = runner.invoke(app, ["budget", "show", "--table", "adult", "--out", str(cfg.out)])
    assert shown.exit_code == 0, shown.output
    assert f"{spent:.4g}" in shown.output and f"{4.0 - spent:.4g}" in shown.output
    listed = runner.invoke(app, ["releases", "list", "--out", str(cfg.out)])
    assert listed.exit_code == 0 and first["run_id"] in listed.output and "refused" in listed.output
    detail = runner.invoke(app, ["releases", "show", first["run_id"], "--out", str(cfg.out)])
    assert json.loads(detail.output)["epsilon_charged"] == pytest.approx(spent)
    assert runner.invoke(app, ["releases", "show", "nope", "--out", str(cfg.out)]).exit_code == 2


def test_the_cli_exits_4_on_a_refused_run(prefect_harness: None, tmp_path: Path, small_source: Path) -> None:
    reg = Registry(tmp_path / "out" / "registry.duckdb")
    reg.begin_run(
        run_id="earlier",
        table="adult",
        epsilon=3.0,
        delta=1e-6,
        lifetime_epsilon=None,
        lifetime_delta=None,
        contract_hash="x",
        config={},
        output_db="",
        output_table="",
    )
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "contract": str(_contract_with(tmp_path, lifetime_epsilon=5.0)),
                "source": {"path": str(small_source)},
                "out": str(tmp_path / "out"),
            }
        )
    )
    result = runner.invoke(app, ["run", "--config", str(cfg), "--quiet"])
    assert result.exit_code == 4, result.output
    assert "REFUSED" in result.output and "lifetime" in result.output
    # every run states the table's cumulative spend and what its lifetime budget leaves
    assert "table 'adult': ε 3 spent over 1 run(s) charged; lifetime budget 5, 2 left" in result.output


# ------------------------------------------------------------------ publishing


def _table(db: Path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(f'SELECT * FROM "{name}"').pl()


def test_a_crash_between_staging_and_publish_leaves_the_old_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "synthgate.duckdb"
    old = pl.DataFrame({"age": [30, 40], "sex": ["F", "M"]})
    publish_table(db, "adult_synthetic", old, run_id="run-1")

    def crash() -> None:
        raise KeyboardInterrupt("killed between staging and publish")

    monkeypatch.setattr(publish, "_before_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        publish_table(db, "adult_synthetic", pl.DataFrame({"age": [1, 2, 3], "sex": ["M"] * 3}), run_id="run-2")
    assert _table(db, "adult_synthetic").equals(old)
    assert published_run(db, "adult_synthetic") == "run-1"
    with duckdb.connect(str(db), read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert names == {"adult_synthetic", "_synthgate_published"}  # no staging table left behind


def test_a_second_writer_waits_or_fails_without_touching_the_output(tmp_path: Path) -> None:
    db = tmp_path / "synthgate.duckdb"
    old = pl.DataFrame({"x": [1, 2]})
    publish_table(db, "t", old, run_id="run-1")
    holder = hold(str(db), 2.0)
    with pytest.raises(DatabaseLocked, match=rf"locked by process {holder.pid} .*one writer per file"):
        publish_table(db, "t", pl.DataFrame({"x": [9]}), run_id="run-2", lock_timeout_s=0.5)
    holder.join(30)
    assert _table(db, "t").equals(old) and published_run(db, "t") == "run-1"
    holder = hold(str(db), 2.0)
    started = time.monotonic()
    publish_table(db, "t", pl.DataFrame({"x": [7]}), run_id="run-3", lock_timeout_s=60)  # waits its turn
    assert time.monotonic() - started > 0.5
    holder.join(30)
    assert _table(db, "t")["x"].to_list() == [7] and published_run(db, "t") == "run-3"


# ------------------------------------------------------------------ kill and resume


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "synthgate.flows.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_killed_run_resumes_and_spends_what_an_uninterrupted_run_spends(tmp_path: Path, small_source: Path) -> None:
    from synthgate.models.synthesizers.base import private_entropy
    from synthgate.tasks.ingest import prepare_frame
    from synthgate.tasks.split import split_holdout
    from synthgate.tasks.train import fit_synthesizer
    from synthgate.validation.contract import load_contract

    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    contract_path = _contract_with(tmp_path, evaluation={"shadow_models": 0})  # resume is the point here
    cfg.write_text(
        yaml.safe_dump(
            {
                "contract": str(contract_path),
                "source": {"path": str(small_source)},
                "out": str(out),
                "epochs": 4.0,
                "batch_size": 250,
                "checkpoint_every": 0.5,
                "seed": 4,
            }
        )
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING"}
    proc = _cli("run", "--config", str(cfg), "--quiet", env=env)
    deadline = time.monotonic() + 240
    while not list(out.glob("checkpoints/*/train.pt")):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # SIGKILL: no handler runs, the registry still says 'running'
    proc.wait(30)
    (killed,) = Registry(out / "registry.duckdb").runs()
    assert killed.status == "running" and killed.training_started
    # The checkpoint left by the kill is one the registry recorded (a resume loads nothing else).
    (left,) = out.glob("checkpoints/*/train.pt")
    assert hashlib.sha256(left.read_bytes()).hexdigest() in killed.checkpoint_hashes
    assert 1 <= len(killed.checkpoint_hashes) <= 2

    resumed = _cli("resume", killed.run_id, "--out", str(out), "--quiet", env=env)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode in (0, 3), output
    (record,) = Registry(out / "registry.duckdb").runs()
    assert record.status in ("released", "blocked") and record.resumes == 1
    report = json.loads((Path(record.owner_folder) / "report.json").read_text())  # the owner's report
    assert "resumed_at_step=" in report["notes"][0] and "resumed_at_step=None" not in report["notes"][0]
    assert not (out / "checkpoints" / killed.run_id).exists()  # deleted once the run ended

    # An uninterrupted fit on the same split, with the same (test) noise key, spends exactly as much.
    contract = load_contract(contract_path)
    df = prepare_frame(pl.read_parquet(small_source), contract).select(contract.modelled_columns)
    train, _ = split_holdout.fn(df, fraction=1 / 3, key=private_entropy())  # the run's split key (test noise key)
    _, ledger = fit_synthesizer(train, contract, epsilon=3.0, epochs=4.0, batch_size=250, device="cpu", seed=4)
    assert record.epsilon_charged == ledger.epsilon
    assert [(e["mechanism"], e["steps"]) for e in report["privacy"]["ledger"]] == [
        (e.mechanism, e.steps) for e in ledger.entries
    ]


def test_governance_commands_refuse_bad_input_with_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["resume", "20260101T000000Z-abcdef", "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "no release registry at" in missing.output
    assert runner.invoke(app, ["budget", "show", "--out", str(tmp_path)]).exit_code == 2
    reg = Registry(tmp_path / "registry.duckdb")
    reg.begin_run(
        run_id="r1",
        table="adult",
        epsilon=1.0,
        delta=1e-6,
        lifetime_epsilon=None,
        lifetime_delta=None,
        contract_hash="x",
        config={},
        output_db="",
        output_table="",
    )
    unknown = runner.invoke(app, ["budget", "show", "--table", "nope", "--out", str(tmp_path)])
    assert unknown.exit_code == 2 and "Tables there: ['adult']" in unknown.output
    not_started = runner.invoke(app, ["resume", "r1", "--out", str(tmp_path)])
    assert not_started.exit_code == 2 and "before training started" in not_started.output
    no_schedule = runner.invoke(app, ["deploy", "--run-config", str(tmp_path / "x.yaml"), "--name", "n"])
    assert no_schedule.exit_code == 2 and "--cron" in no_schedule.output
    no_file = runner.invoke(
        app, ["deploy", "--run-config", str(tmp_path / "x.yaml"), "--name", "n", "--interval", "60"]
    )
    assert no_file.exit_code == 2 and "does not exist" in no_file.output
