"""models/schedule.py: the default DP-SGD schedule from public quantities (ε, δ, n̂, width) only."""

from __future__ import annotations

import inspect
import math

import pytest

from synthgate.models import schedule as sch
from synthgate.models.ledger import PrivacyLedger, calibrate_noise

N_HATS = [1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6]
EPSILONS = [0.5, 1.0, 3.0, 10.0]
DELTA = 1e-6


def _ledger(epsilon: float) -> PrivacyLedger:
    """What a fit has spent before training: the codec's histograms at a fifth of ε (its default share)."""
    from synthgate.models.synthesizers.base import codec_noise_for

    ledger = PrivacyLedger(DELTA)
    ledger.charge("codec-histograms", noise_multiplier=codec_noise_for(epsilon, DELTA))
    return ledger


@pytest.fixture(scope="module")
def grid() -> dict[tuple[float, float], sch.Schedule]:
    return {(n, e): sch.schedule(epsilon=e, ledger=_ledger(e), n_hat=n, width=100) for n in N_HATS for e in EPSILONS}


@pytest.mark.statistical
def test_the_schedule_is_sane_everywhere(grid: dict[tuple[float, float], sch.Schedule]) -> None:
    for (n, e), s in grid.items():
        batch = s.sample_rate * n
        assert s.source == "schedule"
        assert sch.MIN_STEPS <= s.steps <= sch.MAX_STEPS, (n, e, s)
        assert 2 <= batch <= min(sch.MAX_BATCH, n / 4) + 1e-9, (n, e, s)  # never needs more rows than n̂
        assert 0 < s.sample_rate <= 0.25
        assert 0 < s.noise_multiplier <= 200 and math.isfinite(s.noise_multiplier)
        assert sch.MIN_LR <= s.learning_rate <= sch.BASE_LR
        assert s.steps * batch <= sch.MAX_STEPS * sch.MAX_BATCH  # bounded compute at any size
        # the plan spends the budget: within ε, and not far below it (calibrate_noise's tolerance)
        spent = _ledger(e).epsilon_with([(s.noise_multiplier, s.sample_rate, s.steps)])
        assert 0.97 * e <= spent <= e + 1e-9, (n, e, spent)


@pytest.mark.statistical
def test_the_schedule_is_monotonic_in_rows_and_budget(grid: dict[tuple[float, float], sch.Schedule]) -> None:
    for e in EPSILONS:
        rows = [grid[(n, e)] for n in N_HATS]
        batches = [s.sample_rate * n for s, n in zip(rows, N_HATS, strict=True)]
        assert batches == sorted(batches)  # more rows: larger batches
        rates = [s.sample_rate for s in rows]
        assert rates == sorted(rates, reverse=True)  # ... but a smaller share of the rows
        # the noise on the averaged gradient (σ / B) falls as the table grows
        ratios = [s.noise_multiplier / b for s, b in zip(rows, batches, strict=True)]
        assert ratios == sorted(ratios, reverse=True)
    for n in N_HATS:
        per_eps = [grid[(n, e)] for e in EPSILONS]
        # more budget: never noisier per step, never a smaller learning rate
        assert all(
            a.noise_multiplier / a.steps**0.5 >= b.noise_multiplier / b.steps**0.5
            for a, b in zip(per_eps, per_eps[1:], strict=False)
        )
        assert [s.learning_rate for s in per_eps] == sorted(s.learning_rate for s in per_eps)


def test_the_old_default_starved_small_tables_and_the_schedule_does_not() -> None:
    """8 epochs at batch 1,000 was ~70 steps on 8,800 rows; the schedule gives at least MIN_STEPS."""
    s = sch.schedule(epsilon=1.0, ledger=_ledger(1.0), n_hat=8_800, width=60)
    assert math.ceil(8 / (1000 / 8_800)) == 71 < sch.MIN_STEPS <= s.steps


