"""The release flow: compose the tasks; no logic of its own beyond wiring and timings."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import platform
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from flows.config import RunConfig
from models.synthesizers.ctgan import TrainingProgress
from tasks.ingest import load_table
from tasks.publish import publish_release
from tasks.steps import (
    decide_release,
    evaluate_fidelity,
    evaluate_privacy,
    sample_synthetic,
    split_holdout,
    train_synthesizer,
    validate_table,
)
from validation.contract import ContractError, load_contract
from validation.report import build_report

PACKAGES = ("synthgate", "torch", "opacus", "prefect", "polars", "duckdb", "great-expectations", "scikit-learn", "numpy")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "not installed"
    return out


@contextmanager
def _training_progress(show: bool) -> Iterator[Any]:
    if not show:
        yield None
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]training[/]"), BarColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:
        task_id = bar.add_task("", total=1.0)

        def update(p: TrainingProgress) -> None:
            # Generator loss and the critic's score on fakes: post-processing of DP outputs only.
            bar.update(
                task_id, completed=p.step / p.steps,
                description=(
                    f"epoch {p.epoch:4.1f}/{p.epochs:g}  step {p.step}/{p.steps}  "
                    f"G loss {p.generator_loss:.3f}  D(fake) {p.critic_fake_score:+.3f}  ε {p.epsilon:.3f}"
                ),
            )

        yield update


@flow(name="synthgate-release", validate_parameters=False)
def release_flow(config: RunConfig) -> dict[str, Any]:
    """ingest → validate → split → DP train → sample → privacy + fidelity checks → gate → publish."""
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    contract = load_contract(config.contract)
    epsilon = config.epsilon if config.epsilon is not None else contract.privacy.epsilon
    if epsilon > contract.privacy.epsilon:
        raise ContractError(
            f"--epsilon {epsilon} exceeds the contract's budget privacy.epsilon = "
            f"{contract.privacy.epsilon}. Ask for at most the budget."
        )
    df = load_table(config.source, contract)
    lap("load")
    validate_table(df, contract)
    lap("validate")
    train, holdout = split_holdout(df.select(contract.modelled_columns), fraction=config.holdout_fraction, seed=config.seed)
    del df
    lap("split")
    with _training_progress(config.show_progress) as progress:
        model, ledger = train_synthesizer(
            train, contract, epsilon=epsilon, epochs=config.epochs, batch_size=config.batch_size,
            device=config.device, seed=config.seed, progress=progress,
        )
    lap("train")
    synthetic = sample_synthetic(model, n=config.n_synthetic or train.height, seed=config.seed + 1)
    lap("sample")
    results = evaluate_privacy(train, holdout, synthetic, contract, seed=config.seed)
    lap("privacy_checks")
    results += evaluate_fidelity(train, holdout, synthetic, contract, seed=config.seed)
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
        timings=timings, versions=_versions(), contract_fingerprint=contract.fingerprint(),
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
