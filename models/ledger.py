"""The privacy ledger: every data-dependent step of a release, composed into one (ε, δ).

Each entry is a (subsampled) Gaussian mechanism described by its noise multiplier (noise
standard deviation / L2 sensitivity), its sampling rate and its number of steps: a full-data
Gaussian mechanism on histograms is ``sample_rate=1, steps=1``; DP-SGD is
``sample_rate=q, steps=T``. The entries are composed with Rényi DP (Opacus' RDP analysis), so the
total is tighter than the sum of the entries' stand-alone ε, and is exactly what Opacus'
``RDPAccountant`` reports for the same history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

ALPHAS: list[float] = list(RDPAccountant.DEFAULT_ALPHAS)
ACCOUNTANT = "rdp"


@dataclass
class Charge:
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    description: str = ""


def _rdp(noise_multiplier: float, sample_rate: float, steps: int) -> list[float]:
    if steps == 0:
        return [0.0] * len(ALPHAS)
    return list(
        compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=ALPHAS)
    )


def epsilon_of(charges: list[tuple[float, float, int]], delta: float) -> float:
    """ε at ``delta`` of the RDP composition of (noise_multiplier, sample_rate, steps) triples."""
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
            raise ValueError(
                f"noise_multiplier must be > 0 for a DP charge. Got {noise_multiplier} for "
                f"{mechanism!r}."
            )
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1]. Got {sample_rate} for {mechanism!r}.")
        entry = Charge(mechanism, float(noise_multiplier), float(sample_rate), int(steps), description)
        self.entries.append(entry)
        return entry

    def add_steps(self, entry: Charge, steps: int = 1) -> None:
        """Extend a running DP-SGD entry by ``steps`` more noisy steps."""
        entry.steps += steps

    @property
    def epsilon(self) -> float:
        return epsilon_of(
            [(e.noise_multiplier, e.sample_rate, e.steps) for e in self.entries], self.delta
        )

    def epsilon_with(self, extra: list[tuple[float, float, int]]) -> float:
        """ε if ``extra`` charges were added: used to calibrate noise before spending it."""
        base = [(e.noise_multiplier, e.sample_rate, e.steps) for e in self.entries]
        return epsilon_of(base + extra, self.delta)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accountant": ACCOUNTANT,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "entries": [
                {
                    **asdict(e),
                    "epsilon_alone": epsilon_of(
                        [(e.noise_multiplier, e.sample_rate, e.steps)], self.delta
                    ),
                }
                for e in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacyLedger:
        ledger = cls(float(d["delta"]))
        for e in d["entries"]:
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


def calibrate_noise(
    *,
    target_epsilon: float,
    ledger: PrivacyLedger,
    sample_rate: float,
    steps: int,
    tol: float = 1e-3,
) -> float:
    """Smallest DP-SGD noise multiplier such that ledger + (σ, q, T) stays within target ε."""
    already = ledger.epsilon
    if already >= target_epsilon:
        raise ValueError(
            f"the ledger has already spent ε = {already:.3f} of the target ε = {target_epsilon}; "
            "nothing is left for training. Raise privacy.epsilon or raise the codec's noise."
        )
    lo, hi = 0.1, 1.0
    while ledger.epsilon_with([(hi, sample_rate, steps)]) > target_epsilon:
        hi *= 2
        if hi > 1e4:
            raise ValueError(
                f"no noise multiplier below 1e4 reaches ε = {target_epsilon} with "
                f"sample rate {sample_rate:.3g} over {steps} steps. Use fewer epochs or a "
                "smaller batch."
            )
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if ledger.epsilon_with([(mid, sample_rate, steps)]) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi
