"""Where a small table's fit-to-fit spread comes from (issue 20, round 2 session 5).

    python -m benchmarks.spread_diag colon --epsilon 1 --vary public --fits 6
    python -m benchmarks.spread_diag colon --epsilon 1 --vary private --fits 6

A DP fit draws from two kinds of streams (models/synthesizers/base.py, ``make_generators``): the
public ones from the fit's seed (weight initialisation, the generator's latent noise) and the private
ones (codec noise, the pair marginals' Gaussian noise and exponential-mechanism draws, Poisson
batches). Here the private entropy is pinned to a fixed key (as ``SYNTHGATE_NOISE_SEED`` does, but
without mixing in the seed), so that

- ``--vary public``: every fit sees the SAME released statistics (codec histograms, measured pairs)
  and differs only in the generator's optimisation (public seed 0..fits-1);
- ``--vary private``: the public seed is fixed and the DP noise (and pair selection) changes.

Each fit is scored by the suite's ``evaluate`` (against the private training rows: a diagnosis,
never an input to any default), beside quantities that depend on DP outputs only: the mean total
variation between the generator's raw rows and the released marginals (``Calibrator.error``), the
pair loss of a large generated batch, and the selected pairs. Benchmark-only; not in any release.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import suite
from synthgate.models import codec
from synthgate.models.synthesizers import base

PINNED: dict[str, int] = {"public": 0, "private": 0}


def _pinned_generators(seed: int, device: torch.device) -> base.Generators:
    """``make_generators`` with both streams pinned by PINNED (the seed argument is ignored)."""
    public = np.random.SeedSequence(PINNED["public"]).spawn(3)
    private = np.random.SeedSequence([PINNED["private"], 0]).spawn(4)
    t = lambda s: int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))  # noqa: E731
    return base.Generators(
        numpy=np.random.default_rng(private[0]),
        init=torch.Generator().manual_seed(t(public[0])),
        batches=torch.Generator().manual_seed(t(private[1])),
        device=torch.Generator(device=device).manual_seed(t(public[1])),
        noise=torch.Generator(device=device).manual_seed(t(private[2])),
        extra=torch.Generator(device=device).manual_seed(t(public[2])),
        per_sample=torch.Generator(device=device).manual_seed(t(private[3])),
    )


def _clip_one_way() -> None:
    """Patch in the categorical 1-way estimators before round 2 session 16: counts clipped at zero and
    normalised, n̂ the plain mean of every column's total."""
    from synthgate.models import marginals

    def clip(counts: np.ndarray, n_hat: float) -> np.ndarray:
        c = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
        return c / c.sum() if c.sum() > 0 else np.full(len(c), 1.0 / len(c))

    def plain_mean(noisy: dict[str, np.ndarray], sigma: float) -> tuple[float, float]:
        sizes = sum(v.size for v in noisy.values())
        mean = float(np.mean([v.sum() for v in noisy.values()]))
        return max(1.0, mean), float(sigma * np.sqrt(sizes) / max(len(noisy), 1))

    codec.one_way_estimate = clip  # type: ignore[assignment]
    marginals.one_way_estimate = clip  # type: ignore[assignment]
    codec.row_estimate = plain_mean  # type: ignore[assignment]


def released_fit(model: Any, n: int = 20_000) -> dict[str, float]:
    """How far the generator's raw rows are from the released marginals (DP outputs only)."""
    from synthgate.models.calibrate import Calibrator
    from synthgate.models.marginals import PairLoss

    g = torch.Generator().manual_seed(12345)
    model.generator.eval()
    with torch.no_grad():
        logits, *_ = model._generate(n, g)
        x = model._activate(logits, g, hard=True).float().numpy()
        pair = float(PairLoss(model.measured, torch.device("cpu"))(logits)) if model.measured is not None else 0.0
    cal = Calibrator(model.codec, model.measured)
    return {"raw_tv": round(cal.error(x), 5), "pair_kl": round(pair, 5)}


