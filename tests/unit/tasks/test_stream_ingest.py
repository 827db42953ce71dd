"""Streamed ingestion of sources larger than ``max_rows``: batches, merged validation, keyed
fingerprint, Bernoulli sample (tasks/ingest.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from synthgate.errors import ContractViolation
from synthgate.flows.config import SourceConfig
from synthgate.governance.registry import Registry
from synthgate.tasks.evaluate import evaluation_subsample
from synthgate.tasks.ingest import count_source_rows, read_source, sample_large_table, stream_source
from synthgate.validation.contract import Contract
from synthgate.validation.expectations import merge_reports, validate_frame


@pytest.fixture()
def parquet(tmp_path: Path, adult: pl.DataFrame) -> Path:
    path = tmp_path / "adult.parquet"
    adult.head(3000).write_parquet(path)
    return path


def test_batches_concatenate_to_the_whole_read(parquet: Path, adult_contract: Contract) -> None:
    source = SourceConfig(path=parquet)
    batches = list(stream_source(source, adult_contract, batch_rows=700))
    assert [b.height for b in batches[:-1]] == [700] * (len(batches) - 1) and sum(b.height for b in batches) == 3000
    whole = read_source(source, columns=list(adult_contract.columns))
    assert pl.concat(batches).equals(whole)
    assert count_source_rows(source) == 3000


def test_a_duckdb_table_streams_in_its_order(tmp_path: Path, adult: pl.DataFrame, adult_contract: Contract) -> None:
    db = tmp_path / "src.duckdb"
    frame = adult.head(1000)
    with duckdb.connect(str(db)) as con:
        con.execute('CREATE TABLE "we;ird ""name" AS SELECT * FROM frame')
    source = SourceConfig(db=db, table='we;ird "name')
    assert count_source_rows(source) == 1000
    assert pl.concat(list(stream_source(source, adult_contract, batch_rows=300))).equals(frame)


def test_merged_validation_counts_bad_rows_across_batches(adult: pl.DataFrame, adult_contract: Contract) -> None:
    frame = adult.head(900).with_columns(
        pl.when(pl.int_range(pl.len()).is_in([5, 450, 899])).then(200).otherwise(pl.col("age")).alias("age")
    )
    whole = validate_frame(frame, adult_contract)
    merged = merge_reports(validate_frame(frame.slice(i, 300), adult_contract) for i in range(0, 900, 300))
    assert not merged.success and merged.n_rows == 900
    assert (
        [(f.column, f.expectation, f.unexpected_count) for f in merged.failures]
        == [(f.column, f.expectation, f.unexpected_count) for f in whole.failures]
        == [("age", "expect_column_values_to_be_between", 3)]
    )
    empty = merge_reports([])
    assert not empty.success and empty.failures[0].expectation == "expect_table_row_count_to_be_between"


def test_the_stream_fingerprint_is_keyed_and_ignores_batch_boundaries(tmp_path: Path, adult: pl.DataFrame) -> None:
    frame = adult.head(1000)

    def digest(registry: Registry, sizes: int, data: pl.DataFrame = frame) -> str:
        fp = registry.stream_fingerprint()
        for i in range(0, data.height, sizes):
            fp.update(data.slice(i, sizes))
        return fp.hexdigest()

    reg = Registry(tmp_path / "a" / "registry.duckdb")
    assert digest(reg, 100) == digest(reg, 333) and digest(reg, 100).startswith("hmac-sha256/stream:")
    changed = frame.with_columns(pl.when(pl.int_range(pl.len()) == 999).then(91).otherwise(pl.col("age")).alias("age"))
    assert digest(reg, 100, changed) != digest(reg, 100)
    assert digest(Registry(tmp_path / "b" / "registry.duckdb"), 100) != digest(reg, 100)  # another key


@pytest.mark.statistical
def test_the_sample_keeps_each_row_with_the_fraction_and_repeats_with_its_entropy(
    tmp_path: Path, parquet: Path, adult_contract: Contract
) -> None:
    reg = Registry(tmp_path / "registry.duckdb")
    run = sample_large_table.fn
    a = run(SourceConfig(path=parquet), adult_contract, reg, fraction=0.25, entropy=11, batch_rows=400)
    b = run(SourceConfig(path=parquet), adult_contract, reg, fraction=0.25, entropy=11, batch_rows=400)
    c = run(SourceConfig(path=parquet), adult_contract, reg, fraction=0.25, entropy=12, batch_rows=400)
    assert a.n_rows == 3000 and a.validation.success and a.validation.n_rows == 3000
    # Binomial(3000, 0.25): mean 750, sd 23.7; ±5 sd
    assert abs(a.sample.height - 750) < 5 * 23.7
    assert a.sample.equals(b.sample) and not a.sample.equals(c.sample)
    assert a.fingerprint == c.fingerprint  # the fingerprint covers every row, not the sample
    assert a.sample.columns == list(adult_contract.columns)


def test_a_bad_row_outside_the_sample_still_refuses_the_run(
    tmp_path: Path, adult: pl.DataFrame, adult_contract: Contract
) -> None:
    path = tmp_path / "bad.parquet"
    bad = adult.head(2000).with_columns(
        pl.when(pl.int_range(pl.len()) == 1999).then(-4).otherwise(pl.col("age")).alias("age")
    )
    bad.write_parquet(path)
    with pytest.raises(ContractViolation, match=r"age .*expect_column_values_to_be_between \| 1") as err:
        sample_large_table.fn(
            SourceConfig(path=path),
            adult_contract,
            Registry(tmp_path / "r.duckdb"),
            fraction=0.01,
            entropy=5,
            batch_rows=500,
        )
    assert err.value.report.n_rows == 2000 and "-4" not in str(err.value)


def test_evaluation_subsample_caps_each_set_and_is_seeded(adult: pl.DataFrame) -> None:
    indexed = adult.with_row_index("i")
    a, b, c = indexed.head(5000), indexed.slice(5000, 300), indexed.slice(6000, 4000)
    x = evaluation_subsample.fn(a, b, c, max_rows=1000, seed=3)
    y = evaluation_subsample.fn(a, b, c, max_rows=1000, seed=3)
    assert [f.height for f in x] == [1000, 300, 1000] and x[1] is b
    assert all(p.equals(q) for p, q in zip(x, y, strict=True))
    for sub, full in ((x[0], a), (x[2], c)):  # distinct rows of the set, in its order
        idx = sub["i"]
        assert idx.is_sorted() and idx.n_unique() == 1000 and idx.is_in(full["i"].implode()).all()
    assert not evaluation_subsample.fn(a, b, c, max_rows=1000, seed=4)[0].equals(x[0])
