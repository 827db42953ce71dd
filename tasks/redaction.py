"""Library exception messages never leave a task that reads private rows.

A library's error message may quote the data it choked on: polars, for one, lists the offending
values ("conversion from `str` to `enum` failed in column 'workclass' for 181 out of 3000 values:
["?", "?", …]"). Prefect logs a failed task's exception with its traceback, stores it in the run's
state message and shows it in the UI, so such a message would put private values into logs and
into Prefect's database.

Every task (and flow) that reads private rows is wrapped by :func:`withhold_library_errors`. An
exception leaving it is judged by where it comes from:

- synthgate's own exception classes, and built-in ones (``ValueError``...) raised by synthgate's own
  code (the innermost frame is a ``synthgate.*`` module, installed or not, or a file of this
  checkout), pass unchanged: their
  messages are written to name columns and problems, never values;
- I/O errors (``OSError``, DuckDB's ``IOException``) pass too: they name files, and the transient
  ones are retried by type;
- anything else raised inside a library becomes :class:`WithheldError`, which names the type and
  the library, not the message.

Either way the chain (``raise ... from err``) is cut, since a traceback prints its causes.
:func:`private_task` is the ``@task`` for such a step: the filter, and never cached or persisted
(Prefect must never write a private frame to its result store).
``SYNTHGATE_SHOW_LIBRARY_ERRORS=1`` turns the filter off, for a data owner debugging on a trusted
machine (the messages then reach the logs).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import duckdb
from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgate.errors import SHOW_ENV, SynthgateError, WithheldError

__all__ = ["PRIVATE", "private_task", "withhold_library_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_PROJECT = Path(__file__).resolve().parents[1]
#: code whose module is in these packages is ours wherever it is installed (a checkout or a wheel in
#: site-packages): every installed module is synthgate.<folder>
_OUR_PACKAGES = {"synthgate", "benchmarks"}


def _innermost(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def _raised_here(err: BaseException) -> tuple[bool, str]:
    """(raised by this project's code, the module that raised it)."""
    tb = _innermost(err.__traceback__)
    if tb is None:
        return False, "unknown code"
    path = Path(tb.tb_frame.f_code.co_filename)
    module = str(tb.tb_frame.f_globals.get("__name__", path.name))
    if module.split(".")[0] in _OUR_PACKAGES:  # an installed wheel's code lives in site-packages
        return True, module
    try:  # a file of this checkout loaded by path (Prefect's flow entrypoints)
        inside = _inside_project(path.resolve(), _PROJECT)
    except OSError:
        inside = False
    return inside, module


def _inside_project(path: Path, project: Path) -> bool:
    """``path`` is this project's code: under ``project`` (a checkout, or site-packages/synthgate when
    installed), and not in a site-packages folder below it (a virtual environment inside a checkout)."""
    return path.is_relative_to(project) and "site-packages" not in path.relative_to(project).parts


def _passes(err: Exception) -> tuple[bool, str]:
    if isinstance(err, SynthgateError) or type(err).__module__.split(".")[0] in _OUR_PACKAGES:
        return True, ""
    if isinstance(err, (OSError, duckdb.IOException)):
        return True, ""
    ours, module = _raised_here(err)
    return ours, module.split(".")[0]


def withhold_library_errors(fn: F) -> F:
    """Wrap ``fn`` so that no library exception message escapes it (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if os.environ.get(SHOW_ENV) == "1":
                raise
            passes, origin = _passes(err)
            if passes:
                err.__cause__ = None
                err.__suppress_context__ = True
                raise
            raise WithheldError(type(err).__name__, origin, getattr(fn, "__name__", "a task")) from None

    return wrapper  # type: ignore[return-value]


#: the task options of every step that reads private rows: Prefect never caches or persists its result
PRIVATE = dict(cache_policy=NO_CACHE, persist_result=False)


def private_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@task`` for a step that reads private rows: never cached or persisted, and no library
    exception message escapes it (:func:`withhold_library_errors`)."""
    return lambda fn: task(withhold_library_errors(fn), **PRIVATE, **options)
