"""Categorical 1-way estimates from the codec's noisy counts: clipped at zero, or projected onto n̂'s simplex
(issue 20; round 2, session 16).

    python -m benchmarks.one_way_projection --datasets wage,adult --epsilons 1,3,10 --draws 400
    python -m benchmarks.one_way_projection --table

The codec releases each categorical column's counts with Gaussian noise (std σ rows) and, from every
column's noisy total, a DP row estimate n̂ (``Codec.n_estimate``). Two post-processings of the same
release, neither reading a row:

- ``clip``: negative counts set to zero, the rest normalised (the estimator before session 16). Each empty
  category keeps E[max(0, N(0, σ²))] ≈ 0.40σ rows, so a column with many empty categories (a contract's
  domain wider than the data: ISLR::Wage's ``region`` declares nine regions and holds one) loses
  0.40σ·(empty categories) / n of its mass to categories the table never holds;
- ``project``: the Euclidean projection onto {x ≥ 0, Σx = n̂} (subtract one θ from every count, clip at
  zero; the "Norm-Sub" of Wang et al. 2020), normalised; where the clipped counts sum to n̂ or less, that
  is clipping. n̂ is ``codec.row_estimate``: every column's total weighed by 1 / its bins.

For each suite table and ε, σ and the exact counts come from the table's real codec (the default fit's
own flow up to the codec, ``_capture``); then ``--draws`` fresh noise draws at that σ give each
estimator's mean total-variation error per categorical column (the column-shapes metric of a
categorical column is 1 − TV). Suite tables are public, so per-column figures may be printed.
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "one_way_projection.json"


class _Captured(Exception):
    pass


def _capture(ds: str, eps: float) -> dict[str, Any]:
    """The exact histograms of every codec column and the codec's noise std, at the default fit's split of ε."""
    from benchmarks.suite import load
    from synthgate.models.codec import Codec
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer, resolve_model_config

    contract, train, _, _ = load(ds)
    original = Codec.fit_dp

    def fit_dp(self: Codec, df: Any, *, ledger: Any, noise_multiplier: float, rng: Any) -> None:
        raise _Captured(
            {
                "sigma": noise_multiplier * self.sensitivity,
                "exact": {k: v.tolist() for k, v in self.histograms(df).items()},
                "categorical": [s.name for s in self.discrete],
            }
        )

    Codec.fit_dp = fit_dp  # type: ignore[method-assign]
    try:
        model = get_synthesizer(contract.model)(contract, resolve_model_config(contract), device="cpu")
        model.fit(train, ledger=PrivacyLedger(contract.privacy.delta), epsilon=eps, seed=0)
    except _Captured as c:
        return dict(c.args[0])
    finally:
        Codec.fit_dp = original  # type: ignore[method-assign]
    raise RuntimeError(f"{ds} at ε = {eps}: the fit never reached Codec.fit_dp")


def simulate(captured: dict[str, Any], draws: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean TV error of each estimator per categorical column over ``draws`` noise draws."""
    from synthgate.models.codec import one_way_estimate, row_estimate

    rng = np.random.default_rng(seed)
    sigma = float(captured["sigma"])
    exact = {k: np.asarray(v, dtype=np.float64) for k, v in captured["exact"].items()}
    out: dict[str, dict[str, list[float]]] = {c: {"clip": [], "project": []} for c in captured["categorical"]}
    for _ in range(draws):
        noisy = {k: v + rng.normal(0.0, sigma, size=v.shape) for k, v in exact.items()}
        n_hat, _ = row_estimate(noisy, sigma)
        for c in captured["categorical"]:
            truth = exact[c] / exact[c].sum()
            clipped = np.clip(noisy[c], 0.0, None)
            clip = clipped / clipped.sum() if clipped.sum() > 0 else np.full(len(truth), 1.0 / len(truth))
            out[c]["clip"].append(0.5 * float(np.abs(clip - truth).sum()))
            out[c]["project"].append(0.5 * float(np.abs(one_way_estimate(noisy[c], n_hat) - truth).sum()))
    return {c: {k: float(np.mean(v)) for k, v in d.items()} for c, d in out.items()}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | ε | σ (rows) | categorical columns | mean TV: clip | mean TV: project | columns better / worse (> 0.0005) | largest gain, loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cols = r["columns"]
        if not cols:
            continue
        d = {c: v["project"] - v["clip"] for c, v in cols.items()}
        best, worst = min(d, key=d.get), max(d, key=d.get)  # type: ignore[arg-type]
        lines.append(
            f"| {r['dataset']} | {r['epsilon']:g} | {r['sigma']:.1f} | {len(cols)} "
            f"| {np.mean([v['clip'] for v in cols.values()]):.4f} | {np.mean([v['project'] for v in cols.values()]):.4f} "
            f"| {sum(x < -0.0005 for x in d.values())} / {sum(x > 0.0005 for x in d.values())} "
            f"| {best} {d[best]:+.4f}, {worst} {d[worst]:+.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--datasets",
        default="adult,cps1988,nasscds,diamonds,colon,mplsstops,flchain,arrests,rwm5yr,caravan,hmda,wage,doctorvisits",
    )
    ap.add_argument("--epsilons", default="1,3,10")
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the results file as a markdown table")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.results.read_text(encoding="utf-8"))))
        return
    rows = []
    for ds in args.datasets.split(","):
        for eps in (float(e) for e in args.epsilons.split(",")):
            captured = _capture(ds, eps)
            cols = simulate(captured, args.draws, seed=zlib.crc32(f"{ds}@{eps}".encode()))
            rows.append(
                {"dataset": ds, "epsilon": eps, "sigma": captured["sigma"], "draws": args.draws, "columns": cols}
            )
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(table(rows))


if __name__ == "__main__":
    main()
