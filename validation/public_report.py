"""The public report: what a release publishes, every figure in it differentially private.

A release run writes two reports (see docs/report.md):

- the **public report** (``report.json`` + ``report.html`` in the release folder), built here
  from the release folder's own files and nothing else: the contract, the privacy ledger, the
  model's codec statistics (the noisy histograms the DP ledger already charged), the published
  synthetic table, and ``decision.json`` (which gates passed, the release decision). Its "real"
  distributions are those DP histograms, never the rows; it holds no exact row count, no
  metric value computed on private rows, no attack figure. ``build_public_report(folder)`` is a
  deterministic function of the folder, so anyone holding the folder can rebuild the report
  byte for byte and check that it holds nothing else.
- the **owner's evaluation report** (``validation.report.build_report``): every figure computed
  on the private rows, written owner-only (``write_owner_report``) outside the release folder.

Which gates passed and the decision are outside the DP guarantee (they are computed on private
rows); they are published, and the report lists them under ``outside_guarantee``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from synthgate.errors import OwnerReportError
from synthgate.validation.contract import Contract, load_contract
from synthgate.validation.report import check_ledger as _check_ledger
from synthgate.validation.report import jsonable as _jsonable
from synthgate.validation.report import render_html, write_report, write_text_atomically
from synthgate.validation.results import GateDecision, MetricResult, family_evidence

__all__ = [
    "ADJACENCY",
    "DECISION_FILE",
    "build_public_report",
    "decision_record",
    "dp_distributions",
    "public_gates",
    "public_reasons",
    "write_owner_report",
    "write_public_report",
]

DECISION_FILE = "decision.json"
SYNTHETIC_FILE = "synthetic.parquet"
PUBLIC_REPORT_VERSION = 1
ADJACENCY = (
    "add/remove one row of the source table: epsilon and delta bound how much any one person's "
    "row (its presence or absence) can change what this release publishes."
)
# Keys of a model's training summary that are timings or machine facts, not model facts.
_SUMMARY_LEFT_OUT = ("seconds", "device")


# --- the decision, without values ---------------------------------------------------------------


def _op(direction: str) -> str:
    return "<=" if direction == "max" else ">="


def public_gates(results: list[MetricResult]) -> list[dict[str, Any]]:
    """Each gate's name, kind, threshold (from the contract) and outcome (pass, fail or inconclusive: failed,
    limited by rows); no measured value."""
    return [
        {
            "name": r.name,
            "kind": r.kind,
            "direction": r.direction,
            "threshold": float(r.threshold) if r.threshold is not None else None,
            "passed": bool(r.passed),
            "outcome": r.outcome,
            "description": r.description,
        }
        for r in results
        if r.is_gate
    ]


def public_reasons(decision: GateDecision, results: list[MetricResult]) -> list[str]:
    """The decision's reasons with the measured figures left out: which gate failed and its rule."""
    failed = [r for r in results if r.is_gate and not r.passed]
    if not decision.released and not [r for r in results if r.is_gate]:
        return ["no gate was evaluated: refusing to release unchecked data"]
    return [
        f"{r.name}: {'inconclusive, too few rows to tell' if r.outcome == 'inconclusive' else 'failed'} "
        f"(must be {_op(r.direction)} {float(r.threshold or 0):.4g})"
        for r in failed
    ]


