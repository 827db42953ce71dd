"""Paired check of the sampling rule for columns no measured table ties (round 2, session 13).

    python -m benchmarks.factorise_diag --datasets caravan --epsilons 3,10 --seeds 0,1,2
    python -m benchmarks.factorise_diag --table      # benchmarks/results/factorise_diag.json

Each fit (synthgate's default, one per dataset, ε and seed) is sampled twice from the same model with
the same sampling seed: ``before``, the calibrator of session 12 (factorised only when the DP-SGD critic
did not train), and ``now``, the model's own (``DPCTGAN._calibrator``: with the critic, the column
groups that no measured table ties are drawn independent given the target). Both are scored by the
suite's ``evaluate`` (column shapes, pair trends, TSTR), so the difference is the rule's alone: same
private noise, same generator, same pool. ``groups`` is how many groups the new rule draws apart
(0: one group, nothing changes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "factorise_diag.json"
METRICS = ("column_shapes", "pair_trends", "tstr")


def run(dataset: str, epsilon: float, seed: int) -> dict[str, Any]:
    from benchmarks.suite import evaluate, load, synthgate_config
    from synthgate.models.calibrate import Calibrator
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _, _ = load(dataset)
    cls = get_synthesizer(contract.model)
    ledger = PrivacyLedger(contract.privacy.delta)
    model = cls(contract, synthgate_config(contract, {}), device="cpu").fit(
        train, ledger=ledger, epsilon=epsilon, seed=seed
    )
    now = model._calibrator()
    row: dict[str, Any] = {
        "dataset": dataset,
        "epsilon": epsilon,
        "seed": seed,
        "critic": model._critic_on,
        "groups": len(now._groups) if now is not None else 0,
    }
    arms = {
        "before": lambda: Calibrator(model.codec, model.measured, factorise=not model._critic_on),
        "now": lambda: now,
    }
    for arm, calibrator in arms.items():
        model._calibrator = calibrator  # type: ignore[method-assign]
        synthetic = model.sample(train.height, seed=seed + 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "synthetic.parquet"
            synthetic.write_parquet(path)
            scores = evaluate(dataset, path)
        row[arm] = {m: scores.get(m) for m in METRICS}
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | ε | fits | groups drawn apart | "
        + " | ".join(f"{m}: before → now (mean Δ [min, max])" for m in METRICS)
        + " |",
        "|---|---|---|---|" + "---|" * len(METRICS),
    ]
    cells = sorted({(r["dataset"], r["epsilon"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for ds, eps in cells:
        mine = [r for r in rows if (r["dataset"], r["epsilon"]) == (ds, eps)]
        groups = sorted({r["groups"] for r in mine})
        parts = []
        for m in METRICS:
            b = np.array([r["before"][m] for r in mine], dtype=float)
            n = np.array([r["now"][m] for r in mine], dtype=float)
            d = n - b
            parts.append(f"{b.mean():.4f} → {n.mean():.4f} ({d.mean():+.4f} [{d.min():+.4f}, {d.max():+.4f}])")
        lines.append(f"| {ds} | {eps:g} | {len(mine)} | {groups[0]}–{groups[-1]} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="caravan")
    ap.add_argument("--epsilons", default="3,10")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="Print the table of --results and exit.")
    args = ap.parse_args()
    rows = json.loads(args.results.read_text(encoding="utf-8")) if args.results.exists() else []
    if args.table:
        print(table(rows))
        return
    for dataset in args.datasets.split(","):
        for eps in (float(e) for e in args.epsilons.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                row = run(dataset, eps, seed)
                rows = [r for r in rows if (r["dataset"], r["epsilon"], r["seed"]) != (dataset, eps, seed)] + [row]
                args.results.parent.mkdir(parents=True, exist_ok=True)
                args.results.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
