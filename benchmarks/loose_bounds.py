"""Contracts bounded far wider than the rows: the numeric zoom's benchmark (issue 20, round 2 session 12).

    python -m benchmarks.loose_bounds --datasets adult@5000,cps1988@5000 --epsilons 1,3,10 --seeds 0,1,2
    python -m benchmarks.loose_bounds --table

A steward who does not know a column's range writes a wide one (an amount up to 10⁹, a feature within
±10¹²). Each suite table is fitted three ways at its default config: under its own contract ("tight"),
and under a *loosened* copy, every integer and continuous column's upper bound set to ``--wide`` (and
its lower bound to −``--wide`` where it was negative; datetimes and categories unchanged), with the
numeric zoom off ("loose-off") and on ("loose-auto", the default; models/codec.py ``Codec.zoom``).
Every arm is scored by the suite's ``evaluate`` under the table's own contract (column shapes, pair
trends, TSTR), so the three arms are comparable. One process, fits in turn; results are appended to
``--results`` (a fit already there is skipped).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import suite

RESULTS = Path(__file__).parent / "results" / "loose_bounds.json"
ARMS = ("tight", "loose-off", "loose-auto")


def loosen(contract: Any, wide: float) -> Any:
    """``contract`` with every integer/continuous column bounded by ``wide`` (−``wide`` below 0 where the
    lower bound is negative). Nothing else changes."""
    columns = {}
    for name, col in contract.columns.items():
        if getattr(col, "kind", None) in ("integer", "continuous"):
            cast = int if col.kind == "integer" else float
            update: dict[str, Any] = {"max": cast(wide)}
            if col.min < 0:
                update["min"] = cast(-wide)
            col = col.model_copy(update=update)
        columns[name] = col
    return contract.model_copy(update={"columns": columns})


def one_fit(dataset: str, arm: str, epsilon: float, seed: int, wide: float, folder: Path) -> dict[str, Any]:
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _, _ = suite.load(dataset)
    if arm != "tight":
        contract = loosen(contract, wide)
    options = {"numeric_zoom": "off"} if arm == "loose-off" else {}
    cls = get_synthesizer(contract.model)
    ledger = PrivacyLedger(contract.privacy.delta)
    started = time.process_time()
    model = cls(contract, suite.synthgate_config(contract, options), device="cpu").fit(
        train, ledger=ledger, epsilon=epsilon, seed=seed
    )
    cpu = time.process_time() - started
    path = folder / f"{dataset}-{arm}-{epsilon}-{seed}.parquet"
    model.sample(train.height, seed=seed + 1).write_parquet(path)
    scores = suite.evaluate(dataset, path)
    return {
        "dataset": dataset,
        "arm": arm,
        "epsilon": epsilon,
        "seed": seed,
        "wide": wide,
        **{k: scores.get(k) for k in ("column_shapes", "pair_trends", "tstr", "tstr_metric")},
        "zoomed": model.training_summary.get("zoomed"),
        "epsilon_spent": round(ledger.epsilon, 6),
        "cpu_s": round(cpu, 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Means over seeds, one line per (dataset, ε): shapes / pairs / TSTR per arm."""
    out = ["| dataset | ε | seeds | " + " | ".join(f"{a}: shapes / pairs / TSTR" for a in ARMS) + " |"]
    out.append("|---|---|---|" + "---|" * len(ARMS))
    keys = sorted({(r["dataset"], r["epsilon"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for dataset, eps in keys:
        cells, seeds = [], set()
        for arm in ARMS:
            rs = [r for r in rows if (r["dataset"], r["epsilon"], r["arm"]) == (dataset, eps, arm)]
            seeds |= {r["seed"] for r in rs}
            if not rs:
                cells.append("—")
                continue
            mean = {k: sum(r[k] for r in rs) / len(rs) for k in ("column_shapes", "pair_trends", "tstr")}
            cells.append(f"{mean['column_shapes']:.3f} / {mean['pair_trends']:.3f} / {mean['tstr']:.3f}")
        out.append(f"| {dataset} | {eps:g} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="adult@5000,cps1988@5000,diamonds@5000,nasscds@5000")
    ap.add_argument("--epsilons", default="1,3,10")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--wide", type=float, default=1e9, help="the loosened bound (default 1e9)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the table of --results and exit")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = json.loads(args.results.read_text()) if args.results.exists() else []
    if args.table:
        print(table(rows))
        return
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"--arms {unknown} unknown; choose from {list(ARMS)}")
    done = {(r["dataset"], r["arm"], r["epsilon"], r["seed"], r["wide"]) for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            for eps in (float(e) for e in args.epsilons.split(",")):
                for seed in (int(s) for s in args.seeds.split(",")):
                    for arm in arms:
                        if (dataset, arm, eps, seed, args.wide) in done:
                            continue
                        r = one_fit(dataset, arm, eps, seed, args.wide, Path(tmp))
                        rows.append(r)
                        args.results.parent.mkdir(parents=True, exist_ok=True)
                        args.results.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
                        print(json.dumps(r), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
