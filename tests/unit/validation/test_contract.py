"""The data contract: parsing, error messages, the demo contract, the fingerprint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthgate.errors import ContractError
from synthgate.validation.contract import Contract, PrivacyBudget, load_contract, parse_contract

DEMO = Path(__file__).resolve().parents[3] / "flows" / "demo" / "adult.contract.yaml"


def _small() -> dict[str, Any]:
    return {
        "table": "people",
        "target": "smoker",
        "columns": {
            "age": {"kind": "integer", "min": 0, "max": 120},
            "income": {"kind": "continuous", "min": 0.0, "max": 1e6, "nullable": True},
            "smoker": {"kind": "categorical", "categories": ["yes", "no"]},
            "member_id": {"kind": "identifier"},
        },
        "privacy": {"epsilon": 1.0, "delta": 1e-6},
    }


def _error(data: Any) -> str:
    with pytest.raises(ContractError) as info:
        parse_contract(data)
    return str(info.value)


def test_small_contract_parses_with_defaults() -> None:
    c = parse_contract(_small())
    assert c.modelled_columns == ["age", "income", "smoker"]
    assert c.excluded_columns == ["member_id"]
    assert c.data_derived_columns == []
    assert c.gates.max_dcr_share == 0.55


def test_contract_error_is_a_value_error() -> None:
    assert issubclass(ContractError, ValueError)


def test_unknown_top_level_key_is_named() -> None:
    data = _small() | {"epsilonn": 3}
    msg = _error(data)
    assert "epsilonn" in msg
    assert "remove it or fix its spelling" in msg
    assert "privacy" in msg  # the allowed keys are listed


def test_unknown_column_key_is_named() -> None:
    data = _small()
    data["columns"]["age"]["maximum"] = 99
    msg = _error(data)
    assert "columns.age" in msg and "maximum" in msg
    assert "remove it or fix its spelling" in msg
    assert "max" in msg


def test_unknown_privacy_key_is_named() -> None:
    data = _small()
    data["privacy"]["epsilom"] = 1.0
    assert "epsilom" in _error(data)


@pytest.mark.parametrize("kind", ["integer", "continuous"])
@pytest.mark.parametrize(("lo", "hi"), [(5, 5), (10, 1)])
def test_min_must_be_below_max(kind: str, lo: int, hi: int) -> None:
    data = _small()
    data["columns"]["x"] = {"kind": kind, "min": lo, "max": hi}
    msg = _error(data)
    assert "min must be < max" in msg and f"min={lo}" in msg and "Fix the bounds" in msg


def test_datetime_min_must_be_before_max() -> None:
    data = _small()
    data["columns"]["t"] = {"kind": "datetime", "min": "2020-01-02", "max": "2020-01-01"}
    assert "min must be before max" in _error(data)


def test_non_finite_bounds_are_rejected() -> None:
    data = _small()
    data["columns"]["income"]["max"] = float("inf")
    assert "finite" in _error(data)


def test_duplicate_categories_are_named() -> None:
    data = _small()
    data["columns"]["smoker"]["categories"] = ["yes", "no", "yes"]
    msg = _error(data)
    assert "repeated: ['yes']" in msg and "Remove the repeats" in msg


def test_unknown_kind_lists_the_kinds() -> None:
    data = _small()
    data["columns"]["age"]["kind"] = "number"
    msg = _error(data)
    assert "number" in msg and "Set `kind` to one of" in msg and "integer" in msg


def test_missing_kind_says_how_to_fix() -> None:
    data = _small()
    del data["columns"]["age"]["kind"]
    assert "Set `kind` to one of" in _error(data)


def test_missing_required_key_says_add_it() -> None:
    data = _small()
    del data["privacy"]
    msg = _error(data)
    assert "privacy" in msg and "Add this key" in msg


def test_target_must_be_a_column() -> None:
    data = _small() | {"target": "income_class"}
    msg = _error(data)
    assert "'income_class' is not a column" in msg and "Set target to one of them" in msg


def test_numeric_target_is_regression() -> None:
    data = _small() | {"target": "income"}
    assert parse_contract(data).target == "income"


def test_target_must_not_be_an_identifier() -> None:
    data = _small()
    data["columns"]["member_id"] = {"kind": "identifier"}
    msg = _error(data | {"target": "member_id"})
    assert "'identifier'" in msg and "continuous or integer (regression)" in msg


def test_secret_columns_default_to_target_and_must_exist() -> None:
    data = _small()
    contract = parse_contract(data)
    assert contract.secret_columns == ([contract.target] if contract.target else [])
    data["evaluation"] = {"secret_columns": ["nope"]}
    assert "evaluation.secret_columns names 'nope'" in _error(data)


def test_contract_must_model_a_column() -> None:
    data = _small()
    data["target"] = None
    data["columns"] = {"member_id": {"kind": "identifier"}, "email": {"kind": "pii"}}
    assert "models no column" in _error(data)


def test_privacy_epsilon_must_be_positive() -> None:
    data = _small()
    data["privacy"]["epsilon"] = -1
    msg = _error(data)
    assert "privacy.epsilon" in msg and "greater than 0" in msg


@pytest.mark.parametrize("n", [10, 1000, 1_000_000])
def test_delta_at_or_above_one_over_n_is_refused(n: int) -> None:
    budget = PrivacyBudget(epsilon=1.0, delta=1.0 / n)
    with pytest.raises(ContractError) as info:
        budget.check_delta(n)
    msg = str(info.value)
    assert "privacy.delta" in msg and f"{n} rows" in msg and "Set privacy.delta" in msg


def test_delta_below_one_over_n_passes() -> None:
    PrivacyBudget(epsilon=1.0, delta=1e-6).check_delta(48_842)


def test_missing_file() -> None:
    with pytest.raises(ContractError, match="does not exist"):
        load_contract("/nonexistent/contract.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("table: t\ncolumns: [unclosed\n", encoding="utf-8")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(p)


def test_non_utf8_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_bytes(b"table: \xff\xfe\n")
    with pytest.raises(ContractError, match="UTF-8"):
        load_contract(p)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError, match="must be a YAML mapping"):
        load_contract(p)


def test_every_error_says_what_and_how() -> None:
    """Each error is a ContractError naming the location and ending in a fix."""
    bad: list[dict[str, Any]] = []
    for mutate in (
        lambda d: d.update(bogus=1),
        lambda d: d["columns"]["age"].update(min=5, max=1),
        lambda d: d["columns"]["age"].update(kind="nope"),
        lambda d: d["privacy"].update(delta=2),
        lambda d: d.update(target="nope"),
    ):
        data = _small()
        mutate(data)
        bad.append(data)
    fixes = ("remove", "fix", "set", "add")
    for data in bad:
        msg = _error(data)
        assert msg.startswith("<contract> is not a valid contract:")
        detail = msg.split("\n", 1)[1].lower()
        assert any(word in detail for word in fixes), msg


def test_demo_contract_loads() -> None:
    c = load_contract(DEMO)
    assert c.table == "adult"
    assert c.target == "income"
    assert len(c.columns) == 15
    assert c.data_derived_columns == []  # written from public documentation
    assert c.missing_values == ["?"]
    c.privacy.check_delta(48_842)


def test_fingerprint_is_stable() -> None:
    a = load_contract(DEMO)
    b = load_contract(DEMO)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    # A round trip through YAML keeps it; any change to the contract changes it.
    c = parse_contract(yaml.safe_load(a.to_yaml()))
    assert c == a and c.fingerprint() == a.fingerprint()
    data = copy.deepcopy(a.model_dump(mode="json"))
    data["privacy"]["epsilon"] = 2.0
    assert Contract.model_validate(data).fingerprint() != a.fingerprint()


def test_contract_is_frozen() -> None:
    c = parse_contract(_small())
    with pytest.raises(ValueError):
        c.table = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- issue 21: new column keys


@pytest.mark.parametrize(
    ("column", "match"),
    [
        ({"kind": "boolean", "true_values": ["Y"]}, "both true_values and false_values"),
        ({"kind": "boolean", "true_values": ["Y"], "false_values": ["Y", "N"]}, "listed in both"),
        ({"kind": "boolean", "true_values": [], "false_values": ["N"]}, "at least one"),
        ({"kind": "continuous", "min": 0, "max": 10, "special_values": [11]}, "within the column's bounds"),
        ({"kind": "integer", "min": 0, "max": 10, "special_values": [0.5]}, "whole number"),
        ({"kind": "integer", "min": 0, "max": 10, "special_values": [3, 3]}, "repeats"),
    ],
)
def test_new_column_keys_are_checked(column: dict, match: str) -> None:
    with pytest.raises(ContractError, match=match):
        parse_contract(
            {
                "table": "t",
                "columns": {"c": column, "x": {"kind": "integer", "min": 0, "max": 9}},
                "privacy": {"epsilon": 1.0, "delta": 1e-6},
            }
        )


def test_new_column_keys_round_trip() -> None:
    c = parse_contract(
        {
            "table": "t",
            "columns": {
                "yn": {"kind": "boolean", "true_values": ["Y", "yes"], "false_values": ["N"]},
                "amount": {"kind": "continuous", "min": 0, "max": 10, "special_values": [0, 9.99]},
            },
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
        }
    )
    assert parse_contract(yaml.safe_load(c.to_yaml())) == c
