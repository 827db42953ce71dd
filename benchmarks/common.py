"""What the benchmark scripts share: the machine description, peak memory, the Adult data."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB: VmHWM, the high-water mark of its
    own memory map, which starts afresh at exec.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's RSS at fork into the
    child's ru_maxrss, so a subprocess started by a 1 GiB runner reports at least 1 GiB (found in
    the peer benchmark, whose runner scores in-process). That call remains the fallback off Linux.
    """
    hwm = _proc_field("/proc/self/status", "VmHWM:")
    if hwm is not None:
        return int(hwm.split()[0]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_field(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, platform and Python of the machine the benchmark ran on."""
    mem_kib = _proc_field("/proc/meminfo", "MemTotal:")
    return {
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or "unknown",
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(mem_kib.split()[0]) / 2**20, 1) if mem_kib else float("nan"),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_adult() -> tuple[Any, pl.DataFrame]:
    """The demo contract and table with its modelled columns, missing markers read as null."""
    from synthgate.flows.demo import demo_contract, demo_parquet
    from synthgate.tasks.ingest import prepare_frame
    from synthgate.validation.contract import load_contract

    contract = load_contract(demo_contract())
    return contract, prepare_frame(pl.read_parquet(demo_parquet()), contract).select(contract.modelled_columns)


def report_run(label: str, result: dict[str, Any], started: float, timing: str) -> None:
    """One finished benchmark run on stderr: its timing, then the utility and privacy figures."""
    print(
        f"{label} {timing}, pairs {result['pair_trends']}, TSTR AUC {result['tstr_auc']}, "
        f"DCR {result['dcr_share']}, MIA {result['worst_mia_auc']} ({time.perf_counter() - started:.0f} s in all)",
        file=sys.stderr,
        flush=True,
    )


def independent_marginals(train: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """Each column drawn with replacement from train's values on its own."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame([train[c].gather(rng.integers(0, train.height, n)) for c in train.columns])


def sizes_main(
    doc: str,
    module: str,
    results: Path,
    default_rows: str,
    run_one: Callable[[int], dict[str, Any]],
    table: Callable[[list[dict[str, Any]]], str],
) -> None:
    """The command line that benchmarks/scale.py and benchmarks/large.py share.

    ``--rows A,B,...`` runs each size in its own subprocess (``--one N``: a clean peak RSS per size),
    one after another, and merges each result into ``results`` (written atomically); ``--table``
    prints the markdown table of what is there.
    """
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=default_rows, help="Comma-separated table sizes.")
    ap.add_argument("--table", action="store_true", help="Print the markdown table and exit.")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    runs = json.loads(results.read_text())["runs"] if results.exists() else []
    if args.table:
        print(table(runs))
        return
    for rows in (int(r) for r in args.rows.split(",")):
        started = time.perf_counter()
        print(f"[{rows:,} rows] ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", module, "--one", str(rows)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            print(f"[{rows:,} rows] FAILED (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        runs = [r for r in runs if r["rows"] != result["rows"]] + [result]
        results.parent.mkdir(parents=True, exist_ok=True)
        tmp = results.with_suffix(".tmp")
        tmp.write_text(json.dumps({"runs": sorted(runs, key=lambda r: r["rows"])}, indent=2) + "\n")
        tmp.replace(results)
        print(
            f"[{rows:,} rows] {result['total_seconds']} s, peak RSS {result['peak_rss_mib']} MiB "
            f"({time.perf_counter() - started:.0f} s in all)",
            file=sys.stderr,
            flush=True,
        )


# --- paired-fit diagnostics that run one fit per process (speed_diag, precision_grid) -----------------


def cell_arguments(ap: argparse.ArgumentParser, *, datasets: str, epsilons: str, seeds: str, results: Path) -> None:
    """The options such a diagnostic takes: which (table, ε, seed) cells, where its rows go, ``--table``,
    and the internal ``--one`` (one JSON job in this process)."""
    ap.add_argument("--datasets", default=datasets)
    ap.add_argument("--epsilons", default=epsilons)
    ap.add_argument("--seeds", default=seeds)
    ap.add_argument("--results", type=Path, default=results)
    ap.add_argument("--table", action="store_true", help="Print the table of --results and exit.")
    ap.add_argument("--one", help=argparse.SUPPRESS)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines results file (none if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def run_one_per_process(module: str, jobs: list[dict[str, Any]], results: Path) -> None:
    """Each job in its own process (``python -m module --one JOB --results results``), one thread each:
    a fit's CPU time is its process's, and one fit's state cannot leak into the next."""
    results.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for job in jobs:
        cmd = [sys.executable, "-m", module, "--one", json.dumps(job), "--results", str(results)]
        done = subprocess.run(cmd, env=env, check=False)
        if done.returncode != 0:
            print(f"failed: {job} (exit {done.returncode})", file=sys.stderr, flush=True)
