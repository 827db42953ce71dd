"""Pre-flight: everything about a release that can be checked before a private row is read.

``preflight_release`` runs at the start of the release flow, before the run is recorded in the
registry (so before any ε is reserved) and before any value is read. It refuses, with an
InputError (exit 2) that says what to change:

- an output target that could be, or alias, the source: the output database (or the registry)
  is the source database, by resolved path or as the same file under another name (hard link);
  a registry that is the output database; an output table with a reserved name;
- an output folder, output database or registry path that cannot be written as one (a file
  where a folder must be, a folder where a file must be, a file that is not a DuckDB database);
- a plan that is not finite: epochs or batch size beyond the bounds below;
- a table too small for every check the contract enables (rows counted with ``COUNT(*)``, no
  value read) and δ not below 1/n;
- work beyond the stated bound: rows x encoded width of the largest matrix a stage holds.

Row count: counting the rows is a query on the private table, but it reads no value; the
count decides only whether the run is refused (like validation, outside the DP guarantee, see
DESIGN.md "what stays outside the guarantee").
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import duckdb

from synthgate.errors import ContractError, DatabaseLocked, InputError
from synthgate.governance.locks import connect
from synthgate.tasks.config import MAX_EPOCHS, RunConfig
from synthgate.tasks.ingest import count_source_rows
from synthgate.validation.contract import RESERVED_PREFIXES, Contract, check_table_name

# The rows every enabled check needs (validation/gates.py, tasks/evaluate.py, validation/privacy.py,
# validation/fidelity.py): membership attacks 10 members and 20 holdout rows, the shadow attack 20
# of each, NNDR 2 of each, detection 5 folds of holdout and synthetic rows.
MIN_TRAIN_ROWS = 10
MIN_HOLDOUT_ROWS = 20
MIN_SHADOW_ROWS = 20
DETECTION_FOLDS = 5
# The split draws a secret coin per row, so the holdout's size varies: ask for the minimum plus
# four standard deviations of the binomial split, so a table that passes here is not refused later.
SPLIT_SLACK_SD = 4.0

# Work bound: the largest encoded matrix any stage holds is (rows) x (encoded width), with rows at
# most max_rows for training and evaluation_rows for the checks (attack_rows for the nearest-
# neighbour attacks, which compare every synthetic row with every member). One cell is 4 bytes
# (float32) in training, 8 in the checks; the bound below keeps one stage's matrix under ~4 GB.
MAX_ENCODED_CELLS = 500_000_000
# The membership and anonymeter attacks compare rows x rows over the encoded width.
MAX_PAIRWISE_CELLS = 50_000_000_000
# Encoded width: every stage's networks, distances and density models grow with it. The embedded
# Adult contract is 131 wide (column_widths); the 10,000-category table (10 minutes, 3.7 GB
# in the membership attack on 2,000 rows) is refused; modeldata::pd_speech's 752 columns encode to
# 1,507 and run (benchmarks/wide.py). A wider table must group rare categories or model fewer columns.
MAX_ENCODED_WIDTH = 4096


def column_widths(contract: Contract, model_conf: Any = None) -> dict[str, int]:
    """Encoded columns per modelled column, an upper bound from the contract alone: the wider of
    the model's codec (models/codec.py: a slot per declared category, plus null when nullable; a
    numeric value slot, ``max_modes`` mode slots under ``numeric_encoding: modes`` (declared modes:
    their number), 2 null slots when nullable) and the checks' distance encoding
    (validation/privacy.py: categories + null + other; a numeric value and its null flag)."""
    modes = getattr(model_conf, "numeric_encoding", "quantile") == "modes"
    max_modes = int(getattr(model_conf, "max_modes", 10) or 10)
    widths: dict[str, int] = {}
    for name in contract.modelled_columns:
        col = contract.columns[name]
        if col.kind == "categorical":
            widths[name] = len(col.categories) + 2  # type: ignore[union-attr]
        elif col.kind == "boolean":
            widths[name] = 3
        else:
            declared = getattr(col, "modes", None)
            codec = 1 + (len(declared) if declared else max_modes if modes else 0) + (2 if col.nullable else 0)
            widths[name] = max(2, codec)
    return widths


def encoded_width(contract: Contract, model_conf: Any = None) -> int:
    """Columns of the widest encoded matrix a stage holds (``column_widths`` summed)."""
    return sum(column_widths(contract, model_conf).values())


def _widest(widths: dict[str, int], k: int = 5) -> str:
    """The ``k`` widest columns and what the rest add, for an error message (names and widths only)."""
    top = sorted(widths.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    shown = ", ".join(f"{name!r} {w}" for name, w in top)
    rest = len(widths) - len(top)
    return shown + (
        f", and {rest} more column(s) adding {sum(widths.values()) - sum(w for _, w in top)}" if rest else ""
    )


def minimum_rows(contract: Contract, config: RunConfig) -> int:
    """The smallest table for which every enabled check has the rows it needs after the split."""
    need_train = max(
        MIN_TRAIN_ROWS,
        MIN_SHADOW_ROWS if contract.evaluation.shadow_models else 0,
        DETECTION_FOLDS if config.n_synthetic is None else 0,
    )
    need_hold = max(MIN_HOLDOUT_ROWS, MIN_SHADOW_ROWS if contract.evaluation.shadow_models else 0, DETECTION_FOLDS)
    f = config.holdout_fraction
    k, b = SPLIT_SLACK_SD, math.sqrt(f * (1 - f))

    def smallest(share: float, need: int) -> int:
        # share * n - k * b * sqrt(n) >= need, solved for sqrt(n)
        root = (k * b + math.sqrt(k * k * b * b + 4 * share * need)) / (2 * share)
        return min(math.ceil(root * root), 10**15)

    return max(need_train + need_hold, smallest(f, need_hold), smallest(1 - f, need_train))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_output_target(config: RunConfig, output_table: str) -> None:
    """The output folder, database, table and registry: writable as such, and none is the source."""
    try:
        check_table_name(output_table, what="output table")
    except ValueError as err:
        raise InputError(f"{err} Set output_table in the run config.") from None
    if output_table.lower().startswith(RESERVED_PREFIXES):  # pragma: no cover (check_table_name refuses)
        raise InputError(f"output table {output_table!r} is reserved.")
    out, db, reg = config.out, config.output_db, config.registry_path
    try:
        for folder in (out, *out.parents):
            if folder.exists() and not folder.is_dir():
                raise InputError(
                    f"--out {str(out)!r} cannot be an output folder: {str(folder)!r} is a file. Pass a folder "
                    "(new or existing) for the output database, releases/ and blocked/."
                )
        for path, what in ((db, "output database"), (reg, "registry")):
            if path.exists() and not path.is_file():
                raise InputError(f"the {what} {str(path)!r} is a folder, not a file. Move it aside or change --out.")
            for folder in path.parents:
                if folder.exists() and not folder.is_dir():
                    raise InputError(f"the {what} {str(path)!r} cannot be created: {str(folder)!r} is a file.")
    except ValueError as err:  # an embedded NUL byte in a path
        raise InputError(f"an output path is not a valid path ({err}). Fix out/registry in the run config.") from None
    if _same_file(db, reg):
        raise InputError(
            f"the registry {str(reg)!r} is the output database. Give the registry its own file (registry: ...)."
        )
    src = config.source
    for given in (src.db, src.path):
        if given is None:
            continue
        for path, what in ((db, "output database"), (reg, "registry")):
            if _same_file(Path(given), path):
                raise InputError(
                    f"the source {str(given)!r} is the {what} {str(path)!r}: a release would write synthetic "
                    "rows (or run records) into the file holding the private table, and could replace it. "
                    "Keep the private table in its own file, or pass another --out."
                )
    if db.exists():
        _check_duckdb_file(db, "output database", config.lock_timeout_s)


def _check_duckdb_file(path: Path, what: str, timeout_s: float) -> None:
    try:
        with connect(path, timeout_s=timeout_s, read_only=True):
            pass
    except DatabaseLocked:
        raise
    except duckdb.Error as err:
        raise InputError(
            f"the {what} {str(path)!r} exists but cannot be opened as a DuckDB database "
            f"({type(err).__name__}); nothing was changed. Move it aside or pass another --out."
        ) from None


def check_plan(model_conf: Any) -> None:
    """The model's epochs and batch size (contract model_options or the run config) are finite and sane."""
    epochs = getattr(model_conf, "epochs", None)
    if epochs is not None and not (math.isfinite(float(epochs)) and 0 < float(epochs) <= MAX_EPOCHS):
        raise ContractError(
            f"epochs must be a finite number in (0, {MAX_EPOCHS:g}]. Got {epochs!r}. Set epochs in the run "
            "config or model_options."
        )
    batch = getattr(model_conf, "batch_size", None)
    if batch is not None and not 1 <= int(batch) <= 10_000_000:
        raise ContractError(f"batch_size must be in [1, 10000000]. Got {batch!r}.")


