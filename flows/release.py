"""The release flow: compose the tasks; no logic of its own beyond wiring and timings."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import polars as pl
from prefect import flow, tags
from prefect.exceptions import FailedRun
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from synthgate.errors import ReleaseBlocked
from synthgate.flows.config import RunConfig
from synthgate.flows.stages import (
    Stopwatch,
    count_progress,
    label_flow_run,
    make_task_runner,
    new_run_id,
    package_versions,
    run_checks,
    run_tags,
    stage_log,
    training_progress,
)
from synthgate.governance.registry import Registry
from synthgate.models.synthesizers import resolve_model_config
from synthgate.models.synthesizers.base import Checkpoint, SynthConfig
from synthgate.tasks.evaluate import child_seed, evaluation_subsample
from synthgate.tasks.gates import gate_decision
from synthgate.tasks.governance import (
    abandon_run,
    close_run,
    open_run,
    record_training_start,
    registered_checkpoint,
    run_outcome,
)
from synthgate.tasks.ingest import SampledTable, count_source_rows, load_table, sample_large_table
from synthgate.tasks.keys import sampling_entropy, split_key, unit_key
from synthgate.tasks.preflight import preflight_rows, preflight_target, run_epsilon
from synthgate.tasks.publish import publish_release
from synthgate.tasks.redaction import withhold_library_errors
from synthgate.tasks.report import release_notes, release_report, release_rows, with_published
from synthgate.tasks.runlog import (
    blocked_message,
    loaded_line,
    published_lines,
    run_start_line,
    sample_line,
    split_line,
    streamed_line,
    training_line,
)
from synthgate.tasks.sample import sample_synthetic
from synthgate.tasks.split import split_holdout
from synthgate.tasks.train import train_synthesizer
from synthgate.tasks.units import bound_contributions
from synthgate.tasks.validate import validate_table
from synthgate.validation.contract import Contract, load_contract
from synthgate.validation.derived import add_derived_columns
from synthgate.validation.pii import PiiScan


def run_release(config: RunConfig) -> dict[str, Any]:
    """The release flow on the task runner ``config`` asks for (threads by default, or Dask).

    Returns the run's report, released or blocked (``report["released"]``); a blocked run's flow run
    still ends in the Failed state "Blocked". Any other ending raises, as the flow did.
    """
    runner = make_task_runner(config.task_runner, workers=config.workers, address=config.dask_address)
    state = release_flow.with_options(task_runner=runner)(config, return_state=True)
    try:
        # the flow returns its report, or the Failed state "Blocked", whose result() raises ReleaseBlocked
        return cast(dict[str, Any], state.result())
    except ReleaseBlocked as blocked:
        if blocked.report is None:
            raise
        return blocked.report
    except FailedRun:
        # The Prefect API can answer the final state with its own copy, without the in-process data
        # (a REJECT after a retried write, seen in CI with an overloaded ephemeral server's SQLite
        # "database is locked"): the run still ended blocked, and the state's message says so. The
        # report is on disk (both reports were written) but not here: ReleaseBlocked without it.
        if state.is_failed() and state.name == "Blocked":
            raise ReleaseBlocked(state.message or "the release was blocked; nothing published") from None
        raise


# persist_result=False: the flow returns the owner's report, which must never reach Prefect's result storage.
@flow(
    name="synthgate-release",
    validate_parameters=False,
    persist_result=False,
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]  # Prefect's stub: TaskRunner[Never]
)
@withhold_library_errors
def release_flow(config: RunConfig) -> dict[str, Any] | State:
    """registry → ingest → validate → split → DP train → sample → checks → gate → publish → registry.

    Returns the report when the run is released. A blocked run returns the Failed state "Blocked"
    (calling the flow then raises ReleaseBlocked, which carries the report; ``run_release`` returns
    it). The flow run is named ``<table>-<run_id>`` and tagged table:, model:, epsilon: and outcome:.
    """
    run_id = config.resume or new_run_id()
    contract = load_contract(config.contract)
    epsilon = run_epsilon(config, contract)  # at most the contract's budget
    name = f"{contract.table}-{run_id}"
    labels = run_tags(contract.table, contract.model, epsilon) + (["resumed"] if config.resume else [])
    label_flow_run(name, labels)
    stage_log(run_start_line(run_id, contract, epsilon, resumed=bool(config.resume)))
    try:
        with tags(*labels):  # the task runs carry the run's tags too
            report = _run(config, contract, run_id, epsilon)
    except BaseException as err:
        label_flow_run(name, [f"outcome:{run_outcome(err)}"])
        raise
    if report["released"]:
        label_flow_run(name, ["outcome:released"])
        return report
    label_flow_run(name, ["outcome:blocked"])
    message = blocked_message(report)
    return Failed(name="Blocked", message=message, data=ReleaseBlocked(message, report))


def _run(config: RunConfig, contract: Contract, run_id: str, epsilon: float) -> dict[str, Any]:
    """The release from the run's record to its end (``release_flow`` names and tags it)."""
    # Resolved before any row is read: a bad model option is a contract error, not a half-run.
    model_conf = resolve_model_config(contract, epochs=config.epochs, batch_size=config.batch_size)
    output_table = config.output_table or f"{contract.table}_synthetic"
    # Before the run is recorded or the source opened: the training plan and the output target.
    preflight_target(config, contract, output_table=output_table, model_conf=model_conf)
    registry = Registry(config.registry_path, lock_timeout_s=config.lock_timeout_s)
    record = functools.partial(
        open_run,
        registry,
        run_id=run_id,
        contract=contract,
        epsilon=epsilon,
        config=config.model_dump(mode="json", exclude={"resume"}),
        output_db=config.output_db,
        output_table=output_table,
        resume=config.resume is not None,
    )
    if config.resume is None and registry.exceeds_lifetime(
        contract.table,
        epsilon=epsilon,
        delta=contract.privacy.delta,
        lifetime_epsilon=contract.privacy.lifetime_epsilon,
        lifetime_delta=contract.privacy.lifetime_delta,
    ):
        record()  # a run the lifetime budget refuses is recorded as refused (BudgetExceeded) before the source is opened
    # Before the run is recorded or a value read: the row count (COUNT(*)) against the minimum the checks
    # need, δ < 1/n and the work bound; a refusal here leaves the output folder and the registry untouched.
    preflight_rows(config, contract)
    # Before any row is read: the run is on record and its ε reserved, or it is refused here.
    record()
    work = config.out / "checkpoints" / run_id  # the run's private working folder, deleted at its end
    checkpoint = registered_checkpoint(registry, run_id, work / "train.pt", every_epochs=config.checkpoint_every)
    spent = None  # known once the report exists; until then a failure is charged its whole plan
    try:
        report = _release(config, contract, run_id, epsilon, model_conf, output_table, registry, checkpoint, work)
        spent = float(report["privacy"]["epsilon_spent"])
        close_run(registry, run_id, report)
    except BaseException as err:
        abandon_run(registry, run_id, err, epsilon_spent=spent)
        raise
    if checkpoint is not None:
        checkpoint.discard()  # it held the private random streams; the release does not need it
    # The run's private working folder (checkpoint, a large source's sampling key) is not needed now.
    shutil.rmtree(work, ignore_errors=True)
    return report


