"""The `synthgate` command.

Exit codes: 0 released · 1 a library failed on private rows (its message withheld) · 2 bad input
(contract, config, table breaks its contract) · 3 blocked by a gate (audit: a bound above its claim) ·
4 refused: the table's lifetime privacy budget would be exceeded (nothing was read) · 5 another run
held the output or registry database longer than the lock timeout (nothing was changed) · 130 / 143
stopped by SIGINT / SIGTERM (the run is recorded as failed with what it spent, its checkpoint kept:
`synthgate resume RUN_ID`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

app = typer.Typer(
    help="Differentially private synthetic tables, released only when privacy and fidelity gates pass.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contract_app = typer.Typer(help="Draft and check data contracts.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
budget_app = typer.Typer(help="Privacy budget spent per source table, across releases.", no_args_is_help=True)
app.add_typer(budget_app, name="budget")
releases_app = typer.Typer(
    help="The release registry: every run, released, blocked, failed or refused.", no_args_is_help=True
)
app.add_typer(releases_app, name="releases")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BLOCKED = 3
EXIT_REFUSED = 4
EXIT_LOCKED = 5

Epochs = Annotated[Optional[float], typer.Option(help="Passes over the data (default: the model's, e.g. 8 for ctgan).")]
Epsilon = Annotated[Optional[float], typer.Option(help="ε to spend; at most the contract's budget.")]
Out = Annotated[Optional[Path], typer.Option(help="Output folder: synthgate.duckdb, releases/, blocked/.")]
Device = Annotated[Optional[str], typer.Option(help="auto (CUDA if present), cpu or cuda[:N].")]
Seed = Annotated[Optional[int], typer.Option(help="Seed for the split, training, sampling and checks.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]


EXIT_INTERRUPTED = 130  # SIGINT (128 + 2): the run was recorded as failed, its checkpoint kept
EXIT_TERMINATED = 143  # SIGTERM (128 + 15): the same


def printable(text: object) -> str:
    """``text`` safe for a terminal: control and format characters (newlines excepted) shown as
    escapes, so a name from a contract, config or registry cannot forge lines or colours."""
    import unicodedata

    out = []
    for ch in str(text):
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii") if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def safe(text: object) -> str:
    """``printable`` and escaped for rich markup: for every untrusted string printed through rich."""
    from rich.markup import escape

    return escape(printable(text))


def _bad_input(err: Exception) -> NoReturn:
    """Say what is wrong with the input and exit 2."""
    typer.echo(f"error: {printable(err)}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT) from None


class _RunFailureLogs:
    """Drop Prefect's own console report of a failed flow or task run (the exception, its
    traceback, "Finished in state Failed"): the command prints one message for every ending.
    Prefect's API log handler (the UI) still gets them."""

    def filter(self, record: Any) -> bool:
        return not (record.levelno >= 40 and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")))


def _one_message_per_error() -> None:
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not any(
            isinstance(f, _RunFailureLogs) for f in handler.filters
        ):
            handler.addFilter(_RunFailureLogs())


_SIGNALS_SEEN: list[str] = []  # SIGINT/SIGTERM received by our handler (Prefect's own takes SIGTERM in a flow)


def _query_interrupted(err: BaseException) -> bool:
    """DuckDB turns an exception raised by a signal handler during a query into this RuntimeError."""
    return isinstance(err, RuntimeError) and str(err).strip().lower() == "query interrupted"


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) arrived during a run; raised in the main thread so the run is recorded."""


def _stop_on_signals() -> Any:
    """SIGTERM and SIGINT raise Interrupted in the main thread; returns a function restoring the old handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: Any) -> None:
        _SIGNALS_SEEN.append(signal.Signals(signum).name)
        raise Interrupted(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    return lambda: [signal.signal(sig, h) for sig, h in old.items()]


#: Unless the user set PREFECT_LOGGING_LEVEL: Prefect's own loggers warn only, the flow and task run
#: loggers pass INFO to the Prefect API (the UI's Logs tab: the stage lines of ``flows.stages.stage_log``),
#: and the terminal shows warnings only (the CLI prints its own summary).
QUIET_TERMINAL = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}


