"""Atomic publish: staging table + rename in one transaction; release folder renamed into place.

A run writes two things: the public release folder (synthetic table, model, contract, ledger,
decision and a public report whose every figure is DP) and, owner-only and elsewhere, the owner's
evaluation report (every figure computed on private rows). See validation/public_report.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from synthgate.errors import OutputViolation
from synthgate.governance.locks import DEFAULT_LOCK_TIMEOUT_S, connect
from synthgate.governance.registry import file_hashes
from synthgate.models.synthesizers.base import Synthesizer
from synthgate.tasks.ingest import quote_ident
from synthgate.validation.contract import Contract
from synthgate.validation.public_report import (
    DECISION_FILE,
    SYNTHETIC_FILE,
    build_public_report,
    write_owner_report,
    write_public_report,
)
from synthgate.validation.report import write_report

PROVENANCE = "_synthgate_published"


def check_output_rows(synthetic: pl.DataFrame, contract: Contract) -> None:
    """Re-validate the synthetic rows against the contract's modelled columns, just before the
    publish transaction: whatever a model or a sampler did, nothing outside the contract is published.
    The rows are the model's (DP) output, so the failure lines may describe them."""
    from synthgate.validation.expectations import validate_frame

    modelled = contract.model_copy(update={"columns": {c: contract.columns[c] for c in contract.modelled_columns}})
    report = validate_frame(synthetic, modelled, identifiers=False)
    if not report.success:
        raise OutputViolation(
            f"the synthetic table breaks its contract in {len(report.failures)} check(s), so nothing was "
            f"published:\n{report.summary()}\nThis is a synthesizer fault; report it with the run id."
        )


