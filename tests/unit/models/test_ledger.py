from __future__ import annotations

import pytest
from opacus.accountants import RDPAccountant

from synthgate.models.ledger import PrivacyLedger, calibrate_noise, epsilon_of


def test_ledger_total_equals_opacus_rdp_accountant() -> None:
    ledger = PrivacyLedger(1e-6)
    ledger.charge("histograms", noise_multiplier=8.0)
    entry = ledger.charge("dp-sgd", noise_multiplier=1.2, sample_rate=0.03, steps=0)
    for _ in range(250):
        ledger.add_steps(entry)
    acc = RDPAccountant()
    acc.history = [(8.0, 1.0, 1), (1.2, 0.03, 250)]
    assert ledger.epsilon == pytest.approx(acc.get_epsilon(1e-6), rel=1e-9)


def test_composition_is_no_worse_than_sum_of_parts() -> None:
    parts = [(8.0, 1.0, 1), (1.2, 0.03, 250)]
    total = epsilon_of(parts, 1e-6)
    assert total <= sum(epsilon_of([p], 1e-6) for p in parts)
    assert total > max(epsilon_of([p], 1e-6) for p in parts)


def test_calibrated_noise_hits_target_from_below() -> None:
    ledger = PrivacyLedger(1e-6)
    ledger.charge("histograms", noise_multiplier=8.0)
    sigma = calibrate_noise(target_epsilon=3.0, ledger=ledger, sample_rate=0.03, steps=300)
    assert ledger.epsilon_with([(sigma, 0.03, 300)]) <= 3.0
    assert ledger.epsilon_with([(sigma - 0.01, 0.03, 300)]) > 3.0 - 0.05


def test_budget_already_spent_is_a_clear_error() -> None:
    ledger = PrivacyLedger(1e-6)
    ledger.charge("histograms", noise_multiplier=0.2)
    with pytest.raises(ValueError, match="nothing is left for training"):
        calibrate_noise(target_epsilon=1.0, ledger=ledger, sample_rate=0.03, steps=10)


def test_invalid_charges_are_rejected() -> None:
    ledger = PrivacyLedger(1e-6)
    with pytest.raises(ValueError, match="noise_multiplier must be > 0"):
        ledger.charge("x", noise_multiplier=0.0)
    with pytest.raises(ValueError, match="sample_rate"):
        ledger.charge("x", noise_multiplier=1.0, sample_rate=1.5)
    with pytest.raises(ValueError, match="delta"):
        PrivacyLedger(1.0)


def test_round_trip_through_dict() -> None:
    ledger = PrivacyLedger(1e-6)
    ledger.charge("histograms", noise_multiplier=8.0, description="d")
    again = PrivacyLedger.from_dict(ledger.to_dict())
    assert again.epsilon == ledger.epsilon
    assert again.to_dict()["entries"][0]["epsilon_alone"] == pytest.approx(ledger.epsilon)


def test_codec_noise_keeps_the_codec_within_a_fifth_of_small_budgets() -> None:
    from synthgate.models.synthesizers.base import CODEC_NOISE, CODEC_SHARE, codec_noise_for

    for eps in (0.5, 1.0, 2.0):
        noise = codec_noise_for(eps, 1e-6)
        ledger = PrivacyLedger(1e-6)
        ledger.charge("codec-histograms", noise_multiplier=noise, sample_rate=1.0, steps=1, description="")
        assert ledger.epsilon == pytest.approx(CODEC_SHARE * eps, rel=0.01)
    # large budgets keep the default noise (its ε ≈ 0.545 is under a fifth of them)
    assert codec_noise_for(3.0, 1e-6) == codec_noise_for(10.0, 1e-6) == CODEC_NOISE


def test_ctgans_codec_takes_its_share_at_every_budget() -> None:
    """ctgan sets no floor on the codec's noise: its one release costs 0.4·ε at small and large ε alike."""
    from synthgate.models.synthesizers.base import CODEC_NOISE, codec_noise_for
    from synthgate.models.synthesizers.ctgan import DPCTGAN

    assert DPCTGAN.codec_share == 0.4 and DPCTGAN.codec_noise_floor == 0.0
    for eps in (0.5, 1.0, 3.0, 10.0):
        noise = codec_noise_for(eps, 1e-6, DPCTGAN.codec_share, DPCTGAN.codec_noise_floor)
        ledger = PrivacyLedger(1e-6)
        ledger.charge("codec-histograms", noise_multiplier=noise, sample_rate=1.0, steps=1, description="")
        assert ledger.epsilon == pytest.approx(0.4 * eps, rel=0.01), eps
    assert codec_noise_for(3.0, 1e-6, 0.4, 0.0) < CODEC_NOISE == codec_noise_for(3.0, 1e-6, 0.4)
