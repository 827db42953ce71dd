"""The release registry: every run on record, and the privacy budget each source table has left.

One DuckDB file (``<out>/registry.duckdb`` unless the run config names another; point every
deployment of a table at the same file). Table ``runs`` holds one row per run, whatever its end:

    running → released | blocked | failed | invalid          refused (never started)

A row is written *before* the run reads a private row (``begin_run``), and the same transaction
checks the table's lifetime budget: the run's planned ε is reserved, so two runs cannot both
pass the check and together overspend. When the run ends its charge becomes what its ledger
actually spent. What counts against a table:

- released and blocked runs: the ε of their ledger (a blocked run trained on the rows too, and its
  report exists; blocking does not give the budget back);
- failed runs: what the ledger had spent when it failed; if that is unknown but training had
  started, the whole planned ε (conservative);
- a running run: its reservation, the whole planned ε;
- refused runs and invalid ones (the table broke its contract before training): nothing.

Budgets add up by basic composition (Σε, Σδ): simple, conservative and what auditors expect.
Transitions are one-way: a finished run can never change status, so a blocked run cannot be
turned into a release; only a new run can release.

Nothing here holds a private value. The data fingerprint is a keyed hash (HMAC-SHA256, key in
``<registry>.key``, created mode 0600): a plain hash of the rows would let anyone holding all
but one row test guesses for the last; a keyed one only lets the key holder tell whether two
runs read the same contents.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import io
import json
import math
import os
import platform
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from synthgate.errors import BudgetExceeded, RegistryError
from synthgate.governance.locks import DEFAULT_LOCK_TIMEOUT_S, connect

SCHEMA_VERSION = 1
STATUSES = ("running", "released", "blocked", "failed", "invalid", "refused")
FINAL = ("released", "blocked", "failed", "invalid", "refused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    source_table VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    started_at VARCHAR NOT NULL,
    finished_at VARCHAR,
    user_name VARCHAR,
    host VARCHAR,
    contract_hash VARCHAR,
    config VARCHAR,
    code_version VARCHAR,
    data_fingerprint VARCHAR,
    training_started BOOLEAN NOT NULL DEFAULT FALSE,
    epsilon_planned DOUBLE NOT NULL,
    epsilon_charged DOUBLE NOT NULL,
    delta DOUBLE NOT NULL,
    gates VARCHAR,
    reasons VARCHAR,
    output_db VARCHAR,
    output_table VARCHAR,
    folder VARCHAR,
    error VARCHAR,
    resumes INTEGER NOT NULL DEFAULT 0,
    lifetime_epsilon DOUBLE,
    lifetime_delta DOUBLE
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS artifacts VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS checkpoint_hashes VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner_folder VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner_artifacts VARCHAR;
CREATE SEQUENCE IF NOT EXISTS runs_seq;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS seq BIGINT DEFAULT nextval('runs_seq');
"""
# ``seq``: the order runs were recorded in (a sequence; rows older than the column are numbered in
# the file's insertion order when it is added). ``started_at`` is to the second, so two runs begun in
# the same second would otherwise come back in an arbitrary order.

