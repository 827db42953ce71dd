"""Every registered model on Adult at ε = 3 and non-DP: fit time, utility and privacy figures.

    python -m benchmarks.models                      # every model, ε ∈ {3, inf}, seed 0
    python -m benchmarks.models --models ctgan,tvae --epsilons 3
    python -m benchmarks.models --table              # print the markdown table from the JSON

Each (model, ε) runs in its own subprocess, one after another (never in parallel, so timings are
not shared-CPU figures), with the model's DEFAULT config — what a user gets with `model: NAME`.
Split: the release flow's (holdout 1/3, seed 0), so train has 21,707 rows. Per run it records fit
seconds, sampling rows/s, peak RSS, ε spent (the whole ledger: codec + every DP-SGD phase),
column shapes, pair trends, TSTR AUC (with train-on-real AUC beside it), DCR share, and the worst
membership-inference AUC of the distance and DOMIAS attacks (the shadow-model attack would cost
8 more fits per model and is not run here). Results merge into
benchmarks/results/models.json keyed by (model, ε, seed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "models.json"


def _eps_label(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:g}"


def run_one(name: str, epsilon: float, seed: int) -> dict[str, Any]:
    """Fit, sample and evaluate one model in this process."""
    import torch

    from benchmarks.common import load_adult, machine, peak_rss_mib
    from synthgate.governance.registry import code_version
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer
    from synthgate.models.synthesizers.base import NOISE_SEED_ENV
    from synthgate.tasks.split import split_holdout
    from synthgate.validation.fidelity import column_shapes, ml_efficacy, pair_trends
    from synthgate.validation.gates import membership_attacks
    from synthgate.validation.mia import membership_inference
    from synthgate.validation.privacy import dcr_share

    contract, df = load_adult()
    train, holdout = split_holdout.fn(df, fraction=1 / 3, key=seed)  # a benchmark: the key need not be secret
    cls = get_synthesizer(name)
    ledger = PrivacyLedger(contract.privacy.delta)
    t0 = time.perf_counter()
    model = cls(contract, device="cpu").fit(train, ledger=ledger, epsilon=epsilon, seed=seed)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synthetic = model.sample(train.height, seed=seed + 1)
    sample_s = time.perf_counter() - t0
    efficacy = ml_efficacy(train, synthetic, holdout, contract, seed=seed)
    mia = membership_inference(membership_attacks(train, holdout, synthetic, contract, seed=seed))
    mia_auc = next(r for r in mia if r.name == "mia_auc")
    details = efficacy.details if efficacy is not None else {"tstr": {}, "trtr": {}}
    return {
        "model": name,
        "epsilon": _eps_label(epsilon),
        "seed": seed,
        "epsilon_spent": _eps_label(ledger.epsilon),
        "ledger": [e.mechanism for e in ledger.entries],
        "config": model.config.model_dump(mode="json"),
        "fit_seconds": round(fit_s, 1),
        "sample_rows_per_second": round(train.height / sample_s),
        "peak_rss_mib": round(peak_rss_mib()),
        "column_shapes": round(column_shapes(holdout, synthetic, contract).value, 4),
        "pair_trends": round(pair_trends(holdout, synthetic, contract).value, 4),
        "tstr_auc": round(details["tstr"].get("auc", math.nan), 4),
        "tstr_accuracy": round(details["tstr"].get("accuracy", math.nan), 4),
        "tstr_f1": round(details["tstr"].get("f1", math.nan), 4),
        "trtr_auc": round(details["trtr"].get("auc", math.nan), 4),
        "dcr_share": round(dcr_share(synthetic, train, holdout, contract, seed=seed).value, 4),
        "worst_mia_auc": round(mia_auc.value, 4),
        "worst_mia_attack": mia_auc.details.get("worst_attack"),
        "torch_threads": torch.get_num_threads(),
        "dp_noise": "SYNTHGATE_NOISE_SEED (repeatable)" if os.environ.get(NOISE_SEED_ENV) else "OS entropy",
        "commit": code_version(),
        "machine": machine(),
    }


def _load() -> list[dict[str, Any]]:
    return json.loads(RESULTS.read_text(encoding="utf-8"))["runs"] if RESULTS.exists() else []


def _save(runs: list[dict[str, Any]]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    order = {n: i for i, n in enumerate(_model_names())}
    runs.sort(key=lambda r: (order.get(r["model"], 99), r["epsilon"] == "inf", r["seed"]))
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(RESULTS)


def _model_names() -> tuple[str, ...]:
    from synthgate.models.synthesizers import MODEL_NAMES

    return MODEL_NAMES


def table(runs: list[dict[str, Any]]) -> str:
    """The markdown table for BENCHMARKS.md."""
    head = (
        "| model | ε | ε spent | fit (s) | sample (rows/s) | peak RSS (MiB) | column shapes | pair trends "
        "| TSTR AUC | DCR share | worst MIA AUC |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )

    def spent(r: dict[str, Any]) -> str:
        return "∞" if r["epsilon_spent"] == "inf" else f"{float(r['epsilon_spent']):.3f}"

    rows = [
        f"| {r['model']} | {'∞' if r['epsilon'] == 'inf' else r['epsilon']} | {spent(r)} | "
        f"{r['fit_seconds']:.0f} | {r['sample_rows_per_second']:,} | {r['peak_rss_mib']} | "
        f"{r['column_shapes']:.3f} | {r['pair_trends']:.3f} | {r['tstr_auc']:.3f} | {r['dcr_share']:.3f} | "
        f"{r['worst_mia_auc']:.3f} |"
        for r in runs
    ]
    return "\n".join([head, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="Comma-separated names, or 'all'.")
    ap.add_argument("--epsilons", default="3,inf", help="Comma-separated ε values; 'inf' = non-DP.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", action="store_true", help="Print the markdown table and exit.")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "EPSILON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], float(args.one[1]), args.seed)))
        return
    if args.table:
        print(table(_load()))
        return
    from benchmarks.common import report_run

    names = _model_names() if args.models == "all" else tuple(args.models.split(","))
    epsilons = [float(e) for e in args.epsilons.split(",")]
    for name in names:
        for eps in epsilons:
            started = time.perf_counter()
            print(f"[{name} ε={_eps_label(eps)}] ...", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.models", "--one", name, str(eps), "--seed", str(args.seed)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(f"[{name} ε={_eps_label(eps)}] FAILED:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            runs = [r for r in _load() if (r["model"], r["epsilon"], r["seed"]) != (name, result["epsilon"], args.seed)]
            _save([*runs, result])
            report_run(f"[{name} ε={_eps_label(eps)}]", result, started, f"fit {result['fit_seconds']} s")


if __name__ == "__main__":
    main()
