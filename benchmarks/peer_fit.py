"""Fit one peer synthesizer and sample from it. Runs in the PEER environment, never synthgate's.

    <peer-venv>/bin/python benchmarks/peer_fit.py --spec SPEC.json --out DIR

The peers (the ``ctgan`` package's CTGAN and TVAE, smartnoise-synth's MST and DP-CTGAN) are
benchmark-only: they are not synthgate dependencies, and this file imports nothing from synthgate
(whose dependencies that environment lacks). ``benchmarks/peers.py`` writes SPEC.json (which
peer, ε, epochs, seed, the training parquet, the columns' kinds and PUBLIC bounds from the data
contract) and scores what this writes with synthgate's own evaluation code:

- DIR/synthetic.parquet: ``spec["rows"]`` sampled rows, missing values written as "?" (the
  markers the contract declares; the training parquet carries them the same way);
- DIR/result.json: fit seconds, seconds per epoch (training loop only), sampling rows/s, peak
  RSS, ε spent where the peer reports one, library versions.

Fairness notes, also in BENCHMARKS.md:
- MST needs discrete columns. Integer columns are binned on edges derived from the contract's
  public bounds only (one bin per value when the range spans at most 100 values; otherwise the
  minimum alone, then 31 geometric bins up to the maximum), and decoded by a uniform draw inside
  the bin. MST is sampled with mbi's i.i.d. ``method="sample"``; its default "round" ties
  sibling columns together (the issue's warning).
- smartnoise's transformers read the category sets off the training rows at fit time (no ε is
  charged for that), and MST's estimate uses the exact row count; synthgate takes categories from
  the contract and charges its row-count estimate to the ledger.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class _Clock:
    """Stamps each pass of a training loop's tqdm iterator: seconds per epoch without set-up."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def tqdm(self, iterable: Any, *args: Any, **kwargs: Any) -> Any:
        for item in iterable:
            self.stamps.append(time.perf_counter())
            yield item
        self.stamps.append(time.perf_counter())

    def per_epoch(self) -> float:
        if len(self.stamps) < 2:
            return math.nan
        return (self.stamps[-1] - self.stamps[0]) / (len(self.stamps) - 1)


def _peak_rss_mib() -> float:
    """VmHWM of this process (benchmarks/common.py::peak_rss_mib says why not ru_maxrss)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- MST's public binning -------------------------------------------------------------------


def _edges(lo: int, hi: int) -> np.ndarray:
    """Left edges of the bins of an integer column on [lo, hi], from those bounds alone."""
    if hi - lo <= 100:
        return np.arange(lo, hi + 1, dtype=np.float64)
    top = np.geomspace(1.0, hi - lo + 1.0, 32)[:-1]  # 31 geometric bins above the minimum
    return np.unique(np.concatenate([[lo], lo + np.maximum(1.0, np.floor(top))]))


def _to_bins(values: pd.Series, lo: int, hi: int) -> np.ndarray:
    edges = _edges(lo, hi)
    return np.searchsorted(edges, values.to_numpy(dtype=np.float64), side="right") - 1


def _from_bins(codes: np.ndarray, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    edges = np.append(_edges(lo, hi), hi + 1)
    left, right = edges[codes], edges[codes + 1]
    return np.floor(left + rng.random(codes.size) * (right - left)).astype(np.int64)


# --- the peers ----------------------------------------------------------------------------


def _sdv_model(kind: str) -> Any:
    """The ctgan package's CTGAN or TVAE: the same fit/sample surface, a tqdm loop over epochs."""

    def fit(spec: dict[str, Any], train: pd.DataFrame, clock: _Clock) -> Any:
        import importlib

        module = importlib.import_module(f"ctgan.synthesizers.{kind}")
        module.tqdm = clock.tqdm  # stamps each epoch of the training loop
        cls = getattr(module, kind.upper())
        model = cls(epochs=int(spec["epochs"]), cuda=spec.get("device") == "cuda", **spec.get("options", {}))
        model.set_random_state(spec["seed"])
        model.fit(train, discrete_columns=_categorical(spec))
        return model.sample

    return fit


