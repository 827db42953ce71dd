"""A data contract to and from Frictionless Table Schema and SDV single-table metadata.

Teams that already describe a table in one of those need not write it twice.

Frictionless Table Schema (https://specs.frictionlessdata.io/table-schema/) carries most of a contract:
each field's type, ``constraints.minimum/maximum`` (bounds), ``constraints.enum`` (categories),
``constraints.required`` (not nullable), ``trueValues``/``falseValues``, ``missingValues`` and
``primaryKey``. What the standard has no word for (the privacy budget, gates, evaluation, model, target,
the pii/identifier distinction, ``from_data`` marks, derived columns) goes in custom ``synthgate``
properties, which Table Schema allows; an export read back by ``from_frictionless`` gives the same
contract. A schema written elsewhere (no ``synthgate`` property) imports with the budget given to the
import, bounds and categories taken as the public knowledge its author wrote (``from_data: false``).

SDV metadata (``METADATA_SPEC_VERSION: SINGLE_TABLE_V1``) has sdtypes but no bounds or categories:
``to_sdv`` writes the sdtypes (numerical with its representation, categorical, boolean, datetime, id,
pii sdtypes) and the primary key, and keeps the contract in a ``synthgate`` property so it reads back;
``from_sdv`` needs that property, or names the columns whose bounds it lacks.
"""

from __future__ import annotations

from typing import Any

from synthgate.errors import ContractError
from synthgate.validation.contract import Contract, parse_contract

_FL_TYPE = {
    "continuous": "number",
    "integer": "integer",
    "categorical": "string",
    "boolean": "boolean",
    "datetime": "datetime",
    "identifier": "string",
    "pii": "string",
}
# Contract-level parts with no Table Schema word; kept under the schema's "synthgate" property.
_TABLE_EXTRAS = (
    "version",
    "description",
    "target",
    "model",
    "model_options",
    "unit",
    "privacy",
    "gates",
    "evaluation",
    "dp_inference",
)
# Column keys Table Schema states itself (everything else goes under the field's "synthgate" property).
_FL_STANDARD = {"kind", "min", "max", "categories", "nullable", "description", "true_values", "false_values"}


def to_frictionless(contract: Contract) -> dict[str, Any]:
    """The contract as a Frictionless Table Schema descriptor (JSON-ready)."""
    data = contract.model_dump(mode="json", by_alias=True)
    fields = []
    for name, col in data["columns"].items():
        field: dict[str, Any] = {"name": name, "type": _FL_TYPE[col["kind"]]}
        if col.get("description"):
            field["description"] = col["description"]
        constraints: dict[str, Any] = {"required": not col.get("nullable", False)}
        if "min" in col:
            constraints["minimum"], constraints["maximum"] = col["min"], col["max"]
        if "categories" in col:
            constraints["enum"] = list(col["categories"])
        field["constraints"] = constraints
        if col.get("true_values"):
            field["trueValues"] = col["true_values"]
        if col.get("false_values"):
            field["falseValues"] = col["false_values"]
        extra = {k: v for k, v in col.items() if k not in _FL_STANDARD}
        extra["kind"] = col["kind"]
        field["synthgate"] = extra
        fields.append(field)
    schema: dict[str, Any] = {"name": contract.table, "fields": fields}
    if contract.missing_values:
        schema["missingValues"] = list(contract.missing_values)
    keys = [n for n, c in contract.columns.items() if c.kind == "identifier"]
    if len(keys) == 1:
        schema["primaryKey"] = keys
    schema["synthgate"] = {k: data[k] for k in _TABLE_EXTRAS if k in data and data[k] is not None}
    return schema


