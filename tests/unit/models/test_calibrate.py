"""Sampling-time calibration (models/calibrate.py) and the codec's merging of sparse bins."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from synthgate.models.calibrate import POOL_FACTOR, Calibrator, independent_groups
from synthgate.models.codec import FAMILY_ALPHA, SUPPORT_ALPHA, Codec, _merged_mass, _segment_mass
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.marginals import Measured, discretise, measure_marginals, variables
from synthgate.validation.contract import Contract, parse_contract

N = 3000


@pytest.fixture(scope="module")
def contract() -> Contract:
    return parse_contract(
        {
            "table": "k",
            "target": "y",
            "columns": {
                "a": {"kind": "categorical", "categories": ["p", "q", "r"]},
                "x": {"kind": "continuous", "min": 0.0, "max": 1.0, "nullable": True},
                "y": {"kind": "categorical", "categories": ["no", "yes"]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="k",
    )


def _frame(rng: np.random.Generator, n: int, dependent: bool) -> pl.DataFrame:
    """``dependent``: y follows x and a, and x is missing more often when a = 'r'; else all independent."""
    a = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    x = rng.uniform(size=n)
    if dependent:
        y = x + 0.2 * a + 0.2 * rng.normal(size=n) > 0.6
        missing = rng.uniform(size=n) < np.where(a == 2, 0.5, 0.1)
    else:
        y = rng.uniform(size=n) < 0.5
        missing = rng.uniform(size=n) < 0.15
    return pl.DataFrame(
        {
            "a": np.array(["p", "q", "r"])[a],
            "x": [None if m else float(v) for m, v in zip(missing, x, strict=True)],
            "y": np.array(["no", "yes"])[y.astype(int)],
        },
        schema_overrides={"x": pl.Float64},
    )


@pytest.fixture(scope="module")
def fitted(contract: Contract) -> tuple[Codec, Calibrator, np.ndarray, np.ndarray]:
    """Exact marginals of a dependent table, and a pool drawn from a different, independent one."""
    codec, measured, x_real, pool = _exact(contract, triples=0)
    return codec, Calibrator(codec, measured), x_real, pool


def _exact(contract: Contract, triples: int | None) -> tuple[Codec, Measured, np.ndarray, np.ndarray]:
    """A dependent table's codec, its exact marginals (``triples`` 3-way ones; None: every candidate),
    its encoded rows, and an encoded pool drawn from an independent table."""
    rng = np.random.default_rng(0)
    real = _frame(rng, N, dependent=True)
    codec = Codec(contract)
    codec.fit_non_dp(real, ledger=PrivacyLedger(1e-6))
    x_real = codec.encode(real, rng=np.random.default_rng(1))
    measured = measure_marginals(
        x_real, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=np.random.default_rng(2), triples=triples
    )
    pool = codec.encode(_frame(rng, POOL_FACTOR * N, dependent=False), rng=np.random.default_rng(3))
    return codec, measured, x_real, pool


def test_raking_also_brings_the_pool_to_a_released_3_way_table(contract: Contract) -> None:
    """With the 3-way table (y, a, x) measured too, the raked draw comes close to it: the independent
    pool is far from it, the drawn rows are within the sampling error of 3,000 rows of a 54-cell table
    (about 0.04 TV)."""
    codec, measured, _, pool = _exact(contract, triples=None)
    assert len(measured.triples) == 1
    cal = Calibrator(codec, measured)
    assert cal.targets == 3 + len(measured.pairs) + 1
    (idx, table) = measured.cliques()[-1]

    def tv(x: np.ndarray, w: np.ndarray | None = None) -> float:
        codes = discretise(x, cal.variables)
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), table.shape)
        shares = np.bincount(flat, weights=w, minlength=table.size)
        return 0.5 * float(np.abs(shares / shares.sum() - table.ravel()).sum())

    pairs_only = Calibrator(codec, Measured(measured.variables, measured.pairs, measured.tables))
    assert tv(pool) > 0.25
    # the weighted pool, free of the draw's sampling error: measured 0.337 → 0.023, against 0.039 raked
    # to the pairs alone
    assert tv(pool, cal.weights(pool)) < 0.75 * tv(pool, pairs_only.weights(pool))
    # the drawn rows, over three draws: measured 0.046 on average, against 0.060 with the pairs alone
    chosen = [tv(cal.select(pool, N, np.random.default_rng(s))) for s in (4, 5, 6)]
    without = [tv(pairs_only.select(pool, N, np.random.default_rng(s))) for s in (4, 5, 6)]
    assert np.mean(chosen) < 0.05 and np.mean(chosen) < np.mean(without), (tv(pool), chosen, without)


def test_raking_brings_the_pool_to_the_released_marginals(
    fitted: tuple[Codec, Calibrator, np.ndarray, np.ndarray],
) -> None:
    codec, cal, x_real, pool = fitted
    assert cal.targets == 3 + len(cal.measured.pairs)  # a, y, x's null rate; every measured pair
    # the weights themselves match every released marginal (capped raking converges here)
    w = cal.weights(pool)
    for cells, t in cal._cells(pool):
        assert 0.5 * np.abs(np.bincount(cells, weights=w, minlength=t.size) / w.sum() - t).sum() < 0.01
    # the independent pool is far from the dependent table's marginals; the drawn rows are close,
    # up to the sampling error of 3,000 rows (about 0.03 TV on a 27-cell table)
    before = cal.error(pool)
    chosen = cal.select(pool, N, np.random.default_rng(4))
    after = cal.error(chosen)
    assert before > 0.05
    assert after < before / 2
    codes = discretise(chosen, cal.variables)
    for idx, t in cal.measured.cliques():
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), t.shape)
        joint = np.bincount(flat, minlength=t.size) / len(chosen)
        assert 0.5 * np.abs(joint - t.ravel()).sum() < 0.05, idx


def test_the_draw_keeps_each_pool_row_at_most_once_and_is_reproducible(
    fitted: tuple[Codec, Calibrator, np.ndarray, np.ndarray],
) -> None:
    _, cal, _, pool = fitted
    a = cal.select(pool, 1000, np.random.default_rng(7))
    b = cal.select(pool, 1000, np.random.default_rng(7))
    assert a.shape == (1000, pool.shape[1])
    np.testing.assert_array_equal(a, b)
    # every drawn row is a pool row, none twice
    index = cal.select_index(pool, 1000, np.random.default_rng(7))
    assert len(np.unique(index)) == 1000
    assert index.min() >= 0 and index.max() < len(pool)
    np.testing.assert_array_equal(pool[index], a)
    # weights: mean 1 and capped so that no inclusion probability passes 1
    w = cal.weights(pool, cap=POOL_FACTOR)
    assert w.max() <= POOL_FACTOR + 1e-9
    assert abs(w.mean() - 1.0) < 0.05


def test_a_pool_no_larger_than_the_request_is_returned_whole(
    fitted: tuple[Codec, Calibrator, np.ndarray, np.ndarray],
) -> None:
    _, cal, _, pool = fitted
    np.testing.assert_array_equal(cal.select(pool[:10], 10, np.random.default_rng(0)), pool[:10])


def test_sparse_bins_are_merged_not_zeroed(contract: Contract) -> None:
    codec = Codec(contract)
    spec = next(s for s in codec.numeric if s.name == "x")
    k = len(spec.edges_lo)
    sigma = 10.0
    tau = norm.ppf(1 - FAMILY_ALPHA / k)  # 3.4 at these bins
    # a spread-out column: every bin holds 12 rows, under the single-bin threshold τσ
    spread = _merged_mass(np.full(k, 12.0), sigma, spec)
    points = np.zeros(k, dtype=bool)
    points[spec.point_bins] = True  # zero-width bins at the bounds: thresholded alone, at τσ
    assert points.sum() == 2 and np.all(spread[points] == 0)
    # runs pass once 12·L > τσ√L; only a last remainder shorter than a run may stay unmerged
    run = int(np.ceil((tau * sigma / 12.0) ** 2 + 1e-9))
    kept = spread[~points] > 0
    assert kept.sum() >= (~points).sum() - run and not np.any(np.diff(kept.astype(int)) > 0)
    np.testing.assert_allclose(spread[~points][kept], 1.0 / kept.sum())  # equal-width runs spread evenly
    # a dense bin passes on its own; the sparse bins around it are merged into runs, keeping their mass
    counts = np.full(k, 5.0)
    counts[k // 2] = 1000.0
    mass = _merged_mass(counts, sigma, spec)
    # each side's sparse bins (5 rows, σ = 10) merge into a run of ~46 bins; a remainder too short
    # to pass τσ√L is dropped: about 70% of the sparse mass is kept here
    sparse = counts.sum() - 1000.0
    kept = 1000.0 * (1.0 - mass[k // 2]) / mass[k // 2]
    assert 0.6 * sparse <= kept <= 1.05 * sparse
    assert mass.sum() == pytest.approx(1.0)
    assert (mass > 0).sum() > k // 2
    # pure noise (all counts negative) falls back to the public uniform
    np.testing.assert_allclose(_merged_mass(np.full(k, -3.0), sigma, spec), 1.0 / k)


def test_bins_of_pure_noise_rarely_keep_mass(contract: Contract) -> None:
    """Empty bins plus DP noise: the family-wise threshold keeps any mass in few columns (a fixed τ = 2
    kept some in nearly every one: the spurious tails of cps1988 wage), and the stricter level outside
    the support (here the one dense bin) in fewer still than one level everywhere."""
    codec = Codec(contract)
    spec = next(s for s in codec.numeric if s.name == "x")
    k, sigma, reps = len(spec.edges_lo), 10.0, 400
    counts = np.zeros(k)
    counts[k // 2] = 10_000.0  # one dense bin, the rest empty
    rng = np.random.default_rng(11)
    one_level = float(norm.ppf(1 - FAMILY_ALPHA / k))
    rules = {
        "default": {},
        "one level": {"tau": one_level, "tau_outside": one_level},
        "fixed 2": {"tau": 2.0, "tau_outside": 2.0},
    }
    share = {}
    for name, kwargs in rules.items():
        leaked = [
            (_merged_mass(counts + rng.normal(0, sigma, k), sigma, spec, **kwargs) > 0).sum() > 1 for _ in range(reps)
        ]
        share[name] = float(np.mean(leaked))
    # runs are tested as they grow (a random walk against τσ√L), so one level leaks at about α or more;
    # the support's level (SUPPORT_ALPHA = α/10) cuts it several-fold (400 columns each)
    assert share["default"] <= SUPPORT_ALPHA * 2, share
    assert share["one level"] >= 3 * share["default"] and share["one level"] <= 2 * FAMILY_ALPHA, share
    assert share["fixed 2"] > 0.5, share


def test_the_support_holds_empty_tails_to_the_stricter_level_and_keeps_runs_inside_it(contract: Contract) -> None:
    """Bins outside the support (first to last bin passing the strict level) need the strict level, alone
    and in runs; inside it the family-wise level applies, and no run crosses the support's edge."""
    spec = next(s for s in Codec(contract).numeric if s.name == "x")
    k, sigma = len(spec.edges_lo), 10.0
    tau = float(norm.ppf(1 - FAMILY_ALPHA / k))
    strict = float(norm.ppf(1 - SUPPORT_ALPHA / k))
    assert strict > tau
    between = (tau + strict) / 2 * sigma  # passes the family-wise level, not the strict one
    counts = np.zeros(k)
    dense = [k // 2 - 5, k // 2 + 5]
    counts[dense] = 1000.0  # the support: k/2 - 5 .. k/2 + 5
    counts[k // 2] = between  # inside: kept on its own
    counts[k - 10] = between  # outside: dropped
    mass = _merged_mass(counts, sigma, spec)
    assert mass[k // 2] > 0 and mass[k - 10] == 0
    # one level everywhere (the rule before) kept the outside bin too
    assert _merged_mass(counts, sigma, spec, tau=tau, tau_outside=tau)[k - 10] > 0
    # a run of sparse bins right outside the support's edge is built at the strict level and never
    # merged with sparse bins inside
    counts[k // 2] = 0.0
    counts[dense[1] + 1 : dense[1] + 5] = between / 2  # 4 bins: sum 2·between passes τσ√4 = 2τσ, not 2·strict·σ
    counts[k - 10] = 0.0
    mass = _merged_mass(counts, sigma, spec)
    assert np.all(mass[dense[1] + 1 : dense[1] + 5] == 0)
    assert np.all(_merged_mass(counts, sigma, spec, tau=tau, tau_outside=tau)[dense[1] + 1 : dense[1] + 5] > 0)
    # no bin passes the strict level: the whole column is the support, as before
    spread = np.full(k, 12.0)
    np.testing.assert_allclose(_merged_mass(spread, sigma, spec), _merged_mass(spread, sigma, spec, tau_outside=tau))


def _spec_of(contract: Contract):  # type: ignore[no-untyped-def]
    return next(s for s in Codec(contract).numeric if s.name == "x")


def test_segments_keep_dense_bins_as_measured_and_empty_columns_empty(contract: Contract) -> None:
    spec = _spec_of(contract)
    k = len(spec.edges_lo)
    points = np.zeros(k, dtype=bool)
    points[spec.point_bins] = True
    rng = np.random.default_rng(4)
    # dense: every bin far above the noise, so every bin's own count survives (within 3σ of it)
    counts = np.where(points, 0.0, rng.integers(500, 5000, k).astype(float))
    noisy = counts + rng.normal(0.0, 1.0, k)
    mass = _segment_mass(noisy, 1.0, spec)
    np.testing.assert_allclose(mass * noisy[~points].sum(), np.where(points, 0.0, noisy), atol=3.0 * 1.0 * 8)
    # one dense bin in a column of empty ones: the tails keep noise as mass in few draws (as _merged_mass)
    one = np.zeros(k)
    one[k // 2] = 10_000.0
    leaked = np.mean([(_segment_mass(one + rng.normal(0, 10.0, k), 10.0, spec) > 0).sum() > 1 for _ in range(300)])
    assert leaked <= 2 * FAMILY_ALPHA, leaked
    # zero-width point bins are their own cells; pure noise falls back to the public uniform
    np.testing.assert_allclose(_segment_mass(np.full(k, -3.0), 10.0, spec), 1.0 / k)
    spike = np.zeros(k)
    spike[spec.point_bins[0]] = 500.0
    assert _segment_mass(spike, 10.0, spec)[spec.point_bins[0]] == pytest.approx(1.0)


def test_the_dp_codec_keeps_a_small_spread_column_off_the_uniform_fallback(contract: Contract) -> None:
    """Old rule: every bin under 2σ zeroed. 600 rows of a skewed column over 128 bins with σ ≈ 40
    left no bin, and the column decoded uniform; merged runs keep its skew."""
    rng = np.random.default_rng(5)
    n = 600
    skewed = pl.DataFrame(
        {"a": ["p"] * n, "x": (rng.beta(1.0, 6.0, n)).tolist(), "y": ["no"] * n}, schema_overrides={"x": pl.Float64}
    )
    codec = Codec(contract)
    codec.fit_dp(skewed, ledger=PrivacyLedger(1e-6), noise_multiplier=20.0, rng=np.random.default_rng(6))
    mass = codec.bin_mass["x"]
    spec = next(s for s in codec.numeric if s.name == "x")
    centre = (spec.edges_lo + spec.edges_hi) / 2
    # the DP mean of x is near the true mean 1/7, not the uniform's 1/2
    assert float((mass * centre).sum()) < 0.3


def test_the_released_one_way_marginals_come_last_and_hold_against_a_conflicting_pair_table(
    fitted: tuple[Codec, Calibrator, np.ndarray, np.ndarray],
) -> None:
    """A noisy pair table projected to the simplex has margins that disagree with the codec's DP
    1-way frequencies. Raked last, the 1-way targets hold; raked first (the old order), the pair
    tables pulled the column shapes off them."""
    codec, cal, _, pool = fitted
    m = cal.measured
    a = next(i for i, v in enumerate(m.variables) if v.column == "a")
    tables = []
    for (i, j), t in zip(m.pairs, m.tables, strict=True):
        if a in (i, j):  # every table with ``a`` says 'r' is three times as common as it is
            t = t.copy()
            if i == a:
                t[2, :] *= 3.0
            else:
                t[:, 2] *= 3.0
            t /= t.sum()
        tables.append(t)
    conflicting = Measured(m.variables, m.pairs, tables, m.sigma, m.n_hat)
    target = codec.frequencies["a"]
    block = next(b for b in codec.blocks if b.column == "a")
    cells = pool[:, block.start : block.start + block.width].argmax(1)

    def tv(c: Calibrator) -> float:
        w = c.weights(pool)
        return 0.5 * float(np.abs(np.bincount(cells, weights=w, minlength=3) / w.sum() - target).sum())

    assert tv(Calibrator(codec, conflicting)) < 0.01
    assert tv(Calibrator(codec, conflicting, numeric_cells=False, one_way_last=False)) > 0.03


def test_settling_sweeps_bring_the_categorical_targets_home_against_conflicting_pair_tables(
    fitted: tuple[Codec, Calibrator, np.ndarray, np.ndarray],
) -> None:
    """Pair tables that overstate both 'a' = 'r' (× 3) and 'y' = 'yes' (× 2): the ordinary sweeps end on
    the 1-way targets, but each rake undoes part of the one before (measured after 12 sweeps: a 0.013
    TV from its target, x's cells 0.057). The settling sweeps over the categorical targets bring a and y
    within 0.002; settling the numeric cells too (``settle_numeric``) brings x there as well."""
    codec, cal, _, pool = fitted
    m = cal.measured
    a, y = (next(i for i, v in enumerate(m.variables) if v.column == c) for c in ("a", "y"))
    tables = []
    for (i, j), t in zip(m.pairs, m.tables, strict=True):
        t = t.copy()
        for k, factor in ((a, 3.0), (y, 2.0)):
            if i == k:
                t[-1, :] *= factor
            if j == k:
                t[:, -1] *= factor
        tables.append(t / t.sum())
    conflicting = Measured(m.variables, m.pairs, tables, m.sigma, m.n_hat)

    def one_way_tv(c: Calibrator) -> dict[str, float]:
        w = c.weights(pool)
        tv = {}
        for v, t in c._one_way:
            cells = c._one_way_cells(pool, v, t)
            tv[v.column] = 0.5 * float(np.abs(np.bincount(cells, weights=w, minlength=t.size) / w.sum() - t).sum())
        return tv

    unsettled = one_way_tv(Calibrator(codec, conflicting, settle_sweeps=0))
    settled = one_way_tv(Calibrator(codec, conflicting))
    every = one_way_tv(Calibrator(codec, conflicting, settle_numeric=True))
    assert unsettled["a"] > 0.01 and unsettled["x"] > 0.03, unsettled
    assert settled["a"] < 0.002 and settled["y"] < 0.002, settled
    assert max(every.values()) < 0.002, every


def _tied(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """x follows a closely within each class of y: a dependence no target pair shows."""
    a = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    y = rng.uniform(size=n) < 0.3 + 0.2 * (a == 2)
    x = np.clip(a / 3.0 + 0.05 * rng.normal(size=n) + 0.1, 0.0, 1.0)
    return pl.DataFrame(
        {"a": np.array(["p", "q", "r"])[a], "x": x, "y": np.array(["no", "yes"])[y.astype(int)]},
        schema_overrides={"x": pl.Float64},
    )


def test_groups_come_from_the_marginals_that_tie_columns_and_not_from_independent_ones(contract: Contract) -> None:
    codec = Codec(contract)
    codec.fit_non_dp(_tied(np.random.default_rng(0), 500), ledger=PrivacyLedger(1e-6))
    vs = variables(codec)
    a, x, y = (next(i for i, v in enumerate(vs) if v.column == c) for c in ("a", "x", "y"))
    flat = [np.full((vs[i].width, vs[j].width), 1.0 / (vs[i].width * vs[j].width)) for i, j in ((a, y), (x, y), (a, x))]
    # the target's pairs tie nothing (the target is the strata); a table of a and x does
    strata, groups = independent_groups(codec, Measured(vs, [(a, y), (x, y)], flat[:2]))
    assert strata is not None and strata.column == "y" and len(groups) == 2
    assert sorted(len(g) for g in groups) == [3, 3]  # x's value slot and null block; a's 3 one-hot slots
    assert independent_groups(codec, Measured(vs, [(a, y), (x, y), (a, x)], flat)) == (None, [])
    # ... unless it was released as independent (shrunk); a 3-way table (y, a, x) ties a and x again
    assert len(independent_groups(codec, Measured(vs, [(a, y), (x, y), (a, x)], flat, independent=[2]))[1]) == 2
    cube = np.full((vs[y].width, vs[a].width, vs[x].width), 1.0 / (vs[y].width * vs[a].width * vs[x].width))
    tied = Measured(vs, [(a, y), (x, y)], flat[:2], triples=[(y, a, x)], triple_tables=[cube])
    assert independent_groups(codec, tied) == (None, [])
    assert independent_groups(codec, None) == (None, [])
    # measured_ties (the rule with the critic): a table released as independent still ties its columns,
    # a pair never measured does not
    shrunk = Measured(vs, [(a, y), (x, y), (a, x)], flat, independent=[2])
    assert independent_groups(codec, shrunk, measured_ties=True) == (None, [])
    assert len(independent_groups(codec, Measured(vs, [(a, y), (x, y)], flat[:2]), measured_ties=True)[1]) == 2


def test_ctgan_factorises_what_no_table_ties_and_with_its_critic_what_no_table_measured(contract: Contract) -> None:
    """Without the critic a table released as independent ties nothing; with it, only an unmeasured pair
    leaves its columns to be drawn independent given the target (models/synthesizers/ctgan.py)."""
    from synthgate.models.synthesizers.ctgan import DPCTGAN, CTGANConfig

    codec = Codec(contract)
    codec.fit_non_dp(_tied(np.random.default_rng(0), 500), ledger=PrivacyLedger(1e-6))
    vs = variables(codec)
    a, x, y = (next(i for i, v in enumerate(vs) if v.column == c) for c in ("a", "x", "y"))
    flat = [np.full((vs[i].width, vs[j].width), 1.0 / (vs[i].width * vs[j].width)) for i, j in ((a, y), (x, y), (a, x))]
    model = DPCTGAN(contract, CTGANConfig(generator_dims=(8,), critic_dims=(8,), z_dim=4), device="cpu")
    model.codec = codec
    groups = {}
    for name, measured in {
        "shrunk": Measured(vs, [(a, y), (x, y), (a, x)], flat, independent=[2]),
        "unmeasured": Measured(vs, [(a, y), (x, y)], flat[:2]),
    }.items():
        model.measured = measured
        for critic in (False, True):
            model._critic_on = critic
            calibrator = model._calibrator()
            assert calibrator is not None
            groups[name, critic] = len(calibrator._groups)
    assert groups == {("shrunk", False): 2, ("shrunk", True): 0, ("unmeasured", False): 2, ("unmeasured", True): 2}


def test_factorised_draws_keep_each_group_with_the_target_and_drop_what_no_marginal_released(
    contract: Contract,
) -> None:
    """Only the target's pairs released: the pool's a-x tie is not in them. The
    factorised draw holds the same rows' (y, a) and (y, x) joints exactly and leaves a and x
    independent within each class of y."""
    rng = np.random.default_rng(0)
    real = _tied(rng, N)
    codec = Codec(contract)
    codec.fit_non_dp(real, ledger=PrivacyLedger(1e-6))
    pool = codec.encode(_tied(rng, POOL_FACTOR * N), rng=np.random.default_rng(1))
    measured = measure_marginals(
        codec.encode(real, rng=np.random.default_rng(2)),
        codec,
        ledger=PrivacyLedger(1e-6),
        target_epsilon=None,
        rng=np.random.default_rng(3),
        extra=0,
        triples=0,
    )
    assert len(measured.pairs) == 2
    plain = Calibrator(codec, measured).select(pool, N, np.random.default_rng(4))
    drawn = Calibrator(codec, measured, factorise=True).select(pool, N, np.random.default_rng(4))
    codes_plain, codes = discretise(plain, measured.variables), discretise(drawn, measured.variables)
    for i, j in measured.pairs:  # the released joints, row for row the same counts
        for c in (codes_plain, codes):
            assert c.shape == codes.shape
        joint = [np.unique(c[:, [i, j]], axis=0, return_counts=True) for c in (codes_plain, codes)]
        assert all(np.array_equal(p, q) for p, q in zip(joint[0], joint[1], strict=True))
    x_slot = next(b.start for b in codec.blocks if b.column == "x")
    a_block = next(b for b in codec.blocks if b.column == "a")
    y_block = next(b for b in codec.blocks if b.column == "y")
    # within-class correlation of a and x: measured 0.90 and 0.92 in the plain draw; 0.02 and -0.08 in the
    # factorised one (over 20 draws: mean 0.00 and -0.01, sd 0.02 and 0.03, the classes' ~2,000 and ~1,000 rows)
    for rows, low, high in ((plain, 0.8, 1.0), (drawn, -0.1, 0.1)):
        cls = rows[:, y_block.start : y_block.start + 2].argmax(1)
        for k in (0, 1):
            at = cls == k
            r = np.corrcoef(rows[at, a_block.start : a_block.start + 3].argmax(1), rows[at, x_slot])[0, 1]
            assert low < r < high, (k, r)


def test_a_pooled_one_way_estimate_replaces_the_codecs_as_the_raking_target(
    fitted: tuple[Codec, Calibrator, np.ndarray, np.ndarray],
) -> None:
    """A categorical column with pooled frequencies (``Measured.one_way``) is raked to them, not to the
    codec's; the other columns keep the codec's. (No pair table here: the exact ones would disagree
    with the made-up target.)"""
    codec, cal, _, pool = fitted
    m = cal.measured
    pooled = {"a": np.array([0.5, 0.3, 0.2])}
    with_pool = Calibrator(codec, Measured(m.variables, [], [], m.sigma, m.n_hat, pooled))
    targets = {v.column: t for v, t in with_pool._one_way if v.kind != "tanh"}
    assert np.allclose(targets["a"], pooled["a"])
    assert all(np.allclose(t, codec.frequencies[k]) for k, t in targets.items() if k != "a" and k in codec.frequencies)
    block = next(b for b in codec.blocks if b.column == "a")
    cells = pool[:, block.start : block.start + block.width].argmax(1)
    w = with_pool.weights(pool)
    assert 0.5 * np.abs(np.bincount(cells, weights=w, minlength=3) / w.sum() - pooled["a"]).sum() < 0.01


def test_a_numeric_column_is_raked_to_its_histogram_cells_keeping_the_shape_within_a_cell(contract: Contract) -> None:
    """The pool's numeric values are far from the released histogram (uniform against a skewed
    one): the raking weights match the histogram's cells, and the drawn rows (pool rows, no value
    moved, so inside a cell the generator's own shape) have the real column's mean."""
    rng = np.random.default_rng(11)
    n = 2000
    real = pl.DataFrame(
        {"a": ["p"] * n, "x": rng.beta(1.0, 2.0, n).tolist(), "y": ["no"] * n}, schema_overrides={"x": pl.Float64}
    )
    codec = Codec(contract)
    codec.fit_non_dp(real, ledger=PrivacyLedger(1e-6))
    flat = pl.DataFrame(
        {
            "a": ["p"] * (POOL_FACTOR * n),
            "x": rng.uniform(size=POOL_FACTOR * n).tolist(),
            "y": ["no"] * (POOL_FACTOR * n),
        },
        schema_overrides={"x": pl.Float64},
    )
    pool = codec.encode(flat, rng=np.random.default_rng(12))
    _, mass = codec.mass_cells("x")
    target = np.append(mass * (1.0 - codec.null_rate["x"]), codec.null_rate["x"])

    nb = next(b for b in codec.blocks if b.column == "x" and b.role == "null")
    cells = np.where(pool[:, nb.start + 1] > pool[:, nb.start], len(mass), codec.encoded_cells("x", pool))

    def tv(w: np.ndarray) -> float:
        return 0.5 * float(np.abs(np.bincount(cells, weights=w, minlength=len(target)) / w.sum() - target).sum())

    assert tv(np.ones(len(pool))) > 0.2
    assert tv(Calibrator(codec, None).weights(pool)) < 0.01
    assert tv(Calibrator(codec, None, numeric_cells=False).weights(pool)) > 0.2  # the old raking left it
    # the drawn rows: pool rows (values chosen, never moved) whose mean is the real one's, not the pool's
    index = Calibrator(codec, None).select_index(pool, n, np.random.default_rng(13))
    drawn = codec.decode(pool[index])["x"].drop_nulls().to_numpy()
    assert abs(float(flat["x"].mean()) - 0.5) < 0.02
    assert abs(float(drawn.mean()) - float(real["x"].mean())) < 0.02


def test_mass_cells_read_merged_runs_back_as_one_cell(contract: Contract) -> None:
    codec = Codec(contract)
    spec = next(s for s in codec.numeric if s.name == "x")
    k = len(spec.edges_lo)
    counts = np.full(k, 5.0)  # sparse everywhere but two dense bins: merged runs between them
    counts[[10, 60]] = 800.0
    codec._set_statistics(
        {"a": np.array([1.0, 1.0, 1.0]), "y": np.array([1.0, 1.0]), "x": np.append(counts, 50.0)}, 10.0
    )
    cell, mass = codec.mass_cells("x")
    widths = spec.edges_hi - spec.edges_lo
    bm = codec.bin_mass["x"]
    assert mass.sum() == pytest.approx(1.0)
    assert cell[10] != cell[9] and cell[10] != cell[11]  # a dense bin is its own cell
    assert mass[cell[10]] == pytest.approx(bm[10])
    for c in range(len(mass)):  # inside a cell the density is one number: a run released as one sum
        members = np.flatnonzero(cell == c)
        dens = bm[members] / np.where(widths[members] > 0, widths[members], 1.0)
        if (widths[members] > 0).all():
            np.testing.assert_allclose(dens, dens[0], rtol=1e-9)
    assert len(mass) < (bm > 0).sum()  # runs were merged
    assert np.all(cell[bm <= 0] == -1)
    # the cell of an encoded value is the cell of the bin it decodes into
    x = np.zeros((k, codec.dim))
    block = next(b for b in codec.blocks if b.column == "x" and b.role == "value")
    u = np.linspace(0.001, 0.999, k)
    x[:, block.start] = 2.0 * u - 1.0
    values = codec.decode(x)["x"].to_numpy()
    bins = Codec._bin_index(spec, values)
    np.testing.assert_array_equal(codec.encoded_cells("x", x), cell[bins])
