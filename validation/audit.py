"""The one-run lower bound on ε (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training
Run", NeurIPS 2023, Theorem 5.2 and its Algorithm for the ε bound).

Setting: ``m`` canaries, each included in training by an independent fair coin. After training the
auditor guesses "in" for the ``k`` highest-scoring canaries and "out" for the ``k`` lowest, and
abstains on the rest: ``r = 2k`` guesses, ``v`` of them right. If training is (ε, δ)-DP, then

    P[v or more right] ≤ P[Binomial(r, e^ε / (1 + e^ε)) ≥ v] + 2·m·δ·α,
    α = max over i = 1..v of P[v − i ≤ Binomial(r, e^ε / (1 + e^ε)) < v] / i,

so every ε whose right-hand side is below the test level is rejected: the largest rejected ε is a
lower bound that holds with the stated confidence. An implementation whose true privacy loss is
larger than it claims shows it here as a bound above the claimed ε.

Guess counts: the auditor may try several ``k`` (a fixed grid, chosen before seeing any score); the
level is split evenly between them (Bonferroni), so picking the best ``k`` afterwards keeps the
stated confidence. Choosing thresholds by looking at the scores without such a correction (as some
public audit code does) overstates the bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

__all__ = ["AuditBound", "DEFAULT_GUESS_FRACTIONS", "epsilon_lower_bound", "p_value", "score_audit"]

DEFAULT_GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # k as a share of m, per side


def _check_counts(m: int, r: int, v: int) -> None:
    if not (0 <= v <= r <= m):
        raise ValueError(f"need 0 <= correct <= guesses <= canaries. Got correct={v}, guesses={r}, canaries={m}.")


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[≥ v right out of r guesses] under (ε, δ)-DP with m canaries (Theorem 5.2)."""
    _check_counts(m, r, v)
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta <= 1. Got epsilon={epsilon}, delta={delta}.")
    if v == 0:
        return 1.0
    q = 1.0 / (1.0 + math.exp(-epsilon))  # accuracy of ε-DP randomized response
    beta = float(stats.binom.sf(v - 1, r, q))
    alpha = 0.0
    if delta > 0:
        i = np.arange(1, v + 1)
        between = stats.binom.cdf(v - 1, r, q) - stats.binom.cdf(v - i - 1, r, q)  # P[v-i <= B < v]
        alpha = float(np.max(between / i))
    return min(1.0, beta + 2.0 * m * delta * alpha)


def epsilon_lower_bound(m: int, r: int, v: int, *, delta: float, level: float) -> float:
    """The largest ε rejected at ``level`` (0 when even ε = 0 is not rejected)."""
    _check_counts(m, r, v)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1). Got {level}.")
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    high = 1.0
    while p_value(m, r, v, high, delta) < level:
        high *= 2
        if high > 1e3:
            return math.inf  # every finite ε rejected (cannot happen with 2·m·δ·α ≥ level)
    return float(optimize.brentq(lambda e: p_value(m, r, v, e, delta) - level, 0.0, high, xtol=1e-6))


@dataclass(frozen=True)
class AuditBound:
    """The audit's outcome: the best bound over the guess grid, and every k tried."""

    epsilon_lower_bound: float
    confidence: float
    canaries: int
    included: int
    guesses: int
    correct: int
    per_k: list[dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_audit(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
) -> AuditBound:
    """Guess the top-k canaries in and the bottom-k out for each k of the grid; the best bound wins.

    ``scores``: one per canary, higher meaning "more likely included"; ``included``: the secret coins.
    Each k is tested at level (1 − confidence) / len(grid), so the best one holds at ``confidence``.
    """
    scores = np.asarray(scores, dtype=float)
    included = np.asarray(included, dtype=bool)
    if scores.shape != included.shape or scores.ndim != 1:
        raise ValueError(
            f"scores and included must be 1-D and the same length. Got {scores.shape} and {included.shape}."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite numbers; got NaN or inf.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1). Got {confidence}.")
    m = scores.size
    ks = sorted({max(1, int(round(f * m))) for f in guess_fractions if 0 < f <= 0.5})
    if not ks:
        raise ValueError(f"guess_fractions must hold shares in (0, 0.5]. Got {list(guess_fractions)}.")
    level = (1.0 - confidence) / len(ks)
    order = np.argsort(scores, kind="stable")
    best: dict[str, float] = {}
    per_k: list[dict[str, float]] = []
    for k in ks:
        v = int(included[order[-k:]].sum() + (~included[order[:k]]).sum())
        bound = epsilon_lower_bound(m, 2 * k, v, delta=delta, level=level)
        row = {"k_per_side": k, "guesses": 2 * k, "correct": v, "epsilon_lower_bound": bound}
        per_k.append(row)
        if not best or bound > best["epsilon_lower_bound"]:
            best = row
    return AuditBound(
        epsilon_lower_bound=float(best["epsilon_lower_bound"]),
        confidence=confidence,
        canaries=m,
        included=int(included.sum()),
        guesses=int(best["guesses"]),
        correct=int(best["correct"]),
        per_k=per_k,
    )
