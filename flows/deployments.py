"""Scheduled releases: the deployment entry flow and `synthgate deploy`.

A deployment runs ``scheduled_release`` with one run-config YAML per table (plain-string
parameters, so schedules and the Prefect UI can hold them). It calls the release flow as a
subflow (itself ending in the Failed state "Blocked" when its gates block it); a blocked or refused
release ends this flow run in a Failed state with the reasons, so a nightly schedule shows it red
and any Prefect automation can alert on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from synthgate.errors import ReleaseBlocked
from synthgate.flows.config import load_run_config
from synthgate.flows.release import run_release
from synthgate.flows.stages import label_flow_run
from synthgate.tasks.runlog import blocked_message
from synthgate.validation.contract import load_contract

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/deployments.py:scheduled_release"
__all__ = ["ENTRYPOINT", "deploy", "scheduled_release"]


@flow(name="synthgate-scheduled-release", validate_parameters=True)
def scheduled_release(run_config: str, epsilon: float | None = None, seed: int | None = None) -> dict[str, Any]:
    """Run the release flow for the run config at ``run_config`` (a path on the worker).

    This parent run is named ``<table>-scheduled`` once the contract is read, then
    ``<table>-<run_id>-scheduled`` after its release subflow (named ``<table>-<run_id>``), and tagged
    table:, kind:scheduled and the outcome (released or blocked)."""
    config = load_run_config(run_config, epsilon=epsilon, seed=seed, show_progress=False)
    table = load_contract(config.contract).table
    label_flow_run(f"{table}-scheduled", [f"table:{table}", "kind:scheduled"])
    report = run_release(config)
    label_flow_run(
        f"{report['table']}-{report['run_id']}-scheduled",
        ["outcome:released" if report["released"] else "outcome:blocked"],
    )
    if not report["released"]:
        # The release subflow already ended "Blocked"; this run fails too, without the report (it could be persisted).
        raise ReleaseBlocked(blocked_message(report))
    return {k: report[k] for k in ("run_id", "table", "released", "folder", "output")}


def deploy(
    *,
    name: str,
    run_config: Path,
    work_pool: str,
    cron: str | None = None,
    interval_s: float | None = None,
    source: Path = REPO_ROOT,
    paused: bool = False,
) -> str:
    """Register a deployment of ``scheduled_release`` from the code at ``source``; returns its id.

    The worker must be able to read ``source`` and ``run_config`` at the same paths (a process
    work pool on this machine, or a shared volume).
    """
    if (cron is None) == (interval_s is None):
        raise ValueError("give exactly one of cron (e.g. '0 2 * * *') or interval_s.")
    run_config = run_config.resolve()
    if not run_config.is_file():
        raise FileNotFoundError(f"run config {str(run_config)!r} does not exist; deployments need a YAML per table.")
    load_run_config(run_config)  # fail now, not at 2 a.m.
    remote = scheduled_release.from_source(source=str(source), entrypoint=ENTRYPOINT)
    schedule: dict[str, Any] = {"cron": cron} if cron is not None else {"interval": interval_s}
    # from_source ran sync (no event loop here); Prefect's stub unions in the coroutine of its async form
    deployment_id = remote.deploy(  # type: ignore[union-attr]
        name=name,
        work_pool_name=work_pool,
        parameters={"run_config": str(run_config)},
        paused=paused,
        build=False,
        push=False,
        print_next_steps=False,
        tags=["synthgate"],
        concurrency_limit=1,
        **schedule,
    )
    return str(deployment_id)
