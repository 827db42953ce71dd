"""Anonymeter-style privacy risks: singling out, linkability and attribute inference.

The framework follows Giomi et al. (2023), "A Unified Framework for Quantifying Privacy Risk
in Synthetic Data" (the ``anonymeter`` package); this is an independent implementation.

Every attack is run twice with the same attacker and the same synthetic table:

- the **main** attack aims at training records (members: the generator saw them);
- the **control** attack aims at holdout records (never used in training).

An attacker who learned only the population succeeds equally often on both, so the risk is
the share of the control attack's failures that knowing the training records turns into
successes::

    risk = (main success rate - control success rate) / (1 - control success rate)

0 means "no better than chance (the control)", 1 means "the main attack succeeds on every
target". The point estimates use the plain rates ``successes / attacks``.

Confidence interval (``attack_risk``). Each rate gets a Wilson score interval at the chosen
confidence. The risk ``R(p, c) = (p - c) / (1 - c)`` rises with the main rate ``p``
(``dR/dp = 1 / (1 - c)``) and falls with the control rate ``c``
(``dR/dc = -(1 - p) / (1 - c)²``). The interval combines, in quadrature (the two attacks are
independent), each rate's distance to its Wilson bound *in the direction that moves the risk
that way*, weighted by the partial derivative::

    hi = R + sqrt(((p_hi - p) / (1 - c))² + ((c - c_lo) (1 - p) / (1 - c)²)²)
    lo = R - sqrt(((p - p_lo) / (1 - c))² + ((c_hi - c) (1 - p) / (1 - c)²)²)

This is the MOVER recipe (Zou & Donner 2008) applied to the linearised risk; where the two
rates are equal it is exactly Newcombe's (1998) hybrid-score interval for ``p - c`` divided
by ``1 - c``. Unlike a symmetric delta-method interval it inherits the Wilson intervals'
asymmetry near 0 and 1. In simulation (100 to 500 attacks per side, rates from 0.02 to 0.99)
it covered the true risk 95-97% of the time, and its upper end alone 97-99%. The raw risk and interval are kept in ``details``; ``value`` and
``ci`` are clipped to [0, 1]. When every control attack succeeds (``c = 1``) the attacked
attribute is guessable for everyone without the synthetic data and the normalised risk
cannot be bounded: the risk is reported as 0 with interval (0, 1), so the gate fails and
``details["control_saturated"]`` says why.

Gate: the upper end of the (clipped) interval ``<= max_risk``
(``contract.gates.max_anonymeter_risk``).

These checks read private rows and are evaluations, not DP mechanisms: only aggregates
(rates, counts, column names) leave this module. Predicates, guesses and rows never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from scipy.stats import norm

from synthgate.validation.contract import NUMERIC_KINDS, Contract
from synthgate.validation.encoding import (
    canonical_frame,
    discrete_codes,
    encode_for_distance,
    numeric_values,
    subsample_rows,
)
from synthgate.validation.results import MetricResult, min_rows_to_pass, upper_bound_gate
from synthgate.validation.stats import check_confidence, kish_effective_counts, two_sided_z, wilson_bounds

__all__ = [
    "AttackRisk",
    "anonymeter_checks",
    "attack_risk",
    "balanced_attack_risk",
    "inference_risk",
    "linkability_risk",
    "singling_out_risk",
]

# A numeric secret's guess is right when it falls in the truth's bin among this many quantile
# bins of the synthetic table's secret (``inference_risk``).
NUMERIC_SECRET_BINS = 10
# A secret value class is sampled as its own stratum when both train and control hold this many
# rows of it; rarer classes are pooled (``_strata``).
MIN_CLASS_TARGETS = 30
# Singling out: train is cut into at most this many disjoint sets as large as control (main attacks).
MAX_MAIN_SETS = 4
# A multivariate predicate takes conditions from at most this many columns of its source row.
MAX_PREDICATE_COLUMNS = 8
# The chance at which a no-leak table should clear a gate, for the rows named in ``rows_for_95pct_power``.
POWER = 0.95
# Squared distances closer than this are ties, broken uniformly at random.
_TIE_QUANTUM = 1e-9
# Candidate rows (or float64 distances) handled at once, to bound memory.
_BLOCK_CELLS = 2_000_000

# Predicate condition codes.
_EQ, _LE, _GE, _NULL = 0, 1, 2, 3

SINGLING_OUT_DESCRIPTION = {
    "univariate": (
        "How much more often an attacker holding the synthetic data can pin down a single real "
        "person by one unusual attribute value than chance would allow (0 = no better than "
        "chance)."
    ),
    "multivariate": (
        "How much more often an attacker holding the synthetic data can pin down a single real "
        "person by a combination of attributes than chance would allow (0 = no better than "
        "chance)."
    ),
}
LINKABILITY_DESCRIPTION = (
    "How much more often an attacker holding the synthetic data can tell that two partial "
    "records (different columns about the same person) belong together than chance would "
    "allow (0 = no better than chance)."
)
INFERENCE_DESCRIPTION = (
    "How much more often an attacker holding the synthetic data and a person's other "
    "attributes can guess their {secret!r} correctly than chance would allow (0 = no better "
    "than chance)."
)


# --- rates, risk and intervals ---------------------------------------------------------------


def _risk_arrays(
    k_main: np.ndarray, n_main: np.ndarray, k_control: np.ndarray, n_control: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(risk, lo, hi, saturated), vectorised; see the module docstring for the formulas."""
    p = np.asarray(k_main, dtype=np.float64) / n_main
    c = np.asarray(k_control, dtype=np.float64) / n_control
    p_lo, p_hi = wilson_bounds(k_main, n_main, z)
    c_lo, c_hi = wilson_bounds(k_control, n_control, z)
    saturated = c >= 1.0
    room = np.where(saturated, 1.0, 1.0 - c)
    risk = np.where(saturated, 0.0, (p - c) / room)
    d_main = 1.0 / room
    d_control = (1.0 - p) / room**2
    hi = risk + np.hypot((p_hi - p) * d_main, (c - c_lo) * d_control)
    lo = risk - np.hypot((p - p_lo) * d_main, (c_hi - c) * d_control)
    return risk, np.where(saturated, 0.0, lo), np.where(saturated, 1.0, hi), saturated


@dataclass(frozen=True)
class AttackRisk:
    """Success counts of a main and a control attack, and the risk they imply (raw, unclipped)."""

    n_main: int
    main_successes: int
    n_control: int
    control_successes: int
    main_rate: float
    main_ci: tuple[float, float]
    control_rate: float
    control_ci: tuple[float, float]
    risk: float
    ci: tuple[float, float]
    control_saturated: bool
    # (main successes, main attacks, control successes, control attacks) as binomial-equivalent
    # counts when the rates are class-balanced means (``balanced_attack_risk``); None when the
    # rates are plain successes / attacks.
    effective: tuple[float, float, float, float] | None = None


