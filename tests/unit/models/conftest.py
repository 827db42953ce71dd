"""Fixtures shared by the model tests: the synthetic health table (tests/health.py) of medGAN and corGAN."""

from __future__ import annotations

import polars as pl
import pytest

from synthgate.validation.contract import Contract
from tests import health


@pytest.fixture(scope="module", name="health_contract")
def _health_contract() -> Contract:
    """The health table's contract: counts, diagnosis flags, a categorical."""
    return health.health_contract()


@pytest.fixture(scope="module")
def health_rows() -> pl.DataFrame:
    """600 rows of the health table (seed 0)."""
    return health.health_table(600, seed=0)
