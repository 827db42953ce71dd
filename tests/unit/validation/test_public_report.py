"""The public report's parts: DP distributions from codec statistics, gates without values,
its page, and the owner's report's owner-only writing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synthgate.errors import OwnerReportError
from synthgate.models.codec import Codec
from synthgate.models.ledger import PrivacyLedger
from synthgate.validation.contract import parse_contract
from synthgate.validation.encoding import canonical_frame
from synthgate.validation.fidelity import column_plot
from synthgate.validation.public_report import dp_distributions, public_gates, public_reasons, write_owner_report
from synthgate.validation.report import render_html
from synthgate.validation.results import GateDecision, MetricResult, decide_release

from .test_gates import small_contract, small_frame


def _exact_state(n: int = 4000) -> tuple[dict, object, object]:
    """A codec fitted on EXACT histograms: its "DP" shares must then equal the rows' own."""
    contract = small_contract()
    frame = small_frame(n, seed=3).select(contract.modelled_columns)
    codec = Codec(contract)
    codec.fit_non_dp(frame, ledger=PrivacyLedger(1e-6))
    return codec.state(), contract, frame


def test_dp_distributions_equal_the_exact_shares_when_the_codec_is_exact() -> None:
    state, contract, frame = _exact_state()
    synthetic = small_frame(500, seed=9).select(contract.modelled_columns)
    dists = dp_distributions(contract, state, synthetic)
    assert list(dists) == contract.modelled_columns
    real = canonical_frame(frame, contract, role="real")
    syn = canonical_frame(synthetic, contract, role="synthetic")
    for name, d in dists.items():
        exact = column_plot(real[name], syn[name], contract, name)
        assert d["labels"] == exact["labels"] and d["synthetic"] == exact["synthetic"], name
        assert d["null_real"] == pytest.approx(exact["null_real"], abs=1e-12), name
        assert d["null_synthetic"] == exact["null_synthetic"], name
        assert exact["suppressed"] == 0  # every bin holds >= 10 rows: the exact shares are all shown
        # One codec bin per integer value and per category: equal to float precision. The continuous
        # column's 128 codec bins straddle the 20 plot bins: mass is spread uniformly within a bin.
        tol = 0.01 if name == "hours" else 1e-12
        np.testing.assert_allclose(d["real"], exact["real"], atol=tol, err_msg=name)
        p = np.append(np.asarray(d["real"]) * (1 - d["null_real"]), d["null_real"])
        q = np.append(np.asarray(d["synthetic"]) * (1 - d["null_synthetic"]), d["null_synthetic"])
        assert d["score"] == pytest.approx(1 - 0.5 * np.abs(p - q).sum())


def test_dp_distributions_read_the_noisy_statistics_not_the_rows() -> None:
    state, contract, _ = _exact_state()
    # Hand-made "DP" statistics: all of age at 17 and 90, job evenly over a/b/c and null.
    state = json.loads(json.dumps(state))
    age = np.zeros(len(state["bin_mass"]["age"]))
    age[0], age[-1] = 0.25, 0.75
    state["bin_mass"]["age"] = age.tolist()
    state["frequencies"]["job"] = [0.25, 0.25, 0.25, 0.25]
    dists = dp_distributions(contract, state, None)
    assert dists["age"]["real"][0] == 0.25 and dists["age"]["real"][-1] == 0.75 and sum(dists["age"]["real"]) == 1
    assert dists["job"]["real"] == pytest.approx([1 / 3] * 3) and dists["job"]["null_real"] == 0.25
    assert "synthetic" not in dists["age"] and "score" not in dists["age"]


def _results() -> list[MetricResult]:
    return [
        MetricResult(
            "dcr_share",
            0.61234,
            0.55,
            False,
            direction="max",
            ci=(0.58765, 0.63321),
            gated_value=0.63321,
            kind="privacy",
            description="closer to train than holdout",
        ),
        MetricResult("column_shapes", 0.91234, 0.8, True, kind="fidelity", description="shapes"),
        MetricResult("nndr", 0.77777, None, True, kind="privacy"),
    ]