def attack_risk(
    main_successes: int,
    n_main: int,
    control_successes: int,
    n_control: int,
    *,
    confidence: float = 0.95,
) -> AttackRisk:
    """Risk ``(p - c) / (1 - c)`` of a main attack against its control, with its interval.

    ``p = main_successes / n_main``, ``c = control_successes / n_control``; Wilson intervals
    on both, propagated as described in the module docstring. Nothing is clipped here.
    """
    check_confidence(confidence)
    for label, k, n in (("main", main_successes, n_main), ("control", control_successes, n_control)):
        if n < 1 or not 0 <= k <= n:
            raise ValueError(
                f"{label} attack: need 0 <= successes <= attacks and attacks >= 1. Got successes={k}, attacks={n}."
            )
    z = two_sided_z(confidence)
    risk, lo, hi, sat = _risk_arrays(
        np.array(main_successes), np.array(n_main), np.array(control_successes), np.array(n_control), z
    )
    m_lo, m_hi = wilson_bounds(np.array(main_successes), np.array(n_main), z)
    c_lo, c_hi = wilson_bounds(np.array(control_successes), np.array(n_control), z)
    return AttackRisk(
        n_main=int(n_main),
        main_successes=int(main_successes),
        n_control=int(n_control),
        control_successes=int(control_successes),
        main_rate=main_successes / n_main,
        main_ci=(float(m_lo), float(m_hi)),
        control_rate=control_successes / n_control,
        control_ci=(float(c_lo), float(c_hi)),
        risk=float(risk),
        ci=(float(lo), float(hi)),
        control_saturated=bool(sat),
    )


def balanced_attack_risk(
    main_hits: np.ndarray,
    control_hits: np.ndarray,
    targets: np.ndarray,
    *,
    control_targets: np.ndarray | None = None,
    confidence: float = 0.95,
) -> AttackRisk:
    """Risk of a main attack against its control when both are means over K classes.

    ``targets[k]`` targets of class ``k`` were attacked on the main side and
    ``control_targets[k]`` (default: the same numbers) on the control side,
    ``main_hits[k]`` and ``control_hits[k]`` of them guessed right. Each side's rate is the
    unweighted mean of its K per-class rates (a balanced accuracy), so a rare class counts as
    much as a common one. Its variance is ``sum_k p_k (1 - p_k) / n_k / K^2`` with
    ``p_k = (hits + 1/2) / (n_k + 1)`` (so that a class guessed always or never still has
    spread); the rate and that variance are turned into binomial-equivalent counts
    ``n_eff = P (1 - P) / Var``, ``k_eff = rate x n_eff`` (Kish's effective sample size) and fed
    to the Wilson/MOVER interval of ``attack_risk``. With one class this is ``attack_risk``.
    """
    check_confidence(confidence)
    main_hits, control_hits, targets = (np.asarray(a, dtype=np.int64) for a in (main_hits, control_hits, targets))
    ctrl_targets = targets if control_targets is None else np.asarray(control_targets, dtype=np.int64)
    for label, tg in (("targets", targets), ("control_targets", ctrl_targets)):
        if tg.ndim != 1 or tg.size < 1 or (tg < 1).any() or tg.shape != targets.shape:
            raise ValueError(
                f"need one or more classes with at least one target each, as many classes on both sides. "
                f"Got {label}={tg.tolist()}."
            )
    for label, hits, tg in (("main", main_hits, targets), ("control", control_hits, ctrl_targets)):
        if hits.shape != tg.shape or (hits < 0).any() or (hits > tg).any():
            raise ValueError(f"{label} hits must be per class, between 0 and the targets of that class.")
    n, n_ctrl, km, kc = int(targets.sum()), int(ctrl_targets.sum()), int(main_hits.sum()), int(control_hits.sum())
    if targets.size == 1:
        return attack_risk(km, n, kc, n_ctrl, confidence=confidence)
    counts = [*kish_effective_counts(main_hits, targets), *kish_effective_counts(control_hits, ctrl_targets)]
    z = two_sided_z(confidence)
    k_m, n_m, k_c, n_c = counts
    risk, lo, hi, sat = _risk_arrays(np.array(k_m), np.array(n_m), np.array(k_c), np.array(n_c), z)
    m_lo, m_hi = wilson_bounds(np.array(k_m), np.array(n_m), z)
    c_lo, c_hi = wilson_bounds(np.array(k_c), np.array(n_c), z)
    return AttackRisk(
        n_main=n,
        main_successes=km,
        n_control=n_ctrl,
        control_successes=kc,
        main_rate=k_m / n_m,
        main_ci=(float(m_lo), float(m_hi)),
        control_rate=k_c / n_c,
        control_ci=(float(c_lo), float(c_hi)),
        risk=float(risk),
        ci=(float(lo), float(hi)),
        control_saturated=bool(sat),
        effective=(k_m, n_m, k_c, n_c),
    )


