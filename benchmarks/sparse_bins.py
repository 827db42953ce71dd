"""The codec's sparse-bin estimators on the suite tables' numeric columns, codec only (issue 20).

    python -m benchmarks.sparse_bins [--datasets adult,cps1988] [--epsilons 1,3] [--draws 200]
    python -m benchmarks.sparse_bins --table     # the table of benchmarks/results/sparse_bins.json

For each numeric column of each suite table, the exact histogram over the codec's public bins gets
the codec's Gaussian noise at the default σ for that ε (``codec_noise_for`` × the codec's L2
sensitivity, as a default fit draws it), ``--draws`` times from a fixed seed, and every estimator
turns the same noisy counts into bin masses. Scored against the exact histogram (public tables; a
diagnosis, never an input to any default):

- ``ks``: the largest gap between the DP and the real CDF at the bin edges;
- ``w1``: the Wasserstein-1 distance between the two (each uniform inside a bin), over the column's std;
- ``tail_p``: the share of draws that put more than 2 × the real rows + 20 above the real 99.9th
  percentile's bin (a spurious tail: the cps1988 ``wage`` outliers, bounds 0-25,000 and 18 of 19,709
  rows above 3,730).

Estimators: ``runs`` (``_merged_mass``, the default for columns that are not noise-bound: greedy runs,
held to a stricter level outside the column's support), ``before`` (the same greedy runs at one level
everywhere, the default before round 2 session 8) and ``segments`` (``_segment_mass``, the default for
noise-bound columns). ``noise_bound`` marks the columns ``Codec.noise_bound_columns`` names at that σ.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

from benchmarks import suite
from synthgate.models import codec as codec_module
from synthgate.models.synthesizers import get_synthesizer
from synthgate.models.synthesizers.base import codec_noise_for

RESULTS = Path(__file__).parent / "results" / "sparse_bins.json"
SEED = 20_261_207

Estimator = Callable[[np.ndarray, float, Any], np.ndarray]


def _before(counts: np.ndarray, sigma: float, spec: Any) -> np.ndarray:
    """``_merged_mass`` before round 2 session 8: one level everywhere (no support)."""
    tau = float(norm.ppf(1.0 - codec_module.FAMILY_ALPHA / len(counts)))
    return codec_module._merged_mass(counts, sigma, spec, tau=tau, tau_outside=tau)


def _clip(counts: np.ndarray, sigma: float, spec: Any) -> np.ndarray:
    """The categorical columns' estimate: every bin keeps its noisy count clipped at zero."""
    return codec_module._normalise(counts, 0.0)


ESTIMATORS: dict[str, Estimator] = {
    "before": _before,
    "clip": _clip,
    "runs": codec_module._merged_mass,
    "segments": codec_module._segment_mass,
}


def _cdfs(mass: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.cumsum(mass), np.cumsum(exact / exact.sum())


def ks(mass: np.ndarray, exact: np.ndarray) -> float:
    a, b = _cdfs(mass, exact)
    return float(np.abs(a - b).max())


def w1(mass: np.ndarray, exact: np.ndarray, width: np.ndarray) -> float:
    """∫|F_dp − F_real| with both CDFs linear inside each bin (trapezoid on each bin: exact where the
    two do not cross inside it)."""
    a, b = _cdfs(mass, exact)
    pa, pb = np.concatenate([[0.0], a[:-1]]), np.concatenate([[0.0], b[:-1]])
    return float(np.sum(width * 0.5 * (np.abs(pa - pb) + np.abs(a - b))))


def column_runs(name: str, epsilons: list[float], draws: int) -> list[dict[str, Any]]:
    contract, train, _, _ = suite.load(name)
    codec = codec_module.Codec(contract)
    exact_all = codec.histograms(train)
    codec.n_estimate = float(train.height)  # the exact n stands in for n̂ (noise_bound_columns only)
    family = get_synthesizer(contract.model)
    out = []
    for eps in epsilons:
        noise = codec_noise_for(eps, contract.privacy.delta, family.codec_share, family.codec_noise_floor)
        sigma = noise * codec.sensitivity
        bound = set(codec.noise_bound_columns(sigma))
        for spec in codec.numeric:
            exact = exact_all[spec.name][:-1] if spec.nullable else exact_all[spec.name]
            if exact.sum() <= 0:
                continue
            values = train[spec.name].drop_nulls().cast(float).to_numpy()
            sd = float(np.std(values)) if values.size and np.std(values) > 0 else 1.0
            width = (spec.edges_hi - spec.edges_lo) / sd
            cum = np.cumsum(exact) / exact.sum()
            tail = np.arange(len(exact)) > int(np.searchsorted(cum, 0.999))
            real_tail = float(exact[tail].sum())
            rng = np.random.default_rng([SEED, int(eps * 1000), len(out)])
            scores: dict[str, list[tuple[float, float, float]]] = {k: [] for k in ESTIMATORS}
            for _ in range(draws):
                noisy = exact + rng.normal(0.0, sigma, exact.shape)
                for key, estimator in ESTIMATORS.items():
                    mass = estimator(noisy, sigma, spec)
                    scores[key].append((ks(mass, exact), w1(mass, exact, width), float(mass[tail].sum() * exact.sum())))
            row: dict[str, Any] = {
                "dataset": name,
                "epsilon": eps,
                "column": spec.name,
                "rows": int(exact.sum()),
                "sigma": round(sigma, 2),
                "noise_bound": spec.name in bound,
                "real_tail_rows": real_tail,
            }
            for key, s in scores.items():
                a = np.array(s)
                row[key] = {
                    "ks": round(float(a[:, 0].mean()), 5),
                    "w1": round(float(a[:, 1].mean()), 5),
                    "w1_p95": round(float(np.quantile(a[:, 1], 0.95)), 5),
                    "tail_p": round(float(np.mean(a[:, 2] > 2.0 * real_tail + 20.0)), 4),
                }
            out.append(row)
            print(
                f"{name:10s} ε={eps:<4g} {spec.name[:18]:18s}{' (noise-bound)' if row['noise_bound'] else ''} "
                + " | ".join(
                    f"{k}: ks {row[k]['ks']:.4f} w1 {row[k]['w1']:.4f} tail {row[k]['tail_p']:.3f}" for k in ESTIMATORS
                ),
                flush=True,
            )
    return out


def table(path: Path) -> None:
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    keys = list(ESTIMATORS)
    print("| table | ε | column | " + " | ".join(f"{k} KS / W1 / tail" for k in keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for r in rows:
        name = r["column"] + (" (noise-bound)" if r["noise_bound"] else "")
        cells = " | ".join(f"{r[k]['ks']:.4f} / {r[k]['w1']:.4f} / {r[k]['tail_p']:.3f}" for k in keys)
        print(f"| {r['dataset']} | {r['epsilon']:g} | {name} | {cells} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="adult,cps1988,nasscds,diamonds,mplsstops,colon")
    ap.add_argument("--epsilons", default="1,3")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="Print the markdown table of --out and exit.")
    args = ap.parse_args()
    if args.table:
        table(args.out)
        return
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in args.datasets.split(","):
        rows += column_runs(name, [float(e) for e in args.epsilons.split(",")], args.draws)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"draws": args.draws, "seed": SEED, "seconds": round(time.perf_counter() - started, 1), "rows": rows}
    args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
