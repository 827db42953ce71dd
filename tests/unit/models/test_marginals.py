"""models/marginals.py: pair marginals chosen and measured under DP, and the generator's loss on them."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from synthgate.models.codec import Codec
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.marginals import (
    MEASUREMENT,
    SELECTION,
    Measured,
    PairLoss,
    candidate_pairs,
    candidate_triples,
    conditional_independence,
    discretise,
    independence_deviation,
    measure_marginals,
    noise_deviation,
    plan_extra,
    plan_triples,
    pool_one_way,
    project_to_simplex,
    shrink_to_independence,
    soft_membership,
    target_share,
    target_weight,
    variables,
)
from synthgate.validation.contract import Contract, parse_contract

N = 4000


@pytest.fixture(scope="module")
def contract() -> Contract:
    return parse_contract(
        {
            "table": "m",
            "target": "y",
            "columns": {
                "a": {"kind": "categorical", "categories": ["p", "q", "r"]},
                "b": {"kind": "categorical", "categories": ["p", "q", "r"]},  # a copy of a: dependent
                "c": {"kind": "boolean"},  # independent noise
                "x": {"kind": "continuous", "min": 0.0, "max": 1.0, "nullable": True},
                "y": {"kind": "categorical", "categories": ["no", "yes"]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="m",
    )


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, N)
    x = rng.uniform(size=N)
    y = (x + 0.3 * rng.normal(size=N) > 0.5).astype(int)
    cats = np.array(["p", "q", "r"])
    return pl.DataFrame(
        {
            "a": cats[a],
            "b": cats[a],
            "c": rng.uniform(size=N) < 0.5,
            "x": [None if rng.uniform() < 0.1 else float(v) for v in x],
            "y": np.array(["no", "yes"])[y],
        },
        schema_overrides={"x": pl.Float64},
    )


def _codec(contract: Contract, table: pl.DataFrame) -> tuple[Codec, np.ndarray]:
    codec = Codec(contract)
    codec.fit_non_dp(table, ledger=PrivacyLedger(1e-6))
    return codec, codec.encode(table, rng=np.random.default_rng(1))


class _Recording:
    """A private-stream stand-in that records every Gaussian draw (its scale) and every choice."""

    def __init__(self, seed: int) -> None:
        self.rng, self.normal_calls, self.choices = np.random.default_rng(seed), [], 0

    def normal(self, loc: float, scale: float, size: tuple[int, ...]) -> np.ndarray:
        draw = self.rng.normal(loc, scale, size=size)
        self.normal_calls.append((scale, draw))
        return draw

    def choice(self, *args: object, **kwargs: object) -> int:
        self.choices += 1
        return self.rng.choice(*args, **kwargs)  # type: ignore[arg-type]


def _data_logits(x: np.ndarray, measured: Measured) -> torch.Tensor:
    """Generator logits that reproduce the encoded rows ``x``: large one-hot logits, arctanh of a numeric slot."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    logits = torch.where(xt > 0.5, 30.0, -30.0)
    for v in measured.variables:
        if v.kind == "tanh":
            logits[:, v.start] = torch.atanh(xt[:, v.start].clamp(-0.999, 0.999))
    return logits


def _ten_dp_measurements(codec: Codec, x: np.ndarray, triples: int) -> list[Measured]:
    """Ten DP measurements at ε = 1 (4 extra pairs chosen, ``triples`` 3-way ones), private seeds 0-9."""
    return [
        measure_marginals(
            x,
            codec,
            ledger=PrivacyLedger(1e-6),
            target_epsilon=1.0,
            rng=np.random.default_rng(seed),
            extra=4,
            triples=triples,
        )
        for seed in range(10)
    ]


def test_simplex_projection() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.normal(size=(4, 5)) * 3
        p = project_to_simplex(y, 2.0)
        assert p.shape == y.shape and (p >= 0).all() and p.sum() == pytest.approx(2.0)
        # no point of the simplex is closer (checked against random simplex points)
        for _ in range(20):
            z = rng.dirichlet(np.ones(20)).reshape(4, 5) * 2.0
            assert np.sum((p - y) ** 2) <= np.sum((z - y) ** 2) + 1e-9
    on = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(project_to_simplex(on), on)


