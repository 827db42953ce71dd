"""One contract test over every registered model: 1 epoch, DP ledger, contract-valid output, seeds.

Adult (mixed types) for every model; the binarised health-style matrix (tests/health.py) too for
the models built for binary / count records (medgan, corgan). Each model keeps its own default
architecture; only epochs and batch size are set, so the test exercises what users get.
"""

from __future__ import annotations

import math

import polars as pl
import pytest
from typer.testing import CliRunner

from synthgate.errors import ContractError, WhereError
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.sampling import equality_conditions, sample_where
from synthgate.models.synthesizers import (
    MODEL_NAMES,
    get_synthesizer,
    load_synthesizer,
    registered,
    resolve_model_config,
)
from synthgate.models.synthesizers.base import Synthesizer
from synthgate.validation.contract import Contract, parse_contract
from synthgate.validation.expectations import validate_frame

HEALTH_MODELS = ("medgan", "corgan")
EPSILON = 3.0


def _fit(
    name: str, contract: Contract, train: pl.DataFrame, *, epsilon: float, seed: int
) -> tuple[Synthesizer, PrivacyLedger]:
    cls = get_synthesizer(name)
    config = cls.config_class(epochs=1.0, batch_size=200)
    ledger = PrivacyLedger(contract.privacy.delta)
    model = cls(contract, config, device="cpu").fit(train, ledger=ledger, epsilon=epsilon, seed=seed)
    return model, ledger


@pytest.fixture(scope="module")
def health() -> tuple[Contract, pl.DataFrame]:
    from tests.health import health_contract, health_table

    return health_contract(), health_table(1200, seed=3)


def _cases() -> list[tuple[str, str]]:
    return [(name, "adult") for name in MODEL_NAMES] + [(name, "health") for name in HEALTH_MODELS]


