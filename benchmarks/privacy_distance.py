"""Time and memory of the distance-based privacy checks (``validation.privacy.distance_checks``).

Run from the repository root::

    python -m benchmarks.privacy_distance              # Adult timing + memory scaling
    python -m benchmarks.privacy_distance --no-memory  # Adult timing only (keeps the
                                                       # memory section of an earlier run)

Writes ``benchmarks/results/privacy_distance.json``.

Timing (the release setting): the demo table (UCI Adult, 48,842 rows, 15 columns, read with
``prepare_frame`` as the flow does) split at random into 32,000 train and 16,000 holdout
rows, and 32,000 synthetic rows that are an *independent-marginals resample* of train: each
column drawn with replacement from train's values on its own, so the marginals are real but
no synthetic row is a real record (up to chance). The work of the full-column searches does
not depend on the values, so this stands in for any generator's output (the subset check's
does a little: it searches distinct rows only and counts ties). ``distance_checks`` runs
with its defaults (every synthetic row scored for DCR share and NNDR; 3 correlated + 3
random column subsets on 5,000 synthetic rows); it is also timed with the subset check
shrunk to one subset of one synthetic row, which leaves the DCR share + NNDR cost. Each is
repeated (seeds 0, 1, 2) and the median reported.

Memory (skip with ``--no-memory``): random mixed tables (4 numeric columns, one with nulls;
3 categorical; 1 boolean), each run in a fresh process recording seconds and peak RSS
(``getrusage``): n synthetic x n train + n/2 holdout rows for n = 25k, 50k, 100k, 200k, and
2k synthetic rows against 1M train + 500k holdout rows. A dense synthetic x reference
distance matrix would need 4 * n * 1.5 n bytes (224 GB at n = 200k, far beyond this
machine's memory), so a run that finishes shows the searches are chunked; the peak grows
linearly with the rows, and a linear fit extrapolates it to 1M synthetic x 1M train + 500k
holdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.common import independent_marginals, load_adult, machine, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "privacy_distance.json"
N_TRAIN, N_HOLDOUT, N_SYNTHETIC = 32_000, 16_000, 32_000
# (synthetic, train, holdout) rows of the memory runs: n x n + n/2 for four n, then a 1M-row
# train (+ 500k holdout) against a few synthetic rows, to see the reference side at full scale.
MEMORY_RUNS = (
    (25_000, 25_000, 12_500),
    (50_000, 50_000, 25_000),
    (100_000, 100_000, 50_000),
    (200_000, 200_000, 100_000),
    (2_000, 1_000_000, 500_000),
)


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _versions() -> dict[str, Any]:
    import sklearn.neighbors  # noqa: F401  (loads scikit-learn's OpenMP runtime for the listing)
    from threadpoolctl import threadpool_info

    libs = {name: version(name) for name in ("numpy", "scipy", "scikit-learn", "polars")}
    libs["threadpools"] = [
        {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "version")} for info in threadpool_info()
    ]
    return libs


# --- Adult timing ----------------------------------------------------------------------------


def _adult() -> tuple[Any, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="synthgate-bench-prefect-"))
    contract, adult = load_adult()
    perm = np.random.default_rng(0).permutation(adult.height)
    train = adult[np.sort(perm[:N_TRAIN])]
    holdout = adult[np.sort(perm[N_TRAIN : N_TRAIN + N_HOLDOUT])]
    synthetic = independent_marginals(train, N_SYNTHETIC, seed=1)
    return contract, train, holdout, synthetic


def _summary(results: list[Any]) -> dict[str, Any]:
    dcr, ratio, worst = results
    return {
        "dcr_share": dcr.value,
        "dcr_share_ci": list(dcr.ci),
        "nndr_train_p5": ratio.details["train_p5"],
        "nndr_holdout_p5": ratio.details["holdout_p5"],
        "nndr_train_median": ratio.details["train_median"],
        "nndr_holdout_median": ratio.details["holdout_median"],
        "worst_subset": worst.details["worst_columns"],
        "worst_subset_share": worst.value,
        "worst_subset_ci": list(worst.ci),
        "subsets": [(s["kind"], len(s["columns"]), round(s["share"], 4)) for s in worst.details["subsets"]],
    }


def time_adult(repeats: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from synthgate.validation.privacy import distance_checks

    contract, train, holdout, synthetic = _adult()
    rss_loaded = _rss_mib()
    runs: dict[str, list[float]] = {"distance_checks_default": [], "dcr_share_plus_nndr": []}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    summary: dict[str, Any] = {}
    shrunk = {"n_random_subsets": 1, "n_correlated_subsets": 0, "subset_max_synthetic_rows": 1}
    for seed in range(repeats):
        for key, options in (("distance_checks_default", {}), ("dcr_share_plus_nndr", shrunk)):
            t0, c0 = time.perf_counter(), time.process_time()
            results = distance_checks(synthetic, train, holdout, contract, seed=seed, **options)
            runs[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
            if seed == 0 and not options:
                summary = _summary(results)
        print(
            f"seed {seed}: distance_checks {runs['distance_checks_default'][-1]:.2f} s, "
            f"DCR share + NNDR {runs['dcr_share_plus_nndr'][-1]:.2f} s",
            flush=True,
        )
    # The work in core-seconds, measured on one thread: unlike wall time on a shared machine it
    # barely depends on other processes; wall time on two idle cores is about half of it.
    single: dict[str, float] = {}
    with threadpool_limits(1):
        for key, options in (("distance_checks_default", {}), ("dcr_share_plus_nndr", shrunk)):
            c0 = time.process_time()
            distance_checks(synthetic, train, holdout, contract, seed=0, **options)
            single[key] = round(time.process_time() - c0, 3)
    print(f"one thread, CPU seconds: {single}", flush=True)
    return {
        "setting": {
            "table": "UCI Adult demo (prepare_frame), 15 modelled columns",
            "train_rows": train.height,
            "holdout_rows": holdout.height,
            "synthetic_rows": synthetic.height,
            "synthetic": "independent-marginals resample of train (each column drawn with "
            "replacement from train on its own, seed 1)",
            "distance_checks_default": "max_synthetic_rows=None (all 32,000 scored), "
            "3 correlated + 3 random subsets on 5,000 synthetic rows",
            "dcr_share_plus_nndr": "same call with the subset check shrunk to one random "
            "subset scored on 1 synthetic row (negligible)",
            "repeats": repeats,
        },
        "seconds": {k: [round(v, 3) for v in vs] for k, vs in runs.items()},
        "median_seconds": {k: round(statistics.median(vs), 3) for k, vs in runs.items()},
        # Process CPU time (all threads): about 2x the wall time on two idle cores.
        "cpu_seconds": {k: [round(v, 3) for v in vs] for k, vs in cpu.items()},
        "cpu_seconds_one_thread_seed_0": single,
        "rss_after_loading_mib": round(rss_loaded, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "results_seed_0": summary,
    }


# --- memory scaling --------------------------------------------------------------------------


def _random_tables(
    n_syn: int, n_train: int, n_holdout: int, seed: int = 0
) -> tuple[Any, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    from synthgate.validation.contract import parse_contract

    cats = {"c10": [f"k{i}" for i in range(10)], "c5": [f"v{i}" for i in range(5)]}
    cats["c30"] = [f"w{i}" for i in range(30)]
    contract = parse_contract(
        {
            "table": "random",
            "columns": {
                "x1": {"kind": "continuous", "min": 0.0, "max": 1.0},
                "x2": {"kind": "continuous", "min": -3.0, "max": 3.0},
                "x3": {"kind": "continuous", "min": 0.0, "max": 1.0, "nullable": True},
                "n1": {"kind": "integer", "min": 0, "max": 100},
                **{k: {"kind": "categorical", "categories": v} for k, v in cats.items()},
                "b": {"kind": "boolean"},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-9},
        }
    )
    rng = np.random.default_rng(seed)

    def draw(m: int) -> pl.DataFrame:
        x3 = rng.random(m)
        return pl.DataFrame(
            {
                "x1": rng.random(m),
                "x2": np.clip(rng.normal(0, 1, m), -3, 3),
                "x3": pl.Series(x3).set(pl.Series(rng.random(m) < 0.1), None),
                "n1": rng.integers(0, 101, m),
                **{k: rng.choice(v, m) for k, v in cats.items()},
                "b": rng.random(m) < 0.3,
            }
        )

    return contract, draw(n_train), draw(n_holdout), draw(n_syn)


def _memory_child(sizes: list[int]) -> dict[str, Any]:
    from synthgate.validation.privacy import distance_checks

    contract, train, holdout, synthetic = _random_tables(*sizes)
    rss_loaded = _rss_mib()
    t0 = time.perf_counter()
    results = distance_checks(synthetic, train, holdout, contract, seed=0)
    seconds = time.perf_counter() - t0
    return {
        "synthetic_rows": synthetic.height,
        "train_rows": train.height,
        "holdout_rows": holdout.height,
        "seconds": round(seconds, 2),
        "rss_after_loading_mib": round(rss_loaded, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "dense_float32_matrix_would_need_gib": round(4 * synthetic.height * (train.height + holdout.height) / 2**30, 1),
        "dcr_share": results[0].value,
    }


def memory_scaling(runs: tuple[tuple[int, int, int], ...]) -> dict[str, Any]:
    rows = []
    for sizes in runs:
        cmd = [sys.executable, "-m", "benchmarks.privacy_distance", "--memory-child"]
        proc = subprocess.run([*cmd, *map(str, sizes)], cwd=ROOT, capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"memory {sizes}: {row}", flush=True)
        rows.append(row)
    # Linear fit of the peak against the rows held (synthetic + train + holdout).
    x = np.array([r["synthetic_rows"] + r["train_rows"] + r["holdout_rows"] for r in rows], float)
    y = np.array([r["peak_rss_mib"] for r in rows])
    slope, intercept = np.polyfit(x, y, 1) if len(rows) >= 2 else (float("nan"), float("nan"))
    rows_1m = 1_000_000 + 1_000_000 + 500_000
    return {
        "tables": "random mixed: 3 continuous (one 10% null), 1 integer, categorical with 5/10/30 "
        "categories, 1 boolean (52 encoded entries, Adult: 110); distance_checks defaults, "
        "every synthetic row scored",
        "runs": rows,
        "fit_peak_rss_mib": {"per_million_rows": round(slope * 1e6, 1), "intercept": round(intercept, 1)},
        "extrapolated_peak_rss_mib_1m_synthetic_x_1m_train_500k_holdout": round(intercept + slope * rows_1m, 0),
    }


def _load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-adult", action="store_true", help="skip the Adult timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory scaling runs")
    parser.add_argument("--memory-child", type=int, nargs=3, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(_memory_child(args.memory_child)))
        return
    # A section not run this time is kept from the previous file (each carries its own
    # timestamp and load averages).
    report: dict[str, Any] = {}
    if args.out.is_file():
        report = json.loads(args.out.read_text(encoding="utf-8"))
    report["benchmark"] = "synthgate.validation.privacy.distance_checks"
    report["machine"] = machine()
    report["versions"] = _versions()
    sections = [("adult", lambda: time_adult(args.repeats), args.no_adult)]
    sections.append(("memory", lambda: memory_scaling(MEMORY_RUNS), args.no_memory))
    for key, run, skip in sections:
        if skip:
            continue
        before = _load_average()
        section = run()
        section["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        section["load_average_1_5_15_min"] = {"before": before, "after": _load_average()}
        report[key] = section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