def _mst(spec: dict[str, Any], train: pd.DataFrame, clock: _Clock) -> Any:
    from snsynth import Synthesizer

    binned = train.copy()
    for col in spec["columns"]:
        if col["kind"] == "integer":
            binned[col["name"]] = _to_bins(train[col["name"]], col["min"], col["max"])
    synth = Synthesizer.create("mst", epsilon=float(spec["epsilon"]), delta=float(spec["delta"]))
    np.random.seed(spec["seed"])
    clock.stamps.append(time.perf_counter())
    synth.fit(binned, preprocessor_eps=0.0, categorical_columns=list(binned.columns))
    clock.stamps.append(time.perf_counter())
    spec["_spent"] = float(spec["epsilon"])  # MST spends its whole (ε, δ) by construction (ρ-zCDP from both)
    rng = np.random.default_rng(spec["seed"] + 1)

    def sample(n: int) -> pd.DataFrame:
        data = synth.synthesizer.synthetic_data(rows=n, method="sample")  # i.i.d., not "round"
        rows = [tuple(t[1:]) for t in synth.undo_compress_fn(data).df.itertuples()]
        out = pd.DataFrame(synth._transformer.inverse_transform(rows), columns=binned.columns)
        for col in spec["columns"]:
            if col["kind"] == "integer":
                codes = out[col["name"]].to_numpy(dtype=np.int64)
                out[col["name"]] = _from_bins(codes, col["min"], col["max"], rng)
        return out

    return sample


def _dpctgan(spec: dict[str, Any], train: pd.DataFrame, clock: _Clock) -> Any:
    from snsynth import Synthesizer
    from snsynth.transform import (
        ChainTransformer,
        LabelTransformer,
        MinMaxTransformer,
        OneHotEncoder,
        TableTransformer,
    )

    # the contract's public bounds for the integers, so no ε goes to learning them; categories are
    # label-coded (read off the rows, uncharged, as smartnoise does) and then one-hot encoded
    transformer = TableTransformer([
        MinMaxTransformer(lower=c["min"], upper=c["max"], negative=True) if c["kind"] == "integer"
        else ChainTransformer([LabelTransformer(), OneHotEncoder()])
        for c in spec["columns"]
    ])
    synth = Synthesizer.create(
        "dpctgan", epsilon=float(spec["epsilon"]), epochs=int(spec["epochs"]), delta=float(spec["delta"]),
        verbose=False, cuda=False, **spec.get("options", {}),
    )
    np.random.seed(spec["seed"])
    import torch

    torch.manual_seed(spec["seed"])
    clock.stamps.append(time.perf_counter())
    synth.fit(train, transformer=transformer, preprocessor_eps=0.0)
    clock.stamps.append(time.perf_counter())
    spent = getattr(synth, "epsilon_list", [])  # the RDP accountant's ε after each epoch
    spec["_spent"] = float(spent[-1]) if spent else math.nan
    return synth.sample


PEERS = {"ctgan": _sdv_model("ctgan"), "tvae": _sdv_model("tvae"), "mst": _mst, "dpctgan": _dpctgan}
PACKAGES = ("ctgan", "smartnoise-synth", "mbi", "opacus", "torch", "numpy", "pandas", "rdt")


def _categorical(spec: dict[str, Any]) -> list[str]:
    return [c["name"] for c in spec["columns"] if c["kind"] == "categorical"]


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    if spec["peer"] not in PEERS:
        raise SystemExit(f"unknown peer {spec['peer']!r}; known: {', '.join(PEERS)}")
    import torch

    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))
    train = pd.read_parquet(spec["train"])
    clock = _Clock()
    started = time.perf_counter()
    sample = PEERS[spec["peer"]](spec, train, clock)
    fit_s = time.perf_counter() - started
    synthetic = sample(int(spec["rows"]))
    for col in spec["columns"]:  # DP-CTGAN's min-max decoding returns floats for integer columns
        if col["kind"] == "integer":
            synthetic[col["name"]] = np.round(pd.to_numeric(synthetic[col["name"]])).astype("Int64")
    t0 = time.perf_counter()
    sample(int(spec["speed_rows"]))
    sample_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    synthetic.to_parquet(args.out / "synthetic.parquet", index=False)
    result = {
        "fit_seconds": round(fit_s, 1),
        "seconds_per_epoch": round(clock.per_epoch(), 3),
        "epochs": spec.get("epochs"),
        "sample_rows_per_second": round(int(spec["speed_rows"]) / sample_s),
        "peak_rss_mib": round(_peak_rss_mib()),
        "peak_rss_source": "VmHWM",
        "epsilon_spent": spec.get("_spent"),
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