def test_variables_candidates_and_target_pairs(contract: Contract, table: pl.DataFrame) -> None:
    codec, x = _codec(contract, table)
    vs = variables(codec)
    assert [v.label for v in vs] == ["a", "b", "c", "x", "y"]
    assert [v.width for v in vs] == [3, 3, 2, 8 + 1, 2]  # x: 8 bins and "null"
    with_target, others = candidate_pairs(vs, "y")
    labels = lambda ps: {(vs[i].label, vs[j].label) for i, j in ps}  # noqa: E731
    assert labels(with_target) == {("a", "y"), ("b", "y"), ("c", "y"), ("x", "y")}
    assert len(others) == 6
    codes = discretise(x, vs)
    assert codes[:, 0].tolist() == codes[:, 1].tolist()  # b is a copy of a
    null = table["x"].is_null().to_numpy()
    assert (codes[null, 3] == 8).all() and codes[~null, 3].max() <= 7 and codes[~null, 3].min() >= 0


def test_soft_membership_sums_to_one_and_tends_to_the_hard_bin(contract: Contract, table: pl.DataFrame) -> None:
    codec, x = _codec(contract, table)
    vs = variables(codec)
    v = next(v for v in vs if v.kind == "tanh")
    logits = torch.as_tensor(np.arctanh(np.clip(x, -0.999, 0.999)), dtype=torch.float64)
    m = soft_membership(logits, v, tau=1e-4)
    assert torch.allclose(m.sum(1), torch.ones(len(x), dtype=torch.float64))
    logits[:, v.null_start : v.null_start + 2] = torch.as_tensor(x[:, v.null_start : v.null_start + 2] * 60.0 - 30.0)
    m = soft_membership(logits, v, tau=1e-4)
    assert torch.allclose(m.sum(1), torch.ones(len(x), dtype=torch.float64))
    hard = discretise(x, vs)[:, vs.index(v)]
    assert (m.argmax(1).numpy() == hard).mean() > 0.99


def test_exact_measurements_are_the_empirical_pair_tables(contract: Contract, table: pl.DataFrame) -> None:
    codec, x = _codec(contract, table)
    ledger = PrivacyLedger(1e-6)
    # a spanning tree's worth of extra pairs (4 of 6 candidates), so that the exact scores choose
    measured = measure_marginals(
        x, codec, ledger=ledger, target_epsilon=None, rng=np.random.default_rng(0), extra=4, triples=0
    )
    assert [e.mechanism for e in ledger.entries] == [f"{SELECTION}-non-dp", f"{MEASUREMENT}-non-dp"]
    assert not ledger.differentially_private
    codes = discretise(x, measured.variables)
    for (a, b), t in zip(measured.pairs, measured.tables, strict=True):
        wa, wb = measured.variables[a].width, measured.variables[b].width
        exact = np.bincount(codes[:, a] * wb + codes[:, b], minlength=wa * wb).reshape(wa, wb) / len(x)
        np.testing.assert_allclose(t, exact, atol=1e-12)
    # exact scores pick the strongest dependence first: a with its copy b
    first_chosen = measured.pairs[4]
    assert {measured.variables[i].label for i in first_chosen} == {"a", "b"}


