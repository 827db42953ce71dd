"""The release report: content, HTML, figures, atomic writing, and no private value in either file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from synthgate.validation import plots
from synthgate.validation.report import build_report, render_html, write_report
from synthgate.validation.results import GateDecision, MetricResult, decide_release

from .test_gates import small_contract, small_frame

LEDGER = {
    "accountant": "rdp",
    "epsilon": 1.5,
    "delta": 1e-6,
    "entries": [
        {
            "mechanism": "dp-sgd (discriminator)",
            "noise_multiplier": 1.1,
            "sample_rate": 0.01,
            "steps": 3000,
            "epsilon_alone": 1.4,
            "description": "critic updates on Poisson-sampled batches",
        },
        {
            "mechanism": "gaussian (category counts)",
            "noise_multiplier": 8.0,
            "sample_rate": 1.0,
            "steps": 1,
            "epsilon_alone": 0.3,
            "description": "conditional-vector frequencies",
        },
    ],
}
SECTIONS = (
    "gates",
    "distributions",
    "associations",
    "ml-efficacy",
    "attacks",
    "reidentification",
    "distances",
    "ledger",
    "outside",
    "run",
    "details",
)
# Sections whose content comes from metrics: "not run" when the metric is missing.
METRIC_SECTIONS = ("distributions", "associations", "ml-efficacy", "attacks", "reidentification", "distances")

# A private value that exists only in the raw rows the test "producer" bins below.
SENTINEL_AGE = 87.4321
COUNTRIES = [f"Country-{i:02d}" for i in range(40)]


def _report(results: list[MetricResult], decision: GateDecision, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "run_id": "run-42",
        "table": "people",
        "decision": decision,
        "results": results,
        "ledger": LEDGER,
        "epsilon_budget": 2.0,
        "delta": 1e-6,
        "rows": {"train": 400, "holdout": 200, "synthetic": 400},
        "timings": {"train": 12.5, "checks": 1.25},
        "versions": {"synthgate": "0.1.0", "polars": "2.1.0"},
        "contract_fingerprint": "abc123",
        "config": {"seed": 0, "out": Path("out/run-42")},
        "notes": ["first run"],
    }
    args.update(overrides)
    return build_report(**args)


def _section(page: str, anchor: str) -> str:
    """The HTML of one <section id=anchor>."""
    start = page.index(f'<section id="{anchor}">')
    return page[start : page.index("</section>", start)]


# --- a producer stand-in: aggregates computed from raw rows, as the metric modules do ----------


def _numeric_plot(real: np.ndarray, synthetic: np.ndarray, lo: float, hi: float, bins: int) -> dict[str, Any]:
    edges = np.linspace(lo, hi, bins + 1)
    counts_r, _ = np.histogram(real[~np.isnan(real)], edges)
    counts_s, _ = np.histogram(synthetic[~np.isnan(synthetic)], edges)
    small = (counts_r > 0) & (counts_r < 10)
    return {
        "type": "numeric",
        "labels": [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(bins)],
        "real": (np.where(small, 0, counts_r) / len(real)).tolist(),
        "synthetic": (counts_s / len(synthetic)).tolist(),
        "null_real": float(np.isnan(real).mean()),
        "null_synthetic": float(np.isnan(synthetic).mean()),
        "suppressed": int(small.sum()),
    }


def _categorical_plot(real: list[str], synthetic: list[str], labels: list[str]) -> dict[str, Any]:
    counts_r = np.array([real.count(x) for x in labels])
    small = (counts_r > 0) & (counts_r < 10)
    return {
        "type": "categorical",
        "labels": labels,
        "real": (np.where(small, 0, counts_r) / len(real)).tolist(),
        "synthetic": [synthetic.count(x) / len(synthetic) for x in labels],
        "null_real": 0.0,
        "null_synthetic": 0.0,
        "suppressed": int(small.sum()),
    }


def _full_results(*, blocked: bool) -> list[MetricResult]:
    """Every kind of result the report draws, in the schemas the metric modules produce."""
    rng = np.random.default_rng(7)
    age_r = np.round(rng.uniform(17, 80, 600), 1)
    age_r[3] = SENTINEL_AGE  # the private extreme: lands in a bin, never printed
    age_r[5] = np.nan
    age_s = np.round(rng.uniform(17, 90, 600), 1)
    weights = np.linspace(3, 0.02, len(COUNTRIES))
    country_r = list(rng.choice(COUNTRIES, 900, p=weights / weights.sum()))
    country_s = list(rng.choice(COUNTRIES, 900, p=weights / weights.sum()))
    job_r = list(rng.choice(["clerk", "<b>boss</b>", "nurse"], 300))
    job_s = list(rng.choice(["clerk", "<b>boss</b>", "nurse"], 300))
    per_column = {
        "age": {"metric": "KS complement", "score": 0.91, "plot": _numeric_plot(age_r, age_s, 17, 90, 20)},
        "country": {
            "metric": "TV complement",
            "score": 0.95,
            "plot": _categorical_plot(country_r, country_s, COUNTRIES),
        },
        "job": {"metric": "TV complement", "score": 0.97, "plot": _categorical_plot(job_r, job_s, sorted(set(job_r)))},
    }
    cols = ["age", "country", "job", "income"]
    real_assoc = [[1.0, 0.2, -0.1, 0.4], [0.2, 1.0, 0.05, 0.1], [-0.1, 0.05, 1.0, -0.3], [0.4, 0.1, -0.3, 1.0]]
    syn_assoc = [[1.0, 0.1, -0.2, 0.3], [0.1, 1.0, 0.0, 0.2], [-0.2, 0.0, 1.0, -0.25], [0.3, 0.2, -0.25, 1.0]]
    attacks = [
        {
            "name": "distance",
            "auc": 0.51,
            "ci": [0.49, 0.53],
            "tpr_at_1pct_fpr": 0.012,
            "n_members": 300,
            "n_nonmembers": 300,
            "tpr_gated": 0.02,
        },
        {
            "name": "density ratio",
            "auc": 0.58 if blocked else 0.52,
            "ci": [0.55, 0.61] if blocked else [0.5, 0.54],
            "tpr_at_1pct_fpr": 0.03,
            "n_members": 300,
            "n_nonmembers": 300,
            "tpr_gated": 0.04,
        },
    ]
    worst = max(a["auc"] for a in attacks)
    dcr_hi = 0.7123 if blocked else 0.53
    return [
        MetricResult(
            "identical_match_share",
            0.0,
            0.01,
            True,
            direction="max",
            kind="privacy",
            description="Share of synthetic rows copied from training rows.",
            details={"train_share": 0.0, "holdout_share": 0.0},
        ),
        MetricResult(
            "dcr_share",
            dcr_hi - 0.02,
            0.55,
            not blocked,
            direction="max",
            ci=(dcr_hi - 0.04, dcr_hi),
            gated_value=dcr_hi,
            kind="privacy",
            description="Share closer to train than holdout.",
            details={"closer_to_train": 250, "closer_to_holdout": 150, "ci_method": "Wilson 95%"},
        ),
        MetricResult(
            "nndr",
            0.83,
            None,
            True,
            kind="privacy",
            description="Nearest-neighbour distance ratio.",
            details={"median_train": 0.83, "median_holdout": 0.85},
        ),
        MetricResult(
            "mia_auc",
            worst,
            0.56,
            worst <= 0.56,
            direction="max",
            kind="privacy",
            description="AUC of the strongest membership attack.",
            details={"attacks": attacks},
        ),
        MetricResult(
            "mia_tpr_at_1pct_fpr",
            0.04,
            0.1,
            True,
            direction="max",
            kind="privacy",
            description="TPR at 1% FPR of the strongest attack.",  # reads the same attacks
            details={"attacks": attacks, "attack_details": {"distance": {"neighbours": 1}}},
        ),
        MetricResult(
            "linkability_risk",
            0.0,
            0.1,
            True,
            direction="max",
            kind="privacy",
            description="Linkability risk.",  # the producer's long key names
            details={
                "main_success_rate": 0.031,
                "main_success_rate_ci": [0.02, 0.042],
                "control_success_rate": 0.03,
                "control_success_rate_ci": [0.019, 0.041],
            },
        ),
        MetricResult(
            "singling_out_risk",
            0.01,
            0.1,
            True,
            direction="max",
            ci=(0.0, 0.03),
            gated_value=0.03,
            kind="privacy",
            description="Singling-out risk.",
            details={
                "main_rate": 0.052,
                "control_rate": 0.043,
                "main_ci": [0.04, 0.064],
                "control_ci": [0.033, 0.055],
                "n_attacks": 500,
            },
        ),
        MetricResult(
            "inference_risk[income]",
            0.02,
            0.1,
            True,
            direction="max",
            kind="privacy",
            description="Attribute-inference risk on income.",
            details={"main_rate": 0.71, "control_rate": 0.7},
        ),  # no intervals: rendered anyway
        MetricResult(
            "column_shapes",
            0.9433,
            0.95 if blocked else 0.8,
            not blocked,
            kind="fidelity",
            description="Mean similarity of the columns' distributions.",
            details={"per_column": per_column, "real_rows": 600, "synthetic_rows": 600},
        ),
        MetricResult(
            "pair_trends",
            0.9,
            0.75,
            True,
            kind="fidelity",
            description="Pairs preserved.",
            details={
                "association": {
                    "columns": cols,
                    "real": real_assoc,
                    "synthetic": syn_assoc,
                    "measure": "Pearson / Cramér's V",
                },
                "lowest_pairs": [{"columns": ["age", "income"], "score": 0.81}],
            },
        ),
        MetricResult(
            "ml_efficacy",
            0.8,
            0.85,
            True,
            gated_value=0.9,
            kind="fidelity",
            description="TSTR / TRTR.",
            details={
                "target": "income",
                "tstr": {"accuracy": 0.8, "f1": 0.7, "auc": 0.8},
                "trtr": {"accuracy": 0.85, "f1": 0.75, "auc": 0.88},
                "ratio": 0.9,
            },
        ),
        MetricResult(
            "privacy_budget",
            1.5,
            2.0,
            True,
            direction="max",
            kind="budget",
            description="Epsilon spent within the budget.",
            details={"epsilon_spent": 1.5},
        ),
        MetricResult(
            "contract_is_public",
            0.0,
            0.0,
            True,
            direction="max",
            kind="contract",
            description="No data-derived contract entry.",
            details={"data_derived_columns": []},
        ),
    ]


@pytest.fixture(scope="module")
def blocked_page() -> tuple[dict[str, Any], str]:
    results = _full_results(blocked=True)
    report = _report(results, decide_release(results))
    return report, render_html(report)


@pytest.fixture(scope="module")
def released_page() -> tuple[dict[str, Any], str]:
    results = _full_results(blocked=False)
    report = _report(results, decide_release(results))
    return report, render_html(report)


# --- the report dict -----------------------------------------------------------------------


def test_report_of_a_blocked_release(blocked_page: tuple[dict[str, Any], str]) -> None:
    report, _ = blocked_page
    assert report["released"] is False
    assert report["failed_gates"] == ["dcr_share", "mia_auc", "column_shapes"]
    gate = next(g for g in report["gates"] if g["name"] == "dcr_share")
    assert set(gate) == {
        "name",
        "value",
        "threshold",
        "passed",
        "ci",
        "gated_value",
        "direction",
        "kind",
        "margin",
        "description",
        "outcome",
        "min_rows_to_pass",
        "min_rows_unit",
    }
    assert gate["outcome"] == "fail" and gate["min_rows_to_pass"] is None and gate["min_rows_unit"] is None
    assert gate["margin"] == pytest.approx(0.55 - 0.7123) and len(gate["ci"]) == 2
    assert len(report["gates"]) == 12 and len(report["metrics"]) == 13  # nndr has no gate
    assert report["privacy"]["epsilon_spent"] == 1.5
    assert report["privacy"]["ledger"][0]["steps"] == 3000
    assert report["rows"] == {"train": 400, "holdout": 200, "synthetic": 400}
    assert report["config"]["out"] == "out/run-42"
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN, no numpy types


def test_outside_guarantee_names_validation_split_and_every_metric() -> None:
    results = _full_results(blocked=False)
    text = " ".join(_report(results, decide_release(results))["outside_guarantee"])
    assert "Schema validation" in text and "holdout" in text
    for r in results:
        if r.kind in ("privacy", "fidelity"):
            assert f"'{r.name}'" in text
    assert "privacy_budget" not in text  # reads no private row


def test_inconsistent_inputs_are_refused() -> None:
    failed = MetricResult("dcr_share", 0.7, 0.55, False, direction="max")
    with pytest.raises(ValueError, match="decide_release"):
        _report([failed], GateDecision(True, []))
    with pytest.raises(ValueError, match="entries"):
        no_entries = {"accountant": "rdp", "epsilon": 1.0, "delta": 1e-6}
        _report([failed], decide_release([failed]), ledger=no_entries)
    with pytest.raises(ValueError, match="rows"):
        _report([failed], decide_release([failed]), rows={"train": 1})


def test_an_evaluation_without_ledger_makes_no_dp_claim() -> None:
    results = _full_results(blocked=False)
    report = _report(results, decide_release(results), ledger=None)
    report["kind"] = "evaluation"  # as flows/evaluate.py sets it
    assert report["privacy"]["epsilon_spent"] is None and report["privacy"]["ledger"] == []
    assert report["outside_guarantee"][0].startswith("No privacy ledger")
    page = render_html(report, figures=False)
    assert "PASSED" in page and "RELEASED" not in page
    assert "no privacy ledger" in _section(page, "ledger") and "not run" in _section(page, "ledger")


# --- the page ----------------------------------------------------------------------------------


def test_blocked_page_names_failed_gates_with_values_at_the_top(blocked_page: tuple[dict[str, Any], str]) -> None:
    report, page = blocked_page
    assert "BLOCKED" in page and "RELEASED" not in page
    top = page[: page.index('<section id="gates">')]
    banner = top.split('class="decision blocked"', 1)[1]
    assert '<div class="verdict">BLOCKED</div>' in top
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", banner) if "<td" in r]
    assert len(rows) == 3  # the three failed gates, nothing else
    expected = {
        "dcr_share": ("0.7123", "≤ 0.55", "0.1623 (30% of the threshold)"),
        "mia_auc": ("0.58", "≤ 0.56", "0.02 (4% of the threshold)"),
        "column_shapes": ("0.9433", "≥ 0.95", "0.0067 (1% of the threshold)"),
    }
    for name, (value, must, off_by) in expected.items():
        row = next(r for r in rows if f"<strong>{name}</strong>" in r)
        assert f'<td class="num">{value}</td>' in row, row
        assert f"<td>{must}</td>" in row and f"<td>{off_by}</td>" in row, row
    for name in report["failed_gates"]:
        assert name in banner
    assert "9 of 12" in top  # gates passed, in the key figures


def test_page_is_self_contained(blocked_page: tuple[dict[str, Any], str]) -> None:
    _, page = blocked_page
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"<link\b", page, re.I)  # no stylesheet, font or icon link
    assert "@import" not in page and "url(http" not in page
    assert "http://" not in page and "https://" not in page  # not even an SVG namespace or metadata
    # Every reference points inside the page (anchors, clip paths) or is inline data.
    refs = re.findall(r'\b(?:src|href|xlink:href)\s*=\s*"([^"]*)"', page)
    assert refs and all(r.startswith(("#", "data:image/")) for r in refs), sorted(set(refs))[:5]


def test_every_section_renders(released_page: tuple[dict[str, Any], str]) -> None:
    report, page = released_page
    assert '<div class="verdict">RELEASED</div>' in page and "BLOCKED" not in page
    for anchor in SECTIONS:
        assert "not run" not in _section(page, anchor), anchor
    # Figures: one per plotted column, the heat maps, the attack AUCs, the risk rates.
    assert page.count("<svg") == 3 + 1 + 1 + 1
    assert page.count("<svg") == page.count("</svg>")

    gates = _section(page, "gates")
    for kind in ("Privacy", "Fidelity", "Privacy budget", "Contract"):
        assert f'<tr class="group"><th colspan="8">{kind}' in gates
    assert "[0.49, 0.53]" in gates and "Share closer to train than holdout." in gates

    dist = _section(page, "distributions")
    assert dist.index("age — KS complement 0.91") < dist.index("job — TV complement 0.97")  # worst first
    country_svg = next(s for s in re.findall(r"<svg.*?</svg>", dist, re.S) if "Country-00" in s)
    shown = [c for c in COUNTRIES if f">{c}<" in country_svg]
    assert len(shown) == 15 and "other (25 more)" in country_svg
    assert "40 categories: the 15 largest" in dist
    assert re.search(r"\d+ bins? with fewer than 10 real rows", dist)  # the suppression note
    assert "missing values: real 0.2% · synthetic 0.0%" in dist
    assert "&lt;b&gt;boss&lt;/b&gt;" in dist and "<b>boss</b>" not in page  # labels escaped in SVG

    assoc = _section(page, "associations")
    assert "Pearson / Cramér&#39;s V" in assoc and "synthetic − real" in assoc and "age × income" in assoc

    attacks = _section(page, "attacks")
    assert "density ratio" in attacks and "[0.5, 0.54]" in attacks and '<td class="num">300</td>' in attacks
    assert attacks.count("<th>attack</th>") == 1  # two gates read one set of attacks: one table
    assert "mia_tpr_at_1pct_fpr" in attacks and "distance.neighbours" in attacks
    reid = _section(page, "reidentification")
    assert "5.2%" in reid and "[0.04, 0.064]" in reid and "70.0%" in reid and "n_attacks" in reid
    assert "3.1%" in reid and "[0.02, 0.042]" in reid and "main_success_rate" not in reid
    distances = _section(page, "distances")
    assert "dcr_share" in distances and "nndr" in distances and "median_holdout" in distances
    ledger = _section(page, "ledger")
    assert "dp-sgd (discriminator)" in ledger and "composed total" in ledger and "75.0% of the budget" in ledger
    run = _section(page, "run")
    assert "13.75" in run and "polars" in run and "First run" in run
    assert "(drawn as a figure above)" in _section(page, "details")


def test_sections_say_not_run_when_their_data_is_absent() -> None:
    # A blocked run whose checks ran only in part: the governance gates, no metric.
    partial = [
        MetricResult("privacy_budget", 2.5, 2.0, False, direction="max", kind="budget"),
        MetricResult("contract_is_public", 0.0, 0.0, True, direction="max", kind="contract"),
    ]
    page = render_html(_report(partial, decide_release(partial)))
    for anchor in METRIC_SECTIONS:
        assert "not run" in _section(page, anchor), anchor
    assert "privacy_budget" in page.split('<section id="gates">')[0]
    assert "<svg" not in page

    # Metrics from an older synthgate: no plot, no association, no attack.
    old = [
        MetricResult("column_shapes", 0.9, 0.8, True, details={"per_column": {"age": {"metric": "KS", "score": 0.9}}}),
        MetricResult("pair_trends", 0.9, 0.75, True, details={"pairs": 3}),
    ]
    page = render_html(_report(old, decide_release(old), ledger=None))
    assert "not run — distribution plots" in _section(page, "distributions")
    assert "not run — association heat maps" in _section(page, "associations")
    assert "<td>age</td>" in _section(page, "distributions")  # the score table still shows

    # A bare or truncated report.json from an older version.
    for report in ({}, {"released": False, "run_id": "old"}, {"released": True, "gates": None, "metrics": None}):
        page = render_html(report)
        for anchor in SECTIONS:
            assert f'<section id="{anchor}">' in page
        assert page.count("not run") >= len(SECTIONS) - 1, report


def test_a_malformed_figure_is_reported_not_fatal() -> None:
    bad = {"type": "numeric", "labels": ["0–10", "10–20"], "real": [0.5], "synthetic": [0.5, 0.5]}
    shapes = MetricResult(
        "column_shapes", 0.9, 0.8, True, details={"per_column": {"x": {"metric": "KS", "score": 0.9, "plot": bad}}}
    )
    page = render_html(_report([shapes], decide_release([shapes])))
    assert "figure not drawn" in page and "[&#39;real&#39;] must be a list of 2 shares" in page


def test_plot_inputs_are_checked() -> None:
    good = {"type": "categorical", "labels": ["a", "b"], "real": [0.5, 0.5], "synthetic": [0.4, 0.6]}
    assert plots.check_plot(good)["suppressed"] == 0
    with pytest.raises(ValueError, match="'type'.*'numeric' or 'categorical'. Got 'pie'"):
        plots.check_plot({**good, "type": "pie"})
    with pytest.raises(ValueError, match=r"\['synthetic'\]\[1\] must be a finite number. Got 'x'"):
        plots.check_plot({**good, "synthetic": [0.4, "x"]})
    with pytest.raises(ValueError, match=r"must be a 2x2 matrix"):
        plots.check_association({"columns": ["a", "b"], "real": [[1.0]], "synthetic": [[1, 0], [0, 1]]})
    labels, real, syn = plots.top_categories([str(i) for i in range(20)], [i / 190 for i in range(20)], [0.05] * 20)
    assert labels[:2] == ["19", "18"] and labels[-1] == "other (5 more)"
    assert sum(real) == pytest.approx(1.0) and sum(syn) == pytest.approx(1.0)


def test_released_report_and_escaping() -> None:
    per_column = {"a<b": {"metric": "KS complement", "score": 0.9}}
    ok = MetricResult("column_shapes", 0.9, 0.8, True, details={"per_column": per_column})
    report = _report([ok], decide_release([ok]), notes=["<script>alert(1)</script>"])
    page = render_html(report)
    assert "RELEASED" in page and "BLOCKED" not in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&lt;b" in page


def test_non_finite_values_become_null() -> None:
    r = MetricResult("ml_efficacy", float("nan"), 0.85, False, gated_value=float("nan"))
    report = _report([r], decide_release([r]))
    assert report["metrics"][0]["value"] is None
    assert "not measurable" in render_html(report, figures=False)


def test_blocked_without_gates_shows_the_reason() -> None:
    page = render_html(_report([], decide_release([])))
    assert "BLOCKED" in page and "no gate was evaluated" in page


# --- writing and privacy ----------------------------------------------------------------------


def test_write_report_is_atomic_and_round_trips(tmp_path: Path) -> None:
    shapes = MetricResult(
        "column_shapes",
        0.9,
        0.8,
        True,
        details={
            "per_column": {
                "x": {
                    "score": 0.9,
                    "plot": {"type": "categorical", "labels": ["a", "b"], "real": [0.5, 0.5], "synthetic": [0.4, 0.6]},
                }
            }
        },
    )
    report = _report([shapes], decide_release([shapes]))
    page = render_html(report)
    folder = tmp_path / "release" / "run-42"
    write_report(report, folder)
    write_report(report, folder)  # overwriting is fine
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert json.loads((folder / "report.json").read_text(encoding="utf-8")) == report
    assert (folder / "report.html").read_text(encoding="utf-8") == page


def test_the_page_adds_nothing_beyond_the_report(tmp_path: Path, blocked_page: tuple[dict[str, Any], str]) -> None:
    """A private extreme used by the producer's histogram reaches neither file."""
    report, _ = blocked_page
    write_report(report, tmp_path)
    raw_json = (tmp_path / "report.json").read_text(encoding="utf-8")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    # What a reader sees: text content, figure labels and tick labels included (tags and
    # their attributes, e.g. SVG path geometry, stripped).
    visible = re.sub(r"<[^>]+>", " ", page)
    assert "87.43" not in raw_json and "87.43" not in visible
    assert "Country-" in visible and "0.91" in visible  # the page does show the report's aggregates
    # The page is a function of report.json alone: rendering it read back gives the same
    # bytes (no clock, no random figure ids, nothing read from elsewhere).
    assert page == render_html(json.loads(raw_json))


