"""A PostgreSQL source (``source: {postgres: ...}``), read in one read-only transaction.

The same rules as the DuckDB source (``tasks.ingest``): a table name is quoted (``quote_ident``:
embedded quotes doubled), never pasted; a query must be exactly one SELECT (``check_source_query``,
checked when the config is read, before any connection) and is run as a subquery; only the
contract's columns are selected. On the server side the transaction is ``READ ONLY`` (no INSERT,
UPDATE, DELETE, DDL or sequence change can succeed in it), and the session's
``default_transaction_read_only`` is on as well. Grant the role SELECT on the source only: a read-only
transaction still lets a superuser call file-reading functions.

No password reaches a log, a report or an error: the config holds either the name of an environment
variable (``password_env``) or a ``dsn`` kept as a secret, and every error raised here names the
failure's type and the server's own message with the connection string removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl

from synthgate.errors import InputError
from synthgate.tasks.config import PostgresSource, check_source_query

__all__ = ["count_postgres_rows", "postgres_batches", "read_postgres"]

# A redacted dsn (SecretStr dumped into a run record): a resumed run cannot connect with it.
_REDACTED = "**********"


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted: embedded quotes doubled, so no name can inject SQL."""
    return '"' + name.replace('"', '""') + '"'


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # a URI's user:password@ part, wherever a driver might echo it
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)


def _error(what: str, err: BaseException, source: PostgresSource) -> InputError:
    secrets = [source.dsn.get_secret_value()] if source.dsn is not None else []
    if source.password_env:
        secrets.append(os.environ.get(source.password_env, ""))
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    detail = f": {_scrub(first, secrets)}" if first else ""
    return InputError(f"{what} ({type(err).__name__}{detail}). Check source.postgres in the run config.")


def _connect_args(source: PostgresSource) -> dict[str, Any]:
    if source.dsn is not None:
        dsn = source.dsn.get_secret_value()
        if dsn == _REDACTED:
            raise InputError(
                "source.postgres.dsn was kept secret in the run record, so this run cannot reconnect with it. "
                "Give host/port/dbname/user (and password_env) instead of dsn, or start a new run."
            )
        return {"conninfo": dsn}
    args: dict[str, Any] = {
        k: getattr(source, k) for k in ("host", "port", "dbname", "user") if getattr(source, k) is not None
    }
    if source.password_env is not None:
        password = os.environ.get(source.password_env)
        if password is None:
            raise InputError(
                f"source.postgres.password_env names {source.password_env!r}, which is not set. "
                "Export it (the password itself never goes in the run config)."
            )
        args["password"] = password
    return args


@contextmanager
def _read_only(source: PostgresSource) -> Iterator[Any]:
    """A connection inside one READ ONLY transaction, rolled back at the end."""
    import psycopg

    try:
        con = psycopg.connect(
            **_connect_args(source),
            connect_timeout=source.connect_timeout,
            options="-c default_transaction_read_only=on",
            application_name="synthgate",
        )
    except psycopg.Error as err:
        raise _error("could not connect to the PostgreSQL source", err, source) from None
    try:
        con.read_only = True  # BEGIN READ ONLY on the first statement
        with con.transaction(force_rollback=True):
            yield con
    finally:
        con.close()


def _relation(con: Any, source: PostgresSource, columns: list[str] | None) -> tuple[str, list[str]]:
    """``SELECT <the contract's columns that exist> FROM <source>``, and those columns."""
    import psycopg

    if source.table is not None:
        schema = source.schema_name
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name = %s AND (%s::text IS NULL AND table_schema = ANY(current_schemas(false)) "
            "OR table_schema = %s) ORDER BY array_position(current_schemas(false), table_schema::name) LIMIT 1",
            (source.table, schema, schema),
        ).fetchall()
        if not rows:
            where = f"schema {schema!r}" if schema else "the search path"
            names = con.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 50"
            ).fetchall()
            raise InputError(
                f"table {source.table!r} is not in {where} of the PostgreSQL source. "
                f"Tables there: {[n[0] for n in names]}."
            )
        base = f"{quote_ident(rows[0][0])}.{quote_ident(rows[0][1])}"
    else:
        check_source_query(str(source.query))  # again here: a PostgresSource can be built without validation
        base = f"({source.query}) AS synthgate_source"
    try:
        cur = con.execute(f"SELECT * FROM {base} LIMIT 0")
    except psycopg.Error as err:
        raise _error("source.postgres could not be read", err, source) from None
    present = [d.name for d in cur.description or []]
    keep = present if columns is None else [c for c in columns if c in present]
    select = ", ".join(quote_ident(c) for c in keep) if keep else "*"
    return f"SELECT {select} FROM {base}", keep or present


def _frame(rows: list[tuple[Any, ...]], names: list[str]) -> pl.DataFrame:
    from decimal import Decimal

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = {}
    for name, values in zip(names, columns, strict=True):
        if any(isinstance(v, Decimal) for v in values):  # numeric(p, s): a float, as DuckDB reads it
            values = tuple(None if v is None else float(v) for v in values)
        data[name] = pl.Series(name, list(values), strict=False)
    return pl.DataFrame(data)


def read_postgres(source: PostgresSource, columns: list[str] | None = None) -> pl.DataFrame:
    """The whole source as a polars frame; with ``columns``, only those of them that exist."""
    return pl.concat(list(postgres_batches(source, columns, batch_rows=100_000)), how="vertical_relaxed")


def postgres_batches(source: PostgresSource, columns: list[str] | None, *, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The source in frames of at most ``batch_rows`` rows (a server-side cursor: memory holds one
    batch); at least one frame, empty when the source is."""
    import psycopg

    with _read_only(source) as con:
        sql, names = _relation(con, source, columns)
        try:
            with con.cursor(name="synthgate_read") as cur:
                cur.execute(sql)
                emitted = False
                while True:
                    rows = cur.fetchmany(batch_rows)
                    if not rows:
                        break
                    emitted = True
                    yield _frame(rows, names)
                if not emitted:
                    yield _frame([], names)
        except psycopg.Error as err:
            raise _error("reading the PostgreSQL source failed", err, source) from None


def count_postgres_rows(source: PostgresSource) -> int:
    """How many rows the source has (counted by the server)."""
    import psycopg

    with _read_only(source) as con:
        sql, _ = _relation(con, source, None)
        try:
            return int(con.execute(f"SELECT count(*) FROM ({sql}) AS synthgate_count").fetchone()[0])
        except psycopg.Error as err:
            raise _error("counting the PostgreSQL source's rows failed", err, source) from None