def test_dp_measurements_spend_the_target_noise_the_tables_and_choose_well(
    contract: Contract, table: pl.DataFrame
) -> None:
    codec, x = _codec(contract, table)
    ledger = PrivacyLedger(1e-6)
    ledger.charge("codec-histograms", noise_multiplier=10.0)
    before = ledger.epsilon
    # extra=4: a spanning tree's worth of the 6 candidates, so that the exponential mechanism chooses
    measured = measure_marginals(
        x, codec, ledger=ledger, target_epsilon=before + 1.0, rng=np.random.default_rng(3), extra=4, triples=0
    )
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", SELECTION, MEASUREMENT]
    assert before + 0.99 <= ledger.epsilon <= before + 1.0 + 1e-6
    sel, meas = ledger.entries[1:]
    assert meas.steps == len(measured.pairs) == 4 + sel.steps
    exact = measure_marginals(
        x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=np.random.default_rng(0), triples=0
    )
    exact_tables = dict(zip(exact.pairs, exact.tables, strict=True))
    errors = [
        np.abs(t - exact_tables[p]).sum()
        for p, t in zip(measured.pairs, measured.tables, strict=True)
        if p in exact_tables
    ]
    # noise was added (a mutant without it would give 0), yet 4,000 rows keep the tables close
    assert all(e > 0 for e in errors) and max(errors) < 0.25, errors
    for t in measured.tables:
        assert (t >= 0).all() and t.sum() == pytest.approx(1.0)
    # the exponential mechanism finds the copy (a, b) in most draws: score 5,300 rows vs ~0 for others
    hits = sum(
        any({m.variables[i].label for i in p} == {"a", "b"} for p in m.pairs[4:])
        for m in _ten_dp_measurements(codec, x, triples=0)
    )
    assert hits >= 8, hits


def test_the_pair_loss_is_smallest_at_the_measured_tables(contract: Contract, table: pl.DataFrame) -> None:
    codec, x = _codec(contract, table)
    measured = measure_marginals(
        x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=np.random.default_rng(0)
    )
    loss = PairLoss(measured, torch.device("cpu"))
    data_logits = _data_logits(x, measured)
    at_data = float(loss(data_logits))
    shuffled = data_logits.clone()
    shuffled[:, :3] = shuffled[torch.randperm(len(x), generator=torch.Generator().manual_seed(0)), :3]  # breaks a-b
    assert at_data < 0.02 and float(loss(shuffled)) > at_data + 0.5
    noise = torch.randn(500, codec.dim, generator=torch.Generator().manual_seed(0), requires_grad=True)
    value = loss(noise)
    value.backward()
    assert math.isfinite(value.item()) and noise.grad is not None and noise.grad.abs().sum() > 0


def test_the_targets_pairs_weigh_as_much_as_the_others(contract: Contract, table: pl.DataFrame) -> None:
    """With the contract's target, each of its pairs weighs (other pairs) / (its pairs), at least 1, so the
    target's pairs weigh as much as all the others together; the loss is that weighted sum of KL terms."""
    codec, x = _codec(contract, table)
    measured = measure_marginals(
        x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=np.random.default_rng(0), triples=0
    )
    on_target = [any(measured.variables[i].column == "y" for i in p) for p in measured.pairs]
    k = sum(on_target)
    assert 0 < k < len(measured.pairs)
    w = target_weight(measured, "y")
    assert w == max(1.0, (len(measured.pairs) - k) / k)
    assert target_weight(measured, None) == 1.0 and target_weight(measured, "not-a-column") == 1.0
    noise = torch.randn(500, codec.dim, generator=torch.Generator().manual_seed(1))
    member = {i: soft_membership(noise, v) for i, v in enumerate(measured.variables)}
    terms = []
    for (a, b), tab in zip(measured.pairs, measured.tables, strict=True):
        q = (member[a].t() @ member[b] / len(noise)).clamp_min(1e-8)
        t = torch.as_tensor(tab, dtype=torch.float32)
        terms.append(float((t * (torch.log(t.clamp_min(1e-8)) - torch.log(q))).sum()))
    plain = sum(terms)
    weighted = sum(x * (w if on else 1.0) for x, on in zip(terms, on_target, strict=True))
    assert float(PairLoss(measured, torch.device("cpu"))(noise)) == pytest.approx(plain, rel=1e-4)
    assert float(PairLoss(measured, torch.device("cpu"), target="y")(noise)) == pytest.approx(weighted, rel=1e-4)


