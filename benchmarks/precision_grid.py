"""The recording grid follows the value (round 2, session 15): paired decodes of the same fits.

    python -m benchmarks.precision_grid --datasets rwm5yr,flchain,diamonds,cps1988,mplsstops,nasscds \\
        --epsilons 1,3,10 --seeds 0,1,2
    python -m benchmarks.precision_grid --table      # benchmarks/results/precision_grid.jsonl
    python -m benchmarks.precision_grid --datasets diamonds --epsilons 3 --detection \
        --results benchmarks/results/precision_grid_detection.jsonl

``Codec.decode`` puts each continuous or datetime value on a recording grid drawn from the column's DP
precision profile (``models/codec.py``, ``_on_grid``). Before this session the grid was drawn apart
from the value, from the column's shares alone, and the grids were 1, 0.1, 0.01, 0.001: on
COUNT::rwm5yr's ``educ`` (years of schooling, declared continuous in [0, 30]; 19 values, whole and
half years, 35% of rows at 10.5) a value decoded inside the bin (10.43, 10.66) went to 10 or 11 half
the time (out of its bin) and to 10.4 / 10.6 otherwise: KS complement 0.83 at ε = 10. Now a row draws
only among the grids with a point inside its decoded bin and is rounded to that point, and the
ladder has a half-unit grid (1, 0.5, 0.1, 0.01, 0.001).

Both decodes are post-processing of the same fitted model, so each job fits once (the default model,
suite contract, ε, seed) and samples twice from the same generator draws: ``after`` with the code as
it is, ``before`` with the old rule (the profile's half-unit share folded into the 0.1 grid, which is
what the old ladder measured, and the column's bounds as every row's interval). The difference is the
decode's alone; fit-to-fit spread does not enter it. Scored with the suite's ``evaluate``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "precision_grid.jsonl"
METRICS = ("column_shapes", "pair_trends", "tstr")
OLD_CONTINUOUS_STEPS = (1.0, 0.1, 0.01, 0.001)


def _old_on_grid(
    values: np.ndarray, shares: np.ndarray, steps: tuple[float, ...], lo: float, hi: float, rng: np.random.Generator
) -> np.ndarray:
    """The rule before session 15: a grid drawn from the column's shares, apart from the value."""
    level = rng.choice(len(shares), size=len(values), p=shares)
    out = values.copy()
    for k, step in enumerate(steps):
        rows = level == k
        if not rows.any():
            continue
        r = np.rint(values[rows] / step) * step
        r = np.where(r < lo, r + step, np.where(r > hi, r - step, r))
        out[rows] = np.where((r >= lo) & (r <= hi), r, values[rows])
    return out


