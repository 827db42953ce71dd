"""Drafting a contract from a table: kinds, from_data marks, pii flags, the YAML round trip."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from synthgate.errors import ContractError
from synthgate.validation.contract import (
    CategoricalColumn,
    ContinuousColumn,
    DatetimeColumn,
    IntegerColumn,
    load_contract,
    parse_contract,
)
from synthgate.validation.infer import infer_contract, render_inferred_yaml

N = 20
#: A modelled integer filler column: unique but no row index (0..N-1 is one, and is excluded).
_FILLER = [3 * i for i in range(N)]


@pytest.fixture()
def frame() -> pl.DataFrame:
    """20 rows with one column of each kind the drafter distinguishes."""
    return pl.DataFrame(
        {
            "age": [20 + i for i in range(N)],
            "score": [0.5 * i for i in range(N - 1)] + [None],
            "colour": ["red", "green", "blue", None] * 5,
            "smoker": [True, False] * 10,
            "visited": [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(N)],
            "ticket": [f"T-{i:04d}" for i in range(N)],  # unique per row, innocuous name
            "contact": [f"user{i % 3}@example.org" for i in range(N)],  # few distinct e-mails
            "tax_ref": [f"{100 + i % 2:03d}-45-678{i % 2}" for i in range(N)],  # SSN-like
            "customerID": list(range(N)),  # numeric, but the name says identifier
            "full_name": ["Ann", "Bob"] * 10,
        }
    )


def test_kinds_are_drafted(frame: pl.DataFrame) -> None:
    c = infer_contract(frame, table="visits")
    kinds = {name: col.kind for name, col in c.columns.items()}
    assert kinds == {
        "age": "integer",
        "score": "continuous",
        "colour": "categorical",
        "smoker": "boolean",
        "visited": "datetime",
        "ticket": "identifier",
        "contact": "pii",
        "tax_ref": "pii",
        "customerID": "identifier",
        "full_name": "pii",
    }


def test_bounds_domains_and_nullability(frame: pl.DataFrame) -> None:
    c = infer_contract(frame, table="visits")
    age, score, colour, visited = (c.columns[n] for n in ("age", "score", "colour", "visited"))
    assert isinstance(age, IntegerColumn) and (age.min, age.max) == (20, 39)
    assert isinstance(score, ContinuousColumn) and (score.min, score.max) == (0.0, 9.0)
    assert isinstance(colour, CategoricalColumn) and colour.categories == ["blue", "green", "red"]
    assert isinstance(visited, DatetimeColumn)
    assert (visited.min, visited.max) == (dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 20))
    assert [n for n, col in c.columns.items() if col.nullable] == ["score", "colour"]


def test_every_data_bound_is_marked_from_data(frame: pl.DataFrame) -> None:
    c = infer_contract(frame, table="visits")
    for name, col in c.columns.items():
        has_data_domain = col.kind in ("integer", "continuous", "datetime", "categorical")
        assert col.from_data is has_data_domain, name
    assert c.data_derived_columns == ["age", "score", "colour", "visited"]


def test_excluded_columns_say_why_without_values(frame: pl.DataFrame) -> None:
    c = infer_contract(frame, table="visits")
    assert "e-mail" in (c.columns["contact"].description or "")
    assert "social security" in (c.columns["tax_ref"].description or "")
    assert "unique per row" in (c.columns["ticket"].description or "")
    text = render_inferred_yaml(c)
    assert "example.org" not in text and "-45-678" not in text and "T-00" not in text


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("id", "identifier"),
        ("record_id", "identifier"),
        ("patientId", "identifier"),
        ("uuid", "identifier"),
        ("email", "pii"),
        ("E-Mail", "pii"),
        ("phone_number", "pii"),
        ("ssn", "pii"),
        ("lastName", "pii"),
        ("home address", "pii"),
        ("date_of_birth", "pii"),
    ],
)
def test_name_hints(name: str, kind: str) -> None:
    df = pl.DataFrame({name: ["a", "b"] * 10, "x": _FILLER})
    assert infer_contract(df, table="t").columns[name].kind == kind


@pytest.mark.parametrize("name", ["paid", "valid", "width", "hours-per-week", "education-num"])
def test_name_hints_do_not_fire_on_ordinary_words(name: str) -> None:
    df = pl.DataFrame({name: [1, 2] * 10})
    assert infer_contract(df, table="t").columns[name].kind == "integer"


def test_phone_like_values_are_pii() -> None:
    phones = ["+1 (555) 010-0000", "555-010-0001", "+44 20 7946 0958", "0049 30 1234567"] * 5
    df = pl.DataFrame({"reach": phones, "x": _FILLER})
    assert infer_contract(df, table="t").columns["reach"].kind == "pii"


def test_high_cardinality_text_is_excluded() -> None:
    df = pl.DataFrame({"note": [f"n{i % 60}" for i in range(200)], "x": [3 * i for i in range(200)]})
    col = infer_contract(df, table="t").columns["note"]
    assert col.kind == "identifier" and "60 distinct" in (col.description or "")


def test_missing_values_become_null() -> None:
    df = pl.DataFrame({"c": ["a", "?", "b", "a"] * 5})
    c = infer_contract(df, table="t", missing_values=["?"])
    col = c.columns["c"]
    assert isinstance(col, CategoricalColumn) and col.categories == ["a", "b"] and col.nullable
    assert c.missing_values == ["?"]


def test_edge_columns_still_give_a_valid_contract() -> None:
    df = pl.DataFrame(
        {
            "const": [7] * N,
            "nan_only": [math.nan] * N,
            "with_inf": [1.0, math.inf, -math.inf, 2.0] * 5,
            "empty": pl.Series([None] * N, dtype=pl.String),
            "day": [dt.date(2021, 1, 1)] * N,
        }
    )
    c = infer_contract(df, table="t")
    names = ("const", "nan_only", "with_inf", "day")
    const, nan_only, with_inf, day = (c.columns[n] for n in names)
    assert isinstance(const, IntegerColumn) and (const.min, const.max) == (7, 8)
    assert isinstance(nan_only, ContinuousColumn) and (nan_only.min, nan_only.max) == (0.0, 1.0)
    assert isinstance(with_inf, ContinuousColumn) and (with_inf.min, with_inf.max) == (1.0, 2.0)
    assert c.columns["empty"].kind == "identifier"
    assert isinstance(day, DatetimeColumn) and day.min == dt.datetime(2021, 1, 1)


def test_delta_default_and_check() -> None:
    small = pl.DataFrame({"x": _FILLER})
    assert infer_contract(small, table="t").privacy.delta == 1e-6
    big = pl.DataFrame({"x": [3 * i for i in range(1_000_000)]})
    assert infer_contract(big, table="t").privacy.delta == pytest.approx(1e-7)
    with pytest.raises(ContractError, match="privacy.delta"):
        infer_contract(small, table="t", delta=0.1)


def test_epsilon_is_validated() -> None:
    with pytest.raises(ContractError, match="privacy.epsilon"):
        infer_contract(pl.DataFrame({"x": _FILLER}), table="t", epsilon=0)


def test_empty_table_is_refused() -> None:
    with pytest.raises(ContractError, match="0 rows"):
        infer_contract(pl.DataFrame({"x": []}, schema={"x": pl.Int64}), table="t")


def test_all_excluded_is_refused() -> None:
    with pytest.raises(ContractError, match="models no column"):
        infer_contract(pl.DataFrame({"email": ["a@b.org", "c@d.org"]}), table="t")


def test_render_round_trip(frame: pl.DataFrame, tmp_path: Path) -> None:
    c = infer_contract(frame, table="visits", epsilon=2.5)
    text = render_inferred_yaml(c)
    assert parse_contract(yaml.safe_load(text)) == c
    path = tmp_path / "visits.contract.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_contract(path)
    assert loaded == c and loaded.fingerprint() == c.fingerprint()


def test_render_round_trip_demo_table() -> None:
    df = pl.read_parquet(Path(__file__).resolve().parents[3] / "flows" / "demo" / "adult.parquet")
    c = infer_contract(df, table="adult", missing_values=["?"])
    assert parse_contract(yaml.safe_load(render_inferred_yaml(c))) == c
    assert len(c.data_derived_columns) == 15


def test_inferred_contract_validates_its_table() -> None:
    from synthgate.validation.expectations import validate_frame

    df = pl.read_parquet(Path(__file__).resolve().parents[3] / "flows" / "demo" / "adult.parquet")
    c = infer_contract(df, table="adult", missing_values=["?"])
    text = [n for n, t in df.schema.items() if t == pl.String]
    prepared = df.with_columns(pl.when(pl.col(n) == "?").then(None).otherwise(pl.col(n)).alias(n) for n in text)
    report = validate_frame(prepared, c)
    assert report.success, report.summary()


def test_header_warning(frame: pl.DataFrame) -> None:
    text = render_inferred_yaml(infer_contract(frame, table="visits"))
    header = text.split("version:", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines())
    lowered = header.lower()
    assert "read from the" in lowered and "private rows" in lowered
    assert "leaks information" in lowered
    assert "public knowledge" in lowered and "privacy budget" in lowered
    assert "not differentially private" in lowered
    assert "contract_is_public" in header
    assert "'age', 'score', 'colour', 'visited'" in header


def test_header_survives_hostile_column_names() -> None:
    df = pl.DataFrame({"a\nversion: 2": _FILLER, "b": _FILLER})
    c = infer_contract(df, table="t")
    assert parse_contract(yaml.safe_load(render_inferred_yaml(c))) == c


# ---------------------------------------------------------------- issue 21: what a steward's table holds


def test_a_row_index_and_a_dense_key_are_identifiers_but_a_measurement_is_not() -> None:
    rng = np.random.default_rng(0)
    n = 200
    keys = rng.permutation(np.arange(1000, 1000 + 2 * n))[:n]  # unique, packed in a range of 2n
    df = pl.DataFrame(
        {
            "rownames": np.arange(1, n + 1),
            "case_number": keys,
            "income": rng.integers(0, 100_000, n),  # nearly unique too, but spread over a wide range
            "x": [i % 7 for i in range(n)],
        }
    )
    c = infer_contract(df, table="t")
    assert c.columns["rownames"].kind == "identifier" and "row index" in (c.columns["rownames"].description or "")
    assert c.columns["case_number"].kind == "identifier" and "a key" in (c.columns["case_number"].description or "")
    assert c.columns["income"].kind == "integer"


def test_short_free_text_is_pii_not_categorical() -> None:
    """Answers typed by people: few distinct values, short, but most held by one row only."""
    answers = ["ok", "fine", "no", "n/a", "late", "good", "bad", "meh"] + ["yes"] * 52
    df = pl.DataFrame({"answer": answers, "x": [i % 7 for i in range(60)]})
    col = infer_contract(df, table="t").columns["answer"]
    assert col.kind == "pii" and "free text" in (col.description or "")


def test_zero_one_integers_are_drafted_boolean() -> None:
    df = pl.DataFrame({"flag": [0, 1, 1, 0] * 5, "count": [0, 1, 2, 3] * 5})
    c = infer_contract(df, table="t")
    assert c.columns["flag"].kind == "boolean" and c.columns["count"].kind == "integer"


def test_duplicated_and_offset_columns_are_drafted_derived() -> None:
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=3 * i) for i in range(N)]
    df = pl.DataFrame(
        {
            "arrest": days,
            "filed": days,
            "released": [d + dt.timedelta(days=30) for d in days],
            "age": _FILLER,
            "age_next_year": [a + 1 for a in _FILLER],
            "other": [(7 * i) % 11 for i in range(N)],
        }
    )
    c = infer_contract(df, table="t")
    derived = {
        n: (col.derived.source, col.derived.as_, col.derived.offset)
        for n, col in c.columns.items()
        if col.derived is not None
    }
    assert derived == {
        "filed": ("arrest", "copy", None),
        "released": ("arrest", "offset", 30.0),
        "age_next_year": ("age", "offset", 1.0),
    }
    assert c.modelled_columns == ["arrest", "age", "other"]
    assert all(c.columns[n].from_data for n in derived)  # read off the rows: a person confirms it


def test_the_draft_has_the_readme_default_and_a_finite_lifetime_budget(frame: pl.DataFrame) -> None:
    c = infer_contract(frame, table="visits")
    assert c.privacy.epsilon == 3.0 and c.privacy.lifetime_epsilon == 9.0
    header = render_inferred_yaml(c).split("version:", 1)[0]
    assert "lifetime_epsilon" in header and "3x the per-release" in header
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert "privacy: {epsilon: 3.0," in readme  # the README's stated default is the draft's


def test_many_valued_free_text_is_pii_and_codes_stay_identifiers() -> None:
    rng = np.random.default_rng(1)
    n = 600
    text = [
        f"seen near {w} {int(k)}" for w, k in zip(rng.choice(["gate", "dock"], n), rng.integers(0, 200, n), strict=True)
    ]
    df = pl.DataFrame({"remarks": text, "code": [f"C{i % 80}" for i in range(n)], "x": [i % 7 for i in range(n)]})
    c = infer_contract(df, table="t")
    assert c.columns["remarks"].kind == "pii" and "free text" in (c.columns["remarks"].description or "")
    assert c.columns["code"].kind == "identifier"


def test_propose_target_reads_names_and_kinds_only() -> None:
    from synthgate.validation.contract import parse_contract
    from synthgate.validation.infer import propose_target

    def contract(columns: dict) -> object:
        return parse_contract({"table": "t", "columns": columns, "privacy": {"epsilon": 1.0, "delta": 1e-6}})

    cat = {"kind": "categorical", "categories": ["a", "b"]}
    flag = {"kind": "boolean"}
    # a name that usually holds the outcome wins over the only boolean column
    assert propose_target(contract({"smoker": flag, "annual_income": cat, "city": cat})) == "annual_income"
    assert propose_target(contract({"smoker": flag, "city": cat})) == "smoker"  # the only yes/no column
    assert propose_target(contract({"smoker": flag, "insured": flag, "city": cat})) is None
    # an excluded or numeric column is never proposed
    assert propose_target(contract({"label": {"kind": "pii"}, "x": {"kind": "integer", "min": 0, "max": 9}})) is None