def test_the_injected_noise_has_the_charged_scale(contract: Contract, table: pl.DataFrame) -> None:
    """Every pair table gets Gaussian noise of std = the measurement entry's noise multiplier (L2
    sensitivity 1 per table), and the exponential mechanism draws once per charged round."""
    codec, x = _codec(contract, table)

    rec = _Recording(11)
    ledger = PrivacyLedger(1e-6)
    measured = measure_marginals(x, codec, ledger=ledger, target_epsilon=0.5, rng=rec, extra=4, triples=0)  # type: ignore[arg-type]
    selection, measurement = ledger.entries
    assert rec.choices == selection.steps
    assert len(rec.normal_calls) == measurement.steps == len(measured.pairs)
    assert {scale for scale, _ in rec.normal_calls} == {measurement.noise_multiplier}
    draws = np.concatenate([d.ravel() for _, d in rec.normal_calls])
    # ~100 cells: the sample std within 25% of the charged σ (chi-square spread at this size is ~7%)
    assert abs(draws.std() / measurement.noise_multiplier - 1) < 0.25, (draws.std(), measurement.noise_multiplier)


def test_the_number_of_extra_pairs_follows_the_noise(contract: Contract, table: pl.DataFrame) -> None:
    """plan_extra: every candidate when exact or when the noise is small at n̂, a spanning tree's
    worth when it is large; measuring every candidate charges no selection round."""
    codec, x = _codec(contract, table)
    vs = variables(codec)
    with_target, others = candidate_pairs(vs, "y")
    assert len(others) == 6
    kw = {"ledger": PrivacyLedger(1e-6), "target_epsilon": 1.0}
    assert plan_extra(vs, with_target, others, ledger=PrivacyLedger(1e-6), target_epsilon=None, n_hat=10.0) == 6
    assert plan_extra(vs, with_target, others, n_hat=1e7, **kw) == 6
    assert plan_extra(vs, with_target, others, n_hat=50.0, **kw) == 4  # len(vs) - 1
    middle = [plan_extra(vs, with_target, others, n_hat=n, **kw) for n in (500.0, 2000.0, 8000.0, 32000.0)]
    assert middle == sorted(middle)  # more rows, never fewer pairs
    ledger = PrivacyLedger(1e-6)
    measured = measure_marginals(x, codec, ledger=ledger, target_epsilon=50.0, rng=np.random.default_rng(0), triples=0)
    assert len(measured.pairs) == len(with_target) + 6
    assert [e.mechanism for e in ledger.entries] == [MEASUREMENT]
    assert ledger.epsilon == pytest.approx(50.0, rel=1e-3)


