"""Time and peak memory of the privacy checks on a wide, few-row table (issue 21 item 7).

    python -m benchmarks.wide --label after                       # pd_speech (SYNTHGATE_SUITE_DATA)
    python -m benchmarks.wide --label after --generated 250x600   # a generated table of that shape
    python -m benchmarks.wide --label release-600 --release 250x600   # the whole release flow (CLI)
    python -m benchmarks.wide --table                             # markdown from results/wide.json

The table is modeldata::pd_speech (252 rows x 752 modelled columns: 750 continuous, a boolean and
the categorical target), exported once to SYNTHGATE_SUITE_DATA by the suite, or a generated table
of the shape asked for (``tests/integration/test_wide.py``'s generator: numeric and categorical
columns in blocks of related columns). Its rows are cut as benchmarks/false_blocks.py cuts them:
train 2/4, holdout 1/4, and the last quarter stands in for the synthetic table (fresh real rows).
Each stage of the privacy checks is timed in this process, one after another: identical matches,
the distance checks (DCR share, NNDR, worst column subset), the anonymeter risks and the
membership attacks (distance + DOMIAS). Peak memory is the process's high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``; the script is started on its own, so no parent's
memory is carried into it) after each stage. Results go to results/wide.json under ``--label``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "wide.json"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load(generated: str | None) -> tuple[Any, Any, str]:
    """(contract, modelled columns, description) of pd_speech or of a generated table."""
    if generated:
        from tests.integration.test_wide import wide_contract, wide_table

        rows, cols = (int(x) for x in generated.lower().split("x"))
        frame = wide_table(rows, cols)
        contract = wide_contract(frame)
        return contract, frame.select(contract.modelled_columns), f"generated {rows} x {cols}"
    from benchmarks.false_blocks import load_dataset

    contract, frame, _ = load_dataset("pd_speech")
    return contract, frame, "modeldata::pd_speech"


def run(generated: str | None, seed: int = 1000) -> dict[str, Any]:
    from benchmarks.common import machine
    from synthgate.validation.anonymeter import anonymeter_checks
    from synthgate.validation.gates import membership_attacks
    from synthgate.validation.privacy import distance_checks, identical_match_share

    contract, frame, what = load(generated)
    rows = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    n_hold = rows.height // 4
    n_train = rows.height - 2 * n_hold
    train, holdout, fresh = rows[:n_train], rows[n_train : n_train + n_hold], rows[n_train + n_hold :]
    stages: dict[str, dict[str, float]] = {}
    results: dict[str, Any] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = {"seconds": round(now - clock, 1), "peak_rss_mib": round(_peak_mib())}
        print(f"{name}: {stages[name]}", flush=True)
        clock = now

    lap("load")
    r = identical_match_share(fresh, train, holdout, contract=contract, seed=seed)
    results[r.name] = r.passed
    lap("identical_matches")
    for r in distance_checks(fresh, train, holdout, contract, seed=seed):
        results[r.name] = r.passed if r.threshold is not None else None
        if r.name == "dcr_share_worst_subset":
            results["subset_association"] = r.details.get("association_scope")
    lap("distance_checks")
    for r in anonymeter_checks(train, holdout, fresh, contract, seed=seed):
        results[r.name] = r.passed
    lap("anonymeter")
    attacks = membership_attacks(train, holdout, fresh, contract, seed=seed + 1)
    results["membership_attack_auc"] = {a.name: round(a.auc, 3) for a in attacks}
    lap("membership_attacks")
    code = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    return {
        "table": what,
        "code": code + (" + uncommitted changes" if dirty else ""),
        "rows": {"train": train.height, "holdout": holdout.height, "synthetic (fresh real)": fresh.height},
        "modelled_columns": len(contract.modelled_columns),
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "peak_rss_mib": round(_peak_mib()),
        "passed": results,
        "machine": machine(),
        "load_average_at_start": os.getloadavg(),
        "note": "shared 2-core machine, loaded by other agents' jobs: timings are indicative",
    }


def release(generated: str) -> dict[str, Any]:
    """The whole release flow through the CLI on a generated table (2 epochs, the schedule's batch),
    in a child process: wall seconds, the child's peak RSS (getrusage RUSAGE_CHILDREN), the exit
    code, the stage timings and failed gates from the owner's report."""
    import sys
    import tempfile

    import duckdb
    import yaml

    from benchmarks.common import machine
    from tests.integration.test_wide import wide_contract_data, wide_table

    rows, cols = (int(x) for x in generated.lower().split("x"))
    frame = wide_table(rows, cols)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with duckdb.connect(str(base / "src.duckdb")) as con:
            con.register("frame", frame.to_arrow())
            con.execute("CREATE TABLE wide AS SELECT * FROM frame")
        (base / "wide.yaml").write_text(yaml.safe_dump(wide_contract_data(frame), sort_keys=False))
        (base / "run.yaml").write_text(
            yaml.safe_dump(
                {
                    "contract": str(base / "wide.yaml"),
                    "source": {"db": str(base / "src.duckdb"), "table": "wide"},
                    "out": str(base / "out"),
                    "epochs": 2,
                    "seed": 0,
                }
            )
        )
        env = {
            **os.environ,
            "PREFECT_HOME": str(base / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        }
        load = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "synthgate.flows.cli", "run", "--config", str(base / "run.yaml"), "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - t0
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        owner = next((base / "out" / "owner").iterdir(), None) if (base / "out" / "owner").exists() else None
        report = json.loads((owner / "report.json").read_text()) if owner else {}
        sizes = {p.name: p.stat().st_size for p in owner.iterdir()} if owner else {}
    return {
        "table": f"generated {rows} x {cols} (+ target), release flow through the CLI, 2 epochs",
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(child.ru_utime + child.ru_stime, 1),
        "peak_rss_mib": round(child.ru_maxrss / 1024),
        "stage_seconds": report.get("timings"),
        "failed_gates": report.get("failed_gates"),
        "owner_report_bytes": sizes,
        "load_average_at_start": load,
        "machine": machine(),
        "note": "shared 2-core machine, loaded by other agents' jobs: timings are indicative",
    }


def table(done: dict[str, Any]) -> str:
    lines = [
        "| label | table | rows (train/holdout/synthetic) | stage | seconds | peak RSS after (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for label, entry in done.items():
        if "rows" not in entry:
            continue
        r = entry["rows"]
        size = "/".join(str(v) for v in r.values())
        for stage, s in entry["stages"].items():
            if stage == "load":
                continue
            lines.append(f"| {label} | {entry['table']} | {size} | {stage} | {s['seconds']} | {s['peak_rss_mib']} |")
        lines.append(
            f"| {label} | {entry['table']} | {size} | **total** | **{entry['total_seconds']}** | "
            f"**{entry['peak_rss_mib']}** |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="key of this measurement in the results file (e.g. before, after)")
    parser.add_argument("--generated", help="ROWSxCOLUMNS: a generated table instead of pd_speech")
    parser.add_argument("--release", help="ROWSxCOLUMNS: time the whole release flow (CLI) on a generated table")
    parser.add_argument("--table", action="store_true", help="print the table from the results file and exit")
    args = parser.parse_args()
    done: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.table:
        if not args.label:
            parser.error("--label is required to run")
        done[args.label] = release(args.release) if args.release else run(args.generated)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(done, indent=1) + "\n")
    print(table(done))


if __name__ == "__main__":
    main()
