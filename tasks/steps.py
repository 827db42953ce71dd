"""Thin Prefect tasks for validation, splitting, training, sampling and the checks.

Every task that touches private rows has ``cache_policy=NO_CACHE, persist_result=False``: Prefect
must never write a private frame to its result store. Logs carry aggregates only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgate.models.ledger import PrivacyLedger
from synthgate.models.synthesizers import get_synthesizer, resolve_model_config
from synthgate.models.synthesizers.base import Checkpoint, Synthesizer, TrainingProgress
from synthgate.tasks.redaction import withhold_library_errors
from synthgate.errors import ContractError, ContractViolation, InputError
from synthgate.validation.contract import Contract
from synthgate.validation.expectations import ValidationReport, physical_type_errors, validate_frame
from synthgate.validation.gates import governance_checks
from synthgate.validation.results import GateDecision, MetricResult
from synthgate.validation.results import decide_release as _decide

PRIVATE = dict(cache_policy=NO_CACHE, persist_result=False)


def private_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@task`` for a step that reads private rows: never cached or persisted, and no library
    exception message escapes it (``tasks.redaction``)."""
    return lambda fn: task(withhold_library_errors(fn), **PRIVATE, **options)


@private_task(name="validate_table", task_run_name="validate {role} against the contract")
def validate_table(
    df: pl.DataFrame, contract: Contract, *, role: str = "the table", check_delta: bool = True
) -> ValidationReport:
    """Run the suite generated from the contract; raise ContractViolation on any failure.

    ``role`` names the table in the error (``synthgate evaluate`` checks three); ``check_delta``
    also checks δ < 1/n, which matters only for a table that is trained on.
    """
    report = validate_frame(df, contract)
    if not report.success:
        raise ContractViolation(report, role=role)
    # Every modelled column in the physical type its kind needs, before any row is trained on or
    # checked (validation reports most mismatches with counts; this is the guarantee).
    wrong = physical_type_errors(df.schema, contract)
    if wrong:
        raise ContractError(
            f"{role}: " + "; ".join(wrong) + ". Cast the column at ingestion (e.g. in the source query) "
            "or fix its kind in the contract; nothing was trained."
        )
    if check_delta:
        contract.privacy.check_delta(df.height)
    return report


#: blake2b personalisation of the split's hash seed: the same secret key used elsewhere (the large-source
#: sampling coins, SYNTHGATE_NOISE_SEED in tests) gives unrelated coins here
_SPLIT_DOMAIN = b"synthgate-split1"


def holdout_coins(df: pl.DataFrame, *, fraction: float, key: int) -> np.ndarray:
    """Per row, True when it goes to the holdout: a coin that is a keyed hash of the row itself.

    Row i's coin is a function of (its content, how many identical rows come before it, ``key``),
    never of its position or of the other rows: adding or removing one row anywhere changes at most
    that row's membership, and, among identical rows, at most how many of them go to each side
    (by one). Identical rows still get independent coins (the occurrence index tells them apart), so
    common values are shared between train and holdout as an independent split would share them.
    The hash is polars' row hash seeded by a 64-bit value derived from ``key`` (blake2b, domain-separated).
    With a secret key nobody can tell which side a row went to; the stability above holds for any key.
    Each coin is True with probability ``fraction`` (to the hash's uniformity, 2^-64 granularity).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1). Got {fraction!r}.")
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise ValueError("the split key must be a non-negative integer (a secret); its value is not shown here.")
    digest = hashlib.blake2b(str(key).encode(), digest_size=8, person=_SPLIT_DOMAIN).digest()
    seed = int.from_bytes(digest, "little")
    content = df.hash_rows(seed=0)
    occurrence = pl.DataFrame({"h": content}).select(pl.int_range(pl.len(), dtype=pl.UInt64).over("h")).to_series()
    u = pl.DataFrame({"h": content, "k": occurrence}).hash_rows(seed=seed).to_numpy().astype(np.float64) / 2.0**64
    return u < fraction


@private_task(name="split_holdout", task_run_name="split off the holdout (secret coins)")
def split_holdout(df: pl.DataFrame, *, fraction: float, key: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, holdout): each row goes to the holdout independently with probability ``fraction``, by a
    secret keyed coin of the row itself (``holdout_coins``); row order is kept. The holdout is never
    shown to the model.

    The unit of privacy is one row of the source table: a split that permuted range(n) under a public
    seed would move thousands of training rows when one person is added, and ε would hold only for the
    training set given the split. Here adding or removing one source row changes the training set by at
    most one row, so the training's (ε, δ) holds for the source table. ``key`` is a private value (the
    release flow keeps it beside the run's checkpoint so that a resumed run splits the same way); the
    split's sizes are random (Binomial) and private.
    """
    coins = holdout_coins(df, fraction=fraction, key=key)
    mask = pl.Series(coins)
    train, holdout = df.filter(~mask), df.filter(mask)
    if holdout.height < 1 or train.height < 2:
        # No row count here: the sizes are private counts, and this message reaches the CLI.
        raise InputError(
            f"the holdout split left too few rows on one side (a holdout needs at least one row, training "
            f"at least two). Each row goes to the holdout independently with probability {fraction:.3g} "
            "(secret coins), so the sizes are random and a table of a handful of rows can leave a side "
            "(nearly) empty; the sizes are private counts and not shown. Use a larger table (a few dozen "
            "rows at least) or a holdout_fraction nearer one half."
        )
    return train, holdout