def decision_record(
    *,
    run_id: str,
    table: str,
    decision: GateDecision,
    results: list[MetricResult],
    dp_randomness: str | None,
    versions: Mapping[str, str],
    output: Mapping[str, str] | None,
    model: str,
    training_summary: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What ``decision.json`` in the release folder holds: the public part of the run's outcome.

    JSON rules as the reports' (numpy scalars to Python, NaN to null)."""
    results = family_evidence(results)  # the outcomes decide_release judged (idempotent)
    # an inconclusive gate may be let through (gates.block_inconclusive: false); a failed one never
    failed = [r for r in results if r.is_gate and r.outcome == "fail"]
    if decision.released and failed:
        raise ValueError(
            f"the decision says released but gates failed: {[r.name for r in failed]}. "
            "Build the decision with validation.results.decide_release(results)."
        )
    summary = {k: v for k, v in (training_summary or {}).items() if k not in _SUMMARY_LEFT_OUT}
    record = {
        "run_id": run_id,
        "table": table,
        "released": bool(decision.released),
        "reasons": public_reasons(decision, results),
        "gates": public_gates(results),
        "dp_randomness": dp_randomness,
        "versions": dict(versions),
        "output": dict(output) if output else None,
        "model": {"name": model, "training_summary": summary},
    }
    result: dict[str, Any] = _jsonable(record, where="decision")
    return result


# --- "real" distributions from the codec's DP histograms ----------------------------------------


def _codec(contract: Contract, state: Mapping[str, Any]) -> Any:
    """A quantile codec holding the saved DP statistics (bin masses, frequencies, null rates)."""
    from synthgate.models.codec import Codec  # torch-free, but models/ stays out of validation's import floor

    codec = Codec(contract)
    codec.load_state({k: v for k, v in state.items() if k not in ("numeric_encoding", "modes")})
    return codec


def _numeric_dp_shares(
    spec: Any, mass: np.ndarray, edges: np.ndarray, *, zero_split: bool = False, log: bool = False
) -> np.ndarray:
    """The codec's bin masses moved onto the plot's bars (``fidelity.plot_edges``: equal-width over
    [lo, hi], or whole numbers of values for an integer column; with ``log``, the log view's
    ``fidelity.log_edges``; with ``zero_split``, a first bar for the codec's point mass at 0).

    A one-value bin of an integer column is a point at its centre (binned as the plot bins a
    value); any wider bin spreads its mass uniformly over its part of the plotted range.
    """
    from synthgate.validation.fidelity import plot_bin

    if zero_split:
        at_zero = np.array(
            [(a + b) / 2.0 == 0.0 and b - a <= 1.0 for a, b in zip(spec.edges_lo, spec.edges_hi, strict=True)]
        )
        rest = _numeric_dp_shares(spec, np.where(at_zero, 0.0, mass), edges, log=log)
        return np.concatenate([[float(mass[at_zero].sum())], rest])
    bins = len(edges) - 1
    out = np.zeros(bins)
    lo, hi = float(edges[0]), float(edges[-1])
    integer = spec.kind == "integer"
    if not hi > lo:
        out[0] = float(mass.sum())
        return out
    for a, b, m in zip(spec.edges_lo, spec.edges_hi, mass, strict=True):
        if m <= 0:
            continue
        if integer and b - a <= 1.0:
            out[int(plot_bin(np.array([(a + b) / 2.0]), edges, integer=True, log=log)[0])] += m
            continue
        # an integer bin [e, e + w) holds the values whose unit cells [v - ½, v + ½] tile [e - ½, e + w - ½)
        cells = edges - 0.5 if integer else edges
        a, b = max(a, float(cells[0])), min(b, float(cells[-1]))
        if b <= a:
            out[int(plot_bin(np.array([a]), cells, integer=integer, log=log)[0])] += m
            continue
        overlap = np.clip(np.minimum(cells[1:], b) - np.maximum(cells[:-1], a), 0.0, None)
        out += m * overlap / (b - a)
    return out


def dp_distributions(
    contract: Contract, codec_state: Mapping[str, Any], synthetic: pl.DataFrame | None
) -> dict[str, dict[str, Any]]:
    """Per column: the DP "real" shares (from the codec's charged histograms) beside the synthetic ones.

    Bins and labels are the owner report's (``fidelity.plot_edges`` over the contract range: 20
    equal-width bins, integer columns on integer edges; or the declared categories), so the two reports draw comparable plots. ``score`` is 1 − total
    variation between the two (nulls as one more cell): post-processing of DP and public data.
    Without a synthetic table (a blocked run publishes none) the synthetic shares are omitted.
    """
    from synthgate.validation.encoding import canonical_frame
    from synthgate.validation.fidelity import column_plot, plot_edges, plot_labels, zero_split

    codec = _codec(contract, codec_state)
    if synthetic is not None:
        # the published table also holds the derived columns (regenerated from their sources); the
        # distributions are those of the modelled columns
        synthetic = canonical_frame(synthetic.select(contract.modelled_columns), contract, role="synthetic")
    out: dict[str, dict[str, Any]] = {}
    numeric = {s.name: s for s in codec.numeric}
    discrete = {s.name: s for s in codec.discrete}
    for name in codec.columns:
        if synthetic is not None:
            syn_plot = column_plot(synthetic[name], synthetic[name], contract, name)
        else:
            syn_plot = None
        if name in numeric:
            spec = numeric[name]
            real = _numeric_dp_shares(
                spec,
                np.asarray(codec.bin_mass[name], dtype=float),
                plot_edges(contract, name),
                zero_split=zero_split(contract, name),
            )
            null_real = float(codec.null_rate.get(name, 0.0)) if spec.nullable else 0.0
            kind = "numeric"
            labels = syn_plot["labels"] if syn_plot else None
        else:
            spec = discrete[name]
            freq = np.asarray(codec.frequencies[name], dtype=float)
            k = len(spec.categories) - (1 if spec.nullable else 0)
            real = freq[:k]
            null_real = float(freq[k]) if spec.nullable else 0.0
            kind = "categorical"
            labels = syn_plot["labels"] if syn_plot else [str(c) for c in spec.categories[:k]]
        total = float(real.sum())
        real = real / total if total > 0 else real
        if labels is None:
            labels = plot_labels(contract, name)
        real_list = [float(x) for x in real] + [0.0] * (len(labels) - len(real))
        entry: dict[str, Any] = {
            "type": kind,
            "labels": list(labels),
            "real": real_list,
            "null_real": null_real,
        }
        if syn_plot is not None:
            syn = np.asarray(syn_plot["synthetic"], dtype=float)
            null_syn = float(syn_plot["null_synthetic"])
            p = np.append(np.asarray(real_list) * (1.0 - null_real), null_real)
            q = np.append(syn * (1.0 - null_syn), null_syn)
            entry |= {
                "synthetic": [float(x) for x in syn],
                "null_synthetic": null_syn,
                "score": float(1.0 - 0.5 * np.abs(p - q).sum()),
            }
        if name in numeric:
            log = _log_view(contract, numeric[name], codec.bin_mass[name], synthetic, null_real)
            if log is not None:
                entry["log"] = log
        out[name] = entry
    return out


def _log_view(
    contract: Contract, spec: Any, bin_mass: Any, synthetic: pl.DataFrame | None, null_real: float
) -> dict[str, Any] | None:
    """A column's log view (``fidelity.log_view``, decided from the contract alone): the same DP masses
    and published synthetic rows over the log-width bins, zeros left out. ``resolution`` is the width of the DP
    histogram's widest bin (its layout comes from the contract): bars narrower than it show the mass
    of a histogram bin spread evenly over the values it covers, not a finer measurement."""
    from synthgate.validation.fidelity import column_plot, log_edges, log_labels, log_view, zero_split

    name = spec.name
    if not log_view(contract, name):
        return None
    split = zero_split(contract, name)
    real = _numeric_dp_shares(
        spec, np.asarray(bin_mass, dtype=float), log_edges(contract, name), zero_split=split, log=True
    )
    if split:
        real = real[1:]  # the log view leaves the zeros (the codec's point mass at 0) out, as the owner's does
    total = float(real.sum())
    widths = np.asarray(spec.edges_hi, dtype=float) - np.asarray(spec.edges_lo, dtype=float)
    view: dict[str, Any] = {
        "type": "numeric",
        "scale": "log",
        "labels": log_labels(contract, name),
        "real": [float(x) for x in (real / total if total > 0 else real)],
        "null_real": null_real,
        "resolution": float(widths.max()) if widths.size else None,
    }
    if synthetic is not None:
        syn = column_plot(synthetic[name], synthetic[name], contract, name, log=True)
        view |= {"synthetic": syn["synthetic"], "null_synthetic": syn["null_synthetic"]}
    return view


# --- the public report ---------------------------------------------------------------------------


def _outside_guarantee(released: bool) -> list[str]:
    sentences = [
        "Schema validation read every private row to check it against the contract; that it passed "
        "is implied by this report and is not charged to the privacy budget.",
        "The gate outcomes (pass or fail of each gate) come from privacy and fidelity checks computed "
        "on the private training and holdout rows; they are published but not covered by epsilon.",
        "The release decision depends on those gates, so whether this table was "
        + ("released" if released else "blocked")
        + " also reveals a little about the private rows beyond epsilon.",
    ]
    return sentences


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: a release folder holds {what}. Pass the folder a release run wrote."
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}): the folder was damaged."
        ) from None