_COLUMNS = (
    "run_id",
    "source_table",
    "status",
    "started_at",
    "finished_at",
    "user_name",
    "host",
    "contract_hash",
    "config",
    "code_version",
    "data_fingerprint",
    "training_started",
    "epsilon_planned",
    "epsilon_charged",
    "delta",
    "gates",
    "reasons",
    "output_db",
    "output_table",
    "folder",
    "error",
    "resumes",
    "lifetime_epsilon",
    "lifetime_delta",
    "artifacts",
    "checkpoint_hashes",
    "owner_folder",
    "owner_artifacts",
)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    source_table: str
    status: str
    started_at: str
    finished_at: str | None
    user_name: str | None
    host: str | None
    contract_hash: str | None
    config: dict[str, Any]
    code_version: str | None
    data_fingerprint: str | None
    training_started: bool
    epsilon_planned: float
    epsilon_charged: float
    delta: float
    gates: list[dict[str, Any]]
    reasons: list[str]
    output_db: str | None
    output_table: str | None
    folder: str | None
    error: str | None
    resumes: int
    lifetime_epsilon: float | None
    lifetime_delta: float | None
    artifacts: dict[str, str]  # SHA-256 of each file of the release (or blocked-report) folder
    checkpoint_hashes: list[str]  # SHA-256 of the run's last two checkpoint files (resume checks them)
    owner_folder: str | None = None  # the owner's evaluation report (owner-only, outside the release folder)
    owner_artifacts: dict[str, str] = field(default_factory=dict)  # SHA-256 of each of its files

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _COLUMNS}

    @property
    def kind(self) -> str:
        """'release', or 'contract inference' (``contract infer --dp`` learned bounds and categories
        with DP; it is charged like a release). Kept in ``config["kind"]``."""
        return str(self.config.get("kind", "release"))


@dataclass(frozen=True)
class Spend:
    """What a table has spent over its runs (basic composition) and what its contract allows."""

    table: str
    epsilon: float
    delta: float
    runs: int
    by_fingerprint: dict[str, float] = field(default_factory=dict)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def code_version() -> str:
    """synthgate's version, plus the git commit when running from a checkout (``+dirty`` if edited)."""
    import importlib.metadata as md

    try:
        version = md.version("synthgate")
    except md.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return version
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{sha}" + (".dirty" if dirty else "")


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