def _release(
    config: RunConfig,
    contract: Contract,
    run_id: str,
    epsilon: float,
    model_conf: SynthConfig,
    output_table: str,
    registry: Registry,
    checkpoint: Checkpoint | None,
    work: Path,
) -> dict[str, Any]:
    """The README's pipeline from load_table to publish_release: one call per stage."""
    watch = Stopwatch()
    lap = watch.lap
    resume = config.resume is not None
    pii = PiiScan(contract)  # every row's identifier/pii values, for the PII gate
    df, sampled = _load(config, contract, registry, run_id, pii, work, lap)
    # The unit of privacy: with a contract `unit:` column, each person's rows become one (secret
    # keyed hash) before the split, so the row-level mechanisms below protect people.
    if contract.unit is not None:
        df = bound_contributions(df, contract.unit, key=unit_key(work, resume=resume))
    # The holdout split: secret keyed coins per row (kept for a resume), never a function of the public seed.
    train, holdout = split_holdout(
        df.select(contract.modelled_columns), fraction=config.holdout_fraction, key=split_key(work, resume=resume)
    )
    del df
    lap("split")
    stage_log(split_line(contract.unit, config.holdout_fraction))
    with training_progress(config.show_progress) as progress:
        model, ledger = train_synthesizer(
            train,
            contract,
            epsilon=epsilon,
            epochs=model_conf.epochs,
            batch_size=model_conf.batch_size,
            device=config.device,
            seed=config.seed,
            progress=progress,
            checkpoint=checkpoint,
        )
    lap("train")
    stage_log(
        training_line(
            contract.model,
            model.training_summary,
            epsilon_spent=ledger.epsilon,
            epsilon=epsilon,
            delta=contract.privacy.delta,
        )
    )
    # The synthetic table's length is published: a number from the run config, else the model's DP
    # estimate of the training row count, never the exact (private) count.
    synthetic = sample_synthetic(model, n=config.n_synthetic or model.default_sample_size(), seed=config.seed + 1)
    lap("sample")
    stage_log(sample_line(synthetic.height, asked=bool(config.n_synthetic)))
    checked = evaluation_subsample(
        train, holdout, synthetic, max_rows=config.evaluation_rows, seed=child_seed(config.seed, 4)
    )
    results = run_checks(
        checked,
        contract,
        pii=pii,
        pii_synthetic=synthetic,
        epsilon=epsilon,
        epochs=model_conf.epochs,
        batch_size=model_conf.batch_size,
        device=config.device,
        seed=config.seed,
        show_progress=config.show_progress,
        beside=config.task_runner == "dask",
    )
    lap("checks")
    ledger_dict = ledger.to_dict()
    decision, results = gate_decision(results, contract, epsilon_spent=ledger.epsilon)
    sets = (train.height, holdout.height, synthetic.height)
    scored = (checked[0].height, checked[1].height, checked[2].height)
    report, public_decision = release_report(
        run_id=run_id,
        contract=contract,
        config=config,
        decision=decision,
        results=results,
        ledger=ledger_dict,
        training_summary=model.training_summary,
        rows=release_rows(sets, scored, sampled),
        notes=release_notes(
            contract,
            model.training_summary,
            sets=sets,
            checked=scored,
            sampled=sampled,
            max_rows=config.max_rows,
            evaluation_rows=config.evaluation_rows,
        ),
        timings=watch.timings,
        versions=package_versions(),
        output_table=output_table,
        registry_path=registry.path,
    )
    published = publish_release(
        report=report,
        decision=public_decision,
        synthetic=add_derived_columns(synthetic, contract),
        model=model,
        contract=contract,
        ledger=ledger_dict,
        out=config.out,
        owner_reports=config.owner_reports_path,
        output_db=config.output_db,
        output_table=output_table,
        run_id=run_id,
        lock_timeout_s=config.lock_timeout_s,
    )
    lap("publish")
    for line in published_lines(
        published.public_report,
        published.folder,
        released=decision.released,
        output_table=output_table,
        output_db=config.output_db,
    ):
        stage_log(line)
    return with_published(report, published)


