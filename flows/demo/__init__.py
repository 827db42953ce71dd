"""The embedded demo: UCI Adult as parquet plus its hand-written contract."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEMO_TABLE = "adult"


def demo_parquet() -> Path:
    return Path(str(files(__package__) / "adult.parquet"))


def demo_contract() -> Path:
    return Path(str(files(__package__) / "adult.contract.yaml"))
