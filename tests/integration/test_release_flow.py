"""The release flow end to end on a small Adult sample, under prefect_test_harness."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
import torch
from prefect.client.orchestration import get_client

from synthgate.errors import ContractViolation
from synthgate.flows.config import RunConfig, SourceConfig
from synthgate.flows.demo import demo_contract
from synthgate.flows.release import release_flow, run_release
from synthgate.governance.registry import Registry


def _config(tmp_path: Path, source: Path, **kw: object) -> RunConfig:
    return RunConfig(
        contract=demo_contract(),
        source=SourceConfig(path=source),
        out=tmp_path / "out",
        epochs=1.0,
        batch_size=250,
        show_progress=False,
        seed=0,
        **kw,
    )


def _tables(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with duckdb.connect(str(db), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def test_flow_end_to_end_writes_a_complete_report(prefect_harness: None, tmp_path: Path, small_source: Path) -> None:
    cfg = _config(tmp_path, small_source)
    report = run_release(cfg)  # released or blocked: the report either way
    folder = Path(report["folder"])
    on_disk = json.loads((folder / "report.json").read_text())  # the public report
    owner = json.loads((Path(report["owner_report"]["folder"]) / "report.json").read_text())
    assert on_disk["released"] == owner["released"] == report["released"]
    assert on_disk["kind"] == "public" and owner["kind"] == "owner"
    for key in ("gates", "privacy", "rows", "versions"):
        assert key in on_disk
    for key in ("gates", "metrics", "privacy", "rows", "timings", "versions"):
        assert key in owner
    assert "train" not in on_disk["rows"] and "holdout" not in on_disk["rows"]
    rows = owner["rows"]
    # secret per-row coins: 1,500 rows, each to the holdout with probability 1/3 (500 ± 18 sd; ±5 sd)
    assert rows["train"] + rows["holdout"] == 1500 and abs(rows["holdout"] - 500) < 5 * 18.3
    if report["released"]:  # the default length: the model's DP row estimate (issue 18 item 2)
        model = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        assert rows["synthetic"] == round(model["codec"]["n_estimate"]) != rows["train"]
    p = on_disk["privacy"]
    assert 0 < p["epsilon_spent"] <= p["epsilon_budget"] == 3.0
    assert [e["mechanism"] for e in p["ledger"]] == [
        "codec-histograms",
        "codec-coarse-histograms",  # a small table: its numeric bins are noise-bound (ctgan numeric_refine)
        "marginal-selection",
        "marginal-measurements",
        "dp-sgd-critic",
    ]
    assert {g["name"] for g in on_disk["gates"]} >= {
        "dcr_share",
        "identical_match_share",
        "column_shapes",
        "pair_trends",
        "ml_efficacy",
        "privacy_budget",
    }
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"adult-release-summary", "adult-release-gates", "adult-release-report"} <= keys
    if report["released"]:
        assert folder.parent.name == "releases" and (folder / "model.pt").exists()
        assert "adult_synthetic" in _tables(cfg.output_db)
    else:  # blocked: the report names the failed gates and nothing is published
        assert folder.parent.name == "blocked" and on_disk["decision"]["reasons"] and owner["decision"]["reasons"]
        assert not (folder / "model.pt").exists()
        assert "adult_synthetic" not in _tables(cfg.output_db)


def test_contract_violation_trains_nothing_and_writes_nothing(
    prefect_harness: None, tmp_path: Path, small_source: Path
) -> None:
    bad = pl.read_parquet(small_source)
    bad = bad.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(-5).otherwise(pl.col("age")).alias("age"))
    bad_path = tmp_path / "bad.parquet"
    bad.write_parquet(bad_path)
    cfg = _config(tmp_path, bad_path)
    with pytest.raises(ContractViolation) as info:
        release_flow(cfg)
    assert "age" in str(info.value) and "-5" not in str(info.value)
    # Nothing published or trained; only the audit trail records the invalid run (no ε charged).
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"registry.duckdb"}
    (record,) = Registry(cfg.registry_path).runs()
    assert (record.status, record.epsilon_charged, record.training_started) == ("invalid", 0.0, False)
    assert "age" in record.error and "-5" not in record.error


def test_a_contract_unit_reduces_people_to_one_row_each_through_the_cli(
    prefect_harness: None, tmp_path: Path, small_source: Path
) -> None:
    """A longitudinal table (Adult rows grouped into people of 1 to 5 rows, generated): with
    `unit: person_id` the run trains and holds out one row per person and says so in its report."""
    import numpy as np
    import yaml
    from typer.testing import CliRunner

    from synthgate.flows.cli import app

    rows = pl.read_parquet(small_source)
    sizes = np.random.default_rng(11).integers(1, 6, size=rows.height)
    person = np.repeat(np.arange(rows.height), sizes)[: rows.height]
    source = tmp_path / "visits.parquet"
    rows.with_columns(pl.Series("person_id", [f"p{i}" for i in person])).write_parquet(source)
    n_people = len(set(person.tolist()))
    assert n_people < rows.height  # several rows per person

    contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    contract["columns"]["person_id"] = {"kind": "identifier"}
    contract["unit"] = "person_id"
    contract["evaluation"] = {"shadow_models": 0}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump(
            {
                "contract": str(tmp_path / "c.yaml"),
                "source": {"path": str(source)},
                "out": str(out),
                "epochs": 1.0,
                "batch_size": 100,
            }
        )
    )
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "run.yaml"), "--quiet"])
    assert result.exit_code in (0, 3), result.output
    (report_path,) = (out / "owner").rglob("report.json")  # the owner's report holds the row counts
    report = json.loads(report_path.read_text())
    assert any("unit of privacy: add/remove one person (unit column 'person_id')" in n for n in report["notes"])
    assert report["rows"]["train"] + report["rows"]["holdout"] == n_people
