"""The sample_synthetic stage: synthetic rows drawn from the trained DP model."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgate.models.synthesizers.base import Synthesizer


@task(name="sample_synthetic", task_run_name="sample synthetic rows", cache_policy=NO_CACHE, persist_result=False)
def sample_synthetic(model: Synthesizer, *, n: int, seed: int) -> pl.DataFrame:
    """Sampling is post-processing of the DP model: it reads no private row."""
    return model.sample(n, seed=seed)
