"""Shared fixtures: the demo table and contract, small seeded samples of it, one torch thread."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

# Prefect must never touch the user's ~/.prefect from tests.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="synthgate-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
# DP noise is drawn from OS entropy unless this secret key is set; tests set it so that every
# fit repeats (tests/unit/models/test_private_randomness.py unsets it on purpose).
os.environ.setdefault("SYNTHGATE_NOISE_SEED", "20261123")

import polars as pl
import pytest

from synthgate.flows.demo import demo_contract, demo_parquet
from synthgate.tasks.ingest import prepare_frame
from synthgate.validation.contract import Contract, load_contract


@pytest.fixture(scope="session")
def adult_contract() -> Contract:
    return load_contract(demo_contract())


@pytest.fixture(scope="session")
def adult(adult_contract: Contract) -> pl.DataFrame:
    return prepare_frame(pl.read_parquet(demo_parquet()), adult_contract)


@pytest.fixture(scope="session")
def adult_small(adult: pl.DataFrame) -> pl.DataFrame:
    return adult.sample(n=1200, seed=7)


@pytest.fixture(scope="session")
def adult_modelled(adult_contract: Contract, adult_small: pl.DataFrame) -> pl.DataFrame:
    """``adult_small``'s modelled columns: what a synthesizer's ``fit`` takes."""
    return adult_small.select(adult_contract.modelled_columns)


def _on_one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a whole module: tiny networks run fastest so (no spin-waiting on a
    busy 2-core box), and the module's shared fits and any seeded refit inside a test run at the same
    thread count (CPU results are bit-identical only at an equal count: the reduction order).

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the count is
    restored after the module."""
    yield from _on_one_torch_thread()


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One torch thread for a single test: every fit of a comparison in it (a killed one too) runs with
    the same float summation order."""
    yield from _on_one_torch_thread()