def _clip01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _result(
    name: str,
    description: str,
    est: AttackRisk,
    *,
    max_risk: float,
    confidence: float,
    details: dict[str, object],
    per_rows: bool = False,
) -> MetricResult:
    """The gate of one attack's risk. ``per_rows``: ``min_rows_to_pass`` in rows per side (the
    smaller of ``details["train_rows"]`` and ``details["control_rows"]``), for an attack whose
    targets or predicates the rows limit (they grow with the rows); else in control attacks."""
    lo, hi = _clip01(est.ci[0]), _clip01(est.ci[1])
    base: dict[str, object] = {
        "n_attacks": est.n_main,
        "n_successes": est.main_successes,
        "main_success_rate": est.main_rate,
        "main_success_rate_ci": list(est.main_ci),
        "n_control_attacks": est.n_control,
        "n_control_successes": est.control_successes,
        "control_success_rate": est.control_rate,
        "control_success_rate_ci": list(est.control_ci),
        "risk_raw": est.risk,
        "risk_ci_raw": list(est.ci),
        "control_saturated": est.control_saturated,
        "confidence": confidence,
        "ci_method": f"Wilson {confidence:.0%} intervals on both success rates, combined in "
        "quadrature through the risk's partial derivatives (MOVER on the linearised risk)",
    }
    if est.control_saturated:
        base["note"] = (
            "every control attack succeeded: the attribute is guessable without the synthetic "
            "data and the risk cannot be bounded; choose a less predictable column or more attacks"
        )
    base.update(details)
    rows = None
    if per_rows and "train_rows" in details and "control_rows" in details:
        rows = min(int(details["train_rows"]), int(details["control_rows"]))  # type: ignore[call-overload]
    floor, need = _power_floor(est, max_risk=max_risk, confidence=confidence, rows=rows)
    unit = "rows per side (the smaller side's)" if rows is not None else "control attacks (the main side at its ratio)"
    would_do = f"about {need:,} {unit} would do" if need is not None else "no size within 10 million would do"
    if floor > max_risk and not est.control_saturated and est.control_rate >= 0.5 and "note" not in base:
        base["note"] = (
            f"the control attack is right for {est.control_rate:.0%} of its targets without the "
            "training rows (the other columns predict the answer); the risk is measured on the "
            f"remaining {1 - est.control_rate:.0%}, too few at these rows to bound it under "
            f"{max_risk}: {would_do} (min_rows_to_pass); for attribute inference, a secret "
            "the other columns do not predict (evaluation.secret_columns) can be bounded sooner"
        )
    elif floor > max_risk and not est.control_saturated and "note" not in base:
        base["note"] = (
            f"limited by rows, not evidence of a leak: with no leak at all the upper end would be "
            f"{floor:.3f} at these attack counts ({est.n_main:,} main, {est.n_control:,} control), past "
            f"{max_risk}; {would_do} (min_rows_to_pass)"
        )
    # Power: a no-leak table's upper end is about floor + (its estimate's spread), so with the floor
    # under the gate it still fails now and then; the size at which it passes 95% of the time.
    z, z_power = two_sided_z(confidence), float(norm.ppf(POWER))
    target = max_risk * z / (z + z_power)
    if not est.control_saturated and 0.0 < floor and target < floor <= max_risk:
        chance = float(norm.cdf((max_risk - floor) * z / floor))
        need_power = _power_floor(est, max_risk=target, confidence=confidence, rows=rows)[1]
        base["no_leak_pass_chance"] = chance
        base["rows_for_95pct_power"] = need_power
        if lo <= 0.0 < max_risk < hi and "note" not in base:  # inconclusive: no leak and the gate both inside
            enough = f"about {need_power:,} {unit} would make that {POWER:.0%}" if need_power is not None else ""
            base["note"] = (
                f"limited by rows, not evidence of a leak: the interval holds both no leak and the gate; a no-leak "
                f"table's upper end is about {floor:.3f} here and clears {max_risk} only about {chance:.0%} of the "
                f"time; {enough} (rows_for_95pct_power)"
            )
    if need is not None:  # what min_rows_to_pass counts (the decision's reason and the report name it)
        base["min_rows_unit"] = "rows per side" if rows is not None else "control attacks"
    return upper_bound_gate(
        name,
        _clip01(est.risk),
        (lo, hi),
        max_risk,
        description=description,
        details=base,
        power_floor=floor,
        min_rows=need,
        ideal=0.0,
        ci_level=confidence,
    )


def _power_floor(
    est: AttackRisk, *, max_risk: float, confidence: float, rows: int | None = None
) -> tuple[float, int | None]:
    """The risk's upper bound if the main attack did exactly as well as the control (no leak) at
    these attack counts, and the attacks per side at which that bound would clear ``max_risk``.

    Class-balanced rates (``est.effective``) are worked in binomial-equivalent counts; the
    answer is then scaled back to ``rows`` per side (the smaller of train and control: a rare
    class's targets grow with the rows) or, without ``rows``, to targets per side. When the main
    side has more attacks than the control (train holds more rows), the floor keeps that ratio
    and the answer counts the control side's.

    A predictable secret (control rate near 1) leaves little room ``1 - c`` and a wide interval:
    then the gate cannot pass at these sizes whatever the synthetic table is.
    """
    z = two_sided_z(confidence)
    c = est.control_rate
    # class-balanced rates: work in binomial-equivalent counts, and scale the answer back to
    # targets per side at the same class mix
    _, n_main, k_control, n_control = (
        est.effective
        if est.effective is not None
        else (est.main_successes, est.n_main, est.control_successes, est.n_control)
    )
    per_effective = (rows if rows is not None else est.n_control) / n_control
    ratio = n_main / n_control  # main attacks per control attack

    def floor_at(n: int) -> float:
        m = ratio * n
        return _clip01(float(_risk_arrays(np.array(c * m), np.array(m), np.array(c * n), np.array(n), z)[2]))

    now = _clip01(
        float(_risk_arrays(np.array(c * n_main), np.array(n_main), np.array(k_control), np.array(n_control), z)[2])
    )
    if now <= max_risk or c >= 1.0:
        return now, None
    need = min_rows_to_pass(floor_at, max_risk, start=max(1, int(np.ceil(n_control))))
    return now, (None if need is None else int(np.ceil(need * per_effective)))


# --- argument checks -------------------------------------------------------------------------


def _check_common(n_attacks: int, max_risk: float, confidence: float) -> None:
    if isinstance(n_attacks, bool) or not isinstance(n_attacks, (int, np.integer)) or n_attacks < 1:
        raise ValueError(
            f"`n_attacks` must be an integer >= 1. Got {n_attacks!r}. Pass the number of targets "
            "per attack (the contract's default is evaluation.anonymeter_attacks)."
        )
    if not 0.0 <= max_risk <= 1.0:
        raise ValueError(f"`max_risk` must be in [0, 1]. Got {max_risk}. Set gates.max_anonymeter_risk.")
    check_confidence(confidence)


def _check_columns(names: list[str], contract: Contract, role: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"`{role}` must be a list of column names. Got {type(names).__name__}.")
    names = list(names)
    if not names:
        raise ValueError(f"`{role}` is empty. Name at least one modelled column.")
    unknown = [c for c in names if c not in contract.modelled_columns]
    if unknown:
        raise ValueError(
            f"`{role}` names columns that are not modelled: {unknown}. Modelled columns: {contract.modelled_columns}."
        )
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ValueError(f"`{role}` repeats columns {repeated}. Name each column once.")
    return names


def _attack_count(n_attacks: int, train: pl.DataFrame, control: pl.DataFrame) -> tuple[int, dict]:
    """Targets per side: n_attacks, capped by the rows of train and control."""
    n = min(n_attacks, train.height, control.height)
    info: dict[str, object] = {"n_attacks_requested": int(n_attacks)}
    if n < n_attacks:
        info["n_attacks_capped"] = f"capped at {n}: train has {train.height} rows, control has {control.height}"
    return n, info


def _seeds(seed: int, k: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(k)]


# --- singling out ----------------------------------------------------------------------------


