"""A child process that holds a DuckDB file open for writing (lock tests). Imports only duckdb,
so a spawned child starts in well under a second."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import duckdb


def _hold(path: str, seconds: float, ready: Any) -> None:
    con = duckdb.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS held (a INT)")
    ready.set()
    time.sleep(seconds)
    con.close()


def hold(path: str, seconds: float) -> multiprocessing.process.BaseProcess:
    """Start a child that holds ``path`` for ``seconds``; returns once it holds the lock."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold, args=(path, seconds, ready), daemon=True)
    child.start()
    if not ready.wait(60):
        child.kill()
        raise RuntimeError("the lock-holding child did not start within 60 s")
    return child