def one_fit(
    dataset: str, epsilon: float, options: dict[str, Any], folder: Path, name: str = "synthetic"
) -> dict[str, Any]:
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers import get_synthesizer

    contract, train, _, _ = suite.load(dataset)
    cls = get_synthesizer(contract.model)
    config = suite.synthgate_config(contract, options)
    ledger = PrivacyLedger(contract.privacy.delta)
    t0 = time.process_time()
    model: Any = cls(contract, config, device="cpu").fit(train, ledger=ledger, epsilon=epsilon, seed=0)
    cpu = time.process_time() - t0
    synthetic = model.sample(train.height, seed=1)
    path = folder / f"{name}.parquet"
    synthetic.write_parquet(path)
    scores = suite.evaluate(dataset, path)
    m = model.measured
    return {
        **{k: scores[k] for k in ("column_shapes", "pair_trends", "tstr")},
        **released_fit(model),
        "pairs": len(m.pairs) if m is not None else 0,
        "sigma": round(m.sigma, 2) if m is not None else None,
        "pair_set": sorted(m.labels()) if m is not None else [],
        "critic": model.training_summary.get("critic"),
        "cpu_s": round(cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--vary", choices=["public", "private"], required=True)
    ap.add_argument("--fits", type=int, default=6)
    ap.add_argument("--fixed", type=int, default=0, help="the stream that is not varied is pinned to this")
    ap.add_argument("--option", action="append", default=[], help="NAME=VALUE, as the suite's --synthgate-option")
    ap.add_argument("--out", type=Path, default=None, help="append one JSON line per fit here")
    ap.add_argument(
        "--sparse",
        choices=["segments", "greedy"],
        default="greedy",
        help="the codec's estimator of sparse numeric bins: greedy (the default, models.codec._merged_mass) or "
        "segments (models.codec._segment_mass, a candidate not adopted; BENCHMARKS.md, round 2 session 5)",
    )
    ap.add_argument(
        "--one-way",
        choices=["project", "clip"],
        default="project",
        help="categorical 1-way frequencies: projected onto n̂'s simplex with the inverse-variance n̂ (the default "
        "since round 2 session 16, models.codec.one_way_estimate / row_estimate) or clipped at zero with the "
        "plain mean of the column totals (before)",
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep each fit's synthetic table in this folder")
    args = ap.parse_args()
    options = suite.parse_options(args.option)
    if args.sparse == "segments":  # the candidate of round 2 session 5, not the default (BENCHMARKS.md)
        codec._merged_mass = codec._segment_mass  # type: ignore[assignment]
    if args.one_way == "clip":  # the estimators before round 2 session 16 (BENCHMARKS.md)
        _clip_one_way()
    base.make_generators = _pinned_generators  # type: ignore[assignment]
    other = "private" if args.vary == "public" else "public"
    PINNED[other] = args.fixed
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(args.fits):
            PINNED[args.vary] = k
            r = one_fit(args.dataset, args.epsilon, options, folder, f"{args.vary}-{k}")
            r.update({"dataset": args.dataset, "epsilon": args.epsilon, "vary": args.vary, "k": k})
            r[other] = args.fixed
            r["options"] = options
            r["one_way"] = args.one_way
            rows.append(r)
            brief = {key: v for key, v in r.items() if key != "pair_set"}
            print(json.dumps(brief), flush=True)
            if args.out is not None:
                with args.out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(r) + "\n")
    for metric in ("column_shapes", "pair_trends", "tstr", "raw_tv", "pair_kl"):
        v = np.array([r[metric] for r in rows], dtype=float)
        print(
            f"{metric}: mean {v.mean():.4f} sd {v.std(ddof=1) if len(v) > 1 else 0:.4f} range {v.min():.4f}-{v.max():.4f}"
        )
    sets = {tuple(r["pair_set"]) for r in rows}
    print(f"distinct pair sets: {len(sets)}")


if __name__ == "__main__":
    main()
