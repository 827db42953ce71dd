"""Fit one peer synthesizer and sample from it. Runs in the PEER environment, never synthgate's.

    <peer-venv>/bin/python benchmarks/peer_fit.py --spec SPEC.json --out DIR

The peers (the ``ctgan`` package's CTGAN and TVAE, smartnoise-synth's MST, AIM and DP-CTGAN,
and independent marginals) are benchmark-only: they are not synthgate dependencies, and this file imports nothing from synthgate
(whose dependencies that environment lacks). ``benchmarks/peers.py`` writes SPEC.json (which
peer, ε, epochs, seed, the training parquet, the columns' kinds and PUBLIC bounds from the data
contract) and scores what this writes with synthgate's own evaluation code:

- DIR/synthetic.parquet: ``spec["rows"]`` sampled rows, in the training parquet's form (a missing
  category as the marker the training parquet used, "?" for Adult, or null; missing numbers null);
- DIR/result.json: fit seconds, seconds per epoch (training loop only), sampling rows/s, peak
  RSS, ε spent where the peer reports one, library versions.

Columns (``spec["columns"]``: name, kind, public min/max, optional categories and nullable) may be integer,
continuous, datetime (min/max in seconds since the epoch), boolean or categorical; every peer
sees datetimes as seconds, booleans and categories as text, a missing category as ``NULL``.

Fairness notes, also in BENCHMARKS.md:
- MST and AIM need discrete columns. Numeric columns are binned on edges derived from the
  contract's public bounds only (integers: one bin per value when the range spans at most 100
  values, otherwise the minimum alone, then 31 geometric bins up to the maximum; continuous
  columns and datetimes: 32 equal-width bins) and a missing number is a bin of its own; a
  value is decoded by a uniform draw inside its bin (floored for integers, a float otherwise),
  the null bin as null. Both are sampled with mbi's i.i.d. ``method="sample"``; its default
  "round" ties sibling columns together (the issue's warning).
- The ctgan package rejects missing numbers: as SDV does, each numeric column with missing
  values gets a ``<name>.is_null`` indicator (here a discrete "0"/"1" column) and its gaps are
  filled with the column's mean; sampled rows whose indicator is "1" get a null.
- Independent marginals: at ε = ∞ each column is drawn with replacement from its own training
  values; at finite ε each column's histogram (the same public bins, the contract's categories
  when the spec gives them) gets Laplace noise of scale (number of columns) / ε (one row moves
  each histogram by one), negative counts set to zero.
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


# --- the columns as the peers see them ---------------------------------------------------------

NULL = "__null__"  # a missing category, as a category of its own
NUMERIC = ("integer", "continuous", "datetime")
CONTINUOUS_BINS = 32


def _seconds(values: pd.Series) -> pd.Series:
    """Datetimes as float seconds since the epoch (NaT as NaN)."""
    stamps = pd.to_datetime(values)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return (stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1)


def to_model_frame(train: pd.DataFrame, columns: list[dict[str, Any]]) -> pd.DataFrame:
    """What every peer fits on: numbers as float (NaN = missing; datetimes as seconds), booleans
    as "True"/"False", categories as text, a missing boolean or category as ``NULL``."""
    out = {}
    for col in columns:
        values = train[col["name"]]
        if col["kind"] == "datetime":
            out[col["name"]] = _seconds(values)
        elif col["kind"] in NUMERIC:
            out[col["name"]] = pd.to_numeric(values).astype("float64")
        else:
            text = values.astype("object").map(lambda v: NULL if v is None or v is pd.NA or v != v else str(v))
            out[col["name"]] = text.astype("object")
    return pd.DataFrame(out, index=train.index)


def from_model_frame(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> pd.DataFrame:
    """The inverse of ``to_model_frame`` for sampled rows: integers rounded and clipped to their
    public bounds, continuous values clipped, datetimes back from seconds, ``NULL`` as null."""
    out = {}
    for col in columns:
        values = frame[col["name"]]
        if col["kind"] in NUMERIC:
            x = np.clip(pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64), col["min"], col["max"])
            if col["kind"] == "integer":
                out[col["name"]] = pd.array(np.round(x), dtype="Float64").astype("Int64")
            elif col["kind"] == "datetime":
                out[col["name"]] = pd.to_datetime(pd.Series(x * 1e6).round(), unit="us")
            else:
                out[col["name"]] = x
        else:
            text = values.astype("object").map(lambda v: None if v is None or v != v or str(v) == NULL else str(v))
            if col["kind"] == "boolean":
                out[col["name"]] = text.map({"True": True, "False": False, None: None}).astype("boolean")
            else:
                out[col["name"]] = text.astype("object")
    return pd.DataFrame(out)


# --- public binning (MST, AIM, DP independent marginals) ---------------------------------------


def _edges(lo: int, hi: int) -> np.ndarray:
    """Left edges of the bins of an integer column on [lo, hi], from those bounds alone."""
    if hi - lo <= 100:
        return np.arange(lo, hi + 1, dtype=np.float64)
    top = np.geomspace(1.0, hi - lo + 1.0, 32)[:-1]  # 31 geometric bins above the minimum
    return np.unique(np.concatenate([[lo], lo + np.maximum(1.0, np.floor(top))]))


def bin_edges(col: dict[str, Any]) -> np.ndarray:
    """Every edge of a numeric column's bins (left edges, then the right end), from its public
    bounds only: integers as ``_edges`` (right end max + 1), others equal-width."""
    lo, hi = col["min"], col["max"]
    if col["kind"] == "integer":
        return np.append(_edges(int(lo), int(hi)), int(hi) + 1.0)
    return np.linspace(float(lo), float(hi), CONTINUOUS_BINS + 1)


def to_bins(values: pd.Series | np.ndarray, col: dict[str, Any]) -> np.ndarray:
    """Bin codes 0..k-1 of the k public bins; a missing number gets code k (a bin of its own,
    never the top bin); a value outside the bounds goes to the nearest end bin."""
    edges = bin_edges(col)
    k = len(edges) - 1
    x = np.asarray(values, dtype=np.float64)
    codes = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, k - 1)
    return np.where(np.isnan(x), k, codes).astype(np.int64)


def from_bins(codes: np.ndarray, col: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Values for bin codes: a uniform draw inside the bin (floored for integers, so an integer
    stays in its bin; a float for continuous columns and datetimes); code k (null bin) as NaN."""
    edges = bin_edges(col)
    k = len(edges) - 1
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes >= k
    safe = np.where(missing, 0, codes)
    left, right = edges[safe], edges[safe + 1]
    x = left + rng.random(codes.size) * (right - left)
    if col["kind"] == "integer":
        x = np.floor(x)
    return np.where(missing, np.nan, x)


