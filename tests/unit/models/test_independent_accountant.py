"""The ledger's ε recomputed by accountants that share no code with it.

1. Our own closed form: for integer orders α the Rényi DP of the Poisson-subsampled Gaussian
   mechanism is exactly (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled
   Gaussian Mechanism", section 3.3)

       RDP(α) = log( Σ_{k=0..α} C(α, k) (1 − q)^(α − k) q^k exp((k² − k) / (2σ²)) ) / (α − 1),

   composed by adding over steps and entries, and turned into (ε, δ) with the conversion of
   Balle et al. 2020 (Theorem 21), which Opacus also uses:
   ε = RDP(α) + log((α − 1)/α) − (log δ + log α)/(α − 1), minimised over α.
   The ledger (Opacus' RDP analysis) also searches fractional orders, so its ε may only be lower,
   and by little: it must lie within 3% below ours (measured: 0.9–2.3% below).
2. Opacus' PRV accountant (numerical composition of privacy loss distributions, Gopi et al. 2021):
   a different, tighter analysis. The RDP ε must not be below it (RDP is an upper bound on the true
   ε, which PRV estimates to within its stated eps_error), and not above it by more than 25%
   (measured gap on these histories: 9–15%).
"""

from __future__ import annotations

import math

import pytest
from opacus.accountants import PRVAccountant

from synthgate.models.ledger import PrivacyLedger


def _log_binom(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _rdp_integer(alpha: int, sigma: float, q: float) -> float:
    if q == 1.0:
        return alpha / (2 * sigma**2)
    terms = [
        _log_binom(alpha, k) + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma**2)
        for k in range(alpha + 1)
    ]
    top = max(terms)
    return (top + math.log(sum(math.exp(t - top) for t in terms))) / (alpha - 1)


def independent_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    best = math.inf
    for alpha in range(2, 257):
        rdp = sum(steps * _rdp_integer(alpha, sigma, q) for sigma, q, steps in history)
        eps = rdp + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    return best


HISTORIES = {
    # DP-SGD alone, the demo's scale: q = 500 / 32,561, 8 epochs
    "dp-sgd": [(1.1, 500 / 32561, 521)],
    # the demo's ledger shape: codec histograms (full data, one step) + conditional-vector
    # frequencies + DP-SGD
    "codec+cond+sgd": [(40.0, 1.0, 1), (25.0, 1.0, 1), (0.9, 0.0154, 521)],
    # a large sampling rate and few steps (a small table)
    "small table": [(2.0, 0.25, 40)],
}


def _ledger(history: list[tuple[float, float, int]], delta: float) -> PrivacyLedger:
    ledger = PrivacyLedger(delta)
    for i, (sigma, q, steps) in enumerate(history):
        ledger.charge(f"m{i}", noise_multiplier=sigma, sample_rate=q, steps=steps)
    return ledger


@pytest.mark.parametrize("name", list(HISTORIES))
def test_the_ledger_agrees_with_an_independent_rdp_computation(name: str) -> None:
    history, delta = HISTORIES[name], 1e-6
    ours = independent_epsilon(history, delta)
    ledger = _ledger(history, delta).epsilon
    assert 0.97 * ours <= ledger <= ours * (1 + 1e-9), (ledger, ours)


@pytest.mark.parametrize("name", list(HISTORIES))
def test_the_ledger_is_an_upper_bound_close_to_the_prv_accountant(name: str) -> None:
    history, delta = HISTORIES[name], 1e-6
    prv = PRVAccountant()
    prv.history = [(sigma, q, steps) for sigma, q, steps in history]
    eps_error = 0.01
    prv_eps = prv.get_epsilon(delta=delta, eps_error=eps_error)
    ledger = _ledger(history, delta).epsilon
    assert prv_eps - eps_error <= ledger <= 1.25 * prv_eps, (ledger, prv_eps)


def test_exponential_mechanism_rounds_compose_as_their_zcdp_bound() -> None:
    """ctgan's marginal step (models/marginals.py): k rounds of an ε₀-DP exponential mechanism, m
    Gaussian pair tables, then DP-SGD. Recomputed here from the zCDP bound itself, ε₀²/8 per round
    (RDP α·ε₀²/8 at every order: Cesar & Rogers 2021, as AIM accounts it), not through the Gaussian
    the ledger records it as; the ledger may only be lower (fractional orders), by at most 3%."""
    delta, eps0, rounds = 1e-6, 0.05, 14
    gaussians = [(8.0, 1.0, 1), (60.0, 1.0, 28), (1.2, 0.03, 500)]
    best = math.inf
    for alpha in range(2, 257):
        rdp = rounds * alpha * eps0**2 / 8 + sum(t * _rdp_integer(alpha, s, q) for s, q, t in gaussians)
        best = min(best, rdp + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1))
    ledger = _ledger(gaussians, delta)
    entry = ledger.charge_exponential("marginal-selection", epsilon=eps0, steps=rounds)
    assert (entry.noise_multiplier, entry.sample_rate, entry.steps) == (2.0 / eps0, 1.0, rounds)
    assert 0.97 * best <= ledger.epsilon <= best * (1 + 1e-9), (ledger.epsilon, best)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="exponential mechanism's epsilon"):
            ledger.charge_exponential("x", epsilon=bad)


