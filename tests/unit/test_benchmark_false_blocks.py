"""benchmarks/false_blocks.py: how fresh real rows are cut from a table with several rows per unit."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import benchmarks.false_blocks as fb
from synthgate.validation.contract import parse_contract


@pytest.fixture
def two_rows_per_person(monkeypatch: pytest.MonkeyPatch) -> tuple[object, pl.DataFrame, pl.Series, dict]:
    rng = np.random.default_rng(0)
    person = np.repeat(np.arange(400), 2)
    frame = pl.DataFrame({"a": rng.random(800), "kind": np.tile([1, 2], 400)})
    contract = parse_contract(
        {
            "table": "t",
            "privacy": {"epsilon": 1.0, "delta": 1e-6},
            "columns": {
                "a": {"kind": "continuous", "min": 0.0, "max": 1.0},
                "kind": {"kind": "integer", "min": 1, "max": 2},
            },
        }
    )
    cuts: dict = {}

    def capture(
        train: pl.DataFrame, holdout: pl.DataFrame, fresh: pl.DataFrame, contract: object, *, seed: int
    ) -> dict:
        cuts.update(train=train, holdout=holdout, fresh=fresh)
        return {}

    monkeypatch.setattr(fb, "score", capture)
    return contract, frame, pl.Series("person", person), cuts


def test_cut_by_unit_keeps_each_person_on_one_side(two_rows_per_person: tuple) -> None:
    contract, frame, group, cuts = two_rows_per_person
    keyed = frame.with_columns(group)
    fb.one_repetition(contract, keyed.drop("person"), seed=1000, max_rows=10_000, group=group)
    sides = [set(keyed.join(cuts[k], on=["a", "kind"])["person"].to_list()) for k in ("train", "holdout", "fresh")]
    assert [len(s) for s in sides] == [200, 100, 100] and not (
        sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2]
    )
    assert (cuts["train"].height, cuts["fresh"].height) == (400, 200)  # both rows of every person


def test_one_row_per_unit_as_the_release_flow_with_unit_declared(two_rows_per_person: tuple) -> None:
    contract, frame, group, cuts = two_rows_per_person
    fb.one_repetition(contract, frame, seed=1000, max_rows=10_000, group=group, per_unit="one")
    kept = pl.concat([cuts[k] for k in ("train", "holdout", "fresh")])
    assert (cuts["train"].height, cuts["holdout"].height, cuts["fresh"].height) == (200, 100, 100)
    people = frame.with_columns(group).join(kept, on=["a", "kind"])["person"]
    assert people.n_unique() == 400 and kept.height == 400  # one row of each person, none twice
    first = cuts["fresh"]
    fb.one_repetition(contract, frame, seed=1000, max_rows=10_000, group=group, per_unit="one")
    assert cuts["fresh"].equals(first)  # seeded: the same cut for the same seed
    fb.one_repetition(contract, frame, seed=1001, max_rows=10_000, group=group, per_unit="one")
    assert not cuts["fresh"].equals(first)


def test_release_table_counts_blocks_by_fail_and_by_any_miss() -> None:
    """A release is blocked by default when any gate *fails*; with block_inconclusive also when one is
    inconclusive. Three repetitions: all pass; one inconclusive; one fail and one inconclusive."""

    def rep(**outcomes: str) -> dict:
        return {
            "rows": {"train": 10, "holdout": 5, "fresh": 5},
            "gates": {g: {"outcome": o} for g, o in outcomes.items()},
        }

    done = {
        "datasets": {
            "t": {
                "reps": [
                    rep(a="pass", b="pass"),
                    rep(a="inconclusive", b="pass"),
                    rep(a="inconclusive", b="fail"),
                ]
            }
        }
    }
    (row,) = fb.release_table(done).splitlines()[2:]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "t" and cells[1] == "10/5/5" and cells[2] == "3"
    assert cells[3].startswith("1/3 ") and cells[4] == "b" and cells[5].startswith("2/3 ")
