"""The contract workflow (issue 22 item 4): a contract that still holds bounds read off the data is
refused before any row is read (no run and no ε in the registry); `contract check` shows the ε split
and the rows needed; `contract export/import` round-trips through Frictionless and SDV."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.governance.registry import Registry
from synthgate.validation.contract import load_contract

from .test_steward import _db

runner = CliRunner()


def test_a_from_data_contract_is_refused_before_any_epsilon_is_spent(prefect_harness: None, tmp_path: Path) -> None:
    db = _db(tmp_path)
    draft = tmp_path / "cases.yaml"
    inferred = runner.invoke(app, ["contract", "infer", "--db", str(db), "--table", "cases", "-o", str(draft)])
    assert inferred.exit_code == 0, inferred.output
    marked = [n for n, c in yaml.safe_load(draft.read_text())["columns"].items() if c.get("from_data")]
    assert marked  # the draft reads bounds off the rows: the case under test
    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "contract": str(draft),
                "source": {"db": str(db), "table": "cases"},
                "out": str(out),
                "epochs": 1,
                "batch_size": 300,
                "seed": 0,
            }
        )
    )
    result = runner.invoke(app, ["run", "--config", str(cfg), "--quiet"])
    assert result.exit_code == 2, result.output  # bad input, not a blocked release (3)
    assert "from_data: true" in result.output and "nothing was read or spent" in result.output
    assert all(repr(n) in result.output for n in marked)
    spend = Registry(out / "registry.duckdb").spend("cases")
    assert spend.epsilon == 0.0 and spend.runs == 0
    assert not (out / "releases").exists() and not (out / "blocked").exists()
    assert not (out / "checkpoints").exists()  # no working folder: nothing was trained


def test_contract_check_shows_the_epsilon_split_and_the_rows_needed(tmp_path: Path) -> None:
    db = _db(tmp_path)
    draft = tmp_path / "cases.yaml"
    assert (
        runner.invoke(app, ["contract", "infer", "--db", str(db), "--table", "cases", "-o", str(draft)]).exit_code == 0
    )
    data = yaml.safe_load(draft.read_text())
    for eps, codec in ((3.0, "σ/Δ = 3.82): ε 1.2 alone"), (1.0, "σ/Δ = 10.7): ε 0.4 alone")):
        # ctgan's codec takes its codec_share, 40% of ε, at every ε (no floor at σ/Δ = 8)
        data["privacy"]["epsilon"], data["privacy"]["delta"] = eps, 1e-6
        data["evaluation"] = {"shadow_models": 0}
        path = tmp_path / f"eps{eps:g}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        result = runner.invoke(app, ["contract", "check", str(path)])
        assert result.exit_code == 0, result.output
        assert f"ε split at privacy.epsilon = {eps:g}, δ = 1e-06" in result.output
        assert codec in result.output, result.output
        assert f"composed total comes to ε {eps:g}" in result.output
        # holdout 1/3 with 4 sd of split slack: 20 holdout rows need 123 source rows
        assert "at least 123 source rows" in result.output
        assert "holdout: 20 rows for the membership attacks" in result.output


@pytest.mark.parametrize("fmt", ["frictionless", "sdv"])
def test_contract_export_and_import_round_trip_through_the_cli(tmp_path: Path, fmt: str) -> None:
    contract = Path("benchmarks/suite/contracts/colon.contract.yaml")
    exported, back = tmp_path / f"colon.{fmt}.json", tmp_path / "back.yaml"
    result = runner.invoke(app, ["contract", "export", str(contract), "--format", fmt, "-o", str(exported)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["contract", "import", str(exported), "--format", fmt, "-o", str(back)])
    assert result.exit_code == 0, result.output
    assert load_contract(back).fingerprint() == load_contract(contract).fingerprint()
    bad = runner.invoke(app, ["contract", "export", str(contract), "--format", "csv", "-o", str(exported)])
    assert bad.exit_code == 2 and "--format must be one of" in bad.output


def test_contract_infer_reads_parquet_csv_and_queries_and_proposes_a_target(tmp_path: Path) -> None:
    from .test_steward import steward_table

    frame = steward_table().drop("remarks")
    frame.write_parquet(tmp_path / "cases.parquet")
    frame.write_csv(tmp_path / "cases.csv")
    db = _db(tmp_path)
    sources = {
        "parquet": ["--path", str(tmp_path / "cases.parquet")],
        "csv": ["--path", str(tmp_path / "cases.csv")],
        "query": [
            "--db",
            str(db),
            "--query",
            "SELECT * EXCLUDE (remarks) FROM cases WHERE severity >= 1",
            "--table",
            "cases",
        ],
    }
    drafts = {}
    for what, args in sources.items():
        draft = tmp_path / f"{what}.yaml"
        result = runner.invoke(app, ["contract", "infer", *args, "-o", str(draft)])
        assert result.exit_code == 0, (what, result.output)
        assert "proposed target: 'reoffended'" in result.output
        text = draft.read_text()
        assert text.startswith("# target: 'reoffended' is a PROPOSAL")
        contract = load_contract(draft)
        assert contract.table == "cases" and contract.target == "reoffended"
        drafts[what] = {n: c.kind for n, c in contract.columns.items()}
    assert drafts["parquet"] == drafts["query"]  # same rows, same kinds
    assert set(drafts["csv"]) == set(drafts["parquet"])
    # the run's read-only rules hold for infer too: a writing query is refused before anything runs
    bad = runner.invoke(
        app,
        [
            "contract",
            "infer",
            "--db",
            str(db),
            "--query",
            "DELETE FROM cases",
            "--table",
            "cases",
            "-o",
            str(tmp_path / "x.yaml"),
        ],
    )
    assert bad.exit_code == 2 and not (tmp_path / "x.yaml").exists()
    both = runner.invoke(
        app,
        [
            "contract",
            "infer",
            "--path",
            str(tmp_path / "cases.csv"),
            "--db",
            str(db),
            "--query",
            "SELECT 1",
            "-o",
            str(tmp_path / "y.yaml"),
        ],
    )
    assert both.exit_code == 2
