"""A table as a data steward brings it, through the CLI only: DATE columns, a 0/1 flag as the target,
a row index, free text, a zero-inflated amount and a column that always repeats another (issue 21).

`contract infer` drafts it, a reviewer replaces what was read off the rows (simulated below by
clearing the from_data marks: the bounds stay, they are generous here), `contract check` lists what
is left, and `run` releases or blocks it without crashing after ε was spent, printing the table's
cumulative spend.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import yaml
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.validation.contract import load_contract

runner = CliRunner()
N = 900


def steward_table(n: int = N, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    arrest = [dt.date(2019, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 1500, n)]
    severity = rng.integers(1, 6, n)
    flag = (rng.random(n) < 0.2 + 0.1 * severity).astype(np.int64)  # 0/1, related to severity
    return pl.DataFrame(
        {
            "rownames": np.arange(1, n + 1),  # R's row index
            "arrest_date": pl.Series(arrest, dtype=pl.Date),
            "filing_date": pl.Series(arrest, dtype=pl.Date),  # always the arrest date
            "severity": severity,
            "state": rng.choice(["CA", "NY", "TX", "WA"], n),
            "amount": np.where(rng.random(n) < 0.7, 0.0, np.round(rng.gamma(2.0, 400.0, n), 2)),
            # free text; one row in six says just "CA", a common token equal to a state category
            "remarks": [
                ("CA" if i % 6 == 0 else f"seen near {w} {int(k)}")
                for i, (w, k) in enumerate(
                    zip(rng.choice(["gate", "dock", "CA"], n), rng.integers(0, 400, n), strict=True)
                )
            ],
            "reoffended": flag,
        }
    )


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "steward.duckdb"
    frame = steward_table()
    with duckdb.connect(str(db)) as con:
        con.register("frame", frame.to_arrow())
        con.execute("CREATE TABLE cases AS SELECT * FROM frame")
    return db


def test_infer_and_check_point_out_what_the_steward_must_know(tmp_path: Path) -> None:
    db = _db(tmp_path)
    draft = tmp_path / "cases.yaml"
    result = runner.invoke(app, ["contract", "infer", "--db", str(db), "--table", "cases", "-o", str(draft)])
    assert result.exit_code == 0, result.output
    c = load_contract(draft)
    kinds = {n: col.kind for n, col in c.columns.items()}
    assert kinds == {
        "rownames": "identifier",
        "arrest_date": "datetime",
        "filing_date": "datetime",
        "severity": "integer",
        "state": "categorical",
        "amount": "continuous",
        "remarks": "pii",
        "reoffended": "boolean",
    }
    assert c.columns["filing_date"].derived is not None and c.columns["filing_date"].derived.source == "arrest_date"
    # budget hygiene: the README's default ε, a finite lifetime budget, both stated in the draft
    assert c.privacy.epsilon == 3.0 and c.privacy.lifetime_epsilon == 9.0
    assert "lifetime_epsilon" in draft.read_text().split("version:", 1)[0]

    checked = runner.invoke(app, ["contract", "check", str(draft), "--db", str(db)])
    assert checked.exit_code == 0, checked.output
    assert "still data-derived" in checked.output and "'amount'" in checked.output
    assert "derived: 'filing_date' = 'arrest_date'" in checked.output

    # A contract that learns both dates: check with the rows points out the duplicate and the fix.
    data = yaml.safe_load(draft.read_text())
    data["columns"]["filing_date"].pop("derived")
    learned = tmp_path / "learned.yaml"
    learned.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = runner.invoke(app, ["contract", "check", str(learned), "--db", str(db)])
    assert checked.exit_code == 0, checked.output
    assert "deterministic: 'filing_date' equals 'arrest_date' in every row" in checked.output
    assert "derived: {from: arrest_date, as: copy}" in checked.output

    bad = runner.invoke(app, ["contract", "check", str(tmp_path / "absent.yaml")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_a_steward_table_runs_end_to_end_through_the_cli(prefect_harness: None, tmp_path: Path) -> None:
    db = _db(tmp_path)
    draft = tmp_path / "cases.yaml"
    assert (
        runner.invoke(app, ["contract", "infer", "--db", str(db), "--table", "cases", "-o", str(draft)]).exit_code == 0
    )
    data = yaml.safe_load(draft.read_text())
    for col in data["columns"].values():  # the reviewer's step: bounds confirmed as public
        col["from_data"] = False
    data["target"] = "reoffended"  # a 0/1 column, drafted boolean: a classification task
    data["evaluation"] = {
        "shadow_models": 0,
        "attack_rows": 200,
        "mia_targets": 50,
        "anonymeter_attacks": 200,
        "inference_attacks": 200,
    }
    contract = tmp_path / "reviewed.yaml"
    contract.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "contract": str(contract),
                "source": {"db": str(db), "table": "cases"},
                "out": str(out),
                "epochs": 1,
                "batch_size": 300,
                "seed": 0,
            }
        )
    )
    result = runner.invoke(app, ["run", "--config", str(cfg), "--quiet"])
    # released (0) or blocked by a gate (3); never bad input after load or a crash after ε was spent
    assert result.exit_code in (0, 3), result.output
    assert "table 'cases': ε " in result.output and "lifetime budget 9, " in result.output
    # the figures are in the owner's evaluation report (owner-only), not in the public release folder
    report_dir = next((out / "owner").iterdir())
    report = yaml.safe_load((report_dir / "report.json").read_text())
    pii = next(m for m in report["metrics"] if m["name"] == "pii_values_in_output")
    assert pii["passed"] and pii["details"]["common_tokens_ignored"] == 1  # 'CA' in remarks and state
    efficacy = next(m for m in report["metrics"] if m["name"] == "ml_efficacy")
    assert efficacy["details"]["task"] == "classification"  # a 0/1 target, drafted boolean
    if result.exit_code == 0:  # released since round 2 session 14 (before, always blocked: this never ran)
        with duckdb.connect(str(out / "synthgate.duckdb"), read_only=True) as con:
            syn = con.sql("SELECT * FROM cases_synthetic").pl()
        assert "filing_date" in syn.columns and (syn["filing_date"] == syn["arrest_date"]).all()
        assert "rownames" not in syn.columns and "remarks" not in syn.columns