def test_pooled_one_way_frequencies_are_unbiased_and_have_the_pooled_variance(
    contract: Contract, table: pl.DataFrame
) -> None:
    """pool_one_way: each categorical column's counts from the codec's histogram and every raw pair
    table holding it, inverse-variance weighted. Over 200 seeded repetitions of both releases the pooled
    frequencies centre on the exact ones and their variance is the formula's, 1 / (1/σ₀² + Σ 1/(σ²·w)),
    below the codec's σ₀² alone."""
    exact_codec = Codec(contract)
    exact_codec.fit_non_dp(table, ledger=PrivacyLedger(1e-6))
    x = exact_codec.encode(table, rng=np.random.default_rng(1))
    truth = {k: np.asarray(v, dtype=np.float64) for k, v in exact_codec.frequencies.items()}
    pooled: dict[str, list[np.ndarray]] = {}
    codec_only: dict[str, list[np.ndarray]] = {}
    for rep in range(200):
        codec = Codec(contract)
        ledger = PrivacyLedger(1e-6)
        codec.fit_dp(table, ledger=ledger, noise_multiplier=20.0, rng=np.random.default_rng(rep))
        m = measure_marginals(
            x, codec, ledger=ledger, target_epsilon=ledger.epsilon + 0.5, rng=np.random.default_rng(10_000 + rep)
        )
        assert set(m.one_way) == {"a", "b", "c", "y"}  # every categorical or boolean column; not x
        for k, f in m.one_way.items():
            assert (f >= 0).all() and f.sum() == pytest.approx(1.0)
            pooled.setdefault(k, []).append(f)
            codec_only.setdefault(k, []).append(codec.released_counts[k] / table.height)
    s0, s = codec.released_sigma, m.sigma  # the same σ₀ and σ in every repetition (public plan)
    widths = {v.column: v.width for v in m.variables}
    for k, draws in pooled.items():
        j = next(i for i, v in enumerate(m.variables) if v.column == k)
        others = [m.variables[b if a == j else a].width for a, b in m.pairs if j in (a, b)]
        assert len(others) >= 1
        expected = 1.0 / (1.0 / s0**2 + sum(1.0 / (s**2 * w) for w in others)) / table.height**2
        d = np.array(draws)
        # unbiased: every frequency is at least 0.1 here, so clipping at 0 never acts (mean within 4 se)
        assert np.abs(d.mean(0) - truth[k]).max() < 4 * np.sqrt(expected / len(d)), (k, d.mean(0), truth[k])
        # variance: of each cell, normalisation aside (it removes one degree of freedom of the sum)
        var = d.var(0, ddof=1).mean() * widths[k] / max(widths[k] - 1, 1)
        assert 0.75 < var / expected < 1.3, (k, var, expected)
        assert var < 0.9 * np.array(codec_only[k]).var(0, ddof=1).mean() * widths[k] / max(widths[k] - 1, 1)


def test_pooling_needs_released_counts_and_noise(contract: Contract, table: pl.DataFrame) -> None:
    """Exact (non-DP) measurements and a loaded codec (its raw counts are not saved) pool nothing; the
    pooled frequencies survive the model's state."""
    codec, x = _codec(contract, table)
    exact = measure_marginals(x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=np.random.default_rng(0))
    assert exact.one_way == {}
    dp_codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    dp_codec.fit_dp(table, ledger=ledger, noise_multiplier=20.0, rng=np.random.default_rng(0))
    m = measure_marginals(x, dp_codec, ledger=ledger, target_epsilon=ledger.epsilon + 0.5, rng=np.random.default_rng(1))
    back = Measured.from_state(m.variables, m.state())
    assert set(back.one_way) == set(m.one_way) and all(np.allclose(back.one_way[k], m.one_way[k]) for k in m.one_way)
    loaded = Codec(contract)
    loaded.load_state(dp_codec.state())
    assert (
        loaded.released_counts == {}
        and pool_one_way(loaded, m.variables, m.pairs, [t * 1.0 for t in m.tables], m.sigma) == {}
    )


def test_the_noise_deviation_is_what_noise_alone_gives() -> None:
    """noise_deviation: the mean L1 distance from independence of independent counts plus N(0, σ²) noise,
    within 5% over 400 seeded draws, for table shapes 2×2 to 8×9."""
    rng = np.random.default_rng(0)
    for shape in ((2, 2), (3, 2), (4, 4), (8, 9)):
        base = np.outer(rng.uniform(1, 3, shape[0]), rng.uniform(1, 3, shape[1])) * 1e5  # large counts
        dev = [independence_deviation(base + rng.normal(0, 10.0, shape)) for _ in range(400)]
        assert np.mean(dev) == pytest.approx(noise_deviation(shape, 10.0), rel=0.05), shape


