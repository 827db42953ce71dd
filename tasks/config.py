"""RunConfig: the one parameter of the release flow (pydantic, frozen, unknown keys are errors)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from synthgate.errors import ContractError
from synthgate.validation.contract import MAX_EPSILON, check_table_name, read_yaml_file

MAX_EPOCHS = 10_000.0  # passes over the data; a finite plan is what the ledger and the budget need
MAX_QUERY_CHARS = 100_000


def check_source_query(query: str) -> str:
    """``source.query`` must be exactly one read-only SELECT, judged by DuckDB's own parser.

    COPY, ATTACH, INSTALL/LOAD, PRAGMA, SET, CALL, CREATE, INSERT, EXPORT, EXPLAIN and every other
    statement type are refused, as are several statements. What a SELECT could still reach (table
    functions reading files or URLs, extensions) is shut off on the connection that runs it
    (``tasks.ingest``: external access off, no extension loading, configuration locked, read-only).
    """
    import duckdb

    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"source.query is {len(query)} characters long; at most {MAX_QUERY_CHARS}.")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"source.query does not parse ({first}). Give one SELECT statement.") from None
    if len(statements) != 1:
        raise ValueError(
            f"source.query must be exactly one SELECT statement; it holds {len(statements)}. "
            "Remove the others (no `;`-separated statements)."
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ValueError(
            f"source.query must be a read-only SELECT; it is a {kind.name} statement. Only SELECT (or "
            "WITH ... SELECT / FROM ...) queries are run on the private table."
        )
    return query


_PG_NAME = r"^[A-Za-z0-9_.\-]{1,63}$"  # a database or role name: no quote, space, `=` or control character
_PG_ENV = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class PostgresSource(BaseModel):
    """A PostgreSQL table or query, read in one read-only transaction (``tasks.postgres``).

    Connection: ``dsn`` (a libpq URI or key=value string), or ``host``/``port``/``dbname``/``user``;
    unset ones fall back to libpq's own (``PGHOST``, ``~/.pgpass``, ...). A password never belongs
    in the run config: give the name of an environment variable holding it (``password_env``), or
    use ``~/.pgpass``. A ``dsn`` is kept secret all the same (``SecretStr``: shown as ``**********``
    in reports, the registry and Prefect's parameters), in case it carries one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    dsn: SecretStr | None = Field(None, description="libpq connection string or URI; kept secret.")
    host: str | None = Field(None, max_length=255, description="Host name, address, or a unix socket folder.")
    port: int | None = Field(None, ge=1, le=65_535)
    dbname: str | None = Field(None, pattern=_PG_NAME, description="Database name.")
    user: str | None = Field(None, pattern=_PG_NAME, description="Role to connect as (give it SELECT only).")
    password_env: str | None = Field(None, pattern=_PG_ENV, description="Environment variable holding the password.")
    schema_name: str | None = Field(None, alias="schema", description="Schema of table (default: the search path).")
    table: str | None = Field(None, description="Table or view name; quoted, never pasted as SQL.")
    query: str | None = Field(None, description="One read-only SELECT, checked before connecting.")
    connect_timeout: int = Field(10, ge=1, le=600, description="Seconds to wait for the server.")

    @field_validator("query")
    @classmethod
    def _select_only(cls, v: str | None) -> str | None:
        return None if v is None else check_source_query(v)

    @field_validator("table", "schema_name")
    @classmethod
    def _table_name(cls, v: str | None) -> str | None:
        return None if v is None else check_table_name(v, what="source.postgres.table/schema")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c in v for c in " '\"=") or not v.isprintable()):
            raise ValueError(
                "source.postgres.host must be a host name, an address or a socket folder "
                "(no spaces, quotes, `=` or control characters)."
            )
        return v

    @model_validator(mode="after")
    def _one(self) -> PostgresSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("source.postgres needs exactly one of table or query.")
        if self.schema_name is not None and self.table is None:
            raise ValueError("source.postgres.schema goes with table; a query names its own schemas.")
        parts = [k for k in ("host", "port", "dbname", "user", "password_env") if getattr(self, k) is not None]
        if self.dsn is not None and parts:
            raise ValueError(f"source.postgres takes dsn or {parts}, not both. Put everything in one of them.")
        if self.dsn is None and self.dbname is None:
            raise ValueError(
                "source.postgres needs dsn, or dbname (with host, port and user where libpq's defaults do not fit)."
            )
        return self


