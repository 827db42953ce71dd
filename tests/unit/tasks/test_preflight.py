"""The pure parts of the pre-flight checks (tasks/preflight.py) and the input parsers they rely on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from synthgate.errors import ContractError, InputError
from synthgate.flows.cli import printable, safe
from synthgate.flows.config import RunConfig, SourceConfig, check_source_query
from synthgate.flows.demo import demo_contract
from synthgate.tasks.preflight import (
    MAX_ENCODED_WIDTH,
    check_work,
    column_widths,
    encoded_width,
    minimum_rows,
    run_epsilon,
)
from synthgate.validation.contract import check_table_name, load_contract, load_yaml_text, parse_contract


def _config(**kw: object) -> RunConfig:
    return RunConfig(contract=demo_contract(), source=SourceConfig(path="a.parquet"), **kw)  # type: ignore[arg-type]


def test_minimum_rows_leave_every_check_its_rows_after_the_split() -> None:
    contract = load_contract(demo_contract())
    n = minimum_rows(contract, _config())
    assert n == 123  # 20 holdout rows and 20 per side for the shadow attack, + 4 sd of the coin split
    f = 1 / 3
    sd = (n * f * (1 - f)) ** 0.5
    assert n * f - 4 * sd >= 20 and n * (1 - f) - 4 * sd >= 20
    assert (n - 1) * f - 4 * ((n - 1) * f * (1 - f)) ** 0.5 < 20  # the smallest such n
    # a tiny holdout fraction gives a huge (capped) minimum at once, never a long loop
    assert minimum_rows(contract, _config(holdout_fraction=1e-300)) == 10**15


def test_the_encoded_width_bound_covers_adult_many_times() -> None:
    # 6 numeric columns x 2 (value, null flag) + 9 discrete ones x (categories + null + other)
    contract = load_contract(demo_contract())
    widths = column_widths(contract)
    assert encoded_width(contract) == sum(widths.values()) == 131
    assert widths["age"] == 2 and widths["workclass"] == len(contract.columns["workclass"].categories) + 2
    assert MAX_ENCODED_WIDTH >= 20 * 131


def test_the_encoded_width_follows_the_models_numeric_encoding() -> None:
    # a numeric column is 2 wide (the checks' value + null flag; the default quantile codec uses
    # 1 slot), 1 + max_modes under CTGAN's mode-specific normalisation, + 2 null slots if nullable
    contract = parse_contract(
        {
            "table": "t",
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
            "columns": {
                "x": {"kind": "continuous", "min": 0, "max": 1},
                "y": {"kind": "continuous", "min": 0, "max": 1, "nullable": True},
                "b": {"kind": "boolean"},
            },
        }
    )
    assert column_widths(contract) == {"x": 2, "y": 3, "b": 3}
    modes = SimpleNamespace(numeric_encoding="modes", max_modes=10)
    assert column_widths(contract, modes) == {"x": 11, "y": 13, "b": 3}


def test_a_wide_numeric_table_is_refused_naming_its_width_and_widest_columns() -> None:
    # 400 numeric columns under mode-specific normalisation: 4,400 wide. The message names the
    # width, where it comes from (numeric columns) and the widest columns, not a categorical one.
    columns = {f"f{i:03d}": {"kind": "continuous", "min": 0, "max": 1} for i in range(400)}
    columns["class"] = {"kind": "categorical", "categories": ["a", "b"]}
    contract = parse_contract({"table": "t", "privacy": {"epsilon": 1.0, "delta": 1e-6}, "columns": columns})
    modes = SimpleNamespace(numeric_encoding="modes", max_modes=10)
    with pytest.raises(InputError) as err:
        check_work(contract, _config(), 1000, modes)
    msg = str(err.value)
    assert "encodes to 4404 encoded columns (401 modelled columns: 4400 from numeric columns, 4 from " in msg
    assert f"above the bound of {MAX_ENCODED_WIDTH}" in msg
    assert "Widest: 'f000' 11, 'f001' 11, 'f002' 11, 'f003' 11, 'f004' 11, and 396 more column(s) adding 4349" in msg
    assert "numeric_encoding: quantile" in msg and "'class'" not in msg
    check_work(contract, _config(), 1000)  # the default quantile encoding: 802 wide, accepted
    # a table wide by its categories is told to group them
    columns["code"] = {"kind": "categorical", "categories": [f"c{i}" for i in range(5000)]}
    wide = parse_contract({"table": "t", "privacy": {"epsilon": 1.0, "delta": 1e-6}, "columns": columns})
    with pytest.raises(InputError, match=r"Widest: 'code' 5002, .*Group rare categories"):
        check_work(wide, _config(), 1000)


@pytest.mark.parametrize("query", ["SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "FROM t", "SELECT 1;"])
def test_select_queries_pass(query: str) -> None:
    assert check_source_query(query) == query


@pytest.mark.parametrize(
    "query, said",
    [
        ("COPY t TO 'x.csv'", "COPY"),
        ("SELECT 1; SELECT 2", "holds 2"),
        ("", "holds 0"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("DETACH x", "DETACH"),
        ("SELEC 1", "does not parse"),
    ],
)
def test_other_statements_are_refused(query: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        check_source_query(query)


def test_duplicate_keys_are_found_at_any_depth_with_their_lines() -> None:
    with pytest.raises(Exception, match=r"duplicate key 'b' on line 4 \(first on line 3\)"):
        load_yaml_text("a:\n  - x: 1\n    b: 2\n    b: 3\n")
    assert load_yaml_text("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}  # same key in two mappings is fine
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml_text("a: !!python/object:os.system x\n")  # still a SafeLoader


@pytest.mark.parametrize(
    "name", ["", "a\nb", "x\x1b[2J", "\u202eevil", " pad", "_synthgate_x", "_STAGING_x", "x" * 129]
)
def test_bad_table_names(name: str) -> None:
    with pytest.raises(ValueError):
        check_table_name(name, what="table")


def test_printable_and_safe_neutralise_terminal_controls() -> None:
    assert printable("a\x1b[31mb\u202ec") == "a\\x1b[31mb\\u202ec"
    assert safe("[bold]x[/]") == "\\[bold]x\\[/]"
    assert printable("line one\nline two") == "line one\nline two"


def test_a_contract_over_the_epsilon_bound_is_refused(tmp_path: object) -> None:
    import yaml

    data = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    data["privacy"]["epsilon"] = 101.0
    path = tmp_path / "c.yaml"  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ContractError, match="privacy.epsilon"):
        load_contract(path)


def test_the_run_epsilon_is_the_budget_by_default_and_never_above_it() -> None:
    contract = load_contract(demo_contract())
    assert run_epsilon(_config(), contract) == contract.privacy.epsilon == 3.0
    assert run_epsilon(_config(epsilon=1.5), contract) == 1.5
    with pytest.raises(ContractError, match=r"--epsilon 6.0 exceeds the contract's budget privacy.epsilon = 3.0"):
        run_epsilon(_config(epsilon=6.0), contract)
