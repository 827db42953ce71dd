"""The numeric zoom: bins cut finer where a contract's bounds are far wider than its rows
(``zoom_edges``, ``Codec.zoom_plan``, ``Codec.zoom``, ``DPCTGAN.zoom_noise``, ``numeric_zoom``)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import ks_2samp

from synthgate.models import codec as codec_module
from synthgate.models.codec import ZOOM_DECADES, ZOOM_LINEAR, Codec, zoom_edges, zoom_per_decade
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.ctgan import DPCTGAN, ZOOM_SHARE, CTGANConfig
from synthgate.validation.contract import Contract, parse_contract


@pytest.fixture(scope="module")
def contract() -> Contract:
    """``amount`` bounded a million times above its rows; ``score`` bounded to its rows."""
    return parse_contract(
        {
            "table": "z",
            "target": "y",
            "columns": {
                "amount": {"kind": "continuous", "min": 0.0, "max": 1.0e9},
                "count": {"kind": "integer", "min": 0, "max": 10_000_000},
                "delta": {"kind": "continuous", "min": -1.0e12, "max": 1.0e12},
                "score": {"kind": "continuous", "min": 0.0, "max": 1.0},
                "y": {"kind": "categorical", "categories": ["no", "yes"]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="z",
    )


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "amount": rng.lognormal(5.0, 1.0, n),  # median ~150, bins of 7.8 million
            "count": np.where(rng.uniform(size=n) < 0.3, 0, rng.integers(1, 60, n)),  # a spike at 0, then 1-59
            "delta": rng.normal(0.0, 0.01, n),  # both sides of zero, at ~1e-2
            "score": rng.beta(2.0, 5.0, n),
            "y": np.where(rng.uniform(size=n) < 0.3, "yes", "no"),
        }
    )


def _spec(codec: Codec, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in codec.numeric if s.name == name)


def _ks(codec: Codec, df: pl.DataFrame, name: str) -> float:
    """KS distance between the column's rows and values drawn from the codec's CDF alone."""
    spec = _spec(codec, name)
    u = (np.arange(4000) + 0.5) / 4000
    drawn = codec._inverse_cdf(spec, u)
    return float(ks_2samp(df[name].to_numpy(), np.rint(drawn) if spec.kind == "integer" else drawn).statistic)


# ---------------------------------------------------------------------------- public sub-bins
def test_a_bin_at_zero_gets_linear_and_geometric_cuts_towards_zero(contract: Contract) -> None:
    spec = _spec(Codec(contract), "amount")
    assert spec.edges_hi[0] == spec.edges_lo[0] == 0.0  # the point mass at the lower bound: not cut
    assert zoom_edges(spec, 0)[0].tolist() == [0.0]
    lo, hi = zoom_edges(spec, 1, per_decade=8)
    width = spec.edges_hi[1] - spec.edges_lo[1]
    assert lo[0] == spec.edges_lo[1] == 0.0 and hi[-1] == spec.edges_hi[1]
    assert np.all(hi > lo) and np.array_equal(lo[1:], hi[:-1])  # contiguous, no empty sub-bin
    assert hi[0] == pytest.approx(width * 10.0 ** (-ZOOM_DECADES))  # the innermost geometric cut
    # every decade below the equal cuts (width / ZOOM_LINEAR) holds the same number of geometric sub-bins
    for decade in range(2, ZOOM_DECADES):
        top = width * 10.0 ** (-decade)
        inside = np.sum((lo >= top / 10.0 * (1 - 1e-9)) & (hi <= top * (1 + 1e-9)))
        assert inside == 8, (decade, inside)
    # the negative side of a bound around zero: cuts towards zero from below
    spec = _spec(Codec(contract), "delta")
    below = int(np.flatnonzero(spec.edges_hi == 0.0)[0])
    lo, hi = zoom_edges(spec, below, per_decade=8)
    assert hi[-1] == 0.0 and hi[-2] == pytest.approx(-(spec.edges_hi[below] - spec.edges_lo[below]) * 1e-16)


def test_a_bin_away_from_zero_and_a_datetime_bin_get_equal_cuts_only() -> None:
    c = parse_contract(
        {
            "table": "t",
            "columns": {
                "x": {"kind": "continuous", "min": 1000.0, "max": 2000.0},
                "t": {"kind": "datetime", "min": "1900-01-01T00:00:00", "max": "2100-01-01T00:00:00"},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="t",
    )
    codec = Codec(c)
    for name in ("x", "t"):
        lo, hi = zoom_edges(_spec(codec, name), 3)
        assert len(lo) == ZOOM_LINEAR and np.allclose(np.diff(hi - lo), 0.0, atol=1e-6 * (hi[0] - lo[0]))


def test_finer_geometric_sub_bins_the_more_rows_per_noise_std() -> None:
    assert zoom_per_decade(1000, 8.7) == 8 and zoom_per_decade(3000, 8.7) == 14 and zoom_per_decade(30000, 8.7) == 32
    assert zoom_per_decade(168, 36.0) == 2 and zoom_per_decade(50, 36.0) == 1  # a few noise stds: decades only
    assert zoom_per_decade(10, 0.0) == 32  # exact counts: the finest


def test_an_integer_bin_is_cut_at_half_integers(contract: Contract) -> None:
    spec = _spec(Codec(contract), "count")
    b = 1  # the bin just above the spike at 0: [0.5, ~78,000]
    lo, hi = zoom_edges(spec, b)
    assert lo[0] == spec.edges_lo[b] and hi[-1] == spec.edges_hi[b]
    inner = np.concatenate([lo[1:], hi[:-1]])
    assert np.allclose(inner % 1.0, 0.5) and np.all(np.ceil(lo) <= hi)  # a whole value in every sub-bin
    assert np.array_equal(hi[:10] - lo[:10], np.ones(10))  # the first values each get a unit sub-bin


# ---------------------------------------------------------------------------- which bins
def test_the_plan_names_the_columns_whose_mass_sits_in_one_or_two_bins(contract: Contract) -> None:
    codec = Codec(contract)
    codec.fit_non_dp(_frame(2000, 0), ledger=PrivacyLedger(1e-6))
    plan = codec.zoom_plan()
    assert set(plan) == {"amount", "count", "delta"}  # not score: its rows spread over its bins
    assert plan["amount"] == [1]  # [0, 7.8 million]; bin 0 is the point mass at 0
    # count: 30% of the rows at its spike (a unit bin, not cut); the rest in the one bin after it
    assert plan["count"] == [1]
    # delta: the two bins on either side of the zero-width bin at 0
    spec = _spec(codec, "delta")
    assert [spec.edges_hi[b] for b in plan["delta"]] == [0.0, spec.edges_hi[plan["delta"][1]]]
    assert spec.edges_lo[plan["delta"][1]] == 0.0


def test_the_plan_reads_only_the_released_masses(contract: Contract) -> None:
    assert set(inspect.signature(Codec.zoom_plan).parameters) == {"self"}
    codec = Codec(contract)
    assert codec.zoom_plan() == {}  # nothing released yet: nothing to read
    codec.fit_non_dp(_frame(500, 1), ledger=PrivacyLedger(1e-6))
    codec.bin_mass["score"] = np.zeros_like(codec.bin_mass["score"])
    codec.bin_mass["score"][7] = 1.0
    assert codec.zoom_plan()["score"] == [7]


# ---------------------------------------------------------------------------- the measurement
def test_the_zoom_is_one_charged_gaussian_step_and_sharpens_the_cdf(contract: Contract) -> None:
    df = _frame(3000, 2)
    codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_dp(df, ledger=ledger, noise_multiplier=4.0, rng=np.random.default_rng(0))
    before = {c: _ks(codec, df, c) for c in ("amount", "count", "delta")}
    plan = codec.zoom_plan()
    codec.zoom(df, plan, ledger=ledger, noise_multiplier=5.0, rng=np.random.default_rng(1))
    entry = ledger.entries[-1]
    assert entry.mechanism == "codec-zoom-histograms" and entry.noise_multiplier == 5.0 and entry.steps == 1
    assert f"noise std {5.0 * math.sqrt(3):.1f} rows" in entry.description
    assert codec.zoomed == ["amount", "count", "delta"]
    after = {c: _ks(codec, df, c) for c in ("amount", "count", "delta")}
    for c in after:  # uniform over a 7.8-million-wide bin against lognormal rows: KS near 1; zoomed: small
        assert before[c] > 0.45 and after[c] < 0.05, (c, before[c], after[c])
        assert codec.bin_mass[c].sum() == pytest.approx(1.0) and np.all(codec.bin_mass[c] >= 0)
        assert len(codec.bin_mass[c]) == len(_spec(codec, c).edges_lo)
    # the zero-width bin at 0 still holds exactly the rows at 0 (delta has none; count's spike is a unit bin)
    spec = _spec(codec, "delta")
    assert list(spec.point_values) == [-1.0e12, 0.0, 1.0e12]
    assert codec.spike_shares("count")[0.0] == pytest.approx(0.3, abs=0.03)
    # an empty plan charges nothing
    n = len(ledger.entries)
    codec.zoom(df, {}, ledger=ledger, noise_multiplier=5.0, rng=np.random.default_rng(1))
    assert len(ledger.entries) == n


def test_the_zoom_adds_gaussian_noise_of_the_stated_std(contract: Contract, monkeypatch: pytest.MonkeyPatch) -> None:
    """The noise injected, not only the charge: the released sub-counts minus the exact ones, over
    many draws, have mean 0 and the std σ = noise_multiplier · √(zoomed columns) (within 5%)."""
    df = _frame(2000, 3)
    codec = Codec(contract)
    codec.fit_non_dp(df, ledger=PrivacyLedger(1e-6))
    plan = {"amount": codec.zoom_plan()["amount"], "count": codec.zoom_plan()["count"]}
    seen: list[np.ndarray] = []
    real = codec_module._segment_mass

    def spy(counts, sigma, spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(np.asarray(counts, dtype=np.float64).copy())
        return real(counts, sigma, spec, *args, **kwargs)

    monkeypatch.setattr(codec_module, "_segment_mass", spy)
    monkeypatch.setattr(codec_module, "zoom_per_decade", lambda rows, sigma: 8)  # the same sub-bins in every run
    exact: list[np.ndarray] = []
    fresh = Codec(contract)
    fresh.fit_non_dp(df, ledger=PrivacyLedger(1e-6))
    fresh.zoom(df, plan, ledger=PrivacyLedger(1e-6), noise_multiplier=None, rng=np.random.default_rng(0))
    exact, seen = seen, []
    noise: list[np.ndarray] = []
    for draw in range(40):
        c = Codec(contract)
        c.fit_non_dp(df, ledger=PrivacyLedger(1e-6))
        c.zoom(df, plan, ledger=PrivacyLedger(1e-6), noise_multiplier=3.0, rng=np.random.default_rng(100 + draw))
        noise.extend(s - e for s, e in zip(seen, exact, strict=True))
        seen = []
    z = np.concatenate(noise)
    sigma = 3.0 * math.sqrt(2)
    assert abs(z.mean()) < 4 * sigma / math.sqrt(z.size)
    assert z.std() == pytest.approx(sigma, rel=0.05)


def test_all_noise_leaves_a_bin_whole(contract: Contract) -> None:
    df = _frame(40, 4)
    codec = Codec(contract)
    codec.fit_non_dp(df, ledger=PrivacyLedger(1e-6))
    bins = len(_spec(codec, "amount").edges_lo)
    codec.zoom(df, {"amount": [1]}, ledger=PrivacyLedger(1e-6), noise_multiplier=1e4, rng=np.random.default_rng(0))
    assert len(_spec(codec, "amount").edges_lo) == bins  # 40 rows under noise std 10,000: nothing kept


def test_zoomed_bins_survive_save_and_load(contract: Contract) -> None:
    df = _frame(2000, 5)
    codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_dp(df, ledger=ledger, noise_multiplier=4.0, rng=np.random.default_rng(0))
    codec.zoom(df, codec.zoom_plan(), ledger=ledger, noise_multiplier=5.0, rng=np.random.default_rng(1))
    state = codec.state()
    assert set(state["bins"]) == {"amount", "count", "delta"}
    loaded = Codec(contract)
    loaded.load_state(state)
    x = codec.encode(df, rng=np.random.default_rng(2), dtype=np.float64)
    assert loaded.zoomed == codec.zoomed
    assert loaded.decode(x).equals(codec.decode(x))
    broken = {
        **state,
        "bins": {**state["bins"], "amount": [state["bins"]["amount"][0][:-1], state["bins"]["amount"][1]]},
    }
    with pytest.raises(ValueError, match="'amount'.*damaged"):
        Codec(contract).load_state(broken)


# ---------------------------------------------------------------------------- the model
def test_ctgan_zooms_at_the_codec_noise_or_its_share_of_the_budget(contract: Contract) -> None:
    def after_codec(dp: bool = True, epsilon: float = 1.0, **options: object) -> tuple[PrivacyLedger, DPCTGAN]:
        model = DPCTGAN(contract, CTGANConfig(**options), device="cpu")  # type: ignore[arg-type]
        ledger = PrivacyLedger(1e-6)
        model._fit_codec_statistics(
            _frame(3000, 6), ledger=ledger, dp=dp, rng=np.random.default_rng(0), epsilon=epsilon
        )
        return ledger, model

    ledger, model = after_codec()
    # 3,000 rows at ε = 1: score's fine bins are noise-bound, so refined; the zoomed columns are not
    assert [e.mechanism for e in ledger.entries] == [
        "codec-histograms",
        "codec-zoom-histograms",
        "codec-coarse-histograms",
    ]
    assert model.codec.zoomed == ["amount", "count", "delta"]
    assert "score: " in ledger.entries[2].description and "amount" not in ledger.entries[2].description
    codec_entry, zoom_entry = ledger.entries[:2]
    codec_sigma = codec_entry.noise_multiplier * model.codec.sensitivity
    # 3 of 5 columns: the codec's own noise std is cheaper than ZOOM_SHARE of what is left
    assert zoom_entry.noise_multiplier * math.sqrt(3) == pytest.approx(codec_sigma)
    codec_only = PrivacyLedger(1e-6)
    codec_only.charge("codec-histograms", noise_multiplier=codec_entry.noise_multiplier, sample_rate=1.0, steps=1)
    spent = codec_only.epsilon
    zoom_only = PrivacyLedger(1e-6)
    for e in (codec_entry, zoom_entry):
        zoom_only.charge(e.mechanism, noise_multiplier=e.noise_multiplier, sample_rate=1.0, steps=1)
    assert spent < zoom_only.epsilon < spent + ZOOM_SHARE * (1.0 - spent)
    off, _ = after_codec(numeric_zoom="off")
    assert "codec-zoom-histograms" not in [e.mechanism for e in off.entries]
    exact, model = after_codec(dp=False)
    assert [e.mechanism for e in exact.entries] == ["codec-histograms-non-dp", "codec-zoom-non-dp"]
    assert set(inspect.signature(DPCTGAN.zoom_noise).parameters) == {"self", "columns", "ledger", "epsilon"}


def test_the_zoom_never_spends_more_than_its_share(contract: Contract) -> None:
    model = DPCTGAN(contract, CTGANConfig(), device="cpu")
    ledger = PrivacyLedger(1e-6)
    model._fit_codec_statistics(
        _frame(3000, 6), ledger=PrivacyLedger(1e-6), dp=True, rng=np.random.default_rng(0), epsilon=1.0
    )
    ledger.charge("codec-histograms", noise_multiplier=5.0, sample_rate=1.0, steps=1, description="d")
    spent = ledger.epsilon
    # 100 zoomed columns: σ_codec/√100 would be far cheaper in noise, far dearer in ε: the share caps it
    noise = model.zoom_noise(100, ledger=ledger, epsilon=1.0)
    assert noise is not None
    ledger.charge("codec-zoom-histograms", noise_multiplier=noise, sample_rate=1.0, steps=1, description="z")
    assert ledger.epsilon == pytest.approx(spent + ZOOM_SHARE * (1.0 - spent), rel=1e-3)
    assert model.zoom_noise(1, ledger=ledger, epsilon=ledger.epsilon) is None  # nothing left


def test_columns_with_too_few_rows_for_the_zoom_noise_are_left_out(contract: Contract) -> None:
    """A zoomed bin whose DP rows are under ZOOM_MIN_ROWS_PER_NOISE noise stds could only be read as
    noise: such columns are dropped (and the noise planned again for the rest); with none left,
    nothing is charged."""
    from synthgate.models.synthesizers.ctgan import ZOOM_MIN_ROWS_PER_NOISE

    model = DPCTGAN(contract, CTGANConfig(), device="cpu")
    ledger = PrivacyLedger(1e-6)
    model.codec.fit_dp(_frame(3000, 7), ledger=ledger, noise_multiplier=8.0, rng=np.random.default_rng(0))
    plan = model.codec.zoom_plan()
    kept, noise = model.zoom_noise_plan(plan, ledger=ledger, epsilon=1.0)
    assert kept == plan and noise is not None  # 3,000 rows: every column shows
    rows = {c: model.codec.n_estimate * float(np.sum(model.codec.bin_mass[c][b])) for c, b in plan.items()}
    assert all(r >= ZOOM_MIN_ROWS_PER_NOISE * noise * math.sqrt(len(plan)) for r in rows.values())
    model.codec.n_estimate = 30.0  # a DP row count of 30: no zoomed bin can show above the noise
    assert model.zoom_noise_plan(plan, ledger=ledger, epsilon=1.0) == ({}, None)
    before = len(ledger.entries)
    model._fit_codec_statistics(_frame(30, 7), ledger=ledger, dp=True, rng=np.random.default_rng(1), epsilon=3.0)
    assert "codec-zoom-histograms" not in [e.mechanism for e in ledger.entries[before:]]


def test_optimal_segments_survive_unit_bins_among_bins_ten_million_wide() -> None:
    """An integer column bounded by ±10⁹ has 128 bins of ~15.6 million and, around its spike at 0, bins of
    half a value. The segments' least squares divided by those bins' Σw², a difference of cumulative sums
    that is rounding error next to the others, and gave infinite costs: a noise-bound column's mass
    landed far from its rows (AER::CPS1988 ``experience`` under a loosened contract) and the zoom never
    saw it."""
    c = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "integer", "min": -1_000_000_000, "max": 1_000_000_000}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="t",
    )
    spec = _spec(Codec(c), "x")
    counts = np.zeros(len(spec.edges_lo))
    dense = int(np.flatnonzero(spec.edges_lo == 0.5)[0])
    assert (
        spec.edges_hi[dense] - spec.edges_lo[dense] > 1e7 and spec.edges_hi[dense - 1] - spec.edges_lo[dense - 1] == 0.5
    )
    counts[dense] = 4800.0  # values 1-64, all in the bin above the spike
    counts += np.random.default_rng(0).normal(0.0, 30.0, counts.shape)
    with np.errstate(divide="raise", invalid="raise"):
        mass = codec_module._segment_mass(counts, 30.0, spec)
    assert np.all(np.isfinite(mass)) and mass.sum() == pytest.approx(1.0)
    assert mass[dense] > 0.9, mass[dense]


def test_the_public_report_draws_a_zoomed_column_from_its_saved_bins(contract: Contract) -> None:
    from synthgate.validation.public_report import dp_distributions

    df = _frame(3000, 8)
    codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_dp(df, ledger=ledger, noise_multiplier=4.0, rng=np.random.default_rng(0))
    codec.zoom(df, codec.zoom_plan(), ledger=ledger, noise_multiplier=5.0, rng=np.random.default_rng(1))
    shown = dp_distributions(contract, codec.state(), None)
    for name in ("amount", "count", "delta"):
        assert sum(shown[name]["real"]) == pytest.approx(1.0), name
    # amount's rows (median ~150) all lie in the first bar over (0, 1e9] (bar 0 is the point mass at 0) ...
    assert shown["amount"]["real"][1] == pytest.approx(1.0)
    # ... and its log view now shows where: the sub-bins put 90% of it in 22-501, as the rows are
    log = dict(zip(shown["amount"]["log"]["labels"], shown["amount"]["log"]["real"], strict=True))
    assert sum(log[k] for k in ("22.4–63.1", "63.1–178", "178–501")) > 0.8, log