def test_public_gates_and_reasons_hold_no_measured_value() -> None:
    results = _results()
    decision = decide_release(results)
    assert "0.6332" in decision.reasons[0]  # the owner's decision says by how much
    gates = public_gates(results)
    assert gates == [
        {
            "name": "dcr_share",
            "kind": "privacy",
            "direction": "max",
            "threshold": 0.55,
            "passed": False,
            "outcome": "fail",
            "description": "closer to train than holdout",
        },
        {
            "name": "column_shapes",
            "kind": "fidelity",
            "direction": "min",
            "threshold": 0.8,
            "passed": True,
            "outcome": "pass",
            "description": "shapes",
        },
    ]
    assert public_reasons(decision, results) == ["dcr_share: failed (must be <= 0.55)"]
    assert public_reasons(GateDecision(False, ["x"]), [results[2]]) == [
        "no gate was evaluated: refusing to release unchecked data"
    ]


def test_public_page_shows_outcomes_and_dp_figures_only() -> None:
    state, contract, _ = _exact_state(1000)
    synthetic = small_frame(300, seed=9).select(contract.modelled_columns)
    results = _results()
    report = {
        "report_version": 1,
        "kind": "public",
        "run_id": "run-7",
        "table": "people",
        "released": False,
        "decision": {"released": False, "reasons": public_reasons(decide_release(results), results)},
        "failed_gates": ["dcr_share"],
        "gates": public_gates(results),
        "privacy": {
            "adjacency": "add/remove one row of the source table",
            "epsilon_spent": 1.5,
            "epsilon_budget": 2.0,
            "delta": 1e-6,
            "accountant": "rdp",
            "ledger": [],
        },
        "rows": {"train_dp_estimate": 1003, "synthetic": 300},
        "distributions": dp_distributions(contract, state, synthetic),
        "outside_guarantee": ["The gate outcomes ..."],
    }
    page = render_html(report)
    assert page == render_html(report)  # the same report, the same bytes
    assert "synthgate public release report" in page and "BLOCKED" in page and "add/remove one row" in page
    assert "real (DP estimate)" in page and page.count("<svg") == len(contract.modelled_columns)
    for private in ("0.6123", "0.5877", "0.6332", "0.9123", "0.7778", "off by"):
        assert private not in page, private
    assert "must be" in page and "≤ 0.55" in page


def test_holdout_references_stay_out_of_the_public_gates() -> None:
    """The holdout references (column shapes, pair trends, 3-way ceiling, TRTR) are figures of private
    rows: like the measured values beside them, the public gates and reasons hold none of them."""
    results = [
        MetricResult(
            "column_shapes",
            0.91234,
            0.8,
            True,
            kind="fidelity",
            details={"ceiling": 0.97123, "ceiling_rows": 345, "per_column": {"a": {"score": 0.9, "ceiling": 0.96543}}},
        ),
        MetricResult("pair_trends", 0.88765, 0.75, True, kind="fidelity", details={"ceiling": 0.95432}),
    ]
    text = json.dumps([public_gates(results), public_reasons(decide_release(results), results)])
    for private in ("ceiling", "0.9712", "0.9654", "0.9543", "345", "possible"):
        assert private not in text, private


def test_owner_report_is_written_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder, hashes = write_owner_report(
            {"run_id": "r1", "rows": {"train": 401}},
            tmp_path / "owner",
            "r1",
            release_folder=tmp_path / "releases" / "r1",
        )
    finally:
        os.umask(old)
    assert folder == (tmp_path / "owner" / "r1").absolute()
    assert set(hashes) == {"report.json", "report.html"}
    for d in (folder.parent, folder):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert json.loads((folder / "report.json").read_text())["rows"] == {"train": 401}
    # Written again (a resumed run): replaced whole.
    write_owner_report({"run_id": "r1", "rows": {"train": 402}}, tmp_path / "owner", "r1")
    assert json.loads((folder / "report.json").read_text())["rows"] == {"train": 402}
    assert sorted(p.name for p in (tmp_path / "owner").iterdir()) == ["r1"]