class _Columns:
    """A set of records as per-column arrays, with each column's sort order.

    ``x`` is (columns, rows) float64: numeric values (NaN = null) or discrete codes (null is a
    code of its own). In a column sorted ascending with NaN last, the rows that satisfy a
    condition ``col == v``, ``col <= v``, ``col >= v`` or ``col is null`` form one contiguous
    run of positions, found with two binary searches; a row satisfies the condition exactly
    when its position in that column (``rank``) lies in the run.
    """

    def __init__(self, frame: pl.DataFrame, contract: Contract) -> None:
        names = contract.modelled_columns
        x = np.empty((len(names), frame.height), dtype=np.float64)
        for j, name in enumerate(names):
            if contract.columns[name].kind in NUMERIC_KINDS:
                x[j] = numeric_values(frame[name])
            else:
                x[j] = discrete_codes(frame[name], contract, name)
        self.x = x
        self.numeric = np.array([contract.columns[c].kind in NUMERIC_KINDS for c in names])
        self.n_rows = frame.height
        self.order = np.argsort(x, axis=1, kind="stable")
        self.sorted = np.take_along_axis(x, self.order, axis=1)
        self.rank = np.empty_like(self.order)
        np.put_along_axis(self.rank, self.order, np.arange(frame.height)[None, :], axis=1)
        self.n_valid = (~np.isnan(x)).sum(axis=1)

    def runs(self, cols: np.ndarray, vals: np.ndarray, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) positions of the rows satisfying each condition (same-shape inputs)."""
        start = np.zeros(cols.shape, dtype=np.int64)
        end = np.zeros(cols.shape, dtype=np.int64)
        for j in np.unique(cols):
            sel = cols == j
            nv = int(self.n_valid[j])
            sv = self.sorted[j, :nv]
            v, o = vals[sel], ops[sel]
            left = np.searchsorted(sv, v, side="left")
            right = np.searchsorted(sv, v, side="right")
            is_eq, is_le, is_ge = o == _EQ, o == _LE, o == _GE
            start[sel] = np.select([is_eq, is_le, is_ge], [left, 0, left], default=nv)
            end[sel] = np.select([is_eq, is_le, is_ge], [right, right, nv], default=self.n_rows)
        return start, end

    def gather(self, cols: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flatten runs (1-D inputs): (index of the run, row) for every row of every run."""
        lengths = end - start
        owner = np.repeat(np.arange(len(lengths)), lengths)
        offset = np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
        return owner, self.order[cols[owner], np.arange(owner.size) + offset]

    def in_run(self, cols: np.ndarray, rows: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Whether each row's position in its column lies in [start, end) (1-D inputs)."""
        pos = self.rank[cols, rows]
        return (pos >= start) & (pos < end)


# A predicate set: cols (k, L) column indices, vals (k, L), ops (k, L) condition codes, and
# lengths (k,): predicate i is the conjunction of its first lengths[i] conditions.
Predicates = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _match_counts(table: _Columns, predicates: Predicates, cap: int = 2) -> np.ndarray:
    """How many records of ``table`` match each predicate, counted up to ``cap``.

    Candidates are the rows satisfying each predicate's most selective condition (a run in
    that column's sort order); the other conditions filter them. Vectorised over predicates.
    """
    cols, vals, ops, lengths = predicates
    k, depth = cols.shape
    counts = np.zeros(k, dtype=np.int64)
    if k == 0:
        return counts
    start, end = table.runs(cols, vals, ops)
    active = np.arange(depth)[None, :] < lengths[:, None]
    best = np.argmin(np.where(active, end - start, table.n_rows + 1), axis=1)
    b_start = np.take_along_axis(start, best[:, None], axis=1)[:, 0]
    b_end = np.take_along_axis(end, best[:, None], axis=1)[:, 0]
    # Chunks of predicates whose candidate runs add up to about _BLOCK_CELLS rows at most.
    edges, acc = [0], 0
    for i, size_i in enumerate((b_end - b_start).tolist()):
        if acc + size_i > _BLOCK_CELLS and i > edges[-1]:
            edges.append(i)
            acc = 0
        acc += size_i
    edges.append(k)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        idx = np.arange(lo, hi)
        owner, rows = table.gather(cols[idx, best[idx]], b_start[idx], b_end[idx])
        pred = idx[owner]
        for s in range(int(lengths[idx].max())):
            check = np.flatnonzero((lengths[pred] > s) & (best[pred] != s))
            if check.size == 0:
                continue
            p = pred[check]
            ok = np.ones(pred.size, dtype=bool)
            ok[check] = table.in_run(cols[p, s], rows[check], start[p, s], end[p, s])
            pred, rows = pred[ok], rows[ok]
        counts[lo:hi] = np.minimum(np.bincount(pred - lo, minlength=hi - lo), cap)
    return counts


def _univariate_predicates(table: _Columns) -> Predicates:
    """One-condition predicates read off the synthetic columns that match one synthetic row.

    Per column: ``col == v`` for each value seen once, ``col <= min`` and ``col >= max`` for
    a numeric column, ``col is null`` when exactly one value of a numeric column is null (in
    a categorical or boolean column null is a value like the others).
    """
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    ops: list[np.ndarray] = []
    for j in range(table.x.shape[0]):
        values = table.sorted[j, : table.n_valid[j]]
        if table.numeric[j] and table.n_rows - table.n_valid[j] == 1:
            cols.append(np.array([j]))
            vals.append(np.array([np.nan]))
            ops.append(np.array([_NULL]))
        if table.numeric[j] and values.size:
            cols.append(np.array([j, j]))
            vals.append(values[[0, -1]])
            ops.append(np.array([_LE, _GE]))
        uniq, cnt = np.unique(values, return_counts=True)
        once = uniq[cnt == 1]
        cols.append(np.full(once.size, j))
        vals.append(once)
        ops.append(np.full(once.size, _EQ))
    c, v, o = (np.concatenate(a) for a in (cols, vals, ops))
    start, end = table.runs(c, v, o)
    keep = (end - start) == 1  # a column's minimum or maximum may be shared
    n = int(keep.sum())
    return c[keep, None], v[keep, None], o[keep, None], np.ones(n, dtype=np.int64)


def _shortest_unique_prefix(table: _Columns, cols: np.ndarray, vals: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """For conjunctions that single out their source row, the shortest prefix that does too."""
    b, depth = cols.shape
    length = np.zeros(b, dtype=np.int64)
    start, end = table.runs(cols, vals, ops)
    # Prefix of two conditions: gather the smaller run, filter with the other.
    size = end - start
    first = np.where(size[:, 0] <= size[:, 1], 0, 1) if depth > 1 else np.zeros(b, dtype=np.int64)
    length[size[:, 0] == 1] = 1
    if depth == 1:
        return length
    other = 1 - first
    ar = np.arange(b)
    owner, cand = table.gather(cols[ar, first], start[ar, first], end[ar, first])
    pending = length[owner] == 0
    owner, cand = owner[pending], cand[pending]
    for s in range(1, depth):
        slot = other[owner] if s == 1 else np.full(owner.size, s)
        ok = table.in_run(cols[owner, slot], cand, start[owner, slot], end[owner, slot])
        owner, cand = owner[ok], cand[ok]
        count = np.bincount(owner, minlength=b)
        length[(count == 1) & (length == 0)] = s + 1
        pending = length[owner] == 0
        owner, cand = owner[pending], cand[pending]
        if owner.size == 0:
            break
    return length


def _multivariate_predicates(table: _Columns, n: int, rng: np.random.Generator) -> tuple[Predicates, int]:
    """Conjunctions read off random synthetic rows that match their source row alone.

    For each source row (drawn without replacement) the columns are put in a random order;
    the predicate is the shortest prefix of that order whose conditions match the source row
    alone in the synthetic table. A row still matching others after ``MAX_PREDICATE_COLUMNS``
    conditions is dropped. Conditions: equality for a discrete column; for a numeric one the
    tail away from the synthetic median (``col >= v`` at or above it, ``col <= v`` below), or
    ``col is null``. Returns the predicates and the number of source rows tried.
    """
    x, numeric = table.x, table.numeric
    p, n_syn = x.shape
    depth = min(p, MAX_PREDICATE_COLUMNS)
    median = np.full(p, np.nan)
    for j in np.flatnonzero(numeric):
        nv = table.n_valid[j]
        if nv:
            median[j] = np.median(table.sorted[j, :nv])
    order = rng.permutation(n_syn)
    found: list[Predicates] = []
    total = tried = 0
    batch = 1024
    for first in range(0, n_syn, batch):
        rows = order[first : first + batch]
        b = len(rows)
        tried += b
        cols = np.argsort(rng.random((b, p)), axis=1)[:, :depth]
        vals = x[cols, rows[:, None]]
        with np.errstate(invalid="ignore"):
            tail = np.where(vals >= median[cols], _GE, _LE)
        ops = np.where(~numeric[cols], _EQ, np.where(np.isnan(vals), _NULL, tail))
        # The full conjunction is the most selective; most rows fail already here, cheaply.
        unique = _match_counts(table, (cols, vals, ops, np.full(b, depth))) == 1
        cols, vals, ops = cols[unique], vals[unique], ops[unique]
        length = _shortest_unique_prefix(table, cols, vals, ops)
        found.append((cols, vals, ops, length))
        total += len(length)
        if total >= n:
            break
    cols, vals, ops, lengths = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return (cols[:n], vals[:n], ops[:n], lengths[:n]), tried


def _chunked_predicates(
    syn: pl.DataFrame, contract: Contract, m: int, chunks: int, n: int, rng: np.random.Generator
) -> tuple[Predicates, int]:
    """Multivariate predicates read off ``chunks`` disjoint seeded samples of ``m`` synthetic rows,
    each predicate unique within its own sample; at most ``n`` in all.

    A table of few columns has few rows unique in the whole synthetic table (the steward
    walkthrough's 5 columns: 243 of 9,527), and so few predicates that even a no-leak table cannot
    clear the gate. Uniqueness within a sample as large as the attacked sets (train subsample and
    control, ``m`` rows each) is the attacker's natural scale, and the main and control attacks
    still share every predicate, so the comparison stays fair."""
    order = rng.permutation(syn.height)
    parts: list[Predicates] = []
    tried = total = 0
    for k in range(chunks):
        rows = np.sort(order[k * m : (k + 1) * m])
        preds, t = _multivariate_predicates(_Columns(syn[rows], contract), n - total, rng)
        parts.append(preds)
        tried += t
        total += len(preds[3])
        if total >= n:
            break
    cols, vals, ops, lengths = (np.concatenate(p) for p in zip(*parts, strict=True))
    return (cols[:n], vals[:n], ops[:n], lengths[:n]), tried


def singling_out_risk(
    train: pl.DataFrame,
    control: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    n_attacks: int = 500,
    mode: Literal["univariate", "multivariate"] = "multivariate",
    seed: int,
    max_risk: float = 0.10,
    confidence: float = 0.95,
) -> MetricResult:
    """Risk that the synthetic table lets an attacker single out a training record.

    The attacker reads predicates off the synthetic table only, keeping those that match
    exactly one synthetic row:

    - ``"univariate"``: one condition — a value seen once in a column (``col == v``), the
      smallest or largest value of a numeric column (``col <= min``, ``col >= max``), or the
      only null of a numeric column (in a categorical or boolean column null is a value);
    - ``"multivariate"``: a conjunction of conditions taken from one synthetic row, in a random
      column order, up to ``MAX_PREDICATE_COLUMNS`` columns (see ``_multivariate_predicates``).

    A predicate succeeds on a set of records when it matches exactly one of them. The same
    ``n_attacks`` predicates are evaluated on the main sets — ``train`` cut into up to
    ``MAX_MAIN_SETS`` disjoint seeded sets with as many rows as ``control``, so that the rates
    compare, all counted as main attacks — and on ``control`` (when train is the smaller, control
    is subsampled to train's size instead). Fewer
    predicates than ``n_attacks`` are used when the synthetic table does not yield enough
    (``details["n_attacks"]``); with none at all the attacker has nothing to try and the risk
    is 0.

    Args:
        train, control, synthetic: frames with exactly ``contract.modelled_columns``.
        contract: the data contract (columns and kinds).
        n_attacks: predicates to try (>= 1).
        mode: ``"univariate"`` or ``"multivariate"``.
        seed: seed of the predicates and of the subsample.
        max_risk: gate on the upper end of the risk's interval.
        confidence: confidence level of the interval.
    """
    _check_common(n_attacks, max_risk, confidence)
    if mode not in ("univariate", "multivariate"):
        raise ValueError(f"`mode` must be 'univariate' or 'multivariate'. Got {mode!r}.")
    tr = canonical_frame(train, contract, role="train")
    ct = canonical_frame(control, contract, role="control")
    syn = canonical_frame(synthetic, contract, role="synthetic")
    gen_rng, sub_rng = _seeds(seed, 2)
    m = min(tr.height, ct.height)
    # train cut into as many disjoint seeded sets of m rows as it holds (at most MAX_MAIN_SETS): each
    # compares with control, and together they halve (or better) the main rate's variance
    k = max(1, min(MAX_MAIN_SETS, tr.height // m)) if m else 1
    order = sub_rng.permutation(tr.height)
    main_sets = [tr[np.sort(order[i * m : (i + 1) * m])] for i in range(k)]
    control_set = subsample_rows(ct, m, sub_rng)

    names = contract.modelled_columns
    syn_table = _Columns(syn, contract)
    details: dict[str, object] = {
        "attack": f"singling_out_{mode}",
        "mode": mode,
        "n_attacks_requested": int(n_attacks),
        "columns": list(names),
        "evaluated_rows_each": m,
        "main_sets": k,
        "train_rows": tr.height,
        "control_rows": ct.height,
        "synthetic_rows": syn.height,
        "success": "the predicate matches exactly one record of the attacked set",
    }
    if mode == "univariate":
        cols, vals, ops, lengths = _univariate_predicates(syn_table)
        details["predicates_available"] = len(lengths)
        pick = np.sort(gen_rng.permutation(len(lengths))[:n_attacks])
        cols, vals, ops, lengths = cols[pick], vals[pick], ops[pick], lengths[pick]
    else:
        (cols, vals, ops, lengths), tried = _multivariate_predicates(syn_table, n_attacks, gen_rng)
        chunks = syn.height // m if m else 0
        if len(lengths) < n_attacks and chunks >= 2:
            found = _chunked_predicates(syn, contract, m, chunks, n_attacks, gen_rng)
            if len(found[0][3]) > len(lengths):
                (cols, vals, ops, lengths), tried = found
                details["predicates_from"] = (
                    f"{chunks} disjoint seeded samples of {m} synthetic rows (the attacked sets' size): "
                    "the whole synthetic table yielded fewer predicates"
                )
        details["synthetic_rows_tried"] = tried
        details["max_predicate_columns"] = min(len(names), MAX_PREDICATE_COLUMNS)
        details["mean_predicate_columns"] = float(lengths.mean()) if len(lengths) else 0.0
    n = len(lengths)
    if n < n_attacks:
        details["n_attacks_capped"] = f"only {n} predicates single out a synthetic row (requested {n_attacks})"
    name = f"singling_out_risk_{mode}"
    if n == 0:
        details["n_attacks"] = 0
        details["note"] = "no predicate singles out a synthetic row: the attacker has nothing to try"
        return MetricResult(
            name=name,
            value=0.0,
            threshold=max_risk,
            passed=True,
            direction="max",
            ci=(0.0, 0.0),
            gated_value=0.0,
            kind="privacy",
            description=SINGLING_OUT_DESCRIPTION[mode],
            details=details,
        )
    predicates = (cols, vals, ops, lengths)
    main_hits = sum(int((_match_counts(_Columns(part, contract), predicates) == 1).sum()) for part in main_sets)
    ctrl_hits = int((_match_counts(_Columns(control_set, contract), predicates) == 1).sum())
    est = attack_risk(main_hits, k * n, ctrl_hits, n, confidence=confidence)
    return _result(
        name,
        SINGLING_OUT_DESCRIPTION[mode],
        est,
        max_risk=max_risk,
        confidence=confidence,
        details=details,
        per_rows="n_attacks_capped" in details,  # fewer predicates than asked: the rows limit them
    )


# --- nearest synthetic rows ------------------------------------------------------------------


def _sub_contract(contract: Contract, columns: list[str]) -> Contract:
    """The contract restricted to ``columns`` (their specs unchanged), for encode_for_distance."""
    return contract.model_copy(update={"columns": {c: contract.columns[c] for c in columns}})


def _encode(df: pl.DataFrame, contract: Contract, columns: list[str]) -> np.ndarray:
    sub = _sub_contract(contract, columns)
    return encode_for_distance(df.select(sub.modelled_columns), sub).astype(np.float64)


def _nearest_rows(query: np.ndarray, reference: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (queries, k) of each query's k nearest reference rows; ties broken at random.

    Exact squared Euclidean distances in float64, rounded to multiples of ``_TIE_QUANTUM`` so
    that equal distances compare equal. Among equally near rows the choice follows a seeded
    random order of the reference rows (drawn once per call), so each tied row is equally
    likely to be picked. Returned nearest first.
    """
    n_ref = reference.shape[0]
    perm = rng.permutation(n_ref)
    ref = reference[perm]
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    out = np.empty((query.shape[0], k), dtype=np.int64)
    block = max(1, _BLOCK_CELLS // n_ref)
    for first in range(0, query.shape[0], block):
        q = query[first : first + block]
        d2 = np.einsum("ij,ij->i", q, q)[:, None] + ref_sq[None, :] - 2.0 * (q @ ref.T)
        dist = np.rint(np.maximum(d2, 0.0) / _TIE_QUANTUM)
        if k == 1:
            idx = np.argmin(dist, axis=1)[:, None]  # the first of the tied, in random order
        else:
            kth = np.partition(dist, k - 1, axis=1)[:, k - 1 : k]
            closer = dist < kth
            tied = dist == kth
            need = k - closer.sum(axis=1, keepdims=True)
            chosen = closer | (tied & (np.cumsum(tied, axis=1) <= need))
            idx = np.nonzero(chosen)[1].reshape(-1, k)
            idx = np.take_along_axis(
                idx, np.argsort(np.take_along_axis(dist, idx, axis=1), axis=1, kind="stable"), axis=1
            )
        out[first : first + q.shape[0]] = perm[idx]
    return out


# --- linkability -----------------------------------------------------------------------------


def _default_split(contract: Contract) -> tuple[list[str], list[str]]:
    names = contract.modelled_columns
    return names[0::2], names[1::2]


def linkability_risk(
    train: pl.DataFrame,
    control: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    aux_columns: tuple[list[str], list[str]] | None = None,
    n_attacks: int = 500,
    n_neighbors: int = 1,
    seed: int,
    max_risk: float = 0.10,
    confidence: float = 0.95,
) -> MetricResult:
    """Risk that the synthetic table lets an attacker link two partial records of one person.

    The attacker holds two datasets about the same people, one with columns A and one with
    columns B (``aux_columns``; default: the modelled columns in contract order, alternately
    to A and B). For each target record it finds the ``n_neighbors`` nearest synthetic rows
    using columns A only and using columns B only (the ``encode_for_distance`` distance
    restricted to those columns; ties broken at random), and succeeds when the two sets share
    a row. Targets: ``n_attacks`` seeded train rows (main) and as many control rows
    (control), capped by the rows available.

    Args:
        train, control, synthetic: frames with exactly ``contract.modelled_columns``.
        contract: the data contract.
        aux_columns: ``(columns A, columns B)``, two non-empty disjoint lists of modelled
            columns; default the alternating split.
        n_attacks: targets per side (>= 1).
        n_neighbors: synthetic neighbours per side (1 <= n_neighbors <= synthetic rows).
        seed: seed of the targets and the tie-breaks.
        max_risk: gate on the upper end of the risk's interval.
        confidence: confidence level of the interval.
    """
    _check_common(n_attacks, max_risk, confidence)
    if aux_columns is None:
        if len(contract.modelled_columns) < 2:
            raise ValueError(
                "linkability needs at least two modelled columns to split between the "
                f"attacker's datasets. The contract models {contract.modelled_columns}."
            )
        cols_a, cols_b = _default_split(contract)
    else:
        if not isinstance(aux_columns, (tuple, list)) or len(aux_columns) != 2:
            raise ValueError(
                "`aux_columns` must be a pair (columns A, columns B) of lists of column names. "
                f"Got {type(aux_columns).__name__} of length "
                f"{len(aux_columns) if hasattr(aux_columns, '__len__') else '?'}."
            )
        cols_a = _check_columns(aux_columns[0], contract, "aux_columns[0]")
        cols_b = _check_columns(aux_columns[1], contract, "aux_columns[1]")
        shared = [c for c in cols_a if c in cols_b]
        if shared:
            raise ValueError(
                f"`aux_columns` must split the columns: {shared} are in both lists. Put each column in one list only."
            )
    tr = canonical_frame(train, contract, role="train")
    ct = canonical_frame(control, contract, role="control")
    syn = canonical_frame(synthetic, contract, role="synthetic")
    if isinstance(n_neighbors, bool) or not 1 <= n_neighbors <= syn.height:
        raise ValueError(
            f"`n_neighbors` must be between 1 and the synthetic rows ({syn.height}). "
            f"Got {n_neighbors!r}. The usual choice is 1."
        )
    n, cap_info = _attack_count(n_attacks, tr, ct)
    target_rng, tie_rng = _seeds(seed, 2)
    main_targets = subsample_rows(train, n, target_rng)
    control_targets = subsample_rows(control, n, target_rng)

    hits = []
    syn_a, syn_b = _encode(synthetic, contract, cols_a), _encode(synthetic, contract, cols_b)
    for targets in (main_targets, control_targets):
        near_a = _nearest_rows(_encode(targets, contract, cols_a), syn_a, n_neighbors, tie_rng)
        near_b = _nearest_rows(_encode(targets, contract, cols_b), syn_b, n_neighbors, tie_rng)
        linked = (near_a[:, :, None] == near_b[:, None, :]).any(axis=(1, 2))
        hits.append(int(linked.sum()))
    est = attack_risk(hits[0], n, hits[1], n, confidence=confidence)
    return _result(
        "linkability_risk",
        LINKABILITY_DESCRIPTION,
        est,
        max_risk=max_risk,
        confidence=confidence,
        details={
            "attack": "linkability",
            **cap_info,
            "columns_a": list(cols_a),
            "columns_b": list(cols_b),
            "n_neighbors": int(n_neighbors),
            "train_rows": tr.height,
            "control_rows": ct.height,
            "synthetic_rows": syn.height,
            "success": "the nearest synthetic rows found with columns A and with columns B share a row",
        },
        per_rows="n_attacks_capped" in cap_info,  # as many targets as the rows allow
    )


# --- attribute inference ---------------------------------------------------------------------


def inference_risk(
    train: pl.DataFrame,
    control: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    secret: str,
    aux_columns: list[str] | None = None,
    n_attacks: int = 500,
    seed: int,
    max_risk: float = 0.10,
    confidence: float = 0.95,
) -> MetricResult:
    """Risk that the synthetic table lets an attacker infer a record's ``secret`` column.

    For each target the attacker knows the ``aux_columns`` (default: every other modelled
    column), finds the nearest synthetic row on them (``encode_for_distance`` restricted to
    those columns; ties broken at random) and guesses that row's secret.

    The secret's values fall into classes: a categorical or boolean secret's values (null is
    a class), a numeric secret's ``NUMERIC_SECRET_BINS`` quantile bins of the *synthetic*
    table's secret (edges at its deciles, equal edges merged, so a point mass is one bin;
    null is a class). A guess is right when it falls in the truth's class. Targets are drawn
    per stratum: each class held by ``MIN_CLASS_TARGETS`` rows of both train and control is a
    stratum, the rarer classes are pooled (``_strata``); each side attacks
    ``min(n_attacks // strata, its rows of the stratum)`` targets of each stratum (train, the
    larger side as a rule, then attacks more of them: a narrower interval on the main rate, the
    power that decides a rare class), and each side's success rate is the mean of its
    per-stratum rates (``balanced_attack_risk``).

    Why balanced: with plain accuracy a rare secret (4.5% positive) is guessed right ~91% of
    the time without any data, the risk ``(p - c) / (1 - c)`` divides by ``1 - c ~ 0.09`` and
    even fresh real rows cannot clear the gate at 6,500 rows per side (measured on
    DAAG::nassCDS, BENCHMARKS.md "False blocks"); and a leak of the rare value (the sensitive
    one) moves plain accuracy little. The balanced rate leaves ``1 - c`` near ``1 - 1/K`` and
    weights the rare value as much as the common one. Numeric secrets were judged right
    within 5% of the contract range before, which a skewed column (wages) makes almost
    always right; the quantile bins of the released table do not depend on the range.

    Args:
        train, control, synthetic: frames with exactly ``contract.modelled_columns``.
        contract: the data contract.
        secret: the modelled column to infer.
        aux_columns: the columns the attacker knows; must not include ``secret``.
        n_attacks: targets per side (>= 1), shared among the strata.
        seed: seed of the targets and the tie-breaks.
        max_risk: gate on the upper end of the risk's interval.
        confidence: confidence level of the interval.
    """
    _check_common(n_attacks, max_risk, confidence)
    if not isinstance(secret, str) or secret not in contract.modelled_columns:
        raise ValueError(
            f"`secret` {secret!r} is not a modelled column. Modelled columns: "
            f"{contract.modelled_columns}. Pass one of them (evaluation.secret_columns in the "
            "contract lists the declared secrets)."
        )
    if aux_columns is None:
        aux = [c for c in contract.modelled_columns if c != secret]
        if not aux:
            raise ValueError(
                f"inference needs at least one column besides the secret {secret!r}; the "
                "contract models no other column."
            )
    else:
        aux = _check_columns(aux_columns, contract, "aux_columns")
        if secret in aux:
            raise ValueError(
                f"`aux_columns` includes the secret {secret!r}. Remove it: the attacker must "
                "not know the value it tries to infer."
            )
    tr = canonical_frame(train, contract, role="train")
    ct = canonical_frame(control, contract, role="control")
    syn = canonical_frame(synthetic, contract, role="synthetic")
    target_rng, tie_rng = _seeds(seed, 2)

    numeric = contract.columns[secret].kind in NUMERIC_KINDS
    if numeric:
        points, edges = _secret_bins(numeric_values(syn[secret]))

        def classes(frame: pl.DataFrame) -> np.ndarray:
            return _numeric_secret_classes(numeric_values(frame[secret]), points, edges)
    else:

        def classes(frame: pl.DataFrame) -> np.ndarray:
            return discrete_codes(frame[secret], contract, secret)

    truth_main, truth_ctrl = classes(tr), classes(ct)
    strata_main, strata_ctrl = _strata(truth_main, truth_ctrl)
    shared = np.intersect1d(strata_main, strata_ctrl)
    quota = max(1, n_attacks // shared.size)
    # each side attacks up to the quota of each stratum, as many as it holds: train is usually the
    # larger side, and its extra targets narrow the main rate's interval (the rates are per class,
    # so unequal counts per side leave them comparable)
    per_side = [
        np.array([min(quota, int((strata == k).sum())) for k in shared]) for strata in (strata_main, strata_ctrl)
    ]
    per_class, per_class_ctrl = per_side
    picks = []
    for strata, counts in zip((strata_main, strata_ctrl), per_side, strict=True):
        picks.append(
            [
                np.sort(target_rng.choice(np.flatnonzero(strata == k), size=m, replace=False))
                for k, m in zip(shared, counts, strict=True)
            ]
        )

    syn_aux = _encode(synthetic, contract, aux)
    syn_class = classes(syn)
    hits = []
    for raw, truth, idx_by_class, counts in zip(
        (train, control), (truth_main, truth_ctrl), picks, per_side, strict=True
    ):
        idx = np.concatenate(idx_by_class)
        near = _nearest_rows(_encode(raw[idx], contract, aux), syn_aux, 1, tie_rng)[:, 0]
        right = syn_class[near] == truth[idx]
        bounds = np.cumsum([0, *counts])
        hits.append(np.array([int(right[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]))
    est = balanced_attack_risk(hits[0], hits[1], per_class, control_targets=per_class_ctrl, confidence=confidence)
    n_targets = int(per_class_ctrl.sum())
    details: dict[str, object] = {
        "attack": "inference",
        "n_attacks_requested": int(n_attacks),
        "secret": secret,
        "aux_columns": list(aux),
        "train_rows": tr.height,
        "control_rows": ct.height,
        "synthetic_rows": syn.height,
        "strata": int(shared.size),
        "fewest_targets_in_a_stratum": int(min(per_class.min(), per_class_ctrl.min())),
        "targets": [int(per_class.sum()), int(per_class_ctrl.sum())],
        "rates": "mean of the per-class success rates (balanced), targets drawn per class",
        "success": (
            f"the guess falls in the truth's bin among the synthetic table's {NUMERIC_SECRET_BINS} "
            "quantile bins of the secret (null = null)"
            if numeric
            else "the guess equals the true value (null = null)"
        ),
    }
    if n_targets < n_attacks:
        details["n_attacks_capped"] = (
            f"{int(per_class.sum())} train and {n_targets} control targets over {shared.size} strata: "
            f"each side's are capped by its rows of the stratum (train {tr.height} rows, control {ct.height})"
        )
    if est.effective is not None:
        details["effective_attacks"] = [round(est.effective[1], 1), round(est.effective[3], 1)]
    return _result(
        f"inference_risk[{secret}]",
        INFERENCE_DESCRIPTION.format(secret=secret),
        est,
        max_risk=max_risk,
        confidence=confidence,
        details=details,
        per_rows="n_attacks_capped" in details,  # the rows of a stratum cap its targets
    )


def _secret_bins(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point masses, inner bin edges) of a numeric secret, from the synthetic table's values.

    A value held by at least 1/``NUMERIC_SECRET_BINS`` of the non-null rows (a spike at 0, a
    bound) is a class of its own; the other values are cut at their deciles (equal edges
    merged). Both are empty when every value is null.
    """
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.empty(0), np.empty(0)
    vals, counts = np.unique(finite, return_counts=True)
    points = vals[counts * NUMERIC_SECRET_BINS >= finite.size]
    rest = finite[~np.isin(finite, points)]
    if rest.size == 0:
        return points, np.empty(0)
    return points, np.unique(np.quantile(rest, np.linspace(0.0, 1.0, NUMERIC_SECRET_BINS + 1)[1:-1]))


def _numeric_secret_classes(values: np.ndarray, points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Class of each numeric value: its bin (0 .. len(edges)), a point mass, or null."""
    out = np.searchsorted(edges, values, side="right").astype(np.int64)
    if points.size:
        at_point = np.minimum(np.searchsorted(points, values), points.size - 1)
        is_point = points[at_point] == values
        out[is_point] = edges.size + 1 + at_point[is_point]
    out[np.isnan(values)] = edges.size + 1 + points.size
    return out


def _strata(main: np.ndarray, control: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sampling strata of the targets, from the secret's class of each row on each side.

    A class held by at least ``MIN_CLASS_TARGETS`` rows on both sides is a stratum of its own.
    The other classes form one pooled stratum when that pool reaches the minimum on both sides,
    else they join the largest stratum (a balanced mean cannot weigh a class with a handful of
    targets as much as a common one without an interval too wide to ever pass). No row is left
    out; when no class reaches the minimum there is one stratum, and the rate is plain accuracy.
    """
    values, c_main = np.unique(main, return_counts=True)
    c_ctrl = np.array([(control == v).sum() for v in values])
    big = (c_main >= MIN_CLASS_TARGETS) & (c_ctrl >= MIN_CLASS_TARGETS)
    pool = int(values.max()) + 1 if values.size else 0
    pooled = (c_main[~big].sum(), c_ctrl[~big].sum())
    if big.any() and min(pooled) < MIN_CLASS_TARGETS:
        pool = int(values[big][np.argmax(np.minimum(c_main, c_ctrl)[big])])  # the largest stratum
    own = values[big]
    return tuple(np.where(np.isin(side, own), side, pool) for side in (main, control))  # type: ignore[return-value]


# --- all of them -----------------------------------------------------------------------------


def anonymeter_checks(
    train: pl.DataFrame,
    control: pl.DataFrame,
    synthetic: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    n_attacks: int | None = None,
    n_inference_attacks: int | None = None,
) -> list[MetricResult]:
    """Singling out (univariate, multivariate), linkability, and inference per secret column.

    ``n_attacks`` defaults to ``contract.evaluation.anonymeter_attacks`` and
    ``n_inference_attacks`` to ``contract.evaluation.inference_attacks`` (more, because the
    inference risk is divided by 1 - the control success rate, which is small for a secret
    that is easy to guess anyway); both are capped by the rows available (said in each
    result's details); every gate is
    ``contract.gates.max_anonymeter_risk`` on the upper end of a 95% interval. Inference runs
    for each of ``contract.secret_columns`` (the declared secrets, else the target; none when
    neither is set). Each attack gets its own seed derived from ``seed``.
    """
    n = contract.evaluation.anonymeter_attacks if n_attacks is None else n_attacks
    max_risk = contract.gates.max_anonymeter_risk
    _check_common(n, max_risk, 0.95)
    secrets = contract.secret_columns
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3 + len(secrets))]
    common = {"n_attacks": n, "max_risk": max_risk}
    results = [
        singling_out_risk(train, control, synthetic, contract, mode="univariate", seed=seeds[0], **common),
        singling_out_risk(train, control, synthetic, contract, mode="multivariate", seed=seeds[1], **common),
        linkability_risk(train, control, synthetic, contract, seed=seeds[2], **common),
    ]
    n_inf = contract.evaluation.inference_attacks if n_inference_attacks is None else n_inference_attacks
    _check_common(n_inf, max_risk, 0.95)
    for secret, s in zip(secrets, seeds[3:], strict=True):
        results.append(
            inference_risk(
                train, control, synthetic, contract, secret=secret, seed=s, n_attacks=n_inf, max_risk=max_risk
            )
        )
    return results