def check_work(contract: Contract, config: RunConfig, n_rows: int, model_conf: Any = None) -> None:
    """Refuse a plan whose largest encoded matrix exceeds the stated bound (before any row is read)."""
    widths = column_widths(contract, model_conf)
    width = sum(widths.values())
    if width > MAX_ENCODED_WIDTH:
        numeric = sum(w for n, w in widths.items() if contract.columns[n].kind not in ("categorical", "boolean"))
        discrete = width - numeric
        if numeric >= discrete:
            fix = (
                "Model fewer numeric columns (declare the others identifier to leave them out)"
                + (
                    ", or use numeric_encoding: quantile (1 slot per numeric column instead of 1 + max_modes)"
                    if getattr(model_conf, "numeric_encoding", None) == "modes"
                    else ""
                )
                + "."
            )
        else:
            fix = "Group rare categories (e.g. into 'other'), or declare a key column as identifier."
        raise InputError(
            f"the contract encodes to {width} encoded columns ({len(widths)} modelled columns: {numeric} from "
            f"numeric columns, {discrete} from categorical/boolean ones), above the bound of {MAX_ENCODED_WIDTH} "
            f"(docs/robustness.md, wide tables). Widest: {_widest(widths)}. {fix}"
        )
    stages = {
        "training": min(n_rows, config.max_rows),
        "the privacy and fidelity checks": min(n_rows, config.evaluation_rows),
    }
    for stage, rows in stages.items():
        if rows * width > MAX_ENCODED_CELLS:
            raise InputError(
                f"{stage} would hold {rows} rows x {width} encoded columns = {rows * width:.3g} cells, above the "
                f"bound of {MAX_ENCODED_CELLS:.0e}. Declare fewer categories (group rare ones), or lower "
                "max_rows / evaluation_rows in the run config."
            )
    attack = min(n_rows, contract.evaluation.attack_rows, config.evaluation_rows)
    pairs = attack * min(n_rows, config.evaluation_rows) * width
    if pairs > MAX_PAIRWISE_CELLS:
        raise InputError(
            f"the membership attacks would compare {attack} rows with {min(n_rows, config.evaluation_rows)} "
            f"rows over {width} encoded columns ({pairs:.3g} cell comparisons), above the bound of "
            f"{MAX_PAIRWISE_CELLS:.0e}. Lower evaluation.attack_rows or evaluation_rows, or declare fewer "
            "categories."
        )


