"""Atomic publish: staging table + rename in one transaction; release folder renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from models.synthesizers.base import Synthesizer
from tasks.ingest import quote_ident
from validation.contract import Contract
from validation.report import write_report


def publish_table(db: Path, table: str, synthetic: pl.DataFrame, *, run_id: str) -> None:
    """Write to a staging table, then replace ``table`` with it in one transaction."""
    db.parent.mkdir(parents=True, exist_ok=True)
    staging = f"_staging_{table}_{run_id}"
    with duckdb.connect(str(db)) as con:
        con.register("synthetic_rows", synthetic.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {quote_ident(staging)} AS SELECT * FROM synthetic_rows")
        con.unregister("synthetic_rows")
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
            con.execute(f"ALTER TABLE {quote_ident(staging)} RENAME TO {quote_ident(table)}")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")
            raise


def write_folder_atomically(
    folder: Path,
    files: dict[str, Any],
    report: dict[str, Any],
    model: Synthesizer | None,
    commit: Callable[[], None] | None = None,
) -> None:
    """Build the folder under a temporary name beside it, run ``commit``, then rename it in."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if model is not None:
            model.save(tmp / "model.pt")
        write_report(report, tmp)
        if commit is not None:
            commit()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _artifacts(report: dict[str, Any]) -> None:
    evaluation = report.get("kind") == "evaluation"
    status = ("PASSED" if report["released"] else "FAILED") if evaluation else (
        "RELEASED" if report["released"] else "BLOCKED"
    )
    p = report["privacy"]
    if p.get("epsilon_spent") is None:
        spent = "No privacy ledger: the synthetic table was made outside synthgate; no DP claim."
    else:
        spent = f"ε spent {float(p['epsilon_spent']):.3f} of {p['epsilon_budget']} (δ = {p['delta']:g}, {p['accountant']})."
    what = "evaluation" if evaluation else "release"
    lines = [f"# synthgate {what} `{report.get('run_id', '')}`: **{status}**", "", spent, ""]
    lines += [f"- {r}" for r in report.get("decision", {}).get("reasons", [])]
    create_markdown_artifact("\n".join(lines), key=f"{what}-summary", description="synthgate decision")
    create_table_artifact(
        [
            {
                "gate": g["name"],
                "value": round(g["value"], 4) if g["value"] is not None else None,
                "threshold": g["threshold"],
                "passed": g["passed"],
            }
            for g in report["gates"]
        ],
        key="evaluation-gates" if evaluation else "release-gates",
        description="synthgate gates",
    )


@task(name="publish_release", cache_policy=NO_CACHE, persist_result=False)
def publish_release(
    *,
    report: dict[str, Any],
    synthetic: pl.DataFrame,
    model: Synthesizer,
    contract: Contract,
    ledger: dict[str, Any],
    out: Path,
    output_db: Path,
    output_table: str,
    run_id: str,
) -> Path:
    """Released: table + release folder. Blocked: only the report, under blocked/; nothing published."""
    files = {"contract.yaml": contract.to_yaml()}
    if report["released"]:
        files["ledger.json"] = json.dumps(ledger, indent=2)
        folder = out / "releases" / run_id
        write_folder_atomically(
            folder, files, report, model,
            commit=lambda: publish_table(output_db, output_table, synthetic, run_id=run_id),
        )
    else:
        folder = out / "blocked" / run_id
        write_folder_atomically(folder, files, report, None)
    _artifacts(report)
    return folder


@task(name="write_evaluation", cache_policy=NO_CACHE, persist_result=False)
def write_evaluation(report: dict[str, Any], out: Path) -> Path:
    """``synthgate evaluate``: report.json and report.html into ``out``; no table is published."""
    out.mkdir(parents=True, exist_ok=True)
    write_report(report, out)
    _artifacts(report)
    return out