class SourceConfig(BaseModel):
    """Where the private table comes from: exactly one of table (with db), query (with db), path,
    postgres."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db: Path | None = Field(None, description="DuckDB file holding the table (for table/query).")
    table: str | None = Field(None, description="Table name in db; quoted, never pasted as SQL.")
    query: str | None = Field(None, description="A read-only SELECT run against db.")
    path: Path | None = Field(None, description="A CSV or Parquet file read through DuckDB.")
    postgres: PostgresSource | None = Field(None, description="A PostgreSQL table or query, read read-only.")

    @field_validator("query")
    @classmethod
    def _select_only(cls, v: str | None) -> str | None:
        return None if v is None else check_source_query(v)

    @field_validator("table")
    @classmethod
    def _table_name(cls, v: str | None) -> str | None:
        return None if v is None else check_table_name(v, what="source.table")

    @model_validator(mode="after")
    def _one(self) -> SourceConfig:
        given = [k for k in ("table", "query", "path", "postgres") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"source needs exactly one of table, query, path or postgres. Got {given or 'none'}.")
        if self.postgres is not None and self.db is not None:
            raise ValueError("source.db is a DuckDB file; a postgres source names its database in source.postgres.")
        if (self.table or self.query) and self.db is None:
            raise ValueError("source.table and source.query need source.db (a DuckDB file).")
        return self


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contract: Path
    source: SourceConfig
    out: Path = Path("out")
    output_table: str | None = Field(None, description="Default: <contract table>_synthetic.")
    epochs: float | None = Field(
        None,
        gt=0,
        le=MAX_EPOCHS,
        allow_inf_nan=False,
        description="Default: the contract's model_options, else the model's.",
    )
    epsilon: float | None = Field(
        None,
        gt=0,
        le=MAX_EPSILON,
        allow_inf_nan=False,
        description="ε to spend in this run; at most the contract's budget.",
    )
    device: str = Field("auto", max_length=64)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    holdout_fraction: float = Field(1 / 3, gt=0, lt=1)
    n_synthetic: int | None = Field(
        None,
        ge=1,
        le=1_000_000_000,
        description="Rows to sample (published, so a public number). Default: the codec's DP estimate of the "
        "training row count, never the exact count.",
    )
    batch_size: int | None = Field(
        None, ge=2, le=10_000_000, description="Default: the contract's model_options, else the model's."
    )
    show_progress: bool = True
    registry: Path | None = Field(
        None,
        description="Release registry (DuckDB) keeping every run and each table's spent budget. "
        "Default: <out>/registry.duckdb. Point every run on a table at the same file.",
    )
    owner_reports: Path | None = Field(
        None,
        description="Owner-only folder (mode 0700, files 0600) for the data owner's evaluation reports, "
        "which hold every figure computed on private rows; never inside a release folder. Default: <out>/owner.",
    )
    checkpoint_every: float | None = Field(
        1.0,
        gt=0,
        le=MAX_EPOCHS,
        allow_inf_nan=False,
        description="Save the training state every this many epochs (resume after a kill); None: never.",
    )
    lock_timeout_s: float = Field(
        120.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="How long to wait for another run holding the output or registry DuckDB file.",
    )
    resume: str | None = Field(
        None, description="Run id of a killed or failed run to continue (`synthgate resume RUN_ID`)."
    )
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where the checks and shadow models run: a thread pool, or Dask (synthgate[cluster])."
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster (tcp://host:8786); None starts a local one."
    )
    workers: int = Field(2, ge=1, le=256, description="Threads, or local Dask worker processes, for concurrent tasks.")
    max_rows: int = Field(
        1_000_000,
        ge=10,
        le=1_000_000_000,
        description="Largest source loaded whole. A larger one is streamed in batches: every "
        "row validated and fingerprinted, an independent random sample of about max_rows rows kept for training "
        'and the checks (README, "Large tables").',
    )
    batch_rows: int = Field(
        500_000, ge=1, le=100_000_000, description="Rows per batch when a large source is streamed."
    )
    evaluation_rows: int = Field(
        50_000,
        ge=100,
        le=10_000_000,
        description="The privacy and fidelity checks score at most this many train, holdout and "
        "synthetic rows each (seeded uniform subsamples; the nearest-neighbour checks cost rows x rows).",
    )

    @field_validator("output_table")
    @classmethod
    def _output_name(cls, v: str | None) -> str | None:
        return None if v is None else check_table_name(v, what="output_table")

    @property
    def output_db(self) -> Path:
        return self.out / "synthgate.duckdb"

    @property
    def registry_path(self) -> Path:
        return self.registry if self.registry is not None else self.out / "registry.duckdb"

    @property
    def owner_reports_path(self) -> Path:
        return self.owner_reports if self.owner_reports is not None else self.out / "owner"


def load_run_config(path: str | os.PathLike[str], **overrides: object) -> RunConfig:
    """Read a YAML run config; relative paths in it are relative to the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise ContractError(f"run config {str(p)!r} does not exist. Pass an existing YAML file.")
    data = read_yaml_file(p, what="run config") or {}
    if not isinstance(data, dict):
        raise ContractError(f"{p} must be a YAML mapping (contract, source, out, ...).")
    base = p.parent
    for key in ("contract", "out", "registry", "owner_reports"):
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str(base / data[key])
    src = data.get("source") or {}
    for key in ("db", "path"):
        if isinstance(src, dict) and isinstance(src.get(key), str) and src[key] and not Path(src[key]).is_absolute():
            src[key] = str(base / src[key])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        lines = "\n".join(f"  - {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ContractError(f"{p} is not a valid run config:\n{lines}") from None