def _discrete_frame(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> pd.DataFrame:
    """Numbers as bin codes, everything else as it is (text): what MST and AIM fit on."""
    out = frame.copy()
    for col in columns:
        if col["kind"] in NUMERIC:
            out[col["name"]] = to_bins(frame[col["name"]], col)
    return out


def _undiscrete(frame: pd.DataFrame, columns: list[dict[str, Any]], rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    for col in columns:
        if col["kind"] in NUMERIC:
            out[col["name"]] = from_bins(out[col["name"]].to_numpy(dtype=np.int64), col, rng)
    return out


# --- null indicators (the ctgan package rejects missing numbers) ----------------------------------


def add_null_indicators(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """As SDV does: each numeric column with a missing value gets ``<name>.is_null`` ("1" where
    missing, "0" elsewhere; a discrete column) and its gaps are filled with its mean. Returns the
    frame and the indicator columns."""
    out = frame.copy()
    added = []
    for col in columns:
        name = col["name"]
        if col["kind"] not in NUMERIC:
            continue
        missing = out[name].isna()
        if not missing.any():
            continue
        fill = float(out[name].mean()) if (~missing).any() else (float(col["min"]) + float(col["max"])) / 2
        out[name] = out[name].fillna(fill)
        out[f"{name}.is_null"] = np.where(missing, "1", "0").astype(object)
        added.append(f"{name}.is_null")
    return out, added


def drop_null_indicators(frame: pd.DataFrame, indicators: list[str]) -> pd.DataFrame:
    """Sampled rows: a null where the indicator says "1"; the indicators dropped."""
    out = frame.copy()
    for ind in indicators:
        name = ind[: -len(".is_null")]
        out.loc[out[ind].astype(str) == "1", name] = np.nan
    return out.drop(columns=indicators)


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
        filled, indicators = add_null_indicators(train, spec["columns"])
        model.fit(filled, discrete_columns=_categorical(spec) + indicators)
        return lambda n: drop_null_indicators(model.sample(n), indicators)

    return fit


def _smartnoise_marginal(name: str) -> Any:
    """smartnoise-synth's MST or AIM on the publicly binned table."""

    def fit(spec: dict[str, Any], train: pd.DataFrame, clock: _Clock) -> Any:
        from snsynth import Synthesizer

        binned = _discrete_frame(train, spec["columns"])
        synth = Synthesizer.create(
            name, epsilon=float(spec["epsilon"]), delta=float(spec["delta"]), **spec.get("options", {})
        )
        np.random.seed(spec["seed"])
        clock.stamps.append(time.perf_counter())
        synth.fit(binned, preprocessor_eps=0.0, categorical_columns=list(binned.columns))
        clock.stamps.append(time.perf_counter())
        spec["_spent"] = float(spec["epsilon"])  # both spend their whole (ε, δ) by construction (ρ-zCDP)
        rng = np.random.default_rng(spec["seed"] + 1)

        def sample(n: int) -> pd.DataFrame:
            data = synth.synthesizer.synthetic_data(rows=n, method="sample")  # i.i.d., not "round"
            if name == "mst":
                data = synth.undo_compress_fn(data)
            cols = ["col" + str(i) for i in range(synth._transformer.output_width)]
            frame = data.df[cols] if name == "aim" else data.df
            rows = [tuple(t[1:]) for t in frame.itertuples()]
            out = pd.DataFrame(synth._transformer.inverse_transform(rows), columns=binned.columns)
            return _undiscrete(out, spec["columns"], rng)

        return sample

    return fit


def _marginals(spec: dict[str, Any], train: pd.DataFrame, clock: _Clock) -> Any:
    """Independent marginals: exact at ε = ∞, Laplace-noised public histograms otherwise."""
    eps = float(spec["epsilon"])
    columns = spec["columns"]
    rng = np.random.default_rng(spec["seed"])
    clock.stamps.append(time.perf_counter())
    if math.isinf(eps):
        values = {c["name"]: train[c["name"]].to_numpy() for c in columns}
        spec["_spent"] = math.inf

        def sample_exact(n: int) -> pd.DataFrame:
            return pd.DataFrame({k: v[rng.integers(0, len(v), n)] for k, v in values.items()})

        clock.stamps.append(time.perf_counter())
        return sample_exact
    scale = len(columns) / eps  # one row moves each of the len(columns) histograms by one
    domains: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    for col in columns:
        name = col["name"]
        nullable = col.get("nullable", True)  # the null bin only where the contract allows nulls
        if col["kind"] in NUMERIC:
            k = len(bin_edges(col)) - 1
            domain = np.arange(k + 1 if nullable else k)  # code k is the null bin
            codes = to_bins(train[name], col)
            counts = np.bincount(codes[codes < len(domain)], minlength=len(domain)).astype(np.float64)
        else:
            known = col.get("categories")
            if col["kind"] == "boolean":
                known = ["False", "True"]
            # without categories in the spec, the domain is read off the rows (uncharged, as smartnoise does)
            domain = np.array(
                list(known) + ([NULL] if nullable else []) if known else sorted(set(train[name])), dtype=object
            )
            index = {v: i for i, v in enumerate(domain)}
            codes = train[name].map(lambda v, index=index: index.get(v, -1)).to_numpy(dtype=np.int64)
            counts = np.bincount(codes[codes >= 0], minlength=len(domain)).astype(np.float64)
        noisy = np.maximum(counts + rng.laplace(0.0, scale, len(counts)), 0.0)
        domains[name] = domain
        probs[name] = noisy / noisy.sum() if noisy.sum() > 0 else np.full(len(noisy), 1.0 / len(noisy))
    spec["_spent"] = eps
    clock.stamps.append(time.perf_counter())

    def sample(n: int) -> pd.DataFrame:
        out = {}
        for col in columns:
            name = col["name"]
            picked = domains[name][rng.choice(len(domains[name]), size=n, p=probs[name])]
            out[name] = from_bins(picked.astype(np.int64), col, rng) if col["kind"] in NUMERIC else picked
        return pd.DataFrame(out)

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
    transformer = TableTransformer(
        [
            MinMaxTransformer(lower=c["min"], upper=c["max"], negative=True)
            if c["kind"] in NUMERIC
            else ChainTransformer([LabelTransformer(), OneHotEncoder()])
            for c in spec["columns"]
        ]
    )
    synth = Synthesizer.create(
        "dpctgan",
        epsilon=float(spec["epsilon"]),
        epochs=int(spec["epochs"]),
        delta=float(spec["delta"]),
        verbose=False,
        cuda=False,
        **spec.get("options", {}),
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


PEERS = {
    "ctgan": _sdv_model("ctgan"),
    "tvae": _sdv_model("tvae"),
    "mst": _smartnoise_marginal("mst"),
    "aim": _smartnoise_marginal("aim"),
    "dpctgan": _dpctgan,
    "marginals": _marginals,
}
PACKAGES = ("ctgan", "smartnoise-synth", "mbi", "opacus", "torch", "numpy", "pandas", "rdt")


def _categorical(spec: dict[str, Any]) -> list[str]:
    """The columns a peer must treat as discrete: categories and booleans (both sent as text; the
    ctgan package took a boolean for a continuous column and failed on its mean)."""
    return [c["name"] for c in spec["columns"] if c["kind"] in ("categorical", "boolean")]


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
    train = to_model_frame(pd.read_parquet(spec["train"]), spec["columns"])
    clock = _Clock()
    started = time.perf_counter()
    sample = PEERS[spec["peer"]](spec, train, clock)
    fit_s = time.perf_counter() - started
    # integers rounded (DP-CTGAN's min-max decoding returns floats), datetimes back, NULL as null
    synthetic = from_model_frame(sample(int(spec["rows"])), spec["columns"])
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
