"""Hostile run configs, contracts and sources through the real CLI (issue 19; docs/robustness.md).

Each class of attack: the command ends in exit 2 (or 4) with one message and no traceback, the
output database and the source are unchanged, no private row was written anywhere, and no ε was
reserved (the run is refused before the registry records it). Tables are 600 Adult rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.flows.demo import demo_contract
from synthgate.governance.registry import Registry
from synthgate.validation.contract import load_yaml_text

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _contract_data(**edits: Any) -> dict[str, Any]:
    data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    data.setdefault("evaluation", {})["shadow_models"] = 0
    data.update(edits)
    return data


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _source_db(path: Path, frame: pl.DataFrame, table: str = "adult") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.register("rows", frame.to_arrow())
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM rows')
    return path


def _run(tmp: Path, config: dict[str, Any] | str, *extra: str) -> Any:
    cfg = _write(tmp / "run.yaml", config)
    return runner.invoke(app, ["run", "--config", str(cfg), "--quiet", *extra])


def _config(tmp: Path, source: dict[str, Any], contract: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    path = _write(tmp / "contract.yaml", contract or _contract_data())
    return {"contract": str(path), "source": source, "out": str(tmp / "out"), "epochs": 1, "batch_size": 100, **more}


def _one_message(result: Any) -> None:
    """Exactly one error line, no traceback, no Prefect failure report."""
    assert "Traceback" not in result.output, result.output
    assert result.output.count("error:") + result.output.count("REFUSED:") == 1, result.output
    assert "Encountered exception" not in result.output and "Finished in state" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def _nothing_charged(registry: Path) -> None:
    if registry.exists():
        assert all(r.epsilon_charged == 0 for r in Registry(registry).runs())


# ----------------------------------------------------------------------------- 1. output aliases source
@pytest.mark.parametrize(
    "how", ["output_table is the source table", "source named <table>_synthetic", "registry is the source"]
)
def test_an_output_that_is_the_source_is_refused_before_a_row_is_read(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame, how: str
) -> None:
    out = tmp_path / "out"
    if how == "registry is the source":
        src = _source_db(tmp_path / "private.duckdb", adult_600)
        config = _config(tmp_path, {"db": str(src), "table": "adult"}, registry=str(src))
    else:
        table = "adult" if how.startswith("output_table") else "adult_synthetic"
        src = _source_db(out / "synthgate.duckdb", adult_600, table=table)
        config = _config(tmp_path, {"db": str(src), "table": table})
        if table == "adult":
            config["output_table"] = "adult"
        else:
            config["contract"] = str(_write(tmp_path / "contract.yaml", _contract_data(table="adult")))
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    result = _run(tmp_path, config)
    assert result.exit_code == 2, result.output
    assert "holding the private table" in result.output
    _one_message(result)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # the private table is intact
    if how != "registry is the source":
        assert not (out / "registry.duckdb").exists()  # refused before the run was recorded


@pytest.mark.parametrize("name", ["_synthgate_published", "_staging_adult_x", "bad\nname", "x" * 200])
def test_reserved_or_malformed_output_names_are_refused(tmp_path: Path, adult_600: pl.DataFrame, name: str) -> None:
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}, output_table=name))
    assert result.exit_code == 2, result.output
    assert "output_table" in result.output
    _one_message(result)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- 2. source.query
HOSTILE_QUERIES = {
    "COPY to a file": ("COPY (SELECT * FROM adult) TO '{leak}' (HEADER)", "COPY statement"),
    "two statements": ("SELECT * FROM adult; COPY (SELECT * FROM adult) TO '{leak}'", "exactly one SELECT"),
    "ATTACH": ("ATTACH '{leak}' AS other", "ATTACH statement"),
    "INSTALL": ("INSTALL httpfs", "statement"),
    "LOAD": ("LOAD httpfs", "LOAD statement"),
    "PRAGMA": ("PRAGMA enable_profiling", "PRAGMA statement"),
    "SET": ("SET enable_external_access = true", "SET statement"),
    "CALL": ("CALL pragma_version()", "CALL statement"),
    "CREATE": ("CREATE TABLE copy AS SELECT * FROM adult", "CREATE statement"),
    "EXPORT": ("EXPORT DATABASE '{folder}'", "EXPORT statement"),
    "read another file": ("SELECT * FROM read_csv('{other}')", "external access is off"),
    "read a URL": ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "external access is off"),
    "glob the disk": ("SELECT * FROM glob('/etc/*') , adult", "external access is off"),
    "does not parse": ("SELEC * FROM adult", "does not parse"),
}


@pytest.mark.parametrize("case", list(HOSTILE_QUERIES), ids=list(HOSTILE_QUERIES))
def test_a_source_query_is_one_read_only_select_on_a_locked_down_connection(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame, case: str
) -> None:
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    other = tmp_path / "other.csv"
    other.write_text("a\n1\n")
    leak, folder = tmp_path / "leak.csv", tmp_path / "exported"
    query, said = HOSTILE_QUERIES[case]
    query = query.format(leak=leak, folder=folder, other=other)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "query": query}))
    assert result.exit_code == 2, result.output
    assert said in result.output, result.output
    _one_message(result)
    assert not leak.exists() and not folder.exists()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    _nothing_charged(tmp_path / "out" / "registry.duckdb")


def test_a_plain_select_still_works_and_the_connection_is_locked(tmp_path: Path, adult_600: pl.DataFrame) -> None:
    from synthgate.flows.config import SourceConfig
    from synthgate.tasks.ingest import private_connection, read_source

    src = _source_db(tmp_path / "private.duckdb", adult_600)
    frame = read_source(SourceConfig(db=src, query="WITH a AS (SELECT * FROM adult) SELECT age FROM a WHERE age > 30"))
    assert frame.height == adult_600.filter(pl.col("age") > 30).height
    with private_connection(src) as con:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration', "
                "'autoload_known_extensions', 'autoinstall_known_extensions', 'python_enable_replacements', 'access_mode')"
            ).fetchall()
        )
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
    assert settings == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
        "python_enable_replacements": "false",
        "access_mode": "read_only",
    }


# ----------------------------------------------------------------------------- 3. duplicate YAML keys
def test_duplicate_keys_are_refused_with_their_lines(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame
) -> None:
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    contract_text = yaml.safe_dump(_contract_data(), sort_keys=False)
    # a reviewer approved privacy.epsilon 3.0; a second privacy block further down would overrule it
    contract_text += "privacy:\n  epsilon: 100.0\n  delta: 1.0e-6\n"
    contract = _write(tmp_path / "contract.yaml", contract_text)
    lines = contract_text.splitlines()
    first, second = [i + 1 for i, line in enumerate(lines) if line.startswith("privacy:")]
    cfg = {"contract": str(contract), "source": {"db": str(src), "table": "adult"}, "out": str(tmp_path / "out")}
    result = _run(tmp_path, cfg)
    assert result.exit_code == 2, result.output
    assert f"duplicate key 'privacy' on line {second} (first on line {first})" in result.output
    _one_message(result)
    # a column declared twice
    text = yaml.safe_dump(_contract_data(), sort_keys=False).replace(
        "columns:\n", "columns:\n  age: {kind: integer, min: 0, max: 10}\n", 1
    )
    _write(tmp_path / "contract.yaml", text)
    result = _run(tmp_path, cfg)
    assert result.exit_code == 2 and "duplicate key 'age'" in result.output, result.output
    # the run config
    run_text = yaml.safe_dump({**cfg, "contract": str(_write(tmp_path / "contract.yaml", _contract_data()))})
    result = _run(tmp_path, run_text + "epsilon: 1.0\nepsilon: 100.0\n")
    assert result.exit_code == 2 and "duplicate key 'epsilon'" in result.output, result.output
    _one_message(result)
    assert not (tmp_path / "out").exists()


def test_the_shipped_yaml_files_have_no_duplicate_keys() -> None:
    for path in (ROOT / "prefect.yaml", demo_contract(), ROOT / "deploy" / "adult.run.yaml"):
        assert isinstance(load_yaml_text(path.read_text(encoding="utf-8")), dict), path


# ----------------------------------------------------------------------------- 4. numbers out of range
def _epsilon(v: float) -> dict[str, Any]:
    return _contract_data(privacy={"epsilon": v, "delta": 1e-6})


def _int_bound(data: dict[str, Any]) -> dict[str, Any]:
    data["columns"]["age"] = {"kind": "integer", "min": 0, "max": 2**70}
    return data


NUMBERS = {
    "contract epsilon .inf": (_epsilon(float("inf")), {}, [], "privacy.epsilon"),
    "contract epsilon 1e6": (_epsilon(1e6), {}, [], "privacy.epsilon"),
    "contract epsilon nan": (_epsilon(float("nan")), {}, [], "privacy.epsilon"),
    "--epsilon 1000000": (None, {}, ["--epsilon", "1000000"], "epsilon"),
    "run config epochs .inf": (None, {"epochs": float("inf")}, [], "epochs"),
    "--epochs inf": (None, {}, ["--epochs", "inf"], "epochs"),
    "model_options epochs .inf": (
        _contract_data(model_options={"epochs": float("inf")}),
        {"epochs": None},
        [],
        "epochs",
    ),
    "integer bound beyond int64": (_int_bound(_contract_data()), {}, [], "columns.age.integer.max"),
    "lifetime epsilon .inf": (
        _contract_data(privacy={"epsilon": 3.0, "delta": 1e-6, "lifetime_epsilon": float("inf")}),
        {},
        [],
        "lifetime_epsilon",
    ),
    "seed beyond int64": (None, {"seed": 2**64}, [], "seed"),
}


@pytest.mark.parametrize("case", list(NUMBERS), ids=list(NUMBERS))
def test_numbers_out_of_range_are_refused_at_load(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame, case: str
) -> None:
    contract, more, args, said = NUMBERS[case]
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    config = _config(tmp_path, {"db": str(src), "table": "adult"}, contract, **more)
    result = _run(tmp_path, config, *args)
    assert result.exit_code == 2, result.output
    assert said in result.output, result.output
    _one_message(result)
    assert not (tmp_path / "out" / "registry.duckdb").exists()  # nothing reserved, nothing spent


def test_the_published_table_is_revalidated_before_the_commit(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synthesizer fault that emits values outside the contract (here: int64-min in age) is
    caught just before the publish transaction: the previous release stays."""
    import synthgate.flows.release
    from synthgate.tasks.sample import sample_synthetic
    from synthgate.validation.results import GateDecision

    def broken(model: Any, *, n: int, seed: int) -> pl.DataFrame:
        rows = sample_synthetic.fn(model, n=n, seed=seed)
        return rows.with_columns(pl.lit(-(2**63), dtype=pl.Int64).alias("age"))

    monkeypatch.setattr(synthgate.flows.release, "sample_synthetic", broken)
    # every gate "passes", so the faulty rows reach the publish step
    monkeypatch.setattr(
        synthgate.flows.release,
        "gate_decision",
        lambda results, contract, **kw: (
            GateDecision(released=True, reasons=[]),
            [dataclasses.replace(r, passed=True) for r in results],
        ),
    )
    out = tmp_path / "out"
    out.mkdir()
    with duckdb.connect(str(out / "synthgate.duckdb")) as con:
        con.execute("CREATE TABLE adult_synthetic AS SELECT 1 AS earlier_release")
    before = hashlib.sha256((out / "synthgate.duckdb").read_bytes()).hexdigest()
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}))
    assert result.exit_code == 3, result.output
    assert "breaks its contract" in result.output and "age" in result.output
    assert hashlib.sha256((out / "synthgate.duckdb").read_bytes()).hexdigest() == before
    assert not any((out / "releases").glob("*"))  # no release folder (its temporary one was removed)
    (record,) = Registry(out / "registry.duckdb").runs()
    assert record.status == "failed" and record.epsilon_charged > 0  # trained: the ε is spent, on record


