"""`synthgate audit` end to end: a run config in, a results JSON and a verdict out."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.demo import demo_contract

runner = CliRunner()


def _run_config(tmp: Path, source: Path) -> Path:
    contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    (tmp / "contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    cfg = tmp / "run.yaml"
    cfg.write_text(yaml.safe_dump({"contract": "contract.yaml", "source": {"path": str(source)}, "out": "out"}))
    return cfg


def test_audit_writes_results_and_passes_an_honest_fit(prefect_harness: None, tmp_path: Path, small_source: Path) -> None:
    output = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", "--config", str(_run_config(tmp_path, small_source)), "--epsilon", "1",
                                 "--epsilon", "4", "--canaries", "300", "--epochs", "1", "-o", str(output), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "below the claim" in result.output and "NOT charged" in result.output
    data = json.loads(output.read_text())
    assert data["all_below_claim"] and [r["epsilon_target"] for r in data["runs"]] == [1.0, 4.0]
    for run in data["runs"]:
        assert run["audited_network"] == "critic" and run["reserved_coordinates"]
        assert run["bound"]["epsilon_lower_bound"] <= run["epsilon_audited_network"] <= run["epsilon_ledger_total"]
        assert run["bound"]["canaries"] == 300 and run["steps"] > 0
    # the release's split: each of 1,500 rows trains with probability 2/3 (1000 ± 18 sd; ±5 sd)
    assert abs(data["train_rows"] - 1000) < 5 * 18.3
    assert not list(tmp_path.glob(".audit.json.*"))  # no temporary file left beside it


def test_audit_refuses_a_bad_epsilon(tmp_path: Path, small_source: Path) -> None:
    result = runner.invoke(app, ["audit", "--config", str(_run_config(tmp_path, small_source)), "--epsilon", "0",
                                 "-o", str(tmp_path / "a.json"), "--quiet"])
    assert result.exit_code == 2 and "finite number > 0" in result.output
    assert not (tmp_path / "a.json").exists()
