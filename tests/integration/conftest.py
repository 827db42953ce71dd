from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from prefect.testing.utilities import prefect_test_harness

from synthgate.flows.demo import demo_parquet


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (~15 s to start)."""
    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def adult_600() -> pl.DataFrame:
    """600 rows of the raw Adult demo table (seed 5), every column: the hardening and robustness sources."""
    return pl.read_parquet(demo_parquet()).sample(n=600, seed=5)


@pytest.fixture()
def small_source(tmp_path: Path) -> Path:
    """1,500 Adult rows (seed 3) as Parquet: small enough for a whole release in seconds."""
    path = tmp_path / "adult_small.parquet"
    pl.read_parquet(demo_parquet()).sample(n=1500, seed=3).write_parquet(path)
    return path
