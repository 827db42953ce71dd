"""The reports: one JSON document and one self-contained HTML page each.

``build_report`` makes the owner's evaluation report (and ``synthgate evaluate``'s): gate
figures, metric details (shares, scores, counts), the privacy ledger, row counts, timings and
versions. Those figures are computed on private rows and are not covered by ε: the release flow
writes this report owner-only, outside the release folder (``validation.public_report``). The
public report in the release folder (``validation.public_report.build_public_report``) holds only DP or public figures
and is rendered here too (``kind: "public"``).

Either report holds aggregates only. It never holds a row or a value read from one (no observed
minimum or maximum, no category seen in the data but not in the contract): the metric modules
guarantee this for their ``details``, and the report adds nothing read from private rows. It
also says plainly which steps read private rows without being charged to the DP ledger
(``outside_guarantee``).
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

from synthgate.validation.plots import (
    MAX_CATEGORIES,
    PALETTE,
    association_svg,
    attacks_svg,
    distribution_svg,
    rates_svg,
)
from synthgate.validation.results import GateDecision, MetricResult

__all__ = ["build_report", "check_ledger", "jsonable", "render_html", "write_report"]

REPORT_VERSION = 1
# Distribution figures per report, the least similar columns first (each is an SVG: a 600-column
# table drew 601 of them, 190 CPU-s); the scores table still lists every column.
MAX_DISTRIBUTION_FIGURES = 48
_LEDGER_ENTRY_KEYS = ("mechanism", "noise_multiplier", "sample_rate", "steps", "epsilon_alone")


# --- JSON ------------------------------------------------------------------------------------


def jsonable(value: Any, *, where: str = "report") -> Any:
    """A JSON-safe copy: numpy scalars to Python, tuples/sets to lists, NaN/inf to None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [jsonable(v, where=where) for v in sorted(value, key=str)]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value, where=where)
    if hasattr(value, "model_dump"):  # pydantic models (RunConfig)
        return jsonable(value.model_dump(mode="json"), where=where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), where=where)
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar
        return jsonable(value.item(), where=where)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which the report cannot store as JSON. "
        "Pass plain numbers, strings, lists and dicts (or a pydantic model)."
    )


# --- building --------------------------------------------------------------------------------


def check_ledger(ledger: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ledger's entries, each with a string description; refuses a ledger without the keys a report states."""
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
        "outcome": r.outcome,
        "min_rows_to_pass": r.details.get("min_rows_to_pass"),
        "ci": list(r.ci) if r.ci is not None else None,
        "gated_value": r.gated_value,
        "direction": r.direction,
        "kind": r.kind,
        "margin": r.margin,
        "description": r.description,
    }


#: The unit of privacy every ε in a report is stated for (README, "Threat model").
ADJACENCY = (
    "add or remove one row of the source table: ε and δ bound what the release reveals about whether "
    "any one row was in the source (the holdout split and the large-source sample are per-row secret "
    "coins, so one row changes the training set by at most that row)"
)


def _outside_guarantee(
    results: list[MetricResult], rows: Mapping[str, int], *, has_ledger: bool = True
) -> list[str]:
    sentences = [] if has_ledger else [
        "No privacy ledger: the synthetic table was made outside this run, so no "
        "differential-privacy guarantee is claimed for it."
    ]
    sentences += [
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
    ledger: dict[str, Any] | None,
    epsilon_budget: float,
    delta: float,
    rows: dict[str, int],
    timings: dict[str, float],
    versions: dict[str, str],
    contract_fingerprint: str,
    config: dict[str, Any],
    notes: list[str],
    dp_randomness: str | None = None,
) -> dict[str, Any]:
    """Assemble the JSON-serialisable release report.

    Args:
        run_id: identifier of the release run.
        table: name of the source table (from the contract).
        decision: the gate decision (``decide_release(results)``).
        results: every check's result, gated or not.
        ledger: the privacy ledger as ``{"accountant", "epsilon", "delta", "entries": [
            {"mechanism", "noise_multiplier", "sample_rate", "steps", "epsilon_alone",
            "description"}]}``; ``None`` for tables made outside synthgate (an evaluation):
            the report then states ε as null and makes no differential-privacy claim.
        epsilon_budget: ε the contract allows.
        delta: δ of the contract.
        rows: row counts ``{"train", "holdout", "synthetic"}``.
        timings: seconds per stage.
        versions: package versions.
        contract_fingerprint: ``Contract.fingerprint()``.
        config: the run configuration (plain values).
        notes: free-text remarks to carry into the report.
        dp_randomness: where the DP noise came from (``private_randomness_source()``), never
            the value.

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
    entries = check_ledger(ledger) if ledger is not None else []
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
            "epsilon_spent": ledger["epsilon"] if ledger is not None else None,
            "epsilon_budget": epsilon_budget,
            "delta": delta,
            "ledger_delta": ledger["delta"] if ledger is not None else None,
            "accountant": ledger["accountant"] if ledger is not None else None,
            "dp_randomness": dp_randomness,
            "adjacency": ADJACENCY,
            "ledger": entries,
        },
        "rows": {k: int(v) for k, v in rows.items()},
        "timings": dict(timings),
        "versions": dict(versions),
        "contract_fingerprint": contract_fingerprint,
        "config": config,
        "outside_guarantee": _outside_guarantee(results, rows, has_ledger=ledger is not None),
        "notes": list(notes),
    }
    result: dict[str, Any] = jsonable(report)
    return result


# --- HTML ------------------------------------------------------------------------------------
#
# One self-contained page: inline CSS, figures as inline SVG (validation.plots), no script,
# no external resource. Every section reads only the report dict and degrades to "not run"
# when its part of the report is absent (an older report, a contract without a target, a
# blocked run whose checks ran only in part). Every value from the report is escaped.

_CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;
--real:%(real)s;--syn:%(synthetic)s}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
margin:0 auto;max-width:1180px;color:var(--fg);line-height:1.45;padding:1.5rem 1.25rem 3rem;
font-size:15px;background:#fff}
h1{font-size:1.35rem;margin:.2rem 0 1rem;font-weight:600}
h2{font-size:1.2rem;margin:2.4rem 0 .6rem;padding-bottom:.25rem;border-bottom:2px solid var(--line)}
h3{font-size:1rem;margin:1.4rem 0 .4rem}
.eyebrow{text-transform:uppercase;letter-spacing:.08em;font-size:.75rem;color:var(--muted)}
table{border-collapse:collapse;margin:.4rem 0 .8rem;font-size:.88rem;min-width:18rem}
table.full{width:100%%}table.full td:first-child{white-space:nowrap}
tr.group th{background:#eaeef2;font-size:.92rem;text-align:left;padding:.45rem .5rem}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.desc{color:#32383f;min-width:18rem}th.num{white-space:nowrap}
tr.total td{font-weight:600;background:var(--soft)}tr.failed td{background:#fff5f5}
.decision{border-radius:8px;padding:1.1rem 1.4rem;margin:.5rem 0 1rem;border:2px solid}
.decision.released{background:#dafbe1;border-color:var(--ok)}
.decision.blocked{background:#ffebe9;border-color:var(--bad)}
.verdict{font-size:3rem;font-weight:800;letter-spacing:.04em;line-height:1.05}
.released .verdict{color:var(--ok)}.blocked .verdict{color:var(--bad)}
.decision p{margin:.35rem 0}
.decision table{background:#fff}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:.6rem;margin:1rem 0}
.fact{border:1px solid var(--line);border-radius:6px;padding:.55rem .75rem;background:var(--soft)}
.fact .k{font-size:.8rem;color:var(--muted)}
.fact .v{font-size:1.15rem;font-weight:600;font-variant-numeric:tabular-nums}
nav.toc{font-size:.88rem;margin:.5rem 0 0;color:var(--muted)}
nav.toc a{color:#0b57d0;text-decoration:none;margin-right:.9rem;white-space:nowrap}
.pass{color:var(--ok);font-weight:700}.fail{color:var(--bad);font-weight:700}.inconclusive{color:var(--bad);font-weight:700;font-style:italic}
.notrun{color:var(--muted);font-style:italic;background:var(--soft);border:1px dashed var(--line);
border-radius:6px;padding:.5rem .75rem;margin:.4rem 0}
.muted{color:var(--muted);font-size:.85rem}
.note{font-size:.82rem;color:#7d4e00;margin:.15rem 0 0}
code{font-size:.85rem;background:var(--soft);padding:0 .2rem;border-radius:3px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:0 1.5rem;
align-items:start}
.cols3{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:0 1.5rem;align-items:start}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(350px,1fr));gap:1rem 1.2rem;
align-items:start}
figure{margin:0}
figure svg,.wide svg{max-width:100%%;height:auto;display:block}
figcaption{font-size:.8rem;color:var(--muted);margin-top:.1rem}
.legend{font-size:.85rem;margin:.3rem 0 .8rem}
.sw{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin:0 .3em 0 .8em;border-radius:2px}
.sw.real{background:var(--real)}.sw.syn{background:#fff;border:2px solid var(--syn)}
.bar{height:.7rem;background:var(--soft);border:1px solid var(--line);border-radius:4px;overflow:hidden;
max-width:420px;margin:.3rem 0}
.bar span{display:block;height:100%%;background:#3b6fb6}
.bar.over span{background:var(--bad)}
details{margin:.25rem 0}summary{cursor:pointer}
@media print{nav.toc{display:none}details{break-inside:avoid}figure{break-inside:avoid}}
""" % {"real": PALETTE["real"], "synthetic": PALETTE["synthetic"]}

