"""Membership-inference attacks: can the synthetic table tell who was in the training set?

Each attack gives every record a score, higher meaning "more likely a member" (a training
row), using only the synthetic table and, where stated, a reference sample of the population
that is neither a member nor a scored non-member. Members are training rows, non-members
holdout rows; ``roc_summary`` turns the two score sets into a ROC AUC (0.5 = the attacker
cannot tell them apart) with a confidence interval, and the true-positive rate at a 1%
false-positive rate (how many members an attacker exposes while rarely accusing an outsider).

Attacks:

- ``distance_attack``: minus the distance to the nearest synthetic row (a copied or
  near-copied record sits at distance ~0).
- ``density_ratio_attack``: DOMIAS (van Breugel et al., 2023): log p_synthetic(x) -
  log p_reference(x), densities by Gaussian kernel density estimates in a low-dimensional
  PCA space; it looks for local overdensities of the synthetic table around members.
- Shadow models (LiRA, Carlini et al., 2022), in three steps so a flow can train the shadow
  synthesizers as independent tasks: ``plan_shadow_runs`` -> ``shadow_training_frame`` (train
  one shadow synthesizer per run on it, sample it) -> ``shadow_attack``. The records attacked
  are usually the most exposed ones, chosen by ``select_exposed``.

``membership_inference`` turns the attacks into the two release gates (worst AUC, by its upper
confidence bound; worst TPR at 1% FPR).

Like every privacy check these read private rows outside the DP guarantee: results carry
aggregates only (AUCs, rates, counts, bandwidths, column names), never a row, a value of a row
or a record's index. ``select_exposed`` returns positions, for the caller to pass on to the
shadow-model steps; they must not be written to a result or a log.

Distances are those of ``validation.encoding.encode_for_distance`` (numeric ``|Δ|/range`` with
the contract's bounds, categorical 0/1, Euclidean combination).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score, roc_curve

from synthgate.validation.contract import Contract, Gates
from synthgate.validation.encoding import canonical_frame, encode_for_distance, nearest_distances, subsample_rows
from synthgate.validation.results import MetricResult, min_rows_to_pass, upper_bound_gate
from synthgate.validation.stats import check_confidence, delong_auc_variance, two_sided_z

__all__ = [
    "AttackResult",
    "ShadowRun",
    "density_ratio_attack",
    "distance_attack",
    "membership_inference",
    "plan_shadow_runs",
    "roc_summary",
    "select_exposed",
    "shadow_attack",
    "shadow_training_frame",
]

# A true-positive rate at 1% FPR needs enough non-members for 1% of them to be a handful of
# records: at 500, the threshold admits at most 5 false positives. Below that it is noise.
MIN_NONMEMBERS_FOR_TPR = 500
TARGET_FPR = 0.01
# DOMIAS: dimension of the PCA space the kernel densities live in, and the row caps of the
# synthetic and reference samples the densities are fitted on (cost: queries x rows x dims).
DEFAULT_KDE_DIMENSIONS = 8
DEFAULT_MAX_DENSITY_ROWS = 20_000
# Bandwidth: Scott's rule times the factor of this grid with the best held-out likelihood.
_BANDWIDTH_FACTORS = 2.0 ** np.arange(1, -9, -1)  # 2, 1, 1/2, ..., 1/256
_CV_HELD_OUT = 1_000
# Rows (synthetic and reference together) the PCA is fitted on.
_PCA_FIT_ROWS = 10_000
_CV_FIT_ROWS = 5_000
# Distances evaluated at once by the KDE (8 bytes each: 8M = 64 MB).
_KDE_CHUNK_ELEMENTS = 8_000_000
# Shadow attack feature: log(distance to the nearest synthetic row + floor). The floor (a
# thousandth of one numeric column's range) keeps exact copies finite, and reads anything
# closer than it as a copy.
_DISTANCE_FLOOR = 1e-3
# Smallest spread of the LiRA Gaussians (log-distance units, i.e. ~5% relative change in
# distance): when every "in" shadow copies a target the pooled spread is 0, and an
# unbounded likelihood ratio would turn float noise into certainty.
_MIN_SIGMA = 0.05
# Distances this close count as ties when ranking outlyingness (see privacy._TIE_TOLERANCE).
_TIE_DECIMALS = 6

MIA_AUC_DESCRIPTION = (
    "How well the strongest membership-inference attack tells records used for training "
    "from unseen real records using the synthetic data (0.5 = no better than a coin flip, "
    "1 = perfectly); gated on the upper end of its 95% interval."
)
MIA_TPR_DESCRIPTION = (
    "Share of training records the strongest membership-inference attack exposes while "
    "wrongly accusing at most 1 in 100 unseen records; near 0.01 means it learns nothing."
)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackResult:
    """The outcome of one membership-inference attack: aggregates only.

    ``tpr_gated`` is True when there are enough non-members (>= 500) for a 1% false-positive
    rate to mean something; otherwise the TPR is reported but not gated.
    """

    name: str
    auc: float
    ci: tuple[float, float]
    tpr_at_1pct_fpr: float
    n_members: int
    n_nonmembers: int
    tpr_gated: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, with_details: bool = False) -> dict[str, Any]:
        """The attack as one row of the report's table (``details`` too when asked)."""
        d: dict[str, Any] = {
            "name": self.name,
            "auc": self.auc,
            "ci": [self.ci[0], self.ci[1]],
            "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "tpr_gated": self.tpr_gated,
        }
        if with_details:
            d["details"] = dict(self.details)
        return d


