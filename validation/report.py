"""The release report: one JSON document and one self-contained HTML page.

The report holds aggregates only: gate figures, metric details (shares, scores, counts),
the privacy ledger, row counts, timings and versions. It never holds a row or a value read
from one (no observed minimum or maximum, no category seen in the data but not in the
contract): the metric modules guarantee this for their ``details``, and the report adds
nothing read from private rows. It also says plainly which steps read private rows without
being charged to the DP ledger (``outside_guarantee``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import html
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from validation.results import GateDecision, MetricResult

__all__ = ["build_report", "render_html", "write_report"]

REPORT_VERSION = 1
_LEDGER_ENTRY_KEYS = ("mechanism", "noise_multiplier", "sample_rate", "steps", "epsilon_alone")


# --- JSON ------------------------------------------------------------------------------------


def _jsonable(value: Any, *, where: str = "report") -> Any:
    """A JSON-safe copy: numpy scalars to Python, tuples/sets to lists, NaN/inf to None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v, where=where) for v in sorted(value, key=str)]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where=where)
    if hasattr(value, "model_dump"):  # pydantic models (RunConfig)
        return _jsonable(value.model_dump(mode="json"), where=where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), where=where)
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar
        return _jsonable(value.item(), where=where)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which the report cannot store as JSON. "
        "Pass plain numbers, strings, lists and dicts (or a pydantic model)."
    )


# --- building --------------------------------------------------------------------------------