def prefect_defaults() -> None:
    """Sane defaults for a local run; a user's own PREFECT_* settings win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
    if "PREFECT_LOGGING_LEVEL" not in os.environ:
        for key, value in QUIET_TERMINAL.items():
            os.environ.setdefault(key, value)


def _exit_for(err: BaseException) -> tuple[str, int]:
    """(label, exit code) for an error synthgate raised on purpose (``synthgate.errors``): a withheld library
    error is a failure, a refused budget, a blocked output and a locked database have their own codes,
    any other is bad input (contract, config, rows, checkpoint, registry)."""
    from synthgate.errors import BudgetExceeded, DatabaseLocked, OutputViolation, ReleaseBlocked, WithheldError

    if isinstance(err, WithheldError):
        return "error", EXIT_FAILED
    if isinstance(err, BudgetExceeded):
        return "REFUSED", EXIT_REFUSED
    if isinstance(err, (OutputViolation, ReleaseBlocked)):
        return "BLOCKED", EXIT_BLOCKED
    if isinstance(err, DatabaseLocked):
        return "error", EXIT_LOCKED
    return "error", EXIT_BAD_INPUT


def _run_guarded(flow_fn: Any, config: Any) -> dict[str, Any]:
    """Run a flow; bad input (contract, config, rows) ends in exit code 2 with the message."""
    from rich.console import Console
    from rich.markup import escape

    from synthgate.errors import SynthgateError

    console = Console(stderr=True, soft_wrap=True)
    _one_message_per_error()
    restore = _stop_on_signals()

    def say(label: str, err: BaseException, code: int) -> NoReturn:
        console.print(f"[bold red]{label}:[/] {escape(printable(err))}", highlight=False)
        raise typer.Exit(code) from None

    try:
        return flow_fn(config)  # type: ignore[no-any-return]
    except SynthgateError as err:  # expected: its message, no traceback, an exit code by kind
        label, code = _exit_for(err)
        say(label, err, code)
    except Exception as err:  # a bug: one line, the traceback on request
        if not _query_interrupted(err):
            if os.environ.get("SYNTHGATE_TRACEBACK"):
                raise
            say(
                "error",
                RuntimeError(
                    f"unexpected {type(err).__name__}: {err}. This is a bug in synthgate, not in your input; rerun "
                    "with SYNTHGATE_TRACEBACK=1 to see where it happened, and report it."
                ),
                EXIT_FAILED,
            )
        # a signal arrived while DuckDB ran a query: SIGINT through our handler, else Prefect's SIGTERM bridge
        name = _SIGNALS_SEEN[-1] if _SIGNALS_SEEN else "SIGTERM"
        console.print(
            f"[bold red]stopped[/] by {name}: the run is recorded as failed and its checkpoint kept; "
            "`synthgate resume RUN_ID` continues it (`synthgate releases list` shows the id).",
            highlight=False,
        )
        raise typer.Exit(EXIT_TERMINATED if name == "SIGTERM" else EXIT_INTERRUPTED) from None
    except (Interrupted, KeyboardInterrupt) as err:
        console.print(
            f"[bold red]stopped[/] by {escape(str(err) or 'SIGINT')}: the run is recorded as failed and its "
            "checkpoint kept; `synthgate resume RUN_ID` continues it (`synthgate releases list` shows the id).",
            highlight=False,
        )
        raise typer.Exit(EXIT_TERMINATED if "SIGTERM" in str(err) else EXIT_INTERRUPTED) from None
    finally:
        restore()


def _plan_lines(contract: Any) -> list[str]:
    """What a run of this contract would spend and need, from the contract alone (public): the ε split
    between the codec's one Gaussian release and the model, and the fewest source rows each check needs
    after the train/holdout split (with the run config's default holdout_fraction)."""
    from types import SimpleNamespace

    from synthgate.flows.config import RunConfig
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer
    from synthgate.models.synthesizers.base import codec_noise_for
    from synthgate.tasks.preflight import (
        DETECTION_FOLDS,
        MIN_HOLDOUT_ROWS,
        MIN_SHADOW_ROWS,
        MIN_TRAIN_ROWS,
        minimum_rows,
    )

    eps, delta = contract.privacy.epsilon, contract.privacy.delta
    family = get_synthesizer(contract.model)
    sigma = contract.model_options.get("codec_noise_multiplier") or codec_noise_for(
        eps, delta, family.codec_share, family.codec_noise_floor
    )
    codec_eps = PrivacyLedger(delta).epsilon_with([(float(sigma), 1.0, 1)])
    lines = [
        f"ε split at privacy.epsilon = {eps:g}, δ = {delta:g} (RDP composition, so the parts do not add up exactly):",
        f"  codec (category counts, numeric histograms, row-count estimate; one Gaussian release, σ/Δ = "
        f"{float(sigma):.3g}): ε {codec_eps:.3g} alone",
        f"  model {contract.model!r} (critic DP-SGD steps, or the marginal measurements of a marginal model): "
        f"its noise is calibrated so the composed total comes to ε {eps:g}",
    ]
    hold = RunConfig.model_fields["holdout_fraction"].default
    shadow = contract.evaluation.shadow_models > 0
    need = minimum_rows(contract, SimpleNamespace(holdout_fraction=hold, n_synthetic=None))  # type: ignore[arg-type]
    lines += [
        f"rows needed: at least {need} source rows (holdout_fraction {hold:.2g}, with room for the random split):",
        f"  training: {max(MIN_TRAIN_ROWS, MIN_SHADOW_ROWS if shadow else 0, DETECTION_FOLDS)} rows"
        + (" (the shadow-model attack trains on them)" if shadow else ""),
        f"  holdout: {max(MIN_HOLDOUT_ROWS, MIN_SHADOW_ROWS if shadow else 0, DETECTION_FOLDS)} rows for the "
        f"membership attacks and the {DETECTION_FOLDS}-fold detection check",
        "  a risk gate with an interval may still come out inconclusive above this floor: the report then "
        "states the rows that check needs (min_rows_to_pass)",
    ]
    return lines


def _print_gates(console: Any, report: dict[str, Any]) -> None:
    """ε spent (from the ledger) and each gate's pass/fail against its threshold; never a measured value.

    The values are computed on private rows: they go to the owner's report only, not to a terminal or
    a log that an operator sees."""
    p = report["privacy"]
    if p.get("epsilon_spent") is not None:
        console.print(f"ε spent {float(p['epsilon_spent']):.3f} of {p['epsilon_budget']} (δ={p['delta']:g})")
    for g in report["gates"]:
        mark = (
            "[green]pass[/]"
            if g["passed"]
            else "[yellow]inconclusive[/]"
            if g.get("outcome") == "inconclusive"
            else "[red]FAIL[/]"
        )
        op = "<=" if g.get("direction") == "max" else ">="
        name = safe(f"{g['name']:<34}")  # names such as inference_risk[income] are not markup
        console.print(f"  {mark} {name} must be {op} {g['threshold']:.4g}", highlight=False)


def _print_row_limited(console: Any, report: dict[str, Any]) -> None:
    """A passed run's inconclusive gates: which risks rest on the DP guarantee alone."""
    unsure = [safe(g["name"]) for g in report["gates"] if not g["passed"] and g.get("outcome") == "inconclusive"]
    if unsure:
        console.print(
            f"[yellow]limited by rows[/]: {', '.join(unsure)} could not bound the risk at these row counts and "
            "found no evidence of a leak; for these the release rests on the DP guarantee (see the report)",
            highlight=False,
        )


def _print_failed(console: Any, report: dict[str, Any]) -> None:
    failed = [g for g in report["gates"] if not g["passed"]]
    for g in failed:
        op = "<=" if g.get("direction") == "max" else ">="
        why = (
            "inconclusive: too few rows to bound this risk, and no evidence of a leak (it blocks only "
            "with gates.block_inconclusive: true)"
            if g.get("outcome") == "inconclusive"
            else "failed"
        )
        console.print(f"  - {safe(g['name'])}: {why} (must be {op} {g['threshold']:.4g})", highlight=False)
    if not report["gates"]:
        console.print("  - no gate was evaluated: refusing to release unchecked data", highlight=False)


def _print_spend(console: Any, config: Any) -> None:
    """The table's cumulative ε (every run recorded in the registry) and what its lifetime budget leaves."""
    from synthgate.errors import ContractError, DatabaseLocked, RegistryError
    from synthgate.governance.registry import Registry
    from synthgate.validation.contract import load_contract

    try:
        contract = load_contract(config.contract)
        spend = Registry(config.registry_path, lock_timeout_s=config.lock_timeout_s).spend(contract.table)
    except (ContractError, RegistryError, DatabaseLocked, OSError):
        return  # the error that ended the run was already printed
    life = contract.privacy.lifetime_epsilon
    left = (
        "no lifetime budget set (privacy.lifetime_epsilon): runs on it are never refused"
        if life is None
        else f"lifetime budget {life:g}, {max(0.0, life - spend.epsilon):.4g} left"
    )
    console.print(
        f"table {safe(repr(contract.table))}: ε {spend.epsilon:.4g} spent over {spend.runs} run(s) charged; {left}",
        highlight=False,
    )


def _execute(config: "RunConfig") -> None:  # type: ignore[name-defined]  # noqa: F821
    from rich.console import Console

    from synthgate.flows.release import run_release

    console = Console(stderr=True)
    try:
        report = _run_guarded(run_release, config)
    except BaseException:
        _print_spend(console, config)  # refused, bad input or failed: what the table has spent so far
        raise
    public = report["public"]  # what the CLI may print: the public report (gate outcomes, no values)
    owner = report["owner_report"]["folder"]
    _print_gates(console, public)
    _print_spend(console, config)
    if public["released"]:
        _print_row_limited(console, public)
        console.print(
            f"[bold green]RELEASED[/] table {safe(repr(public['output']['table']))} in {safe(public['output']['db'])}; "
            f"public report: {safe(report['folder'])}/report.html; owner's evaluation report (private): "
            f"{safe(owner)}/report.html",
            highlight=False,
        )
        return
    console.print(
        f"[bold red]BLOCKED[/]: nothing published. Public report: {safe(report['folder'])}/report.html; "
        f"owner's evaluation report (private, says by how much each gate missed): {safe(owner)}/report.html",
        highlight=False,
    )
    _print_failed(console, public)
    raise typer.Exit(EXIT_BLOCKED)


def ensure_demo_db(out: Path) -> Path:
    """Load the embedded parquet into a DuckDB file on first run (one writer; idempotent)."""
    import duckdb

    from synthgate.flows.demo import DEMO_TABLE, demo_parquet
    from synthgate.tasks.ingest import quote_ident

    db = out / "demo-source.duckdb"
    if db.exists():
        return db
    out.mkdir(parents=True, exist_ok=True)
    tmp = db.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with duckdb.connect(str(tmp)) as con:
        con.execute(f"CREATE TABLE {quote_ident(DEMO_TABLE)} AS SELECT * FROM read_parquet(?)", [str(demo_parquet())])
    os.replace(tmp, db)
    return db


@app.command()
def demo(
    epochs: Epochs = None,
    epsilon: Epsilon = None,
    out: Out = None,
    device: Device = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Run the release flow on the embedded UCI Adult table (ε = 3, δ = 1e-6 by default)."""
    from synthgate.flows.config import RunConfig, SourceConfig
    from synthgate.flows.demo import DEMO_TABLE, demo_contract

    out = out or Path("out/demo")
    db = ensure_demo_db(out)
    opts = {k: v for k, v in dict(epochs=epochs, epsilon=epsilon, device=device, seed=seed).items() if v is not None}
    config = RunConfig(
        contract=demo_contract(), source=SourceConfig(db=db, table=DEMO_TABLE), out=out, show_progress=not quiet, **opts
    )
    _execute(config)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", help="Run config YAML (contract, source, out, ...).")],
    epochs: Epochs = None,
    epsilon: Epsilon = None,
    out: Out = None,
    device: Device = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Run the release flow described by a run-config YAML (see README)."""
    from synthgate.errors import ContractError
    from synthgate.flows.config import load_run_config

    try:
        cfg = load_run_config(
            config,
            epochs=epochs,
            epsilon=epsilon,
            out=str(out) if out else None,
            device=device,
            seed=seed,
            show_progress=False if quiet else None,
        )
    except ContractError as err:
        _bad_input(err)
    _execute(cfg)


@app.command()
def deploy(
    run_config: Annotated[Path, typer.Option("--run-config", help="Run-config YAML of the table to release.")],
    name: Annotated[str, typer.Option(help="Deployment name, e.g. adult-nightly.")],
    pool: Annotated[
        str, typer.Option(help="Process work pool a worker polls (`prefect work-pool create NAME --type process`).")
    ] = "synthgate",
    cron: Annotated[
        Optional[str], typer.Option(help="Cron schedule in UTC, e.g. '0 2 * * *' (nightly at 02:00).")
    ] = None,
    interval: Annotated[Optional[float], typer.Option(help="Or: run every this many seconds.")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Register with the schedule paused.")] = False,
) -> None:
    """Register a scheduled deployment of the release flow with the Prefect API (PREFECT_API_URL).

    Needs a running `prefect server start` (or Prefect Cloud); `prefect worker start --pool POOL`
    then runs it. The same deployments can be declared in prefect.yaml (`prefect deploy --all`).
    """
    from synthgate.flows.deployments import deploy as register

    if (cron is None) == (interval is None):
        typer.echo("error: give exactly one of --cron '0 2 * * *' or --interval SECONDS.", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        deployment_id = register(
            name=name, run_config=run_config, work_pool=pool, cron=cron, interval_s=interval, paused=paused
        )
    except (FileNotFoundError, ValueError) as err:
        _bad_input(err)
    typer.echo(
        f"deployment synthgate-scheduled-release/{name} registered ({deployment_id}); start a worker: "
        f"prefect worker start --pool {pool}"
    )


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Id of the killed or failed run (`synthgate releases list`).")],
    out: Out = None,
    registry: Annotated[Optional[Path], typer.Option(help="Registry file (default: OUT/registry.duckdb).")] = None,
    quiet: Quiet = False,
) -> None:
    """Continue a killed or failed run from its last training checkpoint, with its ledger and reservation.

    The run's config comes from the registry; its ε is accounted as if it had never stopped.
    """
    from pydantic import ValidationError

    from synthgate.errors import RegistryError
    from synthgate.flows.config import RunConfig
    from synthgate.governance.registry import Registry, check_resumable

    reg = Registry(_registry_path(out, registry))
    try:
        record = check_resumable(reg.get(run_id))
        cfg = RunConfig.model_validate({**record.config, "resume": run_id, "show_progress": not quiet})
    except (RegistryError, ValidationError) as err:
        _bad_input(err)
    _execute(cfg)


def _registry_path(out: Path | None, registry: Path | None, config: Path | None = None) -> Path:
    """--registry, else the run config's registry (--config), else $SYNTHGATE_REGISTRY, else OUT/registry.duckdb
    (--out, default out/demo)."""
    if registry is not None:
        return registry
    if config is not None:
        from synthgate.errors import ContractError
        from synthgate.flows.config import load_run_config

        try:
            return load_run_config(config).registry_path
        except ContractError as err:
            _bad_input(err)
    env = os.environ.get("SYNTHGATE_REGISTRY")
    if env and out is None:
        return Path(env)
    return (out or Path("out/demo")) / "registry.duckdb"


def _plain_console() -> Any:
    """A console for tables: on a terminal its width; piped or redirected, wide enough that nothing is cut."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)


RegistryOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Registry file (default: the --config run's registry, else $SYNTHGATE_REGISTRY, else OUT/registry.duckdb)."
    ),
]
OutOpt = Annotated[Optional[Path], typer.Option(help="The runs' output folder (default: out/demo).")]
RunConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", help="A run config YAML: use the registry its runs use.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")]


@budget_app.command("show")
def budget_show(
    table: Annotated[Optional[str], typer.Option(help="Source table (the contract's `table`); default: all.")] = None,
    out: OutOpt = None,
    registry: RegistryOpt = None,
    config: RunConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """ε and δ spent on a table over all its runs (basic composition), against its lifetime budget."""
    import json

    from rich.table import Table

    from synthgate.errors import RegistryError
    from synthgate.governance.registry import Registry

    reg = Registry(_registry_path(out, registry, config))
    try:
        if not reg.path.exists():
            raise RegistryError(
                f"no release registry at {reg.path}: no run has used it yet. Pass the --out (or "
                "--registry) the runs used."
            )
        tables = [table] if table else reg.tables()
        records = reg.runs()
    except RegistryError as err:
        _bad_input(err)
    if table and not any(r.source_table == table for r in records):
        typer.echo(
            printable(f"error: no run on table {table!r} in {reg.path}. Tables there: {reg.tables()}."), err=True
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    out_table = Table(
        "table",
        "ε spent",
        "lifetime ε",
        "ε left",
        "δ spent",
        "lifetime δ",
        "runs charged",
        "contents (keyed fingerprints)",
    )
    rows = []
    for name in tables:
        spend = reg.spend(name)
        last = next(r for r in records if r.source_table == name)  # newest first
        life_e, life_d = last.lifetime_epsilon, last.lifetime_delta
        rows.append(
            {
                "table": name,
                "epsilon_spent": spend.epsilon,
                "lifetime_epsilon": life_e,
                "epsilon_left": None if life_e is None else max(0.0, life_e - spend.epsilon),
                "delta_spent": spend.delta,
                "lifetime_delta": life_d,
                "runs_charged": spend.runs,
                "contents": len(spend.by_fingerprint),
            }
        )
        if as_json:
            continue
        left = "unlimited" if life_e is None else f"{max(0.0, life_e - spend.epsilon):.4g}"
        out_table.add_row(
            safe(name),
            f"{spend.epsilon:.4g}",
            "none" if life_e is None else f"{life_e:g}",
            left,
            f"{spend.delta:.3g}",
            "none" if life_d is None else f"{life_d:g}",
            str(spend.runs),
            str(len(spend.by_fingerprint)),
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _plain_console().print(out_table)
    typer.echo(
        "Lifetime budgets as the newest run's contract states them. Running runs count their full "
        "reservation; blocked runs count what they spent."
    )


@releases_app.command("list")
def releases_list(
    table: Annotated[Optional[str], typer.Option(help="Only runs on this source table.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs.", min=1)] = 50,
    out: OutOpt = None,
    registry: RegistryOpt = None,
    config: RunConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every recorded run, newest first: status, ε charged, user, output."""
    import json
    import sys

    from rich.table import Table

    from synthgate.errors import RegistryError
    from synthgate.governance.registry import Registry

    try:
        records = Registry(_registry_path(out, registry, config)).runs(table=table, limit=limit)
    except RegistryError as err:
        _bad_input(err)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "run_id": r.run_id,
                        "table": r.source_table,
                        "status": r.status,
                        "started_at": r.started_at,
                        "user": r.user_name,
                        "epsilon_charged": r.epsilon_charged,
                        "failed_gates": [g["name"] for g in r.gates if not g.get("passed", True)],
                        "error": r.error,
                    }
                    for r in records
                ],
                indent=2,
                default=str,
            )
        )
        return
    cut = 80 if sys.stdout.isatty() else None  # untruncated when piped or redirected
    view = Table()
    view.add_column("run id", no_wrap=True)
    view.add_column("table")
    view.add_column("status", no_wrap=True)
    view.add_column("started (UTC)")
    view.add_column("user")
    view.add_column("ε charged", no_wrap=True)
    view.add_column("failed gates / error")
    for r in records:
        failed = [g["name"] for g in r.gates if not g.get("passed", True)]
        why = ", ".join(failed) if failed else (r.error or "")
        view.add_row(
            safe(r.run_id),
            safe(r.source_table),
            safe(r.status),
            safe(r.started_at),
            safe(r.user_name or ""),
            f"{r.epsilon_charged:.4g}",
            safe(why[:cut]),
        )
    _plain_console().print(view)


