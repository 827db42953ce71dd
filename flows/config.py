"""The release flow's one parameter, RunConfig, and its source: defined in ``tasks.config``.

The tasks read the run config (ingest its source and query check, preflight its epoch cap), so it
lives below them; this module keeps ``flows.config`` importable for the flows, the CLI and users.
"""

from __future__ import annotations

from synthgate.tasks.config import (
    MAX_EPOCHS,
    MAX_QUERY_CHARS,
    RunConfig,
    SourceConfig,
    check_source_query,
    load_run_config,
)

__all__ = ["MAX_EPOCHS", "MAX_QUERY_CHARS", "RunConfig", "SourceConfig", "check_source_query", "load_run_config"]