def _check_ledger(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    expected = (
        '{"accountant": "rdp", "epsilon": float, "delta": float, "entries": [{"mechanism", '
        '"noise_multiplier", "sample_rate", "steps", "epsilon_alone", "description"}]}'
    )
    if not isinstance(ledger, Mapping):
        raise TypeError(
            f"`ledger` must be a dict of the form {expected}. Got {type(ledger).__name__}."
        )
    missing = [k for k in ("accountant", "epsilon", "delta", "entries") if k not in ledger]
    if missing:
        raise ValueError(f"`ledger` lacks {missing}. Pass a dict of the form {expected}.")
    entries = []
    for i, entry in enumerate(ledger["entries"]):
        lacking = [k for k in _LEDGER_ENTRY_KEYS if k not in entry]
        if lacking:
            raise ValueError(
                f"ledger entry {i} lacks {lacking}. Each entry needs {list(_LEDGER_ENTRY_KEYS)} "
                "and a description."
            )
        entries.append({**dict(entry), "description": str(entry.get("description", ""))})
    return entries


def _gate_row(r: MetricResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "value": r.value,
        "threshold": r.threshold,
        "passed": r.passed,
        "ci": list(r.ci) if r.ci is not None else None,
        "gated_value": r.gated_value,
        "direction": r.direction,
        "kind": r.kind,
        "margin": r.margin,
        "description": r.description,
    }


def _outside_guarantee(results: list[MetricResult], rows: Mapping[str, int]) -> list[str]:
    sentences = [
        "Schema validation read every private row to check it against the contract; its "
        "outcome (pass or fail, and counts of failing rows) is not charged to the privacy "
        "budget.",
        f"The holdout split set aside {int(rows['holdout'])} private rows that were never "
        "used for training but were read by the evaluation; the split and those reads are "
        "not charged to the privacy budget.",
        "The row counts in this report are exact counts of private rows, not noisy ones.",
    ]
    for r in results:
        if r.kind in ("privacy", "fidelity"):
            sentences.append(
                f"The evaluation metric '{r.name}' is an aggregate computed from the real "
                "training and holdout rows; it is not covered by epsilon."
            )
    sentences.append(
        "The release decision depends on these evaluations, so whether this table was "
        "released also reveals a little about the private rows beyond epsilon."
    )
    return sentences


def build_report(
    *,
    run_id: str,
    table: str,
    decision: GateDecision,
    results: list[MetricResult],
    ledger: dict[str, Any],
    epsilon_budget: float,
    delta: float,
    rows: dict[str, int],
    timings: dict[str, float],
    versions: dict[str, str],
    contract_fingerprint: str,
    config: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """Assemble the JSON-serialisable release report.

    Args:
        run_id: identifier of the release run.
        table: name of the source table (from the contract).
        decision: the gate decision (``decide_release(results)``).
        results: every check's result, gated or not.
        ledger: the privacy ledger as ``{"accountant", "epsilon", "delta", "entries": [
            {"mechanism", "noise_multiplier", "sample_rate", "steps", "epsilon_alone",
            "description"}]}``.
        epsilon_budget: ε the contract allows.
        delta: δ of the contract.
        rows: row counts ``{"train", "holdout", "synthetic"}``.
        timings: seconds per stage.
        versions: package versions.
        contract_fingerprint: ``Contract.fingerprint()``.
        config: the run configuration (plain values).
        notes: free-text remarks to carry into the report.

    Returns:
        A dict of plain JSON types (NaN and infinities become null).

    Raises:
        ValueError: when the decision says released although a gate failed, or when the
            ledger or row counts lack a field.
    """
    failed = [r for r in results if r.is_gate and not r.passed]
    if decision.released and failed:
        raise ValueError(
            f"the decision says released but gates failed: {[r.name for r in failed]}. "
            "Build the decision with validation.results.decide_release(results)."
        )
    missing_rows = [k for k in ("train", "holdout", "synthetic") if k not in rows]
    if missing_rows:
        raise ValueError(f"`rows` lacks {missing_rows}. Pass {{'train', 'holdout', 'synthetic'}}.")
    entries = _check_ledger(ledger)
    report = {
        "report_version": REPORT_VERSION,
        "run_id": run_id,
        "table": table,
        "released": bool(decision.released),
        "decision": decision.to_dict(),
        "failed_gates": [r.name for r in failed],
        "gates": [_gate_row(r) for r in results if r.is_gate],
        "metrics": [r.to_dict() for r in results],
        "privacy": {
            "epsilon_spent": ledger["epsilon"],
            "epsilon_budget": epsilon_budget,
            "delta": delta,
            "ledger_delta": ledger["delta"],
            "accountant": ledger["accountant"],
            "ledger": entries,
        },
        "rows": {k: int(v) for k, v in rows.items()},
        "timings": dict(timings),
        "versions": dict(versions),
        "contract_fingerprint": contract_fingerprint,
        "config": config,
        "outside_guarantee": _outside_guarantee(results, rows),
        "notes": list(notes),
    }
    result: dict[str, Any] = _jsonable(report)
    return result


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{padding:1rem 1.25rem;border-radius:6px;margin:1rem 0;font-size:1.05rem}
.released{background:#dafbe1;border:2px solid #1a7f37}
.blocked{background:#ffebe9;border:2px solid #cf222e}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.muted{color:#57606a;font-size:.88rem}code{font-size:.88rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """Escaped display form of a figure (4 significant digits)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return _e(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else _e(f"{value:.4g}")
    return _e(value)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """An HTML table; cells must already be escaped."""
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(mapping: Mapping[str, Any]) -> str:
    return _table(["", ""], [[_e(k), _num(v)] for k, v in mapping.items()], {1})


def _flatten(details: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in details.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out.append((name, json.dumps(value, ensure_ascii=False)))
        else:
            out.append((name, value))
    return out


def _metric(report: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for m in report.get("metrics", []):
        if m.get("name") == name:
            return m
    return None


def _interval(ci: Any) -> str:
    if not ci:
        return "—"
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def _threshold(gate: Mapping[str, Any]) -> str:
    op = "≤" if gate.get("direction") == "max" else "≥"
    return f"{op} {_num(gate.get('threshold'))}"


def _gated(gate: Mapping[str, Any]) -> Any:
    return gate.get("gated_value") if gate.get("gated_value") is not None else gate.get("value")


def _shortfall(gate: Mapping[str, Any]) -> float | None:
    margin = gate.get("margin")
    return abs(margin) if isinstance(margin, (int, float)) else None


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page (inline CSS, no script, no network) for a report dict.

    Every value from the report is escaped with ``html.escape``.
    """
    released = bool(report.get("released"))
    gates = report.get("gates", [])
    failed = [g for g in gates if not g.get("passed")]
    title = f"synthgate release report — {report.get('table', '')} — {report.get('run_id', '')}"
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]

    # Decision banner.
    if released:
        parts.append(
            '<div class="banner released"><strong>RELEASED</strong>: every gate passed.</div>'
        )
    else:
        items = "".join(
            f"<li><strong>{_e(g.get('name'))}</strong>: {_num(_gated(g))} must be "
            f"{_threshold(g)}; off by {_num(_shortfall(g))}</li>"
            for g in failed
        )
        # Reasons other than the failed gates listed above (e.g. no gate was evaluated).
        names = tuple(f"{g.get('name')}:" for g in failed)
        reasons = "".join(
            f"<li>{_e(r)}</li>"
            for r in report.get("decision", {}).get("reasons", [])
            if not (names and str(r).startswith(names))
        )
        parts.append(
            '<div class="banner blocked"><strong>BLOCKED</strong>: '
            "the synthetic table is not released."
            + (f"<p>Failed gates:</p><ul>{items}</ul>" if items else "")
            + (f"<p>Reasons:</p><ul>{reasons}</ul>" if reasons else "")
            + "</div>"
        )

    # Gates.
    parts.append("<h2>Gates</h2>")
    parts.append(
        _table(
            ["gate", "kind", "value", "gated value", "threshold", "95% interval", "margin",
             "result", "what it means"],
            [
                [
                    _e(g.get("name")),
                    _e(g.get("kind")),
                    _num(g.get("value")),
                    _num(g.get("gated_value")),
                    _e(_threshold(g)),
                    _interval(g.get("ci")),
                    _num(g.get("margin")),
                    '<span class="pass">pass</span>' if g.get("passed")
                    else '<span class="fail">FAIL</span>',
                    _e(g.get("description", "")),
                ]
                for g in gates
            ],
            {2, 3, 6},
        )
    )

    # Privacy ledger.
    privacy = report.get("privacy", {})
    parts.append("<h2>Privacy ledger</h2>")
    parts.append(
        f"<p>Total ε spent <strong>{_num(privacy.get('epsilon_spent'))}</strong> of a budget of "
        f"<strong>{_num(privacy.get('epsilon_budget'))}</strong>; δ = {_num(privacy.get('delta'))}"
        f"; accountant: {_e(privacy.get('accountant'))}.</p>"
    )
    parts.append(
        _table(
            ["mechanism", "noise multiplier", "sample rate", "steps", "ε alone", "description"],
            [
                [
                    _e(entry.get("mechanism")),
                    _num(entry.get("noise_multiplier")),
                    _num(entry.get("sample_rate")),
                    _num(entry.get("steps")),
                    _num(entry.get("epsilon_alone")),
                    _e(entry.get("description", "")),
                ]
                for entry in privacy.get("ledger", [])
            ],
            {1, 2, 3, 4},
        )
    )

    parts.append("<h2>Rows</h2>")
    parts.append(_kv_table(report.get("rows", {})))

    shapes = _metric(report, "column_shapes")
    if shapes is not None:
        per_column = shapes.get("details", {}).get("per_column", {})
        parts.append("<h2>Column shapes</h2>")
        parts.append(
            _table(
                ["column", "metric", "score"],
                [[_e(c), _e(v.get("metric")), _num(v.get("score"))] for c, v in per_column.items()],
                {2},
            )
        )

    ml = _metric(report, "ml_efficacy")
    if ml is not None:
        d = ml.get("details", {})
        parts.append("<h2>ML efficacy</h2>")
        parts.append(
            f"<p>Target <code>{_e(d.get('target'))}</code>; train on synthetic, test on holdout "
            f"(TSTR) against train on real, test on holdout (TRTR). AUC ratio: "
            f"<strong>{_num(d.get('ratio'))}</strong>.</p>"
        )
        if "error" in d:
            parts.append(f"<p class='fail'>{_e(d['error'])}</p>")
        else:
            parts.append(
                _table(
                    ["", "accuracy", "F1", "AUC"],
                    [
                        [_e(label.upper())]
                        + [_num(d.get(label, {}).get(k)) for k in ("accuracy", "f1", "auc")]
                        for label in ("tstr", "trtr")
                    ],
                    {1, 2, 3},
                )
            )

    parts.append("<h2>Metric details</h2>")
    for m in report.get("metrics", []):
        flat = _flatten(m.get("details", {}))
        parts.append(
            f"<details><summary>{_e(m.get('name'))}: {_num(m.get('value'))}</summary>"
            + _table(["detail", "value"], [[_e(k), _num(v)] for k, v in flat], {1})
            + "</details>"
        )

    parts.append("<h2>Timings (s)</h2>")
    parts.append(_kv_table(report.get("timings", {})))
    parts.append("<h2>Versions</h2>")
    parts.append(_kv_table(report.get("versions", {})))

    parts.append("<h2>Outside the privacy guarantee</h2>")
    parts.append(
        "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in report.get("outside_guarantee", [])) + "</ul>"
    )
    notes = report.get("notes", [])
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append(
        f'<p class="muted">Contract fingerprint <code>{_e(report.get("contract_fingerprint"))}'
        f"</code> · report version {_e(report.get('report_version'))}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


# --- writing ---------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: dict[str, Any], folder: Path) -> None:
    """Write ``report.json`` (indent 2) and ``report.html`` into ``folder``, each atomically.

    The folder is created if missing. A reader never sees a half-written file: each is
    written to a temporary file in the same folder and renamed over the target.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean = _jsonable(report)
    _write_atomic(
        folder / "report.json", json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False)
    )
    _write_atomic(folder / "report.html", render_html(clean))
