"""A DP-SGD training schedule from public quantities only: (ε, δ, the DP row estimate n̂, the width).

The schedule fixes the expected Poisson batch B (sample rate q = B / n̂), the number of steps T, the
noise multiplier σ and the learning rate together. It reads no private row and no evaluation on
one: its inputs are the budget, the DP row count the codec released (``Codec.n_estimate``, charged),
the contract's encoded width and what the ledger has already spent. Why each choice (first
principles, not a sweep on any table):

- **Batch.** Under the subsampled Gaussian mechanism at small q, the noise on the averaged clipped
  gradient, σ·C/B, is nearly independent of B for a fixed ε and T (σ grows about in proportion to
  q), while the gradient's own sampling noise falls as 1/√B. Larger batches are therefore almost
  free in privacy and cost only compute. B = 5·√n̂, clamped to [``MIN_BATCH``, ``MAX_BATCH``] and
  never above n̂/4 (so q ≤ 1/4 and amplification by subsampling still works): 158 rows at n̂ = 1,000,
  900 at Adult's 32,561, 4,096 from 670,000 rows up.
- **Steps.** A GAN needs hundreds of generator steps whatever the table's size; the old fixed
  8 epochs gave ~260 steps on Adult but ~70 on 8,800 rows. T = ``EPOCHS`` passes over n̂, clamped to
  [``MIN_STEPS``, ``MAX_STEPS``]. Compute is T·B rows (≤ 6.1 M, a few minutes on CPU at 1 M rows).
- **Noise.** σ is calibrated (``models.ledger.calibrate_noise``) so that the ledger's entries plus
  T steps at rate q spend exactly the target ε. If that σ exceeds ``MAX_SIGMA`` (a very small ε
  or n̂), T is halved (to at least ``MIN_STEPS``): fewer, less noisy steps then carry more signal per
  step (σ·C/B is the per-step noise-to-signal ratio, and σ grows like √T).
- **Learning rate.** Adam's steps are scale-free, so the rate follows the noise-to-signal ratio of
  the averaged gradient, ρ = σ / B: 1e-3 while ρ ≤ 0.005, lowered as 1e-3·√(0.005/ρ) above it
  (down to 2e-4), so that a very noisy critic takes smaller steps.

Explicit options (``epochs``, ``batch_size``) always win over the schedule (``plan_training``).

- **Whether to train a critic at all** (``critic_snr``, ``MIN_CRITIC_SNR``). Each DP-SGD step adds
  Gaussian noise of norm ≈ σ·C·√P / B to the averaged clipped gradient (P the critic's parameters),
  whose signal is at most C. Over T steps a consistent signal adds up to T·C and the noise to
  √T·σ·C·√P / B, so √T·B / (σ·√P) bounds the critic's whole-run signal-to-noise ratio from above.
  Below ``MIN_CRITIC_SNR`` the critic cannot be told from noise, yet it would still drive the
  generator and take a share of ε; the model then spends that share on its measured marginals
  instead (models/synthesizers/ctgan.py, ``critic="auto"``). Public: σ, T and B come from
  (ε, δ, n̂) and P from the contract's encoded width and the critic's architecture. The threshold is
  9 since round 2 session 16 (4 before), by a rule stated before the last two cells (Wage and HMDA at
  ε = 10) had run: the largest threshold below which, in every suite cell, the critic forced off is no
  worse than the default with it by more than 0.005 in mean pair trends and TSTR (3 fits per arm). Cells with a bound in [4, 11): Arrests,
  Caravan, flchain and AER::DoctorVisits at ε = 3, rwm5yr at ε = 1, AER::HMDA and colon at ε = 10 (bounds
  5.2–8.8) were within noise or better off (TSTR +0.001 to +0.025, pair trends +0.000 to +0.006, column
  shapes −0.003 to +0.001); ISLR::Wage at ε = 10 (9.5) lost 0.019 R² off and nassCDS at ε = 1 (10.9) 0.012
  TSTR AUC (BENCHMARKS.md, "Round 2 session 16").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from synthgate.models.ledger import PrivacyLedger, calibrate_noise

MIN_BATCH = 64
MAX_BATCH = 4096
BATCH_PER_SQRT_N = 5.0
EPOCHS = 16.0
MIN_STEPS = 300
MAX_STEPS = 1500
MAX_SIGMA = 8.0
BASE_LR = 1e-3
MIN_LR = 2e-4
QUIET_NOISE = 0.005  # σ/B below which the learning rate stays at BASE_LR
MIN_CRITIC_SNR = 9.0  # critic_snr below which a default fit trains no DP-SGD critic (see the module docstring)


@dataclass(frozen=True)
class Schedule:
    """What a fit trains with: Poisson rate, steps, noise multiplier, learning rate (all public)."""

    sample_rate: float
    steps: int
    noise_multiplier: float
    learning_rate: float
    expected_batch: float
    source: str  # "schedule" | "options" (the user's epochs / batch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_batch(n_hat: float) -> float:
    """B = 5·√n̂ within [64, 4096], never above n̂/4 (and at least 2 rows)."""
    _check_n(n_hat)
    b = min(max(BATCH_PER_SQRT_N * math.sqrt(n_hat), MIN_BATCH), MAX_BATCH)
    return max(2.0, min(b, n_hat / 4.0))


def learning_rate(noise_multiplier: float, batch: float) -> float:
    """1e-3, lowered when the averaged gradient's noise σ/B is large (see the module docstring)."""
    ratio = noise_multiplier / max(batch, 1.0)
    if ratio <= QUIET_NOISE:
        return BASE_LR
    return max(MIN_LR, BASE_LR * math.sqrt(QUIET_NOISE / ratio))