@dataclass(frozen=True, eq=False)
class ShadowRun:
    """One shadow synthesizer's training set: reference rows plus the targets it includes.

    ``reference_rows`` are positions into the reference pool, ``target_in`` says which
    targets (by position) the training set includes, ``seed`` seeds the shuffle of the
    training frame and should seed the shadow synthesizer's training and sampling.
    """

    index: int
    reference_rows: np.ndarray
    target_in: np.ndarray
    seed: int


# --- ROC summary -----------------------------------------------------------------------------


def _scores(values: Any, role: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"`{role}` must be a 1-D array of scores. Got shape {x.shape}.")
    if x.size < 2:
        raise ValueError(
            f"`{role}` needs at least 2 scores for a confidence interval. Got {x.size}. Attack more records."
        )
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise ValueError(
            f"`{role}` holds {bad} non-finite score(s) (NaN or infinity). Every score must be "
            "a finite number; check the attack that produced them."
        )
    return x


def auc_power_floor(
    n_members: int, n_nonmembers: int, max_auc: float, confidence: float = 0.95
) -> tuple[float, int | None]:
    """The upper bound of an attack with no signal (AUC 0.5) at these set sizes, by Hanley and
    McNeil's variance at AUC 0.5, ``(n1 + n0 + 1) / (12 n1 n0)``; and the members (= non-members)
    at which it would clear ``max_auc``. An estimate of the power floor (the gate itself uses DeLong)."""
    z = two_sided_z(confidence)

    def floor_at_sizes(n1: int, n0: int) -> float:
        return 0.5 + z * math.sqrt((n1 + n0 + 1) / (12.0 * max(n1, 1) * max(n0, 1)))

    now = floor_at_sizes(n_members, n_nonmembers)
    if now <= max_auc:
        return now, None
    return now, min_rows_to_pass(lambda m: floor_at_sizes(m, m), max_auc, start=max(2, min(n_members, n_nonmembers)))


def roc_summary(
    member_scores: Any, nonmember_scores: Any, *, confidence: float = 0.95
) -> tuple[float, tuple[float, float], float]:
    """ROC AUC, its confidence interval and the TPR at 1% FPR of membership scores.

    A higher score means "member". The AUC is scikit-learn's ``roc_auc_score`` (ties count
    half). The interval is ``AUC ± z * se`` with DeLong's nonparametric variance, clipped to
    [0, 1]: unlike Hanley & McNeil's formula it assumes no shape for the score distributions
    (Hanley–McNeil's is exact only for exponential scores) and it accounts for ties. It is
    degenerate (zero width) when the two sets are perfectly separated.

    The TPR at 1% FPR is the largest true-positive rate among the ROC curve's points whose
    false-positive rate is at most 0.01 (no interpolation). With fewer than 100 non-members
    that means "no non-member above the threshold", so it needs a few hundred non-members to
    be meaningful (see ``AttackResult.tpr_gated``).

    Args:
        member_scores: 1-D finite scores of members (at least 2).
        nonmember_scores: 1-D finite scores of non-members (at least 2).
        confidence: confidence level of the interval, in (0, 1).

    Returns:
        ``(auc, (lo, hi), tpr_at_1pct_fpr)``.
    """
    check_confidence(confidence)
    pos = _scores(member_scores, "member_scores")
    neg = _scores(nonmember_scores, "nonmember_scores")
    y = np.concatenate([np.ones(pos.size, dtype=np.int8), np.zeros(neg.size, dtype=np.int8)])
    s = np.concatenate([pos, neg])
    auc = float(roc_auc_score(y, s))
    _, var = delong_auc_variance(pos, neg)
    half = two_sided_z(confidence) * math.sqrt(max(var, 0.0))
    ci = (max(0.0, auc - half), min(1.0, auc + half))
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    tpr_low = float(tpr[fpr <= TARGET_FPR + 1e-12].max())  # the curve starts at (0, 0)
    return auc, ci, tpr_low


