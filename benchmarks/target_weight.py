"""The target's pairs weighted in the generator's pair loss, against every pair at weight 1 (issue 20; round 2,
session 16).

    python -m benchmarks.target_weight --cells doctorvisits@3,hmda@10,adult@1 --seeds 0,1,2
    python -m benchmarks.target_weight --table

Each job fits synthgate's default on a suite table (benchmarks/suite.py's split, contract and data) in its
own process, in one of two arms, and scores the sample with the suite's ``evaluate``:

- ``balance`` (the default since session 16): ``PairLoss(measured, device, target=contract.target)``, each
  pair with the target weighing ``marginals.target_weight`` (other pairs / the target's pairs, at least 1);
- ``plain`` (before): ``PairLoss(measured, device)``, every pair at weight 1.

The arms share a seed, not their DP noise (private streams), so compare means over seeds. The committed
rows (``driver: "throwaway, eebb4a8"``) came from a one-off driver that patched the same weighting into
eebb4a8's ``PairLoss`` before it was part of the code; this script reproduces both arms on the code it runs on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "target_weight.jsonl"
METRICS = ("column_shapes", "pair_trends", "tstr")


def run_one(dataset: str, epsilon: float, seed: int, arm: str) -> dict[str, Any]:
    """One fit in this process: ``arm`` "plain" builds the loss without the target."""
    import synthgate.models.synthesizers.ctgan as ctgan_module
    from benchmarks.suite import evaluate, fit_synthgate

    if arm == "plain":
        original = ctgan_module.PairLoss

        def plain(measured: Any, device: Any, target: str | None = None) -> Any:
            return original(measured, device)

        ctgan_module.PairLoss = plain  # type: ignore[misc,assignment]
    elif arm != "balance":
        raise SystemExit(f"unknown arm {arm!r}: balance or plain")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        fit_synthgate({"dataset": dataset, "method": "synthgate", "epsilon": epsilon, "seed": seed}, out)
        scores = evaluate(dataset, out / "synthetic.parquet")
    return {"dataset": dataset, "epsilon": epsilon, "seed": seed, "mode": arm, **{m: scores[m] for m in METRICS}}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cells: dict[tuple[str, float], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cells[(r["dataset"], float(r["epsilon"]))][r["mode"]].append(r)
    lines = [
        "| table | ε | fits per arm | column shapes plain → balance | pair trends plain → balance | TSTR plain → balance |",
        "|---|---|---|---|---|---|",
    ]
    for (ds, eps), arms in cells.items():
        b, p = arms.get("balance", []), arms.get("plain", [])
        if not b or not p:
            continue
        parts = []
        for m in METRICS:
            mb, mp = statistics.mean(r[m] for r in b), statistics.mean(r[m] for r in p)
            parts.append(f"{mp:.4f} → {mb:.4f} ({mb - mp:+.4f})")
        lines.append(f"| {ds} | {eps:g} | {min(len(b), len(p))} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="doctorvisits@3,hmda@10,wage@3,flchain@3,diamonds@3,adult@1,nasscds@1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the results file as a markdown table")
    ap.add_argument("--one", nargs=4, metavar=("DATASET", "EPSILON", "SEED", "ARM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table:
        print(table(args.results))
        return
    if args.one:
        ds, eps, seed, arm = args.one
        print(json.dumps(run_one(ds, float(eps), int(seed), arm)))
        return
    for cell in args.cells.split(","):
        ds, _, eps = cell.partition("@")
        for seed in args.seeds.split(","):
            for arm in ("balance", "plain"):
                cmd = [sys.executable, "-m", "benchmarks.target_weight", "--one", ds, eps, seed, arm]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(json.dumps(row), flush=True)
                with args.results.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    print(table(args.results))


if __name__ == "__main__":
    main()
