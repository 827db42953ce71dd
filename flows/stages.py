"""Pieces the release and evaluate flows share: stage compositions, progress bars, versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import math
import platform
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import polars as pl
from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from synthgate.errors import ContractError
from synthgate.models.synthesizers.base import TrainingProgress
from synthgate.tasks.evaluate import (
    attack_membership,
    child_seed,
    evaluate_fidelity,
    evaluate_privacy,
    gate_pii_values,
    judge_membership,
    plan_shadow_attack,
    score_shadow_attack,
    shadow_attack_row_limited,
    train_shadow,
)
from synthgate.validation.contract import Contract
from synthgate.validation.pii import PiiScan
from synthgate.validation.results import MetricResult

PACKAGES = (
    "synthgate",
    "torch",
    "opacus",
    "prefect",
    "polars",
    "duckdb",
    "great-expectations",
    "scikit-learn",
    "numpy",
)


def make_task_runner(kind: str, *, workers: int, address: str | None = None) -> Any:
    """The Prefect task runner for the concurrent tasks (checks and shadow models).

    ``threads``: a thread pool in this process. ``dask``: prefect-dask's DaskTaskRunner on the
    cluster at ``address``, or on a local cluster of ``workers`` single-threaded processes. Tasks
    carry private frames to the workers: the cluster must sit inside the data's trust boundary
    (see README, "Running in production").
    """
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise ContractError(
                "task_runner: dask needs prefect-dask. Install it with `pip install -e '.[cluster]'`, "
                "or use task_runner: threads."
            ) from None
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
        )
    raise ContractError(f"task_runner must be 'threads' or 'dask'. Got {kind!r}.")


def new_run_id(prefix: str = "") -> str:
    """A sortable, unique run id: UTC time to the second plus six random hex digits."""
    return prefix + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def run_tags(table: str, model: str, epsilon: float) -> list[str]:
    """The tags of a run's flow run and task runs (all from the contract and run config: public)."""
    return [f"table:{table}", f"model:{model}", f"epsilon:{epsilon:g}"]


def label_flow_run(name: str, tags: Iterable[str] = ()) -> None:
    """Rename the current flow run and add ``tags`` to it (a no-op outside a flow run).

    Prefect names a run before its body starts, but the table and run id are known only once the
    contract is read; the flow renames its run to ``<table>-<run_id>`` then. A failure to reach the
    API is a warning in the run's log, never the end of a release.
    """
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    merged = sorted(set(ctx.flow_run.tags) | set(tags))
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, name=name, tags=merged)
    except Exception as err:  # noqa: BLE001  (the API is down: the run goes on under its old name)
        stage_log(f"could not rename the flow run to {name!r} ({type(err).__name__}); it keeps its name", warning=True)
        return
    ctx.flow_run.name = name
    ctx.flow_run.tags = merged


def stage_log(message: str, *, warning: bool = False) -> None:
    """One line in the run's Prefect log (the UI's Logs tab); nothing outside a flow or task run.

    Only aggregates a public report could hold go here: settings, gate outcomes, ε, and counts that
    are DP estimates or published lengths. Never a row, a value or an exact count of private rows.
    """
    try:
        logger = get_run_logger()
    except MissingContextError:
        return
    (logger.warning if warning else logger.info)("%s", message)