def publish_table(
    db: Path, table: str, synthetic: pl.DataFrame, *, run_id: str, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> None:
    """Write to a staging table, then replace ``table`` with it in one transaction.

    The same transaction records in ``_synthgate_published`` which run the table now holds, so
    the database itself says which release folder describes it. A crash anywhere before COMMIT
    leaves the previous table (and its provenance row) as they were; a leftover staging table is
    dropped by the next publish. Another process holding the file makes this wait up to
    ``lock_timeout_s``, then fail with DatabaseLocked having changed nothing.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    staging = f"_staging_{table}_{run_id}"
    with connect(db, timeout_s=lock_timeout_s) as con:
        for (old,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)", [f"_staging_{table}_"]
        ).fetchall():
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(old)}")
        con.register("synthetic_rows", synthetic.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {quote_ident(staging)} AS SELECT * FROM synthetic_rows")
        con.unregister("synthetic_rows")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {PROVENANCE} (table_name VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, "
            "published_at TIMESTAMP NOT NULL, n_rows BIGINT NOT NULL)"
        )
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
            con.execute(f"ALTER TABLE {quote_ident(staging)} RENAME TO {quote_ident(table)}")
            con.execute(
                f"INSERT OR REPLACE INTO {PROVENANCE} VALUES (?, ?, now()::TIMESTAMP, ?)",
                [table, run_id, synthetic.height],
            )
            _before_commit()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")
            raise


def _before_commit() -> None:
    """Fault-injection point for tests (a crash between staging and publish); does nothing."""


def published_run(db: Path, table: str) -> str | None:
    """The run whose synthetic rows ``table`` holds, from the provenance row (None if never published)."""
    if not db.exists():
        return None
    with connect(db, read_only=True) as con:
        (has_provenance,) = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [PROVENANCE]
        ).fetchone() or (0,)
        if not has_provenance:
            return None
        row = con.execute(f"SELECT run_id FROM {PROVENANCE} WHERE table_name = ?", [table]).fetchone()
    return row[0] if row else None


def write_folder_atomically(
    folder: Path,
    files: dict[str, Any],
    model: Synthesizer | None,
    commit: Callable[[], None] | None = None,
    synthetic: pl.DataFrame | None = None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Build the release folder under a temporary name beside it, run ``commit``, then rename it in.

    ``files``: name -> text. The folder's public report is then built from the folder's own files
    (``build_public_report``), so it holds nothing they do not, and anyone can rebuild it from the
    folder byte for byte. Returns the SHA-256 of each file, taken before the rename (the registry
    records them, and a folder changed afterwards is refused when used: ``Registry.verify_folder``),
    and the public report.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if model is not None:
            model.save(tmp / "model.pt")
        if synthetic is not None:
            synthetic.write_parquet(tmp / SYNTHETIC_FILE)
        public = build_public_report(tmp)
        write_public_report(public, tmp)
        hashes = file_hashes(tmp)
        if commit is not None:
            commit()
        os.replace(tmp, folder)
        return hashes, public
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _outcome(gate: Mapping[str, Any]) -> str:
    outcome = gate.get("outcome")
    if outcome in ("pass", "fail", "inconclusive"):
        return "failed" if outcome == "fail" else str(outcome)
    return "pass" if gate.get("passed") else "failed"


def gate_artifact_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Prefect table artifact's rows: each gate's rule and outcome (pass, failed, inconclusive),
    the same as the public report and the CLI; never a figure computed on rows."""
    return [
        {
            "gate": g["name"],
            "must be": f"{'<=' if g.get('direction') == 'max' else '>='} {float(g['threshold']):.4g}",
            "outcome": _outcome(g),
            "passed": g["passed"],
        }
        for g in report["gates"]
    ]


def artifact_key(table: str, what: str) -> str:
    """The Prefect artifact key of ``what`` (e.g. ``release-gates``) for ``table``: stable per table, and
    valid (Prefect allows lowercase letters, digits and dashes only).

    The table's name lowercased, every other run of characters a dash, at most 40 characters; when that
    changed the name, six hex digits of its SHA-256 follow, so "Sales_EU" and "sales-eu" never share a key.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", table.lower()).strip("-")[:40].strip("-")
    if slug != table:
        slug = "-".join(filter(None, (slug, hashlib.sha256(table.encode("utf-8")).hexdigest()[:6])))
    return f"{slug}-{what}"


def _artifacts(report: dict[str, Any], report_html: Path) -> None:
    """Prefect artifacts, keyed per table: the decision, ε from the ledger, each gate's pass/fail and
    threshold, and a link to ``report_html`` (the report this run wrote).

    Never a measured value: Prefect's database and UI are outside the data owner's control, so they
    get what the public report holds (gate outcomes and the decision), nothing computed on rows.
    """
    evaluation = report.get("kind") == "evaluation"
    status = (
        ("PASSED" if report["released"] else "FAILED")
        if evaluation
        else ("RELEASED" if report["released"] else "BLOCKED")
    )
    p = report["privacy"]
    if p.get("epsilon_spent") is None:
        spent = "No privacy ledger: the synthetic table was made outside synthgate; no DP claim."
    else:
        spent = (
            f"ε spent {float(p['epsilon_spent']):.3f} of {p['epsilon_budget']} (δ = {p['delta']:g}, {p['accountant']})."
        )
    what = "evaluation" if evaluation else "release"
    failed = [g for g in report["gates"] if not g["passed"]]
    lines = [f"# synthgate {what} `{report.get('run_id', '')}`: **{status}**", "", spent, ""]
    lines += [
        f"- {g['name']}: {_outcome(g)} (must be {'<=' if g.get('direction') == 'max' else '>='} {g['threshold']:.4g})"
        for g in failed
    ]
    if not report["gates"]:
        lines.append("- no gate was evaluated: refusing to release unchecked data")
    link = Path(report_html).resolve().as_uri()
    lines += ["", f"Report: [{report_html}]({link})"]
    table = str(report.get("table") or "table")
    create_markdown_artifact(
        "\n".join(lines),
        key=artifact_key(table, f"{what}-summary"),
        description=f"synthgate decision on table {table!r}",
    )
    create_table_artifact(
        gate_artifact_rows(report),
        key=artifact_key(table, f"{what}-gates"),
        description=f"synthgate gates on table {table!r} (pass/fail; the values are in the owner's report)",
    )
    create_link_artifact(
        link,
        link_text=f"{what} report of run {report.get('run_id', '')}",
        key=artifact_key(table, f"{what}-report"),
        description=f"the {'evaluation' if evaluation else 'public'} report (HTML) of this run",
    )


@dataclass(frozen=True)
class Published:
    """Where a run's two reports went, and the SHA-256 of each file (for the registry)."""

    folder: Path  # the public release folder (releases/RUN or blocked/RUN)
    hashes: dict[str, str]
    public_report: dict[str, Any]
    owner_folder: Path  # the owner's evaluation report, owner-only, outside the release folder
    owner_hashes: dict[str, str]


@task(
    name="publish_release",
    task_run_name="publish (or write the blocked report)",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def publish_release(
    *,
    report: dict[str, Any],
    decision: dict[str, Any],
    synthetic: pl.DataFrame,
    model: Synthesizer,
    contract: Contract,
    ledger: dict[str, Any],
    out: Path,
    owner_reports: Path,
    output_db: Path,
    output_table: str,
    run_id: str,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Published:
    """The owner's report first (owner-only, ``owner_reports/RUN``), then the public release folder.

    Released: table + ``releases/RUN`` (contract, ledger, decision, model, synthetic table, public
    report). Blocked: ``blocked/RUN`` (contract, ledger, decision, public report); nothing published.
    ``report`` is the owner's evaluation report (every figure computed on private rows); ``decision``
    the public ``decision.json`` record (``validation.public_report.decision_record``).
    """
    released = bool(report["released"])
    if released != bool(decision["released"]):
        raise ValueError(
            "the owner's report and the public decision disagree on the release; build both from the same GateDecision."
        )
    folder = out / ("releases" if released else "blocked") / run_id
    owner_folder, owner_hashes = write_owner_report(
        {**report, "kind": "owner", "folder": str(folder)}, owner_reports, run_id, release_folder=folder
    )
    files = {
        "contract.yaml": contract.to_yaml(),
        "ledger.json": json.dumps(ledger, indent=2),
        DECISION_FILE: json.dumps(decision, indent=2, ensure_ascii=False, allow_nan=False),
    }
    if released:

        def commit() -> None:
            check_output_rows(synthetic, contract)
            publish_table(output_db, output_table, synthetic, run_id=run_id, lock_timeout_s=lock_timeout_s)

        hashes, public = write_folder_atomically(folder, files, model, commit=commit, synthetic=synthetic)
    else:
        hashes, public = write_folder_atomically(folder, files, None)
    _artifacts(public, folder / "report.html")
    return Published(folder, hashes, public, owner_folder, owner_hashes)


@task(name="write_evaluation", task_run_name="write the evaluation report", cache_policy=NO_CACHE, persist_result=False)
def write_evaluation(report: dict[str, Any], out: Path) -> Path:
    """``synthgate evaluate``: report.json and report.html into ``out``; no table is published.

    The owner runs an evaluation on tables they hold, so its report is a full one (every figure);
    the Prefect artifacts still carry only the gates' pass/fail."""
    out.mkdir(parents=True, exist_ok=True)
    write_report(report, out)
    _artifacts(report, out / "report.html")
    return out