def _codec_state(model_path: Path, contract: Contract) -> dict[str, Any]:
    import torch

    blob = torch.load(model_path, map_location="cpu", weights_only=True)
    if blob.get("contract_fingerprint") != contract.fingerprint():
        raise ValueError(
            f"{model_path} was trained under a different contract than the folder's contract.yaml "
            "(fingerprint mismatch): the folder was mixed up. Use the folder as a release run wrote it."
        )
    state: dict[str, Any] = blob["codec"]
    return state


def build_public_report(folder: str | Path, decision: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The public report of the release folder ``folder``, from its files alone.

    Reads ``decision.json`` (or ``decision``, the same record given directly), ``contract.yaml``,
    ``ledger.json``, and, for a released run, ``model.pt`` (only its codec's DP statistics) and
    ``synthetic.parquet``. Nothing else: no source table, no owner's report. The same folder always
    gives the same report (and ``render_html`` the same bytes).

    Raises:
        FileNotFoundError: a file the report needs is missing from the folder.
        ValueError: a file is damaged or belongs to another contract.
    """
    folder = Path(folder)
    record = dict(decision) if decision is not None else _read_json(folder / DECISION_FILE, "decision.json")
    contract = load_contract(folder / "contract.yaml")
    ledger_path = folder / "ledger.json"
    ledger = _read_json(ledger_path, "ledger.json") if ledger_path.exists() else None
    entries = _check_ledger(ledger) if ledger is not None else []
    released = bool(record["released"])
    model_path, synthetic_path = folder / "model.pt", folder / SYNTHETIC_FILE
    codec_state = _codec_state(model_path, contract) if model_path.exists() else None
    synthetic = pl.read_parquet(synthetic_path) if synthetic_path.exists() else None
    if released and (codec_state is None or synthetic is None):
        raise FileNotFoundError(
            f"{folder} is a released run's folder but lacks model.pt or {SYNTHETIC_FILE}. Pass the folder "
            "a release run wrote."
        )
    n_estimate = codec_state.get("n_estimate") if codec_state is not None else None
    gates = list(record.get("gates") or [])
    report = {
        "report_version": PUBLIC_REPORT_VERSION,
        "kind": "public",
        "run_id": record["run_id"],
        "table": record["table"],
        "released": released,
        "decision": {"released": released, "reasons": list(record.get("reasons") or [])},
        "failed_gates": [g["name"] for g in gates if not g.get("passed")],
        "gates": gates,
        "privacy": {
            "adjacency": ADJACENCY,
            "epsilon_spent": ledger["epsilon"] if ledger is not None else None,
            "epsilon_budget": contract.privacy.epsilon,
            "delta": contract.privacy.delta,
            "ledger_delta": ledger["delta"] if ledger is not None else None,
            "accountant": ledger["accountant"] if ledger is not None else None,
            "dp_randomness": record.get("dp_randomness"),
            "ledger": entries,
        },
        "rows": {
            # The codec's noisy estimate of the training rows (DP, already charged), rounded.
            "train_dp_estimate": round(float(n_estimate)) if n_estimate is not None else None,
            "synthetic": synthetic.height if synthetic is not None else None,
        },
        "distributions": dp_distributions(contract, codec_state, synthetic) if codec_state is not None else {},
        "model": record.get("model"),
        "output": record.get("output") if released else None,
        "versions": record.get("versions") or {},
        "contract_fingerprint": contract.fingerprint(),
        "excluded_columns": list(contract.excluded_columns),
        "files": sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and p.name not in ("report.json", "report.html") and not p.name.startswith(".")
        ),
        "outside_guarantee": _outside_guarantee(released),
    }
    result: dict[str, Any] = _jsonable(report, where="public report")
    return result


def write_public_report(report: dict[str, Any], folder: Path) -> None:
    """``report.json`` and ``report.html`` of the public report into ``folder``."""
    if report.get("kind") != "public":
        raise ValueError(
            "write_public_report takes a report from build_public_report (kind 'public'). The owner's "
            "evaluation report goes through write_owner_report, never into a release folder."
        )
    write_report(report, folder)


# --- the owner's report --------------------------------------------------------------------------


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700; refuse an existing one others can enter."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    if path.is_symlink() or not path.is_dir():
        raise OwnerReportError(f"the owner's report location {path} is not a plain folder. Pass a folder path.")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise OwnerReportError(
            f"the owner's report location {path} is open to other users (mode {mode:o}). Make it owner-only "
            f"(chmod 700 {path}) or choose another owner_reports folder."
        )


def write_owner_report(
    report: dict[str, Any], root: Path, run_id: str, *, release_folder: Path | None = None
) -> tuple[Path, dict[str, str]]:
    """The owner's evaluation report into ``root/run_id/``: folders 0700, files 0600.

    Built under a private temporary name beside it and renamed into place. Refused when ``root``
    lies inside ``release_folder`` (or the other way round), or is open to other users. Returns the
    folder and the SHA-256 of each file (for the registry).
    """
    from synthgate.governance.registry import file_hashes

    root = Path(root).absolute()
    if release_folder is not None:
        rel = Path(release_folder).absolute()
        if root == rel or root.is_relative_to(rel) or rel.is_relative_to(root / run_id):
            raise OwnerReportError(
                f"the owner's report location {root} overlaps the release folder {rel}; the owner's report "
                "must never be published. Set owner_reports to a folder outside the release folder."
            )
    _private_dir(root)
    folder = root / run_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=root))  # mode 0700
    try:
        clean = _jsonable(report)
        # mkstemp creates each file 0600 whatever the umask.
        write_text_atomically(tmp / "report.json", json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False))
        write_text_atomically(tmp / "report.html", render_html(clean))
        for f in tmp.iterdir():
            os.chmod(f, 0o600)
        hashes = file_hashes(tmp)
        if folder.exists():  # this run's own earlier attempt (a resumed run): replaced whole
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder, hashes
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
