"""Pooled 1-way targets against the codec's alone, on the same fits (issue 20; round 2, session 7).

    python -m benchmarks.pool_one_way --datasets adult,colon --epsilons 1,3 --seeds 0,1 --out FILE
    python -m benchmarks.pool_one_way --table FILE

Each fit is synthgate's default on a suite table (benchmarks/suite.py's split, contract and data). Its
sample is drawn twice with the same sampling seed (the suite's, seed + 1): raked to the pooled
categorical frequencies (``Measured.one_way``, models/marginals.py ``pool_one_way``: the default) and
to the codec's frequencies alone (the default before). A fit's DP noise is private entropy, so the
comparison is paired on the fit, not on the seed. Scores are the suite's (column shapes, pair
trends, TSTR against the test rows), plus the mean total-variation distance of each variant's raking
targets from the training rows' categorical frequencies. Suite tables are public, so per-table
figures may be printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def run_one(ds: str, eps: float, seed: int) -> dict[str, Any]:
    from benchmarks.shapes_diag import metrics, per_column
    from benchmarks.suite import load
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer, resolve_model_config

    contract, train, _, _ = load(ds)
    model = get_synthesizer(contract.model)(contract, resolve_model_config(contract), device="cpu")
    t = time.perf_counter()
    model.fit(train, ledger=PrivacyLedger(contract.privacy.delta), epsilon=eps, seed=seed)
    row: dict[str, Any] = {"dataset": ds, "epsilon": eps, "seed": seed, "fit_seconds": time.perf_counter() - t}
    measured = model.measured
    pooled = dict(measured.one_way) if measured is not None else {}
    codec = model.codec
    real = {
        s.name: np.bincount(codec._discrete_codes(train, s), minlength=len(s.categories)) / train.height
        for s in codec.discrete
    }
    for variant, targets in (("pooled", pooled), ("codec", {})):
        if measured is not None:
            measured.one_way = targets
        freq = {k: targets.get(k, codec.frequencies[k]) for k in real}
        syn = model.sample(train.height, seed=seed + 1)
        shapes = per_column(ds, syn)
        row[variant] = {
            "target_tv": float(np.mean([0.5 * np.abs(freq[k] - real[k]).sum() for k in real])) if real else None,
            "column_shapes": float(np.mean(list(shapes.values()))),
            **metrics(ds, syn),
        }
    row["pooled_columns"] = len(pooled)
    return row


def table(path: Path) -> str:
    rows = json.loads(path.read_text())
    keys = sorted({(r["dataset"], r["epsilon"]) for r in rows}, key=lambda k: (k[0], k[1]))
    out = [
        "| dataset | ε | fits | target TV codec → pooled | column shapes codec → pooled | pair trends | TSTR |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds, eps in keys:
        rs = [r for r in rows if r["dataset"] == ds and r["epsilon"] == eps]

        def pair(metric: str, rs: list[dict[str, Any]] = rs) -> str:
            a = [r["codec"][metric] for r in rs if r["codec"].get(metric) is not None]
            b = [r["pooled"][metric] for r in rs if r["pooled"].get(metric) is not None]
            if not a:
                return "—"
            return f"{np.mean(a):.4f} → {np.mean(b):.4f} ({np.mean(b) - np.mean(a):+.4f})"

        cells = [pair(m) for m in ("target_tv", "column_shapes", "pairs", "tstr")]
        out.append(f"| {ds} | {eps:g} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="adult,cps1988,nasscds,diamonds,colon,mplsstops")
    p.add_argument("--epsilons", default="1,3")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pool_one_way.json"))
    p.add_argument("--table", type=Path, help="Print the markdown table of a results file and exit.")
    a = p.parse_args(argv)
    if a.table is not None:
        print(table(a.table))
        return
    rows = json.loads(a.out.read_text()) if a.out.exists() else []
    done = {(r["dataset"], r["epsilon"], r["seed"]) for r in rows}
    for ds in a.datasets.split(","):
        for eps in (float(e) for e in a.epsilons.split(",")):
            for seed in (int(s) for s in a.seeds.split(",")):
                if (ds, eps, seed) in done:
                    continue
                row = run_one(ds, eps, seed)
                rows.append(row)
                a.out.write_text(json.dumps(rows, indent=1))
                print(
                    f"{ds} ε={eps:g} seed {seed}: "
                    + " | ".join(
                        f"{v} " + json.dumps({k: round(x, 4) for k, x in row[v].items() if x is not None})
                        for v in ("codec", "pooled")
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
