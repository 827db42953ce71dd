"""Ingestion: a DuckDB table, a SQL query, or a CSV/Parquet path, read through DuckDB into polars; or a
PostgreSQL table or query (``tasks.postgres``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from synthgate.errors import ContractViolation, InputError
from synthgate.governance.registry import Registry
from synthgate.tasks.config import SourceConfig, check_source_query
from synthgate.tasks.governance import is_transient
from synthgate.tasks.postgres import count_postgres_rows, postgres_batches, read_postgres
from synthgate.tasks.redaction import private_task
from synthgate.validation.contract import Contract
from synthgate.validation.dp_infer import apply_dp_domains
from synthgate.validation.expectations import (
    ValidationReport,
    conform_types,
    identifier_like_columns,
    merge_reports,
    validate_frame,
)
from synthgate.validation.pii import PiiScan

# Rows per streamed batch: a few hundred MB of Arrow for a wide table; great-expectations runs per batch.
DEFAULT_BATCH_ROWS = 500_000
# Domain separation: the sampling coins' stream differs from every model stream drawn from the same key.
_SAMPLING_STREAM = 0x53414D50


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted: embedded quotes doubled, so no name can inject SQL."""
    return '"' + name.replace('"', '""') + '"'


# The connection that reads private rows reaches nothing but its source: no file, URL or database
# other than the one named (COPY ... TO, read_csv('...'), ATTACH, httpfs), no extension installed or
# loaded, no Python object scanned by name, and no SET/PRAGMA can undo any of it.
_LOCKED_DOWN = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
}


def _lock_down(con: duckdb.DuckDBPyConnection, allowed_paths: list[str] | None = None) -> None:
    """Turn external access off on ``con`` (``allowed_paths``: the only files it may still read)."""
    if allowed_paths:
        con.execute(
            "SET allowed_paths = " + "[" + ", ".join("'" + a.replace("'", "''") + "'" for a in allowed_paths) + "]"
        )
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def private_connection(db: Path | None = None, *, allowed_paths: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for reading private rows: ``db`` read-only (or in-memory), locked down."""
    if db is None:
        con = duckdb.connect(config=dict(_LOCKED_DOWN))
    else:
        con = duckdb.connect(str(db), read_only=True, config=dict(_LOCKED_DOWN))
    try:
        _lock_down(con, allowed_paths)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def _source_relation(source: SourceConfig, columns: list[str] | None) -> Iterator[duckdb.DuckDBPyRelation]:
    """The source as a DuckDB relation (projected to ``columns`` that exist), open for the block."""
    if source.path is not None:
        p = Path(source.path)
        if not p.is_file():
            raise InputError(f"input file {str(p)!r} does not exist. Pass an existing CSV/Parquet.")
        suffix = p.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise InputError(f"input file {p.name!r} must end in .csv or .parquet. Got {suffix!r}.")
        with private_connection(allowed_paths=[str(p.resolve())]) as con:
            fn = "read_parquet" if suffix in (".parquet", ".pq") else "read_csv"
            yield _project(con.sql(f"SELECT * FROM {fn}($path)", params={"path": str(p.resolve())}), columns)
        return
    db = Path(source.db)  # type: ignore[arg-type]
    if not db.is_file():
        raise InputError(f"DuckDB file {str(db)!r} does not exist. Check source.db.")
    try:
        con = private_connection(db)
    except duckdb.IOException as err:
        if "lock" in str(err).lower():
            raise  # another process writes the file: transient, retried by type (is_transient)
        raise InputError(
            f"{db} could not be opened as a DuckDB database ({type(err).__name__}). Check source.db."
        ) from None
    except duckdb.Error as err:
        raise InputError(
            f"{db} could not be opened as a DuckDB database ({type(err).__name__}). Check source.db."
        ) from None
    with con:
        if source.table is not None:
            tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            tables |= {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
            if source.table not in tables:
                raise InputError(f"table {source.table!r} is not in {db}. Tables there: {sorted(tables)}.")
            try:
                relation = con.sql(f"SELECT * FROM {quote_ident(source.table)}")
            except duckdb.PermissionException:
                raise InputError(
                    f"{source.table!r} in {db} is a view that reaches a file, URL or extension outside the "
                    "database; external access is off for private reads. Materialise it as a table."
                ) from None
            yield _project(relation, columns)
            return
        check_source_query(str(source.query))  # again here: a SourceConfig can be built without validation
        try:
            relation = con.sql(str(source.query))
        except duckdb.PermissionException:
            raise InputError(
                f"source.query in {db} tried to reach a file, URL, database or extension outside the source "
                "(external access is off for private reads). Query only the tables in source.db."
            ) from None
        except duckdb.Error as err:
            raise InputError(f"source.query failed in {db}: {type(err).__name__}") from None
        yield _project(relation, columns)


def read_source(source: SourceConfig, columns: list[str] | None = None) -> pl.DataFrame:
    """The source as a polars frame; with ``columns``, only those of them that exist.

    Projection happens in DuckDB (``SELECT "a", "b" FROM ...``), so columns the contract does not
    name are never read: on Parquet and DuckDB tables they are not even decoded. A PostgreSQL
    source (``tasks.postgres``) selects them in one read-only transaction.
    """
    if source.postgres is not None:
        return read_postgres(source.postgres, columns)
    with _source_relation(source, columns) as relation:
        try:
            return relation.pl()
        except duckdb.Error as err:
            raise InputError(f"reading the source failed: {type(err).__name__}") from None


def count_source_rows(source: SourceConfig) -> int:
    """How many rows the source has (DuckDB counts them; Parquet from its metadata; PostgreSQL counts)."""
    if source.postgres is not None:
        return count_postgres_rows(source.postgres)
    with _source_relation(source, None) as relation:
        try:
            return int(relation.aggregate("count(*)").fetchall()[0][0])
        except duckdb.Error as err:
            raise InputError(f"counting the source's rows failed: {type(err).__name__}") from None


def stream_source(
    source: SourceConfig, contract: Contract, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pl.DataFrame]:
    """The source in prepared batches of at most ``batch_rows`` rows, in the source's order.

    DuckDB streams the scan (``to_arrow_reader``), so memory holds one batch at a time whatever the
    table's size. Each batch is ``prepare_frame``d like a whole-table read.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1. Got {batch_rows}.")
    if source.postgres is not None:  # a server-side cursor, one batch in memory
        for frame in postgres_batches(source.postgres, list(contract.columns), batch_rows=batch_rows):
            if frame.height:
                yield prepare_frame(frame, contract)
        return
    with _source_relation(source, list(contract.columns)) as relation:
        try:
            reader = relation.to_arrow_reader(batch_rows)
            for batch in reader:
                if batch.num_rows:
                    yield prepare_frame(pl.from_arrow(batch), contract)  # type: ignore[arg-type]
        except duckdb.Error as err:
            raise InputError(f"reading the source failed: {type(err).__name__}") from None


def _project(relation: duckdb.DuckDBPyRelation, columns: list[str] | None) -> duckdb.DuckDBPyRelation:
    if columns is None:
        return relation
    present = [c for c in columns if c in relation.columns]
    return relation.select(*[duckdb.ColumnExpression(c) for c in present]) if present else relation


def prepare_frame(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Keep the contract's columns; contract.missing_values in text columns become null; each column
    in its kind's physical type where that is lossless (Date → Datetime, 0/1 → Boolean,
    ``validation.expectations.conform_types``); validation reports what still does not fit."""
    present = [c for c in contract.columns if c in df.columns]
    out = apply_dp_domains(df.select(present), contract)  # no-op unless the contract has dp_learned columns
    if contract.missing_values:
        out = out.with_columns(
            [
                pl.when(pl.col(c).is_in(contract.missing_values)).then(None).otherwise(pl.col(c)).alias(c)
                for c in present
                if out.schema[c] == pl.Utf8
            ]
        )
    return conform_types(out, contract)


@private_task(
    name="load_table",
    task_run_name="load the table",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=is_transient,
)
def load_table(source: SourceConfig, contract: Contract) -> pl.DataFrame:
    """Read the private table and keep only the contract's columns (extra columns are ignored).

    Retried twice on transient I/O errors (a source database locked by its writer, a network
    file system hiccup); never on bad input such as a missing file or table.
    """
    return prepare_frame(read_source(source, columns=list(contract.columns)), contract)


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy that owns only its own rows' bytes.

    polars' filter keeps string columns as views into the whole batch's buffers, so the sampled rows
    of every batch would pin every batch's text (measured: RSS grew with the table, 8 GiB at 30M rows).
    A round trip through classic Arrow strings copies just the kept strings.
    """
    return pl.from_arrow(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))  # type: ignore[return-value]


