"""The privacy ledger: every data-dependent step of a release, composed into one (ε, δ).

Each entry is a (subsampled) Gaussian mechanism described by its noise multiplier (noise
standard deviation / L2 sensitivity), its sampling rate and its number of steps: a full-data
Gaussian mechanism on histograms is ``sample_rate=1, steps=1``; DP-SGD is
``sample_rate=q, steps=T``. The entries are composed with Rényi DP (Opacus' RDP analysis), so the
total is tighter than the sum of the entries' stand-alone ε, and is exactly what Opacus'
``RDPAccountant`` reports for the same history.

A non-DP step (a baseline trained at "ε = ∞") is recorded too, with ``record_non_dp``: an entry
with noise multiplier 0, whose ε is infinite, so the ledger's total is ``math.inf`` and no budget
gate can pass it. ``to_dict`` writes an infinite ε as the string ``"inf"`` (``float("inf")``
reads it back; ``json.dumps`` would otherwise write the non-standard token ``Infinity``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

# Opacus' default Rényi orders (1.1 .. 63) plus larger ones, as TF Privacy's accountant uses: RDP
# holds at every order, so the ledger may convert at whichever is tightest. Small budgets need the
# large orders: a single Gaussian release cannot be accounted below ε ≈ 0.14 at δ = 1e-6 with
# orders up to 63, whatever its noise, while ε = 0.5 leaves a fifth of that to the codec.
ALPHAS: list[float] = [*RDPAccountant.DEFAULT_ALPHAS, 80, 96, 128, 192, 256, 384, 512]
ACCOUNTANT = "rdp"
INFINITE = "inf"  # how to_dict writes an infinite ε (JSON has no infinity)


@dataclass
class Charge:
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    description: str = ""

    @property
    def differentially_private(self) -> bool:
        """False for a step recorded with ``record_non_dp`` (no noise: ε = ∞ once it ran)."""
        return self.noise_multiplier > 0


@functools.lru_cache(maxsize=4096)
def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    """RDP of one step at every order: the costly part (fractional orders), computed once per (σ, q).

    Calibrating noise re-evaluates the ledger's own entries at every bisection step; RDP is
    linear in the step count, so the cached one-step curve times ``steps`` is exactly what
    ``compute_rdp(..., steps=steps)`` returns.
    """
    return tuple(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=ALPHAS))


def _rdp(noise_multiplier: float, sample_rate: float, steps: int) -> list[float]:
    if steps == 0:
        return [0.0] * len(ALPHAS)
    return [r * steps for r in _rdp_one_step(float(noise_multiplier), float(sample_rate))]


def epsilon_of(charges: list[tuple[float, float, int]], delta: float) -> float:
    """ε at ``delta`` of the RDP composition of (noise_multiplier, sample_rate, steps) triples.

    A triple with noise multiplier 0 that ran at least one step is a non-DP step: ε = ∞.
    """
    if any(nm == 0 and t > 0 for nm, _, t in charges):
        return math.inf
    total = [0.0] * len(ALPHAS)
    for nm, q, t in charges:
        total = [a + b for a, b in zip(total, _rdp(nm, q, t), strict=True)]
    if not any(total):
        return 0.0
    eps, _ = get_privacy_spent(orders=ALPHAS, rdp=total, delta=delta)
    return float(eps)


class PrivacyLedger:
    """Accumulates charges for one release; ``epsilon`` is the composed total at ``delta``."""

    def __init__(self, delta: float) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1). Got {delta} instead.")
        self.delta = delta
        self.entries: list[Charge] = []

    def charge(
        self,
        mechanism: str,
        *,
        noise_multiplier: float,
        sample_rate: float = 1.0,
        steps: int = 1,
        description: str = "",
    ) -> Charge:
        if noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be > 0 for a DP charge. Got {noise_multiplier} for {mechanism!r}.")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1]. Got {sample_rate} for {mechanism!r}.")
        entry = Charge(mechanism, float(noise_multiplier), float(sample_rate), int(steps), description)
        self.entries.append(entry)
        return entry

    def charge_exponential(self, mechanism: str, *, epsilon: float, steps: int = 1, description: str = "") -> Charge:
        """Charge ``steps`` rounds of an ε-DP exponential mechanism (sensitivity-normalised scores).

        Such a mechanism is ε-bounded range, hence ε²/8-zCDP (Cesar & Rogers 2021; AIM's accounting):
        its Rényi divergence at order α is at most α·ε²/8, exactly the Rényi curve of a Gaussian
        mechanism with noise multiplier 2/ε (α / (2σ²)). The entry is recorded as that Gaussian, so
        it composes with every other entry under the same RDP analysis.
        """
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(
                f"an exponential mechanism's epsilon must be a finite number > 0. Got {epsilon!r} for {mechanism!r}."
            )
        if steps < 1:
            raise ValueError(f"steps must be >= 1. Got {steps} for {mechanism!r}.")
        return self.charge(
            mechanism,
            noise_multiplier=2.0 / epsilon,
            sample_rate=1.0,
            steps=steps,
            description=description or f"{steps} rounds of an ε = {epsilon:.4g} exponential mechanism (ε²/8-zCDP)",
        )

    def record_non_dp(
        self, mechanism: str, *, sample_rate: float = 1.0, steps: int = 1, description: str = ""
    ) -> Charge:
        """Record a step that learned from the rows WITHOUT differential privacy (ε = ∞).

        For baselines and attack oracles only: once such an entry has a step, ``epsilon`` is
        ``math.inf`` and the release's budget gate fails. The entry keeps the step's sampling
        rate and step count so the report shows what ran.
        """
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1]. Got {sample_rate} for {mechanism!r}.")
        if steps < 0:
            raise ValueError(f"steps must be >= 0. Got {steps} for {mechanism!r}.")
        entry = Charge(mechanism, 0.0, float(sample_rate), int(steps), description)
        self.entries.append(entry)
        return entry

    def add_steps(self, entry: Charge, steps: int = 1) -> None:
        """Extend a running DP-SGD (or non-DP) entry by ``steps`` more steps."""
        entry.steps += steps

    @property
    def differentially_private(self) -> bool:
        """True while every entry is a DP mechanism (an empty ledger is trivially DP)."""
        return all(e.differentially_private for e in self.entries)

    @property
    def epsilon(self) -> float:
        return epsilon_of([(e.noise_multiplier, e.sample_rate, e.steps) for e in self.entries], self.delta)

    def epsilon_with(self, extra: list[tuple[float, float, int]]) -> float:
        """ε if ``extra`` charges were added: used to calibrate noise before spending it."""
        base = [(e.noise_multiplier, e.sample_rate, e.steps) for e in self.entries]
        return epsilon_of(base + extra, self.delta)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: an infinite ε (a non-DP entry) is written as the string ``"inf"``."""
        return {
            "accountant": ACCOUNTANT,
            "delta": self.delta,
            "epsilon": _json_epsilon(self.epsilon),
            "differential_privacy": self.differentially_private,
            "entries": [
                {
                    **asdict(e),
                    "differential_privacy": e.differentially_private,
                    "epsilon_alone": _json_epsilon(
                        epsilon_of([(e.noise_multiplier, e.sample_rate, e.steps)], self.delta)
                    ),
                }
                for e in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacyLedger:
        ledger = cls(float(d["delta"]))
        for i, e in enumerate(d["entries"]):
            if float(e["noise_multiplier"]) < 0:
                raise ValueError(
                    f"ledger entry {i} ({e.get('mechanism')!r}) has noise_multiplier "
                    f"{e['noise_multiplier']}; it must be > 0 (DP) or 0 (a non-DP step). Fix the file."
                )
            ledger.entries.append(
                Charge(
                    e["mechanism"],
                    float(e["noise_multiplier"]),
                    float(e["sample_rate"]),
                    int(e["steps"]),
                    e.get("description", ""),
                )
            )
        return ledger


def _json_epsilon(eps: float) -> float | str:
    return INFINITE if math.isinf(eps) else eps


def calibrate_noise(
    *,
    target_epsilon: float,
    ledger: PrivacyLedger,
    sample_rate: float | None = None,
    steps: int | None = None,
    phases: list[tuple[float, int]] | None = None,
    tol: float = 1e-3,
) -> float:
    """Smallest DP-SGD noise multiplier σ such that ledger + the planned steps stay within target ε.

    Either one DP-SGD run (``sample_rate``, ``steps``) or several ``phases`` [(q, T), ...] that
    share one σ (medGAN's autoencoder pre-training then its critic; table-GAN's critic and
    classifier): all of them are composed with what the ledger already holds.
    """
    if phases is None:
        if sample_rate is None or steps is None:
            raise ValueError("calibrate_noise needs sample_rate and steps, or phases=[(q, T), ...].")
        phases = [(sample_rate, steps)]
    elif sample_rate is not None or steps is not None:
        raise ValueError("pass either sample_rate/steps or phases, not both.")
    if not phases:
        raise ValueError("phases must list at least one (sample_rate, steps) pair.")
    already = ledger.epsilon
    if already >= target_epsilon:
        raise ValueError(
            f"the ledger has already spent ε = {already:.3f} of the target ε = {target_epsilon}; "
            "nothing is left for training. Raise privacy.epsilon or raise the codec's noise."
        )

    def eps(sigma: float) -> float:
        return ledger.epsilon_with([(sigma, q, t) for q, t in phases])

    lo, hi = 0.1, 1.0
    while eps(hi) > target_epsilon:
        hi *= 2
        if hi > 1e4:
            raise ValueError(
                f"no noise multiplier below 1e4 reaches ε = {target_epsilon} with (sample rate, "
                f"steps) = {[(round(q, 4), t) for q, t in phases]}. Use fewer epochs or a smaller batch."
            )
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if eps(mid) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi
