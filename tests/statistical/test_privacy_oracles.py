"""Privacy oracles on Adult: tables whose privacy we know must end as they should.

- a copy of train is blocked, with DCR share > 0.9 and membership AUC > 0.9;
- a fresh sample of real rows never trained on passes every privacy gate;
- train with 10% of its values perturbed has a DCR share well above 0.55 (mostlyai-qa's
  published calibration on Adult: 0.836);
- a non-DP CTGAN overfitted on a small sample is caught by at least one attack (measured:
  DCR share 0.865 and membership AUC 0.609, both over their gates).

Tolerances: the gates' own thresholds (their 95% intervals absorb sampling noise); seeds fixed.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from synthgate.validation.contract import Contract
from synthgate.validation.gates import membership_attacks, membership_checks, privacy_checks
from synthgate.validation.results import MetricResult


def _split(adult: pl.DataFrame, contract: Contract, sizes: tuple[int, ...], seed: int) -> list[pl.DataFrame]:
    rows = adult.select(contract.modelled_columns).sample(n=sum(sizes), seed=seed, shuffle=True)
    out, start = [], 0
    for size in sizes:
        out.append(rows[start : start + size])
        start += size
    return out


def _by_name(results: list[MetricResult]) -> dict[str, MetricResult]:
    return {r.name: r for r in results}


def _all_privacy(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, contract: Contract
) -> dict[str, MetricResult]:
    attacks = membership_attacks(train, holdout, synthetic, contract, seed=1)
    return _by_name(privacy_checks(train, holdout, synthetic, contract, seed=0) + membership_checks(attacks, contract))


def perturb(frame: pl.DataFrame, donor: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Replace each cell, with probability ``share``, by the same column's value in a random donor row."""
    rng = np.random.default_rng(seed)
    cols = {}
    for name in frame.columns:
        mask = pl.Series(rng.random(frame.height) < share)
        donors = donor[name].gather(rng.integers(0, donor.height, frame.height))
        cols[name] = pl.select(pl.when(mask).then(donors).otherwise(frame[name])).to_series().alias(name)
    return pl.DataFrame(cols)


def test_copy_of_train_is_blocked(adult: pl.DataFrame, adult_contract: Contract) -> None:
    train, holdout = _split(adult, adult_contract, (3000, 3000), seed=21)
    r = _all_privacy(train, holdout, train, adult_contract)
    assert r["dcr_share"].value > 0.9 and not r["dcr_share"].passed
    assert r["mia_auc"].value > 0.9 and not r["mia_auc"].passed
    assert not r["identical_match_share"].passed


def test_fresh_real_rows_pass_every_privacy_gate(adult: pl.DataFrame, adult_contract: Contract) -> None:
    # 16,000 rows each (all of Adult): the inference risk on `income` needs that many attacks
    # for its interval to clear 0.10 (see tests/integration/test_evaluate.py).
    train, holdout, fresh = _split(adult, adult_contract, (16000, 16000, 16000), seed=22)
    r = _all_privacy(train, holdout, fresh, adult_contract)
    gates = [m for m in r.values() if m.is_gate]
    assert len(gates) >= 6
    assert all(m.passed for m in gates), {m.name: (m.gated_value, m.threshold) for m in gates if not m.passed}


def test_ten_percent_perturbed_copy_is_far_above_the_dcr_gate(adult: pl.DataFrame, adult_contract: Contract) -> None:
    train, holdout, donor = _split(adult, adult_contract, (4000, 4000, 4000), seed=23)
    synthetic = perturb(train, donor, 0.10, seed=5)
    r = _all_privacy(train, holdout, synthetic, adult_contract)
    dcr = r["dcr_share"]
    assert dcr.value > 0.8 and dcr.ci is not None and dcr.ci[0] > 0.55 and not dcr.passed


def test_perturbation_changes_about_the_asked_share(adult: pl.DataFrame, adult_contract: Contract) -> None:
    train, donor = _split(adult, adult_contract, (4000, 4000), seed=24)
    synthetic = perturb(train, donor, 0.10, seed=6)
    changed = np.mean(
        [
            (synthetic[c].cast(pl.Utf8).fill_null("∅") != train[c].cast(pl.Utf8).fill_null("∅")).mean()
            for c in train.columns
        ]
    )
    # A replaced cell keeps its value when the donor has the same one (common categories).
    assert 0.04 < changed <= 0.10 + 3 * math.sqrt(0.1 * 0.9 / train.height)


def test_overfitted_non_dp_ctgan_is_caught(adult: pl.DataFrame, adult_contract: Contract) -> None:
    """Non-DP CTGAN, 80 epochs on 300 rows (750 steps at Poisson rate 32/300): it memorises."""
    import torch

    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig

    train, holdout = _split(adult, adult_contract, (300, 3000), seed=25)
    config = CTGANConfig(
        epochs=80,
        batch_size=32,
        generator_dims=(256, 256),
        critic_dims=(256, 256),
        z_dim=8,
        gumbel_tau=1.0,
        generator_lr=3e-3,
        critic_lr=3e-3,
        marginals="off",  # the memorising oracle copies rows; pair marginals would pull it off them
    )
    ledger = PrivacyLedger(adult_contract.privacy.delta)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = DPCTGAN(adult_contract, config, device="cpu").fit(train, ledger=ledger, epsilon=math.inf, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert math.isinf(ledger.epsilon)
    synthetic = model.sample(300, seed=1)
    r = _all_privacy(train, holdout, synthetic, adult_contract)
    caught = [n for n in ("dcr_share", "mia_auc", "mia_tpr_at_1pct_fpr", "identical_match_share") if not r[n].passed]
    assert caught, {n: (r[n].value, r[n].gated_value, r[n].threshold) for n in r}