def test_owner_report_refuses_a_shared_or_published_location(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "r1"
    with pytest.raises(OwnerReportError, match="overlaps the release folder"):
        write_owner_report({}, release / "owner", "r1", release_folder=release)
    with pytest.raises(OwnerReportError, match="overlaps the release folder"):
        write_owner_report({}, tmp_path / "releases", "r1", release_folder=release)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with pytest.raises(OwnerReportError, match=r"open to other users \(mode 755\).*chmod 700"):
        write_owner_report({}, shared, "r1", release_folder=release)
    assert not release.exists() and list(shared.iterdir()) == []


def test_dp_distributions_of_a_published_table_with_a_derived_column() -> None:
    """A released table holds its derived columns too (regenerated at publish); the public report's
    distributions are those of the modelled columns. This crashed a release after its ε was spent."""
    from synthgate.validation.contract import parse_contract
    from synthgate.validation.derived import add_derived_columns

    from .test_gates import COLUMNS

    columns = {
        **COLUMNS,
        "age_next": {"kind": "integer", "min": 18, "max": 91, "derived": {"from": "age", "as": "offset", "offset": 1}},
    }
    contract = parse_contract(
        {"table": "people", "target": "income", "columns": columns, "privacy": {"epsilon": 2.0, "delta": 1e-6}}
    )
    assert "age_next" not in contract.modelled_columns
    frame = small_frame(2000, seed=3).select(contract.modelled_columns)
    codec = Codec(contract)
    codec.fit_non_dp(frame, ledger=PrivacyLedger(1e-6))
    published = add_derived_columns(small_frame(300, seed=4).select(contract.modelled_columns), contract)
    assert "age_next" in published.columns
    dists = dp_distributions(contract, codec.state(), published)
    assert list(dists) == contract.modelled_columns


def test_dp_shares_of_a_zero_inflated_column_split_its_zeros_like_the_owner_plot() -> None:
    """The codec's point mass at 0 is the public plot's "0" bar: with an exact codec, the DP shares
    equal the rows' own (integer and continuous columns starting at 0)."""
    contract = parse_contract(
        {
            "table": "t",
            "columns": {
                "gain": {"kind": "integer", "min": 0, "max": 99_999},
                "amount": {"kind": "continuous", "min": 0, "max": 50},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    rng = np.random.default_rng(4)
    n = 3000
    zero = rng.random(n) < 0.85
    frame = pl.DataFrame(
        {
            "gain": np.where(zero, 0, rng.integers(1, 99_999, n)).astype(np.int64),
            "amount": np.where(rng.random(n) < 0.6, 0.0, np.round(rng.uniform(0.01, 50, n), 2)),
        }
    )
    codec = Codec(contract)
    codec.fit_non_dp(frame, ledger=PrivacyLedger(1e-6))
    dists = dp_distributions(contract, codec.state(), frame)
    real = canonical_frame(frame, contract, role="real")
    for name in ("gain", "amount"):
        exact = column_plot(real[name], real[name], contract, name)
        d = dists[name]
        assert d["labels"][0] == "0" and d["labels"] == exact["labels"], name
        assert d["real"][0] == pytest.approx(exact["real"][0], abs=1e-12), name  # the spike, exactly
        # the other values: codec bins straddle the plot bins, mass spread uniformly within a bin
        np.testing.assert_allclose(d["real"][1:], exact["real"][1:], atol=0.02, err_msg=name)


def _skewed() -> tuple[object, pl.DataFrame]:
    contract = parse_contract(
        {
            "table": "t",
            "columns": {
                "gain": {"kind": "integer", "min": 0, "max": 99_999},
                "age": {"kind": "integer", "min": 17, "max": 90},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    rng = np.random.default_rng(5)
    n = 4000
    amount = np.minimum(np.round(np.exp(rng.normal(np.log(8000), 0.8, n))), 99_999).astype(np.int64)
    frame = pl.DataFrame(
        {"gain": np.where(rng.random(n) < 0.7, 0, np.maximum(amount, 1)), "age": rng.integers(17, 91, n)}
    )
    return contract, frame


def test_dp_log_view_matches_the_owner_log_plot_when_the_codec_is_exact() -> None:
    """The public log view: the codec's histogram moved onto the log-width bins, the published rows
    counted on them, zeros left out. With an exact codec it equals the owner's log plot within the
    spreading of a codec bin; a column without a log view gets none."""
    contract, frame = _skewed()
    codec = Codec(contract)
    codec.fit_non_dp(frame, ledger=PrivacyLedger(1e-6))
    dists = dp_distributions(contract, codec.state(), frame)
    assert "log" not in dists["age"]
    log = dists["gain"]["log"]
    real = canonical_frame(frame, contract, role="real")
    exact = column_plot(real["gain"], real["gain"], contract, "gain", log=True)
    assert log["labels"] == exact["labels"] and log["scale"] == "log"
    assert log["synthetic"] == exact["synthetic"] and log["null_synthetic"] == exact["null_synthetic"]
    truth = exact["synthetic"]  # the rows' own shares (the owner's real side hides bins of < 10 rows)
    assert "0" not in log["labels"] and sum(log["real"]) == pytest.approx(1)  # shares of the non-zero values
    # the codec's bins are ~794 wide (126 between its unit bins at 0 and 99,999): bars wider than that
    # match closely, narrower ones show a codec bin's mass spread over them (the page says so)
    (spec,) = [s for s in codec.numeric if s.name == "gain"]
    assert log["resolution"] == pytest.approx(float(np.max(spec.edges_hi - spec.edges_lo)))
    assert log["resolution"] == pytest.approx(99_998 / 126, rel=1e-6)
    wide = [k for k, label in enumerate(log["labels"]) if label.endswith("k") and "–" in label and k >= 13]
    assert len(wide) >= 5
    np.testing.assert_allclose([log["real"][k] for k in wide], [truth[k] for k in wide], atol=0.01)


def test_dp_log_view_reads_the_noisy_statistics_not_the_rows() -> None:
    """Hand-made "DP" statistics (all mass at the top-code 99,999): the log view's real shares follow
    them, whatever the rows said."""
    contract, frame = _skewed()
    codec = Codec(contract)
    codec.fit_non_dp(frame, ledger=PrivacyLedger(1e-6))
    state = json.loads(json.dumps(codec.state()))
    mass = np.zeros(len(state["bin_mass"]["gain"]))
    mass[-1] = 1.0
    state["bin_mass"]["gain"] = mass.tolist()
    log = dp_distributions(contract, state, None)["gain"]["log"]
    assert log["real"][-1] == 1.0 and sum(log["real"]) == 1.0 and "synthetic" not in log


def test_both_pages_draw_the_log_view_with_its_caveat() -> None:
    from synthgate.validation.fidelity import column_shapes

    contract, frame = _skewed()
    codec = Codec(contract)
    codec.fit_non_dp(frame, ledger=PrivacyLedger(1e-6))
    public = {
        "report_version": 1,
        "kind": "public",
        "run_id": "r",
        "table": "t",
        "released": True,
        "decision": {"released": True, "reasons": []},
        "gates": [],
        "privacy": {"epsilon_spent": 1.0, "epsilon_budget": 1.0, "delta": 1e-6, "ledger": []},
        "rows": {"synthetic": frame.height},
        "distributions": dp_distributions(contract, codec.state(), frame),
    }
    page = render_html(public)
    assert page.count("<svg") == 3 and page.count("gain — log view") == 1
    assert "the DP histogram&#39;s bins are 794 wide" in page
    shapes = column_shapes(frame, frame, contract)
    owner = {
        "run_id": "r",
        "table": "t",
        "released": True,
        "decision": {"released": True, "reasons": []},
        "gates": [],
        "metrics": [shapes.to_dict()],
    }
    page = render_html(owner)
    assert page.count("gain — log view") == 1 and "each bar spans the same ratio of values" in page
    assert "DP histogram" not in page  # the owner's log plot counts the rows themselves
