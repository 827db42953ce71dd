"""The release report: content, HTML, atomic writing, and no private value in either file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from validation.gates import run_checks
from validation.report import build_report, render_html, write_report
from validation.results import GateDecision, MetricResult, decide_release

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


def _report(
    results: list[MetricResult], decision: GateDecision, **overrides: Any
) -> dict[str, Any]:
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


@pytest.fixture(scope="module")
def blocked() -> tuple[list[MetricResult], GateDecision]:
    """Checks of a synthetic table that copies its training rows: blocked."""
    contract = small_contract()
    train, holdout = small_frame(400, 1), small_frame(200, 2)
    results = run_checks(train, holdout, train, contract, epsilon_spent=1.5, seed=0)
    return results, decide_release(results)


def test_report_of_a_blocked_release(blocked: tuple[list[MetricResult], GateDecision]) -> None:
    results, decision = blocked
    report = _report(results, decision)
    assert report["released"] is False
    assert {"identical_match_share", "dcr_share"} <= set(report["failed_gates"])
    assert report["decision"]["reasons"] == decision.reasons
    gate = next(g for g in report["gates"] if g["name"] == "dcr_share")
    assert set(gate) == {
        "name", "value", "threshold", "passed", "ci", "gated_value", "direction", "kind",
        "margin", "description",
    }
    assert gate["margin"] < 0 and len(gate["ci"]) == 2
    assert len(report["metrics"]) == len(results)
    assert report["privacy"]["epsilon_spent"] == 1.5
    assert report["privacy"]["accountant"] == "rdp"
    assert report["privacy"]["ledger"][0]["steps"] == 3000
    assert report["rows"] == {"train": 400, "holdout": 200, "synthetic": 400}
    assert report["config"]["out"] == "out/run-42"
    # Strict JSON: no NaN, no numpy types.
    json.dumps(report, allow_nan=False)

    page = render_html(report)
    assert "BLOCKED" in page and "RELEASED" not in page
    banner = page.split('class="banner blocked"', 1)[1].split("</div>", 1)[0]
    for name in report["failed_gates"]:
        assert name in banner
    assert "off by" in banner
    for heading in ("Gates", "Privacy ledger", "Rows", "Column shapes", "ML efficacy",
                    "Timings", "Versions", "Outside the privacy guarantee"):
        assert f"<h2>{heading}" in page
    assert "dp-sgd (discriminator)" in page
    assert "<script" not in page and "http" not in page  # self-contained


def test_outside_guarantee_names_validation_split_and_every_metric(
    blocked: tuple[list[MetricResult], GateDecision],
) -> None:
    results, decision = blocked
    sentences = _report(results, decision)["outside_guarantee"]
    text = " ".join(sentences)
    assert "Schema validation" in text and "holdout" in text
    for r in results:
        if r.kind in ("privacy", "fidelity"):
            assert f"'{r.name}'" in text
    assert "privacy_budget" not in text  # reads no private row


def test_released_report_and_escaping() -> None:
    per_column = {"a<b": {"metric": "KS complement", "score": 0.9}}
    ok = MetricResult("column_shapes", 0.9, 0.8, True, details={"per_column": per_column})
    report = _report([ok], decide_release([ok]), notes=["<script>alert(1)</script>"])
    page = render_html(report)
    assert "RELEASED" in page and "BLOCKED" not in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&lt;b" in page


def test_inconsistent_inputs_are_refused() -> None:
    failed = MetricResult("dcr_share", 0.7, 0.55, False, direction="max")
    with pytest.raises(ValueError, match="decide_release"):
        _report([failed], GateDecision(True, []))
    with pytest.raises(ValueError, match="entries"):
        no_entries = {"accountant": "rdp", "epsilon": 1.0, "delta": 1e-6}
        _report([failed], decide_release([failed]), ledger=no_entries)
    with pytest.raises(ValueError, match="rows"):
        _report([failed], decide_release([failed]), rows={"train": 1})


def test_non_finite_values_become_null() -> None:
    r = MetricResult("ml_efficacy", float("nan"), 0.85, False, gated_value=float("nan"))
    report = _report([r], decide_release([r]))
    assert report["metrics"][0]["value"] is None
    assert "n/a" in render_html(report) or "—" in render_html(report)


def test_write_report_is_atomic_and_round_trips(
    tmp_path: Path, blocked: tuple[list[MetricResult], GateDecision]
) -> None:
    results, decision = blocked
    report = _report(results, decision)
    folder = tmp_path / "release" / "run-42"
    write_report(report, folder)
    write_report(report, folder)  # overwriting is fine
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert json.loads((folder / "report.json").read_text(encoding="utf-8")) == report
    assert (folder / "report.html").read_text(encoding="utf-8") == render_html(report)


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
    results = run_checks(train, holdout, synthetic, contract, epsilon_spent=1.5, seed=0)
    report = _report(results, decide_release(results))
    write_report(report, tmp_path)
    for name in ("report.json", "report.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert not re.search(r"(?<![0-9.])98765(?![0-9])", text), name
        assert sentinel_category.lower() not in text.lower(), name


def test_blocked_without_gates_shows_the_reason() -> None:
    report = _report([], decide_release([]))
    page = render_html(report)
    assert "BLOCKED" in page and "no gate was evaluated" in page