def check_contract_is_public(contract: Contract) -> None:
    """Refuse a contract that still holds bounds or categories read off the data (``from_data: true``):
    the contract_is_public gate would block the release after training had spent ε, so the run is
    refused here, before it is recorded, any ε is reserved or any row is read."""
    derived = contract.data_derived_columns
    if derived:
        raise ContractError(
            f"the contract still holds bounds/categories read off the data (from_data: true) for "
            f"{len(derived)} column(s): {', '.join(repr(n) for n in derived)}. A release with them is always "
            "blocked by the contract_is_public gate, so nothing was read or spent. Replace each with public "
            "knowledge and set from_data: false (`synthgate contract check FILE` lists them), or learn them "
            "with DP (`synthgate contract infer --dp`)."
        )


def run_epsilon(config: RunConfig, contract: Contract) -> float:
    """The ε the run asks for: ``--epsilon`` (the run config's ``epsilon``), else the contract's budget;
    more than the budget is refused (ContractError) before anything is recorded or read."""
    epsilon = config.epsilon if config.epsilon is not None else contract.privacy.epsilon
    if epsilon > contract.privacy.epsilon:
        raise ContractError(
            f"--epsilon {epsilon} exceeds the contract's budget privacy.epsilon = "
            f"{contract.privacy.epsilon}. Ask for at most the budget."
        )
    return epsilon


def preflight_release(config: RunConfig, contract: Contract, *, output_table: str, model_conf: Any) -> int:
    """Every check that needs no private value, in order; returns the source's row count."""
    preflight_target(config, contract, output_table=output_table, model_conf=model_conf)
    return preflight_rows(config, contract, model_conf)


def preflight_target(config: RunConfig, contract: Contract, *, output_table: str, model_conf: Any) -> None:
    """The checks that open neither the source nor the registry: a contract still holding data-derived
    marks, the training plan and the output target."""
    check_contract_is_public(contract)
    check_plan(model_conf)
    check_output_target(config, output_table)


def preflight_rows(config: RunConfig, contract: Contract, model_conf: Any = None) -> int:
    """The checks on the source's row count (COUNT(*), no value read): minimum rows, δ < 1/n, the work
    bound. The release flow runs them after the run is on record and its budget checked, so a run the
    lifetime budget refuses never opens the source."""
    if model_conf is None:
        from synthgate.models.synthesizers import resolve_model_config

        model_conf = resolve_model_config(contract, epochs=config.epochs, batch_size=config.batch_size)
    n_rows = count_source_rows(config.source)
    if n_rows == 0:
        return n_rows  # validation says "the table has no rows" with its own message
    need = minimum_rows(contract, config)
    if n_rows < need:
        raise InputError(
            f"the table has fewer rows than the checks this contract enables need (at least {need} rows "
            f"with holdout_fraction {config.holdout_fraction:.2g}: {MIN_HOLDOUT_ROWS} holdout rows for the "
            f"membership attacks, {MIN_SHADOW_ROWS} per side for the shadow attack when evaluation.shadow_models > 0, "
            "with room for the random split). Nothing was read or spent. Use a larger table."
        )
    contract.privacy.check_delta(n_rows)
    check_work(contract, config, n_rows, model_conf)
    return n_rows
