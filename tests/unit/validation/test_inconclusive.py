"""The inconclusive outcome: a privacy gate that fails only because the rows are too few to pass
anything says so, with the rows it would need, and blocks only where the contract says so; a
"fail" needs evidence of a leak, judged family-wise over a release's privacy gates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from synthgate.validation.anonymeter import _power_floor, attack_risk, inference_risk
from synthgate.validation.contract import Contract
from synthgate.validation.mia import auc_power_floor, roc_summary
from synthgate.validation.privacy import _dcr_power_floor
from synthgate.validation.results import (
    MetricResult,
    decide_release,
    family_evidence,
    min_rows_to_pass,
    upper_bound_gate,
)


def _gate(passed_value: float, floor: float | None, threshold: float = 0.1) -> MetricResult:
    return upper_bound_gate(
        "risk",
        0.0,
        (0.0, passed_value),
        threshold,
        description="",
        details={},
        power_floor=floor,
        min_rows=4000 if floor else None,
    )


def test_outcomes_and_decision() -> None:
    ok, fail, inconclusive = _gate(0.05, 0.02), _gate(0.15, 0.05), _gate(0.15, 0.12)
    assert (ok.outcome, fail.outcome, inconclusive.outcome) == ("pass", "fail", "inconclusive")
    assert inconclusive.to_dict()["outcome"] == "inconclusive"
    # default: an inconclusive gate does not block; the decision lists it as limited by rows
    let_through = decide_release([ok, inconclusive])
    assert let_through.released and not let_through.reasons
    assert len(let_through.row_limited) == 1 and "4000 rows per side" in let_through.row_limited[0]
    assert let_through.to_dict()["row_limited"] == let_through.row_limited
    strict = decide_release([ok, inconclusive], block_inconclusive=True)
    assert not strict.released and "inconclusive" in strict.reasons[0] and "4000 rows per side" in strict.reasons[0]
    assert not decide_release([ok, fail, inconclusive]).released  # a real fail always blocks
    assert [r.split(":")[0] for r in decide_release([ok, fail, inconclusive]).reasons] == ["risk"]


def test_the_reason_names_what_min_rows_to_pass_counts() -> None:
    """An attack whose targets the rows do not cap gives min_rows_to_pass in control attacks: the
    decision's reason says so instead of "rows per side"."""
    attacks = upper_bound_gate(
        "inference_risk[x]", 0.0, (0.0, 0.3), 0.1, description="", power_floor=0.2, min_rows=900,
        details={"min_rows_unit": "control attacks"},
    )  # fmt: skip
    (reason,) = decide_release([attacks], block_inconclusive=True).reasons
    assert "about 900 control attacks" in reason and "rows per side" not in reason


def test_an_interval_holding_both_no_leak_and_the_gate_is_inconclusive() -> None:
    def gate(lo: float, hi: float, floor: float = 0.05) -> MetricResult:
        return upper_bound_gate(
            "r", (lo + hi) / 2, (lo, hi), 0.1, description="", details={}, power_floor=floor, ideal=0.0
        )

    assert gate(0.0, 0.14).outcome == "inconclusive"  # consistent with no leak and with a leak past 0.1
    assert gate(0.02, 0.14).outcome == "fail"  # the interval excludes no leak: evidence of a leak
    assert gate(0.0, 0.08).outcome == "pass"
    # evidence of a leak blocks however few the rows: a floor past the gate does not excuse it
    assert gate(0.05, 0.40, floor=0.3).outcome == "fail"
    assert gate(0.0, 0.40, floor=0.3).outcome == "inconclusive"


def _risk(lo: float, hi: float, value: float) -> MetricResult:
    return upper_bound_gate("r", value, (lo, hi), 0.1, description="", details={}, ideal=0.0)


