"""CLI exit codes: 2 for bad input, without starting training."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from synthgate.flows.cli import app

runner = CliRunner()


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["demo", "--help"],
        ["run", "--help"],
        ["evaluate", "--help"],
        ["contract", "infer", "--help"],
        ["contract", "check", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, args
        assert "Usage" in result.output


def test_missing_run_config_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_contract_infer_marks_everything_as_data_derived(tmp_path: Path) -> None:
    import duckdb

    from synthgate.flows.demo import demo_parquet
    from synthgate.validation.contract import load_contract

    db = tmp_path / "src.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            'CREATE TABLE "we""ird; DROP TABLE x" AS SELECT * FROM read_parquet(?) LIMIT 500', [str(demo_parquet())]
        )
    out = tmp_path / "draft.yaml"
    result = runner.invoke(
        app, ["contract", "infer", "--db", str(db), "--table", 'we"ird; DROP TABLE x', "-o", str(out), "--missing", "?"]
    )
    assert result.exit_code == 0, result.output
    draft = load_contract(out)
    assert draft.data_derived_columns  # every bound/domain read off rows is marked
    assert "private" in out.read_text().lower()
    missing = runner.invoke(app, ["contract", "infer", "--db", str(db), "--table", "absent", "-o", str(out)])
    assert missing.exit_code == 2 and "not in" in missing.output
