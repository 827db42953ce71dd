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
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import jinja2
from markupsafe import Markup

from synthgate.validation.plots import (
    MAX_CATEGORIES,
    PALETTE,
    association_svg,
    attacks_svg,
    distribution_svg,
    rates_svg,
)
from synthgate.validation.results import GateDecision, MetricResult, family_evidence

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
        raise TypeError(f"`ledger` must be a dict of the form {expected}. Got {type(ledger).__name__}.")
    missing = [k for k in ("accountant", "epsilon", "delta", "entries") if k not in ledger]
    if missing:
        raise ValueError(f"`ledger` lacks {missing}. Pass a dict of the form {expected}.")
    entries = []
    for i, entry in enumerate(ledger["entries"]):
        lacking = [k for k in _LEDGER_ENTRY_KEYS if k not in entry]
        if lacking:
            raise ValueError(
                f"ledger entry {i} lacks {lacking}. Each entry needs {list(_LEDGER_ENTRY_KEYS)} and a description."
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
        "min_rows_unit": r.details.get("min_rows_unit", "rows per side") if "min_rows_to_pass" in r.details else None,
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


def _outside_guarantee(results: list[MetricResult], rows: Mapping[str, int], *, has_ledger: bool = True) -> list[str]:
    sentences = (
        []
        if has_ledger
        else [
            "No privacy ledger: the synthetic table was made outside this run, so no "
            "differential-privacy guarantee is claimed for it."
        ]
    )
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
    results = family_evidence(results)  # the outcomes decide_release judged (idempotent)
    # an inconclusive gate may be let through (gates.block_inconclusive: false); a failed one never
    failed = [r for r in results if r.is_gate and r.outcome == "fail"]
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
td.desc{color:#32383f;min-width:18rem}th.num{white-space:nowrap}td.raw{white-space:normal;min-width:6rem}
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
_FIGURE_KEYS = ("plot", "plot_log", "association", "attacks")
_MAX_DETAIL_CHARS = 400


# --- formatting, as Jinja2 filters (plain text: the template escapes it) ---------------------


def _num(value: Any) -> str:
    """Display form of a figure (4 significant digits); plain text, escaped by the template."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return "0" if abs(value) < 1e-12 else f"{value:.4g}"  # rounding noise, e.g. 4e-19
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


def _pct(value: Any) -> str:
    return f"{value:.1%}" if _is_number(value) else "—"


_CEILING_METRICS = ("column_shapes", "pair_trends", "three_way_marginals")


def _possible(metric: Mapping[str, Any] | None) -> Any:
    """The holdout reference of a fidelity figure, where the check measured one: what real rows
    the model never saw score on the same measure (column shapes, pair trends and three-way
    marginals: the holdout's similarity to train, their ``ceiling``; ML efficacy: the TRTR AUC, a
    model trained on real rows). None otherwise (an older report, or a check run without holdout)."""
    d = _details(metric)
    if metric is None:
        return None
    if metric.get("name") in _CEILING_METRICS and _is_number(d.get("ceiling")):
        return d["ceiling"]
    if metric.get("name") == "ml_efficacy":
        trtr = d.get("trtr")
        if isinstance(trtr, Mapping):
            ref = trtr.get("auc") if _is_number(trtr.get("auc")) else trtr.get("r2")
            return ref if _is_number(ref) else None
    return None


def _raw_figure(report: Mapping[str, Any], gate: Mapping[str, Any]) -> str | None:
    """The raw figure behind a gate, as secondary detail, where it differs from the gated one
    (ML efficacy: the TSTR AUC behind the gated ratio; a risk: the point estimate behind the
    interval's upper end), with its holdout reference where there is one ("0.93 of a possible
    0.98")."""
    raw, gated = gate.get("value"), _gated(gate)
    if not _is_number(raw):
        return None
    possible = _possible(_metric(report, str(gate.get("name"))))
    reference = f" of a possible {_num(possible)}" if possible is not None else ""
    if _is_number(gated) and float(raw) == float(gated):
        # the gated figure is the raw one (column shapes, pair trends): shown again only beside its reference
        return _num(raw) + reference if reference else None
    return _num(raw) + reference


def _figure(draw: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A figure's SVG (trusted markup: validation.plots escapes its labels through matplotlib's
    SVG writer), or why it could not be drawn from the report's data."""
    try:
        return {"svg": Markup(str(draw(*args, **kwargs))), "error": None}
    except (ValueError, TypeError, KeyError) as err:
        return {"svg": None, "error": str(err)}


def _sentence(text: Any) -> str:
    """A note as a sentence: capital first letter, a closing full stop."""
    s = str(text).strip()
    if not s:
        return s
    s = s[0].upper() + s[1:]
    return s if s.endswith((".", "!", "?", ")")) or s.endswith(".)") else s + "."


class _Environment(jinja2.Environment):
    """Jinja2 with a report's lenient lookups: ``gate.ci`` on a dict without a ``ci`` key is None
    (an older report lacks it; the template shows "—"), not an undefined value that passes
    ``is not none``. Undefined template variables still raise (StrictUndefined)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            if not hasattr(obj, attribute):
                return None
        return super().getattr(obj, attribute)


_ENV = _Environment(
    loader=jinja2.PackageLoader("synthgate.validation", "templates"),
    autoescape=True,  # every template, whatever its name: a value is escaped unless it is Markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_ENV.filters.update(
    num=_num,
    interval=_interval,
    threshold=_threshold,
    gated=_gated,
    margin=_margin,
    shortfall=_shortfall,
    pct=_pct,
)
_ENV.tests["finite_number"] = _is_number


def _result_cell(passed: Any, outcome: Any = None) -> str:
    """pass, FAIL, or (a failed gate limited by rows, validation.results.MetricResult.outcome)
    inconclusive: failed, but a no-leak table would have failed too at these row counts."""
    return str(_ENV.get_template("macros.html.j2").module.result_cell(passed, outcome))  # type: ignore[attr-defined]


# --- views: what each section shows, as plain data (the templates hold the markup) -----------


def _others(report: Mapping[str, Any], failed: list[Mapping[str, Any]]) -> list[str]:
    """Reasons other than the failed gates (e.g. no gate was evaluated)."""
    names = tuple(f"{g.get('name')}:" for g in failed)
    decision = report.get("decision")
    reasons = decision.get("reasons", []) if isinstance(decision, Mapping) else []
    return [str(r) for r in reasons if not (names and str(r).startswith(names))]


def _decision_view(report: Mapping[str, Any]) -> dict[str, Any]:
    evaluation = report.get("kind") == "evaluation"
    released = bool(report.get("released"))
    failed = [g for g in _gates(report) if not g.get("passed")]
    output = report.get("output")
    view: dict[str, Any] = {
        "released": released,
        "failed": failed,
        "output_table": None,
        "output_db": None,
        "others": _others(report, failed),
        "advice": what_to_try_next(failed),
        # a release may go out with inconclusive privacy gates (gates.block_inconclusive: false)
        "row_limited": [str(g.get("name")) for g in failed if g.get("outcome") == "inconclusive"] if released else [],
    }
    if isinstance(output, Mapping) and output.get("table") and not evaluation:
        view.update(output_table=output.get("table"), output_db=output.get("db"))
    if released:
        view["verdict"] = "PASSED" if evaluation else "RELEASED"
        passed = (
            "No gate found evidence of a leak and every other gate passed"
            if view["row_limited"]
            else "Every gate passed"
        )
        view["lead"] = (
            f"{passed}. This was an evaluation of tables made elsewhere: nothing is published."
            if evaluation
            else f"{passed}: the synthetic table was published."
        )
    else:
        view["verdict"] = "FAILED" if evaluation else "BLOCKED"
        view["lead"] = (
            "At least one gate failed (evaluation only: nothing would have been published)."
            if evaluation
            else "The synthetic table is not released: nothing was published."
        )
    return view


def what_to_try_next(failed: list[Mapping[str, Any]]) -> list[str]:
    """Suggestions for a blocked run, derived only from which gates failed and how (their kind,
    name and outcome), so the same list can be given wherever the outcomes may be shown."""
    inconclusive = [g for g in failed if g.get("outcome") == "inconclusive"]
    fidelity = [g for g in failed if g.get("kind") == "fidelity" and g.get("outcome") != "inconclusive"]
    privacy = [g for g in failed if g.get("kind") == "privacy" and g.get("outcome") != "inconclusive"]
    other = [g for g in failed if g.get("kind") in ("budget", "contract")]
    tips: list[str] = []
    if inconclusive:
        # rows per side (a figure in control attacks is not a row count: it is left out here)
        need = [
            int(g["min_rows_to_pass"])
            for g in inconclusive
            if _is_number(g.get("min_rows_to_pass")) and g.get("min_rows_unit", "rows per side") == "rows per side"
        ]
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
            tips.append(
                "ML efficacy: check that the target column and its predictors are in the "
                "contract as categorical/numeric (not free text or identifiers), so the model learns them."
            )
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


def _facts(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    gates = _gates(report)
    privacy = report.get("privacy") if isinstance(report.get("privacy"), Mapping) else {}
    rows = report.get("rows") if isinstance(report.get("rows"), Mapping) else {}
    timings = report.get("timings") if isinstance(report.get("timings"), Mapping) else {}
    spent = privacy.get("epsilon_spent")
    eps = (
        f"{_num(spent)} of {_num(privacy.get('epsilon_budget'))}"
        if spent is not None
        else "no DP claim"
        if privacy
        else "—"
    )
    total_time = sum(v for v in timings.values() if _is_number(v))
    return [
        ("gates passed", f"{sum(1 for g in gates if g.get('passed'))} of {len(gates)}" if gates else "—"),
        ("ε spent", eps),
        ("δ", _num(privacy.get("delta"))),
        (
            "rows train · holdout · synthetic",
            " · ".join(_num(rows.get(k)) for k in ("train", "holdout", "synthetic")) if rows else "—",
        ),
        ("run time", f"{total_time:.1f} s" if timings else "—"),
    ]


def _gate_groups(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    gates = _gates(report)
    kinds = [k for k in _KIND_ORDER if any(g.get("kind") == k for g in gates)]
    kinds += sorted({str(g.get("kind") or "other") for g in gates} - set(_KIND_ORDER))
    groups = []
    for kind in kinds:
        group = [{**g, "raw": _raw_figure(report, g)} for g in gates if str(g.get("kind") or "other") == kind]
        failed = sum(1 for g in group if not g.get("passed"))
        groups.append(
            {
                "title": _KIND_TITLE.get(kind, kind),
                "status": f" — {failed} failed" if failed else " — all passed",
                "gates": group,
            }
        )
    return groups


def _distribution_notes(plot: Mapping[str, Any], real: str) -> list[dict[str, Any]]:
    notes = []
    nr, ns = plot.get("null_real"), plot.get("null_synthetic")
    if (_is_number(nr) and nr > 0) or (_is_number(ns) and ns > 0):
        notes.append({"text": f"missing values: {real} {_pct(nr)} · synthetic {_pct(ns)}", "warn": False})
    labels = plot.get("labels")
    if plot.get("type") == "categorical" and isinstance(labels, list) and len(labels) > MAX_CATEGORIES + 1:
        shown = "real share" if real == "real" else real
        notes.append(
            {
                "text": f"{len(labels)} categories: the {MAX_CATEGORIES} largest ({shown}) shown, the rest as “other”",
                "warn": False,
            }
        )
    suppressed = plot.get("suppressed")
    if _is_number(suppressed) and suppressed > 0:
        notes.append(
            {
                "text": f"{int(suppressed)} bin{'s' if suppressed != 1 else ''} with fewer than 10 real "
                "rows: real share hidden (drawn as 0) to protect those rows",
                "warn": True,
            }
        )
    return notes


def _log_card(col: str, plot: Any, real: str, salt: str) -> dict[str, Any] | None:
    """The log view of a column (``fidelity.log_view``) as a second figure of its card, or None."""
    if not isinstance(plot, Mapping):
        return None
    notes = [
        {
            "text": "log view of the non-zero values: each bar spans the same ratio of values (bins from the "
            "contract's range), so small and large amounts both show; the zeros are in the plot above",
            "warn": False,
        }
    ]
    resolution = plot.get("resolution")
    if _is_number(resolution) and resolution > 1:
        notes.append(
            {
                "text": f"the DP histogram's bins are {resolution:,.0f} wide: bars narrower than that show "
                "its mass spread evenly over them, not a finer measurement",
                "warn": True,
            }
        )
    notes += [n for n in _distribution_notes(plot, real) if n["warn"]]
    return {"figure": _figure(distribution_svg, col, plot, title=f"{col} — log view", salt=salt), "notes": notes}


def _distributions_view(report: Mapping[str, Any], figures: bool) -> dict[str, Any]:
    shapes = _metric(report, "column_shapes")
    if shapes is None:
        return {"missing": "the column-shapes check is not in this report"}
    per_column = _details(shapes).get("per_column")
    if not isinstance(per_column, Mapping) or not per_column:
        return {"missing": "column_shapes holds no per-column detail"}
    items = [(str(c), v) for c, v in per_column.items() if isinstance(v, Mapping)]
    # Worst first: the columns to look at come first.
    items.sort(key=lambda cv: cv[1].get("score") if _is_number(cv[1].get("score")) else -1.0)
    has_plot = [c for c, v in items if isinstance(v.get("plot"), Mapping)]
    no_plots = None
    if not has_plot or not figures:
        reason = (
            "figures were turned off for this rendering"
            if not figures
            else "this report holds no per-column plot data (made by an older synthgate)"
        )
        no_plots = f"distribution plots: {reason}"
    cards = []
    for k, (col, v) in enumerate(items):
        plot = v.get("plot")
        if not figures or not isinstance(plot, Mapping) or len(cards) == MAX_DISTRIBUTION_FIGURES:
            continue
        heading = f"{col} — {v.get('metric') or 'score'} {_num(v.get('score'))}"
        cards.append(
            {
                "figure": _figure(distribution_svg, col, plot, title=heading, salt=f"dist-{k}"),
                "notes": _distribution_notes(plot, "real"),
                "log": _log_card(col, v.get("plot_log"), "real", f"dist-log-{k}"),
            }
        )
    possible = _possible(shapes)
    return {
        "missing": None,
        "mean": shapes.get("value"),
        "possible": possible,
        "reference_rows": _details(shapes).get("ceiling_rows"),
        "no_plots": no_plots,
        "cards": cards,
        "with_plot": len(has_plot),
        "headers": ["column", "metric", "score"] + (["holdout reference"] if possible is not None else []) + ["plot"],
        "rows": [
            [c, v.get("metric", ""), _num(v.get("score"))]
            + ([_num(v.get("ceiling"))] if possible is not None else [])
            + ["yes" if isinstance(v.get("plot"), Mapping) else "—"]
            for c, v in items
        ],
    }


def _associations_view(report: Mapping[str, Any], figures: bool) -> dict[str, Any]:
    trends = _metric(report, "pair_trends")
    if trends is None:
        return {"missing": "the pair-trends check is not in this report"}
    d = _details(trends)
    assoc = d.get("association")
    view: dict[str, Any] = {
        "missing": None,
        "score": trends.get("value"),
        "possible": _possible(trends),
        "reference_rows": d.get("ceiling_rows"),
        "no_figure": None,
        "figure": None,
        "measure": None,
    }
    if not figures:
        view["no_figure"] = "association heat maps: figures were turned off for this rendering"
    elif not isinstance(assoc, Mapping):
        view["no_figure"] = (
            "association heat maps: this report holds no association matrices "
            "(made by an older synthgate, or fewer than two columns)"
        )
    else:
        view["measure"] = assoc.get("measure", "association")
        view["figure"] = _figure(association_svg, assoc, salt="assoc")
    lowest = d.get("lowest_pairs")
    with_reference = view["possible"] is not None
    view["lowest_headers"] = ["columns", "score"] + (["holdout reference"] if with_reference else [])
    view["lowest"] = (
        [
            [" × ".join(str(c) for c in p.get("columns", [])), _num(p.get("score"))]
            + ([_num(p.get("ceiling"))] if with_reference else [])
            for p in lowest
            if isinstance(p, Mapping)
        ]
        if isinstance(lowest, list)
        else []
    )
    return view


def _three_way_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """Three-way marginals beside their holdout reference; None when the report lacks them."""
    m = _metric(report, "three_way_marginals")
    possible = _possible(m)
    if m is None or possible is None:
        return None
    lowest = _details(m).get("lowest_triples")
    return {
        "value": m.get("value"),
        "ceiling": possible,
        "gate": m,
        "lowest": [
            [" × ".join(str(c) for c in t.get("columns", [])), _num(t.get("similarity")), _num(t.get("ceiling"))]
            for t in lowest
            if isinstance(t, Mapping)
        ]
        if isinstance(lowest, list)
        else [],
    }


def _ml_view(report: Mapping[str, Any]) -> dict[str, Any]:
    ml = _metric(report, "ml_efficacy")
    if ml is None:
        return {"missing": "the contract names no target column, or the check did not run"}
    d = _details(ml)
    return {
        "missing": None,
        "metric": ml,
        "target": d.get("target"),
        "possible": _possible(ml),
        "error": d.get("error"),
        "rows": [
            [label.upper()] + [_num((d.get(label) or {}).get(k)) for k in ("accuracy", "f1", "auc")]
            for label in ("tstr", "trtr")
        ],
    }


def _attacks_view(report: Mapping[str, Any], figures: bool) -> dict[str, Any]:
    with_attacks = [m for m in _metrics(report) if isinstance(_details(m).get("attacks"), list)]
    if not with_attacks:
        return {"missing": "no membership-inference attack is in this report"}
    # Several gates may read one set of attacks (AUC, TPR at low FPR): one table for them all.
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for m in with_attacks:
        attacks = [a for a in _details(m)["attacks"] if isinstance(a, Mapping)]
        groups.setdefault(json.dumps(attacks, sort_keys=True, default=str), []).append(m)
    out = []
    for k, members in enumerate(groups.values()):
        attacks = [a for a in _details(members[0])["attacks"] if isinstance(a, Mapping)]
        figure = None
        if figures and attacks:
            auc_gate = next(
                (
                    m.get("threshold")
                    for m in members
                    if "auc" in str(m.get("name", "")).lower() and _is_number(m.get("threshold"))
                ),
                None,
            )
            figure = _figure(attacks_svg, attacks, salt=f"mia-{k}", threshold=auc_gate)
        per_attack = next(
            (_details(m)["attack_details"] for m in members if isinstance(_details(m).get("attack_details"), Mapping)),
            None,
        )
        out.append(
            {
                "members": members,
                "figure": figure,
                "details": _flatten(per_attack) if per_attack else [],
                "rows": [
                    [
                        a.get("name", ""),
                        _num(a.get("auc")),
                        _interval(a.get("ci")),
                        _num(a.get("tpr_at_1pct_fpr")),
                        _num(a.get("n_members")),
                        _num(a.get("n_nonmembers")),
                        _num(a.get("tpr_gated")),
                    ]
                    for a in attacks
                ],
            }
        )
    return {"missing": None, "groups": out}


# Keys of an anonymeter-style result's details, in the order they are looked for.
_RATE_KEYS = {
    "main_rate": ("main_rate", "main_success_rate"),
    "main_ci": ("main_ci", "main_success_rate_ci"),
    "control_rate": ("control_rate", "control_success_rate"),
    "control_ci": ("control_ci", "control_success_rate_ci"),
}


def _rate(d: Mapping[str, Any], what: str) -> Any:
    return next((d[k] for k in _RATE_KEYS[what] if k in d), None)


def _anonymeter_view(report: Mapping[str, Any], figures: bool) -> dict[str, Any]:
    risks = [m for m in _metrics(report) if str(m.get("name", "")).startswith(_ANONYMETER_PREFIXES)]
    if not risks:
        return {"missing": "no singling-out, linkability or inference risk is in this report"}
    rows, fig_rows = [], []
    for m in risks:
        d = _details(m)
        row = {
            "metric": m,
            "main": _rate(d, "main_rate"),
            "main_ci": _rate(d, "main_ci"),
            "control": _rate(d, "control_rate"),
            "control_ci": _rate(d, "control_ci"),
        }
        rows.append(row)
        fig_rows.append((str(m.get("name")), row["main"], row["main_ci"], row["control"], row["control_ci"]))
    figure = None
    if figures and any(_is_number(r["metric"].get("value")) or _is_number(r["main"]) for r in rows):
        figure = _figure(rates_svg, fig_rows, salt="anon")
    shown = {k for keys in _RATE_KEYS.values() for k in keys}
    extras = []
    for m in risks:
        extra = [(k, v) for k, v in _flatten(_details(m)) if k not in shown]
        if extra:
            extras.append((m, extra))
    return {"missing": None, "rows": rows, "figure": figure, "extras": extras}


def _distances_view(report: Mapping[str, Any]) -> dict[str, Any]:
    shown = [
        m
        for m in _metrics(report)
        if m.get("kind") == "privacy"
        and not isinstance(_details(m).get("attacks"), list)
        and not str(m.get("name", "")).startswith(_ANONYMETER_PREFIXES)
    ]
    named = [
        m
        for m in _metrics(report)
        if str(m.get("name", "")).startswith(("dcr_share", "nndr", "identical_match")) and m not in shown
    ]
    shown += named
    if not shown:
        return {"missing": "no distance-to-closest-record, NNDR or copy check is in this report"}
    return {"missing": None, "cards": [(m, _flatten(_details(m))) for m in shown]}


def _ledger_view(report: Mapping[str, Any]) -> dict[str, Any]:
    privacy = report.get("privacy")
    if not isinstance(privacy, Mapping):
        return {"missing": "this report holds no privacy ledger"}
    spent, budget = privacy.get("epsilon_spent"), privacy.get("epsilon_budget")
    entries = [e for e in privacy.get("ledger") or [] if isinstance(e, Mapping)]
    if spent is None and not entries:
        return {
            "missing": "no privacy ledger: the synthetic table was made outside this run, so no "
            f"differential-privacy guarantee is claimed (the contract's budget is ε = {_num(budget)})"
        }
    rows = [
        [
            e.get("mechanism"),
            _num(e.get("noise_multiplier")),
            _num(e.get("sample_rate")),
            _num(e.get("steps")),
            _num(e.get("epsilon_alone")),
            e.get("description", ""),
        ]
        for e in entries
    ]
    if entries:
        rows.append(
            [
                "composed total",
                "",
                "",
                "",
                _num(spent),
                f"all mechanisms composed by the {privacy.get('accountant') or ''} accountant "
                f"at δ = {_num(privacy.get('delta'))}",
            ]
        )
    return {
        "missing": None,
        "spent": spent,
        "budget": budget,
        "delta": privacy.get("delta"),
        "accountant": privacy.get("accountant"),
        "adjacency": privacy.get("adjacency") or ADJACENCY,
        "share": spent / budget if _is_number(spent) and _is_number(budget) and budget > 0 else None,
        "rows": rows,
        "row_classes": [""] * len(entries) + ["total"],
    }


# The per-check sentences of ``outside_guarantee`` (``_outside_guarantee``): merged into one.
_METRIC_SENTENCE = re.compile(
    r"^The evaluation metric '([^']*)' is an aggregate computed from the real "
    r"training and holdout rows; it is not covered by epsilon\.$"
)


def _outside_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """The outside-the-guarantee list as prose: the one-per-check sentences of an older report
    merged into one sentence naming every check."""
    sentences = report.get("outside_guarantee")
    if not isinstance(sentences, list) or not sentences:
        return {"sentences": []}
    out: list[str] = []
    merged: list[str] = []
    for s in map(str, sentences):
        match = _METRIC_SENTENCE.match(s)
        if match is None:
            out.append(s)
            continue
        if not merged:
            out.append("")  # where the merged sentence goes
        merged.append(match.group(1))
    if merged:
        out[out.index("")] = _metrics_sentence(merged)
    return {"sentences": out}


def _metrics_sentence(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return (
            f"The evaluation metric {quoted[0]} is an aggregate computed from the real training and "
            "holdout rows; it is not covered by epsilon."
        )
    listed = ", ".join(quoted[:-1]) + " and " + quoted[-1]
    return (
        f"The evaluation metrics {listed} are aggregates computed from the real training and holdout "
        "rows; none of them is covered by epsilon."
    )


def _run_view(report: Mapping[str, Any]) -> dict[str, Any]:
    rows = report.get("rows")
    timings = report.get("timings")
    trows: list[list[str]] = []
    if isinstance(timings, Mapping) and timings:
        total = sum(v for v in timings.values() if _is_number(v))
        trows = [[k, _num(v), f"{v / total:.0%}" if _is_number(v) and total > 0 else "—"] for k, v in timings.items()]
        trows.append(["total", _num(round(total, 3)), "100%" if total > 0 else "—"])
    versions = report.get("versions")
    notes = report.get("notes")
    config = report.get("config")
    return {
        "rows": list(rows.items()) if isinstance(rows, Mapping) and rows else [],
        "timings": trows,
        "timing_classes": [""] * (len(trows) - 1) + ["total"],
        "versions": list(versions.items()) if isinstance(versions, Mapping) and versions else [],
        "notes": [_sentence(n) for n in notes] if isinstance(notes, list) else [],
        "config": _flatten(config) if isinstance(config, Mapping) and config else [],
    }


_TOC = (
    ("gates", "Gates"),
    ("distributions", "Distributions"),
    ("associations", "Associations"),
    ("three-way", "Three-way marginals"),
    ("ml-efficacy", "ML efficacy"),
    ("attacks", "Membership inference"),
    ("reidentification", "Re-identification"),
    ("distances", "Distances"),
    ("ledger", "Privacy ledger"),
    ("outside", "Outside the guarantee"),
    ("run", "Run"),
    ("details", "All details"),
)


# --- the public report's page ---------------------------------------------------------------
#
# A public report (``kind: "public"``, validation.public_report) holds no measured value: gates
# are pass/fail against their contract thresholds, the "real" distributions are the codec's DP
# histograms, the row count is the DP estimate. Its page reuses the ledger and
# outside-the-guarantee sections and draws the rest from those fields only.

_PUBLIC_TOC = (
    ("unit", "Unit of privacy"),
    ("gates", "Gates"),
    ("distributions", "Distributions"),
    ("ledger", "Privacy ledger"),
    ("outside", "Outside the guarantee"),
    ("withheld", "Not published"),
    ("run", "Release"),
)


def _public_facts(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    gates = _gates(report)
    privacy = report.get("privacy") if isinstance(report.get("privacy"), Mapping) else {}
    rows = report.get("rows") if isinstance(report.get("rows"), Mapping) else {}
    spent = privacy.get("epsilon_spent")
    return [
        ("gates passed", f"{sum(1 for g in gates if g.get('passed'))} of {len(gates)}" if gates else "—"),
        ("ε spent", f"{_num(spent)} of {_num(privacy.get('epsilon_budget'))}" if spent is not None else "—"),
        ("δ", _num(privacy.get("delta"))),
        ("training rows (DP estimate)", _num(rows.get("train_dp_estimate"))),
        ("synthetic rows", _num(rows.get("synthetic"))),
    ]


def _public_distributions_view(report: Mapping[str, Any], figures: bool) -> dict[str, Any]:
    dists = report.get("distributions")
    items = [(str(c), v) for c, v in dists.items() if isinstance(v, Mapping)] if isinstance(dists, Mapping) else []
    if not items:
        return {
            "missing": (
                "the release was blocked: no model and no synthetic table were published"
                if not report.get("released")
                else "this report holds no distributions"
            )
        }
    items.sort(key=lambda cv: cv[1].get("score") if _is_number(cv[1].get("score")) else -1.0)
    cards = []
    if figures:
        for k, (col, v) in enumerate(items[:MAX_DISTRIBUTION_FIGURES]):
            heading = f"{col} — similarity {_num(v.get('score'))}"
            log = v.get("log")
            cards.append(
                {
                    "figure": _figure(
                        distribution_svg, col, {**v, "suppressed": 0}, title=heading, salt=f"pub-dist-{k}"
                    ),
                    "notes": _distribution_notes({**v, "suppressed": 0}, "DP estimate"),
                    "log": _log_card(
                        col,
                        {**log, "suppressed": 0} if isinstance(log, Mapping) else None,
                        "DP estimate",
                        f"pub-log-{k}",
                    ),
                }
            )
    return {
        "missing": None,
        "cards": cards,
        "with_plot": len(items),
        "no_plots": None if figures else "distribution plots: figures were turned off for this rendering",
        "rows": [[c, v.get("type", ""), _num(v.get("score"))] for c, v in items],
    }


def _public_release_view(report: Mapping[str, Any]) -> dict[str, Any]:
    model = report.get("model")
    summary = model.get("training_summary") if isinstance(model, Mapping) else None
    excluded, files, versions = report.get("excluded_columns"), report.get("files"), report.get("versions")
    view = {
        "model": model.get("name", "") if isinstance(model, Mapping) else None,
        "summary": _flatten(summary) if isinstance(summary, Mapping) and summary else [],
        "excluded": [str(c) for c in excluded] if isinstance(excluded, list) else [],
        "files": [str(f) for f in files] if isinstance(files, list) else [],
        "versions": list(versions.items()) if isinstance(versions, Mapping) and versions else [],
    }
    view["empty"] = not (view["model"] is not None or view["excluded"] or view["files"] or view["versions"])
    return view


def render_html(report: dict[str, Any], *, figures: bool = True) -> str:
    """One self-contained HTML page for a report dict, rendered from the Jinja2 templates in
    ``validation/templates`` (``owner.html.j2``, ``public.html.j2``).

    Inline CSS and inline SVG figures only: no script, no stylesheet link, no web font, no
    image fetched from anywhere, so the file opens offline and can be mailed as it is. The
    page shows only what the report holds; the templates autoescape every value (figure labels
    are escaped by matplotlib's SVG writer). Sections whose data the report lacks say "not run".

    Args:
        report: a dict from ``build_report`` (or a ``report.json`` read back).
        figures: draw the figures (default); ``False`` gives the tables only, faster.
    """
    common = {
        "report": report,
        "css": Markup(_CSS),
        "ledger": _ledger_view(report),
        "outside": _outside_view(report),
        "decision": _decision_view(report),
    }
    if report.get("kind") == "public":
        privacy = report.get("privacy") if isinstance(report.get("privacy"), Mapping) else {}
        page = _ENV.get_template("public.html.j2").render(
            **common,
            title=f"synthgate public release report — {report.get('table', '')} — {report.get('run_id', '')}",
            eyebrow="synthgate public release report",
            toc_items=_PUBLIC_TOC,
            fact_items=_public_facts(report),
            adjacency=privacy.get("adjacency") or "not stated in this report",
            gates=_gates(report),
            distributions=_public_distributions_view(report, figures),
            release=_public_release_view(report),
        )
        return str(page)
    evaluation = report.get("kind") == "evaluation"
    kind = (
        "evaluation"
        if evaluation
        else ("owner's evaluation (private: never publish)" if report.get("kind") == "owner" else "release")
    )
    three_way = _three_way_view(report)
    page = _ENV.get_template("owner.html.j2").render(
        **common,
        title=f"synthgate {kind} report — {report.get('table', '')} — {report.get('run_id', '')}",
        eyebrow=f"synthgate {kind} report",
        toc_items=[t for t in _TOC if t[0] != "three-way" or three_way is not None],
        fact_items=_facts(report),
        gate_groups=_gate_groups(report),
        distributions=_distributions_view(report, figures),
        associations=_associations_view(report, figures),
        three_way=three_way,
        ml=_ml_view(report),
        attacks=_attacks_view(report, figures),
        anonymeter=_anonymeter_view(report, figures),
        distances=_distances_view(report),
        run=_run_view(report),
        all_details=[(m, _flatten(_details(m))) for m in _metrics(report)],
    )
    return str(page)


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
    write_text_atomically(folder / "report.json", json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False))
    write_text_atomically(folder / "report.html", render_html(clean))
