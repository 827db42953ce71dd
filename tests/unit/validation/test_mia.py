"""Membership-inference attacks: hand-computed ROC figures, toy attacks, gating, Adult oracles."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.neighbors import KernelDensity

from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.mia import (
    AttackResult,
    ShadowRun,
    _gaussian_kde_log,
    density_ratio_attack,
    distance_attack,
    membership_inference,
    plan_shadow_runs,
    roc_summary,
    select_exposed,
    shadow_attack,
    shadow_training_frame,
)
from synthgate.validation.results import decide_release

Z95 = float(norm.ppf(0.975))
TABLE_KEYS = {"name", "auc", "ci", "tpr_at_1pct_fpr", "n_members", "n_nonmembers", "tpr_gated"}


def _contract(columns: dict[str, dict[str, object]]) -> Contract:
    return parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}})


@pytest.fixture
def eighths() -> Contract:
    """One continuous column on [0, 8]: scaled values k/8 are exact in binary."""
    return _contract({"x": {"kind": "continuous", "min": 0.0, "max": 8.0}})


@pytest.fixture
def unit() -> Contract:
    return _contract({"x": {"kind": "continuous", "min": 0.0, "max": 1.0}})


@pytest.fixture
def plane() -> Contract:
    return _contract(
        {
            "x": {"kind": "continuous", "min": 0.0, "max": 1.0},
            "y": {"kind": "continuous", "min": 0.0, "max": 1.0},
        }
    )


def _x(values: object) -> pl.DataFrame:
    return pl.DataFrame({"x": np.asarray(values, dtype=np.float64)})


def _xy(values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"x": values[:, 0], "y": values[:, 1]})


# --- roc_summary -----------------------------------------------------------------------------


def test_roc_summary_by_hand() -> None:
    # Member 0.9 and 0.8 beat all 4 non-members, 0.4 beats 3 of them: AUC = 11/12.
    # DeLong: member placements (1, 1, 3/4), variance 1/48; non-member placements
    # (2/3, 1, 1, 1), variance 1/36; var(AUC) = (1/48)/3 + (1/36)/4 = 1/72.
    # With 4 non-members, FPR <= 1% means FPR = 0: the threshold 0.8 catches 2 of 3 members.
    auc, ci, tpr = roc_summary([0.9, 0.8, 0.4], [0.7, 0.3, 0.2, 0.1])
    assert auc == pytest.approx(11 / 12)
    assert ci == pytest.approx((11 / 12 - Z95 * math.sqrt(1 / 72), 1.0))  # upper end clipped
    assert tpr == pytest.approx(2 / 3)


def test_roc_summary_ties_count_half() -> None:
    # Pairs (1 vs 1) x2 tie, (1 vs 0) x2 win: AUC = (0.5 + 1 + 0.5 + 1) / 4. No threshold
    # separates any member from non-member 1, so the TPR at FPR 0 is 0.
    auc, ci, tpr = roc_summary([1.0, 1.0], [1.0, 0.0])
    assert auc == pytest.approx(0.75)
    assert tpr == 0.0
    # Member placements (3/4, 3/4) have no spread; non-member placements (1/2, 0): var 1/8.
    assert ci == pytest.approx((0.75 - Z95 * math.sqrt(1 / 16), 1.0))


def test_tpr_at_1pct_fpr_allows_one_in_a_hundred_non_members() -> None:
    # 200 non-members: FPR <= 1% lets 2 of them sit above the threshold (197 < t <= 198),
    # which passes members 199.5 and 198.5 but not 150.5: TPR = 2/4.
    tpr = roc_summary([199.5, 198.5, 150.5, 100.0], np.arange(200.0))[2]
    assert tpr == pytest.approx(0.5)


def test_delong_variance_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    pos = np.round(rng.normal(0.5, 1.0, 40), 1)  # rounded: plenty of ties
    neg = np.round(rng.normal(0.0, 1.0, 60), 1)
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    auc, ci, _ = roc_summary(pos, neg, confidence=0.9)
    assert auc == pytest.approx(psi.mean())
    half = float(norm.ppf(0.95)) * math.sqrt(var)
    assert ci == pytest.approx((psi.mean() - half, psi.mean() + half))


def test_roc_summary_rejects_bad_scores() -> None:
    with pytest.raises(ValueError, match="non-finite") as err:
        roc_summary([0.1, float("nan")], [0.2, 0.3])
    assert "member_scores" in str(err.value)
    with pytest.raises(ValueError, match="at least 2"):
        roc_summary([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="confidence"):
        roc_summary([0.1, 0.2], [0.3, 0.4], confidence=95)


# --- distance attack -------------------------------------------------------------------------


def test_distance_attack_by_hand(eighths: Contract) -> None:
    # Scaled: members 0, 0.5; non-members 0.25, 1; synthetic 0, 0.375. Nearest distances:
    # members 0, 0.125; non-members 0.125, 0.625. Pairs: 3 wins and 1 tie of 4 -> 0.875.
    r = distance_attack(_x([0.0, 3.0]), _x([0.0, 4.0]), _x([2.0, 8.0]), eighths)
    assert r.auc == pytest.approx(0.875)
    assert (r.name, r.n_members, r.n_nonmembers, r.tpr_gated) == ("distance", 2, 2, False)
    assert r.details["median_distance_members"] == pytest.approx(0.0625)
    assert r.details["median_distance_nonmembers"] == pytest.approx(0.375)


def test_distance_attack_finds_copies_and_not_an_independent_sample(unit: Contract) -> None:
    rng = np.random.default_rng(11)
    members, nonmembers = _x(rng.random(300)), _x(rng.random(300))
    copied = distance_attack(members, members, nonmembers, unit)
    assert (copied.auc, copied.tpr_at_1pct_fpr) == (1.0, 1.0)
    independent = distance_attack(_x(rng.random(1000)), members, nonmembers, unit)
    lo, hi = independent.ci
    assert lo < 0.5 < hi  # seeded; exchangeable members and non-members
    assert abs(independent.auc - 0.5) < 0.06


def test_distance_attack_names_the_bad_argument(unit: Contract) -> None:
    with pytest.raises(ValueError, match="`nonmembers`"):
        distance_attack(_x([0.1]), _x([0.2, 0.3]), pl.DataFrame({"z": [0.1, 0.2]}), unit)


# --- DOMIAS ----------------------------------------------------------------------------------


def test_kde_is_exact_where_sklearn_is_and_finite_far_away() -> None:
    rng = np.random.default_rng(0)
    fit_on, query = rng.normal(size=(500, 3)), rng.normal(size=(50, 3))
    expected = KernelDensity(kernel="gaussian", bandwidth=0.7).fit(fit_on).score_samples(query)
    np.testing.assert_allclose(_gaussian_kde_log(fit_on, query, 0.7), expected, rtol=0, atol=1e-9)
    far = np.full((1, 3), 40.0)  # every kernel term underflows in double precision
    sq = ((far - fit_on) ** 2).sum(axis=1)
    exact = logsumexp(-sq / (2 * 0.05**2)) - math.log(500) - 3 * math.log(0.05) - 1.5 * math.log(2 * math.pi)
    assert _gaussian_kde_log(fit_on, far, 0.05)[0] == pytest.approx(exact, rel=1e-12)


def test_domias_flags_synthetic_mass_around_members(unit: Contract) -> None:
    rng = np.random.default_rng(5)
    members, nonmembers, reference = (_x(rng.random(n)) for n in (50, 50, 2000))
    # An overfitted generator: 40 draws in a tight bump (sd 0.002) around every member.
    around = np.clip(np.repeat(members["x"].to_numpy(), 40) + rng.normal(0, 0.002, 2000), 0, 1)
    r = density_ratio_attack(_x(around), members, nonmembers, reference, unit, seed=0)
    assert r.name == "density_ratio"
    assert r.auc > 0.85  # seeded; a non-member within a bump's width of a member looks alike
    assert r.details["dimensions"] == 1  # the constant null indicator is dropped
    # Cross-validation narrows the synthetic kernel to the bumps; the reference stays smoother.
    assert r.details["bandwidth_factor_synthetic"] < r.details["bandwidth_factor_reference"]
    fair = density_ratio_attack(_x(rng.random(2000)), members, nonmembers, reference, unit, seed=0)
    assert fair.ci[0] < 0.5 < fair.ci[1]  # seeded


def test_domias_is_seeded_and_caps_rows(unit: Contract) -> None:
    rng = np.random.default_rng(6)
    members, nonmembers, reference, synthetic = (_x(rng.random(n)) for n in (50, 50, 300, 300))
    a = density_ratio_attack(synthetic, members, nonmembers, reference, unit, seed=1, max_rows=100)
    b = density_ratio_attack(synthetic, members, nonmembers, reference, unit, seed=1, max_rows=100)
    assert a == b
    assert (a.details["synthetic_rows_used"], a.details["reference_rows_used"]) == (100, 100)
    with pytest.raises(ValueError, match="dimensions"):
        density_ratio_attack(synthetic, members, nonmembers, reference, unit, seed=1, dimensions=0)


# --- select_exposed --------------------------------------------------------------------------


def test_select_exposed_picks_the_planted_outliers(plane: Contract) -> None:
    rng = np.random.default_rng(2)
    train = np.clip(rng.normal(0.5, 0.03, (100, 2)), 0, 1)
    holdout = np.clip(rng.normal(0.5, 0.03, (100, 2)), 0, 1)
    train[[7, 42]] = [[0.0, 0.0], [1.0, 1.0]]
    holdout[[3, 60]] = [[0.0, 1.0], [1.0, 0.0]]
    t, h = select_exposed(_xy(train), _xy(holdout), plane, n_per_side=2, seed=0)
    assert set(t.tolist()) == {7, 42} and set(h.tolist()) == {3, 60}
    assert t.dtype == np.int64 and h.shape == (2,)


def test_select_exposed_measures_the_nearest_other_row(plane: Contract) -> None:
    # Train has a duplicated outlier (nearest other row at distance 0) and a single one.
    train = np.array([[0.5, 0.5], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.55]])
    holdout = np.array([[0.5, 0.45], [0.45, 0.5], [0.55, 0.5]])
    t, _ = select_exposed(_xy(train), _xy(holdout), plane, n_per_side=1, seed=0)
    assert t.tolist() == [3]
    # Holdout rows are all 0.05 from the centre row (a tie), broken by the seeded key.
    picks = {int(select_exposed(_xy(train), _xy(holdout), plane, n_per_side=1, seed=s)[1][0]) for s in range(20)}
    assert picks == {0, 1, 2}
    again = select_exposed(_xy(train), _xy(holdout), plane, n_per_side=1, seed=4)[1]
    assert again.tolist() == select_exposed(_xy(train), _xy(holdout), plane, n_per_side=1, seed=4)[1].tolist()


def test_select_exposed_draws_both_sides_from_equally_many_candidates(plane: Contract) -> None:
    # Train is 10x the holdout, both from one population. Its top 10 come from 100 seeded
    # candidates like the holdout's, so the picks are equally outlying on average; the top 10
    # of all 1000 train rows (the top 1% instead of 10%) would be clearly more extreme.
    rng = np.random.default_rng(8)
    train, holdout = rng.random((1000, 2)), rng.random((100, 2))
    pool = np.vstack([train, holdout])
    sq = ((pool[:, None, :] - pool[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, np.inf)
    outlying = np.sqrt(sq.min(axis=1))
    picked_t, picked_h = [], []
    for seed in range(20):
        t, h = select_exposed(_xy(train), _xy(holdout), plane, n_per_side=10, seed=seed)
        picked_t.append(outlying[t].mean())
        picked_h.append(outlying[1000 + h].mean())
    ratio = np.mean(picked_t) / np.mean(picked_h)
    assert 0.85 < ratio < 1.15, ratio  # 0.94 with this seed
    top_of_all = np.sort(outlying[:1000])[-10:].mean() / np.mean(picked_h)
    assert top_of_all > 1.25, top_of_all  # 1.33 with this seed


def test_select_exposed_refuses_more_targets_than_rows(unit: Contract) -> None:
    with pytest.raises(ValueError, match="mia_targets"):
        select_exposed(_x([0.1, 0.2, 0.3]), _x([0.4, 0.5]), unit, n_per_side=3, seed=0)


# --- shadow models ---------------------------------------------------------------------------


def test_plan_shadow_runs_is_balanced_and_reproducible() -> None:
    runs = plan_shadow_runs(200, 1000, n_shadows=8, shadow_rows=300, seed=0)
    assert [r.index for r in runs] == list(range(8))
    included = np.stack([r.target_in for r in runs], axis=1)
    assert included.dtype == np.bool_
    assert (included.sum(axis=1) == 4).all()  # every target in exactly half the shadows
    assert 60 < included.sum(axis=0).min() and included.sum(axis=0).max() < 140  # ~100 each
    for r in runs:
        assert r.reference_rows.shape == (300,)
        assert np.unique(r.reference_rows).size == 300  # without replacement
        assert 0 <= r.reference_rows.min() and r.reference_rows.max() < 1000
    assert len({r.seed for r in runs}) == 8
    again = plan_shadow_runs(200, 1000, n_shadows=8, shadow_rows=300, seed=0)
    for a, b in zip(runs, again, strict=True):
        assert a.seed == b.seed
        np.testing.assert_array_equal(a.reference_rows, b.reference_rows)
        np.testing.assert_array_equal(a.target_in, b.target_in)
    other = plan_shadow_runs(200, 1000, n_shadows=8, shadow_rows=300, seed=1)
    assert not np.array_equal(other[0].target_in, runs[0].target_in)
    odd = plan_shadow_runs(30, 100, n_shadows=5, shadow_rows=10, seed=0)
    assert (np.stack([r.target_in for r in odd], axis=1).sum(axis=1) == 2).all()


def test_plan_shadow_runs_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="shadow_models"):
        plan_shadow_runs(10, 100, n_shadows=2, shadow_rows=10, seed=0)
    with pytest.raises(ValueError, match="shadow_rows"):
        plan_shadow_runs(10, 100, n_shadows=4, shadow_rows=101, seed=0)


def test_shadow_training_frame_holds_reference_rows_and_included_targets() -> None:
    targets = _x([100.0, 101.0, 102.0, 103.0])
    pool = _x(np.arange(10.0))
    run = ShadowRun(index=0, reference_rows=np.array([1, 4, 7]), target_in=np.array([True, False, False, True]), seed=9)
    frame = shadow_training_frame(run, targets, pool)
    assert sorted(frame["x"].to_list()) == [1.0, 4.0, 7.0, 100.0, 103.0]
    assert frame.equals(shadow_training_frame(run, targets, pool))  # the shuffle is seeded
    with pytest.raises(ValueError, match="targets"):
        shadow_training_frame(run, targets[:3], pool)


def _memorising(frame: pl.DataFrame, rows: int, seed: int) -> pl.DataFrame:
    """A fake synthesizer that resamples its training rows with replacement."""
    return frame.sample(n=rows, with_replacement=True, seed=seed)


def _shadow_setup(seed: int) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame, pl.DataFrame, list[ShadowRun]]:
    """(train, target_is_member, targets, reference pool, runs): 50 member + 50 non-member targets."""
    rng = np.random.default_rng(seed)
    train = _xy(rng.random((200, 2)))
    holdout = _xy(rng.random((50, 2)))
    targets = pl.concat([train[:50], holdout])
    is_member = np.arange(100) < 50
    pool = _xy(rng.random((400, 2)))
    runs = plan_shadow_runs(100, pool.height, n_shadows=8, shadow_rows=150, seed=seed)
    return train, is_member, targets, pool, runs


def test_shadow_attack_exposes_a_memorising_synthesizer(plane: Contract) -> None:
    train, is_member, targets, pool, runs = _shadow_setup(0)
    rows = 1200  # six times the training rows: ~99.8% of them are copied
    shadows = [_memorising(shadow_training_frame(r, targets, pool), rows, r.seed) for r in runs]
    r = shadow_attack(runs, shadows, targets, is_member, _memorising(train, rows, 1), plane)
    assert r.name == "shadow_lira"
    assert r.auc > 0.95
    assert (r.n_members, r.n_nonmembers, r.tpr_gated) == (50, 50, False)
    assert r.details["mean_in_minus_out"] < -1.0  # copies sit much closer
    assert r.details["targets_scored"] == 100


def test_shadow_attack_is_blind_to_a_synthesizer_that_ignores_its_data(plane: Contract) -> None:
    train, is_member, targets, pool, runs = _shadow_setup(1)
    rng = np.random.default_rng(2)

    def population(_frame: pl.DataFrame) -> pl.DataFrame:
        return _xy(rng.random((1200, 2)))

    shadows = [population(shadow_training_frame(r, targets, pool)) for r in runs]
    r = shadow_attack(runs, shadows, targets, is_member, population(train), plane)
    assert r.ci[0] < 0.5 < r.ci[1]  # seeded (AUC 0.53)
    assert abs(r.details["mean_in_minus_out"]) < 0.2  # "in" and "out" shadows look alike


def test_shadow_attack_checks_its_inputs(plane: Contract) -> None:
    train, is_member, targets, pool, runs = _shadow_setup(0)
    shadows = [shadow_training_frame(r, targets, pool) for r in runs]
    with pytest.raises(ValueError, match="one synthetic table per run"):
        shadow_attack(runs, shadows[:-1], targets, is_member, train, plane)
    with pytest.raises(ValueError, match="target_is_member"):
        shadow_attack(runs, shadows, targets, is_member.astype(int), train, plane)
    # Only half the runs: some targets lack an "in" or an "out" shadow; the rest count.
    r = shadow_attack(runs[:4], shadows[:4], targets, is_member, train, plane)
    assert r.details["targets_unscored"] > 0
    assert r.details["targets_scored"] + r.details["targets_unscored"] == 100


# --- membership_inference --------------------------------------------------------------------


def _attack(name: str, auc: float, ci: tuple[float, float], tpr: float, n_non: int) -> AttackResult:
    return AttackResult(name, auc, ci, tpr, 1000, n_non, n_non >= 500, {"score": "test"})


def test_worst_attack_is_the_one_with_the_highest_upper_bound() -> None:
    wide = _attack("wide", 0.58, (0.55, 0.61), 0.02, 2000)
    narrow = _attack("narrow", 0.59, (0.585, 0.595), 0.05, 100)  # too few non-members for TPR
    auc, tpr = membership_inference([narrow, wide], max_auc=0.60, max_tpr=0.03)
    assert (auc.name, auc.value, auc.gated_value, auc.ci) == ("mia_auc", 0.58, 0.61, (0.55, 0.61))
    assert (auc.threshold, auc.passed, auc.direction, auc.kind) == (0.60, False, "max", "privacy")
    assert auc.details["worst_attack"] == "wide"
    # The TPR gate reads only attacks with >= 500 non-members: 0.02 passes; 0.05 is listed.
    assert (tpr.name, tpr.value, tpr.threshold, tpr.passed) == ("mia_tpr_at_1pct_fpr", 0.02, 0.03, True)
    assert tpr.details["not_gated"] == ["narrow"]
    for result in (auc, tpr):
        table = result.details["attacks"]
        assert [row["name"] for row in table] == ["narrow", "wide"]
        assert all(set(row) == TABLE_KEYS for row in table)
        json.dumps(result.to_dict())  # plain aggregates only
    assert decide_release([auc, tpr]).reasons == ["mia_auc: 0.61 must be <= 0.6 (off by 0.01)"]


def test_tpr_gate_fails_and_is_skipped_without_enough_non_members() -> None:
    strong = _attack("distance", 0.55, (0.52, 0.58), 0.10, 2000)
    auc, tpr = membership_inference([strong])
    assert auc.passed and not tpr.passed and tpr.gated_value == 0.10
    small = _attack("shadow_lira", 0.55, (0.45, 0.58), 0.10, 100)
    auc, tpr = membership_inference([small])
    assert auc.passed and auc.is_gate
    assert not tpr.is_gate and tpr.value == 0.10 and "not gated" in tpr.details["note"]
    with pytest.raises(ValueError, match="at least one attack"):
        membership_inference([])
    with pytest.raises(ValueError, match="max_auc"):
        membership_inference([strong], max_auc=1.5)
    with pytest.raises(ValueError, match="unique"):
        membership_inference([strong, strong])


# --- Adult oracles ---------------------------------------------------------------------------


def _adult_parts(adult_small: pl.DataFrame, contract: Contract) -> tuple[pl.DataFrame, ...]:
    df = adult_small.select(contract.modelled_columns)
    return df[:400], df[400:800], df[800:]  # members, non-members, population reference


def test_copying_adult_is_blocked_and_an_independent_sample_passes(
    adult_small: pl.DataFrame, adult_contract: Contract
) -> None:
    members, nonmembers, reference = _adult_parts(adult_small, adult_contract)
    copy = [
        distance_attack(members, members, nonmembers, adult_contract),
        density_ratio_attack(members, members, nonmembers, reference, adult_contract, seed=0),
    ]
    auc, tpr = membership_inference(copy)
    assert not auc.passed and auc.details["worst_attack"] == "distance"
    assert copy[0].auc > 0.95
    assert copy[1].auc > 0.6  # DOMIAS sees the overdensity too, less sharply
    assert not tpr.is_gate  # 400 non-members: reported, not gated
    # Synthetic drawn from the population (rows neither members nor non-members).
    fresh = reference.sample(n=400, with_replacement=True, seed=3)
    independent = [
        distance_attack(fresh, members, nonmembers, adult_contract),
        density_ratio_attack(fresh, members, nonmembers, reference, adult_contract, seed=0),
    ]
    auc, _ = membership_inference(independent)
    assert auc.passed, auc.details["attacks"]


def test_shadow_pipeline_on_adult_exposed_records(adult_small: pl.DataFrame, adult_contract: Contract) -> None:
    cols = adult_contract.modelled_columns
    df = adult_small.select(cols)
    train, holdout, pool = df[:500], df[500:800], df[800:]
    t_idx, h_idx = select_exposed(train, holdout, adult_contract, n_per_side=25, seed=0)
    targets = pl.concat([train[t_idx], holdout[h_idx]])
    is_member = np.arange(50) < 25
    runs = plan_shadow_runs(50, pool.height, n_shadows=4, shadow_rows=250, seed=0)
    rows = 3000
    shadows = [_memorising(shadow_training_frame(r, targets, pool), rows, r.seed) for r in runs]
    r = shadow_attack(runs, shadows, targets, is_member, _memorising(train, rows, 0), adult_contract)
    assert r.auc > 0.9
    assert set(r.details) >= {"sigma_in", "sigma_out", "shadow_models", "targets_scored"}
