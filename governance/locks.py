"""DuckDB allows one writing process per file: wait for the lock, or fail saying who holds it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb

from synthgate.errors import DatabaseLocked

DEFAULT_LOCK_TIMEOUT_S = 120.0


def _holder(message: str) -> str:
    m = re.search(r"\(PID (\d+)\)", message)
    return f"process {m.group(1)}" if m else "another process"


def connect(
    path: Path, *, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, read_only: bool = False, poll_s: float = 0.25
) -> duckdb.DuckDBPyConnection:
    """Open ``path``, waiting up to ``timeout_s`` while another process holds its lock.

    DuckDB refuses a second process on a file that one process has open for writing (readers
    included). Concurrent synthgate runs on one output or registry file therefore queue here and
    proceed one after another; after ``timeout_s`` the run fails with :class:`DatabaseLocked`,
    before it has changed anything in that file.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as err:
            text = str(err)
            if "lock" not in text.lower():
                raise
            if time.monotonic() >= deadline:
                raise DatabaseLocked(
                    f"{path} is locked by {_holder(text)} (DuckDB allows one writer per file); waited "
                    f"{timeout_s:g} s and changed nothing. Let the other run finish, stop it, or "
                    "give this run another --out."
                ) from None
            time.sleep(poll_s)