@releases_app.command("show")
def releases_show(
    run_id: Annotated[str, typer.Argument(help="Run id from `synthgate releases list`.")],
    out: OutOpt = None,
    registry: RegistryOpt = None,
    config: RunConfigOpt = None,
) -> None:
    """Everything the registry holds about one run (JSON): config, hashes, gates, ε, output."""
    import json

    from synthgate.errors import RegistryError
    from synthgate.governance.registry import Registry

    try:
        record = Registry(_registry_path(out, registry, config)).get(run_id)
    except RegistryError as err:
        _bad_input(err)
    typer.echo(json.dumps(record.to_dict(), indent=2))


TableRef = typer.Option(help="A .parquet or .csv file, or FILE.duckdb:TABLE.")


@app.command()
def evaluate(
    train: Annotated[str, TableRef],
    holdout: Annotated[str, TableRef],
    synthetic: Annotated[str, TableRef],
    contract: Annotated[Path, typer.Option(help="Data contract YAML (bounds, categories, gates).")],
    out: Annotated[Path, typer.Option(help="Folder for report.json and report.html.")],
    seed: Seed = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow", help="Also run the shadow-model attack, training the contract's model as a stand-in (slow)."
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Run every privacy and fidelity check on three tables made anywhere; exit 3 when a gate fails.

    TRAIN is the table the synthesizer learned from, HOLDOUT real rows it never saw (same
    population), SYNTHETIC its output. Nothing is published; the report goes to OUT.
    """
    from rich.console import Console

    from synthgate.errors import InputError
    from synthgate.flows.evaluate import EvaluateConfig, evaluate_flow, parse_table_ref

    console = Console(stderr=True)
    try:
        config = EvaluateConfig(
            train=parse_table_ref(train),
            holdout=parse_table_ref(holdout),
            synthetic=parse_table_ref(synthetic),
            contract=contract,
            out=out,
            seed=seed or 0,
            shadow=shadow,
            show_progress=not quiet,
        )
    except InputError as err:
        console.print(f"[bold red]error:[/] {safe(err)}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    report = _run_guarded(evaluate_flow, config)
    _print_gates(console, report)
    if report["released"]:
        _print_row_limited(console, report)
        passed = "every gate" if not report["failed_gates"] else "no gate found evidence of a leak"
        console.print(f"[bold green]PASSED[/]: {passed}. Report: {out}/report.html")
        return
    console.print(f"[bold red]FAILED[/] {len(report['failed_gates'])} gate(s). Report: {out}/report.html")
    _print_failed(console, report)
    raise typer.Exit(EXIT_BLOCKED)


@app.command()
def audit(
    epsilon: Annotated[
        list[float], typer.Option("--epsilon", help="ε to audit (repeatable); default 1, 3 and 10.")
    ] = [],  # noqa: B006
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config", help="Run-config YAML naming the contract and source (default: the embedded Adult demo)."
        ),
    ] = None,
    canaries: Annotated[
        int, typer.Option(help="Gradient canaries per run (each included with probability 1/2).", min=2)
    ] = 1000,
    no_reserve: Annotated[
        bool,
        typer.Option(
            "--no-reserve", help="Leave the rows' own gradients at the canaries' coordinates (a weaker audit)."
        ),
    ] = False,
    clipping: Annotated[
        str,
        typer.Option(
            "--clipping",
            help="Clipping path to audit: release (the path a release uses: ghost for ctgan), ghost, "
            "per-sample, or both (each ε on each path).",
        ),
    ] = "release",
    epochs: Epochs = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="JSON file for the results.")] = None,
    device: Device = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Audit the DP critic: a one-run lower bound on ε (Steinke, Nasr & Jagielski 2023) per ε.

    Trains the contract's model as a release would, with gradient canaries planted in its DP
    network, and bounds ε from how well the canaries' secret inclusion can be guessed (95%
    confidence), on the clipping path a release uses (--clipping release, ghost for ctgan), ghost,
    per-sample, or both. Exit 3 when a bound exceeds the ε the ledger claims for that network. Each audited
    run spends its ε on the source, outside the registry's budget: audit public or stand-in data
    (the default: the embedded Adult demo).
    """
    from rich.console import Console
    from rich.table import Table

    from synthgate.errors import ContractError
    from synthgate.flows.audit import AuditConfig, audit_flow
    from synthgate.flows.config import SourceConfig, load_run_config
    from synthgate.flows.demo import DEMO_TABLE, demo_contract

    console = Console(stderr=True)
    if config is not None:
        try:
            run_cfg = load_run_config(config)
        except ContractError as err:
            _bad_input(err)
        contract_path, source, out_dir = run_cfg.contract, run_cfg.source, run_cfg.out
    else:
        out_dir = Path("out/demo")
        contract_path, source = demo_contract(), SourceConfig(db=ensure_demo_db(out_dir), table=DEMO_TABLE)
    opts: dict[str, Any] = {k: v for k, v in dict(epochs=epochs, device=device, seed=seed).items() if v is not None}
    if epsilon:
        opts["epsilons"] = epsilon
    try:
        cfg = AuditConfig(
            contract=contract_path,
            source=source,
            canaries=canaries,
            reserve=not no_reserve,
            clipping=clipping,
            output=output or out_dir / "audit.json",
            show_progress=not quiet,
            **opts,
        )
    except ValueError as err:
        _bad_input(err)
    result = _run_guarded(audit_flow, cfg)
    table = Table(title=f"one-run privacy audit, {result['canaries']} canaries, {result['confidence']:.0%} confidence")
    for col in ("ε target", "clipping", "ε of the DP network", "lower bound", "guesses", "right", "verdict"):
        table.add_column(col, justify="right", no_wrap=col in ("clipping", "verdict"))
    for r in result["runs"]:
        b = r["bound"]
        table.add_row(
            f"{r['epsilon_target']:g}",
            r["clipping"],
            f"{r['epsilon_audited_network']:.3f}",
            f"{b['epsilon_lower_bound']:.3f}",
            str(b["guesses"]),
            str(b["correct"]),
            "[green]below the claim[/]" if r["below_claim"] else "[bold red]ABOVE THE CLAIM[/]",
        )
    console.print(table)
    console.print(result["privacy_note"], highlight=False)
    console.print(f"results: {cfg.output}")
    if not result["all_below_claim"]:
        console.print("[bold red]AUDIT FAILED[/]: the implementation leaks more than its ledger claims.")
        raise typer.Exit(EXIT_BLOCKED)


@app.command()
def models(
    name: Annotated[Optional[str], typer.Argument(help="Show one model's options in full.")] = None,
) -> None:
    """List the registered synthesizers (set one with `model:` in the contract)."""
    from rich.console import Console
    from rich.table import Table

    from synthgate.models.synthesizers import MODEL_NAMES, get_synthesizer

    console = Console()
    if name is not None:
        try:
            cls = get_synthesizer(name)
        except ValueError as err:
            _bad_input(err)
        console.print(f"[bold]{name}[/] — {cls.info.family}", highlight=False)
        console.print(f"paper: {cls.info.paper}", highlight=False)
        console.print(f"good for: {cls.info.good_for}", highlight=False)
        console.print(f"caveats: {cls.info.caveats}", highlight=False)
        console.print(f"conditional sampling: {'yes' if cls.conditional else 'no (rejection)'}")
        options = Table("option (contract model_options)", "default", "description")
        for field, spec in cls.config_class.model_fields.items():
            options.add_row(field, repr(spec.default), spec.description or "")
        console.print(options)
        return
    table = Table("model", "family", "good for", "conditional")
    for model_name in MODEL_NAMES:
        cls = get_synthesizer(model_name)
        table.add_row(model_name, cls.info.family, cls.info.good_for, "yes" if cls.conditional else "no")
    console.print(table)
    console.print("Details and options: synthgate models NAME")


@app.command()
def sample(
    release: Annotated[Path, typer.Option(help="A release folder (out/releases/RUN_ID) holding model.pt.")],
    n: Annotated[int, typer.Option("--n", help="Rows to return.", min=1)],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write: .parquet or .csv.")],
    where: Annotated[
        Optional[str], typer.Option(help="SQL condition the rows must meet, e.g. \"income = '>50K' AND age < 30\".")
    ] = None,
    seed: Seed = None,
    device: Device = None,
    registry: Annotated[
        Optional[Path],
        typer.Option(
            help="Release registry that recorded the run (default: registry.duckdb two levels above the folder, "
            "i.e. OUT/registry.duckdb). The folder's files must match the hashes it recorded."
        ),
    ] = None,
) -> None:
    """Draw more rows from a released model (post-processing: no private row is read, no ε spent).

    The folder is checked first against the SHA-256 of each file recorded in the registry when the run
    was published: a changed, missing or added file refuses it (exit 2).
    """
    import tempfile

    from synthgate.errors import ContractError, DatabaseLocked, RegistryError, WhereError
    from synthgate.governance.registry import Registry
    from synthgate.models.sampling import sample_where
    from synthgate.models.synthesizers import load_synthesizer
    from synthgate.validation.contract import load_contract
    from synthgate.validation.derived import add_derived_columns

    if output.suffix not in (".parquet", ".csv"):
        typer.echo(f"error: --output must end in .parquet or .csv. Got {str(output)!r}.", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    model_path, contract_path = release / "model.pt", release / "contract.yaml"
    if not model_path.is_file() or not contract_path.is_file():
        typer.echo(
            f"error: {release} is not a release folder (it needs model.pt and contract.yaml; blocked "
            "runs have no model). Pass out/releases/RUN_ID of a RELEASED run.",
            err=True,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    registry_path = registry or release.resolve().parent.parent / "registry.duckdb"
    try:
        Registry(registry_path).verify_folder(release.resolve().name, release)
    except (RegistryError, DatabaseLocked) as err:
        _bad_input(err)
    try:
        contract = load_contract(contract_path)
        model = load_synthesizer(model_path, contract, device=device or "auto")
        if where:
            result = sample_where(model, n, where=where, seed=seed or 0)
            rows = result.rows
            how = (f"{result.method}; fixed {result.fixed}; " if result.fixed else f"{result.method}; ") + (
                f"{result.drawn} rows generated, acceptance {result.acceptance:.3f}"
            )
        else:
            rows, how = model.sample(n, seed=seed or 0), "unconditional"
        rows = add_derived_columns(rows, contract)  # generated from their sources (post-processing)
    except (WhereError, ContractError, ValueError) as err:
        _bad_input(err)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        rows.write_parquet(tmp) if output.suffix == ".parquet" else rows.write_csv(tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    typer.echo(f"wrote {rows.height} rows to {output} ({model.name}; {how})", err=True)
    typer.echo(
        "UNCHECKED rows: drawn from the released model after its gates ran; no privacy or fidelity gate has "
        "checked them (the checked release is the published table and synthetic.parquet in the release folder).",
        err=True,
    )


@contract_app.command("check")
def contract_check(
    file: Annotated[Path, typer.Argument(help="The contract YAML to check.")],
    db: Annotated[
        Optional[Path],
        typer.Option(help="DuckDB file: also look at the table's rows for duplicated or deterministic columns."),
    ] = None,
    table: Annotated[Optional[str], typer.Option(help="Table in --db (default: the contract's `table`).")] = None,
) -> None:
    """Validate a contract and list what is still data-derived (exit 2 when invalid).

    With --db, also point out columns that equal another column (or it plus a constant) in every
    row and are not declared `derived`: the synthesizer would break the identity apart. That scan
    reads private rows and prints column names only.
    """
    from synthgate.errors import ContractError
    from synthgate.validation.contract import load_contract

    try:
        contract = load_contract(file)
    except ContractError as err:
        _bad_input(err)
    typer.echo(
        f"{file}: valid contract for table {contract.table!r} "
        f"({len(contract.modelled_columns)} learned, {len(contract.derived_columns)} derived, "
        f"{len(contract.excluded_columns)} identifier/pii columns)."
    )
    derived = contract.data_derived_columns
    if derived:
        typer.echo(
            f"still data-derived (from_data: true), so the contract_is_public gate blocks every "
            f"release: {', '.join(repr(n) for n in derived)}. Replace each bound/category list with "
            "public knowledge (or confirm a drafted `derived`) and set from_data: false."
        )
    else:
        typer.echo("nothing marked from_data: the contract_is_public gate passes.")
    for name in contract.derived_columns:
        d = contract.columns[name].derived
        assert d is not None
        rule = (
            "(a copy)"
            if d.as_ == "copy"
            else f"+ {d.offset:g}" + (" days" if contract.columns[name].kind == "datetime" else "")
        )
        typer.echo(f"derived: {name!r} = {d.source!r} {rule} (generated, not learned)")
    for line in _plan_lines(contract):
        typer.echo(line)
    if contract.privacy.lifetime_epsilon is None:
        typer.echo(
            "privacy.lifetime_epsilon is not set: retries on this table can spend ε without limit. "
            f"Set it (e.g. {3 * contract.privacy.epsilon:g}, 3x the per-release ε)."
        )
    if db is not None:
        from synthgate.errors import InputError
        from synthgate.flows.config import SourceConfig
        from synthgate.tasks.ingest import prepare_frame, read_source
        from synthgate.validation.derived import find_derivations

        try:
            df = prepare_frame(
                read_source(SourceConfig(db=db, table=table or contract.table), columns=list(contract.columns)),
                contract,
            )
        except InputError as err:
            _bad_input(err)
        learned = [n for n in contract.modelled_columns if n in df.columns]
        found = [f for f in find_derivations(df, learned)]
        for f in found:
            how = (
                "`derived: {from: " + f.source + ", as: copy}`"
                if f.offset is None
                else "`derived: {from: " + f.source + f", as: offset, offset: {f.offset:g}}}`"
            )
            typer.echo(
                f"deterministic: {f.describe()}; the synthesizer would break it apart. Declare "
                f"{f.column!r} {how} if that holds by definition."
            )
        if not found:
            typer.echo("no learned column duplicates another or differs from one by a constant.")


@contract_app.command("export")
def contract_export(
    file: Annotated[Path, typer.Argument(help="The contract YAML.")],
    format: Annotated[str, typer.Option("--format", help="frictionless (Table Schema) or sdv (SINGLE_TABLE_V1).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the JSON.")],
) -> None:
    """Write a contract as a Frictionless Table Schema or SDV metadata (JSON); `contract import` reads it back."""
    import json

    from synthgate.errors import ContractError
    from synthgate.validation.contract import load_contract
    from synthgate.validation.interop import to_frictionless, to_sdv

    writers = {"frictionless": to_frictionless, "sdv": to_sdv}
    if format not in writers:
        _bad_input(ValueError(f"--format must be one of {sorted(writers)}. Got {format!r}."))
    try:
        contract = load_contract(file)
    except ContractError as err:
        _bad_input(err)
    output.write_text(json.dumps(writers[format](contract), indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {output} ({format}) for table {contract.table!r}.")


@contract_app.command("import")
def contract_import(
    file: Annotated[Path, typer.Argument(help="A Table Schema or SDV metadata JSON file.")],
    format: Annotated[str, typer.Option("--format", help="frictionless or sdv.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the contract YAML.")],
    table: Annotated[Optional[str], typer.Option(help="Table name, when the schema has none.")] = None,
    epsilon: Annotated[Optional[float], typer.Option(help="Privacy ε, when the schema states no budget.")] = None,
    delta: Annotated[float, typer.Option(help="Privacy δ, with --epsilon.")] = 1e-6,
) -> None:
    """Read a contract from a Frictionless Table Schema or SDV metadata (as `contract export` writes)."""
    import json

    from synthgate.errors import ContractError
    from synthgate.validation.interop import from_frictionless, from_sdv

    if format not in ("frictionless", "sdv"):
        _bad_input(ValueError(f"--format must be frictionless or sdv. Got {format!r}."))
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        _bad_input(ValueError(f"cannot read {file} as JSON: {err}. Pass a schema or metadata JSON file."))
    try:
        privacy = {"epsilon": epsilon, "delta": delta} if epsilon is not None else None
        contract = from_frictionless(data, table=table, privacy=privacy) if format == "frictionless" else from_sdv(data)
    except ContractError as err:
        _bad_input(err)
    output.write_text(contract.to_yaml())
    typer.echo(
        f"wrote {output}: contract for table {contract.table!r} ({len(contract.columns)} columns); "
        "check it with `synthgate contract check`."
    )


@contract_app.command("infer")
def contract_infer(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the draft YAML.")],
    db: Annotated[Optional[Path], typer.Option(help="DuckDB file holding the table (with --table or --query).")] = None,
    table: Annotated[
        Optional[str],
        typer.Option(
            help="Table to describe in --db; with --path or --query, the contract's table name "
            "(default for --path: the file's stem)."
        ),
    ] = None,
    path: Annotated[Optional[Path], typer.Option(help="A Parquet or CSV file to describe instead of a table.")] = None,
    query: Annotated[Optional[str], typer.Option(help="A read-only SELECT against --db to describe.")] = None,
    missing: Annotated[list[str], typer.Option(help="A string meaning 'missing' (repeatable), e.g. '?'.")] = [],  # noqa: B006
    dp: Annotated[
        Optional[float],
        typer.Option(
            "--dp",
            help="Learn bounds and categories with DP at this ε, charged to the table's lifetime budget in "
            "the registry (--out/--registry), instead of copying them from the rows.",
        ),
    ] = None,
    dp_delta: Annotated[float, typer.Option(help="δ of --dp (below 1/n).")] = 1e-7,
    lifetime_epsilon: Annotated[
        Optional[float],
        typer.Option(
            help="With --dp on a table the registry does not know yet: its lifetime ε (default: the inference "
            "plus 3 releases)."
        ),
    ] = None,
    out: OutOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Draft a contract from a table. Its bounds and categories come from PRIVATE rows: review them.

    With --dp EPS they are learned with differential privacy instead (DP quantile bins on a public
    grid, a thresholded DP histogram of categories), charged to the table's lifetime budget.
    """
    from pydantic import ValidationError

    from synthgate.errors import InputError
    from synthgate.flows.config import SourceConfig
    from synthgate.tasks.ingest import read_source
    from synthgate.validation.infer import infer_contract, propose_target, render_inferred_yaml

    try:  # the source rules of a run: one of table / query (read-only SELECT) / path, checked before a read
        source = SourceConfig(db=db, table=None if (path or query) else table, query=query, path=path)
    except ValidationError as err:
        _bad_input(
            ValueError(
                "; ".join(str(e["msg"]) for e in err.errors()) + ". Pass --db with --table or --query, or --path."
            )
        )
    name = table or (path.stem if path is not None else None)
    if not name:
        _bad_input(ValueError("--query needs --table NAME: the table name the contract describes."))
    if dp is not None:
        return _contract_infer_dp(
            source, name, output, missing, dp, dp_delta, lifetime_epsilon, _registry_path(out, registry)
        )
    try:
        df = read_source(source)
    except InputError as err:
        _bad_input(err)
    contract = infer_contract(df, table=name, missing_values=missing)
    proposed = propose_target(contract)
    text = render_inferred_yaml(contract)
    if proposed is not None:
        contract = contract.model_copy(update={"target": proposed})
        text = (
            f"# target: {proposed!r} is a PROPOSAL, guessed from the column names and kinds alone (no value\n"
            "# read): confirm it, change it, or set target: null before a release.\n" + render_inferred_yaml(contract)
        )
        typer.echo(f"proposed target: {proposed!r} (from its name and kind only; review it in the draft)", err=True)
    output.write_text(text, encoding="utf-8")
    typer.secho(
        f"wrote {output}. WARNING: every bound and category marked from_data was read from the "
        "private rows. Replace them with public knowledge before a release counts as DP; until "
        "then the contract_is_public gate blocks every release.",
        fg="yellow",
        err=True,
    )


def _contract_infer_dp(
    source: Any,
    table: str,
    output: Path,
    missing: list[str],
    epsilon: float,
    delta: float,
    lifetime_epsilon: float | None,
    registry_path: Path,
) -> None:
    """`contract infer --dp`: charge the registry before reading a row, then learn with DP."""
    from rich.console import Console
    from rich.markup import escape

    from synthgate.errors import BudgetExceeded, ContractError, DatabaseLocked, InputError, RegistryError
    from synthgate.governance.registry import Registry
    from synthgate.models.synthesizers.base import private_entropy
    from synthgate.tasks.ingest import read_source
    from synthgate.validation.dp_infer import infer_with_budget, render_dp_yaml
    from synthgate.validation.infer import infer_contract

    console = Console(stderr=True)
    try:
        contract = infer_with_budget(
            table=table,
            read=lambda: read_source(source),
            draft=lambda df: infer_contract(df, table=table, missing_values=missing),
            registry=Registry(registry_path),
            epsilon=epsilon,
            delta=delta,
            entropy=private_entropy(),
            lifetime_epsilon=lifetime_epsilon,
            output=str(output),
        )
    except BudgetExceeded as err:
        console.print(f"[bold red]REFUSED:[/] {escape(str(err))} (Here: a smaller --dp.)", highlight=False)
        raise typer.Exit(EXIT_REFUSED) from None
    except DatabaseLocked as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(EXIT_LOCKED) from None
    except (InputError, ContractError, RegistryError) as err:
        _bad_input(err)
    output.write_text(render_dp_yaml(contract), encoding="utf-8")
    paid = contract.dp_inference
    assert paid is not None  # set by infer_with_budget
    console.print(
        f"wrote {escape(str(output))}: {len(contract.dp_learned_columns)} column(s) learned with DP, ε "
        f"{paid.epsilon:.3g} (δ {paid.delta:.2g}) charged to table {table!r} in {escape(str(registry_path))} "
        f"(run {paid.run_id}). Run releases with this registry. Still from the rows: the kinds and the columns "
        f"listed under from_data ({len(contract.data_derived_columns)}).",
        highlight=False,
    )


def main() -> None:
    prefect_defaults()
    app()


if __name__ == "__main__":
    main()