def from_frictionless(schema: Any, *, table: str | None = None, privacy: dict[str, Any] | None = None) -> Contract:
    """A contract from a Table Schema descriptor (as ``to_frictionless`` writes, or one written elsewhere).

    ``table``/``privacy`` fill what a foreign schema lacks (its ``name``; a budget such as
    ``{"epsilon": 3.0, "delta": 1e-6}``); a schema's own ``synthgate`` property wins.

    Raises:
        ContractError: the schema is malformed, a field's type has no contract kind, a number lacks
            its bounds, or the result is not a valid contract.
    """
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list) or not schema["fields"]:
        raise ContractError("a Table Schema is a JSON object with a non-empty 'fields' list. Pass a schema.json.")
    extras = dict(schema.get("synthgate") or {})
    name = table or schema.get("name")
    if not name:
        raise ContractError("the schema has no 'name': pass the table name (--table NAME).")
    if "privacy" not in extras:
        if privacy is None:
            raise ContractError("the schema states no privacy budget: pass one (--epsilon, --delta).")
        extras["privacy"] = privacy
    keys = set(schema.get("primaryKey") or [])
    columns: dict[str, Any] = {}
    for i, field in enumerate(schema["fields"]):
        if not isinstance(field, dict) or not isinstance(field.get("name"), str):
            raise ContractError(f"field {i} of the schema has no 'name'. Each field needs a name and a type.")
        fname = field["name"]
        own = dict(field.get("synthgate") or {})
        constraints = field.get("constraints") or {}
        kind = own.pop("kind", None) or _kind_of(field, keys, constraints)
        col: dict[str, Any] = {"kind": kind, **own}
        if field.get("description"):
            col["description"] = field["description"]
        col["nullable"] = not constraints.get("required", False)
        if kind in ("continuous", "integer", "datetime"):
            if "minimum" not in constraints or "maximum" not in constraints:
                raise ContractError(
                    f"field {fname!r} ({field.get('type')}) has no constraints.minimum/maximum: a contract needs "
                    "public bounds for every learned number or date. Add them to the schema, or declare the "
                    "field's kind (synthgate: {kind: pii}) to leave it out."
                )
            col["min"], col["max"] = constraints["minimum"], constraints["maximum"]
        if kind == "categorical":
            col["categories"] = [str(v) for v in constraints["enum"]]
        if field.get("trueValues"):
            col["true_values"] = field["trueValues"]
        if field.get("falseValues"):
            col["false_values"] = field["falseValues"]
        columns[fname] = col
    data = {"table": name, **extras, "columns": columns}
    if schema.get("missingValues"):
        data["missing_values"] = [v for v in schema["missingValues"] if v != ""]
    return parse_contract(data, source="<frictionless schema>")


def _kind_of(field: dict[str, Any], keys: set[str], constraints: dict[str, Any]) -> str:
    t = field.get("type", "string")
    if field["name"] in keys:
        return "identifier"
    if t == "number":
        return "continuous"
    if t in ("integer", "boolean", "datetime"):
        return str(t)
    if t == "date":
        return "datetime"
    if t == "string":
        return "categorical" if constraints.get("enum") else "pii"  # free text: never learned
    raise ContractError(
        f"field {field['name']!r} has type {t!r}, which no contract kind holds. Use number, integer, boolean, "
        "date, datetime or string, or declare its kind (synthgate: {kind: pii}) to leave it out."
    )


_SDV = {
    "continuous": ("numerical", "Float"),
    "integer": ("numerical", "Int64"),
    "categorical": ("categorical", None),
    "boolean": ("boolean", None),
    "datetime": ("datetime", None),
    "identifier": ("id", None),
    "pii": ("unknown", None),
}


def to_sdv(contract: Contract) -> dict[str, Any]:
    """The contract as SDV single-table metadata (``SINGLE_TABLE_V1``), the contract kept alongside."""
    columns: dict[str, Any] = {}
    for name, col in contract.columns.items():
        sdtype, rep = _SDV[col.kind]
        entry: dict[str, Any] = {"sdtype": sdtype}
        if rep:
            entry["computer_representation"] = rep
        if col.kind == "datetime":
            entry["datetime_format"] = "%Y-%m-%d %H:%M:%S"
        if col.kind == "pii":
            entry["pii"] = True
        columns[name] = entry
    meta: dict[str, Any] = {"METADATA_SPEC_VERSION": "SINGLE_TABLE_V1", "columns": columns}
    keys = [n for n, c in contract.columns.items() if c.kind == "identifier"]
    if len(keys) == 1:
        meta["primary_key"] = keys[0]
    meta["synthgate"] = contract.model_dump(mode="json", by_alias=True)
    return meta


def from_sdv(meta: Any) -> Contract:
    """A contract from SDV metadata that ``to_sdv`` wrote (its ``synthgate`` property).

    Raises:
        ContractError: the metadata is malformed, or lacks the bounds and categories SDV metadata
            cannot hold (named per column), or disagrees with its contract.
    """
    if not isinstance(meta, dict) or not isinstance(meta.get("columns"), dict):
        raise ContractError("SDV metadata is a JSON object with a 'columns' mapping. Pass a metadata.json.")
    kept = meta.get("synthgate")
    if not isinstance(kept, dict):
        needs = [
            n
            for n, c in meta["columns"].items()
            if isinstance(c, dict) and c.get("sdtype") in ("numerical", "categorical", "datetime")
        ]
        raise ContractError(
            "SDV metadata states sdtypes but no bounds or categories, which a contract needs as public "
            f"knowledge for {needs}. Draft the contract with `synthgate contract infer` and review it, or "
            "describe the table as a Frictionless Table Schema (constraints minimum/maximum/enum)."
        )
    contract = parse_contract(kept, source="<sdv metadata>")
    for name, entry in meta["columns"].items():
        if name not in contract.columns:
            raise ContractError(f"SDV column {name!r} is not in the contract it carries. Re-export it.")
        sdtype = entry.get("sdtype") if isinstance(entry, dict) else None
        if sdtype != _SDV[contract.columns[name].kind][0]:
            raise ContractError(
                f"SDV column {name!r} has sdtype {sdtype!r} but the contract says kind "
                f"{contract.columns[name].kind!r}. Edit one to match, or re-export."
            )
    return contract