class Stopwatch:
    """Seconds per stage: ``lap(name)`` records the time since the previous lap (or start)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "not installed"
    return out


#: One stderr console for every bar, so that a bar opened inside another (the shadow models inside the
#: checks) stacks below it (rich >= 14 nests live displays of one console) instead of overwriting it.
_STDERR = Console(stderr=True)


def training_bar(console: Console) -> Progress:
    """The training bar: at most 80 columns wide (a fixed 16-column bar, a compact description)."""
    return Progress(
        TextColumn("[bold]training[/]"),
        BarColumn(bar_width=16),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def training_description(p: TrainingProgress) -> str:
    """``ep 4.0/8  G 1.234  D(fake) -0.123  ε 1.234``: the epoch, the generator's loss and the critic's
    score on fakes (post-processing of DP outputs only) and the ε spent so far. A loss not yet
    measured (a family whose generator first steps after several critic steps) shows as ``–``."""

    def figure(value: float, spec: str) -> str:
        return format(value, spec) if math.isfinite(value) else "–"

    return (
        f"ep {p.epoch:.1f}/{p.epochs:g}  G {figure(p.generator_loss, '.3f')}  "
        f"D(fake) {figure(p.critic_fake_score, '+.3f')}  ε {p.epsilon:.3f}"
    )


@contextmanager
def training_progress(show: bool) -> Iterator[Any]:
    if not show:
        yield None
        return
    with training_bar(_STDERR) as bar:
        task_id = bar.add_task("", total=1.0)

        def update(p: TrainingProgress) -> None:
            bar.update(task_id, completed=p.step / p.steps, description=training_description(p))

        yield update


@contextmanager
def count_progress(show: bool, label: str, total: int) -> Iterator[Any]:
    """A progress bar over ``total`` units of work; yields ``advance(units=1)`` (a no-op when hidden)."""
    if not show or total == 0:
        yield lambda units=1: None
        return
    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=_STDERR,
        transient=False,
    ) as bar:
        task_id = bar.add_task("", total=total)
        yield lambda units=1: bar.advance(task_id, units)


def run_membership_attacks(
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    epsilon: float,
    epochs: float | None,
    batch_size: int | None,
    device: str,
    seed: int,
    show_progress: bool,
) -> list[MetricResult]:
    """Distance and DOMIAS attacks, then the shadow-model attack with one task per shadow."""
    attacks = attack_membership(train, holdout, synthetic, contract, seed=child_seed(seed, 0))
    skipped = shadow_attack_row_limited(train, holdout, contract)
    if skipped:
        stage_log(f"checks: {skipped.split(':')[0]} (too few rows for it to tell; see the owner's report)")
    plan = (
        None
        if skipped
        else plan_shadow_attack(
            train, holdout, contract, n_synthetic=synthetic.height, batch_size=batch_size, seed=child_seed(seed, 1)
        )
    )
    if plan is not None:
        futures = [
            train_shadow.submit(plan, i, contract, epsilon=epsilon, epochs=epochs, device=device)
            for i in range(len(plan))
        ]
        with count_progress(show_progress, "shadow models", len(futures)) as advance:
            for _ in as_completed(futures):
                advance()
        attacks.append(score_shadow_attack(plan, [f.result() for f in futures], synthetic, contract))
    judged = judge_membership(attacks, contract)
    if skipped:  # the owner's report says why the gate has one attack fewer
        judged = [
            replace(r, details={**r.details, "shadow_attack": skipped}) if r.name == "mia_auc" else r for r in judged
        ]
    return judged


def run_checks(
    sets: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    contract: Contract,
    *,
    pii: PiiScan,
    pii_synthetic: pl.DataFrame,
    epsilon: float,
    epochs: float | None,
    batch_size: int | None,
    device: str,
    seed: int,
    show_progress: bool,
    beside: bool = False,
    membership_contract: Contract | None = None,
    lap: Callable[[str], None] | None = None,
    pii_report: str = "the owner's report",
) -> list[MetricResult]:
    """evaluate_privacy → attack_membership + train_shadow → evaluate_fidelity → the PII gate, on the
    ``sets`` (train, holdout, synthetic) the checks score.

    Each group's seed is ``child_seed(seed, 1 | 2 | 3)``. The shadow models always run as concurrent
    tasks. ``beside`` (a Dask cluster: separate processes) submits the privacy and fidelity checks to run
    beside them too; otherwise they run one after another: as threads of one process their numpy/
    scikit-learn BLAS calls met torch's OpenMP pool (OpenBLAS warned "Detect OpenMP Loop and this
    application may hang"; measured). ``membership_contract`` (default ``contract``) runs the membership
    attacks; ``pii`` judges ``pii_synthetic`` (the whole synthetic table). ``lap``, when given and
    not ``beside``, records each group's seconds (privacy_checks, membership_attacks, fidelity_checks).
    Progress: a bar over the four groups (the shadow models' own bar opens below it) and a log line each.
    """
    train, holdout, synthetic = sets
    args = (train, holdout, synthetic, contract)
    privacy = evaluate_privacy.submit(*args, seed=child_seed(seed, 1)) if beside else None
    fidelity = evaluate_fidelity.submit(*args, seed=child_seed(seed, 3)) if beside else None
    laps = lap if lap is not None and not beside else (lambda _name: None)
    with count_progress(show_progress, "checks", 4) as advance:
        results: list[MetricResult]
        if privacy is None:
            results = evaluate_privacy(*args, seed=child_seed(seed, 1))
            advance()
            stage_log("checks 1/4: privacy checks done (distances, re-identification risks)")
            laps("privacy_checks")
        membership = run_membership_attacks(
            train,
            holdout,
            synthetic,
            membership_contract or contract,
            epsilon=epsilon,
            epochs=epochs,
            batch_size=batch_size,
            device=device,
            seed=child_seed(seed, 2),
            show_progress=show_progress,
        )
        advance()
        stage_log("checks 2/4: membership attacks done")
        laps("membership_attacks")
        if privacy is not None:
            results = privacy.result()
            advance()
            stage_log("checks 1/4: privacy checks done (distances, re-identification risks)")
        results += membership
        results += fidelity.result() if fidelity else evaluate_fidelity(*args, seed=child_seed(seed, 3))
        advance()
        stage_log("checks 3/4: fidelity checks done")
        results.append(gate_pii_values(pii, pii_synthetic))
        advance()
        stage_log(f"checks 4/4: PII gate done (the values stay in {pii_report})")
    laps("fidelity_checks")
    return results
