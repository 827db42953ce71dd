"""Runs you can watch in Prefect: flow runs named ``<table>-<run_id>`` and tagged, task runs named by
stage, aggregate-only stage logs, per-table artifact keys, and a blocked ``synthgate run`` that ends in
the Failed state "Blocked" (exit code 3, nothing published)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler
from prefect.types.names import LOWERCASE_LETTERS_NUMBERS_AND_DASHES_ONLY_REGEX

import synthgate.flows.release as release_module
from synthgate.errors import BudgetExceeded, ReleaseBlocked
from synthgate.flows.config import RunConfig, SourceConfig
from synthgate.flows.demo import demo_contract, demo_parquet
from synthgate.flows.release import release_flow, run_release
from synthgate.governance.registry import Registry

BLOCKING_GATES = {  # every gate lenient but column shapes, which no model meets exactly: the run is blocked
    "max_dcr_share": 1.0,
    "identical_match_tolerance": 1.0,
    "max_mia_auc": 1.0,
    "max_mia_tpr_at_1pct_fpr": 1.0,
    "max_anonymeter_risk": 1.0,
    "min_column_shapes": 1.0,
    "min_pair_trends": 0.0,
    "min_three_way_ratio": 0.0,
    "max_detection_auc": 1.0,
    "min_tstr_ratio": 0.0,
}


def _flow_run(name: str) -> Any:
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return run


def _config(tmp_path: Path) -> RunConfig:
    # The flow body is replaced in the fast tests below: the source is never read.
    return RunConfig(
        contract=demo_contract(),
        source=SourceConfig(path=tmp_path / "unused.parquet"),
        out=tmp_path / "out",
        show_progress=False,
    )


SECRET = "owner-only-figure-8675309"  # stands for the owner's figures in the report a run returns


def _fake_run(released: bool) -> Any:
    def run(config: RunConfig, contract: Any, run_id: str, epsilon: float) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "table": contract.table,
            "released": released,
            "failed_gates": [] if released else ["column_shapes"],
            "folder": str(config.out / "x"),
            "rows": {"train": SECRET},
        }

    return run


def _stored_results() -> bytes:
    """Every file in Prefect's local result storage (where it pickles results and raised errors)."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    root = Path(PREFECT_LOCAL_STORAGE_PATH.value())
    out = b""
    for path in (p for p in root.rglob("*") if p.is_file()) if root.exists() else ():
        raw = path.read_bytes()
        try:
            out += base64.b64decode(raw, validate=False)  # Prefect's pickle serializer writes base64
        except binascii.Error:
            pass
        out += raw
    return out


