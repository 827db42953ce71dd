"""Shared fixtures: the demo table and contract, small seeded samples of it."""

from __future__ import annotations

import os
import tempfile

# Prefect must never touch the user's ~/.prefect from tests.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="synthgate-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
# DP noise is drawn from OS entropy unless this secret key is set; tests set it so that every
# fit repeats (tests/unit/models/test_private_randomness.py unsets it on purpose).
os.environ.setdefault("SYNTHGATE_NOISE_SEED", "20261123")

import polars as pl
import pytest

from flows.demo import demo_contract, demo_parquet
from tasks.ingest import prepare_frame
from validation.contract import Contract, load_contract


@pytest.fixture(scope="session")
def adult_contract() -> Contract:
    return load_contract(demo_contract())


@pytest.fixture(scope="session")
def adult(adult_contract: Contract) -> pl.DataFrame:
    return prepare_frame(pl.read_parquet(demo_parquet()), adult_contract)


@pytest.fixture(scope="session")
def adult_small(adult: pl.DataFrame) -> pl.DataFrame:
    return adult.sample(n=1200, seed=7)
