"""The release flow: compose the tasks; no logic of its own beyond wiring and timings."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import RunConfig
from flows.stages import Stopwatch, new_run_id, package_versions, run_membership_attacks, training_progress
from models.synthesizers import resolve_model_config
from tasks.evaluate import child_seed, evaluate_fidelity, evaluate_privacy
from tasks.ingest import load_table
from tasks.publish import publish_release
from tasks.steps import decide_release, sample_synthetic, split_holdout, train_synthesizer, validate_table
from validation.contract import ContractError, load_contract
from validation.report import build_report


@flow(name="synthgate-release", validate_parameters=False, task_runner=ThreadPoolTaskRunner(max_workers=2))
def release_flow(config: RunConfig) -> dict[str, Any]:
    """ingest → validate → split → DP train → sample → privacy + fidelity checks → gate → publish."""
    run_id = new_run_id()
    watch = Stopwatch()
    lap = watch.lap

    contract = load_contract(config.contract)
    epsilon = config.epsilon if config.epsilon is not None else contract.privacy.epsilon
    if epsilon > contract.privacy.epsilon:
        raise ContractError(
            f"--epsilon {epsilon} exceeds the contract's budget privacy.epsilon = "
            f"{contract.privacy.epsilon}. Ask for at most the budget."
        )
    # Resolved before any row is read: a bad model option is a contract error, not a half-run.
    model_conf = resolve_model_config(contract, epochs=config.epochs, batch_size=config.batch_size)
    df = load_table(config.source, contract)
    lap("load")
    validate_table(df, contract)
    lap("validate")
    train, holdout = split_holdout(df.select(contract.modelled_columns), fraction=config.holdout_fraction, seed=config.seed)
    del df
    lap("split")
    with training_progress(config.show_progress) as progress:
        model, ledger = train_synthesizer(
            train, contract, epsilon=epsilon, epochs=model_conf.epochs, batch_size=model_conf.batch_size,
            device=config.device, seed=config.seed, progress=progress,
        )
    lap("train")
    synthetic = sample_synthetic(model, n=config.n_synthetic or train.height, seed=config.seed + 1)
    lap("sample")
    results = evaluate_privacy(train, holdout, synthetic, contract, seed=child_seed(config.seed, 1))
    lap("privacy_checks")
    results += run_membership_attacks(
        train, holdout, synthetic, contract, epsilon=epsilon, epochs=model_conf.epochs, batch_size=model_conf.batch_size,
        device=config.device, seed=child_seed(config.seed, 2), show_progress=config.show_progress,
    )
    lap("membership_attacks")
    results += evaluate_fidelity(train, holdout, synthetic, contract, seed=child_seed(config.seed, 3))
    lap("fidelity_checks")
    ledger_dict = ledger.to_dict()
    decision, results = decide_release(results, contract, epsilon_spent=ledger.epsilon)
    output_table = config.output_table or f"{contract.table}_synthetic"
    notes = [f"model {contract.model}: " + ", ".join(f"{k}={v}" for k, v in model.training_summary.items())]
    if contract.excluded_columns:
        notes.append(f"identifier/pii columns dropped, never modelled: {contract.excluded_columns}")
    report = build_report(
        run_id=run_id, table=contract.table, decision=decision, results=results, ledger=ledger_dict,
        epsilon_budget=contract.privacy.epsilon, delta=contract.privacy.delta,
        rows={"train": train.height, "holdout": holdout.height, "synthetic": synthetic.height},
        timings=watch.timings, versions=package_versions(), contract_fingerprint=contract.fingerprint(),
        config=config.model_dump(mode="json"), notes=notes,
    )
    report["output"] = {"db": str(config.output_db), "table": output_table}
    folder = publish_release(
        report=report, synthetic=synthetic, model=model, contract=contract, ledger=ledger_dict,
        out=config.out, output_db=config.output_db, output_table=output_table, run_id=run_id,
    )
    lap("publish")
    report["folder"] = str(folder)
    return report