def _attack_result(
    name: str, member_scores: np.ndarray, nonmember_scores: np.ndarray, details: dict[str, Any]
) -> AttackResult:
    auc, ci, tpr = roc_summary(member_scores, nonmember_scores)
    n_non = int(np.asarray(nonmember_scores).size)
    return AttackResult(
        name=name,
        auc=auc,
        ci=ci,
        tpr_at_1pct_fpr=tpr,
        n_members=int(np.asarray(member_scores).size),
        n_nonmembers=n_non,
        tpr_gated=n_non >= MIN_NONMEMBERS_FOR_TPR,
        details=details,
    )


# --- encodings and distances -----------------------------------------------------------------


def _encode(df: pl.DataFrame, contract: Contract, role: str) -> np.ndarray:
    """``encode_for_distance`` with error messages that name the argument."""
    canonical_frame(df, contract, role=role)  # checks columns and dtypes, says which argument is wrong
    return encode_for_distance(df, contract)


def distance_attack(
    synthetic: pl.DataFrame, members: pl.DataFrame, nonmembers: pl.DataFrame, contract: Contract
) -> AttackResult:
    """Score each record by minus its distance to the nearest synthetic row.

    A generator that copies or nearly copies training records puts members at distance ~0
    from the synthetic table and non-members further away. Exact nearest neighbours over
    every synthetic row (scikit-learn brute force, float32 encodings).

    Args:
        synthetic: the released synthetic table.
        members: training rows to score (members).
        nonmembers: holdout rows to score (non-members).
        contract: the data contract (columns, bounds, categories).
    """
    s = _encode(synthetic, contract, "synthetic")
    m = _encode(members, contract, "members")
    h = _encode(nonmembers, contract, "nonmembers")
    d_m = nearest_distances(s, m)[:, 0]
    d_h = nearest_distances(s, h)[:, 0]
    return _attack_result(
        "distance",
        -d_m,
        -d_h,
        {
            "score": "minus the distance to the nearest synthetic row",
            "median_distance_members": float(np.median(d_m)),
            "median_distance_nonmembers": float(np.median(d_h)),
            "synthetic_rows": int(s.shape[0]),
        },
    )


# --- DOMIAS ----------------------------------------------------------------------------------


def _whitened_pca(fit_on: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, projection) mapping a row to its first ``dims`` whitened principal components.

    Components with no variance are dropped (a constant direction cannot be whitened).
    """
    k = max(1, min(dims, fit_on.shape[1], fit_on.shape[0] - 1))
    pca = PCA(n_components=k, svd_solver="covariance_eigh").fit(fit_on.astype(np.float64))
    var = pca.explained_variance_
    keep = var > 1e-12 * max(float(var.sum()), 1e-300)
    if not keep.any():  # every fitted row is identical: one unit direction, all points at 0
        keep[0] = True
        var = np.ones_like(var)
    projection = pca.components_[keep].T / np.sqrt(var[keep])
    return pca.mean_, projection, int(keep.sum())


def _scott_bandwidth(n: int, d: int) -> float:
    """Scott's rule for data with unit variance in every direction: n^(-1/(d+4))."""
    return float(n ** (-1.0 / (d + 4)))


def _gaussian_kde_log(fit_on: np.ndarray, query: np.ndarray, bandwidths: Any) -> np.ndarray:
    """Log density at ``query`` of the isotropic Gaussian KDE of ``fit_on`` (exact).

    ``bandwidths`` is one bandwidth (returns shape ``(n_query,)``) or several (returns
    ``(n_query, n_bandwidths)``, sharing one distance computation). Same value as
    scikit-learn's ``KernelDensity(kernel="gaussian").score_samples`` with ``rtol=0``,
    computed by brute force in query chunks (one BLAS product each) with a per-row
    log-sum-exp shift, so no density underflows to -inf. KernelDensity's tree walk is
    single-threaded, several times slower on a few thousand queries against 20,000 rows, and
    with a narrow bandwidth returns a floor instead of the density of a query far from
    every row (which matters here: isolated records are the ones at risk).
    """
    h = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
    n, d = fit_on.shape
    norm_const = -math.log(n) - d * np.log(h) - 0.5 * d * math.log(2.0 * math.pi)
    fit_sq = (fit_on**2).sum(axis=1)
    out = np.empty((query.shape[0], h.size), dtype=np.float64)
    chunk = max(1, _KDE_CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, query.shape[0], chunk):
        q = query[start : start + chunk]
        # squared distances, shifted by each row's smallest so the largest term is e^0
        sq = q @ fit_on.T
        sq *= -2.0
        sq += fit_sq[None, :]
        sq += (q**2).sum(axis=1)[:, None]
        np.maximum(sq, 0.0, out=sq)  # rounding can make a squared distance negative
        nearest = sq.min(axis=1)
        sq -= nearest[:, None]
        for j, bw in enumerate(h):
            expo = sq * (-0.5 / bw**2)
            # Terms below e^-40 of the largest change the sum by < n * 4e-18 (relative):
            # skipping their exp is most of the saving with a narrow bandwidth.
            terms = np.exp(expo, where=expo > -40.0, out=np.zeros_like(expo))
            out[start : start + chunk, j] = np.log(terms.sum(axis=1)) - 0.5 * nearest / bw**2
    out += norm_const[None, :]
    return out[:, 0] if np.ndim(bandwidths) == 0 else out


