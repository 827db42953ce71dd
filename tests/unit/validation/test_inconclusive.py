"""The inconclusive outcome: a privacy gate that fails only because the rows are too few to pass
anything says so, with the rows it would need, and blocks unless the contract opts out."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthgate.validation.anonymeter import _power_floor, attack_risk, inference_risk
from synthgate.validation.contract import Contract
from synthgate.validation.mia import _auc_power_floor, roc_summary
from synthgate.validation.privacy import _dcr_power_floor
from synthgate.validation.results import MetricResult, decide_release, min_rows_to_pass, upper_bound_gate


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
    blocked = decide_release([ok, inconclusive])
    assert not blocked.released and "inconclusive" in blocked.reasons[0] and "4000 rows per side" in blocked.reasons[0]
    assert decide_release([ok, inconclusive], block_inconclusive=False).released
    assert not decide_release([ok, fail, inconclusive], block_inconclusive=False).released  # a real fail still blocks


def test_the_reason_names_what_min_rows_to_pass_counts() -> None:
    """An attack whose targets the rows do not cap gives min_rows_to_pass in control attacks: the
    decision's reason says so instead of "rows per side"."""
    attacks = upper_bound_gate(
        "inference_risk[x]", 0.0, (0.0, 0.3), 0.1, description="", power_floor=0.2, min_rows=900,
        details={"min_rows_unit": "control attacks"},
    )  # fmt: skip
    (reason,) = decide_release([attacks]).reasons
    assert "about 900 control attacks" in reason and "rows per side" not in reason


def test_an_interval_holding_both_no_leak_and_the_gate_is_inconclusive() -> None:
    def gate(lo: float, hi: float) -> MetricResult:
        return upper_bound_gate(
            "r", (lo + hi) / 2, (lo, hi), 0.1, description="", details={}, power_floor=0.05, ideal=0.0
        )

    assert gate(0.0, 0.14).outcome == "inconclusive"  # consistent with no leak and with a leak past 0.1
    assert gate(0.02, 0.14).outcome == "fail"  # the interval excludes no leak: evidence of a leak
    assert gate(0.0, 0.08).outcome == "pass"


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
    floor, need = _auc_power_floor(150, 150, 0.6)
    assert abs(float(np.mean(highs)) - floor) < 0.01, (float(np.mean(highs)), floor)
    assert need is None  # 150 per side is enough for the 0.60 gate
    small_floor, small_need = _auc_power_floor(20, 20, 0.6)
    assert small_floor > 0.6 and small_need is not None and _auc_power_floor(small_need, small_need, 0.6)[0] <= 0.6


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
