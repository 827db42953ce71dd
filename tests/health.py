"""A binarised health-record test table: SYNTHETIC test data, generated here; no real patient data.

Shaped like the inputs medGAN and corGAN were designed for (a patient x diagnosis-code matrix):
24 boolean diagnosis-code columns ``dx_00..dx_23``, three bounded counts (``visits``,
``admissions``, ``medications``) and a boolean target ``readmitted``.

How rows are generated (``health_table``), so tests can rely on the structure:
- each patient has a latent frailty f ~ N(0, 1) and a few of 6 latent "conditions"; condition k
  is present with probability sigmoid(a_k + 0.8 f), so conditions co-occur through f;
- condition k switches on a band of ADJACENT dx codes centred at 2 + 4k, each with a probability
  that decays with the distance to the centre (0.85 at the centre). Neighbouring columns are
  therefore strongly correlated, distant ones only weakly (through f): the local structure
  corGAN's convolutions are meant to capture. Every code also fires at random with rate 0.02;
- the counts depend on the latent load (number of conditions and f): visits and medications
  are gamma-Poisson (negative binomial), admissions Poisson, each clipped to the contract bounds;
- ``readmitted`` is a logistic function of the load and of admissions.
"""

from __future__ import annotations

import numbers

import numpy as np
import polars as pl

from synthgate.validation.contract import Contract, parse_contract

N_CODES = 24
N_CONDITIONS = 6
DX_COLUMNS = [f"dx_{i:02d}" for i in range(N_CODES)]
COUNT_BOUNDS = {"visits": (0, 40), "admissions": (0, 10), "medications": (0, 25)}

# Condition k: prevalence logit a_k (about 7%..22% at f = 0), band centre 2 + 4k.
_PREVALENCE_LOGIT = np.array([-1.3, -2.0, -1.6, -2.5, -1.8, -2.2])
_CENTRES = 2 + 4 * np.arange(N_CONDITIONS)
_BAND_SD = 1.5  # in code positions: codes within ~2 of the centre are likely, beyond ~4 rare
_PEAK = 0.85
_BACKGROUND = 0.02


def health_contract() -> Contract:
    """The public contract of the synthetic health table (bounds are design choices, not data)."""
    columns: dict[str, dict] = {
        name: {"kind": "boolean", "description": f"diagnosis code {name[3:]} recorded"} for name in DX_COLUMNS
    }
    columns["visits"] = {"kind": "integer", "min": 0, "max": 40, "description": "outpatient visits in the year"}
    columns["admissions"] = {"kind": "integer", "min": 0, "max": 10, "description": "hospital admissions in the year"}
    columns["medications"] = {"kind": "integer", "min": 0, "max": 25, "description": "distinct medications prescribed"}
    columns["readmitted"] = {"kind": "boolean", "description": "readmitted within 30 days of a discharge"}
    return parse_contract(
        {
            "version": 1,
            "table": "health",
            "description": "Synthetic binarised health-record test table (tests/health.py); no real patient data.",
            "target": "readmitted",
            "columns": columns,
            "privacy": {"epsilon": 3.0, "delta": 1.0e-6},
        },
        source="health",
    )


def health_table(n: int, seed: int) -> pl.DataFrame:
    """``n`` synthetic patients (see the module docstring), reproducible from ``seed``."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (the number of rows). Got {n!r}.")
    rng = np.random.default_rng(seed)
    frailty = rng.normal(size=n)
    p_cond = 1.0 / (1.0 + np.exp(-(_PREVALENCE_LOGIT[None, :] + 0.8 * frailty[:, None])))
    cond = rng.random((n, N_CONDITIONS)) < p_cond  # (n, K)

    # P(code j | condition k) decays with |j - centre_k|; codes combine by noisy-OR.
    dist = np.arange(N_CODES)[None, :] - _CENTRES[:, None]  # (K, codes)
    p_code_given = _PEAK * np.exp(-0.5 * (dist / _BAND_SD) ** 2)
    p_off = (1.0 - _BACKGROUND) * np.prod(np.where(cond[:, :, None], 1.0 - p_code_given[None], 1.0), axis=1)
    dx = rng.random((n, N_CODES)) >= p_off

    n_cond = cond.sum(axis=1)
    load = n_cond + 0.5 * frailty

    def gamma_poisson(mean: np.ndarray, shape: float) -> np.ndarray:
        return rng.poisson(mean * rng.gamma(shape, 1.0 / shape, size=n))

    visits = gamma_poisson(np.exp(0.9 + 0.45 * load), 2.0)
    medications = gamma_poisson(np.exp(0.4 + 0.5 * load), 3.0)
    admissions = rng.poisson(np.exp(-1.6 + 0.55 * load))
    counts = {"visits": visits, "admissions": admissions, "medications": medications}
    for name, (lo, hi) in COUNT_BOUNDS.items():
        counts[name] = np.clip(counts[name], lo, hi)

    logit = -2.6 + 0.55 * load + 0.3 * counts["admissions"]
    readmitted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    data: dict[str, pl.Series] = {
        name: pl.Series(name, dx[:, j], dtype=pl.Boolean) for j, name in enumerate(DX_COLUMNS)
    }
    for name in COUNT_BOUNDS:
        data[name] = pl.Series(name, counts[name].astype(np.int64), dtype=pl.Int64)
    data["readmitted"] = pl.Series("readmitted", readmitted, dtype=pl.Boolean)
    return pl.DataFrame(data)
