from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

import synthgate.models.codec as codec_module
from synthgate.errors import ContractError
from synthgate.models.codec import (
    MAX_BINS,
    MIN_MODE_WEIGHT,
    PRECISION_STEPS,
    PRECISION_WEIGHT,
    Codec,
    _noisy_levels,
    _on_grid,
    fit_histogram_mixture,
    one_way_estimate,
    precision_level,
    row_estimate,
)
from synthgate.models.ledger import PrivacyLedger
from synthgate.validation.contract import Contract, parse_contract


def _fitted(contract: Contract, df: pl.DataFrame, noise: float = 1e-3) -> tuple[Codec, PrivacyLedger]:
    codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_dp(df, ledger=ledger, noise_multiplier=noise, rng=np.random.default_rng(0))
    return codec, ledger


def test_layout_comes_from_the_contract_alone(adult_contract: Contract) -> None:
    codec = Codec(adult_contract)
    widths = {b.column: 0 for b in codec.blocks}
    for b in codec.blocks:
        widths[b.column] += b.width
    # nullable categoricals get a null slot; numerics one slot; nothing depends on rows
    assert widths["workclass"] == 8 + 1
    assert widths["native-country"] == 41 + 1
    assert widths["age"] == 1
    assert codec.dim == sum(widths.values())


def test_round_trip_is_exact_when_noise_is_negligible(adult_contract: Contract, adult: pl.DataFrame) -> None:
    df = adult.select(adult_contract.modelled_columns)
    codec, _ = _fitted(adult_contract, df)
    x = codec.encode(df, rng=np.random.default_rng(1), dtype=np.float64)
    assert x.shape == (df.height, codec.dim)
    assert np.all(np.abs(x) <= 1.0)
    assert_frame_equal(codec.decode(x), df)


def test_float32_round_trip_is_exact_but_for_rare_float_resolution(
    adult_contract: Contract, adult: pl.DataFrame
) -> None:
    df = adult.select(adult_contract.modelled_columns)
    codec, _ = _fitted(adult_contract, df)
    back = codec.decode(codec.encode(df, rng=np.random.default_rng(1)))
    for name, col in adult_contract.columns.items():
        if col.kind == "integer" and col.max - col.min + 1 > MAX_BINS:
            exact = (back[name] == df[name]).mean()
            assert exact > 0.99, (name, exact)  # measured: fnlwgt 0.9941, capital-loss 0.99994
        else:
            assert_series_equal(back[name], df[name])


