"""The holdout split is stable under adding or removing one source row (issue 18, item 1).

The unit of privacy is one row of the source table. The training set is what DP-SGD's (ε, δ) covers,
so the split must turn neighbouring source tables into neighbouring training sets: adding or removing
one row anywhere may change the training set by at most that row. A permutation of range(n) under the
public seed moved about a third of all training rows when one row was added at the front.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import polars as pl
import pytest
from scipy import stats

from synthgate.errors import InputError
from synthgate.tasks.split import holdout_coins, split_holdout

KEY = 987_654_321
FRACTION = 1 / 3


def _rows(df: pl.DataFrame) -> Counter:
    """The table as a multiset of rows (order does not matter to the training set)."""
    return Counter(df.iter_rows())


def _table(n: int, seed: int, *, duplicates: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    if duplicates:  # few distinct rows, each many times
        return pl.DataFrame({"a": rng.integers(0, 3, n), "b": rng.choice(["x", "y"], n)})
    return pl.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50_000, 10_000, n).round(2),
            "city": rng.choice(["a", "b", "c", None], n),
        }
    )


def _changed(a: pl.DataFrame, b: pl.DataFrame) -> int:
    """How many rows differ between two training sets, as multisets: |A - B| + |B - A|."""
    ra, rb = _rows(a), _rows(b)
    return sum((ra - rb).values()) + sum((rb - ra).values())


@pytest.mark.parametrize("duplicates", [False, True], ids=["distinct-rows", "many-duplicates"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_adding_or_removing_one_row_changes_at_most_one_training_row(where: str, duplicates: bool) -> None:
    base = _table(3000, seed=1, duplicates=duplicates)
    # the extra row: a copy of an existing row under duplicates (the hard case), else a new row
    extra = base[17] if duplicates else _table(1, seed=2)
    at = {"first": 0, "middle": base.height // 2, "last": base.height}[where]
    larger = pl.concat([base[:at], extra, base[at:]], how="vertical")
    smaller = base.filter(pl.int_range(pl.len()) != at if at < base.height else pl.int_range(pl.len()) != at - 1)

    train, _ = split_holdout.fn(base, fraction=FRACTION, key=KEY)
    train_larger, _ = split_holdout.fn(larger, fraction=FRACTION, key=KEY)
    train_smaller, _ = split_holdout.fn(smaller, fraction=FRACTION, key=KEY)
    assert _changed(train, train_larger) <= 1
    assert _changed(train, train_smaller) <= 1


def test_the_split_keeps_row_order_and_covers_every_row_once() -> None:
    df = _table(500, seed=3).with_row_index("i")
    train, holdout = split_holdout.fn(df, fraction=FRACTION, key=KEY)
    assert train["i"].is_sorted() and holdout["i"].is_sorted()
    assert sorted([*train["i"], *holdout["i"]]) == list(range(500))


@pytest.mark.parametrize("duplicates", [False, True], ids=["distinct-rows", "many-duplicates"])
def test_each_row_goes_to_the_holdout_with_the_fraction(duplicates: bool) -> None:
    """The coins are Bernoulli(fraction), identical rows included (they get independent coins): the
    holdout size is within a two-sided binomial test at level 1e-4 of n·fraction."""
    n = 30_000
    df = _table(n, seed=4, duplicates=duplicates)
    for key in (1, 2, 3):
        k = int(holdout_coins(df, fraction=FRACTION, key=key).sum())
        assert stats.binomtest(k, n, FRACTION).pvalue > 1e-4, (key, k)
    if duplicates:  # every distinct value is on both sides, in about the same proportion
        coins = pl.Series("hold", holdout_coins(df, fraction=FRACTION, key=KEY))
        shares = df.with_columns(coins).group_by("a", "b").agg(pl.col("hold").mean(), pl.len())
        for share, count in shares.select("hold", "len").iter_rows():
            assert stats.binomtest(round(share * count), count, FRACTION).pvalue > 1e-4


def test_the_key_decides_the_split_and_a_resumed_key_repeats_it() -> None:
    df = _table(1000, seed=5)
    a = holdout_coins(df, fraction=FRACTION, key=KEY)
    assert np.array_equal(a, holdout_coins(df, fraction=FRACTION, key=KEY))
    b = holdout_coins(df, fraction=FRACTION, key=KEY + 1)
    # independent splits agree on a row with probability f² + (1-f)² = 5/9
    assert 0.5 < (a == b).mean() < 0.62


def test_a_too_small_split_is_refused_without_a_row_count() -> None:
    one = _table(1, seed=6)
    with pytest.raises(InputError, match="sizes are random") as err:
        split_holdout.fn(one, fraction=0.5, key=KEY)
    assert not re.search(r"\b1\b", str(err.value)), str(err.value)  # the table's row count is private


@pytest.mark.parametrize("bad", [-1, 1.5, True, "7"])
def test_a_bad_key_is_refused_without_echoing_it(bad: object) -> None:
    with pytest.raises(ValueError, match="non-negative integer") as err:
        holdout_coins(_table(5, seed=7), fraction=0.5, key=bad)  # type: ignore[arg-type]
    assert str(bad) not in str(err.value)
