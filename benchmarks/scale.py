"""How far the release pipeline scales in memory on this machine: seconds and peak RSS per stage.

    python -m benchmarks.scale                         # rows 32,561 · 100k · 300k (about 22 minutes on 2 cores)
    python -m benchmarks.scale --rows 1000000          # hours: the privacy checks grow about quadratically
    python -m benchmarks.scale --table                 # markdown from benchmarks/results/scale.json

The table is Adult's 15 columns, rows drawn with replacement from the embedded table to the size
asked for (the bootstrapped copy is written to Parquet outside the timings). Each size runs in its
own subprocess, one after another: load (DuckDB → polars) → validate (great-expectations) →
split → DP training (ctgan, ε = 3, ONE epoch at batch 1000: the per-epoch cost; the default is 8)
→ sample as many rows as train → privacy checks (identical matches, DCR, NNDR, anonymeter) →
membership attacks (distance + DOMIAS; the shadow attack is off: its cost does not grow with the
table) → fidelity checks. Peak RSS is the process's high-water mark after each stage.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "scale.json"
DEFAULT_ROWS = "32561,100000,300000"


def run_one(rows: int, seed: int = 0) -> dict[str, Any]:
    from benchmarks.common import load_adult, machine, peak_rss_mib
    from synthgate.flows.config import SourceConfig
    from synthgate.governance.registry import code_version
    from synthgate.tasks.evaluate import evaluate_fidelity, evaluate_privacy
    from synthgate.tasks.ingest import load_table
    from synthgate.tasks.split import split_holdout
    from synthgate.tasks.train import fit_synthesizer
    from synthgate.tasks.validate import validate_table
    from synthgate.validation.gates import membership_attacks

    contract, df = load_adult()
    contract = contract.model_copy(
        update={
            "evaluation": contract.evaluation.model_copy(update={"shadow_models": 0}),
            "privacy": contract.privacy.model_copy(update={"delta": min(contract.privacy.delta, 0.1 / rows)}),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.parquet"
        df.sample(n=rows, with_replacement=True, seed=seed).write_parquet(path)
        stages: dict[str, dict[str, float]] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stages[name] = {"seconds": round(now - clock, 1), "peak_rss_mib": round(peak_rss_mib())}
            clock = now

        frame = load_table.fn(SourceConfig(path=path), contract)
        lap("load")
        validate_table.fn(frame, contract)
        lap("validate")
        # a benchmark: the split key need not be secret
        train, holdout = split_holdout.fn(frame.select(contract.modelled_columns), fraction=1 / 3, key=seed)
        del frame
        lap("split")
        model, ledger = fit_synthesizer(
            train, contract, epsilon=3.0, epochs=1.0, batch_size=1000, device="cpu", seed=seed
        )
        lap("train_1_epoch")
        synthetic = model.sample(train.height, seed=seed + 1)
        lap("sample")
        evaluate_privacy.fn(train, holdout, synthetic, contract, seed=seed)
        lap("privacy_checks")
        membership_attacks(train, holdout, synthetic, contract, seed=seed)
        lap("membership_attacks")
        evaluate_fidelity.fn(train, holdout, synthetic, contract, seed=seed)
        lap("fidelity_checks")
    return {
        "rows": rows,
        "columns": len(contract.modelled_columns),
        "train_rows": train.height,
        "epsilon_spent": round(ledger.epsilon, 4),
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
        "commit": code_version(),
        "machine": machine(),
    }


def table(runs: list[dict[str, Any]]) -> str:
    names = list(runs[0]["stages"]) if runs else []
    head = "| rows | " + " | ".join(names) + " | total (s) | peak RSS (MiB) |"
    sep = "|---" * (len(names) + 3) + "|"
    lines = [head, sep]
    for r in sorted(runs, key=lambda r: r["rows"]):
        cells = [f"{r['stages'][n]['seconds']:g}" for n in names]
        lines.append(f"| {r['rows']:,} | " + " | ".join(cells) + f" | {r['total_seconds']:g} | {r['peak_rss_mib']:,} |")
    return "\n".join(lines)


def main() -> None:
    from benchmarks.common import sizes_main

    sizes_main(__doc__ or "", "benchmarks.scale", RESULTS, DEFAULT_ROWS, run_one, table)


if __name__ == "__main__":
    main()