def test_noise_level_tables_are_shrunk_and_dependent_ones_kept(contract: Contract, table: pl.DataFrame) -> None:
    """A table of independent columns plus noise is replaced by its margins' independence table in most
    draws; a dependent one (a copy) never is; exact tables and the target's tables are never shrunk."""
    rng = np.random.default_rng(1)
    base = np.outer([300.0, 500.0, 200.0], [0.5, 0.5])
    shrunk = [shrink_to_independence(base + rng.normal(0, 20.0, base.shape), 20.0) is not None for _ in range(300)]
    # 2 degrees of freedom: noise alone lands past 1.5× its mean deviation about one draw in five
    assert 0.7 < np.mean(shrunk) < 0.9, np.mean(shrunk)
    copy = np.diag([300.0, 500.0, 200.0])
    assert all(shrink_to_independence(copy + rng.normal(0, 20.0, copy.shape), 20.0) is None for _ in range(300))
    out = shrink_to_independence(base + rng.normal(0, 20.0, base.shape), 20.0)
    assert out is not None and np.linalg.matrix_rank(out) == 1  # an independence table
    assert shrink_to_independence(base, 0.0) is None  # exact counts are never replaced

    codec, x = _codec(contract, table)
    assert measure_marginals(x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=rng).shrunk == 0
    m = measure_marginals(x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=0.5, rng=np.random.default_rng(2))
    target = {i for i, v in enumerate(m.variables) if v.column == "y"}
    with_target = [i for i, p in enumerate(m.pairs) if target & set(p)]
    for i in with_target:  # never an exact rank-1 table: the target's tables keep their noise
        assert np.linalg.matrix_rank(m.tables[i], tol=1e-9) > 1
    a_b = next(i for i, p in enumerate(m.pairs) if {m.variables[j].label for j in p} == {"a", "b"})
    assert np.linalg.matrix_rank(m.tables[a_b], tol=1e-9) > 1  # the copy is kept
    assert 0 <= m.shrunk <= len(m.pairs) - len(with_target)
    restored = Measured.from_state(m.variables, m.state())
    assert restored.shrunk == m.shrunk and restored.independent == m.independent
    assert not set(m.independent) & set(with_target)


def test_a_table_whose_noise_swamps_its_rows_is_the_independence_table_of_the_dp_margins() -> None:
    """σ·√cells ≥ n̂: the noisy table (here a strong dependence, but counts of 100 under noise of std 60
    over 16 cells) becomes n̂·f_a⊗f_b from the given DP frequencies, whatever its counts; below that the
    deviation test decides, and keeps the dependence."""
    rng = np.random.default_rng(5)
    f_a, f_b = np.array([0.4, 0.6]), np.full(8, 1 / 8)
    dependent = 100.0 * np.eye(2, 8)  # 200 rows, all on two cells
    noisy = dependent + rng.normal(0.0, 60.0, dependent.shape)
    out = shrink_to_independence(noisy, 60.0, n_hat=200.0, margins=(f_a, f_b))  # 60·4 = 240 ≥ 200
    assert out is not None and np.allclose(out, 200.0 * np.outer(f_a, f_b))
    quiet = dependent + rng.normal(0.0, 5.0, dependent.shape)  # 5·4 = 20 < 200
    assert shrink_to_independence(quiet, 5.0, n_hat=200.0, margins=(f_a, f_b)) is None


