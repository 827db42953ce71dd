"""Where a default fit's CPU goes, and what cheaper training costs in quality (round 2, session 14).

    python -m benchmarks.speed_diag --arms before,eval,eval+g128,eval+e8,eval+b25+e8 \\
        --datasets cps1988,nasscds,diamonds,adult,mplsstops --epsilons 1,3 --seeds 0,1,2
    python -m benchmarks.speed_diag --table       # benchmarks/results/speed_diag.jsonl against "before"
    # session 15: the generator's batch halved, against session 14's default (eval+g128)
    python -m benchmarks.speed_diag --arms eval+g128,eval+g128+gb50 --datasets ... \
        --results benchmarks/results/speed_diag_session15.jsonl
    python -m benchmarks.speed_diag --table --base eval+g128 --results benchmarks/results/speed_diag_session15.jsonl

Issue 20 asks for a fit at most 1/3 of MST's time. A default fit is FLOP-bound (cProfile of MplsStops at
ε = 3, 611 steps: backward passes 28 of 60 CPU-s, Linear forwards 9.5, the critic step's fake partners
9.6), and the generator's (256, 256) residual layers are most of the FLOPs. Each arm patches the
default of session 13 (``before``) and fits, samples and scores with the suite's ``evaluate``:

- ``eval``: the critic step's fake partners drawn in eval mode, exactly b rows through the inference
  path (``DPCTGAN._partners``), instead of train-mode chunks of the expected batch (1.5·B rows a step
  on average, each through the autograd-free but unfused train path);
- ``g128``: a (128, 128) generator instead of (256, 256);
- ``e8``: 8 passes over n̂ instead of ``schedule.EPOCHS`` = 16 (half the steps, less noise per step);
- ``b25``: Poisson batch 2.5·√n̂ instead of 5·√n̂ (with ``e8``: the same steps at half the batch).
- ``gb50``: the generator's steps at half the expected batch (session 15; the critic's steps unchanged).

Arms are joined with ``+``. ``before`` and the arms without ``eval`` / ``g128`` restore session 13's
partners and generator, so one script measures both sides on the code it runs on. Each fit runs in
its own process (``OMP_NUM_THREADS=1``); ``fit_cpu`` is the fit's process CPU time, ``cpu`` fit and
sample. Fits are not repeatable run to run, so compare means over seeds and tables, not single pairs.

The committed rows (``driver: "throwaway, main c500106"``) came from a one-off driver that applied the
same patches to session 13's code (partners and generator as ``before`` unless ``eval`` / ``g128``),
written before this script; three or four fits ran at a time on the 2-core machine, so their CPU
ratios are rough (the suite rerun of section "Round 2 session 14" measures the adopted default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "speed_diag.jsonl"
METRICS = ("column_shapes", "pair_trends", "tstr")
PARTS = ("before", "eval", "g128", "e8", "b25", "gb50")


def _patch(arm: str) -> dict[str, Any]:
    """Apply ``arm`` to this process; returns the model options it needs."""
    import torch

    import synthgate.models.schedule as schedule
    from synthgate.models.synthesizers.base import Synthesizer
    from synthgate.models.synthesizers.ctgan import DPCTGAN

    parts = set(arm.split("+"))
    unknown = parts - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown arm part(s) {sorted(unknown)} in {arm!r}; known: {', '.join(PARTS)}")
    if "e8" in parts:
        schedule.EPOCHS = 8.0
    if "b25" in parts:
        schedule.BATCH_PER_SQRT_N = 2.5
    if "gb50" in parts:
        # the generator's own steps at half the expected Poisson batch (the critic's step unchanged)
        build = DPCTGAN._build_training

        def half_batch(self: DPCTGAN, run: Any) -> None:
            build(self, run)
            self._bg = max(2, round(self._bg / 2))

        DPCTGAN._build_training = half_batch  # type: ignore[method-assign]
    if "eval" not in parts:
        # session 13's partners: train-mode chunks of the expected batch, BatchNorm statistics restored
        def chunked(self: DPCTGAN, b: int, g: torch.Generator) -> torch.Tensor | None:
            return Synthesizer._fake_partners(
                b, self._bg, lambda m: self._activate(self._generate(m, g)[0], g), keep=self.generator
            )

        DPCTGAN._partners = chunked  # type: ignore[method-assign]
    return {} if "g128" in parts else {"generator_dims": [256, 256]}


def fit_one(arm: str, dataset: str, epsilon: float, seed: int) -> dict[str, Any]:
    options = _patch(arm)
    from benchmarks.suite import evaluate, load, synthgate_config
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _, _ = load(dataset)
    cls = get_synthesizer(contract.model)
    ledger = PrivacyLedger(contract.privacy.delta)
    started = time.process_time()
    model = cls(contract, synthgate_config(contract, options), device="cpu").fit(
        train, ledger=ledger, epsilon=epsilon, seed=seed
    )
    fit_cpu = time.process_time() - started
    synthetic = model.sample(train.height, seed=seed + 1)
    cpu = time.process_time() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.parquet"
        synthetic.write_parquet(path)
        scores = evaluate(dataset, path)
    plan = model._training_plan
    return {
        "arm": arm,
        "dataset": dataset,
        "epsilon": epsilon,
        "seed": seed,
        "fit_cpu": round(fit_cpu, 2),
        "cpu": round(cpu, 2),
        "steps": plan.steps,
        "expected_batch": round(plan.expected_batch, 1),
        "critic": model._critic_on,
        "generator_dims": list(model.generator_dims()),
        "epsilon_spent": ledger.epsilon,
        **{m: scores.get(m) for m in METRICS},
    }


def table(rows: list[dict[str, Any]], base: str = "before") -> str:
    """Per arm, the mean difference from ``base`` over the (dataset, ε, seed) cells both ran, and the
    ratio of mean fit CPU (the same cells)."""
    cells: dict[tuple[str, float, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        cells[(r["dataset"], r["epsilon"], r["seed"])][r["arm"]] = r
    arms = sorted({r["arm"] for r in rows} - {base})
    lines = [
        f"| arm | dataset | ε | fits | fit CPU ratio to {base} | "
        + " | ".join(f"{m} Δ mean [min, max]" for m in METRICS)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(METRICS),
    ]
    for arm in arms:
        overall: dict[str, list[float]] = defaultdict(list)
        cpu_a: list[float] = []
        cpu_b: list[float] = []
        for ds, eps in sorted({(k[0], k[1]) for k in cells}):
            pairs = [v for k, v in cells.items() if k[:2] == (ds, eps) and arm in v and base in v]
            if not pairs:
                continue
            parts = []
            for m in METRICS:
                d = [p[arm][m] - p[base][m] for p in pairs if p[arm][m] is not None and p[base][m] is not None]
                overall[m] += d
                parts.append(f"{statistics.mean(d):+.4f} [{min(d):+.4f}, {max(d):+.4f}]" if d else "—")
            a = [p[arm]["fit_cpu"] for p in pairs]
            b = [p[base]["fit_cpu"] for p in pairs]
            cpu_a += a
            cpu_b += b
            ratio = statistics.mean(a) / statistics.mean(b)
            lines.append(f"| {arm} | {ds} | {eps:g} | {len(pairs)} | {ratio:.2f} | " + " | ".join(parts) + " |")
        if cpu_b:
            means = " | ".join(
                f"**{statistics.mean(overall[m]):+.4f}** ({len(overall[m])})" if overall[m] else "—" for m in METRICS
            )
            lines.append(f"| {arm} | **all** | | {len(cpu_b)} | **{sum(cpu_a) / sum(cpu_b):.2f}** | {means} |")
    return "\n".join(lines)


def main() -> None:
    from benchmarks.common import append_rows, cell_arguments, read_rows, run_one_per_process

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", default="before,eval+g128")
    cell_arguments(
        ap, datasets="cps1988,nasscds,diamonds,adult,mplsstops", epsilons="1,3", seeds="0,1,2", results=RESULTS
    )
    ap.add_argument("--base", default="before", help="The arm --table compares the others with.")
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        row = fit_one(job["arm"], job["dataset"], float(job["epsilon"]), int(job["seed"]))
        append_rows(args.results, [row])
        print(json.dumps(row), flush=True)
        return
    if args.table:
        print(table(read_rows(args.results), args.base))
        return
    jobs = [
        {"arm": arm, "dataset": dataset, "epsilon": eps, "seed": seed}
        for seed in (int(s) for s in args.seeds.split(","))
        for dataset in args.datasets.split(",")
        for eps in (float(e) for e in args.epsilons.split(","))
        for arm in args.arms.split(",")
    ]
    run_one_per_process("benchmarks.speed_diag", jobs, args.results)


if __name__ == "__main__":
    main()
