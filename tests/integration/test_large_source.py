"""A source larger than ``max_rows`` end to end: streamed, validated whole, trained on a sample."""

from __future__ import annotations

from pathlib import Path

import duckdb

from synthgate.flows.config import RunConfig, SourceConfig
from synthgate.flows.demo import demo_contract
from synthgate.flows.release import run_release
from synthgate.governance.registry import Registry


def test_a_source_over_max_rows_is_streamed_and_sampled(
    prefect_harness: None, tmp_path: Path, small_source: Path
) -> None:
    cfg = RunConfig(
        contract=demo_contract(),
        source=SourceConfig(path=small_source),
        out=tmp_path / "out",
        epochs=1.0,
        batch_size=100,
        show_progress=False,
        max_rows=600,
        batch_rows=250,
        evaluation_rows=300,
    )
    report = run_release(cfg)  # released or blocked: the report either way
    rows = report["rows"]
    # Bernoulli(0.4) over 1,500 rows: 600 ± 19 (sd); ±5 sd
    assert rows["source"] == 1500 and abs(rows["sampled"] - 600) < 5 * 19
    assert rows["train"] + rows["holdout"] == rows["sampled"]
    assert rows["checked_train"] == 300 and rows["checked_synthetic"] == 300 and rows["checked_holdout"] <= 300
    notes = " ".join(report["notes"])
    assert "exceed max_rows = 600" in notes and "evaluation_rows = 300" in notes
    (pii_gate,) = [m for m in report["metrics"] if m["name"] == "pii_values_in_output"]
    assert pii_gate["details"]["rows_scanned"] == 1500  # every streamed row, not just the sample
    (run,) = Registry(cfg.registry_path).runs()
    assert run.data_fingerprint.startswith("hmac-sha256/stream:") and run.status in ("released", "blocked")
    assert not (cfg.out / "checkpoints" / report["run_id"]).exists()  # sampling key and checkpoint gone
    if report["released"]:
        with duckdb.connect(str(cfg.output_db), read_only=True) as con:
            n = con.execute("SELECT count(*) FROM adult_synthetic").fetchall()[0][0]
        assert n == rows["synthetic"]  # the model's DP row estimate, not the exact training count