_KIND_ORDER = ("privacy", "fidelity", "budget", "contract")
_KIND_TITLE = {
    "privacy": "Privacy: is any real person exposed?",
    "fidelity": "Fidelity: is the synthetic table useful?",
    "budget": "Privacy budget",
    "contract": "Contract",
}
_ANONYMETER_PREFIXES = ("singling_out_risk", "linkability_risk", "inference_risk[")
# Details drawn as figures: left out of the key-value tables.
_FIGURE_KEYS = ("plot", "association", "attacks")
_MAX_DETAIL_CHARS = 400


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """Escaped display form of a figure (4 significant digits)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return _e(f"{value:,}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return "0" if abs(value) < 1e-12 else _e(f"{value:.4g}")  # rounding noise, e.g. 4e-19
    return _e(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table(
    headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
    row_classes: list[str] | None = None, full: bool = False,
) -> str:
    """An HTML table; cells must already be escaped. ``numeric``: right-aligned columns."""
    numeric = numeric or set()
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    cls = ' class="full"' if full else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv_table(mapping: Mapping[str, Any] | list[tuple[str, Any]], headers: tuple[str, str] = ("", "")) -> str:
    """Two columns, key and value; numbers right-aligned, text left-aligned."""
    pairs = list(mapping.items()) if isinstance(mapping, Mapping) else mapping
    body = "".join(
        f'<tr><td>{_e(k)}</td><td class="num">{_num(v)}</td></tr>' if _is_number(v)
        else f"<tr><td>{_e(k)}</td><td>{_num(v)}</td></tr>"
        for k, v in pairs
    )
    head = f'<th>{_e(headers[0])}</th><th>{_e(headers[1])}</th>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _not_run(what: str) -> str:
    return f'<p class="notrun">not run — {_e(what)}</p>'


def _flatten(details: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested details as (dotted key, value); figure data is named, not dumped."""
    out: list[tuple[str, Any]] = []
    for key, value in details.items():
        name = f"{prefix}{key}"
        if key in _FIGURE_KEYS and isinstance(value, (Mapping, list)):
            out.append((name, "(drawn as a figure above)"))
        elif isinstance(value, Mapping):
            out.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            text = json.dumps(value, ensure_ascii=False)
            if len(text) > _MAX_DETAIL_CHARS:
                text = text[: _MAX_DETAIL_CHARS - 1] + "…"
            out.append((name, text))
        else:
            out.append((name, value))
    return out