class Registry:
    """The registry file at ``path``; every call opens it briefly (one writer at a time, see locks)."""

    def __init__(self, path: Path, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _con(self, *, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        if not write and not self.path.exists():
            raise RegistryError(
                f"no release registry at {self.path}: no run has used it yet. Pass the --out (or "
                "--registry) the runs used."
            )
        if self.path.exists() and not self.path.is_file():
            raise RegistryError(f"the release registry {self.path} is a folder, not a file. Point registry: at a file.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RegistryError(
                f"the release registry {self.path} cannot be created: a file is in the way of its folder "
                f"{self.path.parent}. Pass another --out or registry."
            ) from None
        try:
            con = connect(self.path, timeout_s=self.lock_timeout_s, read_only=not write)
        except duckdb.Error as err:
            raise self._damaged(err) from None
        try:
            if write:
                try:
                    con.execute(_SCHEMA)
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                except duckdb.Error as err:
                    raise self._damaged(err) from None
            yield con
        except (
            duckdb.CatalogException,
            duckdb.BinderException,
            duckdb.InternalException,
            duckdb.SerializationException,
            duckdb.ConversionException,
        ) as err:
            raise self._damaged(err) from None
        finally:
            con.close()

    def _damaged(self, err: BaseException) -> RegistryError:
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        return RegistryError(
            f"the release registry {self.path} cannot be read: it is damaged or not a synthgate registry "
            f"({type(err).__name__}: {first}). Nothing was changed. Restore it from a backup, or move it aside "
            "(a new, empty registry forgets every table's spent budget: carry the spend over by hand)."
        )

    def _row(self, con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord:
        row = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise RegistryError(f"no run {run_id!r} in {self.path}. `synthgate releases list` shows the runs.")
        return _record(row)

    # ------------------------------------------------------------------ the key for fingerprints
    def fingerprint_key(self) -> bytes:
        """The HMAC key beside the registry (created once, mode 0600)."""
        key_path = self.path.with_suffix(".key")
        if not key_path.exists():
            # Written whole under a private name, then linked into place: two first runs racing
            # here agree on one key, and nobody ever reads a half-written one.
            key_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = key_path.with_name(f".{key_path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            try:
                os.link(tmp, key_path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return bytes.fromhex(key_path.read_text().strip())

    def fingerprint(self, df: pl.DataFrame) -> str:
        """Keyed hash of the table's contents, independent of row order."""
        canonical = df.sort(df.columns, nulls_last=True) if df.height else df
        buf = io.BytesIO()
        canonical.write_ipc(buf, compression="uncompressed")
        return "hmac-sha256:" + hmac.new(self.fingerprint_key(), buf.getvalue(), hashlib.sha256).hexdigest()[:32]

    def stream_fingerprint(self) -> StreamFingerprint:
        """A keyed fingerprint fed batch by batch, for sources too large to sort in memory."""
        return StreamFingerprint(self.fingerprint_key())

    # ------------------------------------------------------------------ budget
    def spend(self, table: str) -> Spend:
        """What ``table`` has spent over its runs. Read-only: it never creates or changes the file (the
        CLI prints it after a refusal, when the configured registry may be a file that is no registry)."""
        if not self.path.exists():
            return Spend(table, 0.0, 0.0, 0)
        with self._con(write=False) as con:
            return _spend(con, table)

    def exceeds_lifetime(
        self,
        table: str,
        *,
        epsilon: float,
        delta: float,
        lifetime_epsilon: float | None,
        lifetime_delta: float | None,
    ) -> bool:
        """Read-only: would a run of (epsilon, delta) take ``table`` past its lifetime budget? (``begin_run``
        makes the binding decision and records it; this lets a flow refuse before it opens the source.)"""
        if lifetime_epsilon is None and lifetime_delta is None:
            return False
        if self.path.exists():
            with self._con(write=False) as con:
                spent = _spend(con, table)
        else:
            spent = Spend(table, 0.0, 0.0, 0)
        return (lifetime_epsilon is not None and spent.epsilon + epsilon > lifetime_epsilon + 1e-9) or (
            lifetime_delta is not None and spent.delta + delta > lifetime_delta * (1 + 1e-9)
        )

    # ------------------------------------------------------------------ lifecycle
    def begin_run(
        self,
        *,
        run_id: str,
        table: str,
        epsilon: float,
        delta: float,
        lifetime_epsilon: float | None,
        lifetime_delta: float | None,
        contract_hash: str,
        config: dict[str, Any],
        output_db: str,
        output_table: str,
    ) -> Spend:
        """Record a new run and reserve its ε, or record it refused and raise BudgetExceeded."""
        if not math.isfinite(epsilon) or epsilon <= 0:
            raise ValueError(f"a release's planned ε must be a finite number > 0. Got {epsilon!r}.")
        with self._con() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                spent = _spend(con, table)
                over = []
                if lifetime_epsilon is not None and spent.epsilon + epsilon > lifetime_epsilon + 1e-9:
                    over.append(
                        f"ε: {spent.epsilon:.4g} already spent over {spent.runs} run(s) + {epsilon:g} planned "
                        f"> lifetime_epsilon {lifetime_epsilon:g}"
                    )
                if lifetime_delta is not None and spent.delta + delta > lifetime_delta * (1 + 1e-9):
                    over.append(f"δ: {spent.delta:.3g} spent + {delta:g} planned > lifetime_delta {lifetime_delta:g}")
                status = "refused" if over else "running"
                _insert(
                    con,
                    run_id=run_id,
                    table=table,
                    status=status,
                    epsilon_planned=epsilon,
                    epsilon_charged=0.0 if over else epsilon,
                    delta=delta,
                    contract_hash=contract_hash,
                    config=config,
                    output_db=output_db,
                    output_table=output_table,
                    error="; ".join(over) if over else None,
                    lifetime=(lifetime_epsilon, lifetime_delta),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        if over:
            raise BudgetExceeded(
                f"run refused before reading a row: table {table!r} would exceed its lifetime privacy "
                f"budget ({'; '.join(over)}). Raise privacy.lifetime_epsilon/lifetime_delta in the "
                f"contract after review, or ask for a smaller --epsilon. Spent so far: "
                f"`synthgate budget show --table {table}`."
            )
        return spent

    def resume_run(self, run_id: str) -> RunRecord:
        """Reopen a run that was killed (still 'running') or failed, keeping its reservation."""
        with self._con() as con:
            check_resumable(self._row(con, run_id))
            # The reservation comes back in full: the resumed run may spend up to its plan.
            con.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, resumes = resumes + 1, "
                "epsilon_charged = epsilon_planned WHERE run_id = ?",
                [run_id],
            )
            return self._row(con, run_id)

    def mark_training(self, run_id: str, *, data_fingerprint: str) -> None:
        with self._con() as con:
            rec = self._row(con, run_id)
            if rec.status != "running":
                raise RegistryError(f"run {run_id} is {rec.status}, not running.")
            if rec.data_fingerprint not in (None, data_fingerprint):
                raise RegistryError(
                    f"run {run_id} is resuming on different data than it started with (fingerprint "
                    "mismatch); its checkpoint would mix two tables. Start a new run instead."
                )
            con.execute(
                "UPDATE runs SET training_started = TRUE, data_fingerprint = ? WHERE run_id = ?",
                [data_fingerprint, run_id],
            )

    def set_lifetime(self, run_id: str, *, lifetime_epsilon: float | None, lifetime_delta: float | None) -> None:
        """Record the lifetime budget a running run's output states (``contract infer --dp`` drafts the
        contract, and so the table's lifetime budget, only once it has read the rows)."""
        with self._con() as con:
            rec = self._row(con, run_id)
            if rec.status != "running":
                raise RegistryError(f"run {run_id} is {rec.status}, not running.")
            con.execute(
                "UPDATE runs SET lifetime_epsilon = ?, lifetime_delta = ? WHERE run_id = ?",
                [lifetime_epsilon, lifetime_delta, run_id],
            )

    def record_checkpoint(self, run_id: str, sha256: str) -> None:
        """Note the SHA-256 of the checkpoint a running run is about to write.

        The last two are kept: the hash is recorded before the file is renamed in, so a kill between
        the two leaves the previous file, whose hash is still on record.
        """
        with self._con() as con:
            rec = self._row(con, run_id)
            if rec.status != "running":
                raise RegistryError(f"run {run_id} is {rec.status}, not running; it writes no checkpoint.")
            kept = [*rec.checkpoint_hashes[-1:], sha256]
            con.execute("UPDATE runs SET checkpoint_hashes = ? WHERE run_id = ?", [json.dumps(kept), run_id])

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        epsilon_spent: float,
        gates: list[dict[str, Any]],
        reasons: list[str],
        folder: str | None,
        artifacts: dict[str, str] | None = None,
        owner_folder: str | None = None,
        owner_artifacts: dict[str, str] | None = None,
    ) -> RunRecord:
        """A running run becomes released or blocked; its charge becomes the ledger's ε.

        ``artifacts``: SHA-256 per file of its (public) folder, checked by ``verify_folder`` before use.
        ``owner_folder`` / ``owner_artifacts``: the owner's evaluation report and its files' SHA-256
        (``verify_owner_report``). ``gates`` and ``reasons`` should be the public ones (pass/fail, no
        measured value): ``synthgate releases show`` prints them.
        """
        if status not in ("released", "blocked"):
            raise ValueError(f"finish() takes 'released' or 'blocked'. Got {status!r}.")
        with self._con() as con:
            rec = self._row(con, run_id)
            if rec.status != "running":
                raise RegistryError(
                    f"run {run_id} is already {rec.status}; a finished run never changes status (a "
                    "blocked run cannot be published later). Start a new run."
                )
            con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, epsilon_charged = ?, gates = ?, reasons = ?, "
                "folder = ?, artifacts = ?, owner_folder = ?, owner_artifacts = ? WHERE run_id = ?",
                [
                    status,
                    now(),
                    float(epsilon_spent),
                    json.dumps(gates),
                    json.dumps(reasons),
                    folder,
                    json.dumps(artifacts or {}),
                    owner_folder,
                    json.dumps(owner_artifacts or {}),
                    run_id,
                ],
            )
            return self._row(con, run_id)

    def fail(self, run_id: str, *, error: str, epsilon_spent: float | None = None, invalid: bool = False) -> None:
        """Record a run that stopped on an error (never with a private value in ``error``)."""
        with self._con() as con:
            rec = self._row(con, run_id)
            if rec.status != "running":
                return
            if invalid and not rec.training_started:
                charged = 0.0
            elif epsilon_spent is not None and math.isfinite(epsilon_spent):
                charged = float(epsilon_spent)
            else:
                charged = rec.epsilon_planned if rec.training_started else 0.0
            con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ?, epsilon_charged = ? WHERE run_id = ?",
                ["invalid" if invalid and not rec.training_started else "failed", now(), error[:2000], charged, run_id],
            )

    def verify_folder(self, run_id: str, folder: Path) -> RunRecord:
        """Refuse a release folder whose files differ from the hashes recorded when it was published.

        Raises RegistryError naming each changed, missing or added file (never their contents).
        """
        rec = self.get(run_id)
        if rec.status != "released":
            raise RegistryError(f"run {run_id} is {rec.status}, not released: its folder holds no usable model.")
        if not rec.artifacts:
            raise RegistryError(
                f"run {run_id} has no recorded file hashes (published by an older synthgate); its folder cannot "
                "be verified. Release it again with this version."
            )
        found = file_hashes(folder)
        problems = [f"{name} changed" for name, h in sorted(rec.artifacts.items()) if found.get(name, h) != h]
        problems += [f"{name} missing" for name in sorted(rec.artifacts) if name not in found]
        problems += [f"{name} added" for name in sorted(found) if name not in rec.artifacts]
        if problems:
            raise RegistryError(
                f"release folder {folder} does not match what run {run_id} published ({'; '.join(problems)}): it "
                "was tampered with or damaged, and is refused. Use an untouched copy, or release again."
            )
        return rec

    def verify_owner_report(self, run_id: str, folder: Path | None = None) -> RunRecord:
        """Refuse an owner's report whose files differ from the hashes recorded at the run's end."""
        rec = self.get(run_id)
        if not rec.owner_folder or not rec.owner_artifacts:
            raise RegistryError(
                f"run {run_id} has no owner's report on record (it did not finish, or an older synthgate ran it)."
            )
        where = Path(folder) if folder is not None else Path(rec.owner_folder)
        found = file_hashes(where)
        problems = [f"{n} changed" for n, h in sorted(rec.owner_artifacts.items()) if found.get(n, h) != h]
        problems += [f"{n} missing" for n in sorted(rec.owner_artifacts) if n not in found]
        problems += [f"{n} added" for n in sorted(found) if n not in rec.owner_artifacts]
        if problems:
            raise RegistryError(
                f"owner's report {where} does not match what run {run_id} wrote ({'; '.join(problems)}): it was "
                "changed or damaged."
            )
        return rec

    # ------------------------------------------------------------------ reading
    def get(self, run_id: str) -> RunRecord:
        with self._con(write=False) as con:
            return self._row(con, run_id)

    def runs(self, *, table: str | None = None, limit: int | None = None) -> list[RunRecord]:
        if not self.path.exists():
            return []
        with self._con(write=False) as con:
            sql = f"SELECT {', '.join(_COLUMNS)} FROM runs"
            params: list[Any] = []
            if table is not None:
                sql += " WHERE source_table = ?"
                params.append(table)
            sql += f" ORDER BY {_order(con)} DESC"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            return [_record(r) for r in con.execute(sql, params).fetchall()]

    def tables(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._con(write=False) as con:
            return [r[0] for r in con.execute("SELECT DISTINCT source_table FROM runs ORDER BY 1").fetchall()]


def _order(con: duckdb.DuckDBPyConnection) -> str:
    """Newest first: by ``seq``; a file no writer of this version has opened yet (read-only connections do
    not migrate it) has no ``seq``, and its rowid is its insertion order (the registry never deletes a row)."""
    (has_seq,) = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'runs' AND column_name = 'seq'"
    ).fetchone() or (0,)
    return "seq" if has_seq else "rowid"


def check_resumable(rec: RunRecord) -> RunRecord:
    """A run can resume if it was killed (still 'running') or failed, after training started."""
    if rec.status not in ("running", "failed"):
        raise RegistryError(
            f"run {rec.run_id} is {rec.status}; only a killed or failed run can resume. A "
            f"{rec.status} run is final: start a new run instead."
        )
    if not rec.training_started:
        raise RegistryError(
            f"run {rec.run_id} stopped before training started, so there is nothing to resume and "
            "nothing was spent. Start a new run."
        )
    return rec


def _insert(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    table: str,
    status: str,
    epsilon_planned: float,
    epsilon_charged: float,
    delta: float,
    contract_hash: str,
    config: dict[str, Any],
    output_db: str,
    output_table: str,
    error: str | None,
    lifetime: tuple[float | None, float | None],
) -> None:
    con.execute(
        "INSERT INTO runs (run_id, source_table, status, started_at, finished_at, user_name, host, contract_hash, "
        "config, code_version, epsilon_planned, epsilon_charged, delta, output_db, output_table, error, "
        "lifetime_epsilon, lifetime_delta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            table,
            status,
            now(),
            now() if status == "refused" else None,
            current_user(),
            platform.node(),
            contract_hash,
            json.dumps(config),
            code_version(),
            epsilon_planned,
            epsilon_charged,
            delta,
            output_db,
            output_table,
            error,
            lifetime[0],
            lifetime[1],
        ],
    )


def _spend(con: duckdb.DuckDBPyConnection, table: str) -> Spend:
    rows = con.execute(
        "SELECT coalesce(data_fingerprint, '(not read yet)'), sum(epsilon_charged), "
        "sum(CASE WHEN epsilon_charged > 0 THEN delta ELSE 0 END), count(*) FILTER (WHERE epsilon_charged > 0) "
        "FROM runs WHERE source_table = ? GROUP BY 1",
        [table],
    ).fetchall()
    return Spend(
        table=table,
        epsilon=float(sum(r[1] for r in rows)),
        delta=float(sum(r[2] for r in rows)),
        runs=int(sum(r[3] for r in rows)),
        by_fingerprint={r[0]: float(r[1]) for r in rows if r[1] > 0},
    )


def _record(row: tuple[Any, ...]) -> RunRecord:
    d = dict(zip(_COLUMNS, row, strict=True))
    d["config"] = json.loads(d["config"]) if d["config"] else {}
    d["gates"] = json.loads(d["gates"]) if d["gates"] else []
    d["reasons"] = json.loads(d["reasons"]) if d["reasons"] else []
    d["training_started"] = bool(d["training_started"])
    d["artifacts"] = json.loads(d["artifacts"]) if d["artifacts"] else {}
    d["checkpoint_hashes"] = json.loads(d["checkpoint_hashes"]) if d["checkpoint_hashes"] else []
    d["owner_artifacts"] = json.loads(d["owner_artifacts"]) if d["owner_artifacts"] else {}
    return RunRecord(**d)


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by path relative to it (POSIX separators)."""
    out = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


class StreamFingerprint:
    """Keyed hash (HMAC-SHA256) of a table read in batches: its rows as header-less CSV in the
    source's order, so the value does not depend on where batches split. Unlike
    ``Registry.fingerprint`` (which sorts the whole table first) it depends on row order, so it
    carries its own prefix and the two kinds are never compared.
    """

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._columns: list[str] | None = None

    def update(self, batch: pl.DataFrame) -> None:
        if self._columns is None:
            self._columns = batch.columns
            self._mac.update(json.dumps(batch.columns).encode())
        self._mac.update(batch.select(self._columns).write_csv(include_header=False).encode())

    def hexdigest(self) -> str:
        return "hmac-sha256/stream:" + self._mac.hexdigest()[:32]