@dataclass(frozen=True)
class SampledTable:
    """A source too large to load, read once in batches: every row validated and fingerprinted,
    a Bernoulli sample kept in memory for training and the checks."""

    sample: pl.DataFrame
    n_rows: int
    fraction: float
    validation: ValidationReport
    fingerprint: str


@private_task(
    name="sample_large_table",
    task_run_name="stream, validate and sample the source",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=is_transient,
)
def sample_large_table(
    source: SourceConfig,
    contract: Contract,
    registry: Registry,
    *,
    fraction: float,
    entropy: int,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
    pii: PiiScan | None = None,
) -> SampledTable:
    """One streamed pass over a source larger than ``max_rows``: validate, fingerprint, sample.

    Each batch is validated with the contract's great-expectations suite (a bad row anywhere in the
    table refuses the run, sampled or not), fed to the keyed fingerprint, and thinned by independent
    Bernoulli(``fraction``) coins. The coins come from ``entropy``, a private value (never a report's
    seed): with secret coins drawn per row, adding or removing one row changes the sample by at most
    that row, so a DP guarantee of the training on the sample holds for the whole table. Memory holds
    one batch and the sample, whatever the table's size. ``progress`` gets each batch's row count;
    ``pii``, when given, scans every row's identifier/pii values (the PII gate covers the whole table).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]. Got {fraction!r}.")
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_SAMPLING_STREAM,)))
    reports: list[ValidationReport] = []
    kept: list[pl.DataFrame] = []
    fingerprint = registry.stream_fingerprint()
    n_rows = 0
    for batch in stream_source(source, contract, batch_rows=batch_rows):
        reports.append(validate_frame(batch, contract, identifiers=False))
        fingerprint.update(batch)
        if pii is not None:
            pii.update(batch)
        kept.append(_compact(batch.filter(pl.Series(rng.random(batch.height) < fraction))))
        n_rows += batch.height
        if progress is not None:
            progress(batch.height)
    sample = pl.concat(kept, how="vertical") if kept else pl.DataFrame()
    # Whole-table check, on the sample: an identifier in disguise is one value per row there too.
    disguised = identifier_like_columns(sample, contract)
    reports.append(ValidationReport(success=not disguised, n_rows=0, failures=disguised))
    validation = merge_reports(reports)
    if not validation.success:
        raise ContractViolation(validation)
    contract.privacy.check_delta(n_rows)
    return SampledTable(
        sample=sample, n_rows=n_rows, fraction=fraction, validation=validation, fingerprint=fingerprint.hexdigest()
    )