def _before(codec: Any) -> None:
    """Make ``codec.decode`` use the old rule (this codec object only)."""
    import synthgate.models.codec as codec_module

    steps_now = codec_module.PRECISION_STEPS["continuous"]
    half = steps_now.index(0.5)
    spec_of = {s.name: s for s in codec.numeric}

    def old(
        values: np.ndarray, shares: np.ndarray, steps: tuple[float, ...], lo: Any, hi: Any, rng: Any, bounds: Any = None
    ) -> np.ndarray:
        name = old.column  # type: ignore[attr-defined]
        spec = spec_of[name]
        if steps == steps_now:  # fold the half-unit share into the 0.1 grid, as the old ladder measured it
            shares = np.delete(shares, half)
            shares[half] += codec.precision[name][half]
            steps = OLD_CONTINUOUS_STEPS
        return _old_on_grid(values, shares, steps, spec.lo, spec.hi, rng)

    edges = codec._decoded_bin_edges

    def remember(spec: Any, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        old.column = spec.name  # type: ignore[attr-defined]
        return edges(spec, x, n)

    codec._decoded_bin_edges = remember
    codec_module._on_grid = old


def fit_one(dataset: str, epsilon: float, seed: int, detection: bool = False) -> list[dict[str, Any]]:
    """One fit, sampled ``after`` then ``before``; ``detection``: also the release gate's detection AUC
    of each sample against the test rows (``validation.fidelity.detection``, the suite's holdout)."""
    import polars as pl

    from benchmarks.suite import evaluate, load, synthgate_config
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer
    from synthgate.validation.fidelity import detection as detect

    contract, train, test, _ = load(dataset)
    cls = get_synthesizer(contract.model)
    model = cls(contract, synthgate_config(contract, {}), device="cpu").fit(
        train, ledger=PrivacyLedger(contract.privacy.delta), epsilon=epsilon, seed=seed
    )
    rows = []
    for arm in ("after", "before"):
        if arm == "before":
            _before(model.codec)
        synthetic = model.sample(train.height, seed=seed + 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "synthetic.parquet"
            synthetic.write_parquet(path)
            scores = evaluate(dataset, path)
        row = {"arm": arm, "dataset": dataset, "epsilon": epsilon, "seed": seed, **{m: scores.get(m) for m in METRICS}}
        if detection:
            synthetic = synthetic.select(train.columns).cast({c: train.schema[c] for c in train.columns})
            row["detection_auc"] = round(detect(test, pl.DataFrame(synthetic), contract, seed=0).value, 4)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Per (dataset, ε): mean after − before over the seeds, and over every job."""
    cells: dict[tuple[str, float, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        cells[(r["dataset"], r["epsilon"], r["seed"])][r["arm"]] = r
    lines = [
        "| dataset | ε | fits | " + " | ".join(f"{m}: before → after (Δ [min, max])" for m in METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    overall: dict[str, list[float]] = defaultdict(list)
    for ds, eps in sorted({k[:2] for k in cells}):
        pairs = [v for k, v in cells.items() if k[:2] == (ds, eps) and {"before", "after"} <= set(v)]
        parts = []
        for m in METRICS:
            got = [
                (p["before"][m], p["after"][m])
                for p in pairs
                if p["before"][m] is not None and p["after"][m] is not None
            ]
            d = [a - b for b, a in got]
            overall[m] += d
            parts.append(
                f"{statistics.mean(b for b, _ in got):.4f} → {statistics.mean(a for _, a in got):.4f} "
                f"({statistics.mean(d):+.4f} [{min(d):+.4f}, {max(d):+.4f}])"
                if got
                else "—"
            )
        lines.append(f"| {ds} | {eps:g} | {len(pairs)} | " + " | ".join(parts) + " |")
    det = [
        (v["before"]["detection_auc"], v["after"]["detection_auc"])
        for v in cells.values()
        if {"before", "after"} <= set(v) and "detection_auc" in v["before"]
    ]
    if det:
        lines.append("")
        lines.append(
            "detection AUC before → after (dataset ε seed): "
            + ", ".join(
                f"{k[0]} {k[1]:g} {k[2]}: {v['before']['detection_auc']:.3f} → {v['after']['detection_auc']:.3f}"
                for k, v in sorted(cells.items())
                if {"before", "after"} <= set(v) and "detection_auc" in v["before"]
            )
        )
    lines.insert(
        len(lines) - (2 if det else 0),
        "| **all** | | "
        + str(len(overall[METRICS[0]]))
        + " | "
        + " | ".join(f"**{statistics.mean(overall[m]):+.4f}**" if overall[m] else "—" for m in METRICS)
        + " |",
    )
    return "\n".join(lines)


def main() -> None:
    from benchmarks.common import append_rows, cell_arguments, read_rows, run_one_per_process

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cell_arguments(
        ap,
        datasets="rwm5yr,flchain,diamonds,cps1988,mplsstops,nasscds",
        epsilons="1,3,10",
        seeds="0,1,2",
        results=RESULTS,
    )
    ap.add_argument("--detection", action="store_true", help="Also score each sample's detection AUC.")
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        out = fit_one(job["dataset"], float(job["epsilon"]), int(job["seed"]), bool(job.get("detection")))
        append_rows(args.results, out)
        print(json.dumps(out), flush=True)
        return
    if args.table:
        print(table(read_rows(args.results)))
        return
    jobs = [
        {"dataset": dataset, "epsilon": eps, "seed": seed, "detection": args.detection}
        for seed in (int(s) for s in args.seeds.split(","))
        for dataset in args.datasets.split(",")
        for eps in (float(e) for e in args.epsilons.split(","))
    ]
    run_one_per_process("benchmarks.precision_grid", jobs, args.results)


if __name__ == "__main__":
    main()
