"""DP bounds and category sets (``contract infer --dp``): accounting, noise, release, registry charge."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.stats import norm

from synthgate.errors import BudgetExceeded, ContractError, RegistryError
from synthgate.governance.registry import Registry
from synthgate.models.ledger import epsilon_of
from synthgate.tasks.governance import check_dp_inference
from synthgate.tasks.ingest import prepare_frame
from synthgate.validation.contract import parse_contract
from synthgate.validation.dp_infer import (
    INFERENCE_KIND,
    OTHER_CATEGORY,
    apply_dp_domains,
    count_columns,
    dp_infer_contract,
    infer_with_budget,
    noisy_counts,
    numeric_grid,
    plan_mechanism,
    release_domains,
    render_dp_yaml,
)
from synthgate.validation.gates import contract_public_result
from synthgate.validation.infer import infer_contract

EPS, DELTA = 1.0, 1e-7


def _analytic_gaussian_delta(eps: float, z: float) -> float:
    """Exact δ(ε) of the Gaussian mechanism with noise std / L2 sensitivity = z (Balle & Wang 2018)."""
    return float(norm.cdf(0.5 / z - eps * z) - math.exp(eps) * norm.cdf(-0.5 / z - eps * z))


def _table(n: int = 4000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.r_[rng.lognormal(10, 1, n - 1), 1e9],  # one row far out
            "score": rng.normal(0.5, 0.1, n),
            "color": [*rng.choice(["red", "green", "blue"], n - 1).tolist(), "held-by-one-row"],
        }
    )


# --- accounting ----------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.3, 1.0, 4.0])
@pytest.mark.parametrize("kinds", [["integer"], ["continuous", "categorical", "categorical"], ["integer"] * 50])
def test_plan_is_within_the_budget_by_an_independent_accountant(eps: float, kinds: list[str]) -> None:
    plan = plan_mechanism(epsilon=eps, delta=DELTA, kinds=kinds)
    assert plan.columns == len(kinds) and plan.noise_std == pytest.approx(plan.noise_multiplier * math.sqrt(len(kinds)))
    # RDP (the ledger) at δ_G, within the ε asked for and not far below it (calibrated, not padded)
    assert plan.epsilon == pytest.approx(epsilon_of([(plan.noise_multiplier, 1.0, 1)], plan.delta_gaussian))
    assert eps * 0.99 <= plan.epsilon <= eps
    # the exact (ε, δ) curve of the Gaussian mechanism agrees: δ(ε) at that noise is below δ_G
    assert _analytic_gaussian_delta(plan.epsilon, plan.noise_multiplier) <= plan.delta_gaussian
    # total δ = δ_G + e^ε δ_T stays within the δ asked for
    assert plan.delta == pytest.approx(plan.delta_gaussian + math.exp(plan.epsilon) * plan.delta_threshold)
    assert plan.delta <= DELTA
    # a value held by one row is released with probability δ_T / (categorical columns) ≤ δ
    m_cat = kinds.count("categorical")
    if m_cat:
        assert plan.singleton_release_probability == pytest.approx(plan.delta_threshold / m_cat, rel=1e-6)
        assert plan.singleton_release_probability <= DELTA


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ContractError, match="--dp must be a finite"):
        plan_mechanism(epsilon=0.0, delta=DELTA, kinds=["integer"])
    with pytest.raises(ContractError, match="--dp must be a finite"):
        plan_mechanism(epsilon=math.inf, delta=DELTA, kinds=["integer"])
    with pytest.raises(ContractError, match="δ must be in"):
        plan_mechanism(epsilon=1.0, delta=1.0, kinds=["integer"])


def test_the_noise_injected_has_the_accounted_scale() -> None:
    """Measured: noisy minus exact counts over every bin and value are N(0, σ²) with σ = z·√m."""
    df = _table(2000)
    kinds = {"age": "integer", "income": "continuous", "score": "continuous", "color": "categorical"}
    counts = count_columns(df, kinds)
    plan = plan_mechanism(epsilon=EPS, delta=DELTA, kinds=list(kinds.values()))
    rng = np.random.default_rng(7)
    diffs = []
    for _ in range(20):
        noisy = noisy_counts(counts, plan, rng)
        for name, kind in kinds.items():
            exact = counts.values[name][1] if kind == "categorical" else counts.bins[name]
            diffs.append(noisy[name] - exact)
    d = np.concatenate(diffs)
    assert d.size > 5000
    # std estimate's relative standard error is 1/sqrt(2N) < 1%: 5% is > 5 standard errors
    assert np.std(d) == pytest.approx(plan.noise_std, rel=0.05)
    assert abs(np.mean(d)) < 5 * plan.noise_std / math.sqrt(d.size)


# --- release -------------------------------------------------------------------------------------
def _cat_counts(values: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"c": [k for k, v in values.items() for _ in range(v)]})


def test_a_value_held_by_one_row_is_almost_never_released() -> None:
    plan = plan_mechanism(epsilon=EPS, delta=DELTA, kinds=["categorical"])
    at_threshold = int(round(plan.category_threshold))
    counts = count_columns(
        _cat_counts({"single": 1, "near": at_threshold, "common": int(plan.category_threshold + 6 * plan.noise_std)}),
        {"c": "categorical"},
    )
    rng = np.random.default_rng(11)
    draws = 2000
    released = [set(release_domains(counts, plan, rng).categories["c"] or []) for _ in range(draws)]
    # P[single released] per draw = singleton_release_probability ≤ δ = 1e-7: over 2000 draws the chance of
    # seeing it even once is < 2e-4, so any release means a broken threshold.
    assert sum("single" in r for r in released) == 0
    # the threshold sits where the accounting says: a value with count ≈ threshold is released with
    # probability sf((τ - c)/σ) ≈ 0.5; binomial 99.9% band for 2000 draws is ±0.037
    expected = float(norm.sf((plan.category_threshold - at_threshold) / plan.noise_std))
    assert abs(sum("near" in r for r in released) / draws - expected) < 0.04
    # a frequent value (6σ above the threshold) is always released
    assert all("common" in r for r in released)


def test_frequent_categories_are_released_and_rare_ones_read_as_other(tmp_path: Path) -> None:
    df = _table()
    draft = infer_contract(df, table="t")
    plan = plan_mechanism(epsilon=EPS, delta=DELTA, kinds=["integer", "continuous", "continuous", "categorical"])
    c = dp_infer_contract(
        draft, df, plan=plan, rng=np.random.default_rng(1), run_id="r1", lifetime_epsilon=10.0, lifetime_delta=1e-5
    )
    color = c.columns["color"]
    assert color.dp_learned and not color.from_data
    assert color.categories == ["blue", "green", "red", OTHER_CATEGORY]
    prepared = apply_dp_domains(df, c)
    assert prepared.get_column("color").to_list()[-1] == OTHER_CATEGORY
    assert prepared.get_column("color").value_counts().height == 4


def test_dp_bounds_cover_the_bulk_and_ignore_a_lone_outlier() -> None:
    df = _table()
    draft = infer_contract(df, table="t")
    plan = plan_mechanism(epsilon=EPS, delta=DELTA, kinds=["integer", "continuous", "continuous", "categorical"])
    for seed in range(5):
        c = dp_infer_contract(
            draft,
            df,
            plan=plan,
            rng=np.random.default_rng(seed),
            run_id="r",
            lifetime_epsilon=10.0,
            lifetime_delta=1e-5,
        )
        for name in ("age", "income", "score"):
            col = c.columns[name]
            assert col.dp_learned and col.kind == draft.columns[name].kind
            inside = df.get_column(name).is_between(col.min, col.max).mean()
            assert inside >= 0.99, (name, col.min, col.max, inside)
            assert col.min in numeric_grid(col.kind) and col.max in numeric_grid(col.kind)  # public grid edges
        assert c.columns["income"].max < 1e9  # one row does not set a bound
        assert c.columns["age"].max <= 200 and c.columns["score"].max <= 2


def test_a_column_with_nothing_above_the_noise_is_excluded_not_copied() -> None:
    df = pl.DataFrame({"x": [1.5, 2.5, 3.5] * 3, "c": ["a", "b", "c"] * 3})
    draft = infer_contract(df, table="t")
    plan = plan_mechanism(epsilon=EPS, delta=DELTA, kinds=["continuous", "categorical"])
    with pytest.raises(ContractError, match="rose above the DP noise .* larger --dp"):
        dp_infer_contract(
            draft, df, plan=plan, rng=np.random.default_rng(0), run_id="r", lifetime_epsilon=None, lifetime_delta=None
        )
    wide = pl.concat([df, pl.DataFrame({"x": [2.0] * 2000, "c": ["a"] * 2000})])
    c = dp_infer_contract(
        infer_contract(wide, table="t"),
        pl.concat([wide, df]),
        plan=plan,
        rng=np.random.default_rng(0),
        run_id="r",
        lifetime_epsilon=None,
        lifetime_delta=None,
    )
    assert c.columns["c"].categories == ["a", OTHER_CATEGORY]  # b and c (6 rows each) stay hidden


def test_apply_dp_domains_clamps_maps_and_keeps_nulls() -> None:
    df = pl.DataFrame(
        {
            "i": pl.Series([-5, 3, 120, None], dtype=pl.Int8),
            "f": [float("nan"), 0.1, 7.0, float("inf")],
            "c": ["a", "zz", None, "?"],
            "other": [1, 2, 3, 4],
        }
    )
    contract = parse_contract(
        {
            "table": "t",
            "missing_values": ["?"],
            "columns": {
                "i": {"kind": "integer", "min": 0, "max": 1000, "dp_learned": True, "nullable": True},
                "f": {"kind": "continuous", "min": 0.2, "max": 5.0, "dp_learned": True},
                "c": {"kind": "categorical", "categories": ["a", OTHER_CATEGORY], "dp_learned": True, "nullable": True},
                "other": {"kind": "integer", "min": 2, "max": 3},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
            "dp_inference": {
                "run_id": "r",
                "epsilon": 1.0,
                "delta": 1e-7,
                "mechanism": "m",
                "noise_std": 3.0,
                "category_threshold": 9.0,
                "bin_threshold": 9.0,
                "columns": 3,
            },
        }
    )
    out = apply_dp_domains(df, contract)
    assert out.get_column("i").to_list() == [0, 3, 120, None] and out.schema["i"] == pl.Int8
    f = out.get_column("f").to_list()
    assert math.isnan(f[0]) and f[1:] == [0.2, 5.0, float("inf")]  # NaN and inf stay: validation reports them
    assert out.get_column("c").to_list() == ["a", OTHER_CATEGORY, None, "?"]
    assert out.get_column("other").to_list() == [1, 2, 3, 4]  # not dp_learned: untouched (validation fails it)
    assert prepare_frame(df, contract).get_column("c").to_list() == ["a", OTHER_CATEGORY, None, None]


# --- the contract marks ---------------------------------------------------------------------------
def _dp_contract_data() -> dict:
    return {
        "table": "t",
        "columns": {"x": {"kind": "integer", "min": 0, "max": 10, "dp_learned": True}},
        "privacy": {"epsilon": 1.0, "delta": 1e-6},
        "dp_inference": {
            "run_id": "infer-1",
            "epsilon": 0.5,
            "delta": 1e-7,
            "mechanism": "m",
            "noise_std": 3.0,
            "category_threshold": 9.0,
            "bin_threshold": 9.0,
            "columns": 1,
        },
    }


def test_dp_marks_are_checked() -> None:
    data = _dp_contract_data()
    c = parse_contract(data)
    assert c.dp_learned_columns == ["x"] and c.data_derived_columns == []
    no_record = {**data, "dp_inference": None}
    with pytest.raises(ContractError, match="no dp_inference record"):
        parse_contract(no_record)
    both = yaml.safe_load(yaml.safe_dump(data))
    both["columns"]["x"]["from_data"] = True
    with pytest.raises(ContractError, match="both dp_learned and from_data"):
        parse_contract(both)
    boolean = yaml.safe_load(yaml.safe_dump(data))
    boolean["columns"]["x"] = {"kind": "boolean", "dp_learned": True}
    with pytest.raises(ContractError, match="only .* columns have"):
        parse_contract(boolean)


def test_contracts_without_dp_marks_serialise_as_before() -> None:
    plain = parse_contract(
        {
            "table": "t",
            "columns": {"x": {"kind": "integer", "min": 0, "max": 10}},
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    text = plain.to_yaml()
    assert "dp_learned" not in text and "dp_inference" not in text


def test_contract_public_gate_accepts_dp_learned_columns_and_names_the_charge() -> None:
    r = contract_public_result(parse_contract(_dp_contract_data()))
    assert r.passed and r.value == 0.0
    assert r.details["dp_learned_columns"] == ["x"] and r.details["dp_inference"]["run_id"] == "infer-1"
    assert "learned with DP" in r.description


# --- the registry charge --------------------------------------------------------------------------
def _infer(reg: Registry, df: pl.DataFrame, *, eps: float = EPS, reads: list[int] | None = None, **kw):
    def read() -> pl.DataFrame:
        if reads is not None:
            reads.append(1)
        return df

    return infer_with_budget(
        table="t", read=read, draft=lambda d: infer_contract(d, table="t"), registry=reg, epsilon=eps, entropy=5, **kw
    )


def test_the_spend_is_recorded_and_a_run_over_the_lifetime_budget_is_refused_before_reading(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    df = _table(1500)
    c = _infer(reg, df)
    (rec,) = reg.runs()
    assert rec.kind == INFERENCE_KIND and rec.status == "released" and rec.training_started
    assert rec.epsilon_charged == pytest.approx(c.dp_inference.epsilon) and c.dp_inference.epsilon <= EPS
    assert rec.delta == DELTA and c.dp_inference.delta <= DELTA
    assert rec.data_fingerprint.startswith("hmac-sha256:")
    # the drafted lifetime covers the inference and 3 releases, and the registry states the same
    assert c.privacy.lifetime_epsilon == pytest.approx(EPS + 3 * c.privacy.epsilon) == rec.lifetime_epsilon
    assert reg.spend("t").epsilon == pytest.approx(c.dp_inference.epsilon)
    check_dp_inference(reg, c)  # the release flow's pre-read check finds the charged run

    reads: list[int] = []
    too_much = c.privacy.lifetime_epsilon - reg.spend("t").epsilon + 0.01
    with pytest.raises(BudgetExceeded, match="would exceed its lifetime privacy budget"):
        _infer(reg, df, eps=too_much, reads=reads)
    assert reads == []  # refused before a row was read
    newest = reg.runs()[0]  # runs() orders by the order recorded, even within one second
    assert (newest.kind, newest.status, newest.epsilon_charged) == (INFERENCE_KIND, "refused", 0.0)
    assert len(reg.runs()) == 2
    assert reg.spend("t").epsilon == pytest.approx(c.dp_inference.epsilon)


def test_an_explicit_lifetime_is_checked_before_reading(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    reads: list[int] = []
    with pytest.raises(BudgetExceeded):
        _infer(reg, _table(1500), eps=2.0, lifetime_epsilon=1.5, reads=reads)
    assert reads == []


def test_a_failure_before_the_noise_charges_nothing(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    with pytest.raises(ContractError, match="must be below 1/n"):
        _infer(reg, _table(1500), delta=1e-3)
    (rec,) = reg.runs()
    assert rec.status == "invalid" and rec.epsilon_charged == 0.0 and "1500" not in (rec.error or "")
    # the next draft still gets a finite lifetime (the failed run never stated one)
    c = _infer(reg, _table(1500))
    assert c.privacy.lifetime_epsilon == pytest.approx(EPS + 3 * c.privacy.epsilon)


def test_a_release_needs_the_charged_inference_in_its_registry(tmp_path: Path) -> None:
    c = parse_contract(_dp_contract_data())
    empty = Registry(tmp_path / "none.duckdb")
    with pytest.raises(RegistryError, match="holds no such charged run"):
        check_dp_inference(empty, c)
    reg = Registry(tmp_path / "registry.duckdb")
    reg.begin_run(
        run_id="infer-1",
        table="other-table",
        epsilon=0.5,
        delta=1e-7,
        lifetime_epsilon=None,
        lifetime_delta=None,
        contract_hash="",
        config={"kind": INFERENCE_KIND},
        output_db="",
        output_table="",
    )
    with pytest.raises(RegistryError, match="holds no such charged run"):
        check_dp_inference(reg, c)  # the run exists, but for another table and not finished


def test_render_round_trips_and_says_what_was_learned(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    c = _infer(reg, _table(1500))
    text = render_dp_yaml(c)
    assert "LEARNED WITH DIFFERENTIAL PRIVACY" in text and c.dp_inference.run_id in text
    body = text[text.index("\nversion: 1") :]  # below the header
    assert "dp_learned: true  # learned with DP" in body and "from_data: true" not in body
    assert "held-by-one-row" not in text and "1000000000" not in text
    assert parse_contract(yaml.safe_load(text)) == c


def test_datetime_bounds_are_learned_on_calendar_years_and_clamped() -> None:
    import datetime as dt

    rng = np.random.default_rng(3)
    days = rng.integers(0, 3 * 365, 3000)
    when = [dt.datetime(2015, 3, 1) + dt.timedelta(days=int(d)) for d in days]
    when[-1] = dt.datetime(1850, 6, 1)  # one row far back
    df = pl.DataFrame({"when": when, "day": [w.date() for w in when], "x": rng.normal(5, 1, 3000)})
    draft = infer_contract(df, table="t")
    kinds = {n: draft.columns[n].kind for n in ("when", "day", "x")}
    assert kinds["when"] == "datetime"
    plan = plan_mechanism(epsilon=EPS, delta=DELTA, kinds=list(kinds.values()))
    c = dp_infer_contract(
        draft, df, plan=plan, rng=np.random.default_rng(0), run_id="r", lifetime_epsilon=None, lifetime_delta=None
    )
    col = c.columns["when"]
    # rows span 2015-03-01 .. 2018-02-28: years 2015-2018, so [2015-01-01, 2019-01-01]; an empty year beside
    # the range joins it with probability EDGE_BIN_RATE (5%) per side, hence the one-year allowance
    assert col.dp_learned and col.min.month == col.max.month == 1 and col.min.day == col.max.day == 1
    assert col.min.year in (2014, 2015) and col.max.year in (2019, 2020)
    lo = col.min
    prepared = apply_dp_domains(df, c)
    assert prepared.get_column("when").min() == lo  # the 1850 row clamped
    if c.columns["day"].kind == "datetime":  # a DATE column, drafted datetime
        assert prepared.get_column("day").min() == c.columns["day"].min.date()
    aware = df.select(pl.col("when").dt.replace_time_zone("UTC"))
    assert apply_dp_domains(aware, c).get_column("when").min() == lo.replace(tzinfo=dt.UTC)
