"""Column shapes per column, synthgate against independent marginals, and sampling variants compared
on the same fits (issue 20). Suite tables only (public), so per-column figures may be printed.

    python -m benchmarks.shapes_diag fit DATASET EPS SEED       # fit synthgate's default, save under CACHE
    python -m benchmarks.shapes_diag marg DATASET EPS SEED      # independent marginals (the peer env)
    python -m benchmarks.shapes_diag score VARIANTS [DATASETS]  # per-column KS/TV, means over cached fits
    python -m benchmarks.shapes_diag summary VARIANTS [DATASETS]  # shapes, pair trends, TSTR per variant
    python -m benchmarks.shapes_diag repeat VARIANTS DATASET EPS K  # column shapes over K sampling seeds a fit,
                                                                    # paired against the first variant

VARIANTS: comma-separated keys of ``VARIANTS`` (the Calibrator's options; "off" samples without raking).
A fit's DP noise comes from private entropy, so two fits under one seed differ: sampling variants are
compared on the same cached fit and the same sampling seed (the suite's, seed + 1). CACHE: env
SHAPES_CACHE (default /tmp/shapes); SYNTHGATE_SUITE_DATA as for benchmarks.suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("SHAPES_CACHE", "/tmp/shapes"))
PEER_PY = Path(os.environ.get("PEER_PYTHON", Path(__file__).parent.parent / ".peers" / "bin" / "python"))


# sampling variants: Calibrator options (None: no raking)
VARIANTS = {
    "off": None,
    "base": {"numeric_cells": False, "one_way_last": False, "settle_sweeps": 0},  # the raking before 2026-12
    "lastone": {"numeric_cells": False, "one_way_last": True, "settle_sweeps": 0},
    "cellsfirst": {"numeric_cells": True, "one_way_last": False, "settle_sweeps": 0},
    "lastbins": {"numeric_cells": True, "one_way_last": True, "settle_sweeps": 0},  # pairs, numeric cells, discrete
    "pool8": {"numeric_cells": True, "one_way_last": True, "settle_sweeps": 0},  # the same from a pool of 8x the rows
    "settle": {"numeric_cells": True, "one_way_last": True},  # then the categorical 1-way targets alone (default)
    "settleall": {"settle_numeric": True},  # settling the numeric cells too (tried, not kept)
    "nofactor": {"factorise": False},  # the default, never factorised (it is when the critic did not train)
}


def fit(ds: str, eps: float, seed: int) -> None:
    from benchmarks.suite import load
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer, resolve_model_config

    contract, train, _, _ = load(ds)
    cls = get_synthesizer(contract.model)
    config = resolve_model_config(contract)
    ledger = PrivacyLedger(contract.privacy.delta)
    t = time.perf_counter()
    model = cls(contract, config, device="cpu").fit(train, ledger=ledger, epsilon=eps, seed=seed)
    CACHE.mkdir(parents=True, exist_ok=True)
    model.save(CACHE / f"sg-{ds}-{eps:g}-{seed}.pt")
    print(f"fit {ds} {eps:g} {seed}: {time.perf_counter() - t:.0f} s", flush=True)


def marg(ds: str, eps: float, seed: int) -> None:
    from benchmarks.suite import _command

    out = CACHE / f"marg-{ds}-{eps:g}-{seed}"
    cmd = _command({"dataset": ds, "method": "marginals", "epsilon": eps, "seed": seed}, CACHE, out, PEER_PY)
    subprocess.run(cmd, check=True, cwd=Path(__file__).parent.parent)


def per_column(ds: str, synthetic) -> dict[str, float]:

    from benchmarks.suite import load
    from synthgate.tasks.ingest import prepare_frame
    from synthgate.validation.fidelity import column_shapes

    contract, train, _, _ = load(ds)
    s = prepare_frame(synthetic, contract).select(train.columns)
    s = s.cast({c: train.schema[c] for c in train.columns}, strict=True)
    res = column_shapes(train, s, contract)
    return {k: v["score"] for k, v in res.details["per_column"].items()}


def metrics(ds: str, synthetic) -> dict[str, float]:
    from benchmarks.suite import load
    from synthgate.tasks.ingest import prepare_frame
    from synthgate.validation.fidelity import ml_efficacy, pair_trends

    contract, train, test, _ = load(ds)
    s = prepare_frame(synthetic, contract).select(train.columns)
    s = s.cast({c: train.schema[c] for c in train.columns}, strict=True)
    out = {"pairs": pair_trends(train, s, contract).value}
    ml = ml_efficacy(train, s, test, contract, seed=0)
    if ml is not None:
        metric = "r2" if ml.details.get("task") == "regression" else "auc"
        out["tstr"] = ml.details.get("tstr", {}).get(metric, float("nan"))
    return out


def summary(variants: list[str], datasets: list[str] | None) -> None:
    import numpy as np

    res: dict[tuple[str, str], dict[str, list[dict[str, float]]]] = {}
    for path in sorted(CACHE.glob("sg-*.pt")):
        _, ds, eps, seed = path.stem.split("-")
        if datasets and ds not in datasets:
            continue
        for v in variants:
            syn = sample(ds, path, int(seed), v)
            pc = per_column(ds, syn)
            r = {"shapes": float(np.mean(list(pc.values()))), **metrics(ds, syn)}
            res.setdefault((ds, eps), {}).setdefault(v, []).append(r)
            print(ds, eps, seed, v, {k: round(x, 4) for k, x in r.items()}, flush=True)
    print()
    for (ds, eps), by in sorted(res.items()):
        for v, rs in by.items():
            print(
                f"{ds:10s} eps={eps} {v:10s} n={len(rs)} "
                + " ".join(f"{k}={np.mean([r[k] for r in rs]):.4f}" for k in rs[0])
            )


def sample(ds: str, path: Path, seed: int, variant: str):
    from benchmarks.suite import load
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _, _ = load(ds)
    cls = get_synthesizer(contract.model)
    model = cls.load(path, contract, device="cpu")

    import synthgate.models.synthesizers.ctgan as ctgan
    from synthgate.models.calibrate import Calibrator

    options = VARIANTS[variant]

    def calibrator(codec: Any, measured: Any, **given: Any) -> Calibrator:
        return Calibrator(codec, measured, **{**given, **(options or {})})  # the variant's options win

    ctgan.Calibrator = calibrator
    import synthgate.models.synthesizers.base as base

    base.POOL_FACTOR = 8 if variant == "pool8" else 4
    if options is None:
        model._calibrator = lambda: None
    return model.sample(train.height, seed=seed + 1)


def score(variants: list[str], datasets: list[str] | None) -> None:
    import numpy as np
    import polars as pl

    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for path in sorted(CACHE.glob("sg-*.pt")):
        _, ds, eps, seed = path.stem.split("-")
        if datasets and ds not in datasets:
            continue
        m = CACHE / f"marg-{ds}-{eps}-{seed}" / "synthetic.parquet"
        if m.exists():
            rows.setdefault((ds, eps), {}).setdefault("marginals", []).append(per_column(ds, pl.read_parquet(m)))
        for v in variants:
            rows.setdefault((ds, eps), {}).setdefault(v, []).append(per_column(ds, sample(ds, path, int(seed), v)))
    for (ds, eps), by in sorted(rows.items()):
        names = list(next(iter(by.values()))[0])
        print(f"\n== {ds} eps={eps}  (seeds: " + ", ".join(f"{k} {len(v)}" for k, v in by.items()) + ")")
        print(f"{'column':24s}" + "".join(f"{k[:14]:>15s}" for k in by))
        for c in names:
            print(f"{c[:24]:24s}" + "".join(f"{np.mean([r[c] for r in v]):15.4f}" for v in by.values()))
        print(
            f"{'MEAN':24s}" + "".join(f"{np.mean([np.mean(list(r.values())) for r in v]):15.4f}" for v in by.values())
        )


def repeat(variants: list[str], ds: str, eps: str, k: int) -> None:
    """Column shapes of each cached fit of (ds, eps) under ``k`` sampling seeds (100, 101, ...) per variant,
    and each variant's mean paired difference from the first (the draw's sampling error averages out)."""
    import numpy as np

    res: dict[str, list[float]] = {v: [] for v in variants}
    for path in sorted(CACHE.glob(f"sg-{ds}-{eps}-*.pt")):
        for s in range(100, 100 + k):
            for v in variants:
                res[v].append(float(np.mean(list(per_column(ds, sample(ds, path, s, v)).values()))))
    base = np.array(res[variants[0]])
    for v in variants:
        d = np.array(res[v]) - base
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        print(f"{ds} eps={eps} {v:10s} shapes={np.mean(res[v]):.4f} diff={d.mean():+.4f} ± {se:.4f} (n={len(d)})")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fit":
        fit(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "marg":
        marg(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "repeat":
        repeat(sys.argv[2].split(","), sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "summary":
        summary(sys.argv[2].split(","), sys.argv[3].split(",") if len(sys.argv) > 3 else None)
    else:
        score(
            sys.argv[2].split(",") if len(sys.argv) > 2 else ["base"],
            sys.argv[3].split(",") if len(sys.argv) > 3 else None,
        )