def _metrics(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    metrics = report.get("metrics")
    return [m for m in metrics if isinstance(m, Mapping)] if isinstance(metrics, list) else []


def _metric(report: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for m in _metrics(report):
        if m.get("name") == name:
            return m
    return None


def _details(metric: Mapping[str, Any] | None) -> Mapping[str, Any]:
    d = metric.get("details") if metric is not None else None
    return d if isinstance(d, Mapping) else {}


def _gates(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    gates = report.get("gates")
    if isinstance(gates, list):
        return [g for g in gates if isinstance(g, Mapping)]
    # An older report without a gates list: every metric with a threshold was a gate.
    return [m for m in _metrics(report) if m.get("threshold") is not None]


def _interval(ci: Any) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "—"
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def _op(gate: Mapping[str, Any]) -> str:
    return "≤" if gate.get("direction") == "max" else "≥"


def _threshold(gate: Mapping[str, Any]) -> str:
    return f"{_op(gate)} {_num(gate.get('threshold'))}"


def _gated(gate: Mapping[str, Any]) -> Any:
    return gate.get("gated_value") if gate.get("gated_value") is not None else gate.get("value")


def _margin(gate: Mapping[str, Any]) -> float | None:
    margin = gate.get("margin")
    if _is_number(margin):
        return float(margin)
    v, t = _gated(gate), gate.get("threshold")
    if _is_number(v) and _is_number(t):
        return t - v if gate.get("direction") == "max" else v - t
    return None


def _shortfall(gate: Mapping[str, Any]) -> str:
    """How far a failed gate is past its threshold, absolute and relative to the threshold."""
    margin = _margin(gate)
    if margin is None:
        return "not measurable (the value is missing)"
    text = _num(abs(margin))
    t = gate.get("threshold")
    if _is_number(t) and t != 0:
        text += f" ({abs(margin) / abs(t):.0%} of the threshold)"
    return text


def _raw_figure(gate: Mapping[str, Any]) -> str:
    """The raw figure behind a gate, as secondary detail, where it differs from the gated one
    (ML efficacy: the TSTR AUC behind the gated ratio; a risk: the point estimate behind the
    interval's upper end)."""
    raw, gated = gate.get("value"), _gated(gate)
    if not _is_number(raw) or (_is_number(gated) and float(raw) == float(gated)):
        return "—"
    return f'<span class="muted">{_num(raw)}</span>'


def _min_rows_note(gate: Mapping[str, Any]) -> str:
    """For an inconclusive gate: the rows the check would need to be able to pass."""
    if gate.get("outcome") != "inconclusive":
        return ""
    need = gate.get("min_rows_to_pass")
    if _is_number(need):
        return f'<br><span class="muted">needs ≥ {_num(need)} rows</span>'
    return '<br><span class="muted">more rows needed</span>'


def _result_cell(passed: Any, outcome: Any = None) -> str:
    """pass, FAIL, or (a failed gate limited by rows, validation.results.MetricResult.outcome)
    inconclusive: failed, but a no-leak table would have failed too at these row counts."""
    if passed:
        return '<span class="pass">pass</span>'
    if outcome == "inconclusive":
        return ('<span class="inconclusive" title="too few rows to tell: a no-leak table would not pass '
                'either at these row counts">inconclusive</span>')
    return '<span class="fail">FAIL</span>'


def _figure(draw: Any, *args: Any, **kwargs: Any) -> str:
    """A figure's SVG, or a note saying why it could not be drawn from the report's data."""
    try:
        return str(draw(*args, **kwargs))
    except (ValueError, TypeError, KeyError) as err:
        return f'<p class="notrun">figure not drawn — {_e(err)}</p>'


def _section(anchor: str, title: str, body: list[str]) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>' + "".join(body) + "</section>"


# --- sections ----------------------------------------------------------------------------


def _decision_html(report: Mapping[str, Any]) -> str:
    evaluation = report.get("kind") == "evaluation"
    released = bool(report.get("released"))
    failed = [g for g in _gates(report) if not g.get("passed")]
    if released:
        verdict = "PASSED" if evaluation else "RELEASED"
        lead = (
            "Every gate passed. This was an evaluation of tables made elsewhere: nothing is published."
            if evaluation else "Every gate passed: the synthetic table was published."
        )
        output = report.get("output")
        if not evaluation and isinstance(output, Mapping) and output.get("table"):
            lead += f" Table <code>{_e(output.get('table'))}</code> in <code>{_e(output.get('db'))}</code>."
        return (
            f'<div class="decision released"><div class="verdict">{verdict}</div>'
            f"<p>{lead}</p></div>"
        )
    verdict = "FAILED" if evaluation else "BLOCKED"
    lead = (
        "At least one gate failed (evaluation only: nothing would have been published)."
        if evaluation else "The synthetic table is not released: nothing was published."
    )
    parts = [f'<div class="decision blocked"><div class="verdict">{verdict}</div><p>{lead}</p>']
    if failed:
        unsure = sum(1 for g in failed if g.get("outcome") == "inconclusive")
        note = f" ({unsure} inconclusive: too few rows to tell; blocks by default)" if unsure else ""
        parts.append(f"<p><strong>{len(failed)} failed gate{'s' if len(failed) != 1 else ''}{note}:</strong></p>")
        parts.append(
            _table(
                ["gate", "kind", "value checked", "must be", "off by", "what it means"],
                [
                    [
                        f"<strong>{_e(g.get('name'))}</strong>",
                        _e(g.get("kind", "")),
                        _num(_gated(g)),
                        _e(_threshold(g)),
                        _e(_shortfall(g)),
                        _e(g.get("description", "")),
                    ]
                    for g in failed
                ],
                {2},
                full=True,
            )
        )
    # Reasons other than the failed gates above (e.g. no gate was evaluated).
    names = tuple(f"{g.get('name')}:" for g in failed)
    decision = report.get("decision")
    reasons = decision.get("reasons", []) if isinstance(decision, Mapping) else []
    others = [r for r in reasons if not (names and str(r).startswith(names))]
    if others:
        parts.append("<p>Reasons:</p><ul>" + "".join(f"<li>{_e(r)}</li>" for r in others) + "</ul>")
    if not failed and not others:
        parts.append("<p>No failed gate and no reason is recorded in this report.</p>")
    advice = what_to_try_next(failed)
    if advice:
        parts.append("<p><strong>What to try next</strong> (derived from which gates failed):</p><ul>"
                     + "".join(f"<li>{_e(a)}</li>" for a in advice) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def what_to_try_next(failed: list[Mapping[str, Any]]) -> list[str]:
    """Suggestions for a blocked run, derived only from which gates failed and how (their kind,
    name and outcome), so the same list can be given wherever the outcomes may be shown."""
    inconclusive = [g for g in failed if g.get("outcome") == "inconclusive"]
    fidelity = [g for g in failed if g.get("kind") == "fidelity" and g.get("outcome") != "inconclusive"]
    privacy = [g for g in failed if g.get("kind") == "privacy" and g.get("outcome") != "inconclusive"]
    other = [g for g in failed if g.get("kind") in ("budget", "contract")]
    tips: list[str] = []
    if inconclusive:
        need = [int(g["min_rows_to_pass"]) for g in inconclusive if _is_number(g.get("min_rows_to_pass"))]
        names = ", ".join(str(g.get("name")) for g in inconclusive)
        tips.append(
            f"More rows: {names} could not tell a leak-free table from a leaking one at these row counts"
            + (f" (the check needs at least {max(need):,} rows)" if need else "")
            + "; a larger source table, or a larger holdout share, gives the check its power."
        )
    if fidelity:
        names = ", ".join(str(g.get("name")) for g in fidelity)
        tips.append(
            f"More utility ({names}): train longer (more epochs), spend a larger ε (privacy.epsilon in the "
            "contract; the noise per step falls), or try another model (model.name) — a marginal-based "
            "generator often keeps the distributions better at small ε."
        )
        if any("ml_efficacy" in str(g.get("name")) for g in fidelity):
            tips.append("ML efficacy: check that the target column and its predictors are in the "
                        "contract as categorical/numeric (not free text or identifiers), so the model learns them.")
    if privacy:
        names = ", ".join(str(g.get("name")) for g in privacy)
        tips.append(
            f"Less exposure ({names}): spend a smaller ε or train fewer epochs, drop or coarsen rare "
            "quasi-identifiers in the contract (bucket ages, dates, postcodes), and keep identifiers out of the model."
        )
    if other:
        names = ", ".join(str(g.get("name")) for g in other)
        tips.append(f"Fix the contract or budget ({names}): see the reasons above; no model change helps here.")
    return tips


def _facts_html(report: Mapping[str, Any]) -> str:
    gates = _gates(report)
    privacy = report.get("privacy") if isinstance(report.get("privacy"), Mapping) else {}
    rows = report.get("rows") if isinstance(report.get("rows"), Mapping) else {}
    timings = report.get("timings") if isinstance(report.get("timings"), Mapping) else {}
    spent = privacy.get("epsilon_spent")
    eps = (
        f"{_num(spent)} of {_num(privacy.get('epsilon_budget'))}" if spent is not None
        else "no DP claim" if privacy else "—"
    )
    total_time = sum(v for v in timings.values() if _is_number(v))
    facts = [
        ("gates passed", f"{sum(1 for g in gates if g.get('passed'))} of {len(gates)}" if gates else "—"),
        ("ε spent", eps),
        ("δ", _num(privacy.get("delta"))),
        ("rows train · holdout · synthetic",
         " · ".join(_num(rows.get(k)) for k in ("train", "holdout", "synthetic")) if rows else "—"),
        ("run time", f"{total_time:.1f} s" if timings else "—"),
    ]
    return '<div class="facts">' + "".join(
        f'<div class="fact"><div class="k">{_e(k)}</div><div class="v">{v}</div></div>' for k, v in facts
    ) + "</div>"


def _gates_html(report: Mapping[str, Any]) -> str:
    gates = _gates(report)
    if not gates:
        return _section("gates", "Gates", [_not_run("no gate was evaluated in this run")])
    kinds = [k for k in _KIND_ORDER if any(g.get("kind") == k for g in gates)]
    kinds += sorted({str(g.get("kind") or "other") for g in gates} - set(_KIND_ORDER))
    body = [
        '<p class="muted">Each gate compares the <em>gated figure</em> (for a risk with an interval: '
        "its upper end, but the DCR shares, which block on evidence: their lower end; for ML efficacy: "
        "the TSTR / TRTR AUC ratio) with the threshold set in the "
        "data contract. The margin is the distance to the threshold, negative when the gate fails. "
        "The raw figure, where it differs from the gated one, is secondary detail. "
        "<em>Inconclusive</em>: the gate failed, but a table that leaks nothing would have failed "
        "too at these row counts; it blocks, and says how many rows the check needs.</p>"
    ]
    headers = ["gate", "gated figure", "threshold", "margin", "interval", "result", "raw figure", "what it means"]
    numeric = {1, 2, 3, 4, 6}
    rows_html = []
    for kind in kinds:
        group = [g for g in gates if str(g.get("kind") or "other") == kind]
        failed = sum(1 for g in group if not g.get("passed"))
        status = f" — {failed} failed" if failed else " — all passed"
        rows_html.append(
            f'<tr class="group"><th colspan="{len(headers)}">{_e(_KIND_TITLE.get(kind, kind))}'
            f"{_e(status)}</th></tr>"
        )
        for g in group:
            cells = [
                f"<strong>{_e(g.get('name'))}</strong>",
                f'<strong class="gated">{_num(_gated(g))}</strong>',
                _e(_threshold(g)),
                _num(_margin(g)),
                _interval(g.get("ci")),
                _result_cell(g.get("passed"), g.get("outcome")) + _min_rows_note(g),
                _raw_figure(g),
                _e(g.get("description", "")),
            ]
            rows_html.append(
                ("<tr>" if g.get("passed") else '<tr class="failed">') + "".join(
                    f'<td class="num">{c}</td>' if i in numeric else
                    (f'<td class="desc">{c}</td>' if i == 7 else f"<td>{c}</td>")
                    for i, c in enumerate(cells)
                ) + "</tr>"
            )
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body.append(f'<table class="full"><thead><tr>{head}</tr></thead><tbody>{"".join(rows_html)}</tbody></table>')
    return _section("gates", "Gates", body)


def _pct(value: Any) -> str:
    return f"{value:.1%}" if _is_number(value) else "—"


def _distributions_html(report: Mapping[str, Any], figures: bool) -> str:
    title = "Column distributions: real vs synthetic"
    shapes = _metric(report, "column_shapes")
    if shapes is None:
        return _section("distributions", title, [_not_run("the column-shapes check is not in this report")])
    per_column = _details(shapes).get("per_column")
    if not isinstance(per_column, Mapping) or not per_column:
        return _section("distributions", title, [_not_run("column_shapes holds no per-column detail")])
    items = [(str(c), v) for c, v in per_column.items() if isinstance(v, Mapping)]
    # Worst first: the columns to look at come first.
    items.sort(key=lambda cv: cv[1].get("score") if _is_number(cv[1].get("score")) else -1.0)
    body = [
        f"<p>Share of rows per bin (numeric columns, bins over the contract's public range) or per "
        f"category, in the real training rows and in the synthetic rows. Columns are ordered from "
        f"the least to the most similar; the score is the column's similarity (1 = identical). "
        f"Mean over columns: <strong>{_num(shapes.get('value'))}</strong>.</p>",
    ]
    has_plot = [c for c, v in items if isinstance(v.get("plot"), Mapping)]
    if not has_plot or not figures:
        reason = (
            "figures were turned off for this rendering" if not figures
            else "this report holds no per-column plot data (made by an older synthgate)"
        )
        body.append(_not_run(f"distribution plots: {reason}"))
    cards = []
    drawn = 0
    for k, (col, v) in enumerate(items):
        metric = v.get("metric") or "score"
        heading = f"{col} — {metric} {_num(v.get('score'))}"
        plot = v.get("plot")
        if not figures or not isinstance(plot, Mapping) or drawn == MAX_DISTRIBUTION_FIGURES:
            continue
        drawn += 1
        notes = []
        nr, ns = plot.get("null_real"), plot.get("null_synthetic")
        if (_is_number(nr) and nr > 0) or (_is_number(ns) and ns > 0):
            notes.append(f"missing values: real {_pct(nr)} · synthetic {_pct(ns)}")
        labels = plot.get("labels")
        if plot.get("type") == "categorical" and isinstance(labels, list) and len(labels) > MAX_CATEGORIES + 1:
            notes.append(f"{len(labels)} categories: the {MAX_CATEGORIES} largest (real share) shown, the rest as “other”")
        suppressed = plot.get("suppressed")
        if _is_number(suppressed) and suppressed > 0:
            notes.append(
                f'<span class="note">{int(suppressed)} bin{"s" if suppressed != 1 else ""} with fewer than 10 '
                "real rows: real share hidden (drawn as 0) to protect those rows</span>"
            )
        caption = "<br>".join(n if n.startswith("<span") else _e(n) for n in notes)
        svg = _figure(distribution_svg, col, plot, title=heading, salt=f"dist-{k}")
        cards.append(f"<figure>{svg}" + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>")
    if cards:
        if len(has_plot) > len(cards):
            body.append(f"<p class=\"muted\">{len(cards)} of {len(has_plot)} columns drawn, the least similar "
                        "first; the table below scores every column.</p>")
        body.append('<p class="legend"><span class="sw real"></span>real (training rows)'
                    '<span class="sw syn"></span>synthetic</p>')
        body.append('<div class="grid">' + "".join(cards) + "</div>")
    body.append("<h3>Scores per column</h3>")
    body.append(
        _table(
            ["column", "metric", "score", "plot"],
            [
                [_e(c), _e(v.get("metric", "")), _num(v.get("score")),
                 "yes" if isinstance(v.get("plot"), Mapping) else "—"]
                for c, v in items
            ],
            {2},
        )
    )
    return _section("distributions", title, body)


def _associations_html(report: Mapping[str, Any], figures: bool) -> str:
    title = "Associations between columns"
    trends = _metric(report, "pair_trends")
    if trends is None:
        return _section("associations", title, [_not_run("the pair-trends check is not in this report")])
    d = _details(trends)
    body = [
        f"<p>How strongly each pair of columns moves together, in the real training rows and in the "
        f"synthetic rows (red positive, blue negative), and the difference synthetic − real (purple "
        f"where the synthetic value is higher, orange where it is lower, white where they agree). "
        f"Pair-trend score (mean over pairs, 1 = identical): <strong>{_num(trends.get('value'))}"
        f"</strong>.</p>"
    ]
    assoc = d.get("association")
    if not figures:
        body.append(_not_run("association heat maps: figures were turned off for this rendering"))
    elif not isinstance(assoc, Mapping):
        body.append(_not_run("association heat maps: this report holds no association matrices "
                             "(made by an older synthgate, or fewer than two columns)"))
    else:
        body.append(f"<p class=\"muted\">Measure: {_e(assoc.get('measure', 'association'))}.</p>")
        body.append('<div class="wide">' + _figure(association_svg, assoc, salt="assoc") + "</div>")
    lowest = d.get("lowest_pairs")
    if isinstance(lowest, list) and lowest:
        body.append("<h3>Least preserved pairs</h3>")
        body.append(
            _table(
                ["columns", "score"],
                [
                    [_e(" × ".join(str(c) for c in p.get("columns", []))), _num(p.get("score"))]
                    for p in lowest if isinstance(p, Mapping)
                ],
                {1},
            )
        )
    return _section("associations", title, body)


def _ml_html(report: Mapping[str, Any]) -> str:
    title = "ML efficacy: train on synthetic, test on real"
    ml = _metric(report, "ml_efficacy")
    if ml is None:
        return _section("ml-efficacy", title, [_not_run("the contract names no target column, or the check did not run")])
    d = _details(ml)
    body = [
        f"<p>Target <code>{_e(d.get('target'))}</code>: a classifier trained on the synthetic rows "
        f"(TSTR) and one trained on the real training rows (TRTR) are both scored on the holdout. "
        f"The gate is on the AUC ratio TSTR / TRTR: <strong>{_num(_gated(ml))}</strong>"
        + (f" (gate {_e(_threshold(ml))} · {_result_cell(ml.get('passed'), ml.get('outcome'))})"
           if ml.get("threshold") is not None else "")
        + f"; the TSTR AUC alone ({_num(ml.get('value'))}) is detail, not gated.</p>"
    ]
    if "error" in d:
        body.append(f'<p class="fail">{_e(d["error"])}</p>')
    else:
        body.append(
            _table(
                ["", "accuracy", "F1", "AUC"],
                [
                    [_e(label.upper())]
                    + [_num((d.get(label) or {}).get(k)) for k in ("accuracy", "f1", "auc")]
                    for label in ("tstr", "trtr")
                ],
                {1, 2, 3},
            )
        )
    return _section("ml-efficacy", title, body)


def _metric_heading(m: Mapping[str, Any]) -> str:
    text = f"<strong>{_e(m.get('name'))}</strong>: {_num(_gated(m))}"
    if m.get("threshold") is not None:
        text += f" · gate {_e(_threshold(m))} · {_result_cell(m.get('passed'), m.get('outcome'))}"
    return f"<h3>{text}</h3>"


def _description(m: Mapping[str, Any]) -> str:
    desc = m.get("description")
    return f'<p class="muted">{_e(desc)}</p>' if desc else ""


def _attacks_html(report: Mapping[str, Any], figures: bool) -> str:
    title = "Membership inference attacks"
    with_attacks = [m for m in _metrics(report) if isinstance(_details(m).get("attacks"), list)]
    if not with_attacks:
        return _section("attacks", title, [_not_run("no membership-inference attack is in this report")])
    body = [
        "<p>Each attack scores real rows, some used for training (members) and some held out "
        "(non-members), using only the synthetic table, and tries to tell them apart. An AUC of 0.5 "
        "means it cannot; the gate reads the worst attack.</p>"
    ]
    # Several gates may read one set of attacks (AUC, TPR at low FPR): one table for them all.
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for m in with_attacks:
        attacks = [a for a in _details(m)["attacks"] if isinstance(a, Mapping)]
        groups.setdefault(json.dumps(attacks, sort_keys=True, default=str), []).append(m)
    for k, members in enumerate(groups.values()):
        attacks = [a for a in _details(members[0])["attacks"] if isinstance(a, Mapping)]
        for m in members:
            body.append(_metric_heading(m) + _description(m))
        body.append(
            _table(
                ["attack", "AUC", "interval", "TPR at 1% FPR", "members", "non-members", "TPR gated"],
                [
                    [
                        _e(a.get("name", "")), _num(a.get("auc")), _interval(a.get("ci")),
                        _num(a.get("tpr_at_1pct_fpr")), _num(a.get("n_members")),
                        _num(a.get("n_nonmembers")), _num(a.get("tpr_gated")),
                    ]
                    for a in attacks
                ],
                {1, 2, 3, 4, 5, 6},
            )
        )
        if figures and attacks:
            auc_gate = next((m.get("threshold") for m in members
                             if "auc" in str(m.get("name", "")).lower() and _is_number(m.get("threshold"))), None)
            body.append(
                '<figure class="wide" style="max-width:760px">'
                + _figure(attacks_svg, attacks, salt=f"mia-{k}", threshold=auc_gate)
                + "</figure>"
            )
        per_attack = next((_details(m)["attack_details"] for m in members
                           if isinstance(_details(m).get("attack_details"), Mapping)), None)
        if per_attack:
            body.append(
                "<details><summary>each attack's details</summary>"
                + _kv_table(_flatten(per_attack), ("detail", "value")) + "</details>"
            )
    return _section("attacks", title, body)


# Keys of an anonymeter-style result's details, in the order they are looked for.
_RATE_KEYS = {
    "main_rate": ("main_rate", "main_success_rate"),
    "main_ci": ("main_ci", "main_success_rate_ci"),
    "control_rate": ("control_rate", "control_success_rate"),
    "control_ci": ("control_ci", "control_success_rate_ci"),
}


def _rate(d: Mapping[str, Any], what: str) -> Any:
    return next((d[k] for k in _RATE_KEYS[what] if k in d), None)


def _anonymeter_html(report: Mapping[str, Any], figures: bool) -> str:
    title = "Re-identification risks: singling out, linkability, inference"
    risks = [m for m in _metrics(report) if str(m.get("name", "")).startswith(_ANONYMETER_PREFIXES)]
    if not risks:
        return _section("reidentification", title, [_not_run("no singling-out, linkability or inference risk is in this report")])
    body = [
        "<p>Each attack guesses something about real people from the synthetic table. The main "
        "attack targets training rows, the control attack rows that were never used for training: "
        "only success on training rows beyond the control rate is a risk created by the release.</p>"
    ]
    rows, fig_rows = [], []
    for m in risks:
        d = _details(m)
        main, main_ci = _rate(d, "main_rate"), _rate(d, "main_ci")
        control, control_ci = _rate(d, "control_rate"), _rate(d, "control_ci")
        rows.append([
            f"<strong>{_e(m.get('name'))}</strong>", _num(m.get("value")), _interval(m.get("ci")),
            _pct(main), _interval(main_ci), _pct(control), _interval(control_ci),
            _e(_threshold(m)) if m.get("threshold") is not None else "—",
            _result_cell(m.get("passed"), m.get("outcome")) if m.get("threshold") is not None else "—",
        ])
        fig_rows.append((str(m.get("name")), main, main_ci, control, control_ci))
    body.append(_table(
        ["risk", "risk value", "interval", "main rate", "main interval", "control rate",
         "control interval", "gate", "result"],
        rows, {1, 2, 3, 4, 5, 6},
    ))
    if figures and any(_is_number(r[1]) or _is_number(r[3]) for r in fig_rows):
        body.append('<figure class="wide" style="max-width:760px">' + _figure(rates_svg, fig_rows, salt="anon") + "</figure>")
    shown = {k for keys in _RATE_KEYS.values() for k in keys}
    for m in risks:
        extra = [(k, v) for k, v in _flatten(_details(m)) if k not in shown]
        if extra:
            body.append(
                f"<details><summary>{_e(m.get('name'))}: all details</summary>"
                + _kv_table(extra, ("detail", "value"))
                + _description(m) + "</details>"
            )
    return _section("reidentification", title, body)


def _distances_html(report: Mapping[str, Any]) -> str:
    title = "Distance and copy checks"
    shown = [m for m in _metrics(report)
             if m.get("kind") == "privacy" and not isinstance(_details(m).get("attacks"), list)
             and not str(m.get("name", "")).startswith(_ANONYMETER_PREFIXES)]
    named = [m for m in _metrics(report)
             if str(m.get("name", "")).startswith(("dcr_share", "nndr", "identical_match")) and m not in shown]
    shown += named
    if not shown:
        return _section("distances", title, [_not_run("no distance-to-closest-record, NNDR or copy check is in this report")])
    body = [
        "<p>Whether synthetic rows sit closer to the training rows than to rows the model never saw "
        "(distance to closest record, DCR; nearest-neighbour distance ratio, NNDR), and how many "
        "synthetic rows are exact copies of a training row.</p>"
    ]
    cards = []
    for m in shown:
        flat = _flatten(_details(m))
        cards.append(
            "<div>" + _metric_heading(m) + _description(m)
            + (_kv_table(flat, ("detail", "value")) if flat else _not_run("no detail recorded")) + "</div>"
        )
    body.append('<div class="cards">' + "".join(cards) + "</div>")
    return _section("distances", title, body)


def _ledger_html(report: Mapping[str, Any]) -> str:
    title = "Privacy ledger"
    privacy = report.get("privacy")
    if not isinstance(privacy, Mapping):
        return _section("ledger", title, [_not_run("this report holds no privacy ledger")])
    spent, budget = privacy.get("epsilon_spent"), privacy.get("epsilon_budget")
    entries = [e for e in privacy.get("ledger") or [] if isinstance(e, Mapping)]
    if spent is None and not entries:
        return _section("ledger", title, [_not_run(
            "no privacy ledger: the synthetic table was made outside this run, so no "
            f"differential-privacy guarantee is claimed (the contract's budget is ε = {_num(budget)})"
        )])
    body = [
        f"<p>Every step that learned from the private rows is charged here. Total ε spent "
        f"<strong>{_num(spent)}</strong> of a budget of <strong>{_num(budget)}</strong>, "
        f"δ = {_num(privacy.get('delta'))}, accountant: {_e(privacy.get('accountant') or '—')}.</p>",
        f"<p>Unit of privacy: {_e(privacy.get('adjacency') or ADJACENCY)}. Outside the guarantee: the "
        "validation outcome and the release decision (README, “Threat model”).</p>",
    ]
    if _is_number(spent) and _is_number(budget) and budget > 0:
        share = spent / budget
        cls = "bar over" if share > 1 else "bar"
        body.append(f'<div class="{cls}" title="ε spent / budget"><span style="width:{min(share, 1.0):.1%}">'
                    f"</span></div><p class=\"muted\">{share:.1%} of the budget spent.</p>")
    if entries:
        rows = [
            [
                _e(e.get("mechanism")), _num(e.get("noise_multiplier")), _num(e.get("sample_rate")),
                _num(e.get("steps")), _num(e.get("epsilon_alone")), _e(e.get("description", "")),
            ]
            for e in entries
        ]
        rows.append([_e("composed total"), "", "", "", _num(spent),
                     _e(f"all mechanisms composed by the {privacy.get('accountant') or ''} accountant "
                        f"at δ = {_num(privacy.get('delta'))}")])
        body.append(_table(
            ["mechanism", "noise multiplier", "sample rate", "steps", "ε alone", "what it released"],
            rows, {1, 2, 3, 4}, row_classes=[""] * len(entries) + ["total"], full=True,
        ))
        body.append(
            '<p class="muted">“ε alone” is what each mechanism would cost on its own; composed '
            "together they cost less than the sum, and the composed total is what the budget gate "
            "checks.</p>"
        )
    else:
        body.append(_not_run("the ledger lists no mechanism"))
    return _section("ledger", title, body)


def _outside_html(report: Mapping[str, Any]) -> str:
    title = "Outside the privacy guarantee"
    sentences = report.get("outside_guarantee")
    if not isinstance(sentences, list) or not sentences:
        return _section("outside", title, [_not_run("this report does not list what falls outside the guarantee")])
    return _section("outside", title, [
        "<p>These steps read private rows without being charged to the privacy budget. Everything "
        "in them is an aggregate, but none of it is covered by ε.</p>",
        "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in sentences) + "</ul>",
    ])


def _run_html(report: Mapping[str, Any]) -> str:
    rows = report.get("rows")
    col_rows = "<div><h3>Rows</h3>" + (
        _kv_table(rows, ("set", "rows")) if isinstance(rows, Mapping) and rows else _not_run("no row counts")
    ) + "</div>"
    timings = report.get("timings")
    if isinstance(timings, Mapping) and timings:
        total = sum(v for v in timings.values() if _is_number(v))
        trows = [
            [_e(k), _num(v), f"{v / total:.0%}" if _is_number(v) and total > 0 else "—"]
            for k, v in timings.items()
        ]
        trows.append(["total", _num(round(total, 3)), "100%" if total > 0 else "—"])
        col_timings = _table(["stage", "seconds", "share"], trows, {1, 2},
                             row_classes=[""] * len(timings) + ["total"])
    else:
        col_timings = _not_run("no timings recorded")
    versions = report.get("versions")
    col_versions = "<div><h3>Versions</h3>" + (
        _kv_table(versions, ("package", "version"))
        if isinstance(versions, Mapping) and versions else _not_run("no versions recorded")
    ) + "</div>"
    body = [f'<div class="cols3">{col_rows}<div><h3>Timings</h3>{col_timings}</div>{col_versions}</div>']
    notes = report.get("notes")
    if isinstance(notes, list) and notes:
        body.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    config = report.get("config")
    if isinstance(config, Mapping) and config:
        body.append(
            "<details><summary>Run configuration</summary>"
            + _kv_table(_flatten(config), ("setting", "value"))
            + "</details>"
        )
    return _section("run", "Run: rows, timings, versions", body)


def _all_details_html(report: Mapping[str, Any]) -> str:
    metrics = _metrics(report)
    if not metrics:
        return _section("details", "All metric details", [_not_run("no metric in this report")])
    body = ['<p class="muted">Every figure each check recorded (aggregates only).</p>']
    for m in metrics:
        flat = _flatten(_details(m))
        body.append(
            f"<details><summary>{_e(m.get('name'))}: {_num(m.get('value'))}</summary>"
            + _description(m)
            + (_kv_table(flat, ("detail", "value")) if flat else "")
            + "</details>"
        )
    return _section("details", "All metric details", body)


_TOC = (
    ("gates", "Gates"), ("distributions", "Distributions"), ("associations", "Associations"),
    ("ml-efficacy", "ML efficacy"), ("attacks", "Membership inference"),
    ("reidentification", "Re-identification"), ("distances", "Distances"), ("ledger", "Privacy ledger"),
    ("outside", "Outside the guarantee"), ("run", "Run"), ("details", "All details"),
)


# --- the public report's page ---------------------------------------------------------------
#
# A public report (``kind: "public"``, validation.public_report) holds no measured value: gates
# are pass/fail against their contract thresholds, the "real" distributions are the codec's DP
# histograms, the row count is the DP estimate. Its page reuses the ledger and
# outside-the-guarantee sections and draws the rest from those fields only.

_PUBLIC_TOC = (
    ("unit", "Unit of privacy"), ("gates", "Gates"), ("distributions", "Distributions"),
    ("ledger", "Privacy ledger"), ("outside", "Outside the guarantee"), ("withheld", "Not published"),
    ("run", "Release"),
)


def _public_decision_html(report: Mapping[str, Any]) -> str:
    released = bool(report.get("released"))
    if released:
        output = report.get("output")
        lead = "Every gate passed: the synthetic table was published."
        if isinstance(output, Mapping) and output.get("table"):
            lead += f" Table <code>{_e(output.get('table'))}</code>."
        return f'<div class="decision released"><div class="verdict">RELEASED</div><p>{lead}</p></div>'
    failed = [g for g in _gates(report) if not g.get("passed")]
    parts = ['<div class="decision blocked"><div class="verdict">BLOCKED</div>'
             "<p>The synthetic table is not released: nothing was published.</p>"]
    if failed:
        unsure = sum(1 for g in failed if g.get("outcome") == "inconclusive")
        note = f" ({unsure} inconclusive: too few rows to tell; blocks by default)" if unsure else ""
        parts.append(f"<p><strong>{len(failed)} failed gate{'s' if len(failed) != 1 else ''}{note}:</strong></p>")
        parts.append(_table(
            ["gate", "kind", "must be", "what it means"],
            [[f"<strong>{_e(g.get('name'))}</strong>", _e(g.get("kind", "")), _e(_threshold(g)),
              _e(g.get("description", ""))] for g in failed],
            full=True,
        ))
        parts.append('<p class="muted">By how much each gate missed is a figure computed on private rows: '
                     "it is in the data owner's evaluation report, not here.</p>")
    decision = report.get("decision")
    reasons = decision.get("reasons", []) if isinstance(decision, Mapping) else []
    names = tuple(f"{g.get('name')}:" for g in failed)
    others = [r for r in reasons if not (names and str(r).startswith(names))]
    if others:
        parts.append("<p>Reasons:</p><ul>" + "".join(f"<li>{_e(r)}</li>" for r in others) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def _public_facts_html(report: Mapping[str, Any]) -> str:
    gates = _gates(report)
    privacy = report.get("privacy") if isinstance(report.get("privacy"), Mapping) else {}
    rows = report.get("rows") if isinstance(report.get("rows"), Mapping) else {}
    spent = privacy.get("epsilon_spent")
    facts = [
        ("gates passed", f"{sum(1 for g in gates if g.get('passed'))} of {len(gates)}" if gates else "—"),
        ("ε spent", f"{_num(spent)} of {_num(privacy.get('epsilon_budget'))}" if spent is not None else "—"),
        ("δ", _num(privacy.get("delta"))),
        ("training rows (DP estimate)", _num(rows.get("train_dp_estimate"))),
        ("synthetic rows", _num(rows.get("synthetic"))),
    ]
    return '<div class="facts">' + "".join(
        f'<div class="fact"><div class="k">{_e(k)}</div><div class="v">{v}</div></div>' for k, v in facts
    ) + "</div>"


def _unit_html(report: Mapping[str, Any]) -> str:
    privacy = report.get("privacy") if isinstance(report.get("privacy"), Mapping) else {}
    adjacency = privacy.get("adjacency") or "not stated in this report"
    return _section("unit", "Unit of privacy", [
        f"<p><strong>Neighbouring tables:</strong> {_e(adjacency)}</p>",
        "<p>Every figure on this page is differentially private or public: the contract, the privacy "
        "ledger, the synthetic table (post-processing of the DP model), and the codec's noisy "
        "histograms, charged to the ledger below. Who sees what (the public, the data owner, the "
        "operator) is set out in the “Threat model” section of synthgate's README.</p>",
    ])


def _public_gates_html(report: Mapping[str, Any]) -> str:
    gates = _gates(report)
    if not gates:
        return _section("gates", "Gates", [_not_run("no gate was evaluated in this run")])
    body = ['<p class="muted">Each gate\'s outcome against the threshold in the data contract. The measured '
            "values are computed on private rows and are not published (they are in the data owner's "
            "evaluation report); the outcomes are, and fall outside the privacy guarantee.</p>"]
    rows, classes = [], []
    for g in gates:
        rows.append([f"<strong>{_e(g.get('name'))}</strong>", _e(g.get("kind", "")), _e(_threshold(g)),
                     _result_cell(g.get("passed"), g.get("outcome")), f'<span class="muted">{_e(g.get("description", ""))}</span>'])
        classes.append("" if g.get("passed") else "failed")
    body.append(_table(["gate", "kind", "must be", "result", "what it means"], rows, row_classes=classes, full=True))
    return _section("gates", "Gates", body)


def _public_distributions_html(report: Mapping[str, Any], figures: bool) -> str:
    title = "Column distributions: DP estimate of the real table vs synthetic"
    dists = report.get("distributions")
    items = [(str(c), v) for c, v in dists.items() if isinstance(v, Mapping)] if isinstance(dists, Mapping) else []
    if not items:
        why = ("the release was blocked: no model and no synthetic table were published"
               if not report.get("released") else "this report holds no distributions")
        return _section("distributions", title, [_not_run(why)])
    items.sort(key=lambda cv: cv[1].get("score") if _is_number(cv[1].get("score")) else -1.0)
    body = [
        "<p>The “real” shares are not counts of real rows: they are the per-column histograms the model's "
        "codec learned under differential privacy (Gaussian noise, charged to the ledger), moved onto the "
        "plot's bins over the contract's public range. The synthetic shares are counted in the published "
        "table. Score: 1 − total variation between the two (1 = identical), least similar column first.</p>"
    ]
    cards = []
    if figures:
        for k, (col, v) in enumerate(items[:MAX_DISTRIBUTION_FIGURES]):
            plot = {**v, "suppressed": 0}
            notes = []
            nr, ns = v.get("null_real"), v.get("null_synthetic")
            if (_is_number(nr) and nr > 0) or (_is_number(ns) and ns > 0):
                notes.append(f"missing values: DP estimate {_pct(nr)} · synthetic {_pct(ns)}")
            labels = v.get("labels")
            if v.get("type") == "categorical" and isinstance(labels, list) and len(labels) > MAX_CATEGORIES + 1:
                notes.append(f"{len(labels)} categories: the {MAX_CATEGORIES} largest (DP estimate) shown, "
                             "the rest as “other”")
            heading = f"{col} — similarity {_num(v.get('score'))}"
            svg = _figure(distribution_svg, col, plot, title=heading, salt=f"pub-dist-{k}")
            caption = "<br>".join(_e(n) for n in notes)
            cards.append(f"<figure>{svg}" + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>")
    else:
        body.append(_not_run("distribution plots: figures were turned off for this rendering"))
    if cards:
        if len(items) > len(cards):
            body.append(f"<p class=\"muted\">{len(cards)} of {len(items)} columns drawn, the least similar "
                        "first; the table below scores every column.</p>")
        body.append('<p class="legend"><span class="sw real"></span>real (DP estimate)'
                    '<span class="sw syn"></span>synthetic (published)</p>')
        body.append('<div class="grid">' + "".join(cards) + "</div>")
    body.append("<h3>Similarity per column</h3>")
    body.append(_table(["column", "type", "similarity"],
                       [[_e(c), _e(v.get("type", "")), _num(v.get("score"))] for c, v in items], {2}))
    return _section("distributions", title, body)


def _withheld_html() -> str:
    return _section("withheld", "Not published: the data owner's evaluation report", [
        "<p>The checks behind the gates (distance to closest record, membership-inference attacks, "
        "re-identification risks, column shapes and pair trends against the real rows, detection, ML "
        "efficacy) read the private training and holdout rows. Their values, intervals, real-row "
        "histograms and association matrices, and the exact row counts, are not differentially "
        "private: they are written only to the data owner's evaluation report, kept owner-only outside "
        "this release and registered with its hash.</p>",
    ])


def _public_run_html(report: Mapping[str, Any]) -> str:
    body = []
    model = report.get("model")
    if isinstance(model, Mapping):
        body.append(f"<h3>Model <code>{_e(model.get('name', ''))}</code></h3>")
        summary = model.get("training_summary")
        if isinstance(summary, Mapping) and summary:
            body.append(_kv_table(_flatten(summary), ("training", "value")))
    excluded = report.get("excluded_columns")
    if isinstance(excluded, list) and excluded:
        body.append(f"<p>Identifier and pii columns dropped, never modelled: {_e(', '.join(map(str, excluded)))}.</p>")
    files = report.get("files")
    if isinstance(files, list) and files:
        body.append("<h3>Files of this release</h3><ul>" + "".join(f"<li><code>{_e(f)}</code></li>" for f in files)
                    + "</ul>")
    versions = report.get("versions")
    if isinstance(versions, Mapping) and versions:
        body.append("<h3>Versions</h3>" + _kv_table(versions, ("package", "version")))
    return _section("run", "Release: model, files, versions", body or [_not_run("nothing recorded")])


def _render_public_html(report: Mapping[str, Any], figures: bool) -> str:
    title = f"synthgate public release report — {report.get('table', '')} — {report.get('run_id', '')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        '<header><div class="eyebrow">synthgate public release report</div>'
        f"<h1>Table <code>{_e(report.get('table', ''))}</code> · run <code>{_e(report.get('run_id', ''))}</code></h1>",
        _public_decision_html(report),
        _public_facts_html(report),
        '<nav class="toc">' + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in _PUBLIC_TOC) + "</nav></header>",
        "<main>",
        _unit_html(report),
        _public_gates_html(report),
        _public_distributions_html(report, figures),
        _ledger_html(report),
        _outside_html(report),
        _withheld_html(),
        _public_run_html(report),
        "</main>",
        f'<footer><p class="muted">Contract fingerprint <code>{_num(report.get("contract_fingerprint"))}'
        f"</code> · public report version {_num(report.get('report_version'))} · every figure on this page is "
        "differentially private or public; gate outcomes and the decision are listed as outside the "
        "guarantee.</p></footer>",
        "</body></html>",
    ]
    return "\n".join(parts)


def render_html(report: dict[str, Any], *, figures: bool = True) -> str:
    """One self-contained HTML page for a report dict.

    Inline CSS and inline SVG figures only: no script, no stylesheet link, no web font, no
    image fetched from anywhere, so the file opens offline and can be mailed as it is. The
    page shows only what the report holds; every value is escaped with ``html.escape``
    (figure labels by matplotlib's SVG writer). Sections whose data the report lacks say
    "not run".

    Args:
        report: a dict from ``build_report`` (or a ``report.json`` read back).
        figures: draw the figures (default); ``False`` gives the tables only, faster.
    """
    if report.get("kind") == "public":
        return _render_public_html(report, figures)
    evaluation = report.get("kind") == "evaluation"
    kind = "evaluation" if evaluation else (
        "owner's evaluation (private: never publish)" if report.get("kind") == "owner" else "release"
    )
    title = f"synthgate {kind} report — {report.get('table', '')} — {report.get('run_id', '')}"
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f'<header><div class="eyebrow">synthgate {kind} report</div>'
        f"<h1>Table <code>{_e(report.get('table', ''))}</code> · run <code>{_e(report.get('run_id', ''))}</code></h1>",
        _decision_html(report),
        _facts_html(report),
        '<nav class="toc">' + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in _TOC) + "</nav></header>",
        "<main>",
        _gates_html(report),
        _distributions_html(report, figures),
        _associations_html(report, figures),
        _ml_html(report),
        _attacks_html(report, figures),
        _anonymeter_html(report, figures),
        _distances_html(report),
        _ledger_html(report),
        _outside_html(report),
        _run_html(report),
        _all_details_html(report),
        "</main>",
        f'<footer><p class="muted">Contract fingerprint <code>{_num(report.get("contract_fingerprint"))}'
        f"</code> · report version {_num(report.get('report_version'))} · this page holds aggregates "
        "only: no row and no value read from a row.</p></footer>",
        "</body></html>",
    ]
    return "\n".join(parts)


# --- writing ---------------------------------------------------------------------------------


def write_text_atomically(path: Path, text: str) -> None:
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
    clean = jsonable(report)
    write_text_atomically(
        folder / "report.json", json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False)
    )
    write_text_atomically(folder / "report.html", render_html(clean))