def _cv_bandwidth_factor(z: np.ndarray, rng: np.random.Generator) -> float:
    """The factor on Scott's rule that maximises the held-out log-likelihood of ``z``'s KDE.

    Likelihood cross-validation on one split: up to ``_CV_HELD_OUT`` rows are held out and
    the KDE is fitted on up to ``_CV_FIT_ROWS`` of the others; each factor in
    ``_BANDWIDTH_FACTORS`` scales Scott's rule for the fitted row count. The factor (not the
    bandwidth) carries over to the full sample, whose Scott bandwidth accounts for its size.
    """
    n = z.shape[0]
    order = rng.permutation(n)
    n_held = max(1, min(_CV_HELD_OUT, n // 4))
    held, fit = z[order[:n_held]], z[order[n_held : n_held + _CV_FIT_ROWS]]
    bandwidths = _BANDWIDTH_FACTORS * _scott_bandwidth(fit.shape[0], z.shape[1])
    loglik = _gaussian_kde_log(fit, held, bandwidths).mean(axis=0)
    return float(_BANDWIDTH_FACTORS[int(np.argmax(loglik))])


def density_ratio_attack(
    synthetic: pl.DataFrame,
    members: pl.DataFrame,
    nonmembers: pl.DataFrame,
    reference: pl.DataFrame,
    contract: Contract,
    *,
    seed: int,
    dimensions: int = DEFAULT_KDE_DIMENSIONS,
    max_rows: int = DEFAULT_MAX_DENSITY_ROWS,
) -> AttackResult:
    """DOMIAS: score = log p_synthetic(x) - log p_reference(x) (van Breugel et al., 2023).

    A generator that overfits puts extra synthetic mass around its training records; dividing
    by the population density (estimated from ``reference``) separates that overdensity
    from records that are merely typical. ``reference`` must be real rows of the population
    that are neither members nor the scored non-members (e.g. the rest of the holdout).

    Densities are Gaussian kernel density estimates in a ``dimensions``-dimensional space:
    the encodings of ``encode_for_distance`` projected on their first principal components,
    whitened (unit variance per component). The PCA is fitted on the synthetic and reference
    rows only (at most 10,000 of them, seeded), never on the scored records. Kernel density
    estimates degrade quickly with dimension; 8 keeps most of the spread of a mixed-type
    table at a cost of a few seconds for 4,000 records against 20,000 rows.

    Bandwidth: Scott's rule, ``n^(-1/(d+4))`` in whitened units for each estimate's own row
    count, times a factor from {2, 1, 1/2, ..., 1/256} chosen by likelihood cross-validation
    on that estimate's own rows (synthetic rows for p_synthetic, reference rows for
    p_reference; never the scored records). Scott's rule is tuned for smooth, roughly
    Gaussian densities and blurs the tight bumps an overfitted generator leaves around its
    training records; cross-validation picks a narrow kernel exactly when the rows hold such
    bumps, and a smooth one otherwise. The densities are computed exactly by brute force
    (same values as scikit-learn's ``KernelDensity``, which is slower and floors the
    density of records far from every row).

    Args:
        synthetic: the released synthetic table.
        members, nonmembers: the records scored (training rows, holdout rows).
        reference: population rows disjoint from members and non-members.
        contract: the data contract.
        seed: seed of the subsamples of ``synthetic`` and ``reference`` (above ``max_rows``)
            and of the cross-validation splits.
        dimensions: PCA components the densities are estimated in (>= 1).
        max_rows: at most this many synthetic and reference rows fit each density.
    """
    if dimensions < 1:
        raise ValueError(f"`dimensions` must be >= 1. Got {dimensions}. The default is {DEFAULT_KDE_DIMENSIONS}.")
    if max_rows < 10:
        raise ValueError(f"`max_rows` must be >= 10. Got {max_rows}. The default is {DEFAULT_MAX_DENSITY_ROWS}.")
    for frame, role in ((synthetic, "synthetic"), (reference, "reference")):
        canonical_frame(frame, contract, role=role)
        if frame.height < 2:
            raise ValueError(f"`{role}` has {frame.height} row; a density estimate needs at least 2. Pass more rows.")
    syn_seed, ref_seed, pca_seq, *cv_seqs = np.random.SeedSequence(seed).spawn(5)
    syn = subsample_rows(synthetic, max_rows, np.random.default_rng(syn_seed))
    ref = subsample_rows(reference, max_rows, np.random.default_rng(ref_seed))
    s = encode_for_distance(syn, contract)
    r = encode_for_distance(ref, contract)
    m = _encode(members, contract, "members")
    h = _encode(nonmembers, contract, "nonmembers")

    both = np.vstack([s, r])
    if both.shape[0] > _PCA_FIT_ROWS:  # the leading directions are stable well before this
        both = both[np.random.default_rng(pca_seq).choice(both.shape[0], _PCA_FIT_ROWS, replace=False)]
    mean, proj, d = _whitened_pca(both, dimensions)
    zs, zr, zm, zh = ((x.astype(np.float64) - mean) @ proj for x in (s, r, m, h))
    cv_syn, cv_ref = (np.random.default_rng(q) for q in cv_seqs)
    factor_syn, factor_ref = _cv_bandwidth_factor(zs, cv_syn), _cv_bandwidth_factor(zr, cv_ref)
    bw_syn = factor_syn * _scott_bandwidth(zs.shape[0], d)
    bw_ref = factor_ref * _scott_bandwidth(zr.shape[0], d)
    queries = np.vstack([zm, zh])
    score = _gaussian_kde_log(zs, queries, bw_syn) - _gaussian_kde_log(zr, queries, bw_ref)
    return _attack_result(
        "density_ratio",
        score[: zm.shape[0]],
        score[zm.shape[0] :],
        {
            "score": "log p_synthetic - log p_reference (DOMIAS), Gaussian KDE",
            "dimensions": d,
            "bandwidth_synthetic": bw_syn,
            "bandwidth_reference": bw_ref,
            "bandwidth_factor_synthetic": factor_syn,
            "bandwidth_factor_reference": factor_ref,
            "bandwidth_rule": "Scott's rule (whitened PCA units) times a factor chosen by held-out likelihood",
            "synthetic_rows_used": int(zs.shape[0]),
            "reference_rows_used": int(zr.shape[0]),
        },
    )


# --- exposed records -------------------------------------------------------------------------


def select_exposed(
    train: pl.DataFrame, holdout: pl.DataFrame, contract: Contract, *, n_per_side: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``n_per_side`` most outlying train rows and holdout rows.

    A record's outlyingness is its distance to the nearest *other* real row of train ∪
    holdout (``encode_for_distance`` space, exact brute-force neighbours, chunked by
    scikit-learn). Outliers are the records a generator is most likely to reveal, so the
    shadow-model attack spends its budget on them. Both sides are measured against the same
    pooled set, and the larger side is first subsampled (seeded) to the smaller's size, so
    that each side's top ``n_per_side`` come from equally many candidates: otherwise the
    larger side's picks would be more extreme, and members and non-members would differ
    before any generator is involved. Equal distances (to 1e-6) are ordered by a seeded
    random key.

    The positions are private (they say which people are outliers): pass them to the
    shadow-model steps, never to a result, a log or an artifact.

    Returns:
        ``(train_positions, holdout_positions)``, int64 arrays of length ``n_per_side``
        (positions in ``train`` and in ``holdout``), most outlying first.
    """
    if n_per_side < 1:
        raise ValueError(f"`n_per_side` must be >= 1. Got {n_per_side}. Set evaluation.mia_targets.")
    t = _encode(train, contract, "train")
    h = _encode(holdout, contract, "holdout")
    m = min(t.shape[0], h.shape[0])
    if n_per_side > m:
        raise ValueError(
            f"`n_per_side` ({n_per_side}) exceeds the rows of train ({t.shape[0]}) or holdout "
            f"({h.shape[0]}). Lower evaluation.mia_targets to at most {m}."
        )
    rng = np.random.default_rng(seed)
    cand_t, cand_h = (
        np.sort(rng.choice(x.shape[0], m, replace=False)) if x.shape[0] > m else np.arange(m) for x in (t, h)
    )
    pool = np.vstack([t, h])
    # Two neighbours: a row's own distance 0 is one of them, so the larger is the nearest
    # other row (0 when the row has a duplicate, whichever of the two copies comes back).
    nearest_other = nearest_distances(pool, np.vstack([t[cand_t], h[cand_h]]), k=2)[:, 1]
    key = np.round(nearest_other, _TIE_DECIMALS)
    jitter = rng.random(2 * m)

    def _top(candidates: np.ndarray, lo: int) -> np.ndarray:
        order = np.lexsort((jitter[lo : lo + m], -key[lo : lo + m]))  # last key is primary
        return candidates[order[:n_per_side]].astype(np.int64)

    return _top(cand_t, 0), _top(cand_h, m)


# --- shadow models ---------------------------------------------------------------------------


def plan_shadow_runs(
    n_targets: int, n_reference: int, *, n_shadows: int, shadow_rows: int, seed: int
) -> list[ShadowRun]:
    """Plan the shadow synthesizers' training sets (LiRA's design, Carlini et al., 2022).

    Each target is included in exactly ``n_shadows // 2`` shadows (a random subset per
    target), so every target has "in" and "out" shadows to compare. Each shadow also gets
    ``shadow_rows`` rows of the reference pool drawn without replacement. The reference pool
    must not contain the targets (e.g. population rows outside train and the targets).

    Args:
        n_targets: number of attacked records (members and non-members together).
        n_reference: rows in the reference pool.
        n_shadows: shadow synthesizers (>= 4: LiRA estimates the spread of the "in" and
            "out" features from at least two shadows each).
        shadow_rows: reference rows per shadow (<= n_reference).
        seed: root seed; each run gets its own seed split from it.
    """
    if n_targets < 1:
        raise ValueError(f"`n_targets` must be >= 1. Got {n_targets}. Select targets with select_exposed.")
    if n_shadows < 4:
        raise ValueError(
            f"`n_shadows` must be >= 4 (two shadows with and two without each target). Got "
            f"{n_shadows}. Set evaluation.shadow_models to 0 to skip the attack, or to >= 4."
        )
    if shadow_rows < 1 or shadow_rows > n_reference:
        raise ValueError(
            f"`shadow_rows` must be between 1 and the reference pool's size ({n_reference}). "
            f"Got {shadow_rows}. Lower evaluation.shadow_rows or pass a larger reference pool."
        )
    plan_seq, *run_seqs = np.random.SeedSequence(seed).spawn(n_shadows + 1)
    rng = np.random.default_rng(plan_seq)
    k = n_shadows // 2
    # Row t: a random permutation of the shadows; the first k include target t.
    ranks = np.argsort(rng.random((n_targets, n_shadows)), axis=1)
    included = ranks < k  # exactly k True per row
    runs = []
    for i, seq in enumerate(run_seqs):
        run_rng = np.random.default_rng(seq)
        rows = np.sort(run_rng.choice(n_reference, size=shadow_rows, replace=False)).astype(np.int64)
        runs.append(
            ShadowRun(index=i, reference_rows=rows, target_in=included[:, i].copy(), seed=int(seq.generate_state(1)[0]))
        )
    return runs


def shadow_training_frame(run: ShadowRun, targets: pl.DataFrame, reference_pool: pl.DataFrame) -> pl.DataFrame:
    """The training rows of one shadow synthesizer: its reference rows plus its included targets.

    Rows are shuffled with ``run.seed`` so the targets are not all at the end.
    """
    if run.target_in.shape != (targets.height,):
        raise ValueError(
            f"run {run.index} plans {run.target_in.shape[0]} targets but `targets` has "
            f"{targets.height} rows. Pass the targets the runs were planned for."
        )
    if run.reference_rows.size and int(run.reference_rows.max()) >= reference_pool.height:
        raise ValueError(
            f"run {run.index} uses reference positions up to {int(run.reference_rows.max())} but "
            f"`reference_pool` has {reference_pool.height} rows. Pass the pool the runs were planned for."
        )
    if set(targets.columns) != set(reference_pool.columns):
        raise ValueError(
            f"`targets` and `reference_pool` must have the same columns. Targets: "
            f"{targets.columns}; reference pool: {reference_pool.columns}."
        )
    frame = pl.concat(
        [reference_pool[run.reference_rows], targets.filter(pl.Series(run.target_in)).select(reference_pool.columns)],
        how="vertical_relaxed",
    )
    perm = np.random.default_rng(run.seed).permutation(frame.height)
    return frame[perm]


def _pooled_sigma(features: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Per-target mean of the masked features and the pooled within-target std (and its dof)."""
    count = mask.sum(axis=1)
    total = np.where(mask, features, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    dev = np.where(mask, features - mean[:, None], 0.0)
    dof = int(np.maximum(count - 1, 0).sum())
    sigma = math.sqrt(float((dev**2).sum()) / dof) if dof > 0 else float("nan")
    return mean, sigma, dof


def _gauss_logpdf(x: np.ndarray, mu: np.ndarray, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma)


def shadow_attack(
    runs: list[ShadowRun],
    shadow_synthetics: list[pl.DataFrame],
    targets: pl.DataFrame,
    target_is_member: np.ndarray,
    released_synthetic: pl.DataFrame,
    contract: Contract,
) -> AttackResult:
    """LiRA with a global variance on shadow synthesizers (Carlini et al., 2022).

    Feature of a target in a synthetic table: ``log(distance to the nearest synthetic row
    + 1e-3)``. The nearest-row distance is what copying or near-copying changes; its log
    turns its multiplicative spread into a roughly symmetric, Gaussian-like one, and the
    1e-3 floor keeps exact copies finite. For each target the mean feature over the shadows
    whose training set included it ("in") and over those that did not ("out") are compared;
    the spreads are pooled across all targets (one for "in", one for "out"; within-target
    deviations, floored at 0.05), because a handful of shadows cannot estimate a spread per
    target. A target's score is the Gaussian log-likelihood ratio in/out of its feature in
    the released synthetic table. The AUC is over the targets: members (from train) against
    non-members (from holdout).

    The shadow synthetic tables should have the same row count as the released one (the
    caller samples them so): the nearest-row distance shrinks with more rows. A shadow
    trained on fewer rows than the real training set (``shadow_rows`` plus the included
    targets) is an approximation of the released synthesizer; with fewer rows it tends to
    memorise more, so the attack errs towards finding a risk.

    Args:
        runs: the plan from ``plan_shadow_runs``; targets without an "in" or an "out" shadow
            among them are left out of the AUC (counted in ``details``).
        shadow_synthetics: one synthetic table per run, in the same order.
        targets: the attacked records (all of them, in the order the runs were planned for).
        target_is_member: bool per target, True for a training row.
        released_synthetic: the synthetic table to be released.
        contract: the data contract.
    """
    if len(runs) != len(shadow_synthetics):
        raise ValueError(
            f"got {len(runs)} shadow runs but {len(shadow_synthetics)} shadow synthetic tables. "
            "Pass one synthetic table per run, in the runs' order."
        )
    if not runs:
        raise ValueError("`runs` is empty. Plan shadow runs with plan_shadow_runs and train them first.")
    is_member = np.asarray(target_is_member)
    if is_member.dtype != np.bool_ or is_member.shape != (targets.height,):
        raise ValueError(
            f"`target_is_member` must be a bool array with one entry per target ({targets.height}). "
            f"Got dtype {is_member.dtype}, shape {is_member.shape}."
        )
    for run in runs:
        if run.target_in.shape != (targets.height,):
            raise ValueError(
                f"run {run.index} plans {run.target_in.shape[0]} targets but `targets` has "
                f"{targets.height} rows. Pass the targets the runs were planned for."
            )
    x = _encode(targets, contract, "targets")
    released = _encode(released_synthetic, contract, "released_synthetic")
    feats = np.empty((targets.height, len(runs)), dtype=np.float64)
    rows = []
    for j, syn in enumerate(shadow_synthetics):
        s = _encode(syn, contract, f"shadow_synthetics[{j}]")
        rows.append(s.shape[0])
        feats[:, j] = np.log(nearest_distances(s, x)[:, 0] + _DISTANCE_FLOOR)
    observed = np.log(nearest_distances(released, x)[:, 0] + _DISTANCE_FLOOR)

    included = np.stack([run.target_in.astype(bool) for run in runs], axis=1)
    mu_in, sigma_in, dof_in = _pooled_sigma(feats, included)
    mu_out, sigma_out, dof_out = _pooled_sigma(feats, ~included)
    if dof_in == 0 and dof_out == 0:
        raise ValueError(
            f"no target has two shadows on the same side ({len(runs)} shadows), so the spread of "
            "the shadow features cannot be estimated. Train at least 4 shadows."
        )
    # A side without degrees of freedom borrows the other side's spread.
    sigma_in = sigma_in if dof_in > 0 else sigma_out
    sigma_out = sigma_out if dof_out > 0 else sigma_in
    sigma_in, sigma_out = max(sigma_in, _MIN_SIGMA), max(sigma_out, _MIN_SIGMA)

    scored = np.isfinite(mu_in) & np.isfinite(mu_out)
    score = _gauss_logpdf(observed, mu_in, sigma_in) - _gauss_logpdf(observed, mu_out, sigma_out)
    members, nonmembers = score[scored & is_member], score[scored & ~is_member]
    if members.size < 2 or nonmembers.size < 2:
        raise ValueError(
            f"only {members.size} member and {nonmembers.size} non-member target(s) have both "
            "an 'in' and an 'out' shadow; at least 2 of each are needed. Pass every planned run."
        )
    gap = mu_in[scored] - mu_out[scored]
    return _attack_result(
        "shadow_lira",
        members,
        nonmembers,
        {
            "score": "Gaussian log-likelihood ratio in/out of log(nearest synthetic distance + 1e-3)",
            "variance": "global: within-target spread pooled over all targets, per side",
            "shadow_models": len(runs),
            "sigma_in": sigma_in,
            "sigma_out": sigma_out,
            "mean_in_minus_out": float(gap.mean()),
            "targets_scored": int(scored.sum()),
            "targets_unscored": int((~scored).sum()),
            "shadow_synthetic_rows_min": int(min(rows)),
            "shadow_synthetic_rows_max": int(max(rows)),
            "released_synthetic_rows": int(released.shape[0]),
        },
    )


# --- gates -----------------------------------------------------------------------------------


def membership_inference(
    attacks: list[AttackResult],
    *,
    max_auc: float = Gates().max_mia_auc,
    max_tpr: float = Gates().max_mia_tpr_at_1pct_fpr,
) -> list[MetricResult]:
    """The membership-inference gates over every attack run: ``mia_auc`` and ``mia_tpr_at_1pct_fpr``.

    - ``mia_auc``: the worst attack is the one with the highest upper confidence bound of its
      AUC; value is its AUC, the gated figure its upper bound, which must be <= ``max_auc``.
    - ``mia_tpr_at_1pct_fpr``: the highest TPR at 1% FPR among attacks with at least 500
      non-members (``tpr_gated``); must be <= ``max_tpr``. Attacks with fewer non-members
      are listed in ``details`` but not gated. When no attack has enough, the result carries
      the highest TPR of all attacks with no threshold: it is not a gate, and says so.

    Both results' ``details`` list every attack (``attacks``: name, auc, ci, tpr_at_1pct_fpr,
    n_members, n_nonmembers, tpr_gated), each attack's own aggregates (``attack_details``) and
    the worst attack's name.
    """
    if not attacks:
        raise ValueError("`attacks` is empty. Run at least one attack (e.g. distance_attack).")
    for name, limit in (("max_auc", max_auc), ("max_tpr", max_tpr)):
        if not 0.0 <= limit <= 1.0:
            raise ValueError(f"`{name}` must be in [0, 1]. Got {limit}. Set gates.max_mia_* in the contract.")
    names = [a.name for a in attacks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"attack names must be unique; repeated: {repeated}. Give each AttackResult its own "
            "name (dataclasses.replace(result, name=...))."
        )
    table = [a.to_dict() for a in attacks]
    attack_details = {a.name: dict(a.details) for a in attacks}
    worst = max(attacks, key=lambda a: (a.ci[1], a.auc))
    floor, need = auc_power_floor(worst.n_members, worst.n_nonmembers, max_auc)
    auc_result = upper_bound_gate(
        "mia_auc",
        worst.auc,
        worst.ci,
        max_auc,
        description=MIA_AUC_DESCRIPTION,
        power_floor=floor,
        min_rows=need,
        ideal=0.5,
        estimates=len(attacks),  # the worst of these attacks' intervals
        details={"attacks": table, "attack_details": attack_details, "worst_attack": worst.name},
    )
    gated = [a for a in attacks if a.tpr_gated]
    ungated = [a.name for a in attacks if not a.tpr_gated]
    tpr_details: dict[str, Any] = {
        "attacks": table,
        "attack_details": attack_details,
        "min_nonmembers_for_gate": MIN_NONMEMBERS_FOR_TPR,
        "not_gated": ungated,
    }
    if gated:
        worst_tpr = max(gated, key=lambda a: (a.tpr_at_1pct_fpr, a.auc))
        tpr_details["worst_attack"] = worst_tpr.name
        tpr_result = MetricResult(
            name="mia_tpr_at_1pct_fpr",
            value=worst_tpr.tpr_at_1pct_fpr,
            threshold=max_tpr,
            passed=worst_tpr.tpr_at_1pct_fpr <= max_tpr,
            direction="max",
            gated_value=worst_tpr.tpr_at_1pct_fpr,
            kind="privacy",
            description=MIA_TPR_DESCRIPTION,
            details=tpr_details,
        )
    else:
        worst_tpr = max(attacks, key=lambda a: (a.tpr_at_1pct_fpr, a.auc))
        tpr_details["worst_attack"] = worst_tpr.name
        tpr_details["note"] = (
            f"not gated: no attack scored at least {MIN_NONMEMBERS_FOR_TPR} non-members, too few "
            "for a 1% false-positive rate to mean something. Use a larger holdout."
        )
        tpr_result = MetricResult(
            name="mia_tpr_at_1pct_fpr",
            value=worst_tpr.tpr_at_1pct_fpr,
            threshold=None,
            passed=True,
            direction="max",
            kind="privacy",
            description=MIA_TPR_DESCRIPTION + " Not gated here: too few non-members were scored.",
            details=tpr_details,
        )
    return [auc_result, tpr_result]