@pytest.mark.parametrize(("name", "data"), _cases(), ids=[f"{m}-{d}" for m, d in _cases()])
def test_every_model_obeys_the_contract_and_the_ledger(
    name: str,
    data: str,
    adult_contract: Contract,
    adult_small: pl.DataFrame,
    health: tuple[Contract, pl.DataFrame],
    tmp_path,
) -> None:
    contract, train = (adult_contract, adult_small) if data == "adult" else health
    train = train.select(contract.modelled_columns)
    model, ledger = _fit(name, contract, train, epsilon=EPSILON, seed=11)

    # The ledger: every entry a DP mechanism that ran, the total at most the target and near it
    # (the calibration is a bisection to 1e-3 on the noise multiplier).
    assert ledger.differentially_private
    assert [e.mechanism for e in ledger.entries][0] == "codec-histograms"
    assert all(e.steps > 0 for e in ledger.entries), [(e.mechanism, e.steps) for e in ledger.entries]
    assert ledger.epsilon <= EPSILON + 1e-6
    assert ledger.epsilon > 0.95 * EPSILON

    # Output obeys the contract: the great-expectations suite generated from it passes.
    synthetic = model.sample(500, seed=5)
    assert synthetic.columns == contract.modelled_columns
    assert synthetic.height == 500
    report = validate_frame(synthetic, contract)
    assert report.success, [f.__dict__ for f in report.failures]

    # A seed reproduces the fit and the sample; another seed does not.
    again, _ = _fit(name, contract, train, epsilon=EPSILON, seed=11)
    assert again.sample(500, seed=5).equals(synthetic)
    assert not model.sample(500, seed=6).equals(synthetic)

    # Save -> load (weights_only) through the registry gives the same model.
    model.save(tmp_path / "model.pt")
    loaded = load_synthesizer(tmp_path / "model.pt", contract, device="cpu")
    assert type(loaded) is type(model)
    assert loaded.sample(500, seed=5).equals(synthetic)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_has_a_non_dp_mode_that_no_budget_can_pass(
    name: str, adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    train = adult_small.select(adult_contract.modelled_columns)
    model, ledger = _fit(name, adult_contract, train, epsilon=math.inf, seed=2)
    assert ledger.epsilon == math.inf
    assert not ledger.differentially_private
    assert validate_frame(model.sample(200, seed=0), adult_contract).success


def test_registry_lists_every_family_with_its_notes() -> None:
    models = registered()
    assert set(models) == {"ctgan", "tvae", "gumbel-gan", "wgan-gp", "cwgan-gp", "medgan", "corgan", "tablegan", "tgan"}
    for name, cls in models.items():
        assert cls.name == name
        assert cls.info.paper and cls.info.good_for and cls.info.caveats
        assert {"epochs", "batch_size", "max_grad_norm", "codec_noise_multiplier"} <= set(cls.config_class.model_fields)


def test_unknown_model_in_a_contract_is_refused_with_the_choices(adult_contract: Contract) -> None:
    data = adult_contract.model_dump(mode="json", exclude_none=True)
    data["model"] = "stylegan"
    with pytest.raises(ContractError, match="not a registered synthesizer.*ctgan"):
        parse_contract(data, source="t")


def test_model_options_come_from_the_contract_and_runs_override_them(adult_contract: Contract) -> None:
    contract = adult_contract.model_copy(update={"model_options": {"epochs": 3, "z_dim": 16}})
    assert resolve_model_config(contract).epochs == 3
    assert resolve_model_config(contract).z_dim == 16
    assert resolve_model_config(contract, epochs=5).epochs == 5
    bad = adult_contract.model_copy(update={"model_options": {"z_dimm": 16}})
    with pytest.raises(ContractError, match="z_dimm.*Valid options"):
        resolve_model_config(bad)


# ---------------------------------------------------------------------------- --where sampling
def test_equality_conditions_are_read_from_a_top_level_conjunction_only() -> None:
    assert equality_conditions("income = '>50K'") == {"income": ">50K"}
    assert equality_conditions("income='>50K' AND sex = 'Female' and age < 30") == {"income": ">50K", "sex": "Female"}
    assert equality_conditions("note = 'a AND b'") == {"note": "a AND b"}
    assert equality_conditions("income = '>50K' OR sex = 'Female'") == {}
    assert equality_conditions("(income = '>50K')") == {}
    assert equality_conditions("flag = true AND n = 3") == {"flag": True, "n": 3}


@pytest.fixture(scope="module")
def ctgan_small(adult_contract: Contract, adult_small: pl.DataFrame) -> Synthesizer:
    return _fit("ctgan", adult_contract, adult_small.select(adult_contract.modelled_columns), epsilon=3.0, seed=0)[0]


def test_conditional_model_generates_the_condition_without_rejection(ctgan_small: Synthesizer) -> None:
    result = sample_where(ctgan_small, 2000, where="income = '>50K'", seed=1)
    assert result.method == "conditional"
    assert result.drawn == 2000 and result.acceptance == 1.0
    assert result.rows.height == 2000
    assert (result.rows["income"] == ">50K").all()


def test_extra_predicates_are_filtered_after_conditional_generation(ctgan_small: Synthesizer) -> None:
    result = sample_where(ctgan_small, 300, where="income = '>50K' AND age < 40", seed=2)
    assert result.method == "conditional+filter"
    assert result.fixed == {"income": ">50K"}
    assert result.rows.height == 300
    assert (result.rows["income"] == ">50K").all() and (result.rows["age"] < 40).all()
    assert result.drawn > 300


def test_unconditional_model_falls_back_to_bounded_rejection(
    adult_contract: Contract, adult_small: pl.DataFrame
) -> None:
    model = _fit("tvae", adult_contract, adult_small.select(adult_contract.modelled_columns), epsilon=3.0, seed=0)[0]
    result = sample_where(model, 200, where="income = '>50K'", seed=0)
    assert result.method == "rejection" and result.fixed == {}
    assert result.rows.height == 200 and (result.rows["income"] == ">50K").all()
    assert 0 < result.acceptance < 1
    with pytest.raises(ValueError, match="too rare for rejection sampling"):
        sample_where(model, 200, where='age > 89 AND "hours-per-week" > 98', seed=0, max_draws=2000)


def test_bad_where_clauses_are_refused_with_the_columns(ctgan_small: Synthesizer) -> None:
    with pytest.raises(WhereError, match="cannot parse"):
        sample_where(ctgan_small, 10, where="income = ", seed=0)
    with pytest.raises(WhereError, match=r"\['salary'\].*Columns"):
        sample_where(ctgan_small, 10, where="salary > 3", seed=0)
    with pytest.raises(ValueError, match="not in the contract's domain"):
        sample_where(ctgan_small, 10, where="income = 'rich'", seed=0)


def test_cli_sample_writes_only_matching_rows(ctgan_small: Synthesizer, tmp_path) -> None:
    from synthgate.flows.cli import app
    from synthgate.governance.registry import Registry, file_hashes

    release = tmp_path / "out" / "releases" / "run-1"
    release.mkdir(parents=True)
    ctgan_small.save(release / "model.pt")
    (release / "contract.yaml").write_text(ctgan_small.contract.to_yaml(), encoding="utf-8")
    registry = Registry(tmp_path / "out" / "registry.duckdb")
    registry.begin_run(
        run_id="run-1",
        table="adult",
        epsilon=3.0,
        delta=1e-6,
        lifetime_epsilon=None,
        lifetime_delta=None,
        contract_hash="x",
        config={},
        output_db="",
        output_table="",
    )
    registry.finish(
        "run-1",
        status="released",
        epsilon_spent=3.0,
        gates=[],
        reasons=[],
        folder=str(release),
        artifacts=file_hashes(release),
    )
    out = tmp_path / "rows.parquet"
    res = CliRunner().invoke(
        app,
        [
            "sample",
            "--release",
            str(release),
            "--n",
            "1000",
            "--where",
            "income='>50K'",
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = pl.read_parquet(out)
    assert rows.height == 1000 and (rows["income"] == ">50K").all()
    assert "conditional" in res.output
    assert "UNCHECKED rows" in res.output and "no privacy or fidelity gate has checked them" in res.output

    # A tampered folder is refused, naming the file: a changed contract, then an added file.
    original = (release / "contract.yaml").read_text(encoding="utf-8")
    (release / "contract.yaml").write_text(original + "\n# edited\n", encoding="utf-8")
    tampered = CliRunner().invoke(app, ["sample", "--release", str(release), "--n", "5", "-o", str(out)])
    assert tampered.exit_code == 2 and "contract.yaml changed" in tampered.output and "refused" in tampered.output
    (release / "contract.yaml").write_text(original, encoding="utf-8")
    (release / "extra.pt").write_bytes(b"\x00")
    added = CliRunner().invoke(app, ["sample", "--release", str(release), "--n", "5", "-o", str(out)])
    assert added.exit_code == 2 and "extra.pt added" in added.output
    elsewhere = CliRunner().invoke(
        app,
        ["sample", "--release", str(release), "--n", "5", "-o", str(out), "--registry", str(tmp_path / "none.duckdb")],
    )
    assert elsewhere.exit_code == 2 and "no release registry" in elsewhere.output

    bad = CliRunner().invoke(app, ["sample", "--release", str(tmp_path), "--n", "5", "-o", str(out)])
    assert bad.exit_code == 2 and "not a release folder" in bad.output
    listing = CliRunner().invoke(app, ["models"])
    assert listing.exit_code == 0 and "cwgan-gp" in listing.output


def test_fake_partners_do_not_depend_on_the_poisson_batch_size() -> None:
    """A BatchNorm generator in train mode: partner i must not change when one more row is sampled."""
    import torch
    from torch import nn

    gen = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()

    def partners(b: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            out = Synthesizer._fake_partners(b, 16, lambda m: gen(torch.randn(m, 4, generator=g)))
        assert out is not None and out.shape == (b, 3)
        return out

    assert torch.equal(partners(5), partners(6)[:5])  # fixed-size chunks: same rows either way
    assert torch.equal(partners(20)[:16], partners(16))
    assert Synthesizer._fake_partners(0, 16, lambda m: torch.zeros(m, 3)) is None
    # the failure this guards against: generating exactly b rows makes row 0 depend on b
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(gen(torch.randn(5, 4, generator=g1))[:1], gen(torch.randn(6, 4, generator=g2))[:1])
