"""Thin tasks over the release registry (governance/registry.py): open, mark, close a run."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgate.errors import BudgetExceeded, DatabaseLocked, RegistryError
from synthgate.governance.registry import Registry
from synthgate.tasks.redaction import private_task
from synthgate.validation.contract import Contract

if TYPE_CHECKING:  # imported where used: the registry tasks load without torch (tasks/ingest.py imports this module)
    from synthgate.models.synthesizers.base import Checkpoint

# Exceptions whose message is ours and names no private value; anything else is recorded by type.
_OWN_MESSAGES = (
    "ContractViolation",
    "ContractError",
    "InputError",
    "DatabaseLocked",
    "RegistryError",
    "BudgetExceeded",
    "WithheldError",  # names a library error's type, never its message (tasks/redaction.py)
    "CheckpointRefused",
    "OutputViolation",
    "Interrupted",
    "KeyboardInterrupt",
    "TerminationSignal",
)


def is_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry I/O hiccups and lock waits, never a bad input."""
    err = getattr(state, "data", None)
    return isinstance(err, (OSError, duckdb.IOException, DatabaseLocked)) and not isinstance(err, FileNotFoundError)


@task(
    name="open_run",
    task_run_name="record the run in the registry",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=is_transient,
)
def open_run(
    registry: Registry,
    *,
    run_id: str,
    contract: Contract,
    epsilon: float,
    config: dict[str, Any],
    output_db: Path,
    output_table: str,
    resume: bool,
) -> None:
    """Record the run and reserve its ε against the table's lifetime budget, BEFORE any row is read.

    Raises BudgetExceeded (the run is recorded as refused) when the table has too little left.
    ``resume``: reopen a killed or failed run with its reservation instead.
    """
    check_dp_inference(registry, contract)
    if resume:
        record = registry.resume_run(run_id)
        if record.contract_hash != contract.fingerprint():
            registry.fail(run_id, error="resume refused: the contract changed since the run started")
            raise RegistryError(
                f"run {run_id} started under another contract (fingerprint mismatch); it cannot resume. "
                "Start a new run."
            )
        return
    registry.begin_run(
        run_id=run_id,
        table=contract.table,
        epsilon=epsilon,
        delta=contract.privacy.delta,
        lifetime_epsilon=contract.privacy.lifetime_epsilon,
        lifetime_delta=contract.privacy.lifetime_delta,
        contract_hash=contract.fingerprint(),
        config=config,
        output_db=str(output_db),
        output_table=output_table,
    )


def check_dp_inference(registry: Registry, contract: Contract) -> None:
    """A contract with ``dp_learned`` columns must name a charged ``contract inference`` run on this
    table in THIS registry: otherwise its ε would not count against the table's lifetime budget (or
    the marks were written by hand). Raises RegistryError before any row is read."""
    from synthgate.validation.dp_infer import INFERENCE_KIND

    paid = contract.dp_inference
    if paid is None:
        return
    try:
        rec = registry.get(paid.run_id) if registry.path.exists() else None
    except RegistryError:
        rec = None
    if (
        rec is None
        or rec.kind != INFERENCE_KIND
        or rec.source_table != contract.table
        or rec.status != "released"
        or rec.epsilon_charged < paid.epsilon - 1e-9
    ):
        raise RegistryError(
            f"the contract's dp_learned columns name the DP inference run {paid.run_id!r} "
            f"(dp_inference.run_id), but the registry {registry.path} holds no such charged run of kind "
            f"{INFERENCE_KIND!r} on table {contract.table!r}, so its ε {paid.epsilon:.3g} would not count "
            "against the table's lifetime budget. Point the run config's `registry:` (or `out:`) at the registry "
            "`synthgate contract infer --dp` used, or replace the dp_learned bounds and categories with public "
            "knowledge and remove dp_learned and dp_inference."
        )


@private_task(name="record_training_start", task_run_name="mark the start of training")
def record_training_start(registry: Registry, run_id: str, df: pl.DataFrame, *, fingerprint: str | None = None) -> str:
    """The keyed fingerprint of the rows (``fingerprint`` when already computed on a streamed
    source), and the mark that training (spending) begins."""
    fingerprint = fingerprint or registry.fingerprint(df)
    registry.mark_training(run_id, data_fingerprint=fingerprint)
    return fingerprint


def registered_checkpoint(
    registry: Registry, run_id: str, path: Path, *, every_epochs: float | None
) -> Checkpoint | None:
    """The run's training checkpoint at ``path`` (None: ``every_epochs`` is None, no checkpoints). The
    registry holds each checkpoint's SHA-256; a resumed run loads only a file it recorded."""
    from synthgate.models.synthesizers.base import Checkpoint

    if every_epochs is None:
        return None
    return Checkpoint(
        path,
        every_epochs=every_epochs,
        trusted=tuple(registry.get(run_id).checkpoint_hashes),
        on_save=functools.partial(registry.record_checkpoint, run_id),
    )


@task(name="close_run", task_run_name="close the run in the registry", cache_policy=NO_CACHE, persist_result=False)
def close_run(registry: Registry, run_id: str, report: dict[str, Any]) -> None:
    """Record the run's end: the public gates (pass/fail, no measured value), both folders' hashes."""
    public = report.get("public") or {}
    owner = report.get("owner_report") or {}
    registry.finish(
        run_id,
        status="released" if report["released"] else "blocked",
        epsilon_spent=float(report["privacy"]["epsilon_spent"]),
        gates=public.get("gates", report["gates"]),
        reasons=public.get("decision", report["decision"])["reasons"],
        folder=report.get("folder"),
        artifacts=report.get("artifacts"),
        owner_folder=owner.get("folder"),
        owner_artifacts=owner.get("artifacts"),
    )


def abandon_run(registry: Registry, run_id: str, err: BaseException, *, epsilon_spent: float | None) -> None:
    """Record a run that stopped on ``err``. Bad input before training is 'invalid' (nothing spent)."""
    name = type(err).__name__
    message = f"{name}: {err}" if name in _OWN_MESSAGES else f"{name} (details in the flow run's log)"
    if name in ("TerminationSignal", "Interrupted", "KeyboardInterrupt") or (
        name == "RuntimeError" and str(err).strip().lower() == "query interrupted"  # DuckDB, on a signal
    ):
        message = f"{name}: stopped by a signal; the checkpoint is kept, `synthgate resume {run_id}` continues"
    invalid = name in ("ContractViolation", "ContractError", "InputError")
    try:
        registry.fail(run_id, error=message, epsilon_spent=epsilon_spent, invalid=invalid)
    except (RegistryError, DatabaseLocked, duckdb.Error):
        pass  # the original error matters more; the run stays 'running' and counts its reservation


def run_outcome(err: BaseException) -> str:
    """The ``outcome:`` tag of a run that ended on ``err`` (the registry's words where it has them)."""
    name = type(err).__name__
    if isinstance(err, BudgetExceeded):
        return "refused"
    if name in ("ContractViolation", "ContractError", "InputError", "RegistryError", "CheckpointRefused"):
        return "invalid"
    if name in ("Interrupted", "KeyboardInterrupt", "TerminationSignal"):
        return "stopped"
    return "failed"
