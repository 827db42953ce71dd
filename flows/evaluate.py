"""The evaluate flow: run synthgate's privacy and fidelity checks on three tables made anywhere.

``synthgate evaluate --train A --holdout B --synthetic C --contract FILE --out DIR`` loads the
three tables (CSV, Parquet or a DuckDB table), checks each against the contract, runs every
privacy and fidelity check and the gates, and writes report.json / report.html to DIR. It
publishes nothing. A table made outside synthgate has no privacy ledger, so the budget and
contract gates do not apply; the report says so.

The data owner runs this on tables they hold, so DIR gets the full report (every figure computed on
the real rows, like a release's owner report): keep it with the data, do not publish it. Its Prefect
artifacts and CLI lines carry only each gate's pass/fail (tasks/publish.py, flows/cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from synthgate.errors import InputError
from synthgate.flows.config import SourceConfig
from synthgate.flows.stages import Stopwatch, label_flow_run, new_run_id, package_versions, run_checks
from synthgate.models.synthesizers import resolve_model_config
from synthgate.tasks.evaluate import membership_contract
from synthgate.tasks.ingest import load_table
from synthgate.tasks.publish import write_evaluation
from synthgate.tasks.redaction import withhold_library_errors
from synthgate.tasks.report import evaluation_notes
from synthgate.tasks.validate import validate_table
from synthgate.validation.contract import load_contract
from synthgate.validation.pii import PiiScan
from synthgate.validation.report import build_report
from synthgate.validation.results import decide_release, family_evidence

DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")


def parse_table_ref(text: str) -> SourceConfig:
    """``data.parquet`` / ``data.csv`` → a file; ``warehouse.duckdb:table`` → a DuckDB table."""
    head, sep, table = text.rpartition(":")
    if sep and head.lower().endswith(DUCKDB_SUFFIXES):
        if not table:
            raise InputError(f"{text!r} names a DuckDB file but no table. Write it as FILE.duckdb:TABLE.")
        return SourceConfig(db=Path(head), table=table)
    if text.lower().endswith(DUCKDB_SUFFIXES):
        raise InputError(f"{text!r} is a DuckDB file; name the table too: {text}:TABLE.")
    return SourceConfig(path=Path(text))


class EvaluateConfig(BaseModel):
    """The one parameter of the evaluate flow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: SourceConfig
    holdout: SourceConfig
    synthetic: SourceConfig
    contract: Path
    out: Path
    seed: int = Field(0, ge=0)
    shadow: bool = Field(
        False,
        description="Also run the shadow-model attack, training the contract's model as a stand-in "
        "for the unknown synthesizer (costly; an approximation for tables made elsewhere).",
    )
    epochs: float | None = Field(
        None, gt=0, description="Epochs of each shadow synthesizer (default: the contract's model's)."
    )
    batch_size: int | None = Field(
        None, ge=2, description="Batch size the shadows' sampling rate is derived from (default: the model's)."
    )
    device: str = "auto"
    show_progress: bool = True


@flow(
    name="synthgate-evaluate",
    validate_parameters=False,
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]  # Prefect's stub: TaskRunner[Never]
)
@withhold_library_errors
def evaluate_flow(config: EvaluateConfig) -> dict[str, Any]:
    """load x3 → validate x3 → privacy checks → membership attacks → fidelity → gates → report."""
    run_id = new_run_id("eval-")
    watch = Stopwatch()
    lap = watch.lap

    contract = load_contract(config.contract)
    name = f"{contract.table}-{run_id}"
    label_flow_run(name, [f"table:{contract.table}", "kind:evaluation"])
    model_conf = resolve_model_config(contract, epochs=config.epochs, batch_size=config.batch_size)
    frames = {}
    pii = PiiScan(contract)  # the real tables' identifier/pii values, for the PII gate
    for role in ("train", "holdout", "synthetic"):
        df = load_table(getattr(config, role), contract)
        validate_table(df, contract, role=f"the {role} table", check_delta=False)
        if role != "synthetic":
            pii.update(df)
        frames[role] = df.select(contract.modelled_columns)
    train, holdout, synthetic = frames["train"], frames["holdout"], frames["synthetic"]
    lap("load_and_validate")
    results = run_checks(
        (train, holdout, synthetic),
        contract,
        pii=pii,
        pii_synthetic=synthetic,
        epsilon=contract.privacy.epsilon,
        epochs=model_conf.epochs,
        batch_size=model_conf.batch_size,
        device=config.device,
        seed=config.seed,
        show_progress=config.show_progress,
        membership_contract=membership_contract(contract, shadow=config.shadow),
        lap=lap,
        pii_report="the report",
    )  # the shadows' bar nests below the checks' bar
    results = family_evidence(results)  # the outcomes the decision uses, for the report
    decision = decide_release(results, block_inconclusive=contract.gates.block_inconclusive)
    report = build_report(
        run_id=run_id,
        table=contract.table,
        decision=decision,
        results=results,
        ledger=None,
        epsilon_budget=contract.privacy.epsilon,
        delta=contract.privacy.delta,
        rows={"train": train.height, "holdout": holdout.height, "synthetic": synthetic.height},
        timings=watch.timings,
        versions=package_versions(),
        contract_fingerprint=contract.fingerprint(),
        config=config.model_dump(mode="json"),
        notes=evaluation_notes(contract, shadow=config.shadow),
    )
    report["kind"] = "evaluation"
    write_evaluation(report, config.out)
    report["folder"] = str(config.out)
    # An evaluation's flow run completes either way (it publishes nothing); the tag says how the gates went.
    label_flow_run(name, ["outcome:passed" if decision.released else "outcome:failed"])
    return report
