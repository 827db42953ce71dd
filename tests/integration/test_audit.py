"""`synthgate audit` end to end: a run config in, a results JSON and a verdict out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.flows.demo import demo_contract

runner = CliRunner()


def _run_config(tmp: Path, source: Path) -> Path:
    contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    (tmp / "contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    cfg = tmp / "run.yaml"
    cfg.write_text(yaml.safe_dump({"contract": "contract.yaml", "source": {"path": str(source)}, "out": "out"}))
    return cfg


def _model_options(tmp: Path, cfg: Path, **options: object) -> Path:
    contract = yaml.safe_load((tmp / "contract.yaml").read_text(encoding="utf-8"))
    contract["model_options"] = {**(contract.get("model_options") or {}), **options}
    (tmp / "contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    return cfg


def test_audit_writes_results_and_passes_an_honest_fit(
    prefect_harness: None, tmp_path: Path, small_source: Path
) -> None:
    output = tmp_path / "audit.json"
    result = runner.invoke(
        app,
        [
            "audit",
            "--config",
            str(_run_config(tmp_path, small_source)),
            "--epsilon",
            "1",
            "--epsilon",
            "4",
            "--canaries",
            "300",
            "--epochs",
            "1",
            "--clipping",
            "both",
            "-o",
            str(output),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "below the claim" in result.output and "NOT charged" in result.output
    data = json.loads(output.read_text())
    assert data["all_below_claim"] and data["clipping"] == "both"
    # each ε on each path: the per-sample audit, then the ghost path that ctgan's releases use
    assert [(r["clipping"], r["epsilon_target"]) for r in data["runs"]] == [
        ("per-sample", 1.0),
        ("per-sample", 4.0),
        ("ghost", 1.0),
        ("ghost", 4.0),
    ]
    for run in data["runs"]:
        assert run["audited_network"] == "critic" and run["reserved_coordinates"]
        assert run["bound"]["epsilon_lower_bound"] <= run["epsilon_audited_network"] <= run["epsilon_ledger_total"]
        assert run["bound"]["canaries"] == 300 and run["steps"] > 0
    # no exact row count in the output: each run gives the codec's DP estimate of the training rows, and
    # the release's split trains each of 1,500 rows with probability 2/3 (1000 ± 18.3 sd): within 5 sd of
    # both sources of spread
    assert "train_rows" not in data
    for run in data["runs"]:
        sd = math.hypot(18.3, run["train_rows_estimate_sd"])
        assert run["train_rows_estimate_sd"] > 0 and abs(run["train_rows_estimate"] - 1000) < 5 * sd
    assert not list(tmp_path.glob(".audit.json.*"))  # no temporary file left beside it


def test_audit_refuses_a_bad_epsilon(tmp_path: Path, small_source: Path) -> None:
    result = runner.invoke(
        app,
        [
            "audit",
            "--config",
            str(_run_config(tmp_path, small_source)),
            "--epsilon",
            "0",
            "-o",
            str(tmp_path / "a.json"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "finite number > 0" in result.output
    assert not (tmp_path / "a.json").exists()


def test_audit_defaults_to_the_release_path_and_refuses_ghost_for_a_per_sample_model(
    prefect_harness: None, tmp_path: Path, small_source: Path
) -> None:
    cfg = _run_config(tmp_path, small_source)
    output = tmp_path / "audit.json"
    result = runner.invoke(
        app,
        [
            "audit",
            "--config",
            str(cfg),
            "--epsilon",
            "2",
            "--canaries",
            "100",
            "--epochs",
            "0.5",
            "-o",
            str(output),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(output.read_text())
    assert data["clipping"] == "release" and [r["clipping"] for r in data["runs"]] == ["ghost"]  # ctgan's default
    _model_options(tmp_path, cfg, clipping="per-sample")
    result = runner.invoke(
        app,
        [
            "audit",
            "--config",
            str(cfg),
            "--epsilon",
            "2",
            "--canaries",
            "100",
            "--clipping",
            "ghost",
            "-o",
            str(tmp_path / "g.json"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "does not clip by ghost clipping" in result.output, result.output
    assert not (tmp_path / "g.json").exists()
    result = runner.invoke(
        app, ["audit", "--config", str(cfg), "--clipping", "none", "-o", str(tmp_path / "n.json"), "--quiet"]
    )
    assert result.exit_code == 2 and "release" in result.output and not (tmp_path / "n.json").exists()