def test_no_private_value_reaches_the_report(tmp_path: Path) -> None:
    """Sentinels planted in train (an impossible number, an unknown category) never appear."""
    contract = small_contract()
    train = small_frame(400, 1)
    sentinel_category = "Sentinel-Job-7f3a9c"
    row = pl.int_range(pl.len())
    train = train.with_columns(
        pl.when(row == 5).then(98765.0).otherwise(pl.col("hours")).alias("hours"),
        pl.when(row == 9).then(pl.lit(sentinel_category)).otherwise(pl.col("job")).alias("job"),
    )
    holdout, synthetic = small_frame(200, 2), train  # the copy carries the sentinels too
    from synthgate.validation.gates import run_checks

    results = run_checks(train, holdout, synthetic, contract, epsilon_spent=1.5, seed=0)
    report = _report(results, decide_release(results))
    write_report(report, tmp_path)
    for name in ("report.json", "report.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert not re.search(r"(?<![0-9.])98765(?![0-9])", text), name
        assert sentinel_category.lower() not in text.lower(), name


def test_the_unit_of_privacy_is_stated_in_the_json_and_the_page(released_page: tuple[dict[str, Any], str]) -> None:
    """Issue 18 item 7: report.json's privacy.adjacency and the page's ledger section say that ε is for
    adding or removing one row of the source table, and what stays outside the guarantee."""
    report, page = released_page
    assert "one row of the source table" in report["privacy"]["adjacency"]
    ledger = _section(page, "ledger")
    assert "Unit of privacy: add or remove one row of the source table" in ledger
    assert "validation outcome and the release decision" in ledger and "Threat model" in ledger


def test_a_wide_table_draws_the_least_similar_columns_and_scores_them_all() -> None:
    # 70 columns with plot data: 48 figures (the least similar first), every column in the table.
    from synthgate.validation.report import MAX_DISTRIBUTION_FIGURES

    rng = np.random.default_rng(0)
    per_column = {}
    for i in range(70):
        plot = _numeric_plot(rng.normal(0, 1, 200), rng.normal(0, 1, 200), -4, 4, 8)
        per_column[f"c{i:02d}"] = {"metric": "KS", "score": round(0.5 + i / 200, 3), "plot": plot}
    shapes = MetricResult("column_shapes", 0.7, 0.8, False, details={"per_column": per_column})
    section = _section(render_html(_report([shapes], decide_release([shapes]))), "distributions")
    assert MAX_DISTRIBUTION_FIGURES == 48 and section.count("<figure>") == 48
    assert "48 of 70 columns drawn, the least similar first" in section
    assert "c00 — KS" in section and "c47 — KS" in section and "c48 — KS" not in section
    assert all(f"<td>c{i:02d}</td>" in section for i in range(70))


# --- the pages come from Jinja2 templates (autoescaped); report content (issue 22 item 6) -------


def test_the_pages_are_rendered_from_autoescaped_templates() -> None:
    """Every template of the package autoescapes, and a hostile value in any field a template
    prints (table, run id, gate name, description, note, reason) arrives escaped."""
    from synthgate.validation import report as module

    names = module._ENV.list_templates()
    assert {"owner.html.j2", "public.html.j2", "macros.html.j2", "shared.html.j2", "base.html.j2"} <= set(names)
    for name in names:
        assert module._ENV.autoescape is True or module._ENV.autoescape(name), name
    evil = '<img src=x onerror="alert(1)">'
    results = [MetricResult(evil, 0.2, 0.1, False, direction="max", kind="privacy", description=evil)]
    report = _report(results, GateDecision(released=False, reasons=[evil]), table=evil, run_id=evil, notes=[evil])
    for kind in ("owner", "public"):
        page = render_html({**report, "kind": kind})
        assert "<img" not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page, kind


def test_fidelity_figures_stand_beside_their_holdout_reference() -> None:
    """Three-way marginals: the similarity "of a possible" holdout ceiling, in the gates table and
    its own section; ML efficacy: the TSTR AUC of a possible TRTR AUC."""
    results = _full_results(blocked=False) + [
        MetricResult(
            "three_way_marginals",
            0.93,
            0.9,
            True,
            gated_value=0.93 / 0.98,
            kind="fidelity",
            description="Triples against the holdout ceiling.",
            details={
                "ceiling": 0.98,
                "ratio": 0.93 / 0.98,
                "lowest_triples": [{"columns": ["age", "job", "country"], "similarity": 0.81, "ceiling": 0.9}],
            },
        ),
    ]
    page = render_html(_report(results, decide_release(results)))
    gates = _section(page, "gates")
    row = re.search(r"<tr[^>]*><td><strong>three_way_marginals</strong>.*?</tr>", gates, re.S)
    assert row is not None and "0.93 of a possible 0.98" in row.group(0) and "0.949" in row.group(0)
    ml = re.search(r"<tr[^>]*><td><strong>ml_efficacy</strong>.*?</tr>", gates, re.S)
    assert ml is not None and "0.8 of a possible 0.88" in ml.group(0)
    three = _section(page, "three-way")
    assert "<strong>0.93</strong> of a possible <strong>0.98</strong>" in three
    assert "age × job × country" in three and "0.81" in three and "0.9" in three
    assert '<a href="#three-way">' in page
    # a report without the check has neither the section nor its link
    results = _full_results(blocked=False)
    page = render_html(_report(results, decide_release(results)))
    assert 'id="three-way"' not in page and '<a href="#three-way">' not in page


def test_column_shapes_and_pair_trends_stand_beside_their_holdout_reference() -> None:
    """Column shapes and pair trends with a holdout reference (``details["ceiling"]``): "of a possible"
    in the gates table and in their sections, the per-column and per-pair references in the tables.
    Their public counterparts hold no measured value, so no reference either (test_public_report)."""
    results = _full_results(blocked=False)
    for r in results:
        if r.name == "column_shapes":
            r.details["ceiling"], r.details["ceiling_rows"] = 0.9711, 200
            for k, col in enumerate(r.details["per_column"].values()):
                col["ceiling"] = 0.96 + k / 1000
        if r.name == "pair_trends":
            r.details["ceiling"], r.details["ceiling_rows"] = 0.9522, 200
            r.details["lowest_pairs"][0]["ceiling"] = 0.9377
    page = render_html(_report(results, decide_release(results)))
    gates = _section(page, "gates")
    for name, text in (("column_shapes", "0.9433 of a possible 0.9711"), ("pair_trends", "0.9 of a possible 0.9522")):
        row = re.search(rf"<tr[^>]*><td><strong>{name}</strong>.*?</tr>", gates, re.S)
        assert row is not None and text in row.group(0), name
    dist = _section(page, "distributions")
    assert "<strong>0.9433</strong> of a possible <strong>0.9711</strong>" in dist and "(200 holdout rows)" in dist
    assert '<th class="num">holdout reference</th>' in dist and "0.96" in dist
    assoc = _section(page, "associations")
    assert "<strong>0.9</strong> of a possible <strong>0.9522</strong>" in assoc
    assert "holdout reference" in assoc and "0.9377" in assoc
    # an older report (no reference): neither the words nor the extra columns
    page = render_html(_report(_full_results(blocked=False), decide_release(_full_results(blocked=False))))
    for anchor in ("distributions", "associations"):
        assert "of a possible" not in _section(page, anchor) and "holdout reference" not in _section(page, anchor)
    row = re.search(r"<tr[^>]*><td><strong>column_shapes</strong>.*?</tr>", _section(page, "gates"), re.S)
    assert row is not None and "of a possible" not in row.group(0)


def test_outside_the_guarantee_and_notes_read_as_prose(released_page: tuple[dict[str, Any], str]) -> None:
    report, page = released_page
    outside = _section(page, "outside")
    assert "<li>" not in outside and "<ul>" not in outside  # a paragraph, not a bullet per check
    named = [r["name"] for r in report["metrics"] if r["kind"] in ("privacy", "fidelity")]
    assert outside.count("The evaluation metric") == 1
    assert "The evaluation metrics " + ", ".join(f"&#39;{n}&#39;" for n in named[:-1]) in outside
    assert f" and &#39;{named[-1]}&#39; are aggregates" in outside and "Schema validation" in outside
    run = _section(page, "run")
    assert '<p class="prose">First run.</p>' in run  # a note as a sentence