def test_non_dp_schedule_has_no_noise() -> None:
    s = sch.schedule(epsilon=math.inf, ledger=PrivacyLedger(DELTA), n_hat=32_561, width=100, dp=False)
    assert s.noise_multiplier == 0.0 and s.learning_rate == sch.BASE_LR
    assert s.steps == sch.schedule(epsilon=3.0, ledger=_ledger(3.0), n_hat=32_561, width=100).steps


def test_explicit_options_win() -> None:
    s = sch.from_options(epsilon=3.0, ledger=_ledger(3.0), n_hat=32_561, epochs=8.0, batch_size=1000)
    assert s.source == "options" and s.sample_rate == pytest.approx(1000 / 32_561)
    assert s.steps == math.ceil(8.0 / (1000 / 32_561))


def test_the_schedule_reads_no_data() -> None:
    """Its only inputs are public numbers and the ledger: no table, no frame, no evaluation."""
    params = set(inspect.signature(sch.schedule).parameters)
    assert params == {"epsilon", "ledger", "n_hat", "width", "dp"}
    for bad in (0.0, math.nan, math.inf, -5.0):
        with pytest.raises(ValueError, match="n_hat must be the codec's DP row estimate"):
            sch.schedule(epsilon=1.0, ledger=PrivacyLedger(DELTA), n_hat=bad, width=10)
    with pytest.raises(ValueError, match="width"):
        sch.schedule(epsilon=1.0, ledger=PrivacyLedger(DELTA), n_hat=1000, width=0)


def _after_marginals(epsilon: float) -> PrivacyLedger:
    """The codec's histograms, then the marginals at 85% of the rest (ctgan's default shares)."""
    ledger = _ledger(epsilon)
    target = ledger.epsilon + 0.85 * (epsilon - ledger.epsilon)
    sigma = calibrate_noise(target_epsilon=target, ledger=ledger, sample_rate=1.0, steps=1)
    ledger.charge("planned-marginals", noise_multiplier=sigma)
    return ledger


def test_critic_snr_is_public_and_grows_with_rows_and_budget() -> None:
    """√T·B / (σ·√P) from the plan alone: larger for more rows and more ε, ∞ without noise; a 1,000-row
    table at ε = 1 leaves the critic below MIN_CRITIC_SNR, 30,000 rows at ε = 0.5 do not."""
    params = 20_000  # about a (128, 128) critic on a 30-slot encoding
    assert set(inspect.signature(sch.critic_snr).parameters) == {"plan", "parameters"}
    snr = {
        (n, e): sch.critic_snr(sch.schedule(epsilon=e, ledger=_after_marginals(e), n_hat=n, width=30), params)
        for n in (1e3, 3e4, 1e5)
        for e in (0.5, 1.0, 3.0)
    }
    for e in (0.5, 1.0, 3.0):
        row = [snr[(n, e)] for n in (1e3, 3e4, 1e5)]
        assert row == sorted(row), (e, row)
    for n in (1e3, 3e4, 1e5):
        col = [snr[(n, e)] for e in (0.5, 1.0, 3.0)]
        assert col == sorted(col), (n, col)
    assert snr[(1e3, 1.0)] < snr[(1e3, 3.0)] < sch.MIN_CRITIC_SNR < snr[(3e4, 0.5)]
    plan = sch.schedule(epsilon=1.0, ledger=_after_marginals(1.0), n_hat=1e3, width=30)
    assert sch.critic_snr(plan, params) == pytest.approx(
        math.sqrt(plan.steps) * plan.expected_batch / (plan.noise_multiplier * math.sqrt(params))
    )
    quiet = sch.schedule(epsilon=math.inf, ledger=PrivacyLedger(DELTA), n_hat=1e3, width=30, dp=False)
    assert sch.critic_snr(quiet, params) == math.inf
    with pytest.raises(ValueError, match="parameter count"):
        sch.critic_snr(plan, 0)