def _load(
    config: RunConfig,
    contract: Contract,
    registry: Registry,
    run_id: str,
    pii: PiiScan,
    work: Path,
    lap: Callable[[str], None],
) -> tuple[pl.DataFrame, SampledTable | None]:
    """load_table → validate_table (each row's PII values into ``pii``), then the registry's mark that
    training begins. A source above max_rows is too large to load: one streamed pass validates and
    fingerprints every row and keeps an independent Bernoulli sample of about max_rows rows (secret
    coins, see sample_large_table), returned with the table."""
    n_source = count_source_rows(config.source)
    if n_source <= config.max_rows:
        df = load_table(config.source, contract)
        lap("load")
        validate_table(df, contract)
        pii.update(df)
        lap("validate")
        stage_log(loaded_line())
        record_training_start(registry, run_id, df)
        return df, None
    entropy = sampling_entropy(work, resume=config.resume is not None)
    with count_progress(config.show_progress, "reading (streamed)", n_source) as advance_to:
        sampled = sample_large_table(
            config.source,
            contract,
            registry,
            fraction=config.max_rows / n_source,
            entropy=entropy,
            batch_rows=config.batch_rows,
            progress=advance_to,
            pii=pii,
        )
    lap("load_validate_sample")
    stage_log(streamed_line(config.batch_rows, config.max_rows))
    record_training_start(registry, run_id, sampled.sample, fingerprint=sampled.fingerprint)
    return sampled.sample, sampled