def schedule(*, epsilon: float, ledger: PrivacyLedger, n_hat: float, width: int, dp: bool = True) -> Schedule:
    """The default schedule for a critic trained by DP-SGD on the rest of ``epsilon``.

    ``ledger`` holds what was already spent (codec, marginals): σ is calibrated so that the total
    after training is ``epsilon``. ``dp=False`` (the non-DP baseline): same rate and steps, σ = 0.
    ``width`` (the codec's encoded width) is accepted for wider tables' sake: it only raises the
    step floor for tables wider than 200 slots (more output slots to fit), a public quantity.
    """
    _check_n(n_hat)
    if width < 1:
        raise ValueError(f"width must be the codec's encoded width (>= 1). Got {width!r}.")
    batch = expected_batch(n_hat)
    q = min(1.0, batch / n_hat)
    floor = MIN_STEPS if width <= 200 else min(MAX_STEPS, int(MIN_STEPS * math.sqrt(width / 200)))
    steps = int(min(MAX_STEPS, max(floor, math.ceil(EPOCHS / q))))
    if not dp:
        return Schedule(q, steps, 0.0, BASE_LR, q * n_hat, "schedule")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0 under DP. Got {epsilon!r}.")
    sigma = calibrate_noise(target_epsilon=epsilon, ledger=ledger, sample_rate=q, steps=steps)
    while sigma > MAX_SIGMA and steps > MIN_STEPS:
        steps = max(MIN_STEPS, steps // 2)
        sigma = calibrate_noise(target_epsilon=epsilon, ledger=ledger, sample_rate=q, steps=steps)
    return Schedule(q, steps, sigma, learning_rate(sigma, q * n_hat), q * n_hat, "schedule")


def critic_snr(plan: Schedule, parameters: int) -> float:
    """Upper bound on a DP-SGD critic's whole-run signal-to-noise ratio, √T·B / (σ·√P).

    ``plan``: the critic's schedule (T steps, expected batch B, noise multiplier σ); ``parameters``: the
    critic's parameter count P. ∞ without noise (σ = 0: the non-DP baseline). Public quantities only.
    """
    if parameters < 1:
        raise ValueError(f"parameters must be the critic's parameter count (>= 1). Got {parameters!r}.")
    if plan.noise_multiplier <= 0:
        return math.inf
    return math.sqrt(plan.steps) * plan.expected_batch / (plan.noise_multiplier * math.sqrt(parameters))


def from_options(
    *,
    epsilon: float,
    ledger: PrivacyLedger,
    n_hat: float,
    epochs: float,
    batch_size: int,
    dp: bool = True,
    lr: float = BASE_LR,
) -> Schedule:
    """The user's epochs and batch size (explicit options win): q = B / n̂, T = ⌈epochs / q⌉."""
    _check_n(n_hat)
    q = min(1.0, batch_size / n_hat)
    steps = max(1, math.ceil(epochs / q))
    sigma = calibrate_noise(target_epsilon=epsilon, ledger=ledger, sample_rate=q, steps=steps) if dp else 0.0
    return Schedule(q, steps, sigma, lr, q * n_hat, "options")


def _check_n(n_hat: float) -> None:
    if not (math.isfinite(n_hat) and n_hat >= 1):
        raise ValueError(f"n_hat must be the codec's DP row estimate (a number >= 1). Got {n_hat!r}.")
