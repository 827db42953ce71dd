"""The coarse re-measurement of numeric columns whose fine codec bins the noise swamps
(``Codec.noise_bound_columns``, ``Codec.refine_dp``, ``DPCTGAN.refine_plan``, ``numeric_refine``)."""

from __future__ import annotations

import inspect

import numpy as np
import polars as pl
import pytest

from synthgate.models import codec as codec_module
from synthgate.models.codec import Codec
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers.ctgan import DPCTGAN, MAX_REFINE_GROUPS, MIN_REFINE_GROUPS, CTGANConfig
from synthgate.validation.contract import Contract, parse_contract


@pytest.fixture(scope="module")
def contract() -> Contract:
    return parse_contract(
        {
            "table": "r",
            "target": "y",
            "columns": {
                "x": {"kind": "integer", "min": 0, "max": 99},
                "y": {"kind": "categorical", "categories": ["no", "yes"]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        },
        source="r",
    )


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.clip(np.round(rng.beta(5.0, 3.0, n) * 99), 0, 99).astype(int)  # mass in the upper half
    return pl.DataFrame({"x": x, "y": np.where(rng.uniform(size=n) < 0.3, "yes", "no")})


def _tv10(mass: np.ndarray, df: pl.DataFrame) -> float:
    truth = np.bincount(df["x"].to_numpy() // 10, minlength=10) / df.height
    return 0.5 * float(np.abs(np.add.reduceat(mass, np.arange(0, 100, 10)) - truth).sum())


def test_only_columns_whose_even_bin_share_is_under_the_noise_are_noise_bound(contract: Contract) -> None:
    codec = Codec(contract)
    codec.n_estimate = 1000.0  # 10 rows per bin on an even spread
    assert codec.noise_bound_columns(sigma=40.0) == ["x"]
    assert codec.noise_bound_columns(sigma=2.0) == []  # 10 > τσ ≈ 6.7
    codec.n_estimate = 100_000.0
    assert codec.noise_bound_columns(sigma=40.0) == []


def test_noise_bound_columns_get_optimal_segments_and_the_others_greedy_runs(
    contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The codec picks each numeric column's sparse-bin estimator from public quantities only: n̂ (DP),
    the contract's bins and σ. Where no bin can pass alone, ``_segment_mass``; else ``_merged_mass``."""
    calls: list[tuple[str, str]] = []
    for name in ("_segment_mass", "_merged_mass"):
        real = getattr(codec_module, name)

        def spy(counts, sigma, spec, *args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            calls.append((_name, spec.name))
            return _real(counts, sigma, spec, *args, **kwargs)

        monkeypatch.setattr(codec_module, name, spy)
    for rows, noise, expected in ((1000, 40.0, "_segment_mass"), (100_000, 2.0, "_merged_mass")):
        calls.clear()
        codec = Codec(contract)
        df = _frame(rows, 2)
        codec.fit_dp(
            df, ledger=PrivacyLedger(1e-6), noise_multiplier=noise / codec.sensitivity, rng=np.random.default_rng(3)
        )
        assert (codec.noise_bound_columns(noise) == ["x"]) == (expected == "_segment_mass")
        assert calls == [(expected, "x")], calls
    # exact (non-DP) histograms use neither
    calls.clear()
    Codec(contract).fit_non_dp(_frame(1000, 2), ledger=PrivacyLedger(1e-6))
    assert calls == []


@pytest.mark.statistical
def test_optimal_segments_beat_greedy_runs_on_a_noise_bound_column(contract: Contract) -> None:
    """1,000 rows over 100 unit bins at σ = 40 rows per bin (no bin passes τσ ≈ 132 alone): the greedy
    runs' ends follow the noise; optimal segments put the mass closer to the truth in tenths of the range
    (mean over 40 noise draws of the same released counts, both estimators)."""
    df = _frame(1000, 0)
    codec = Codec(contract)
    spec = codec.numeric[0]
    exact = codec.histograms(df)["x"]
    rng = np.random.default_rng(7)
    greedy, segments = [], []
    for _ in range(40):
        noisy = exact + rng.normal(0.0, 40.0, exact.shape)
        greedy.append(_tv10(codec_module._merged_mass(noisy, 40.0, spec), df))
        segments.append(_tv10(codec_module._segment_mass(noisy, 40.0, spec), df))
    assert np.mean(segments) < 0.9 * np.mean(greedy), (np.mean(segments), np.mean(greedy))


def test_coarse_groups_cut_the_bins_into_equal_runs(contract: Contract) -> None:
    groups = Codec(contract).coarse_groups("x", 8)
    assert groups.shape == (100,) and set(groups.tolist()) == set(range(8))
    assert np.all(np.diff(groups) >= 0) and np.bincount(groups).max() - np.bincount(groups).min() <= 1


@pytest.mark.statistical
def test_refined_masses_are_closer_to_the_truth_than_the_swamped_fine_bins(contract: Contract) -> None:
    """1,000 rows over 100 unit bins at σ = 40 rows per bin: the fine estimate is mostly noise; the
    coarse groups (σ = 20) put the mass in the right tenths (mean of 20 noise draws)."""
    df = _frame(1000, 0)
    fine, refined = [], []
    for seed in range(20):
        codec = Codec(contract)
        rng = np.random.default_rng(seed)
        ledger = PrivacyLedger(1e-6)
        codec.fit_dp(df, ledger=ledger, noise_multiplier=40.0 / codec.sensitivity, rng=rng)
        fine.append(_tv10(codec.bin_mass["x"], df))
        codec.refine_dp(df, ["x"], {"x": 10}, ledger=ledger, noise_multiplier=20.0, rng=rng)
        refined.append(_tv10(codec.bin_mass["x"], df))
        assert codec.bin_mass["x"].sum() == pytest.approx(1.0) and np.all(codec.bin_mass["x"] >= 0)
    assert np.mean(refined) < 0.5 * np.mean(fine), (np.mean(refined), np.mean(fine))


def test_the_refinement_is_one_charged_gaussian_step(contract: Contract) -> None:
    df = _frame(500, 1)
    codec = Codec(contract)
    ledger = PrivacyLedger(1e-6)
    codec.fit_dp(df, ledger=ledger, noise_multiplier=10.0, rng=np.random.default_rng(0))
    before = ledger.epsilon
    codec.refine_dp(df, [], {}, ledger=ledger, noise_multiplier=5.0, rng=np.random.default_rng(1))
    assert len(ledger.entries) == 1  # nothing to refine: nothing charged
    codec.refine_dp(df, ["x"], {"x": 4}, ledger=ledger, noise_multiplier=5.0, rng=np.random.default_rng(1))
    entry = ledger.entries[-1]
    assert entry.mechanism == "codec-coarse-histograms" and entry.noise_multiplier == 5.0 and entry.steps == 1
    assert ledger.epsilon > before


def test_a_small_dp_fit_refines_and_a_large_or_non_dp_one_does_not(contract: Contract) -> None:
    def ledger_after_codec(n: int, dp: bool = True, **options: object) -> tuple[PrivacyLedger, DPCTGAN]:
        model = DPCTGAN(contract, CTGANConfig(**options), device="cpu")  # type: ignore[arg-type]
        ledger = PrivacyLedger(1e-6)
        model._fit_codec_statistics(_frame(n, 2), ledger=ledger, dp=dp, rng=np.random.default_rng(0), epsilon=1.0)
        return ledger, model

    ledger, model = ledger_after_codec(800)
    assert [e.mechanism for e in ledger.entries] == ["codec-histograms", "codec-coarse-histograms"]
    plan = model.refine_plan(ledger=PrivacyLedger(1e-6), epsilon=1.0)
    assert plan is not None and plan[0] == ["x"] and MIN_REFINE_GROUPS <= plan[1]["x"] <= MAX_REFINE_GROUPS
    assert [e.mechanism for e in ledger_after_codec(800, numeric_refine="off")[0].entries] == ["codec-histograms"]
    assert [e.mechanism for e in ledger_after_codec(200_000)[0].entries] == ["codec-histograms"]
    assert [e.mechanism for e in ledger_after_codec(800, dp=False)[0].entries] == ["codec-histograms-non-dp"]
    # the plan's inputs: the ledger and ε (with the codec's DP row count, noise and the contract's bins)
    assert set(inspect.signature(DPCTGAN.refine_plan).parameters) == {"self", "ledger", "epsilon"}
