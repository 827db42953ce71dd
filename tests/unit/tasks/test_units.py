"""The unit of privacy per person: one row per person, chosen by that person's rows and a secret key."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthgate.errors import InputError
from synthgate.tasks.units import one_row_per_unit
from synthgate.validation.contract import parse_contract


def _longitudinal(n_people: int, seed: int) -> pl.DataFrame:
    """Up to 5 visits per person, each with its own age and score (generated, seeded)."""
    rng = np.random.default_rng(seed)
    visits = rng.integers(1, 6, size=n_people)
    pid = np.repeat(np.arange(n_people), visits)
    return pl.DataFrame(
        {
            "patient_id": [f"p{i:05d}" for i in pid],
            "age": rng.integers(18, 90, size=len(pid)),
            "score": rng.normal(size=len(pid)).round(3),
        }
    )


def _rows(df: pl.DataFrame) -> set[tuple[object, ...]]:
    return set(df.iter_rows())


def test_one_row_per_person_each_one_of_their_own() -> None:
    df = _longitudinal(400, seed=1)
    kept = one_row_per_unit(df, "patient_id", key=12345)
    assert kept.height == df["patient_id"].n_unique() == 400
    assert kept["patient_id"].n_unique() == kept.height
    assert _rows(kept) <= _rows(df)  # every kept row is a real row of that person


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_adding_or_removing_one_person_changes_exactly_one_kept_row(where: str) -> None:
    """The stability the DP argument needs: neighbouring tables (one person more) give reduced
    tables that differ by one row, wherever that person's rows sit in the source."""
    df = _longitudinal(300, seed=2)
    newcomer = pl.DataFrame({"patient_id": ["zz"] * 4, "age": [30, 31, 32, 33], "score": [0.1, 0.2, 0.3, 0.4]})
    at = {"first": 0, "middle": df.height // 2, "last": df.height}[where]
    bigger = pl.concat([df[:at], newcomer, df[at:]])
    key = 987654321
    small, large = (
        _rows(one_row_per_unit(df, "patient_id", key=key)),
        _rows(one_row_per_unit(bigger, "patient_id", key=key)),
    )
    assert small <= large and len(large - small) == 1
    (extra,) = large - small
    assert extra[0] == "zz"


def test_the_choice_depends_on_the_key_not_on_row_order() -> None:
    df = _longitudinal(200, seed=3)
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=9)
    assert _rows(one_row_per_unit(df, "patient_id", key=7)) == _rows(one_row_per_unit(shuffled, "patient_id", key=7))
    # Another key picks other visits: over 200 keys, a person with two distinct rows sees both
    # chosen (each with probability 1/2; P(one side < 60 of 200) < 1e-8).
    two = pl.DataFrame({"patient_id": ["a", "a"], "age": [40, 41], "score": [1.0, 2.0]})
    ages = [one_row_per_unit(two, "patient_id", key=k)["age"][0] for k in range(200)]
    assert 60 <= ages.count(40) <= 140


def test_bad_unit_columns_are_refused_with_the_fix() -> None:
    df = _longitudinal(10, seed=4)
    with pytest.raises(InputError, match="'pid' is not in the rows read"):
        one_row_per_unit(df, "pid", key=1)
    with pytest.raises(InputError, match="holds nulls"):
        one_row_per_unit(df.with_columns(pl.lit(None, dtype=pl.String).alias("patient_id")), "patient_id", key=1)


def _contract(unit_spec: dict[str, object], unit: str = "patient_id") -> dict[str, object]:
    return {
        "table": "visits",
        "unit": unit,
        "columns": {"patient_id": unit_spec, "age": {"kind": "integer", "min": 0, "max": 120}},
        "privacy": {"epsilon": 1.0, "delta": 1e-6},
    }


def test_the_contract_states_the_unit() -> None:
    with_unit = parse_contract(_contract({"kind": "identifier"}))
    assert "one person" in with_unit.privacy_unit and "'patient_id'" in with_unit.privacy_unit
    without = parse_contract({**_contract({"kind": "identifier"}), "unit": None})
    assert "one row of the source table" in without.privacy_unit
    with pytest.raises(ValueError, match="must name an identifier or pii column"):
        parse_contract(_contract({"kind": "integer", "min": 0, "max": 9}))
    with pytest.raises(ValueError, match="must name an identifier or pii column"):
        parse_contract(_contract({"kind": "identifier"}, unit="nope"))
    with pytest.raises(ValueError, match="declared nullable"):
        parse_contract(_contract({"kind": "identifier", "nullable": True}))
