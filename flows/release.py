"""The release flow: compose the tasks; no logic of its own beyond wiring and timings."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

from prefect import flow, tags
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from synthgate.flows.config import RunConfig
from synthgate.flows.stages import (
    Stopwatch,
    count_progress,
    label_flow_run,
    make_task_runner,
    new_run_id,
    package_versions,
    run_membership_attacks,
    run_tags,
    stage_log,
    training_progress,
)
from synthgate.governance.registry import BudgetExceeded, Registry, code_version
from synthgate.models.synthesizers import resolve_model_config
from synthgate.models.synthesizers.base import (
    Checkpoint,
    SynthConfig,
    private_entropy,
    private_file,
    private_randomness_source,
)
from synthgate.tasks.evaluate import (
    child_seed,
    evaluate_fidelity,
    evaluate_privacy,
    evaluation_subsample,
    gate_pii_values,
)
from synthgate.tasks.gates import gate_decision
from synthgate.tasks.governance import abandon_run, close_run, open_run, record_training_start
from synthgate.tasks.ingest import SampledTable, count_source_rows, load_table, sample_large_table
from synthgate.tasks.preflight import preflight_rows, preflight_target
from synthgate.tasks.publish import gate_artifact_rows, publish_release
from synthgate.tasks.redaction import withhold_library_errors
from synthgate.tasks.sample import sample_synthetic
from synthgate.tasks.split import split_holdout
from synthgate.tasks.train import train_synthesizer
from synthgate.tasks.units import bound_contributions
from synthgate.tasks.validate import validate_table
from synthgate.validation.contract import Contract, ContractError, load_contract
from synthgate.validation.derived import add_derived_columns
from synthgate.validation.pii import PiiScan
from synthgate.validation.public_report import decision_record
from synthgate.validation.report import build_report


class ReleaseBlocked(RuntimeError):
    """A release blocked by its gates: nothing was published (both reports were written).

    The release flow ends in a Failed state named "Blocked" that holds this error, so the Prefect UI
    shows the run red and automations can alert on it. ``report`` is the run's report: the owner's,
    with figures computed on private rows, for this process only; it is dropped when the error is
    pickled (Prefect never persists the release flow's result, and this keeps it so).
    """

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


def blocked_message(report: dict[str, Any]) -> str:
    """One line for a blocked run: which gates failed (names only) and where its public report is."""
    return (
        f"release {report['run_id']} of table {report['table']!r} was BLOCKED; nothing published. "
        f"Failed gates: {report['failed_gates']}. Report: {report['folder']}/report.html"
    )


def run_release(config: RunConfig) -> dict[str, Any]:
    """The release flow on the task runner ``config`` asks for (threads by default, or Dask).

    Returns the run's report, released or blocked (``report["released"]``); a blocked run's flow run
    still ends in the Failed state "Blocked". Any other ending raises, as the flow did.
    """
    runner = make_task_runner(config.task_runner, workers=config.workers, address=config.dask_address)
    state = release_flow.with_options(task_runner=runner)(config, return_state=True)
    try:
        return state.result()  # type: ignore[no-any-return]
    except ReleaseBlocked as blocked:
        if blocked.report is None:
            raise
        return blocked.report


def _outcome(err: BaseException) -> str:
    """The ``outcome:`` tag of a run that ended on ``err`` (the registry's words where it has them)."""
    name = type(err).__name__
    if isinstance(err, BudgetExceeded):
        return "refused"
    if name in ("ContractViolation", "ContractError", "InputError", "RegistryError", "CheckpointRefused"):
        return "invalid"
    if name in ("Interrupted", "KeyboardInterrupt", "TerminationSignal"):
        return "stopped"
    return "failed"


# persist_result=False: the flow returns the owner's report, which must never reach Prefect's result storage.
@flow(name="synthgate-release", validate_parameters=False, task_runner=ThreadPoolTaskRunner(max_workers=2),
      persist_result=False)
@withhold_library_errors
def release_flow(config: RunConfig) -> dict[str, Any] | State:
    """registry → ingest → validate → split → DP train → sample → checks → gate → publish → registry.

    Returns the report when the run is released. A blocked run returns the Failed state "Blocked"
    (calling the flow then raises ReleaseBlocked, which carries the report; ``run_release`` returns
    it). The flow run is named ``<table>-<run_id>`` and tagged table:, model:, epsilon: and outcome:.
    """
    run_id = config.resume or new_run_id()
    contract = load_contract(config.contract)
    epsilon = config.epsilon if config.epsilon is not None else contract.privacy.epsilon
    if epsilon > contract.privacy.epsilon:
        raise ContractError(
            f"--epsilon {epsilon} exceeds the contract's budget privacy.epsilon = "
            f"{contract.privacy.epsilon}. Ask for at most the budget."
        )
    name = f"{contract.table}-{run_id}"
    labels = run_tags(contract.table, contract.model, epsilon) + (["resumed"] if config.resume else [])
    label_flow_run(name, labels)
    stage_log(
        f"run {run_id}{' (resumed)' if config.resume else ''}: table {contract.table!r}, model {contract.model}, "
        f"ε {epsilon:g} of the contract's {contract.privacy.epsilon:g}, δ {contract.privacy.delta:g}"
    )
    try:
        with tags(*labels):  # the task runs carry the run's tags too
            report = _run(config, contract, run_id, epsilon)
    except BaseException as err:
        label_flow_run(name, [f"outcome:{_outcome(err)}"])
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
        open_run, registry, run_id=run_id, contract=contract, epsilon=epsilon,
        config=config.model_dump(mode="json", exclude={"resume"}), output_db=config.output_db,
        output_table=output_table, resume=config.resume is not None,
    )
    if config.resume is None and registry.exceeds_lifetime(
        contract.table, epsilon=epsilon, delta=contract.privacy.delta,
        lifetime_epsilon=contract.privacy.lifetime_epsilon, lifetime_delta=contract.privacy.lifetime_delta,
    ):
        record()  # a run the lifetime budget refuses is recorded as refused (BudgetExceeded) before the source is opened
    # Before the run is recorded or a value read: the row count (COUNT(*)) against the minimum the checks
    # need, δ < 1/n and the work bound; a refusal here leaves the output folder and the registry untouched.
    preflight_rows(config, contract)
    # Before any row is read: the run is on record and its ε reserved, or it is refused here.
    record()
    work = config.out / "checkpoints" / run_id  # the run's private working folder, deleted at its end
    # The registry holds each checkpoint's SHA-256; a resumed run loads only a file it recorded.
    checkpoint = (
        Checkpoint(work / "train.pt", every_epochs=config.checkpoint_every,
                   trusted=tuple(registry.get(run_id).checkpoint_hashes),
                   on_save=functools.partial(registry.record_checkpoint, run_id))
        if config.checkpoint_every is not None else None
    )
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
    config: RunConfig, contract: Contract, run_id: str, epsilon: float, model_conf: SynthConfig,
    output_table: str, registry: Registry, checkpoint: Checkpoint | None, work: Path,
) -> dict[str, Any]:
    watch = Stopwatch()
    lap = watch.lap
    n_source = count_source_rows(config.source)
    sampled: SampledTable | None = None
    pii = PiiScan(contract)  # every row's identifier/pii values, for the PII gate
    if n_source <= config.max_rows:
        df = load_table(config.source, contract)
        lap("load")
        validate_table(df, contract)
        pii.update(df)
        lap("validate")
        stage_log("loaded and validated: every contract expectation met (the row count is private: not logged)")
        record_training_start(registry, run_id, df)
    else:
        # Too large to load: one streamed pass validates and fingerprints every row and keeps an
        # independent Bernoulli sample of about max_rows rows (secret coins, see sample_large_table).
        entropy = _sampling_entropy(work, resume=config.resume is not None)
        with count_progress(config.show_progress, "reading (streamed)", n_source) as advance_to:
            sampled = sample_large_table(
                config.source, contract, registry, fraction=config.max_rows / n_source, entropy=entropy,
                batch_rows=config.batch_rows, progress=advance_to, pii=pii,
            )
        df = sampled.sample
        lap("load_validate_sample")
        stage_log(
            f"streamed in batches of {config.batch_rows} rows: every row validated against the contract; training "
            f"uses an independent secret-coin sample of about max_rows = {config.max_rows} rows (sizes private)"
        )
        record_training_start(registry, run_id, df, fingerprint=sampled.fingerprint)
    # The unit of privacy: with a contract `unit:` column, each person's rows become one (secret
    # keyed hash) before the split, so the row-level mechanisms below protect people.
    if contract.unit is not None:
        df = bound_contributions(df, contract.unit, key=_unit_key(work, resume=config.resume is not None))
    # The holdout split: secret keyed coins per row (kept for a resume), never a function of the public seed.
    split_key = _split_key(work, resume=config.resume is not None)
    train, holdout = split_holdout(df.select(contract.modelled_columns), fraction=config.holdout_fraction, key=split_key)
    del df
    lap("split")
    stage_log(
        (f"one row per person (unit column {contract.unit!r}); " if contract.unit is not None else "")
        + f"holdout split: each row to the holdout with probability {config.holdout_fraction:g} by a secret coin "
        "(the sizes are private: not logged)"
    )
    with training_progress(config.show_progress) as progress:
        model, ledger = train_synthesizer(
            train, contract, epsilon=epsilon, epochs=model_conf.epochs, batch_size=model_conf.batch_size,
            device=config.device, seed=config.seed, progress=progress, checkpoint=checkpoint,
        )
    lap("train")
    stage_log(
        f"trained {contract.model} with DP: ε spent {ledger.epsilon:.4g} of {epsilon:g} "
        f"(δ {contract.privacy.delta:g}); "
        # DP facts of the training that decision.json publishes too (never its duration: it grows with the rows)
        + ", ".join(f"{k}={model.training_summary[k]:.4g}" if isinstance(model.training_summary[k], float)
                    else f"{k}={model.training_summary[k]}"
                    for k in ("steps", "sample_rate", "noise_multiplier", "max_grad_norm")
                    if k in model.training_summary)
    )
    # The synthetic table's length is published: a number from the run config, else the model's DP
    # estimate of the training row count, never the exact (private) count.
    synthetic = sample_synthetic(model, n=config.n_synthetic or model.default_sample_size(), seed=config.seed + 1)
    lap("sample")
    stage_log(
        f"sampled {synthetic.height} synthetic rows (the length "
        + ("asked for by n_synthetic" if config.n_synthetic else "is the model's DP estimate of the training rows")
        + "; sampling reads no private row)"
    )
    # The shadow models always run as concurrent tasks. On a Dask cluster (separate processes)
    # the privacy and fidelity checks run beside them too; in the thread pool they run one after
    # another: as threads of one process their numpy/scikit-learn BLAS calls met torch's OpenMP
    # pool (OpenBLAS warned "Detect OpenMP Loop and this application may hang"; measured).
    beside = config.task_runner == "dask"
    checked = evaluation_subsample(train, holdout, synthetic, max_rows=config.evaluation_rows,
                                   seed=child_seed(config.seed, 4))
    args = (*checked, contract)
    privacy = evaluate_privacy.submit(*args, seed=child_seed(config.seed, 1)) if beside else None
    fidelity = evaluate_fidelity.submit(*args, seed=child_seed(config.seed, 3)) if beside else None
    # Sequential in the thread pool: privacy, then membership (shadows concurrent), then fidelity.
    # Progress: a bar over the four groups (the shadow models' own bar opens below it) and a log line each.
    with count_progress(config.show_progress, "checks", 4) as advance:
        own_privacy = None if privacy else evaluate_privacy(*args, seed=child_seed(config.seed, 1))
        if own_privacy is not None:
            advance()
            stage_log("checks 1/4: privacy checks done (distances, re-identification risks)")
        membership = run_membership_attacks(
            *args, epsilon=epsilon, epochs=model_conf.epochs, batch_size=model_conf.batch_size,
            device=config.device, seed=child_seed(config.seed, 2), show_progress=config.show_progress,
        )
        advance()
        stage_log("checks 2/4: membership attacks done")
        results = privacy.result() if privacy else own_privacy
        if privacy is not None:
            advance()
            stage_log("checks 1/4: privacy checks done (distances, re-identification risks)")
        results += membership
        results += fidelity.result() if fidelity else evaluate_fidelity(*args, seed=child_seed(config.seed, 3))
        advance()
        stage_log("checks 3/4: fidelity checks done")
        results.append(gate_pii_values(pii, synthetic))
        advance()
        stage_log("checks 4/4: PII gate done (the values stay in the owner's report)")
    lap("checks")
    ledger_dict = ledger.to_dict()
    decision, results = gate_decision(results, contract, epsilon_spent=ledger.epsilon)
    notes = [
        f"model {contract.model}: " + ", ".join(f"{k}={v}" for k, v in model.training_summary.items()),
        f"DP noise and Poisson sampling drawn from {private_randomness_source()}; the seed in this "
        "report does not determine them.",
        f"unit of privacy: {contract.privacy_unit}.",
    ]
    if contract.excluded_columns:
        notes.append(f"identifier/pii columns dropped, never modelled: {contract.excluded_columns}")
    rows = {"train": train.height, "holdout": holdout.height, "synthetic": synthetic.height}
    if sampled is not None:
        rows = {"source": sampled.n_rows, "sampled": sampled.sample.height, **rows}
        notes.append(
            f"the source's {sampled.n_rows} rows exceed max_rows = {config.max_rows}: all were validated in "
            f"streamed batches; training and the checks used an independent random sample of "
            f"{sampled.sample.height} rows (each row kept with probability {sampled.fraction:.4g}, secret coins). "
            "The DP guarantee covers the whole table; the amplification by this sampling is not claimed."
        )
    if any(c.height < full for c, full in zip(checked, (train.height, holdout.height, synthetic.height), strict=True)):
        rows |= {f"checked_{k}": c.height for k, c in zip(("train", "holdout", "synthetic"), checked, strict=True)}
        notes.append(
            f"the privacy and fidelity checks scored seeded uniform subsamples of at most evaluation_rows = "
            f"{config.evaluation_rows} rows per set (train {checked[0].height}, holdout {checked[1].height}, "
            f"synthetic {checked[2].height}); their figures are estimates for the whole sets."
        )
    report = build_report(
        run_id=run_id, table=contract.table, decision=decision, results=results, ledger=ledger_dict,
        epsilon_budget=contract.privacy.epsilon, delta=contract.privacy.delta,
        rows=rows,
        timings=watch.timings, versions=package_versions(), contract_fingerprint=contract.fingerprint(),
        config=config.model_dump(mode="json"), notes=notes, dp_randomness=private_randomness_source(),
    )
    report["output"] = {"db": str(config.output_db), "table": output_table}
    report["registry"] = {"path": str(registry.path), "code_version": code_version()}
    # The public part of the outcome: which gates passed, never a measured value (decision.json).
    public_decision = decision_record(
        run_id=run_id, table=contract.table, decision=decision, results=results,
        dp_randomness=private_randomness_source(), versions=report["versions"], output=report["output"],
        model=contract.model, training_summary=model.training_summary,
    )
    published = publish_release(
        report=report, decision=public_decision, synthetic=add_derived_columns(synthetic, contract), model=model, contract=contract,
        ledger=ledger_dict, out=config.out, owner_reports=config.owner_reports_path, output_db=config.output_db,
        output_table=output_table, run_id=run_id, lock_timeout_s=config.lock_timeout_s,
    )
    lap("publish")
    for row in gate_artifact_rows(published.public_report):
        stage_log(f"gate {row['gate']}: {row['outcome']} (must be {row['must be']})")
    if decision.released:
        stage_log(f"RELEASED: table {output_table!r} in {config.output_db}; public report "
                  f"{published.folder}/report.html")
    else:
        stage_log(f"BLOCKED: nothing published; failed gates {published.public_report['failed_gates']}; public "
                  f"report {published.folder}/report.html")  # INFO: the run's state "Blocked" is the alarm
    # The returned dict is the owner's report (in this process only); the CLI prints only "public".
    report["folder"] = str(published.folder)
    report["artifacts"] = published.hashes  # for the registry; the folder's own report.json cannot hold its hash
    report["public"] = published.public_report
    report["owner_report"] = {"folder": str(published.owner_folder), "artifacts": published.owner_hashes}
    return report


def _sampling_entropy(folder: Path, *, resume: bool) -> int:
    """The private entropy of a large source's sampling coins, kept (mode 0600) beside the run's
    checkpoint so that a resumed run trains on the same sample; deleted with the checkpoint."""
    return _kept_entropy(folder / "sample.key", resume=resume)


def _split_key(folder: Path, *, resume: bool) -> int:
    """The secret key of the holdout split's per-row coins (``tasks.split.holdout_coins``), kept like the
    sampling key so that a resumed run trains on the same rows; deleted with the checkpoint."""
    return _kept_entropy(folder / "split.key", resume=resume)


def _unit_key(folder: Path, *, resume: bool) -> int:
    """The secret key of the one-row-per-person choice (``tasks.units``), kept like the split key."""
    return _kept_entropy(folder / "unit.key", resume=resume)


def _kept_entropy(path: Path, *, resume: bool) -> int:
    """``private_entropy()``, written to ``path`` (mode 0600); a resumed run reads it back."""
    if resume and path.exists():
        return int(path.read_text().strip())
    value = private_entropy()
    with private_file(path) as fh:
        fh.write(str(value).encode())
    return value
