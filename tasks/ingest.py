"""Ingestion: a DuckDB table, a SQL query, or a CSV/Parquet path, read through DuckDB into polars."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.config import SourceConfig
from tasks.governance import is_transient
from validation.contract import Contract


class InputError(ValueError):
    """The input table cannot be read as the contract describes it."""


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted: embedded quotes doubled, so no name can inject SQL."""
    return '"' + name.replace('"', '""') + '"'


def read_source(source: SourceConfig, columns: list[str] | None = None) -> pl.DataFrame:
    """The source as a polars frame; with ``columns``, only those of them that exist.

    Projection happens in DuckDB (``SELECT "a", "b" FROM ...``), so columns the contract does not
    name are never read: on Parquet and DuckDB tables they are not even decoded.
    """
    if source.path is not None:
        p = Path(source.path)
        if not p.is_file():
            raise InputError(f"input file {str(p)!r} does not exist. Pass an existing CSV/Parquet.")
        suffix = p.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise InputError(f"input file {p.name!r} must end in .csv or .parquet. Got {suffix!r}.")
        with duckdb.connect() as con:
            fn = "read_parquet" if suffix in (".parquet", ".pq") else "read_csv"
            relation = con.sql(f"SELECT * FROM {fn}($path)", params={"path": str(p)})
            return _project(relation, columns).pl()
    db = Path(source.db)  # type: ignore[arg-type]
    if not db.is_file():
        raise InputError(f"DuckDB file {str(db)!r} does not exist. Check source.db.")
    with duckdb.connect(str(db), read_only=True) as con:
        if source.table is not None:
            tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            tables |= {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
            if source.table not in tables:
                raise InputError(
                    f"table {source.table!r} is not in {db}. Tables there: {sorted(tables)}."
                )
            return _project(con.sql(f"SELECT * FROM {quote_ident(source.table)}"), columns).pl()
        try:
            return _project(con.sql(str(source.query)), columns).pl()
        except duckdb.Error as err:
            raise InputError(f"source.query failed in {db}: {type(err).__name__}") from None


def _project(relation: duckdb.DuckDBPyRelation, columns: list[str] | None) -> duckdb.DuckDBPyRelation:
    if columns is None:
        return relation
    present = [c for c in columns if c in relation.columns]
    return relation.select(*[duckdb.ColumnExpression(c) for c in present]) if present else relation


def prepare_frame(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Keep the contract's columns; contract.missing_values in text columns become null."""
    present = [c for c in contract.columns if c in df.columns]
    out = df.select(present)
    if contract.missing_values:
        out = out.with_columns(
            [
                pl.when(pl.col(c).is_in(contract.missing_values)).then(None).otherwise(pl.col(c)).alias(c)
                for c in present
                if out.schema[c] == pl.Utf8
            ]
        )
    return out


@task(name="load_table", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=10,
      retry_condition_fn=is_transient)
def load_table(source: SourceConfig, contract: Contract) -> pl.DataFrame:
    """Read the private table and keep only the contract's columns (extra columns are ignored).

    Retried twice on transient I/O errors (a source database locked by its writer, a network
    file system hiccup); never on bad input such as a missing file or table.
    """
    return prepare_frame(read_source(source, columns=list(contract.columns)), contract)