def test_evidence_is_judged_family_wise_over_the_privacy_gates() -> None:
    """With K privacy gates a "fail" needs the interval at 1 − 0.05/K to exclude no leak: each arm
    scaled by z(1 − 0.025/K) / z(0.975) (K = 8: 2.734 / 1.960)."""
    weak = _risk(0.02, 0.16, 0.09)  # excludes 0 at 95%, not at the family's level
    strong = _risk(0.06, 0.20, 0.13)
    filler = [_risk(0.0, 0.05, 0.01) for _ in range(6)]
    assert weak.outcome == strong.outcome == "fail"  # alone: a family of one
    family = family_evidence([weak, strong, *filler])
    assert [r.family for r in family] == [8] * 8
    assert family_evidence(family) == family  # idempotent: it sets the size, it does not compound it
    w, s = family[0], family[1]
    scale = 2.7344 / 1.9600
    assert w.evidence_ci == pytest.approx(
        (max(0.0, 0.09 - 0.07 * scale), 0.09 + 0.07 * scale), abs=1e-3
    )  # clipped at 0
    assert (w.outcome, s.outcome) == ("inconclusive", "fail")
    assert w.to_dict()["evidence_ci"] == pytest.approx(list(w.evidence_ci))
    decision = decide_release([weak, strong, *filler])  # decide_release applies the family itself
    assert not decision.released and [r.split(":")[0] for r in decision.reasons] == ["r"]
    assert len(decision.reasons) == 1 and len(decision.row_limited) == 1
    # fidelity gates and figures without an interval are not in the family
    quality = MetricResult(name="q", value=0.9, threshold=0.8, passed=True)
    assert family_evidence([weak, quality])[0].family == 1


def test_the_worst_of_several_is_widened_from_its_own_level() -> None:
    """An evidence gate on the worst of 6 subsets: its interval is already simultaneous (1 − 0.05/6);
    in a family of 8 it goes to 1 − 0.05/48. A worst-of-3 AUC with 95% intervals goes to 1 − 0.05/24."""
    subset = MetricResult(
        name="dcr_share_worst_subset", value=0.60, threshold=0.55, passed=False, direction="max",
        ci=(0.57, 0.63), gated_value=0.57, kind="privacy", ideal=0.5, estimates=6,
        ci_level=1 - 0.05 / 6, evidence=True, family=8,
    )  # fmt: skip
    from scipy.stats import norm

    scale = norm.ppf(1 - 0.025 / 48) / norm.ppf(1 - 0.025 / 6)
    assert subset.evidence_ci == pytest.approx((0.60 - 0.03 * scale, 0.60 + 0.03 * scale))
    assert subset.outcome == "fail"  # 0.60 − 0.03 × 1.24 = 0.563 is still past 0.55
    assert replace(subset, ci=(0.555, 0.645), gated_value=0.555).outcome == "inconclusive"
    auc = upper_bound_gate("mia_auc", 0.59, (0.54, 0.64), 0.55, description="", details={}, ideal=0.5, estimates=3)
    assert auc.evidence_ci == pytest.approx(
        (0.59 - 0.05 * norm.ppf(1 - 0.025 / 3) / 1.96, 0.59 + 0.05 * norm.ppf(1 - 0.025 / 3) / 1.96), abs=1e-3
    )


def test_min_rows_to_pass_finds_the_smallest_size() -> None:
    floor = lambda n: 1.0 / np.sqrt(n)  # noqa: E731
    n = min_rows_to_pass(floor, 0.01, start=10)
    assert n is not None and floor(n) <= 0.01 and floor(int(n * 0.98)) > 0.01  # within the 1% resolution
    assert min_rows_to_pass(floor, 0.01, start=20_000) == 20_000
    assert min_rows_to_pass(lambda n: 1.0, 0.5, start=10, limit=1000) is None


def test_anonymeter_floor_is_the_no_leak_bound_and_its_row_advice_holds() -> None:
    # A predictable secret: the control guesses 90% right. The main attack does exactly as well (no leak).
    est = attack_risk(900, 1000, 900, 1000)
    floor, need = _power_floor(est, max_risk=0.10, confidence=0.95)
    assert floor == pytest.approx(est.ci[1], abs=1e-9)  # no leak: the floor IS the bound observed
    assert floor > 0.10 and need is not None and need > 1000
    at_need = attack_risk(int(0.9 * need), need, int(0.9 * need), need)
    assert at_need.ci[1] <= 0.10 + 1e-3  # the advised size clears the gate (rounding of 0.9·n aside)


def test_dcr_floor_at_chance_and_its_row_advice() -> None:
    floor, need = _dcr_power_floor(60, 0.5, 0.95, 0.55)
    assert floor > 0.55 and need is not None
    assert _dcr_power_floor(need, 0.5, 0.95, 0.55)[0] <= 0.55
    assert _dcr_power_floor(20_000, 0.5, 0.95, 0.55) == (
        pytest.approx(_dcr_power_floor(20_000, 0.5, 0.95, 0.55)[0]),
        None,
    )


