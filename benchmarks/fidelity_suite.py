"""Time of the whole fidelity suite on Adult, and the oracle figures behind its default gates.

Run from the repository root::

    python -m benchmarks.fidelity_suite               # timing (3 repeats) + oracles
    python -m benchmarks.fidelity_suite --no-oracles  # timing only
    python -m benchmarks.fidelity_suite --dp-ctgan-seeds 0 1   # + the DP-CTGAN (slow)

Writes ``benchmarks/results/fidelity_suite.json``.

Timing (the release setting): the demo table (UCI Adult, 48,842 rows, 15 modelled columns,
'?' read as null) split at random (seed 0) into 32,000 train and 16,000 holdout rows, and
32,000 synthetic rows that are an *independent-marginals resample* of train (each column
drawn with replacement from train's values on its own, seed 1). That is the slow case for
the detection check: the classifier keeps improving for all its boosting iterations, where
a fresh real sample stops early. ``fidelity_suite`` runs with its defaults (detection on
10,000 rows per side, 5 folds, at most 100 boosting iterations; every column triple), once
per repeat with seeds 0, 1, 2; each check is timed inside the suite and the medians reported.

Oracles (``--oracles``, on by default): Adult split at random (seed 0) into 2/3 train
(32,561 rows), 1/6 holdout (8,140) and 1/6 "fresh" real rows (8,141) that neither the
generator nor the checks saw otherwise; synthetic tables of the train size:

- ``independent_marginals``: each column resampled from train on its own (seed 1);
- ``fresh_real_sample``: the fresh rows (the best any generator can do);
- ``perturbed_copy_p``: train with each cell replaced, with probability p, by a value drawn
  from its column in train (p = 0.10 mild, 0.25, 0.50): marginals kept, a share of every
  relationship broken.

- ``dp_ctgan_seed_S`` (``--dp-ctgan-seeds``, off by default: minutes per seed): the
  project's DP-CTGAN with the demo contract's budget (ε = 3, δ = 1e-6) and default settings
  (8 epochs), trained on train with seed S on CPU, sampling as many rows as train.

Every oracle runs the full suite with the contract's target (income) and the gate decision
is recorded with and without the ML-efficacy gate (a contract without a target).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.common import independent_marginals, load_adult, machine, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "fidelity_suite.json"
N_TRAIN, N_HOLDOUT, N_SYNTHETIC = 32_000, 16_000, 32_000
CHECKS = ("column_shapes", "pair_trends", "three_way_marginals", "detection", "ml_efficacy")


def _versions() -> dict[str, str]:
    return {name: version(name) for name in ("numpy", "scipy", "scikit-learn", "polars", "pandas", "threadpoolctl")}


def perturbed_copy(train: pl.DataFrame, p: float, seed: int) -> pl.DataFrame:
    """Train with each cell, with probability ``p``, replaced by a random value of its column."""
    rng = np.random.default_rng(seed)
    columns = []
    for c in train.columns:
        swap = pl.Series(rng.random(train.height) < p)
        donor = train[c].gather(rng.integers(0, train.height, train.height))
        columns.append(pl.select(pl.when(swap).then(donor).otherwise(train[c])).to_series().alias(c))
    return pl.DataFrame(columns)


# --- timing ----------------------------------------------------------------------------------


def _timed(fn: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - t0)

    return wrapper


def time_suite(repeats: int) -> dict[str, Any]:
    from synthgate.validation import fidelity

    contract, adult = load_adult()
    perm = np.random.default_rng(0).permutation(adult.height)
    train = adult[np.sort(perm[:N_TRAIN])]
    holdout = adult[np.sort(perm[N_TRAIN : N_TRAIN + N_HOLDOUT])]
    synthetic = independent_marginals(train, N_SYNTHETIC, seed=1)

    # Each check is timed where fidelity_suite calls it (it looks them up in its module).
    per_check: dict[str, list[float]] = {name: [] for name in CHECKS}
    originals = {name: getattr(fidelity, name) for name in CHECKS}
    totals: list[float] = []
    cpu: list[float] = []
    load: list[list[float]] = []
    summary: dict[str, Any] = {}
    try:
        for name in CHECKS:
            setattr(fidelity, name, _timed(originals[name], per_check[name]))
        for seed in range(repeats):
            load.append([round(x, 2) for x in os.getloadavg()])
            c0, t0 = time.process_time(), time.perf_counter()
            results = fidelity.fidelity_suite(train, holdout, synthetic, contract, seed=seed)
            totals.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if seed == 0:
                summary = _figures(results)
            print(
                f"repeat {seed}: {totals[-1]:.2f} s  ("
                + ", ".join(f"{n} {per_check[n][-1]:.2f}" for n in CHECKS)
                + ")",
                flush=True,
            )
    finally:
        for name, fn in originals.items():
            setattr(fidelity, name, fn)
    return {
        "setting": {
            "table": "UCI Adult demo, 15 modelled columns, '?' as null",
            "train_rows": train.height,
            "holdout_rows": holdout.height,
            "synthetic_rows": synthetic.height,
            "synthetic": "independent-marginals resample of train (seed 1): the detection "
            "classifier runs all its boosting iterations",
            "suite": "fidelity_suite defaults: detection 5 folds on "
            f"{fidelity.DEFAULT_DETECTION_MAX_ROWS} rows per side, max_iter "
            f"{fidelity.DETECTION_MAX_ITER} with early stopping; 3-way marginals over every "
            f"triple (at most {fidelity.DEFAULT_N_TRIPLES}); gradient boosting on "
            f"{fidelity.MODEL_THREADS} OpenMP thread(s)",
            "repeats": repeats,
            "seeds": list(range(repeats)),
        },
        "seconds_total": [round(v, 3) for v in totals],
        "cpu_seconds_total": [round(v, 3) for v in cpu],
        "seconds_per_check": {k: [round(v, 3) for v in vs] for k, vs in per_check.items()},
        "median_seconds_total": round(statistics.median(totals), 3),
        "median_seconds_per_check": {k: round(statistics.median(vs), 3) for k, vs in per_check.items() if vs},
        "load_average_1_5_15_before_each_repeat": load,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "results_seed_0": summary,
    }


# --- oracles ---------------------------------------------------------------------------------


def _figures(results: list[Any]) -> dict[str, Any]:
    """The headline figures of one suite run (aggregates only)."""
    by = {r.name: r for r in results}
    out: dict[str, Any] = {
        "column_shapes": round(by["column_shapes"].value, 4),
        "pair_trends": round(by["pair_trends"].value, 4),
    }
    tw = by["three_way_marginals"]
    out["three_way"] = {
        "similarity": round(tw.value, 4),
        "ceiling": round(tw.details["ceiling"], 4),
        "ratio": round(tw.details["ratio"], 4),
    }
    det = by["detection_auc"]
    out["detection_auc"] = {"mean": round(det.value, 4), "ci95": [round(x, 4) for x in det.ci]}
    if "ml_efficacy" in by:
        ml = by["ml_efficacy"]
        out["ml_efficacy"] = {
            "tstr_auc": round(ml.details["tstr"]["auc"], 4),
            "trtr_auc": round(ml.details["trtr"]["auc"], 4),
            "ratio": round(ml.details["ratio"], 4),
        }
    out["passed"] = {r.name: bool(r.passed) for r in results}
    return out


def _dp_ctgan(train: pl.DataFrame, contract: Any, seed: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig

    t0 = time.perf_counter()
    ledger = PrivacyLedger(contract.privacy.delta)
    model = DPCTGAN(contract, CTGANConfig(), device="cpu")
    model.fit(train, ledger=ledger, epsilon=contract.privacy.epsilon, seed=seed)
    synthetic = model.sample(train.height, seed=seed + 100)
    return synthetic, {
        "fit_and_sample_seconds": round(time.perf_counter() - t0, 1),
        "epsilon_spent": round(ledger.epsilon, 4),
    }


def oracles(dp_ctgan_seeds: list[int]) -> dict[str, Any]:
    from synthgate.validation.fidelity import (
        DEFAULT_MAX_DETECTION_AUC,
        DEFAULT_MIN_THREE_WAY_RATIO,
        fidelity_suite,
    )
    from synthgate.validation.results import decide_release

    contract, adult = load_adult()
    perm = np.random.default_rng(0).permutation(adult.height)
    n_train = adult.height * 2 // 3
    n_holdout = (adult.height - n_train) // 2
    train = adult[np.sort(perm[:n_train])]
    holdout = adult[np.sort(perm[n_train : n_train + n_holdout])]
    fresh = adult[np.sort(perm[n_train + n_holdout :])]
    tables = {
        "independent_marginals": independent_marginals(train, train.height, seed=1),
        "fresh_real_sample": fresh,
        "perturbed_copy_0.10": perturbed_copy(train, 0.10, seed=2),
        "perturbed_copy_0.25": perturbed_copy(train, 0.25, seed=3),
        "perturbed_copy_0.50": perturbed_copy(train, 0.50, seed=4),
    }
    extra: dict[str, dict[str, Any]] = {}
    for seed in dp_ctgan_seeds:
        name = f"dp_ctgan_seed_{seed}"
        tables[name], extra[name] = _dp_ctgan(train, contract, seed)
        print(f"{name}: trained {extra[name]}", flush=True)
    out: dict[str, Any] = {}
    for name, synthetic in tables.items():
        t0 = time.perf_counter()
        results = fidelity_suite(train, holdout, synthetic, contract, seed=0)
        row = {**_figures(results), **extra.get(name, {})}
        without_target = [r for r in results if r.name != "ml_efficacy"]
        row["released_with_target"] = decide_release(results).released
        row["released_without_target"] = decide_release(without_target).released
        row["failed_without_target"] = [r.name for r in without_target if not r.passed]
        row["synthetic_rows"] = synthetic.height
        out[name] = row
        print(f"{name}: {json.dumps(row)} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return {
        "setting": {
            "split": "Adult permuted (seed 0): 2/3 train, 1/6 holdout, 1/6 fresh real rows",
            "train_rows": train.height,
            "holdout_rows": holdout.height,
            "fresh_rows": fresh.height,
            "perturbed_copy": "train with each cell replaced, with probability p, by a value "
            "drawn from its column in train",
            "dp_ctgan": "synthgate.models.synthesizers.ctgan.DPCTGAN, CTGANConfig() defaults, epsilon = "
            f"{contract.privacy.epsilon}, delta = {contract.privacy.delta}, CPU; seeds "
            f"{dp_ctgan_seeds}",
            "gates": {
                "min_column_shapes": contract.gates.min_column_shapes,
                "min_pair_trends": contract.gates.min_pair_trends,
                "min_tstr_ratio": contract.gates.min_tstr_ratio,
                "min_three_way_ratio": DEFAULT_MIN_THREE_WAY_RATIO,
                "max_detection_auc": DEFAULT_MAX_DETECTION_AUC,
            },
        },
        "oracles": out,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--oracles", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--dp-ctgan-seeds",
        type=int,
        nargs="*",
        default=[],
        metavar="SEED",
        help="also train the project's DP-CTGAN (epsilon from the demo contract) with these seeds",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}.")
    report: dict[str, Any] = {
        "benchmark": "fidelity_suite",
        "machine": machine(),
        "versions": _versions(),
        "timing": time_suite(args.repeats),
    }
    if args.oracles:
        report["oracles"] = oracles(args.dp_ctgan_seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