# ----------------------------------------------------------------------------- 5. doomed runs
def test_doomed_runs_are_refused_before_any_row_or_epsilon(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame
) -> None:
    # a 4-row table: counted (COUNT(*)), never read; nothing recorded, and the exact count is not
    # printed (a private figure)
    src = _source_db(tmp_path / "tiny.duckdb", adult_600.head(4))
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}))
    assert result.exit_code == 2 and "fewer rows than the checks" in result.output, result.output
    assert " 4 rows" not in result.output
    _one_message(result)
    assert not (tmp_path / "out").exists()
    # an output folder that is a file
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    (tmp_path / "afile").write_text("not a folder")
    result = _run(tmp_path, {**_config(tmp_path, {"db": str(src), "table": "adult"}), "out": str(tmp_path / "afile")})
    assert result.exit_code == 2 and "is a file" in result.output, result.output
    _one_message(result)
    assert (tmp_path / "afile").read_text() == "not a folder"
    # an output database that is not a DuckDB file
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "synthgate.duckdb").write_text("not a database")
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}))
    assert result.exit_code == 2 and "cannot be opened as a DuckDB database" in result.output, result.output
    assert not (tmp_path / "out" / "registry.duckdb").exists()


def test_too_wide_a_table_is_refused_before_a_row_is_read(
    prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame
) -> None:
    """10,000 declared categories on a 600-row table: refused by the stated work bound."""
    contract = _contract_data()
    contract["columns"]["visit_code"] = {"kind": "categorical", "categories": [f"V{i:05d}" for i in range(10_000)]}
    frame = adult_600.with_columns(pl.lit("V00001").alias("visit_code"))
    src = _source_db(tmp_path / "private.duckdb", frame)
    started = time.perf_counter()
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}, contract))
    assert result.exit_code == 2 and "encoded columns" in result.output, result.output
    assert time.perf_counter() - started < 60
    _one_message(result)


