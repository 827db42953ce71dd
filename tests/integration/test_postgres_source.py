"""The PostgreSQL source (issue 22 item 5), against a real server this module starts.

initdb into a temporary folder, ``pg_ctl start`` on a free port with its unix socket in that folder
(no TCP listener), scram-sha-256 passwords. CI installs PostgreSQL (.ci/run); ``initdb`` is found on
PATH or under /usr/lib/postgresql/*/bin (Debian's layout). As root (a CI container) the server runs
as ``nobody``: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from pydantic import ValidationError

from synthgate.errors import InputError
from synthgate.tasks.config import RunConfig, SourceConfig
from synthgate.tasks.ingest import count_source_rows, read_source, stream_source
from synthgate.validation.contract import parse_contract

OWNER_PASSWORD = "owner-pw-4d1c"
READER_PASSWORD = "reader-pw-93fa7e"  # must never show up in an error, a dump or a repr
CONTRACT = parse_contract(
    {
        "table": "people",
        "columns": {
            "age": {"kind": "integer", "min": 17, "max": 90},
            "job": {"kind": "categorical", "categories": ["a", "b", "c"], "nullable": True},
            "pay": {"kind": "continuous", "min": 0, "max": 1000},
        },
        "privacy": {"epsilon": 1.0, "delta": 1e-6},
    }
)
ROWS = [(17 + i % 70, "abc"[i % 3] if i % 7 else None, round(10.5 * (i % 90), 2), f"secret-{i}") for i in range(25)]


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(
            f"{name} not found on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL "
            "(Debian: apt-get install postgresql; .ci/run does)."
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    # a short path: a unix socket's path is limited to 107 bytes
    base = Path(tempfile.mkdtemp(prefix="sgpg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    pwfile = base / "pw"
    pwfile.write_text(OWNER_PASSWORD)
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])
    data, port = base / "data", _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(
        [
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "owner",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
        env=env,
        **run_as,
    )
    subprocess.run(
        [
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-k {base} -c listen_addresses='' -p {port}",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
        **run_as,
    )
    try:
        owner = psycopg.connect(
            host=str(base), port=port, dbname="postgres", user="owner", password=OWNER_PASSWORD, autocommit=True
        )
        with owner:
            owner.execute(f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'")
            owner.execute("CREATE TABLE people (age integer, job text, pay numeric(8, 2), name text)")
            with owner.cursor() as cur:
                cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s)", ROWS)
            owner.execute('CREATE SCHEMA "odd; schema"')
            owner.execute('CREATE TABLE "odd; schema"."we""ird; DROP TABLE people; --" (age integer, pay float8)')
            owner.execute('INSERT INTO "odd; schema"."we""ird; DROP TABLE people; --" VALUES (40, 1.5), (41, 2.5)')
            owner.execute("CREATE SEQUENCE counter")
            owner.execute("CREATE TABLE log (x integer)")
            owner.execute('GRANT USAGE ON SCHEMA "odd; schema" TO reader')
            owner.execute('GRANT SELECT ON people, "odd; schema"."we""ird; DROP TABLE people; --" TO reader')
            # write rights the reader could use outside a read-only transaction
            owner.execute("GRANT USAGE, UPDATE ON SEQUENCE counter TO reader")
            owner.execute("GRANT INSERT, SELECT ON log TO reader")
        yield {"host": str(base), "port": port}
    finally:
        subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            **run_as,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def reader(server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("SG_TEST_PGPASSWORD", READER_PASSWORD)
    return {**server, "dbname": "postgres", "user": "reader", "password_env": "SG_TEST_PGPASSWORD"}


def _owner(server: dict[str, Any]) -> psycopg.Connection:
    return psycopg.connect(
        host=server["host"],
        port=server["port"],
        dbname="postgres",
        user="owner",
        password=OWNER_PASSWORD,
        autocommit=True,
    )


def test_a_table_is_read_with_only_the_contract_columns(reader: dict[str, Any]) -> None:
    source = SourceConfig.model_validate({"postgres": {**reader, "table": "people"}})
    frame = read_source(source, columns=list(CONTRACT.columns))
    assert frame.columns == ["age", "job", "pay"]  # `name` is never selected
    assert frame.height == len(ROWS) == count_source_rows(source)
    assert frame["age"].to_list() == [r[0] for r in ROWS] and frame["job"].to_list() == [r[1] for r in ROWS]
    assert frame["pay"].dtype == pl.Float64 and frame["pay"].to_list() == [r[2] for r in ROWS]
    batches = list(stream_source(source, CONTRACT, batch_rows=10))
    assert [b.height for b in batches] == [10, 10, 5]
    assert pl.concat(batches)["age"].to_list() == frame["age"].to_list()


def test_a_hostile_table_name_is_quoted_not_run(reader: dict[str, Any], server: dict[str, Any]) -> None:
    name = 'we"ird; DROP TABLE people; --'
    source = SourceConfig.model_validate({"postgres": {**reader, "schema": "odd; schema", "table": name}})
    assert read_source(source)["pay"].to_list() == [1.5, 2.5]
    with _owner(server) as con:
        assert con.execute("SELECT count(*) FROM people").fetchone() == (len(ROWS),)  # still there
    missing = SourceConfig.model_validate({"postgres": {**reader, "table": "nope"}})
    with pytest.raises(InputError, match=r"table 'nope' is not in the search path.*public\.people"):
        read_source(missing)


def test_a_query_is_one_select_checked_before_connecting(reader: dict[str, Any]) -> None:
    source = SourceConfig.model_validate(
        {"postgres": {**reader, "query": "SELECT age, pay FROM people WHERE age < 30 ORDER BY age"}}
    )
    frame = read_source(source, columns=["pay", "age", "absent"])
    assert frame.columns == ["pay", "age"]
    assert frame["age"].to_list() == sorted(r[0] for r in ROWS if r[0] < 30)
    # refused when the config is read, with no server (port 1 would refuse a connection anyway)
    for query, why in [
        ("DELETE FROM people", "read-only SELECT"),
        ("SELECT 1; DROP TABLE people", "exactly one"),
        ("COPY people TO '/tmp/x'", "read-only SELECT"),
        ("SELECT (", "does not parse"),
    ]:
        with pytest.raises(ValidationError, match=why):
            SourceConfig.model_validate(
                {"postgres": {"host": "/nonexistent", "port": 1, "dbname": "x", "query": query}}
            )


def test_the_read_runs_in_a_read_only_transaction(reader: dict[str, Any], server: dict[str, Any]) -> None:
    """A SELECT that would write (a sequence step, a function with a side effect) fails on the server,
    though the role may write outside a read-only transaction."""
    for query in (
        "SELECT nextval('counter') AS age",
        "SELECT age FROM people, LATERAL (SELECT setval('counter', 99)) s",
    ):
        source = SourceConfig.model_validate({"postgres": {**reader, "query": query}})
        with pytest.raises(InputError, match="read-only transaction"):
            read_source(source)
    with _owner(server) as con:
        assert con.execute("SELECT last_value, is_called FROM counter").fetchone() == (1, False)
    # the same role can write in its own session: only the source's transaction is read-only
    with psycopg.connect(
        host=server["host"],
        port=server["port"],
        dbname="postgres",
        user="reader",
        password=READER_PASSWORD,
        autocommit=True,
    ) as con:
        con.execute("INSERT INTO log VALUES (1)")


def test_no_password_in_errors_dumps_or_reprs(server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-pw-5e6f7a"
    dsn = f"postgresql://reader:{wrong}@/postgres?host={server['host']}&port={server['port']}"
    source = SourceConfig.model_validate({"postgres": {"dsn": dsn, "table": "people"}})
    with pytest.raises(InputError) as err:
        read_source(source)
    message = str(err.value)
    assert "could not connect" in message and "password authentication failed" in message
    assert wrong not in message and wrong not in repr(err.value)
    config = RunConfig(contract=Path("c.yaml"), source=source)
    from synthgate.flows.release import release_flow

    prefect_parameters = str(release_flow.serialize_parameters({"config": config}))  # the UI's Parameters tab
    for text in (repr(source), str(config.model_dump(mode="json")), config.model_dump_json(), prefect_parameters):
        assert wrong not in text and "**********" in text
    # password_env: the password read from the environment, never stored in the config
    monkeypatch.setenv("SG_TEST_PGPASSWORD", wrong)
    by_env = SourceConfig.model_validate(
        {
            "postgres": {
                "host": server["host"],
                "port": server["port"],
                "dbname": "postgres",
                "user": "reader",
                "password_env": "SG_TEST_PGPASSWORD",
                "table": "people",
            }
        }
    )
    with pytest.raises(InputError) as err:
        read_source(by_env)
    assert wrong not in str(err.value) and wrong not in by_env.model_dump_json()
    monkeypatch.delenv("SG_TEST_PGPASSWORD")
    with pytest.raises(InputError, match="SG_TEST_PGPASSWORD.*not set"):
        read_source(by_env)
    # a dsn redacted in a run record (resume) is refused with a way out, not sent to the server
    redacted = SourceConfig.model_validate({"postgres": {"dsn": "**********", "table": "people"}})
    with pytest.raises(InputError, match="kept secret in the run record"):
        read_source(redacted)


def test_config_shapes_are_checked() -> None:
    ok = {"host": "/tmp", "dbname": "d", "table": "t"}
    for bad, why in [
        ({**ok, "query": "SELECT 1"}, "exactly one of table or query"),
        ({"dsn": "postgresql:///d", "user": "u", "table": "t"}, "dsn or"),
        ({"host": "/tmp", "table": "t"}, "needs dsn, or dbname"),
        ({**ok, "user": "a b"}, "pattern"),
        ({**ok, "host": "h' sslmode=disable"}, "host name"),
        ({**ok, "password": "x"}, "Extra inputs"),
        ({**ok, "table": "t\nforged"}, "control or format"),
    ]:
        with pytest.raises(ValidationError, match=why):
            SourceConfig.model_validate({"postgres": bad})
    with pytest.raises(ValidationError, match="exactly one of table, query, path or postgres"):
        SourceConfig.model_validate({"postgres": ok, "path": "x.csv"})


def test_a_release_runs_end_to_end_from_postgres_and_no_file_holds_the_password(
    prefect_harness: None, reader: dict[str, Any], server: dict[str, Any], tmp_path: Path
) -> None:
    """`synthgate run` on a PostgreSQL table: counted, read, validated, trained, checked, decided;
    the registry, both reports and the release folder never hold the password."""
    import yaml
    from typer.testing import CliRunner

    from synthgate.flows.cli import EXIT_BLOCKED, app
    from synthgate.flows.demo import demo_contract, demo_parquet
    from synthgate.governance.registry import Registry

    frame = pl.read_parquet(demo_parquet()).sample(n=600, seed=5)
    types = {pl.Int64: "bigint", pl.String: "text"}
    columns = ", ".join(f"{quote(c)} {types[d]}" for c, d in frame.schema.items())
    with _owner(server) as con:
        con.execute(f"CREATE TABLE adult ({columns})")
        with con.cursor() as cur, cur.copy(f"COPY adult ({', '.join(map(quote, frame.columns))}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
        con.execute("GRANT SELECT ON adult TO reader")
    contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
    contract["evaluation"] = {"shadow_models": 0, "attack_rows": 50, "anonymeter_attacks": 50, "inference_attacks": 50}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        yaml.safe_dump(
            {
                "contract": "c.yaml",
                "source": {"postgres": {**reader, "table": "adult"}},
                "out": "out",
                "epochs": 1,
                "batch_size": 100,
                "n_synthetic": 250,
                "evaluation_rows": 300,
            }
        )
    )
    result = CliRunner().invoke(app, ["run", "--config", str(run_yaml), "--quiet"])
    assert result.exit_code in (0, EXIT_BLOCKED), result.output
    (record,) = Registry(tmp_path / "out" / "registry.duckdb").runs()
    assert record.status in ("released", "blocked") and record.source_table == "adult"
    assert record.config["source"]["postgres"]["password_env"] == "SG_TEST_PGPASSWORD"
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "report.json" for p in written)
    for path in written:
        assert READER_PASSWORD.encode() not in path.read_bytes(), path
    assert READER_PASSWORD not in result.output


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