def test_a_small_table_fit_with_the_coarse_refinement_spends_its_epsilon_by_an_independent_count() -> None:
    """An end-to-end ledger, not a hand-written history: ctgan's default on a small table (800 rows at
    ε = 1), where the codec's numeric bins are noise-bound, so the fit charges the codec, its coarse
    re-measurement (``codec-coarse-histograms``), the marginal selection and measurements (no critic:
    ``critic: auto``). Recomputed from the charged entries by this module's closed form: the ledger's ε
    is the target and within 3% below the independent figure; each Gaussian entry is a full-data step."""
    import numpy as np
    import polars as pl

    from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig
    from synthgate.validation.contract import parse_contract

    contract = parse_contract(
        {
            "table": "r",
            "target": "y",
            "columns": {
                "x": {"kind": "integer", "min": 0, "max": 99},
                "w": {"kind": "continuous", "min": 0.0, "max": 1000.0},
                "y": {"kind": "categorical", "categories": ["no", "yes"]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="r",
    )
    rng = np.random.default_rng(7)
    n = 800
    train = pl.DataFrame(
        {
            "x": np.clip(np.round(rng.beta(5.0, 3.0, n) * 99), 0, 99).astype(int),
            "w": rng.gamma(2.0, 60.0, n).clip(0, 1000),
            "y": np.where(rng.uniform(size=n) < 0.3, "yes", "no"),
        }
    )
    delta = 1e-6
    ledger = PrivacyLedger(delta)
    DPCTGAN(contract, CTGANConfig(), device="cpu").fit(train, ledger=ledger, epsilon=1.0, seed=0)
    mechanisms = [e.mechanism for e in ledger.entries]
    assert mechanisms[:2] == ["codec-histograms", "codec-coarse-histograms"], mechanisms
    assert "dp-sgd-critic" not in mechanisms and "marginal-measurements" in mechanisms, mechanisms
    assert all(e.sample_rate == 1.0 for e in ledger.entries)
    history = [(e.noise_multiplier, e.sample_rate, e.steps) for e in ledger.entries]
    ours = independent_epsilon(history, delta)
    assert ledger.epsilon == pytest.approx(1.0, rel=1e-3)
    assert 0.97 * ours <= ledger.epsilon <= ours * (1 + 1e-9), (ledger.epsilon, ours)


def test_a_fit_that_zooms_a_loosely_bounded_column_spends_its_epsilon_by_an_independent_count() -> None:
    """ctgan's default on 5,000 rows whose ``amount`` is bounded a million times above its rows: the fit
    charges the codec, the zoom inside amount's densest bins (``codec-zoom-histograms``), the marginals
    and the critic. The ledger's ε is the target and within 3% below this module's independent figure."""
    import numpy as np
    import polars as pl

    from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig
    from synthgate.validation.contract import parse_contract

    contract = parse_contract(
        {
            "table": "z",
            "target": "y",
            "columns": {
                "amount": {"kind": "continuous", "min": 0.0, "max": 1.0e9},
                "x": {"kind": "integer", "min": 0, "max": 99},
                "y": {"kind": "categorical", "categories": ["no", "yes"]},
            },
            "privacy": {"epsilon": 3.0, "delta": 1e-6},
        },
        source="z",
    )
    rng = np.random.default_rng(11)
    n = 5000
    train = pl.DataFrame(
        {
            "amount": rng.lognormal(5.0, 1.0, n),
            "x": np.clip(np.round(rng.beta(5.0, 3.0, n) * 99), 0, 99).astype(int),
            "y": np.where(rng.uniform(size=n) < 0.3, "yes", "no"),
        }
    )
    delta = 1e-6
    ledger = PrivacyLedger(delta)
    DPCTGAN(contract, CTGANConfig(epochs=1.0), device="cpu").fit(train, ledger=ledger, epsilon=3.0, seed=0)
    mechanisms = [e.mechanism for e in ledger.entries]
    assert mechanisms[:2] == ["codec-histograms", "codec-zoom-histograms"], mechanisms
    history = [(e.noise_multiplier, e.sample_rate, e.steps) for e in ledger.entries if e.noise_multiplier]
    assert len(history) == len(ledger.entries), "every entry here is a Gaussian one"
    ours = independent_epsilon(history, delta)
    assert ledger.epsilon == pytest.approx(3.0, rel=1e-3)
    assert 0.97 * ours <= ledger.epsilon <= ours * (1 + 1e-9), (ledger.epsilon, ours)
