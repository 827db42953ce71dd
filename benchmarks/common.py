"""What the benchmark scripts share: the machine description, peak memory, the Adult data."""

from __future__ import annotations

import os
import platform
import resource
from typing import Any

import numpy as np
import polars as pl


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
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
    from flows.demo import demo_contract, demo_parquet
    from tasks.ingest import prepare_frame
    from validation.contract import load_contract

    contract = load_contract(demo_contract())
    return contract, prepare_frame(pl.read_parquet(demo_parquet()), contract).select(contract.modelled_columns)


def independent_marginals(train: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """Each column drawn with replacement from train's values on its own."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame([train[c].gather(rng.integers(0, train.height, n)) for c in train.columns])