def test_histogram_step_is_charged_once(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    _, ledger = _fitted(adult_contract, adult_small.select(adult_contract.modelled_columns), noise=8.0)
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms"]
    assert ledger.entries[0].sample_rate == 1.0 and ledger.entries[0].steps == 1
    assert 0 < ledger.epsilon < 1.0


def test_decode_of_any_matrix_obeys_the_contract(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    codec, _ = _fitted(adult_contract, adult_small.select(adult_contract.modelled_columns), noise=8.0)
    x = np.random.default_rng(3).uniform(-3, 3, size=(5000, codec.dim)).astype(np.float32)
    out = codec.decode(x)
    for name, col in adult_contract.columns.items():
        s = out[name]
        if col.kind == "integer":
            assert s.min() >= col.min and s.max() <= col.max
        elif col.kind == "categorical":
            assert set(s.drop_nulls().to_list()) <= set(col.categories)
            if not col.nullable:
                assert s.null_count() == 0


# ---------------------------------------------------------------------------- "modes" encoding
NUMERICS = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def _small_contract(**x_extra: Any) -> Contract:
    return parse_contract(
        {
            "table": "t",
            "columns": {
                "x": {"kind": "continuous", "min": -10.0, "max": 10.0, **x_extra},
                "k": {"kind": "integer", "min": 0, "max": 5},
                "c": {"kind": "categorical", "categories": ["a", "b"]},
            },
            "privacy": {"epsilon": 3.0, "delta": 1e-6},
        }
    )


def _bimodal(n: int, seed: int, *, null_share: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.where(rng.uniform(size=n) < 0.3, rng.normal(-5, 0.5, n), rng.normal(4, 1.0, n)).clip(-10, 10)
    xs = pl.Series("x", x)
    if null_share:
        xs = pl.select(
            pl.when(pl.Series(rng.uniform(size=n) < null_share)).then(None).otherwise(xs).alias("x")
        ).to_series()
    return pl.DataFrame([xs, pl.Series("k", rng.integers(0, 6, n)), pl.Series("c", rng.choice(["a", "b"], n))])


def test_default_codec_stays_quantile(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    default, _ = _fitted(adult_contract, df, noise=8.0)
    explicit = Codec(adult_contract, numeric_encoding="quantile")
    explicit.fit_dp(df, ledger=PrivacyLedger(1e-6), noise_multiplier=8.0, rng=np.random.default_rng(0))
    assert default.numeric_encoding == "quantile" and default.modes == {}
    assert {b.role for b in default.blocks} <= {"value", "null"}
    assert default.blocks == explicit.blocks and default.dim == explicit.dim
    state = default.state()
    assert set(state) == {"bin_mass", "null_rate", "frequencies", "n_estimate", "n_estimate_sd", "precision"}
    old = {k: v for k, v in state.items() if k != "precision"}  # saved before precision profiles
    restored = Codec(adult_contract)
    restored.load_state(old)
    assert restored.precision == {}
    a = default.encode(df, rng=np.random.default_rng(4))
    b = explicit.encode(df, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)


def test_the_dp_row_estimate_states_its_own_noise(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    # n̂ averages the columns' noisy totals: over 200 noise draws its spread matches the stated sd
    # (the sample sd of 200 normals is within 15% of the true one with probability > 0.999)
    df = adult_small.select(adult_contract.modelled_columns)
    estimates, sds = [], set()
    for seed in range(200):
        codec = Codec(adult_contract)
        codec.fit_dp(df, ledger=PrivacyLedger(1e-6), noise_multiplier=8.0, rng=np.random.default_rng(seed))
        estimates.append(codec.n_estimate)
        sds.add(codec.n_estimate_sd)
    (sd,) = sds  # public: the same for every draw
    assert sd > 0 and abs(np.std(estimates, ddof=1) / sd - 1.0) < 0.15
    assert abs(np.mean(estimates) - df.height) < 4 * sd / math.sqrt(200)  # unbiased
    restored = Codec(adult_contract)
    restored.load_state(codec.state())
    assert restored.n_estimate_sd == sd
    old = {k: v for k, v in codec.state().items() if k != "n_estimate_sd"}  # saved before it was kept
    restored.load_state(old)
    assert restored.n_estimate_sd is None


def test_row_estimate_weighs_each_column_by_its_noise() -> None:
    # a 2-category column's total has noise variance 2σ², a 126-bin column's 126σ²: the inverse-variance
    # mean weighs them 63:1 and states std σ/√(1/2 + 1/126); over 2,000 draws its spread matches that
    # (sample sd of 2,000 normals within 5% of the true one with probability > 0.97) and is well under
    # the plain mean's, σ·√128 / 2
    rng = np.random.default_rng(0)
    sigma, n = 10.0, 1_000.0
    exact = {"flag": np.array([700.0, 300.0]), "amount": np.full(126, n / 126)}
    draws, sds = [], set()
    for _ in range(2_000):
        noisy = {k: v + rng.normal(0.0, sigma, v.shape) for k, v in exact.items()}
        est, sd = row_estimate(noisy, sigma)
        draws.append(est)
        sds.add(round(sd, 9))
    (sd,) = sds
    assert sd == pytest.approx(sigma / math.sqrt(1 / 2 + 1 / 126))
    assert abs(np.std(draws, ddof=1) / sd - 1.0) < 0.05
    assert abs(np.mean(draws) - n) < 4 * sd / math.sqrt(2_000)  # unbiased
    assert sd < 0.25 * sigma * math.sqrt(128) / 2
    assert row_estimate(exact, 0.0) == (n, 0.0)  # exact counts: every total is n


def test_one_way_estimate_takes_the_noise_off_empty_categories() -> None:
    # ISLR::Wage's region: nine declared categories, one held. Clipping keeps ~0.40σ rows in each empty
    # one; the projection onto n̂'s simplex takes one θ off every count first, so the empty ones keep
    # far less, and its total-variation error is lower (means over 2,000 draws of the injected noise)
    rng = np.random.default_rng(1)
    sigma, n = 30.0, 2_100.0
    truth = np.array([0.0, n] + [0.0] * 7)
    clip_tv, project_tv, empty = [], [], []
    for _ in range(2_000):
        noisy = truth + rng.normal(0.0, sigma, truth.shape)
        n_hat = n + rng.normal(0.0, 0.5 * sigma)  # a DP row estimate, more precise than this column's total
        clipped = np.clip(noisy, 0.0, None)
        clip_tv.append(0.5 * np.abs(clipped / clipped.sum() - truth / n).sum())
        est = one_way_estimate(noisy, n_hat)
        assert est.min() >= 0.0 and est.sum() == pytest.approx(1.0)
        project_tv.append(0.5 * np.abs(est - truth / n).sum())
        empty.append(est[truth == 0].sum())
    assert np.mean(clip_tv) == pytest.approx(8 * 0.3989 * sigma / n, rel=0.1)  # 8 × E[max(0, N(0, σ²))] / n
    assert np.mean(project_tv) < 0.5 * np.mean(clip_tv)
    assert np.mean(empty) < 0.5 * 8 * 0.3989 * sigma / n


def test_one_way_estimate_on_a_dense_column_is_clipping_or_close_to_it() -> None:
    # every category well above the noise: the projection only shifts each count by θ = (Σc − n̂)/k,
    # and where the clipped counts sum to n̂ or less it is exactly clipping
    counts = np.array([400.0, 250.0, 350.0])
    np.testing.assert_allclose(one_way_estimate(counts, 1_000.0), counts / 1_000.0)
    np.testing.assert_allclose(one_way_estimate(counts, 1_200.0), counts / 1_000.0)  # θ < 0: clipped only
    np.testing.assert_allclose(one_way_estimate(counts, 970.0), (counts - 10.0) / 970.0)
    np.testing.assert_allclose(one_way_estimate(np.array([-5.0, -1.0]), 10.0), [0.5, 0.5])  # all noise: uniform
    with pytest.raises(ValueError, match="n_hat must be the codec's DP row estimate"):
        one_way_estimate(counts, float("nan"))


def test_modes_layout_comes_from_the_contract_and_max_modes(adult_contract: Contract) -> None:
    codec = Codec(adult_contract, numeric_encoding="modes", max_modes=7)
    for name in NUMERICS:
        value = next(b for b in codec.blocks if b.column == name and b.role == "value")
        mode = next(b for b in codec.blocks if b.column == name and b.role == "mode")
        assert value.kind == "tanh" and mode.kind == "softmax" and mode.width == 7
        assert mode.start == value.start + 1
    assert codec.dim == Codec(adult_contract).dim + 7 * len(NUMERICS)
    with pytest.raises(ValueError, match="numeric_encoding must be 'quantile' or 'modes'"):
        Codec(adult_contract, numeric_encoding="gmm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_modes must be an integer >= 1"):
        Codec(adult_contract, numeric_encoding="modes", max_modes=0)


def test_modes_round_trip_on_adult_numerics(adult_contract: Contract, adult: pl.DataFrame) -> None:
    df = adult.select(adult_contract.modelled_columns)
    codec = Codec(adult_contract, numeric_encoding="modes")
    codec.fit_dp(df, ledger=PrivacyLedger(1e-6), noise_multiplier=8.0, rng=np.random.default_rng(0))
    for name in NUMERICS:  # a tidy mixture per column
        mix = codec.modes[name]
        w = mix.weight[mix.valid]
        assert abs(w.sum() - 1.0) < 1e-9 and np.all(w >= MIN_MODE_WEIGHT)
        assert np.all(mix.std > 0) and np.all(np.diff(mix.mean[mix.valid]) >= 0)
    cg = codec.modes["capital-gain"]  # most people have no capital gain: a mode on the point bin at 0
    assert cg.weight[0] > 0.85 and abs(cg.mean[0]) < 1.0

    x = codec.encode(df, rng=np.random.default_rng(1))
    assert x.shape == (df.height, codec.dim) and np.all(np.abs(x) <= 1.0)
    for b in codec.blocks:
        if b.role == "mode":  # exact one-hots, only on modes the mixture keeps
            block = x[:, b.start : b.start + b.width]
            assert np.all(block.sum(axis=1) == 1.0)
            assert np.all(block[:, ~codec.modes[b.column].valid] == 0.0)
    back = codec.decode(x)
    for name in adult_contract.modelled_columns:
        if name not in NUMERICS:
            assert_series_equal(back[name], df[name])
            continue
        a, r = df[name].to_numpy().astype(float), back[name].to_numpy().astype(float)
        # measured: >= 0.998 exact (fnlwgt 0.9982, capital-loss 0.9991; the rest >= 0.9999); the
        # misses are values clipped at α = ±1 (> 4σ from their sampled mode) or float32 rounding.
        assert np.mean(a == r) > 0.995, (name, np.mean(a == r))
        assert np.mean(np.abs(a - r)) < 0.01 * a.std(), name


def test_mixture_fit_handles_few_integer_values() -> None:
    centres = np.arange(0.0, 3.0)  # an integer column with three values, one bin each
    mix = fit_histogram_mixture(np.array([0.5, 0.0, 0.5]), centres - 0.5, centres + 0.5, 10)
    valid = mix.valid
    assert valid.sum() == 2 and len(mix.weight) == 10
    np.testing.assert_allclose(mix.mean[valid], [0.0, 2.0], atol=1e-3)
    np.testing.assert_allclose(mix.weight[valid], [0.5, 0.5], atol=1e-6)
    assert np.all(mix.std[valid] >= np.sqrt(1 / 12) - 1e-9)  # a bin's own width keeps σ > 0
    one = fit_histogram_mixture(np.array([0.0, 1.0, 0.0]), centres - 0.5, centres + 0.5, 4)
    assert one.valid.sum() == 1 and one.mean[0] == pytest.approx(1.0)


def test_contract_modes_are_used_verbatim_without_a_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = [{"mean": -5.0, "std": 0.5, "weight": 0.3}, {"mean": 4.0, "std": 1.0, "weight": 0.7}]
    contract = _small_contract(modes=declared)
    fitted_columns: list[int] = []
    real_fit = codec_module.fit_histogram_mixture

    def spy(mass: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: int, **kw: Any) -> Any:
        fitted_columns.append(len(mass))
        return real_fit(mass, lo, hi, k, **kw)

    monkeypatch.setattr(codec_module, "fit_histogram_mixture", spy)
    codec = Codec(contract, numeric_encoding="modes", max_modes=10)
    assert next(b for b in codec.blocks if b.column == "x" and b.role == "mode").width == 2
    codec.fit_dp(_bimodal(2000, 0), ledger=PrivacyLedger(1e-6), noise_multiplier=8.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(codec.modes["x"].mean, [-5.0, 4.0])
    np.testing.assert_array_equal(codec.modes["x"].std, [0.5, 1.0])
    np.testing.assert_array_equal(codec.modes["x"].weight, [0.3, 0.7])
    assert fitted_columns == [6]  # only the integer column "k" (6 values) was fitted, not "x"


def test_learned_modes_depend_only_on_the_dp_histogram(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    """Taint test: two different tables with identical histograms get identical modes."""
    df = adult_small.select(adult_contract.modelled_columns)
    # fnlwgt's bins are ~15,700 wide: moving each value to its bin's centre changes the rows
    # but no bin count; shuffling the rows changes nothing a histogram sees either.
    probe = Codec(adult_contract, numeric_encoding="modes")
    spec = next(s for s in probe.numeric if s.name == "fnlwgt")
    idx = probe._bin_index(spec, df["fnlwgt"].to_numpy().astype(float))
    moved = np.rint((spec.edges_lo[idx] + spec.edges_hi[idx]) / 2).astype(np.int64)
    other = df.with_columns(pl.Series("fnlwgt", moved)).sample(fraction=1.0, shuffle=True, seed=3)
    assert not other.equals(df)

    codecs = []
    for table in (df, other):
        c = Codec(adult_contract, numeric_encoding="modes")
        c.fit_dp(table, ledger=PrivacyLedger(1e-6), noise_multiplier=8.0, rng=np.random.default_rng(11))
        codecs.append(c)
    a, b = codecs
    for name in NUMERICS:
        np.testing.assert_array_equal(a.bin_mass[name], b.bin_mass[name])
        for field in ("weight", "mean", "std"):
            np.testing.assert_array_equal(getattr(a.modes[name], field), getattr(b.modes[name], field))
        # and they are exactly the mixture fitted to the released bin masses
        s = next(sp for sp in a.numeric if sp.name == name)
        again = fit_histogram_mixture(a.bin_mass[name], s.edges_lo, s.edges_hi, 10)
        np.testing.assert_array_equal(again.mean, a.modes[name].mean)


def test_modes_keep_the_null_block_and_decode_any_matrix_within_bounds() -> None:
    contract = _small_contract(nullable=True)
    codec = Codec(contract, numeric_encoding="modes", max_modes=5)
    roles = [(b.column, b.role) for b in codec.blocks]
    assert roles[:3] == [("x", "value"), ("x", "mode"), ("x", "null")]
    df = _bimodal(3000, 1, null_share=0.1)
    codec.fit_non_dp(df, ledger=PrivacyLedger(1e-6))
    valid_means = np.sort(codec.modes["x"].mean[codec.modes["x"].valid])
    assert np.abs(valid_means[0] + 5) < 0.5 and np.abs(valid_means[-1] - 4) < 0.5
    back = codec.decode(codec.encode(df, rng=np.random.default_rng(2), dtype=np.float64))
    assert back["x"].is_null().to_list() == df["x"].is_null().to_list()
    np.testing.assert_allclose(back["x"].drop_nulls().to_numpy(), df["x"].drop_nulls().to_numpy(), atol=1e-9)
    assert back["k"].to_list() == df["k"].to_list()

    x = np.random.default_rng(3).uniform(-3, 3, size=(4000, codec.dim))
    out = codec.decode(x)
    assert out["x"].drop_nulls().min() >= -10 and out["x"].drop_nulls().max() <= 10
    assert out["k"].min() >= 0 and out["k"].max() <= 5


def test_modes_state_round_trips_and_old_states_still_load(adult_contract: Contract, adult_small: pl.DataFrame) -> None:
    df = adult_small.select(adult_contract.modelled_columns)
    codec = Codec(adult_contract, numeric_encoding="modes")
    codec.fit_dp(df, ledger=PrivacyLedger(1e-6), noise_multiplier=8.0, rng=np.random.default_rng(0))
    state = codec.state()
    assert state["numeric_encoding"] == "modes" and set(state["modes"]) == set(NUMERICS)
    x = codec.encode(df, rng=np.random.default_rng(5))

    loaded = Codec(adult_contract, numeric_encoding="modes")
    loaded.load_state(state)
    assert loaded.decode(x).equals(codec.decode(x))
    # a state saved without modes: they are refitted from the bin masses, identically
    old = {k: v for k, v in state.items() if k != "modes"}
    refit = Codec(adult_contract, numeric_encoding="modes")
    refit.load_state(old)
    assert refit.decode(x).equals(codec.decode(x))
    # the default codec still reads an old (quantile) state; mismatches are refused clearly
    plain, _ = _fitted(adult_contract, df, noise=8.0)
    fresh = Codec(adult_contract)
    fresh.load_state(plain.state())
    with pytest.raises(ValueError, match="numeric_encoding='modes'"):
        Codec(adult_contract).load_state(state)
    with pytest.raises(ValueError, match="numeric_encoding='quantile'"):
        Codec(adult_contract, numeric_encoding="modes").load_state(plain.state())


@pytest.mark.parametrize(
    ("modes", "message"),
    [
        ([{"mean": 0.0, "std": 0.0, "weight": 1.0}], r"modes\[0\].std must be > 0"),
        ([{"mean": 11.0, "std": 1.0, "weight": 1.0}], r"modes\[0\].mean must lie within the column's bounds"),
        ([{"mean": 0.0, "std": 1.0, "weight": 0.5}, {"mean": 1.0, "std": 1.0, "weight": 0.4}], "must sum to 1"),
        (
            [{"mean": 0.0, "std": 1.0, "weight": 1.1}, {"mean": 1.0, "std": 1.0, "weight": -0.1}],
            r"modes\[1\].weight must be > 0",
        ),
        ([], "modes is empty"),
        ([{"mean": 0.0, "std": 1.0}], "modes.0.weight"),
    ],
)
def test_contract_rejects_bad_modes(modes: list[dict[str, float]], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        _small_contract(modes=modes)


def test_contract_modes_are_optional_and_do_not_change_old_fingerprints(adult_contract: Contract) -> None:
    assert all(getattr(c, "modes", None) is None for c in adult_contract.columns.values())
    assert "modes" not in adult_contract.model_dump_json() and "modes" not in adult_contract.to_yaml()
    with_modes = _small_contract(modes=[{"mean": 0.0, "std": 1.0, "weight": 1.0}])
    assert "modes" in with_modes.to_yaml()
    assert with_modes.fingerprint() != _small_contract().fingerprint()


# ---------------------------------------------------------------- point masses (issue 21)


def _spiky() -> tuple[Contract, pl.DataFrame]:
    rng = np.random.default_rng(7)
    n = 4000
    amount = np.where(rng.random(n) < 0.7, 0.0, np.round(rng.gamma(2.0, 800.0, n), 2)).clip(0, 20000)
    rate = np.where(rng.random(n) < 0.95, 5.0, rng.uniform(0, 10, n))  # near-constant at a declared value
    big = np.where(rng.random(n) < 0.5, 1234, rng.integers(20_000, 30_000, n))  # integer spike in a wide range
    contract = parse_contract(
        {
            "table": "t",
            "columns": {
                "amount": {"kind": "continuous", "min": 0, "max": 20000},
                "rate": {"kind": "continuous", "min": 0, "max": 10, "special_values": [5.0]},
                "big": {"kind": "integer", "min": 0, "max": 100_000, "special_values": [1234]},
            },
            "privacy": {"epsilon": 3.0, "delta": 1e-6},
        }
    )
    return contract, pl.DataFrame({"amount": amount, "rate": rate, "big": big})


def test_spikes_get_their_own_bins_and_decode_exactly() -> None:
    contract, df = _spiky()
    codec, ledger = _fitted(contract, df, noise=8.0)
    assert len(ledger.entries) == 1  # the same single charged histogram release: no extra ε
    assert codec.dim == 3  # the layout is unchanged: one tanh slot per numeric column
    # With DP noise (σ ≈ 14 rows per bin here) the 2σ threshold drops thin tail bins, which raises a
    # spike's share by a few points at n = 4000: tolerance 0.05. Exact histograms: 0.005.
    exact, _ = _fitted(contract, df)
    for c, noisy, tol in ((codec, True, 0.05), (exact, False, 0.005)):
        shares = c.spike_shares("amount")
        assert set(shares) == {0.0, 20000.0}
        assert shares[0.0] == pytest.approx(float((df["amount"] == 0).mean()), abs=tol), noisy
        assert c.spike_shares("rate")[5.0] == pytest.approx(float((df["rate"] == 5).mean()), abs=tol), noisy
        assert c.spike_shares("big")[1234.0] == pytest.approx(float((df["big"] == 1234).mean()), abs=tol), noisy
    # an ideal generator (uniform u in every slot) decodes to the spikes in their DP shares
    u = 2.0 * np.random.default_rng(2).random((df.height, codec.dim)) - 1.0
    syn = codec.decode(u)
    for col, value, real in (("amount", 0.0, 0.699), ("rate", 5.0, 0.952), ("big", 1234, 0.5)):
        got = float((syn[col] == value).mean())
        assert got == pytest.approx(float((df[col] == value).mean()), abs=0.06), (col, got, real)


def test_spike_rows_encode_spread_over_their_cdf_share_and_round_trip() -> None:
    contract, df = _spiky()
    codec, _ = _fitted(contract, df)
    x = codec.encode(df, rng=np.random.default_rng(0), dtype=np.float64)
    zero = (df["amount"] == 0).to_numpy()
    slot = x[zero, 0]
    # the zero rows fill their share of [-1, 1] instead of sitting on one point
    assert slot.max() - slot.min() == pytest.approx(2 * 0.699, abs=0.02)
    back = codec.decode(x)
    for col, value in (("amount", 0.0), ("rate", 5.0), ("big", 1234)):
        assert ((back[col] == value) == (df[col] == value)).all(), col  # exactly the spike rows come back on it
    np.testing.assert_allclose(back["rate"].to_numpy(), df["rate"].to_numpy(), atol=1e-6)
    assert (back["big"] == df["big"]).all()


def test_without_spikes_the_bins_are_as_before() -> None:
    e_lo, e_hi = codec_module._numeric_bins("continuous", 0.0, 1.0)
    assert len(e_lo) == MAX_BINS and (e_hi > e_lo).all()
    e_lo, e_hi = codec_module._numeric_bins("continuous", 0.0, 1.0, np.array([0.0, 0.5, 1.0]))
    points = e_lo[e_lo == e_hi]
    assert points.tolist() == [0.0, 0.5, 1.0] and len(e_lo) == MAX_BINS + 3
    i_lo, i_hi = codec_module._numeric_bins("integer", 0, 10_000, np.array([0.0, 77.0, 10_000.0]))
    assert [lo + 0.5 for lo, hi in zip(i_lo, i_hi, strict=True) if hi - lo == 1.0][:2] == [0.0, 77.0]


def test_a_state_saved_before_spike_bins_still_loads_and_decodes() -> None:
    contract, df = _spiky()
    codec, _ = _fitted(contract, df)
    state = codec.state()
    # the state an older codec saved: plain bins for the continuous columns (128, no point bins)
    for name in ("amount", "rate"):
        col = contract.columns[name]
        lo, hi = codec_module._numeric_bins("continuous", float(col.min), float(col.max))
        state["bin_mass"][name] = [1.0 / len(lo)] * len(lo)
    fresh = Codec(contract)
    fresh.load_state(state)
    out = fresh.decode(2.0 * np.random.default_rng(0).random((500, fresh.dim)) - 1.0)
    assert out["amount"].is_between(0, 20000).all() and out["rate"].is_between(0, 10).all()
    state["bin_mass"]["amount"] = [1.0] * 7
    with pytest.raises(ValueError, match="another contract"):
        Codec(contract).load_state(state)


# --- precision profiles ----------------------------------------------------------------------


def test_precision_level_finds_the_coarsest_grid() -> None:
    steps = PRECISION_STEPS["continuous"]
    values = np.array([55.0, 55.5, 55.4, 55.43, 55.431, 55.4312, -3.0, -0.5, 0.3])
    assert precision_level(values, steps).tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    day = 86400.0
    stamps = np.array([19000 * day, 19000 * day + 3600, 19000 * day + 60, 19000 * day + 1, 19000 * day + 0.5])
    assert precision_level(stamps, PRECISION_STEPS["datetime"]).tolist() == [0, 1, 2, 3, 4]


def test_a_mostly_whole_column_decodes_mostly_whole() -> None:
    """98% of the rows whole numbers, 2% on the 0.1 grid (a ninth of them halves): the DP profile
    carries the shares, the sample follows them (public sampling stream), and without a stream values
    are left as decoded."""
    contract = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "continuous", "min": 40.0, "max": 80.0}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    rng = np.random.default_rng(3)
    n = 20_000
    whole = rng.integers(50, 70, n).astype(np.float64)
    x = np.where(rng.random(n) < 0.02, whole + 0.1 * rng.integers(1, 10, n), whole)
    codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_dp(pl.DataFrame({"x": x}), ledger=ledger, noise_multiplier=8.0, rng=np.random.default_rng(4))
    shares = codec.precision["x"]
    assert shares[0] == pytest.approx(0.98, abs=0.01) and shares[1] + shares[2] == pytest.approx(0.02, abs=0.01)
    assert codec.sensitivity == pytest.approx(math.sqrt(1 + PRECISION_WEIGHT**2))
    enc = codec.encode(pl.DataFrame({"x": x}), rng=np.random.default_rng(5))
    out = codec.decode(enc, rng=np.random.default_rng(6))["x"].to_numpy()
    # rows drawn onto the 0.1 grid can land on a whole number too: at least 98% whole, every
    # other value on the 0.1 grid
    assert 0.975 <= np.mean(out == np.rint(out)) < 1.0
    assert (precision_level(out, PRECISION_STEPS["continuous"]) <= 2).all()
    assert out.min() >= 40.0 and out.max() <= 80.0
    plain = codec.decode(enc)["x"].to_numpy()
    assert np.mean(plain == np.rint(plain)) < 0.5  # the quantile decode jitters within bins


def test_the_precision_counts_get_the_mechanism_noise() -> None:
    exact = np.array([9000.0, 800.0, 150.0, 50.0, 0.0])
    sigma = 12.0
    rng = np.random.default_rng(8)
    draws = np.stack([_noisy_levels(exact, sigma, rng) for _ in range(4000)])
    # the weighted counts get std σ; in rows that is σ / w, centred on the exact counts
    np.testing.assert_allclose(draws.mean(axis=0), exact, atol=4 * sigma / PRECISION_WEIGHT / math.sqrt(4000))
    np.testing.assert_allclose(draws.std(axis=0), sigma / PRECISION_WEIGHT, rtol=0.05)


def test_the_grid_follows_the_value() -> None:
    """A row's grid is drawn from the profile weighted by the grid's own points inside its decoded bin
    (``_on_grid``): the released bin masses stay where the DP histogram put them."""
    steps = PRECISION_STEPS["continuous"]  # 1, 0.5, 0.1, 0.01, 0.001, then "none"
    shares = np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])  # whole and half units only (years of schooling)
    rng = np.random.default_rng(0)
    n = 6000

    def grid(lo: float, hi: float, bounds: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        v = rng.uniform(lo, hi, n)
        return v, _on_grid(v, shares, steps, np.full(n, lo), np.full(n, hi), rng, bounds=bounds)

    # (10.43, 10.66) holds no whole number: every row goes to 10.5, none to 10 or 11
    assert (grid(10.43, 10.66)[1] == 10.5).all()
    # (8.6, 9.4): 9 is the only point of either grid (a whole number is no half grid's own point)
    assert (grid(8.6, 9.4)[1] == 9.0).all()
    # (9.6, 11.4): the whole grid's own points 10 and 11 (length 1 each) against the half grid's 10.5
    # (length 1 / (2 - 1)): weights 0.5·2·1 and 0.5·1·1, so a third of the rows go to 10.5
    _, out = grid(9.6, 11.4)
    assert set(np.unique(out)) == {10.0, 10.5, 11.0}
    assert np.mean(out == 10.5) == pytest.approx(1 / 3, abs=0.02)
    # a bin much wider than the steps: the profile's own shares (half of the rows on odd halves)
    v, out = grid(0.0, 30.0)
    assert np.mean(out != np.rint(out)) == pytest.approx(0.5, abs=0.02)
    assert np.abs(out - v).max() <= 0.5 + 1e-9
    # (10.51, 10.59) holds no point of a grid with a share: left as decoded, or, given the column's
    # bounds, widened to them and rounded to the nearest point of a grid drawn from the shares
    v, out = grid(10.51, 10.59)
    np.testing.assert_array_equal(out, v)
    _, out = grid(10.51, 10.59, bounds=(0.0, 30.0))
    assert set(np.unique(out)) == {10.5, 11.0}
    with pytest.raises(ValueError, match="levels"):
        _on_grid(v, shares[:-1], steps, np.full(n, 10.51), np.full(n, 10.59), rng)


def test_grid_points_read_as_their_decimals() -> None:
    """12 × 0.1 is 1.2000000000000002 in floats: a KS test against a real 1.2 counts it above the spike.
    The grid points come out as the decimals the table holds."""
    steps = PRECISION_STEPS["continuous"]
    rng = np.random.default_rng(1)
    v = rng.uniform(0.0, 3.0, 5000)
    tenth = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    out = _on_grid(v, tenth, steps, np.full(len(v), 0.0), np.full(len(v), 3.0), rng)
    decimal = np.array([float(f"{x:.1f}") for x in out])
    np.testing.assert_array_equal(out, decimal)
    assert (out == 1.2).sum() > 0


def test_a_spiked_continuous_column_decodes_onto_its_spikes() -> None:
    """Years of schooling declared continuous in [0, 30]: 19 values, whole and half years. Decoded
    through the DP bins and the DP profile, the values are grid points inside their bins, so the
    KS distance to the real column is that of the DP histogram, not of a uniform spread in each bin."""
    from scipy.stats import ks_2samp

    contract = parse_contract(
        {
            "table": "t",
            "columns": {"educ": {"kind": "continuous", "min": 0.0, "max": 30.0}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    rng = np.random.default_rng(11)
    values = np.array([7.0, 9.0, 10.0, 10.5, 11.0, 11.5, 12.0, 13.5, 15.0, 18.0])
    p = np.array([0.01, 0.2, 0.05, 0.35, 0.1, 0.11, 0.04, 0.02, 0.05, 0.07])
    x = rng.choice(values, size=15_000, p=p)
    codec = Codec(contract)
    codec.fit_dp(pl.DataFrame({"educ": x}), ledger=PrivacyLedger(1e-6), noise_multiplier=4.0, rng=rng)
    enc = codec.encode(pl.DataFrame({"educ": x}), rng=np.random.default_rng(12))
    out = codec.decode(enc, rng=np.random.default_rng(13))["educ"].to_numpy()
    # every value on the whole or half grid, and the column's KS distance small (0.17 on rwm5yr's
    # educ at ε = 10 before the rule, with the level drawn apart from the value)
    assert (precision_level(out, PRECISION_STEPS["continuous"]) <= 1).all()
    assert ks_2samp(x, out).statistic < 0.03


def test_a_profile_saved_before_the_half_grid_loads_with_no_half_rows() -> None:
    contract = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "continuous", "min": 0.0, "max": 10.0}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    codec = Codec(contract)
    x = np.random.default_rng(1).integers(0, 10, 5000).astype(np.float64)
    codec.fit_dp(pl.DataFrame({"x": x}), ledger=PrivacyLedger(1e-6), noise_multiplier=4.0, rng=np.random.default_rng(2))
    state = codec.state()
    state["precision"] = {"x": [0.9, 0.1, 0.0, 0.0, 0.0]}  # levels 1, 0.1, 0.01, 0.001, none
    restored = Codec(contract)
    restored.load_state(state)
    np.testing.assert_array_equal(restored.precision["x"], [0.9, 0.0, 0.1, 0.0, 0.0, 0.0])
    state["precision"] = {"x": [0.9, 0.1]}
    with pytest.raises(ValueError, match="Refit the model"):
        Codec(contract).load_state(state)


def test_a_value_s_grid_interval_is_its_released_cell() -> None:
    """Inside a merged run of sparse bins (one noisy sum spread by width) where a value falls is an
    assumption, so its grid interval is the run's extent, not its own bin: a run of bins narrower than
    the grid still sends its rows to the grid's points."""
    contract = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "continuous", "min": 0.0, "max": 1000.0}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.integers(400, 600, 20_000), rng.integers(600, 1000, 3000)]).astype(np.float64)
    codec = Codec(contract)
    codec.fit_dp(pl.DataFrame({"x": x}), ledger=PrivacyLedger(1e-6), noise_multiplier=20.0, rng=rng)
    spec = codec.numeric[0]
    cell, _ = codec.mass_cells("x")
    runs = [c for c in np.unique(cell[cell >= 0]) if (cell == c).sum() > 1]
    assert runs, "the sparse tail should be released as at least one merged run"
    enc = codec.encode(pl.DataFrame({"x": x}), rng=np.random.default_rng(6))
    lo, hi = codec._decoded_bin_edges(spec, enc, len(x))
    bins = codec._inverse_bin(spec, np.clip((enc[:, 0].astype(np.float64) + 1.0) / 2.0, 0.0, 1.0))
    in_runs = 0
    for c in runs:
        rows = cell[bins] == c
        members = np.flatnonzero(cell == c)
        in_runs += int(rows.sum())
        if rows.any():
            assert (lo[rows] == max(spec.edges_lo[members].min(), 0.0)).all()
            assert (hi[rows] == min(spec.edges_hi[members].max(), 1000.0)).all()
    assert in_runs > 100  # the check above ran on rows of merged runs
    single = np.array([(cell == cell[b]).sum() == 1 for b in bins])
    np.testing.assert_array_equal(lo[single], spec.edges_lo[bins[single]])
    np.testing.assert_array_equal(hi[single], spec.edges_hi[bins[single]])