def test_a_released_run_is_named_by_table_and_run_id_tagged_and_completed(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(release_module, "_run", _fake_run(True))
    report = release_flow(_config(tmp_path))
    run = _flow_run(f"adult-{report['run_id']}")
    assert run.state.type.value == "COMPLETED"
    assert {"table:adult", "model:ctgan", "epsilon:3", "outcome:released"} <= set(run.tags)


def test_a_blocked_run_ends_in_the_failed_state_blocked_and_run_release_still_returns_its_report(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(release_module, "_run", _fake_run(False))
    blocked = r"was BLOCKED; nothing published. Failed gates: \['column_shapes'\]"
    with pytest.raises(ReleaseBlocked, match=blocked) as info:
        release_flow(_config(tmp_path))  # the flow itself: its state's error, carrying the report
    assert info.value.report is not None and info.value.report["released"] is False
    state = release_flow(_config(tmp_path), return_state=True)
    assert (state.type.value, state.name) == ("FAILED", "Blocked") and "BLOCKED" in state.message

    report = run_release(_config(tmp_path))  # what the CLI, the API and the deployment call
    assert report["released"] is False and report["failed_gates"] == ["column_shapes"]
    run = _flow_run(f"adult-{report['run_id']}")
    assert (run.state.type.value, run.state.name) == ("FAILED", "Blocked")
    assert "Failed gates: ['column_shapes']" in run.state.message
    assert {"table:adult", "model:ctgan", "epsilon:3", "outcome:blocked"} <= set(run.tags)
    assert not any(t.startswith("outcome:released") for t in run.tags)
    # The Blocked state is returned, not raised: Prefect pickles a raised error into its result storage
    # (write_result=True whatever persist_result says), and the report must never land there.
    assert SECRET.encode() not in _stored_results()
    assert SECRET not in run.state.message

    @flow(persist_result=False)
    def raises() -> None:  # the control: what the same storage holds when a flow raises
        raise ValueError(f"{SECRET}-control")

    raises(return_state=True)
    assert f"{SECRET}-control".encode() in _stored_results()


def test_a_refused_run_is_tagged_refused_and_raises_as_before(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any) -> dict[str, Any]:
        raise BudgetExceeded("run refused before reading a row (test)")

    monkeypatch.setattr(release_module, "_run", refuse)
    state = release_flow(_config(tmp_path), return_state=True)
    assert state.type.value == "FAILED"
    with pytest.raises(BudgetExceeded, match="refused before reading a row"):
        run_release(_config(tmp_path))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert re.fullmatch(r"adult-\d{8}T\d{6}Z-[0-9a-f]{6}", run.name), run.name
    assert "outcome:refused" in run.tags


def _blocking_run_config(tmp_path: Path) -> tuple[Path, int]:
    contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    contract["evaluation"] = {"shadow_models": 0, "attack_rows": 50, "anonymeter_attacks": 50, "inference_attacks": 50}
    contract["gates"] = {**contract.get("gates", {}), **BLOCKING_GATES}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    n_source = 600
    pl.read_parquet(demo_parquet()).sample(n=n_source, seed=5).write_parquet(tmp_path / "source.parquet")
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        yaml.safe_dump(
            {
                "contract": str(tmp_path / "c.yaml"),
                "source": {"path": str(tmp_path / "source.parquet")},
                "out": str(tmp_path / "out"),
                "epochs": 1,
                "batch_size": 100,
                "n_synthetic": 250,
                "evaluation_rows": 300,
            }
        )
    )
    return run_yaml, n_source


def test_a_blocked_synthgate_run_exits_3_writes_no_release_and_its_flow_run_shows_it(
    prefect_harness: None, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from synthgate.flows.cli import EXIT_BLOCKED, app

    run_yaml, n_source = _blocking_run_config(tmp_path)
    result = CliRunner().invoke(app, ["run", "--config", str(run_yaml), "--quiet"])
    assert result.exit_code == EXIT_BLOCKED == 3, result.output
    assert "BLOCKED" in result.output
    out = tmp_path / "out"
    (record,) = Registry(out / "registry.duckdb").runs()
    assert record.status == "blocked"
    assert not (out / "releases").exists() and (out / "blocked" / record.run_id / "report.html").is_file()

    # The flow run: named <table>-<run_id>, tagged, and red.
    run = _flow_run(f"adult-{record.run_id}")
    assert (run.state.type.value, run.state.name) == ("FAILED", "Blocked")
    assert "BLOCKED" in run.state.message and "column_shapes" in run.state.message
    assert {"table:adult", "model:ctgan", "epsilon:3", "outcome:blocked"} <= set(run.tags)

    with get_client(sync_client=True) as client:
        # Task runs named by stage, carrying the run's tags.
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        names = {t.name for t in task_runs}
        assert {
            "validate the table against the contract",
            "split off the holdout (secret coins)",
            "train the DP synthesizer",
            "sample synthetic rows",
            "privacy checks",
            "fidelity checks",
            "gate decision",
            "publish (or write the blocked report)",
        } <= names, names
        assert all("table:adult" in t.tags for t in task_runs)

        # Artifacts: keyed per table, valid keys, attached to this flow run, one a link to the public report.
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        keys = {a.key for a in artifacts}
        assert keys == {"adult-release-summary", "adult-release-gates", "adult-release-report"}
        assert all(re.fullmatch(LOWERCASE_LETTERS_NUMBERS_AND_DASHES_ONLY_REGEX, k) for k in keys)
        (link,) = [a for a in artifacts if a.key == "adult-release-report"]
        report_uri = (out / "blocked" / record.run_id / "report.html").resolve().as_uri()
        assert report_uri in str(link.data)
        (gates,) = [a for a in artifacts if a.key == "adult-release-gates"]
        shapes = [row for row in json.loads(gates.data) if row["gate"] == "column_shapes"]
        assert shapes and shapes[0]["outcome"] == "failed"

        # Stage logs through the run logger: aggregates only.
        APILogHandler().flush()  # send the batched log records now
        logs = [
            entry.message
            for entry in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        ]
    text = "\n".join(logs)
    for expected in (
        "table 'adult', model ctgan",
        "every contract expectation met",
        "trained ctgan with DP: ε spent",
        "sampled 250 synthetic rows",
        "checks 2/4: membership attacks done",
        "gate column_shapes: failed (must be >= 1)",
        "BLOCKED: nothing published",
    ):
        assert expected in text, (expected, text)
    # No exact private size: the source rows, and the train and holdout counts from the owner's report.
    owner = json.loads((Path(record.owner_folder) / "report.json").read_text())
    for private in {n_source, owner["rows"]["train"], owner["rows"]["holdout"]}:
        assert not re.search(rf"(?<![\w.]){private}(?![\w.])", text), (private, text)


def test_the_scheduled_parent_run_and_an_audit_run_are_named_like_a_release(
    prefect_harness: None, tmp_path: Path, small_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment's parent run: ``<table>-<run_id>-scheduled`` beside its release subflow
    ``<table>-<run_id>``, tagged with the outcome; an audit run: ``<table>-audit-<time>-<hex>``."""
    import synthgate.flows.audit as audit_module
    from synthgate.flows.audit import AuditConfig, audit_flow
    from synthgate.flows.deployments import scheduled_release

    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        yaml.safe_dump(
            {"contract": str(demo_contract()), "source": {"path": str(small_source)}, "out": str(tmp_path / "out")}
        )
    )

    def fake(released: bool) -> Any:
        inner = _fake_run(released)
        return lambda *args: {**inner(*args), "output": None}  # the keys the parent returns

    monkeypatch.setattr(release_module, "_run", fake(True))
    out = scheduled_release(str(run_yaml))
    parent, child = _flow_run(f"adult-{out['run_id']}-scheduled"), _flow_run(f"adult-{out['run_id']}")
    assert parent.state.type.value == child.state.type.value == "COMPLETED"
    assert {"table:adult", "kind:scheduled", "outcome:released"} <= set(parent.tags)
    with get_client(sync_client=True) as client:  # the release is the parent's subflow
        assert client.read_task_run(child.parent_task_run_id).flow_run_id == parent.id

    monkeypatch.setattr(release_module, "_run", fake(False))
    state = scheduled_release(str(run_yaml), return_state=True)
    assert state.type.value == "FAILED"
    with get_client(sync_client=True) as client:
        blocked = client.read_flow_run(state.state_details.flow_run_id)
    assert re.fullmatch(r"adult-\d{8}T\d{6}Z-[0-9a-f]{6}-scheduled", blocked.name), blocked.name
    assert "outcome:blocked" in blocked.tags and "outcome:released" not in blocked.tags

    # the audit: the real flow over a real source, the canary fit replaced (the test is on naming)
    monkeypatch.setattr(audit_module, "audit_one", lambda *_, **__: {"below_claim": True})
    result = audit_flow(
        AuditConfig(
            contract=demo_contract(), source=SourceConfig(path=small_source), epsilons=[1.0], show_progress=False
        )
    )
    assert re.fullmatch(r"audit-\d{8}T\d{6}Z-[0-9a-f]{6}", result["run_id"]), result["run_id"]
    run = _flow_run(f"adult-{result['run_id']}")
    assert run.state.type.value == "COMPLETED"
    assert {"table:adult", "model:ctgan", "kind:audit"} <= set(run.tags)