@private_task(name="evaluation_subsample", task_run_name="subsample the sets for the checks")
def evaluation_subsample(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, *, max_rows: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The three sets the checks score, each cut to at most ``max_rows`` rows by a seeded uniform
    subsample (row order kept); sets already small enough are returned as they are."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1. Got {max_rows}.")
    streams = np.random.SeedSequence(seed).spawn(3)
    out = []
    for frame, stream in zip((train, holdout, synthetic), streams, strict=True):
        if frame.height <= max_rows:
            out.append(frame)
        else:
            keep = np.sort(np.random.default_rng(stream).choice(frame.height, size=max_rows, replace=False))
            out.append(frame[keep])
    return out[0], out[1], out[2]


def fit_synthesizer(
    train: pl.DataFrame,
    contract: Contract,
    *,
    epsilon: float,
    epochs: float | None,
    batch_size: int | None,
    device: str,
    seed: int,
    progress: Callable[[TrainingProgress], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> tuple[Synthesizer, PrivacyLedger]:
    """Train ``contract.model`` on ``train`` with a fresh ledger (shared by releases and shadows).

    ``epochs`` / ``batch_size`` override the contract's ``model_options``; None keeps them.
    ``checkpoint`` is used by models that support it (``supports_checkpoints``); the others
    train without one and ``training_summary["checkpoints"]`` says so.
    """
    cls = get_synthesizer(contract.model)
    config = resolve_model_config(contract, epochs=epochs, batch_size=batch_size)
    ledger = PrivacyLedger(contract.privacy.delta)
    model = cls(contract, config, device=device)
    extra = {"checkpoint": checkpoint} if checkpoint is not None and cls.supports_checkpoints else {}
    model.fit(
        train.select(contract.modelled_columns), ledger=ledger, epsilon=epsilon, seed=seed, progress=progress, **extra
    )
    if checkpoint is not None:
        model.training_summary["checkpoints"] = (
            f"every {checkpoint.every_epochs:g} epochs" if extra else f"not supported by {cls.name}"
        )
    return model, ledger


# DP training as a task; every data-dependent step is charged to a fresh ledger for this release.
train_synthesizer = private_task(name="train_synthesizer", task_run_name="train the DP synthesizer")(fit_synthesizer)


@task(name="sample_synthetic", task_run_name="sample synthetic rows", cache_policy=NO_CACHE, persist_result=False)
def sample_synthetic(model: Synthesizer, *, n: int, seed: int) -> pl.DataFrame:
    """Sampling is post-processing of the DP model: it reads no private row."""
    return model.sample(n, seed=seed)


@task(name="gate_decision", task_run_name="gate decision")
def gate_decision(
    results: list[MetricResult], contract: Contract, *, epsilon_spent: float
) -> tuple[GateDecision, list[MetricResult]]:
    """All gates, budget and contract included; released only if every one passes.

    The flow's decision task: ``validation.results.decide_release`` over the checks' results plus the
    governance checks (budget, contract)."""
    everything = [*results, *governance_checks(contract, epsilon_spent=epsilon_spent)]
    return _decide(everything, block_inconclusive=contract.gates.block_inconclusive), everything
