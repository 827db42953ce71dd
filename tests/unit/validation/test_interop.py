"""Contract export/import: Frictionless Table Schema and SDV metadata round trips (issue 22 item 4)."""

from __future__ import annotations

import json

import pytest

from synthgate.errors import ContractError
from synthgate.validation.contract import load_contract, parse_contract
from synthgate.validation.interop import from_frictionless, from_sdv, to_frictionless, to_sdv

from .test_gates import small_contract


def _rich_contract():  # every kind, a derived column, a pii column, a budget and a gate setting
    data = json_roundtrip(small_contract().model_dump(mode="json", by_alias=True))
    data["columns"]["when"] = {
        "kind": "datetime",
        "min": "2020-01-01T00:00:00",
        "max": "2024-12-31T00:00:00",
        "nullable": True,
        "from_data": True,
    }
    data["columns"]["filed"] = {
        "kind": "datetime",
        "min": "2020-01-01T00:00:00",
        "max": "2024-12-31T00:00:00",
        "nullable": True,
        "derived": {"from": "when", "as": "copy"},
    }
    data["columns"]["notes"] = {"kind": "pii", "description": "free text"}
    data["columns"]["flag"] = {"kind": "boolean", "true_values": ["Y"], "false_values": ["N"]}
    data["missing_values"] = ["?"]
    data["gates"] = {"max_mia_auc": 0.58}
    data["privacy"]["lifetime_epsilon"] = 6.0
    return parse_contract(data)


def json_roundtrip(value):
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("to, back", [(to_frictionless, from_frictionless), (to_sdv, from_sdv)])
def test_export_then_import_gives_the_same_contract(to, back) -> None:
    contract = _rich_contract()
    again = back(json_roundtrip(to(contract)))
    assert again.fingerprint() == contract.fingerprint()
    assert again.to_yaml() == contract.to_yaml()


def test_frictionless_states_bounds_categories_and_keys_in_its_own_words() -> None:
    schema = to_frictionless(_rich_contract())
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["age"]["type"] == "integer" and {"minimum", "maximum"} <= set(fields["age"]["constraints"])
    assert fields["income"]["constraints"]["enum"]
    assert fields["flag"]["trueValues"] == ["Y"] and schema["primaryKey"] == ["person_id"]
    assert schema["missingValues"] == ["?"] and schema["synthgate"]["privacy"]["epsilon"] == 2.0


def test_a_foreign_frictionless_schema_imports_as_public_knowledge() -> None:
    schema = {
        "name": "visits",
        "primaryKey": ["visit_id"],
        "fields": [
            {"name": "visit_id", "type": "integer"},
            {"name": "age", "type": "integer", "constraints": {"minimum": 0, "maximum": 120, "required": True}},
            {"name": "cost", "type": "number", "constraints": {"minimum": 0, "maximum": 5000}},
            {"name": "ward", "type": "string", "constraints": {"enum": ["A", "B"]}},
            {"name": "comment", "type": "string"},
        ],
    }
    contract = from_frictionless(schema, privacy={"epsilon": 3.0, "delta": 1e-6})
    kinds = {n: c.kind for n, c in contract.columns.items()}
    assert kinds == {
        "visit_id": "identifier",
        "age": "integer",
        "cost": "continuous",
        "ward": "categorical",
        "comment": "pii",
    }
    assert not contract.data_derived_columns and not contract.columns["age"].nullable
    assert contract.columns["cost"].nullable and contract.privacy.epsilon == 3.0
    del schema["fields"][2]["constraints"]
    with pytest.raises(ContractError, match="'cost' .* has no constraints.minimum/maximum"):
        from_frictionless(schema, privacy={"epsilon": 3.0, "delta": 1e-6})
    with pytest.raises(ContractError, match="no privacy budget"):
        from_frictionless({"name": "t", "fields": [{"name": "a", "type": "string"}]})


def test_sdv_metadata_without_the_contract_names_what_it_lacks() -> None:
    meta = to_sdv(_rich_contract())
    assert meta["METADATA_SPEC_VERSION"] == "SINGLE_TABLE_V1" and meta["primary_key"] == "person_id"
    assert meta["columns"]["age"] == {"sdtype": "numerical", "computer_representation": "Int64"}
    assert meta["columns"]["notes"]["pii"] is True
    del meta["synthgate"]
    with pytest.raises(ContractError, match="no bounds or categories.*'age'"):
        from_sdv(meta)


def test_the_repository_contracts_round_trip() -> None:
    from pathlib import Path

    paths = sorted(Path("benchmarks/suite/contracts").glob("*.yaml"))[:5]
    assert paths
    for path in paths:
        contract = load_contract(path)
        assert from_frictionless(json_roundtrip(to_frictionless(contract))).fingerprint() == contract.fingerprint()
        assert from_sdv(json_roundtrip(to_sdv(contract))).fingerprint() == contract.fingerprint()
