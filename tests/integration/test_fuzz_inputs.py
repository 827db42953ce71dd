"""Fuzz the run config and the contract through `synthgate run` (hypothesis, derandomized).

Every generated input must end in exit 0, 2, 3 or 4 with one message and no traceback; when the
exit is 2 nothing under the output folder changed (it holds an earlier release). The source has
60 or 4 rows, below what the checks need, so no example trains: each is refused somewhere
between loading the YAML and the pre-flight row count, which is the path under test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from synthgate.flows.cli import app
from synthgate.flows.demo import demo_contract, demo_parquet

runner = CliRunner()

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 1e6, 1e308, 2**63, 2**64]),
)
STRINGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "[bold red]x[/]",
            "a\x1b[2Jb",
            "_synthgate_published",
            "_staging_x",
            "adult",
            "x\ny",
            "adult_synthetic",
            "",
            " adult",
            "\u202eevil",
            'we;ird "name',
        ]
    ),
)
QUERIES = st.sampled_from(
    [
        "SELECT * FROM adult",
        "COPY (SELECT * FROM adult) TO '{tmp}/leak.csv'",
        "SELECT 1; SELECT 2",
        "ATTACH '{tmp}/x.db'",
        "SELECT * FROM read_csv('{tmp}/run.yaml')",
        "PRAGMA version",
        "INSTALL httpfs",
        "",
        "SELEC",
        "FROM adult",
        "SELECT * FROM query('COPY adult TO ''{tmp}/leak.csv''')",
    ]
)
VALUES = st.one_of(NUMBERS, STRINGS, st.none(), st.booleans(), st.lists(st.integers(), max_size=3))

# (where, key) -> values to put there
MUTATIONS = st.one_of(
    st.tuples(st.just("contract.privacy"), st.sampled_from(["epsilon", "delta", "lifetime_epsilon"]), VALUES),
    st.tuples(st.just("contract"), st.sampled_from(["table", "target", "model", "version", "bogus"]), VALUES),
    st.tuples(st.just("contract.model_options"), st.sampled_from(["epochs", "batch_size", "bogus"]), VALUES),
    st.tuples(st.just("contract.age"), st.sampled_from(["min", "max", "kind", "nullable"]), VALUES),
    st.tuples(
        st.just("contract.evaluation"), st.sampled_from(["attack_rows", "shadow_models", "secret_columns"]), VALUES
    ),
    st.tuples(
        st.just("config"),
        st.sampled_from(
            [
                "epochs",
                "epsilon",
                "seed",
                "holdout_fraction",
                "output_table",
                "batch_size",
                "n_synthetic",
                "max_rows",
                "workers",
                "lock_timeout_s",
                "checkpoint_every",
                "task_runner",
                "bogus",
            ]
        ),
        VALUES,
    ),
    st.tuples(st.just("config.source"), st.sampled_from(["table", "query"]), st.one_of(STRINGS, QUERIES)),
    st.tuples(
        st.just("special"),
        st.sampled_from(
            [
                "out is a file",
                "source is the output db",
                "registry is the source",
                "duplicate key",
                "tiny table",
                "not a mapping",
                "contract missing",
            ]
        ),
        st.none(),
    ),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fuzz")
    rows = pl.read_parquet(demo_parquet()).sample(n=60, seed=1)
    for name, frame in (("source.duckdb", rows), ("tiny.duckdb", rows.head(4))):
        with duckdb.connect(str(tmp / name)) as con:
            con.register("rows", frame.to_arrow())
            con.execute("CREATE TABLE adult AS SELECT * FROM rows")
    return tmp


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_any_config_or_contract_ends_in_a_documented_exit_with_one_message(
    prefect_harness: None, world: Path, mutations: list[tuple[str, str, Any]]
) -> None:
    case = world / hashlib.sha256(repr(mutations).encode()).hexdigest()[:12]
    case.mkdir(exist_ok=True)
    out = case / "out"
    out.mkdir(exist_ok=True)
    with duckdb.connect(str(out / "synthgate.duckdb")) as con:
        con.execute("CREATE OR REPLACE TABLE adult_synthetic AS SELECT 1 AS earlier_release")
    contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    contract.setdefault("evaluation", {})["shadow_models"] = 0
    config: dict[str, Any] = {
        "contract": str(case / "contract.yaml"),
        "out": str(out),
        "epochs": 0.01,
        "batch_size": 50,
        "registry": str(case / "registry.duckdb"),
        "source": {"db": str(world / "source.duckdb"), "table": "adult"},
    }
    extra_config_text = ""
    contract_text: str | None = None
    for where, key, value in mutations:
        if isinstance(value, str):
            value = value.replace("{tmp}", str(case))
        if where == "contract":
            contract[key] = value
        elif where == "contract.age":
            contract["columns"]["age"][key] = value
        elif where.startswith("contract."):
            section = contract.setdefault(where.split(".")[1], {})
            if isinstance(section, dict):
                section[key] = value
        elif where == "config":
            config[key] = value
        elif where == "config.source":
            config["source"] = {"db": config["source"].get("db", str(world / "source.duckdb")), key: value}
        elif key == "out is a file":
            (case / "afile").write_text("x")
            config["out"] = str(case / "afile")
        elif key == "source is the output db":
            config["source"] = {"db": str(out / "synthgate.duckdb"), "table": "adult_synthetic"}
        elif key == "registry is the source":
            config["registry"] = str(world / "source.duckdb")
        elif key == "duplicate key":
            extra_config_text = "epochs: 1000\n"
        elif key == "tiny table":
            config["source"] = {"db": str(world / "tiny.duckdb"), "table": "adult"}
        elif key == "not a mapping":
            contract_text = "- just\n- a list\n"
        elif key == "contract missing":
            config["contract"] = str(case / "nowhere.yaml")
    (case / "contract.yaml").write_text(contract_text or _dump(contract), encoding="utf-8")
    text = _dump(config) + extra_config_text
    (case / "run.yaml").write_text(text, encoding="utf-8")
    source_before = hashlib.sha256((world / "source.duckdb").read_bytes()).hexdigest()
    before = _digest(out) if out.is_dir() else {}

    result = runner.invoke(app, ["run", "--config", str(case / "run.yaml"), "--quiet"])

    assert result.exit_code in (0, 2, 3, 4), (mutations, result.exit_code, result.output, repr(result.exception))
    assert result.exception is None or isinstance(result.exception, SystemExit), (mutations, repr(result.exception))
    assert "Traceback" not in result.output, (mutations, result.output)
    assert "Encountered exception" not in result.output and "Finished in state" not in result.output
    message = result.output.strip()
    assert "\n\n" not in message, (mutations, message)  # one paragraph
    assert message.count("error:") + message.count("REFUSED:") <= 1, (mutations, message)
    if result.exit_code == 2:
        assert (_digest(out) if out.is_dir() else {}) == before, mutations
        assert not (case / "leak.csv").exists() and not (case / "x.db").exists()
    assert hashlib.sha256((world / "source.duckdb").read_bytes()).hexdigest() == source_before