# ----------------------------------------------------------------------------- 6. untrusted strings
def test_audit_views_escape_markup_and_control_characters(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    hostile = "[bold red]x[/]\x1b[31mred\x1b[0m[link=file:///etc]y"
    reg.begin_run(
        run_id="r1",
        table=hostile,
        epsilon=1.0,
        delta=1e-6,
        lifetime_epsilon=None,
        lifetime_delta=None,
        contract_hash="h",
        config={},
        output_db="o",
        output_table="t",
    )
    for args in (["releases", "list"], ["budget", "show"]):
        result = runner.invoke(app, [*args, "--registry", str(tmp_path / "registry.duckdb")], env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output
        assert "[bold red]x[/]" in result.output and "\\x1b[31mred" in result.output


def test_a_contract_table_name_with_control_characters_is_refused(tmp_path: Path, adult_600: pl.DataFrame) -> None:
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}, _contract_data(table="adult\x1b[2J")))
    assert result.exit_code == 2 and "control or format characters" in result.output, result.output
    assert "\x1b" not in result.output
    _one_message(result)


# ----------------------------------------------------------------------------- 8. raw errors
def test_a_damaged_registry_names_its_file(prefect_harness: None, tmp_path: Path, adult_600: pl.DataFrame) -> None:
    reg_path = tmp_path / "out" / "registry.duckdb"
    reg = Registry(reg_path)
    reg.begin_run(
        run_id="r1",
        table="adult",
        epsilon=1.0,
        delta=1e-6,
        lifetime_epsilon=None,
        lifetime_delta=None,
        contract_hash="h",
        config={},
        output_db="o",
        output_table="t",
    )
    data = bytearray(reg_path.read_bytes())
    for i in range(4096, len(data), 997):  # flip bytes past the header: DuckDB's checksums fail
        data[i] ^= 0xFF
    reg_path.write_bytes(bytes(data))
    for args in (["releases", "list", "--registry", str(reg_path)], ["budget", "show", "--registry", str(reg_path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert str(reg_path) in result.output and "damaged" in result.output and "Restore it" in result.output
        _one_message(result)
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    result = _run(tmp_path, _config(tmp_path, {"db": str(src), "table": "adult"}, epochs=1))
    assert result.exit_code == 2 and str(reg_path) in result.output, result.output
    _one_message(result)


def _wait_for(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_sigterm_stops_a_run_cleanly_and_a_tampered_checkpoint_is_refused(
    tmp_path: Path, adult_600: pl.DataFrame
) -> None:
    """SIGTERM during training: exit 143 within seconds, the run recorded as failed with its
    reservation, the checkpoint kept. A changed checkpoint is then refused by `resume` (exit 2)."""
    src = _source_db(tmp_path / "private.duckdb", adult_600)
    config = _config(tmp_path, {"db": str(src), "table": "adult"}, epochs=500, checkpoint_every=0.2)
    cfg = _write(tmp_path / "run.yaml", config)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "synthgate.flows.cli"]
    proc = subprocess.Popen(
        [*cmd, "run", "--config", str(cfg), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoints = tmp_path / "out" / "checkpoints"
    try:
        assert _wait_for(lambda: any(checkpoints.glob("*/train.pt")), 240), "no checkpoint was written"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert stopped_in < 30, stopped_in  # seconds, on a loaded 2-core machine (measured ~14 s there)
    assert "Traceback" not in err and err.count("stopped") == 1, err
    (record,) = Registry(tmp_path / "out" / "registry.duckdb").runs()
    assert record.status == "failed", record
    assert "stopped by a signal" in (record.error or ""), record.error
    assert record.epsilon_charged > 0  # training had started: its reservation stays charged
    (kept,) = checkpoints.glob("*/train.pt")
    kept.write_bytes(kept.read_bytes()[:-10] + b"0123456789")  # tampered
    result = subprocess.run(
        [*cmd, "resume", record.run_id, "--out", str(tmp_path / "out"), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "not the file this run wrote" in result.stderr and "Traceback" not in result.stderr
