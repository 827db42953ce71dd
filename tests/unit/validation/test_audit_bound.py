"""The one-run ε lower bound (validation/audit.py): closed forms, validity on a mechanism whose ε is
known exactly (randomized response), power, and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgate.validation.audit import epsilon_lower_bound, p_value, score_audit


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_all_guesses_right_matches_the_closed_form() -> None:
    """With δ = 0 and v = r, p = q^r, so the bound is logit(level^(1/r))."""
    bound = epsilon_lower_bound(1000, 100, 100, delta=0.0, level=0.05)
    assert bound == pytest.approx(_logit(0.05 ** (1 / 100)), abs=1e-5)  # 3.4935...
    assert bound == pytest.approx(3.4935, abs=1e-3)


def test_chance_level_guessing_bounds_nothing() -> None:
    assert epsilon_lower_bound(1000, 200, 100, delta=1e-6, level=0.05) == 0.0
    assert p_value(1000, 10, 0, 1.0, 0.0) == 1.0


def test_p_value_grows_with_epsilon_and_delta() -> None:
    ps = [p_value(2000, 400, 300, e, 0.0) for e in (0.5, 1.0, 1.5, 2.0)]
    assert ps == sorted(ps) and ps[0] < ps[-1]
    assert p_value(2000, 400, 300, 1.0, 1e-3) > p_value(2000, 400, 300, 1.0, 0.0)


def _randomized_response(m: int, epsilon: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The tightest ε-DP release of each coin: told truly with probability e^ε / (1 + e^ε)."""
    included = rng.random(m) < 0.5
    truthful = rng.random(m) < 1 / (1 + math.exp(-epsilon))
    said = np.where(truthful, included, ~included)
    return said + rng.normal(0, 1e-6, m), included  # scores; tiny jitter breaks ties at random


def test_the_bound_is_valid_on_a_mechanism_of_known_epsilon() -> None:
    """ε = 1 randomized response, 200 seeded audits: the 95% bound exceeds 1 in at most 5% of them."""
    rng = np.random.default_rng(20261205)
    bounds = [score_audit(*_randomized_response(1000, 1.0, rng), delta=0.0).epsilon_lower_bound for _ in range(200)]
    assert np.mean(np.array(bounds) > 1.0) <= 0.05
    assert 0.3 < np.median(bounds) < 1.0  # and it is not vacuous: the audit sees most of ε = 1


def test_the_bound_has_power_and_catches_an_understated_epsilon() -> None:
    """A mechanism that is really ε = 4 but claimed ε = 1 is caught by 2,000 canaries."""
    rng = np.random.default_rng(7)
    result = score_audit(*_randomized_response(2000, 4.0, rng), delta=1e-6)
    assert result.epsilon_lower_bound > 1.0
    assert (
        result.guesses
        == 2
        * result.per_k[[r["epsilon_lower_bound"] for r in result.per_k].index(result.epsilon_lower_bound)]["k_per_side"]
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: p_value(10, 5, 6, 1.0, 0.0), "correct <= guesses"),
        (lambda: p_value(10, 5, 3, -1.0, 0.0), "epsilon >= 0"),
        (lambda: epsilon_lower_bound(10, 5, 3, delta=0.0, level=1.5), "level must be in"),
        (lambda: score_audit(np.zeros(3), np.zeros(4, bool), delta=0.0), "same length"),
        (lambda: score_audit(np.array([0.0, np.nan]), np.zeros(2, bool), delta=0.0), "finite"),
        (lambda: score_audit(np.zeros(4), np.zeros(4, bool), delta=0.0, guess_fractions=[0.9]), "shares in"),
    ],
)
def test_bad_arguments_say_what_is_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