def test_auc_floor_matches_the_delong_bound_of_signal_free_scores() -> None:
    """Scores with no signal: the mean DeLong upper bound over 200 seeded repetitions is within
    0.01 of the Hanley–McNeil floor at AUC 0.5 (the floor is an estimate; tolerance stated)."""
    rng = np.random.default_rng(0)
    highs = [roc_summary(rng.normal(size=150), rng.normal(size=150))[1][1] for _ in range(200)]
    floor, need = auc_power_floor(150, 150, 0.6)
    assert abs(float(np.mean(highs)) - floor) < 0.01, (float(np.mean(highs)), floor)
    assert need is None  # 150 per side is enough for the 0.60 gate
    small_floor, small_need = auc_power_floor(20, 20, 0.6)
    assert small_floor > 0.6 and small_need is not None and auc_power_floor(small_need, small_need, 0.6)[0] <= 0.6


def test_fresh_real_rows_on_a_predictable_secret_are_inconclusive_not_failed(
    adult: pl.DataFrame, adult_contract: Contract
) -> None:
    """Adult's income is ~76% guessable without any data: at 2,000 inference attacks per side the
    interval alone is wider than the 0.10 gate, so fresh real rows (no leak at all) cannot pass:
    the result must say inconclusive, with a row count that would do, not a plain fail."""
    rows = adult.select(adult_contract.modelled_columns).sample(n=6000, seed=31, shuffle=True)
    train, control, fresh = rows[:2000], rows[2000:4000], rows[4000:]
    r = inference_risk(train, control, fresh, adult_contract, secret="income", seed=3, n_attacks=2000, max_risk=0.10)
    assert not r.passed
    assert r.outcome == "inconclusive", (r.gated_value, r.power_floor)
    assert r.details["min_rows_to_pass"] > 2000 and r.details["min_rows_unit"] == "rows per side"


def test_worst_of_several_estimates_is_inconclusive_unless_a_simultaneous_interval_excludes_no_leak() -> None:
    # the per-estimate interval (0.51, 0.57) excludes 0.5, but as the worst of K shares a
    # Bonferroni interval over K may not: then the block is limited by rows, not evidence of a leak
    def gate(ideal_ci: tuple[float, float] | None) -> MetricResult:
        return upper_bound_gate(
            "dcr_share_worst_subset",
            0.54,
            (0.51, 0.57),
            0.55,
            description="",
            details={},
            power_floor=0.54,
            ideal=0.5,
            ideal_ci=ideal_ci,
        )

    assert gate(None).outcome == "fail"
    assert gate((0.495, 0.58)).outcome == "inconclusive"
    assert gate((0.505, 0.58)).outcome == "fail"
    assert gate((0.495, 0.58)).to_dict()["ideal_ci"] == [0.495, 0.58]


def test_dcr_floor_of_the_worst_of_k_shares_is_higher_and_needs_more_rows() -> None:
    one, need_one = _dcr_power_floor(464, 2 / 3, 0.95, 0.55)
    seven, need_seven = _dcr_power_floor(464, 2 / 3, 0.95, 0.55, estimates=7)
    assert one < 0.55 < seven and need_one is None  # one share at chance clears at 464 rows, the worst of 7 does not
    assert need_seven is not None and need_seven > 464
    assert _dcr_power_floor(need_seven, 2 / 3, 0.95, 0.55, estimates=7)[0] <= 0.55
    assert _dcr_power_floor(464, 2 / 3, 0.95, 0.55, estimates=1) == (one, need_one)


def test_reports_and_decision_record_say_inconclusive_apart_from_fail() -> None:
    from synthgate.validation.public_report import public_gates, public_reasons
    from synthgate.validation.report import _result_cell

    fail, inconclusive = _gate(0.15, 0.05), _gate(0.15, 0.12)
    assert "inconclusive" in _result_cell(False, "inconclusive") and "FAIL" not in _result_cell(False, "inconclusive")
    assert "FAIL" in _result_cell(False, "fail") and "pass" in _result_cell(True, "pass")
    assert [g["outcome"] for g in public_gates([fail, inconclusive])] == ["fail", "inconclusive"]
    reasons = public_reasons(decide_release([fail, inconclusive]), [fail, inconclusive])
    assert reasons == ["risk: failed (must be <= 0.1)", "risk: inconclusive, too few rows to tell (must be <= 0.1)"]
