"""Governance state that outlives one run: the release registry, the per-table privacy budget, locks.

Plain DuckDB and Python (no Prefect, no torch): the release flow calls it through the thin tasks
in tasks/governance.py, and the CLI reads it for `synthgate budget` and `synthgate releases`.
"""
