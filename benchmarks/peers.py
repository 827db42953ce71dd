"""synthgate against its peers on Adult, side by side: utility, privacy figures and speed.

    python -m benchmarks.peers --suite quick     # = make bench-quick, under 10 minutes on 2 cores
    python -m benchmarks.peers --suite full      # = make bench: the peers' reference settings and
                                                 #   the privacy-utility frontier (3 seeds per ε)
    python -m benchmarks.peers --table           # markdown tables from benchmarks/results/peers.json
    python -m benchmarks.peers --plot            # benchmarks/results/frontier.png

Protocol (../shared/datasets/README.md): every generator fits on all 32,561 rows of adult.data
(the first 32,561 rows of the embedded demo table) and samples 32,561 rows; everything is scored
by synthgate's own evaluation code, in this environment: column shapes and pair trends against the
training rows, TSTR accuracy/F1/AUC of HistGradientBoostingClassifier tested on all of adult.test
(the remaining 16,281 rows), the DCR share (synthetic rows closer to train than to adult.test,
size-reweighted; 0.5 ideal) and the worst AUC of the distance and DOMIAS membership attacks
(members from train, non-members from adult.test).

The peers (the ``ctgan`` package's CTGAN and TVAE, smartnoise-synth's MST and DP-CTGAN) run in a
SEPARATE Python environment (``--peer-python``, default ``.peers/bin/python``, made by ``make
peers``), never installed into synthgate's: ``benchmarks/peer_fit.py`` fits and samples there and
writes parquet. Each fit runs in its own subprocess, one after another, alternating synthgate and
peer runs so that drift of the machine hits both; per run the fit records seconds per epoch (the
training loop alone), total fit seconds, sampling rows/s (``SPEED_ROWS`` rows, timed apart from the
evaluation sample) and the fitting process's peak RSS. Results merge into
benchmarks/results/peers.json keyed by (suite, name, ε, seed, device). ``--device cuda`` trains
synthgate and the ctgan package's models on the GPU (MST has no GPU path; DP-CTGAN stays on CPU).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "peers.json"
PLOT = Path(__file__).parent / "results" / "frontier.png"
PEER_FIT = Path(__file__).parent / "peer_fit.py"
DEFAULT_PEER_PYTHON = Path(__file__).parent.parent / ".peers" / "bin" / "python"
TRAIN_ROWS = 32_561  # adult.data; the demo table's remaining 16,281 rows are adult.test
SPEED_ROWS = 200_000
DELTA = 1e-6
INF = math.inf

# synthgate as a user gets it: the demo contract's model (ctgan) at its DEFAULT config, every ε.
# No DP setting was tuned on this split (a sweep is itself a use of the data outside any privacy
# guarantee). TVAE_LONG is shown apart: synthgate's tvae non-DP with more epochs than its default of
# 10, for the issue's non-DP target (≤ 3 minutes of training); 150 was chosen after one run at 60
# epochs on this split (BENCHMARKS.md says so).
SYNTHGATE = {"model": "ctgan", "config": {}}
TVAE_LONG = {"model": "tvae", "epochs": 150}
# the ctgan package's default architecture and batch (generator 256-256 residual, critic 256-256,
# 128-wide noise, batch 500): synthgate's ctgan set to it, for the per-epoch speed comparison
EQUAL_ARCHITECTURE = {"generator_dims": [256, 256], "critic_dims": [256, 256], "z_dim": 128, "batch_size": 500}
ARCH_NAME = "synthgate (ctgan-package architecture)"


def _job(name: str, system: str, epsilon: float, seed: int = 0, **spec: Any) -> dict[str, Any]:
    return {"name": name, "system": system, "epsilon": epsilon, "seed": seed, **spec}


def suite(which: str, seeds: int) -> list[dict[str, Any]]:
    """The runs of a suite, synthgate and peers alternating."""
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    if which == "quick":
        ours += [_job("synthgate", "synthgate", eps) for eps in (INF, 3.0, 1.0)]
        ours += [_job(ARCH_NAME, "synthgate", eps, epochs=2, config=EQUAL_ARCHITECTURE) for eps in (INF, 3.0)]
        theirs += [
            _job("ctgan 0.12.1 CTGAN", "ctgan", INF, epochs=2),
            _job("ctgan 0.12.1 TVAE", "tvae", INF, epochs=30),
            _job("smartnoise MST", "mst", 1.0),
        ]
    elif which == "full":
        for seed in range(seeds):
            ours += [_job("synthgate", "synthgate", eps, seed) for eps in (INF, 10.0, 3.0, 1.0, 0.5)]
            ours += [_job("synthgate tvae, 150 epochs", "synthgate", INF, seed, **TVAE_LONG)]
            theirs += [_job("smartnoise MST", "mst", eps, seed) for eps in (10.0, 3.0, 1.0, 0.5)]
        ours += [_job(ARCH_NAME, "synthgate", eps, epochs=10, config=EQUAL_ARCHITECTURE) for eps in (INF, 3.0)]
        theirs += [
            _job("ctgan 0.12.1 CTGAN", "ctgan", INF, epochs=50),
            _job("ctgan 0.12.1 TVAE", "tvae", INF, epochs=300),
            _job("smartnoise DP-CTGAN", "dpctgan", 3.0, epochs=1),
        ]
    else:
        raise SystemExit(f"unknown suite {which!r}: use quick or full")
    jobs = []
    for i in range(max(len(ours), len(theirs))):
        jobs += [j for j in (ours[i] if i < len(ours) else None, theirs[i] if i < len(theirs) else None) if j]
    return [{**j, "suite": which} for j in jobs]


# --- data ---------------------------------------------------------------------------------


@functools.cache
def adult_split() -> tuple[Any, Any, Any]:
    """(contract, adult.data rows, adult.test rows), missing markers as null; read once per process
    (the runner scores every run against them)."""
    from benchmarks.common import load_adult

    contract, df = load_adult()
    if df.height != TRAIN_ROWS + 16_281:
        raise RuntimeError(f"the demo table has {df.height:,} rows; expected adult.data + adult.test = 48,842")
    return contract, df.head(TRAIN_ROWS), df.slice(TRAIN_ROWS)


def _peer_inputs(folder: Path) -> dict[str, Any]:
    """The training parquet for the peers (nulls written back as the contract's "?") and the
    columns' kinds and public bounds."""
    import polars as pl

    from synthgate.validation.contract import CategoricalColumn

    contract, train, _ = adult_split()
    path = folder / "train.parquet"
    if not path.exists():  # the same rows for every peer run in this folder
        marker = contract.missing_values[0]
        text = [pl.col(c).fill_null(marker) for c in train.columns if train.schema[c] == pl.Utf8]
        train.with_columns(text).write_parquet(path)
    columns = []
    for name in train.columns:
        col = contract.columns[name]
        if isinstance(col, CategoricalColumn):
            columns.append({"name": name, "kind": "categorical"})
        else:
            columns.append({"name": name, "kind": "integer", "min": int(col.min), "max": int(col.max)})
    return {"train": str(path), "columns": columns, "rows": TRAIN_ROWS, "speed_rows": SPEED_ROWS, "delta": DELTA}


# --- one fit --------------------------------------------------------------------------------


def fit_synthgate(job: dict[str, Any], out: Path) -> None:
    """Fit synthgate on adult.data in this process; write synthetic.parquet and result.json."""
    import torch

    from benchmarks.common import peak_rss_mib
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _ = adult_split()
    cls = get_synthesizer(job.get("model", SYNTHGATE["model"]))
    options = {**SYNTHGATE["config"], **job.get("config", {})}
    if "epochs" in job:
        options["epochs"] = job["epochs"]
    config = cls.config_class(**options)
    stamps: list[tuple[float, float]] = []
    ledger = PrivacyLedger(DELTA)
    started = time.perf_counter()
    model = cls(contract, config, device=job.get("device", "cpu")).fit(
        train,
        ledger=ledger,
        epsilon=job["epsilon"],
        seed=job["seed"],
        progress=lambda p: stamps.append((time.perf_counter(), p.epoch)),
    )
    fit_s = time.perf_counter() - started
    synthetic = model.sample(TRAIN_ROWS, seed=job["seed"] + 1)
    t0 = time.perf_counter()
    model.sample(SPEED_ROWS, seed=job["seed"] + 2)
    sample_s = time.perf_counter() - t0
    (t_first, e_first), (t_last, e_last) = stamps[0], stamps[-1]
    out.mkdir(parents=True, exist_ok=True)
    synthetic.write_parquet(out / "synthetic.parquet")
    result = {
        "fit_seconds": round(fit_s, 1),
        "seconds_per_epoch": round((t_last - t_first) / (e_last - e_first), 3) if e_last > e_first else math.nan,
        "epochs": config.epochs,
        "sample_rows_per_second": round(SPEED_ROWS / sample_s),
        "peak_rss_mib": round(peak_rss_mib()),
        "peak_rss_source": "VmHWM",
        "epsilon_spent": ledger.epsilon,
        "ledger": [e.mechanism for e in ledger.entries],
        "model": cls.name,
        "device": str(model.device),
        "config": config.model_dump(mode="json"),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def evaluate(synthetic_path: Path, seed: int) -> dict[str, Any]:
    """Score a synthetic parquet with synthgate's own code against adult.data / adult.test."""
    import polars as pl

    from synthgate.tasks.ingest import prepare_frame
    from synthgate.validation.fidelity import column_shapes, ml_efficacy, pair_trends
    from synthgate.validation.gates import membership_attacks
    from synthgate.validation.mia import membership_inference
    from synthgate.validation.privacy import dcr_share

    contract, train, test = adult_split()
    synthetic = prepare_frame(pl.read_parquet(synthetic_path), contract).select(train.columns)
    synthetic = synthetic.cast({c: train.schema[c] for c in train.columns}, strict=True)
    efficacy = ml_efficacy(train, synthetic, test, contract, seed=0)
    tstr, trtr = efficacy.details["tstr"], efficacy.details["trtr"]
    attacks = membership_inference(membership_attacks(train, test, synthetic, contract, seed=seed))
    mia = next(r for r in attacks if r.name == "mia_auc")
    return {
        "column_shapes": round(column_shapes(train, synthetic, contract).value, 4),
        "pair_trends": round(pair_trends(train, synthetic, contract).value, 4),
        "tstr_accuracy": round(tstr["accuracy"], 4),
        "tstr_f1": round(tstr["f1"], 4),
        "tstr_auc": round(tstr["auc"], 4),
        "trtr_auc": round(trtr["auc"], 4),
        "dcr_share": round(dcr_share(synthetic, train, test, contract, seed=seed).value, 4),
        "worst_mia_auc": round(mia.value, 4),
    }


def run_job(job: dict[str, Any], peer_python: Path, folder: Path) -> dict[str, Any]:
    """Fit in a subprocess (synthgate's or the peer environment), then score here."""
    from benchmarks.common import machine
    from synthgate.governance.registry import code_version

    out = folder / f"run-{time.monotonic_ns()}"
    if job["system"] == "synthgate":
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.peers",
            "--fit-synthgate",
            json.dumps(job, default=str),
            "--out",
            str(out),
        ]
    else:
        spec = {
            **_peer_inputs(folder),
            "peer": job["system"],
            "epsilon": job["epsilon"],
            "seed": job["seed"],
            "epochs": job.get("epochs"),
            "options": job.get("options", {}),
            "device": job.get("device", "cpu"),
        }
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        cmd = [str(peer_python), str(PEER_FIT), "--spec", str(spec_path), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}:\n{proc.stderr[-3000:]}")
    fitted = json.loads((out / "result.json").read_text(encoding="utf-8"))
    scores = evaluate(out / "synthetic.parquet", job["seed"])
    return {
        **{k: job[k] for k in ("suite", "name", "system", "seed", "device")},
        "epsilon": _label(job["epsilon"]),
        **fitted,
        "epsilon_spent": _label(fitted["epsilon_spent"]) if fitted.get("epsilon_spent") is not None else None,
        **scores,
        "commit": code_version(),
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _label(eps: float | str) -> str:
    eps = float(eps)
    return "inf" if math.isinf(eps) else f"{eps:g}"


# --- results ----------------------------------------------------------------------------------


def _key(r: dict[str, Any]) -> tuple[str, str, str, int, str]:
    return (r["suite"], r["name"], r["epsilon"], r["seed"], r.get("device", "cpu"))


def _load() -> list[dict[str, Any]]:
    return json.loads(RESULTS.read_text(encoding="utf-8"))["runs"] if RESULTS.exists() else []


def _save(runs: list[dict[str, Any]]) -> None:
    from synthgate.validation.report import write_text_atomically

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(RESULTS, json.dumps({"runs": runs}, indent=2) + "\n")


def _eps(r: dict[str, Any]) -> str:
    return "∞" if r["epsilon"] == "inf" else r["epsilon"]


def table(runs: list[dict[str, Any]], which: str) -> str:
    """Every run of a suite, one row each."""
    head = (
        "| run | ε | ε spent | seed | s/epoch | epochs | fit (s) | sample (rows/s) | peak RSS (MiB) | column shapes "
        "| pair trends | TSTR acc | TSTR F1 | TSTR AUC | DCR share | worst MIA AUC |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )

    def spent(r: dict[str, Any]) -> str:
        s = r.get("epsilon_spent")
        return "—" if s is None or s == "nan" else ("∞" if s == "inf" else f"{float(s):.3f}")

    def rss(r: dict[str, Any]) -> str:
        # runs before the VmHWM fix recorded ru_maxrss, which includes the runner's RSS at fork
        return f"{r['peak_rss_mib']:,}" if r.get("peak_rss_source") == "VmHWM" else "—"

    def num(v: Any, fmt: str) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    rows = [
        f"| {r['name']}{'' if r.get('device', 'cpu') == 'cpu' else ' (' + r['device'] + ')'} | {_eps(r)} | {spent(r)} | {r['seed']} | "
        f"{num(r['seconds_per_epoch'] if r.get('epochs') else None, '.2f')} | "
        f"{num(r.get('epochs'), 'g')} | {r['fit_seconds']:.0f} | {r['sample_rows_per_second']:,} | {rss(r)} | "
        f"{r['column_shapes']:.3f} | {r['pair_trends']:.3f} | {r['tstr_accuracy']:.3f} | {r['tstr_f1']:.3f} | "
        f"{r['tstr_auc']:.3f} | {r['dcr_share']:.3f} | {r['worst_mia_auc']:.3f} |"
        for r in runs
        if r["suite"] == which
    ]
    return "\n".join([head, *rows])


def frontier(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{system name: {ε: {"tstr_auc": [...], "pair_trends": [...]}}} over the full suite's seeds."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in runs:
        if r["suite"] != "full" or r["name"] not in ("synthgate", "smartnoise MST") or r.get("device", "cpu") != "cpu":
            continue
        cell = out.setdefault(r["name"], {}).setdefault(r["epsilon"], {"tstr_auc": [], "pair_trends": []})
        cell["tstr_auc"].append(r["tstr_auc"])
        cell["pair_trends"].append(r["pair_trends"])
    return out


def frontier_table(runs: list[dict[str, Any]]) -> str:
    """Mean and [min, max] over seeds, synthgate beside MST at each ε."""
    import numpy as np

    data = frontier(runs)
    head = (
        "| ε | synthgate TSTR AUC | MST TSTR AUC | synthgate pair trends | MST pair trends | seeds (synthgate / MST) |"
    )
    lines = [head, "|---|---|---|---|---|---|"]

    def cell(name: str, eps: str, metric: str) -> str:
        values = data.get(name, {}).get(eps, {}).get(metric, [])
        if not values:
            return "—"
        return f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"

    for eps in ("0.5", "1", "3", "10", "inf"):
        n = [len(data.get(k, {}).get(eps, {}).get("tstr_auc", [])) for k in ("synthgate", "smartnoise MST")]
        lines.append(
            f"| {'∞' if eps == 'inf' else eps} | {cell('synthgate', eps, 'tstr_auc')} | {cell('smartnoise MST', eps, 'tstr_auc')} | "
            f"{cell('synthgate', eps, 'pair_trends')} | {cell('smartnoise MST', eps, 'pair_trends')} | {n[0]} / {n[1]} |"
        )
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path = PLOT) -> None:
    """TSTR AUC and pair trends against ε (log axis; ∞ drawn at the right), mean with min-max bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = frontier(runs)
    trtr = next((r["trtr_auc"] for r in runs if r["suite"] == "full"), None)  # the same for every run
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    x_of = {"0.5": 0.5, "1": 1.0, "3": 3.0, "10": 10.0, "inf": 40.0}
    for ax, metric, title in ((axes[0], "tstr_auc", "TSTR AUC (adult.test)"), (axes[1], "pair_trends", "pair trends")):
        for name, style in (("synthgate", "o-"), ("smartnoise MST", "s--")):
            cells = data.get(name, {})
            eps = [e for e in x_of if e in cells]
            if not eps:
                continue
            x = np.array([x_of[e] for e in eps])
            values = [np.array(cells[e][metric]) for e in eps]
            mean = np.array([v.mean() for v in values])
            low = [v.min() for v in values]
            high = [v.max() for v in values]
            err = np.array([mean - np.array(low), np.array(high) - mean])
            ax.errorbar(x, mean, yerr=err, fmt=style, capsize=3, label=name)
        if metric == "tstr_auc" and trtr is not None:
            ax.axhline(trtr, color="grey", lw=0.8, ls=":", label=f"train on real ({trtr:.3f})")
        ax.set_xscale("log")
        ax.set_xticks(list(x_of.values()), ["0.5", "1", "3", "10", "∞ (no DP)"])
        ax.set_xlabel("ε (δ = 1e-6)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Adult: utility against privacy budget (mean, min-max over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=("quick", "full"), help="Run a suite and merge its results.")
    ap.add_argument("--seeds", type=int, default=3, help="Seeds per ε in the full suite (default 3).")
    ap.add_argument(
        "--only", default="", help="Comma-separated systems (synthgate, ctgan, tvae, mst, dpctgan) or run names to run."
    )
    ap.add_argument(
        "--peer-python",
        type=Path,
        default=Path(os.environ.get("PEER_PYTHON", DEFAULT_PEER_PYTHON)),
        help="Python of the peer environment (make peers; env PEER_PYTHON).",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="Where synthgate and the GPU-capable peers train (default cpu; results record it).",
    )
    ap.add_argument("--table", choices=("quick", "full", "frontier"), help="Print a markdown table and exit.")
    ap.add_argument("--plot", action="store_true", help="Write the frontier PNG and exit.")
    ap.add_argument("--fit-synthgate", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_synthgate:
        fit_synthgate(json.loads(args.fit_synthgate), args.out)
        return
    if args.table:
        print(frontier_table(_load()) if args.table == "frontier" else table(_load(), args.table))
        return
    if args.plot:
        plot(_load())
        print(PLOT)
        return
    if not args.suite:
        ap.error("give --suite quick|full, --table or --plot")
    from benchmarks.common import report_run

    jobs = [{**j, "device": args.device} for j in suite(args.suite, args.seeds)]
    if args.only:
        wanted = set(args.only.split(","))
        jobs = [j for j in jobs if j["system"] in wanted or j["name"] in wanted]
    if any(j["system"] != "synthgate" for j in jobs) and not args.peer_python.exists():
        raise SystemExit(
            f"no peer environment at {args.peer_python}: run `make peers` (a separate venv with ctgan and "
            "smartnoise-synth) or pass --peer-python / PEER_PYTHON"
        )
    with tempfile.TemporaryDirectory(prefix="synthgate-peers-") as tmp:
        for i, job in enumerate(jobs, 1):
            label = f"[{i}/{len(jobs)} {job['name']} ε={_label(job['epsilon'])} seed {job['seed']}]"
            print(f"{label} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                result = run_job(job, args.peer_python, Path(tmp))
            except RuntimeError as exc:
                print(f"{label} FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            _save([r for r in _load() if _key(r) != _key(result)] + [result])
            report_run(
                label,
                result,
                started,
                f"fit {result['fit_seconds']} s ({result['seconds_per_epoch']} s/epoch), "
                f"{result['sample_rows_per_second']:,} rows/s",
            )


if __name__ == "__main__":
    main()