# ------------------------------------------------------------------------------- 3-way marginals
def test_triple_candidates_and_how_many_are_planned(contract: Contract, table: pl.DataFrame) -> None:
    """(target, a, b) over pairs of two other columns; how many from public quantities only: every
    candidate without DP or when the noise is small at n̂, none when one table's noise is too large,
    never fewer as n̂ grows."""
    codec, x = _codec(contract, table)
    vs = variables(codec)
    cands = candidate_triples(vs, "y")
    assert len(cands) == 6  # a, b, c, x: every pair of two of them
    for t, a, b in cands:
        assert vs[t].column == "y" and "y" not in (vs[a].column, vs[b].column) and vs[a].column != vs[b].column
    assert candidate_triples(vs, None) == []
    with_target, others = candidate_pairs(vs, "y")
    kw = {"pair_measurements": len(with_target) + len(others), "pair_rounds": 0, "target_share": 0.5}
    dp = {"ledger": PrivacyLedger(1e-6), "target_epsilon": 1.0, **kw}

    def count(n_hat: float, ledger: PrivacyLedger | None = None, target_epsilon: float | None = 1.0) -> int:
        _, k = plan_triples(
            vs, cands, ledger=ledger or PrivacyLedger(1e-6), target_epsilon=target_epsilon, n_hat=n_hat, **kw
        )
        return k

    assert count(10.0, target_epsilon=None) == 6
    assert count(1e7) == 6
    assert count(50.0) == 0
    middle = [count(n) for n in (2000.0, 8000.0, 32000.0, 128000.0)]
    assert middle == sorted(middle) and middle[0] < 6, middle
    # each candidate on its own: where the median (13.5 cells of (a, b) per class: a × c has 6, a × x 27)
    # passes, the widest may not; the eligible ones are exactly those whose own error is within tolerance
    sizes = {c: math.prod(vs[i].width for i in c) for c in cands}
    grid = np.geomspace(500.0, 1e6, 40)
    for n in grid:
        eligible, k = plan_triples(vs, cands, n_hat=n, **dp)
        assert k <= len(eligible) and set(eligible) <= set(cands)
        if eligible:
            assert max(sizes[c] for c in eligible) <= max(sizes.values())
            dropped = [c for c in cands if c not in eligible]
            assert all(sizes[d] > max(sizes[c] for c in eligible) for d in dropped), (n, eligible)
    partial = [len(plan_triples(vs, cands, n_hat=n, **dp)[0]) for n in grid]
    assert any(0 < e < 6 for e in partial) and partial == sorted(partial), partial  # some n̂ drop only the widest
    # a rarer target class has fewer rows behind its conditional tables: never more triples
    rare = [plan_triples(vs, cands, n_hat=n, **{**dp, "target_share": 0.05})[1] for n in grid]
    common = [plan_triples(vs, cands, n_hat=n, **dp)[1] for n in grid]
    assert all(r <= c for r, c in zip(rare, common, strict=True)) and rare != common, (rare, common)
    # the share comes from the codec's DP frequencies of the target: y is about 50 / 50 here
    assert 0.4 < target_share(codec, vs[cands[0][0]]) < 0.6


def test_exact_triples_are_the_empirical_tables_and_the_copy_scores_highest(
    contract: Contract, table: pl.DataFrame
) -> None:
    codec, x = _codec(contract, table)
    ledger = PrivacyLedger(1e-6)
    measured = measure_marginals(x, codec, ledger=ledger, target_epsilon=None, rng=np.random.default_rng(0), triples=1)
    # every pair without DP (no pair selection), then one triple chosen by exact scores
    assert [e.mechanism for e in ledger.entries] == [
        f"{MEASUREMENT}-non-dp",
        f"{SELECTION}-non-dp",
        f"{MEASUREMENT}-non-dp",
    ]
    (t, a, b), tab = measured.triples[0], measured.triple_tables[0]
    # a and its copy b are far from independent given y; every other triple is near what its pairs say
    assert {measured.variables[i].label for i in (t, a, b)} == {"y", "a", "b"}
    codes = discretise(x, measured.variables)
    flat = np.ravel_multi_index((codes[:, t], codes[:, a], codes[:, b]), tab.shape)
    np.testing.assert_allclose(tab.ravel(), np.bincount(flat, minlength=tab.size) / len(x), atol=1e-12)
    assert measured.labels()[-1] == "y × a × b"
    again = Measured.from_state(measured.variables, measured.state())
    assert again.triples == measured.triples
    np.testing.assert_array_equal(again.triple_tables[0], tab)


def test_conditional_independence_is_what_the_pairs_imply() -> None:
    rng = np.random.default_rng(0)
    p_t = np.array([0.3, 0.7])
    a_t = rng.dirichlet(np.ones(3), size=2)  # P(a | t)
    b_t = rng.dirichlet(np.ones(4), size=2)  # P(b | t)
    joint = p_t[:, None, None] * a_t[:, :, None] * b_t[:, None, :]
    q = conditional_independence(joint.sum(2), joint.sum(1))
    np.testing.assert_allclose(q, joint, atol=1e-12)
    assert q.sum() == pytest.approx(1.0)


