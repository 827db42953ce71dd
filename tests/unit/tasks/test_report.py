"""The run's report pieces the release flow used to build inline (tasks/report.py) and its log lines
(tasks/runlog.py): what each holds, and that a log line never names a private count."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from synthgate.flows.demo import demo_contract
from synthgate.models.ledger import PrivacyLedger
from synthgate.tasks.config import RunConfig, SourceConfig
from synthgate.tasks.evaluate import membership_contract
from synthgate.tasks.ingest import SampledTable
from synthgate.tasks.report import evaluation_notes, release_notes, release_report, release_rows
from synthgate.tasks.runlog import (
    blocked_message,
    published_lines,
    run_start_line,
    sample_line,
    split_line,
    streamed_line,
    training_line,
)
from synthgate.validation.contract import Contract, load_contract, parse_contract
from synthgate.validation.results import GateDecision, MetricResult


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(demo_contract())


def load_contract_with_pii(contract: Contract) -> Contract:
    """The demo contract with one pii column (dropped before training)."""
    data = yaml.safe_load(contract.to_yaml())
    data["columns"]["email"] = {"kind": "pii"}
    return parse_contract(data)


def _sampled(n_rows: int, kept: int) -> SampledTable:
    return SampledTable(
        sample=pl.DataFrame({"a": range(kept)}), n_rows=n_rows, fraction=0.25, validation=None, fingerprint="f"
    )  # type: ignore[arg-type]  (the report reads no validation)


def test_release_rows_add_a_streamed_source_and_the_scored_subsamples() -> None:
    assert release_rows((70, 30, 90), (70, 30, 90), None) == {"train": 70, "holdout": 30, "synthetic": 90}
    rows = release_rows((70, 30, 90), (50, 30, 50), _sampled(400, 100))
    assert list(rows) == [
        "source",
        "sampled",
        "train",
        "holdout",
        "synthetic",
        "checked_train",
        "checked_holdout",
        "checked_synthetic",
    ]
    assert (rows["source"], rows["sampled"], rows["checked_train"], rows["checked_synthetic"]) == (400, 100, 50, 50)


def test_release_notes_say_what_the_run_did(contract: Contract) -> None:
    summary = {"steps": 12, "noise_multiplier": 1.5}
    base = release_notes(
        contract, summary, sets=(70, 30, 90), checked=(70, 30, 90), sampled=None, max_rows=1000, evaluation_rows=500
    )
    assert base[0] == "model ctgan: steps=12, noise_multiplier=1.5"
    assert "does not determine them" in base[1] and base[2] == f"unit of privacy: {contract.privacy_unit}."
    assert len(base) == 3  # the demo contract drops no column, the source was loaded whole, the checks scored all
    full = release_notes(
        contract,
        summary,
        sets=(70, 30, 90),
        checked=(50, 30, 50),
        sampled=_sampled(400, 100),
        max_rows=100,
        evaluation_rows=50,
    )
    assert len(full) == 5
    assert "source's 400 rows exceed max_rows = 100" in full[3] and "probability 0.25" in full[3]
    assert "evaluation_rows = 50" in full[4] and "(train 50, holdout 30, synthetic 50)" in full[4]
    dropped = load_contract_with_pii(contract)
    notes = release_notes(
        dropped, summary, sets=(1, 1, 1), checked=(1, 1, 1), sampled=None, max_rows=1, evaluation_rows=1
    )
    assert notes[3] == "identifier/pii columns dropped, never modelled: ['email']"


def test_release_report_and_the_public_decision_come_from_one_decision(contract: Contract, tmp_path: Path) -> None:
    config = RunConfig(contract=demo_contract(), source=SourceConfig(path=tmp_path / "x.parquet"), out=tmp_path)
    gate = MetricResult(name="dcr_share", value=0.4, threshold=0.6, passed=True, direction="max", kind="privacy")
    report, public = release_report(
        run_id="r1",
        contract=contract,
        config=config,
        decision=GateDecision(released=True, reasons=[]),
        results=[gate],
        ledger=PrivacyLedger(contract.privacy.delta).to_dict(),
        training_summary={"steps": 3},
        rows={"train": 70, "holdout": 30, "synthetic": 90},
        notes=["n"],
        timings={"load": 0.1},
        versions={"python": "3.11"},
        output_table="adult_synthetic",
        registry_path=tmp_path / "registry.duckdb",
    )
    assert report["released"] and public["released"]
    assert report["output"] == {"db": str(config.output_db), "table": "adult_synthetic"}
    assert report["registry"]["path"] == str(tmp_path / "registry.duckdb") and report["registry"]["code_version"]
    assert report["rows"]["train"] == 70 and "70" not in str(public)  # exact private counts stay in the owner's report
    assert report["notes"] == ["n"]


def test_evaluation_notes_and_the_membership_contract(contract: Contract) -> None:
    assert "shadow-model attack not run" in evaluation_notes(contract, shadow=False)[1]
    assert f"at ε = {contract.privacy.epsilon}" in evaluation_notes(contract, shadow=True)[1]
    assert membership_contract(contract, shadow=True) is contract
    assert contract.evaluation.shadow_models > 0
    assert membership_contract(contract, shadow=False).evaluation.shadow_models == 0
    assert membership_contract(contract, shadow=False).evaluation.mia_targets == contract.evaluation.mia_targets


def test_log_lines_name_settings_and_estimates_never_private_sizes(contract: Contract) -> None:
    assert run_start_line("r1", contract, 1.0, resumed=True) == (
        f"run r1 (resumed): table 'adult', model ctgan, ε 1 of the contract's 3, δ {contract.privacy.delta:g}"
    )
    assert "(sizes private)" in streamed_line(250, 600) and "max_rows = 600" in streamed_line(250, 600)
    assert split_line(None, 1 / 3).startswith("holdout split: each row to the holdout with probability 0.333333")
    assert split_line("patient_id", 0.5).startswith("one row per person (unit column 'patient_id'); ")
    line = training_line(
        "ctgan",
        {"steps": 40, "sample_rate": 0.0123456, "noise_multiplier": 1.1, "seconds": 9.5, "train_rows": 777},
        epsilon_spent=2.98712,
        epsilon=3.0,
        delta=1e-6,
    )
    assert line == (
        "trained ctgan with DP: ε spent 2.987 of 3 (δ 1e-06); steps=40, sample_rate=0.01235, noise_multiplier=1.1"
    )
    assert "777" not in line and "9.5" not in line  # only the DP facts that decision.json publishes
    assert sample_line(90, asked=True) == (
        "sampled 90 synthetic rows (the length asked for by n_synthetic; sampling reads no private row)"
    )
    assert "the model's DP estimate" in sample_line(90, asked=False)


def test_published_lines_list_each_gate_then_the_outcome(tmp_path: Path) -> None:
    public = {
        "gates": [{"name": "dcr_share", "threshold": 0.6, "direction": "max", "passed": False, "outcome": "fail"}],
        "failed_gates": ["dcr_share"],
    }
    blocked = published_lines(public, tmp_path, released=False, output_table="t", output_db=tmp_path / "o.duckdb")
    assert blocked == [
        "gate dcr_share: failed (must be <= 0.6)",
        f"BLOCKED: nothing published; failed gates ['dcr_share']; public report {tmp_path}/report.html",
    ]
    released = published_lines(
        {"gates": [], "failed_gates": []}, tmp_path, released=True, output_table="t", output_db=tmp_path / "o.duckdb"
    )
    assert released == [f"RELEASED: table 't' in {tmp_path / 'o.duckdb'}; public report {tmp_path}/report.html"]
    message = blocked_message({"run_id": "r1", "table": "adult", "failed_gates": ["dcr_share"], "folder": "f"})
    assert message == (
        "release r1 of table 'adult' was BLOCKED; nothing published. Failed gates: ['dcr_share']. Report: f/report.html"
    )