def test_dp_triples_are_charged_noised_at_the_charged_scale_and_found(contract: Contract, table: pl.DataFrame) -> None:
    """Triples are chosen by charged exponential-mechanism rounds, each table gets Gaussian noise of
    the measurement entry's std, and the whole step spends the ε asked for."""
    codec, x = _codec(contract, table)

    rec = _Recording(5)
    ledger = PrivacyLedger(1e-6)
    ledger.charge("codec-histograms", noise_multiplier=10.0)
    before = ledger.epsilon
    measured = measure_marginals(
        x,
        codec,
        ledger=ledger,
        target_epsilon=before + 1.0,
        rng=rec,  # type: ignore[arg-type]
        extra=4,
        triples=2,
    )
    mechanisms = [e.mechanism for e in ledger.entries]
    assert mechanisms == ["codec-histograms", SELECTION, MEASUREMENT, SELECTION, MEASUREMENT]
    assert before + 0.99 <= ledger.epsilon <= before + 1.0 + 1e-6
    pair_sel, pair_meas, tri_sel, tri_meas = ledger.entries[1:]
    assert tri_sel.steps == len(measured.triples) == tri_meas.steps == 2
    assert tri_sel.noise_multiplier == pytest.approx(pair_sel.noise_multiplier)  # one ε₀ per round
    assert rec.choices == pair_sel.steps + tri_sel.steps
    assert len(rec.normal_calls) == pair_meas.steps + tri_meas.steps
    assert {scale for scale, _ in rec.normal_calls} == {pair_meas.noise_multiplier} == {tri_meas.noise_multiplier}
    for tab in measured.triple_tables:
        assert tab.ndim == 3 and (tab >= 0).all() and tab.sum() == pytest.approx(1.0)
    # (y, a, b) is far from what its pairs say (b copies a, so a and b are not independent given y);
    # the other triples are within the noise of it
    hits = sum(
        {m.variables[i].label for i in m.triples[0]} == {"y", "a", "b"}
        for m in _ten_dp_measurements(codec, x, triples=1)
    )
    assert hits >= 8, hits


def test_the_loss_covers_the_triples(contract: Contract, table: pl.DataFrame) -> None:
    codec, x = _codec(contract, table)
    measured = measure_marginals(
        x, codec, ledger=PrivacyLedger(1e-6), target_epsilon=None, rng=np.random.default_rng(0)
    )
    assert len(measured.triples) == 6
    loss = PairLoss(measured, torch.device("cpu"))
    assert len(loss.cliques) == len(measured.pairs) + 6
    data_logits = _data_logits(x, measured)
    pairs_only = PairLoss(Measured(measured.variables, measured.pairs, measured.tables), torch.device("cpu"))
    noise = torch.randn(500, codec.dim, generator=torch.Generator().manual_seed(0))
    # the batched products equal each marginal's KL term computed on its own
    member = {i: soft_membership(noise, v) for i, v in enumerate(measured.variables)}
    naive = 0.0
    for idx, tab in measured.cliques():
        letters = "ijk"[: len(idx)]
        q = torch.einsum(",".join(f"n{c}" for c in letters) + "->" + letters, *[member[i] for i in idx]) / len(noise)
        t = torch.as_tensor(tab, dtype=torch.float32)
        naive += float((t * (torch.log(t.clamp_min(1e-8)) - torch.log(q.clamp_min(1e-8)))).sum())
        if len(idx) == 3:  # a triple counts only its conditional part: less the KL of its (t, a) margin
            t2, q2 = t.sum(2), q.sum(2)
            margin_kl = float((t2 * (torch.log(t2.clamp_min(1e-8)) - torch.log(q2.clamp_min(1e-8)))).sum())
            assert margin_kl >= 0
            naive -= margin_kl
    assert float(loss(noise)) == pytest.approx(naive, rel=1e-4)
    # at the data every term is near 0; on noise the triples add their own KL terms
    assert float(loss(data_logits)) < 0.05
    assert float(loss(noise)) > float(pairs_only(noise)) + 0.1
